"""Hierarchical classification: a label and a confidence at every rank, and the
deepest rank that can be named with confidence.

Why this shape: on real COI barcodes the reference rarely holds every species a
collection contains. Naming a novel species to the nearest known species (what a
BLAST top hit does) is over-classification. We keep the label of the
best-identity reference at each rank (on the real dev set no vote over the top
hits beat it), and stop at the deepest rank whose *confidence* passes a
threshold calibrated on specimens whose taxon at that rank is absent from the
reference (val_unseen for species, other_heldout for genus, reference specimens
with their own clade left out where the calibration data lack absent taxa), so
that at most ``target`` of them are named that deep.

Evidence per rank (``rank_evidence``), from the pairwise identities of the
query to its aligned candidates:

* ``identity``: of the query to the best-identity reference;
* ``margin``: that identity minus the best identity of a candidate with a
  *different, non-blank* label at the rank (a blank label is no evidence either
  way; when every candidate agrees, minus the worst candidate's identity);
* ``agreement``: among the distinct candidate species within ``window`` identity
  of the best, the share whose (non-blank) label at the rank is the chosen one —
  the kNN / bootstrap-style support strong classifiers use.

Confidence (``confidences``): per rank, a logistic model of P(label right) on
(identity, margin, agreement), fitted on the calibration specimens (a specimen
whose taxon is absent from the reference counts as wrong).

Decision (``predict``): walk from order to species; a rank whose label is blank
in the reference is skipped (no evidence, no gate); a rank is named when its
confidence passes its threshold; a failing rank stops the walk unless it is an
``optional_ranks`` rank (subfamily by default: often blank or inconsistent in
BOLD, it must not stop genus). Thresholds are calibrated top-down *on that
walk*: among calibration specimens absent at a rank, the share that reaches and
passes the rank is at most the rank's target. So a deeper rank's threshold is
no longer forced above a shallower one's: the shallower gates already stop some
absent specimens and the deeper threshold only has to stop the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from biodiscover.storage.records import RANKS

log = logging.getLogger(__name__)

Lineage = tuple[str | None, ...]  # one label per rank in RANKS order

#: Identity thresholds used when a rank has too few calibration specimens whose
#: taxon is absent from the reference (rough COI barcode-gap conventions).
DEFAULT_THRESHOLDS: dict[str, float] = {"order": 0.80, "family": 0.85, "subfamily": 0.87, "genus": 0.90,
                                        "species": 0.97}
#: identity window (below the best hit) within which candidate species vote for ``agreement``
AGREEMENT_WINDOW = 0.02
CONFIDENCE_FEATURES: tuple[str, ...] = ("identity", "margin", "agreement")


class JsonLogistic:
    """Standardised logistic regression whose fitted state is plain numbers.

    Why not keep the sklearn object: bundles never unpickle, so the fitted
    state (mean, scale, coefficients, intercept) is stored as JSON and
    prediction is a few numpy lines.
    """

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X: np.ndarray, y: np.ndarray) -> "JsonLogistic":
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        if len(X) == 0:  # nothing to learn from: confidence 0.5 everywhere
            self.mean_ = np.zeros(X.shape[1])
            self.scale_ = np.ones(X.shape[1])
            self.coef_ = np.zeros(X.shape[1])
            self.intercept_ = 0.0
            return self
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        if len(np.unique(y)) < 2:  # degenerate: constant probability
            self.coef_ = np.zeros(X.shape[1])
            p = float(np.clip(y.mean() if len(y) else 0.5, 1e-3, 1 - 1e-3))
            self.intercept_ = float(np.log(p / (1 - p)))
            return self
        model = LogisticRegression(C=self.C, max_iter=1000)
        model.fit((X - self.mean_) / self.scale_, y)
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row (1-D)."""
        z = ((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_dict(self) -> dict:
        return {"C": self.C, "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "coef": self.coef_.tolist(), "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: Mapping) -> "JsonLogistic":
        self = cls(C=float(data["C"]))
        self.mean_ = np.asarray(data["mean"], dtype=np.float64)
        self.scale_ = np.asarray(data["scale"], dtype=np.float64)
        self.coef_ = np.asarray(data["coef"], dtype=np.float64)
        self.intercept_ = float(data["intercept"])
        return self


@dataclass(frozen=True)
class RankEvidence:
    """What retrieval + alignment found for one query, rank by rank."""

    labels: dict[str, str | None]
    identity: dict[str, float]
    margin: dict[str, float]
    top_position: int  # position of the best-identity reference, -1 when none
    agreement: dict[str, float] = field(default_factory=lambda: {r: 1.0 for r in RANKS})

    @classmethod
    def empty(cls) -> "RankEvidence":
        zeros = {r: 0.0 for r in RANKS}
        return cls({r: None for r in RANKS}, dict(zeros), dict(zeros), -1, dict(zeros))

    def features(self, rank: str, n: int = len(CONFIDENCE_FEATURES)) -> list[float]:
        """The confidence features at ``rank`` (the first ``n``; 2 = a format-1 bundle's model)."""
        return [self.identity[rank], self.margin[rank], self.agreement[rank]][:n]


def rank_evidence(candidates: Sequence[int], identities: np.ndarray, retrieval: np.ndarray | None,
                  lineages: Sequence[Lineage], window: float = AGREEMENT_WINDOW) -> RankEvidence:
    """Per-rank label, identity, margin and agreement from one query's aligned candidates.

    The label at every rank is the lineage of the best-identity candidate
    (ties broken by retrieval similarity), which keeps the ranks consistent.
    Blank labels are no evidence: they neither count as disagreeing (margin)
    nor vote (agreement). A rank whose chosen label is blank gets margin and
    agreement 0.
    """
    if len(candidates) == 0:
        return RankEvidence.empty()
    ids = np.asarray(identities, dtype=np.float64)
    order_key = ids + (1e-6 * np.asarray(retrieval, dtype=np.float64) if retrieval is not None else 0.0)
    best = int(np.argmax(order_key))
    top_pos = int(candidates[best])
    top_lineage = lineages[top_pos]
    best_id = float(ids[best])
    floor = float(ids.min())
    # one vote per candidate species (its best identity); unnamed records vote alone
    per_species: dict[object, tuple[float, int]] = {}
    for i, j in enumerate(candidates):
        lin = lineages[j]
        key = lin[-1] or ("#", j)
        if key not in per_species or ids[i] > per_species[key][0]:
            per_species[key] = (float(ids[i]), int(j))
    near = [j for v, j in per_species.values() if v >= best_id - window - 1e-12]
    labels: dict[str, str | None] = {}
    identity: dict[str, float] = {}
    margin: dict[str, float] = {}
    agreement: dict[str, float] = {}
    for r, rank in enumerate(RANKS):
        label = top_lineage[r]
        labels[rank] = label
        identity[rank] = best_id
        if not label:
            margin[rank] = 0.0
            agreement[rank] = 0.0
            continue
        other = [ids[i] for i, j in enumerate(candidates) if lineages[j][r] and lineages[j][r] != label]
        margin[rank] = best_id - (float(max(other)) if other else floor)
        votes = [lineages[j][r] for j in near if lineages[j][r]]
        agreement[rank] = float(np.mean([v == label for v in votes])) if votes else 1.0
    return RankEvidence(labels, identity, margin, top_pos, agreement)


def _weighted_threshold(score: np.ndarray, use: np.ndarray, alive: np.ndarray, weight: np.ndarray,
                        target: float) -> float:
    """Smallest threshold t such that the weighted share of ``use`` rows that are ``alive`` with
    ``score >= t`` is at most ``target`` (ties all pass or all fail together)."""
    budget = target * float(weight[use].sum())
    cand = use & alive
    s, w = score[cand], weight[cand]
    if w.sum() <= budget:
        return 0.0 if s.size == 0 else float(min(0.0, s.min()))
    order = np.argsort(-s, kind="stable")
    s, w = s[order], w[order]
    cum = np.cumsum(w)
    # the first position where passing it (and every score tied with it) would overspend
    over = int(np.argmax(cum > budget + 1e-12))
    return float(np.nextafter(s[over], np.inf))


@dataclass(frozen=True)
class RankCall:
    """The classifier's answer for one specimen."""

    labels: dict[str, str | None]
    confidence: dict[str, float]
    identity: dict[str, float]
    margin: dict[str, float]
    deepest_rank: str | None
    deepest_label: str | None


class HierarchicalClassifier:
    """Calibrated deepest-confident-rank decisions on top of ``RankEvidence``.

    ``fit(evidence, truths, reference_taxa, extra=None)`` learns, per rank, the
    confidence model ``confidence_[rank]`` and the threshold ``thresholds_[rank]``
    on the confidence (``kind_[rank] == "confidence"``), or, when the calibration
    data hold fewer than ``min_absent`` specimens of ``min_absent_taxa`` taxa absent
    from the reference at that rank, a default identity threshold
    (``kind_[rank] == "identity"``).

    Calibration population at a rank: the specimens whose taxon at that rank is
    absent from the reference *but whose parent taxon is present* (for species:
    novel species of known genera; for genus: genera absent from known
    families) — the hardest absent specimens, so the target holds a fortiori for
    the rest. Each species weighs at most ``max_per_species`` specimens.

    ``extra[rank]`` = (evidence, truths) of specimens absent at ``rank`` by
    construction (reference specimens searched with their own taxon left out);
    they train that rank's confidence model and calibrate its threshold when the
    calibration data lack absent taxa. ``calibration_[rank]`` records the source,
    counts and the (weighted) over-classification reached on the calibration data.
    ``predict(evidence)`` returns one ``RankCall`` per specimen.
    """

    def __init__(self, target_overclassification: float = 0.02, min_absent: int = 20,
                 default_thresholds: Mapping[str, float] | None = None,
                 rank_targets: Mapping[str, float] | None = None, min_absent_taxa: int = 5,
                 optional_ranks: Sequence[str] = ("subfamily",), max_per_species: int = 25) -> None:
        self.target_overclassification = target_overclassification
        #: per-rank override of the target (e.g. a looser one above species)
        self.rank_targets = dict(rank_targets or {})
        self.min_absent = min_absent
        self.min_absent_taxa = min_absent_taxa
        self.optional_ranks = tuple(optional_ranks)
        self.max_per_species = max_per_species
        self.default_thresholds = dict(default_thresholds or DEFAULT_THRESHOLDS)

    # -- fitting -------------------------------------------------------------------------
    def fit(self, evidence: Sequence[RankEvidence], truths: Sequence[Mapping[str, str | None]],
            reference_taxa: Mapping[str, set[str]],
            extra: Mapping[str, tuple[Sequence[RankEvidence], Sequence[Mapping[str, str | None]]]] | None = None,
            ) -> "HierarchicalClassifier":
        if len(evidence) != len(truths):
            raise ValueError("evidence and truths differ in length")
        extra = dict(extra or {})
        self.confidence_: dict[str, JsonLogistic] = {}
        for rank in RANKS:
            X, y = [], []
            # a rank's extra (clade-excluded) specimens are its examples of wrong labels too
            ev_r = list(zip(evidence, truths)) + list(zip(*extra[rank])) if rank in extra else zip(evidence, truths)
            for ev, truth in ev_r:
                if truth.get(rank) and ev.top_position >= 0 and ev.labels[rank]:
                    X.append(ev.features(rank))
                    y.append(int(ev.labels[rank] == truth[rank]))
            self.confidence_[rank] = JsonLogistic().fit(np.asarray(X).reshape(-1, len(CONFIDENCE_FEATURES)),
                                                        np.asarray(y))
        # the calibration pool: the main specimens, then each rank's extra specimens
        pool = [(ev, t, None) for ev, t in zip(evidence, truths)]
        for rank, (ev_x, t_x) in extra.items():
            pool += [(ev, t, rank) for ev, t in zip(ev_x, t_x)]
        pool_ev = [p[0] for p in pool]
        conf = self.confidences(pool_ev)
        ident = np.array([ev.identity["species"] for ev in pool_ev])
        has = np.array([ev.top_position >= 0 for ev in pool_ev])
        src = np.array([p[2] or "" for p in pool], dtype=object)
        alive = has.copy()
        # each species counts for at most max_per_species specimens (a few abundant species must not
        # set the threshold; BIOSCAN-5M's test splits cap species the same way)
        sp = [(p[2] or "", p[1].get("species") or f"#{i}") for i, p in enumerate(pool)]
        count: dict[tuple, int] = {}
        for key in sp:
            count[key] = count.get(key, 0) + 1
        weight = np.array([min(1.0, self.max_per_species / count[key]) for key in sp])
        self.thresholds_: dict[str, float] = {}
        self.kind_: dict[str, str] = {}
        self.calibration_: dict[str, dict] = {}
        for rank in RANKS:
            known = reference_taxa.get(rank, set())
            named = np.array([bool(ev.labels[rank]) for ev in pool_ev])
            truth_r = [p[1].get(rank) for p in pool]
            # extra specimens of this rank are absent by construction (their taxon was left out);
            # calibrate on the hardest absent specimens: those whose parent taxon is in the reference
            parent = self._parent_known(pool, rank, reference_taxa)
            absent = np.array([bool(t) and (t not in known or sr == rank) for t, sr in zip(truth_r, src)])
            absent &= named & has & parent
            source = "calibration"
            use = absent & (src == "")
            if not self._enough(use, truth_r) and rank in extra:
                use, source = absent & (src == rank), "clade-exclusion"
            target = self.rank_targets.get(rank, self.target_overclassification)
            if self._enough(use, truth_r):
                # a constant confidence (no wrong label to learn from) cannot rank: use the identity
                kind = "confidence" if np.any(self.confidence_[rank].coef_) else "identity"
                score = conf[rank] if kind == "confidence" else ident
                t = _weighted_threshold(score, use, alive, weight, target)
                passed = score >= t
            else:
                t, kind, source = self.default_thresholds[rank], "identity", "default"
                passed = ident >= t
            self.thresholds_[rank], self.kind_[rank] = t, kind
            reached = use & alive & passed
            self.calibration_[rank] = {
                "threshold": t, "kind": kind, "source": source, "target": target,
                "n_absent": int(use.sum()), "n_absent_taxa": len({truth_r[i] for i in np.nonzero(use)[0]}),
                "overclassification": float(weight[reached].sum() / weight[use].sum()) if use.sum() else None}
            if rank not in self.optional_ranks:
                alive &= ~named | passed
        log.info("per-rank thresholds: %s", {r: (round(t, 4), self.kind_[r]) for r, t in self.thresholds_.items()})
        return self

    @staticmethod
    def _parent_known(pool: Sequence[tuple], rank: str, reference_taxa: Mapping[str, set[str]]) -> np.ndarray:
        """Per pool row: its nearest non-blank shallower taxon is in the reference (True at the top rank)."""
        above = RANKS[: RANKS.index(rank)]
        out = np.ones(len(pool), dtype=bool)
        for i, (_, truth, _) in enumerate(pool):
            for r in reversed(above):
                if truth.get(r):
                    out[i] = truth[r] in reference_taxa.get(r, set())
                    break
        return out

    def _enough(self, use: np.ndarray, truth_r: Sequence[str | None]) -> bool:
        return int(use.sum()) >= self.min_absent and \
            len({truth_r[i] for i in np.nonzero(use)[0]}) >= self.min_absent_taxa

    # -- prediction ----------------------------------------------------------------------
    def confidences(self, evidence: Sequence[RankEvidence]) -> dict[str, np.ndarray]:
        """P(label right) per rank (0 where there is no candidate or the label is blank)."""
        out = {}
        for rank in RANKS:
            model = self.confidence_[rank]
            n = len(model.coef_)
            X = np.array([ev.features(rank, n) for ev in evidence]).reshape(-1, n)
            p = model.predict_proba(X) if len(X) else np.zeros(0)
            p[[ev.top_position < 0 or not ev.labels[rank] for ev in evidence]] = 0.0
            out[rank] = p
        return out

    def predict(self, evidence: Sequence[RankEvidence]) -> list[RankCall]:
        conf = self.confidences(evidence)
        calls = []
        for i, ev in enumerate(evidence):
            deepest: str | None = None
            if ev.top_position >= 0:
                for rank in RANKS:
                    if not ev.labels[rank]:  # blank in the reference: no evidence, no gate
                        continue
                    value = conf[rank][i] if self.kind_[rank] == "confidence" else ev.identity[rank]
                    if value >= self.thresholds_[rank]:
                        deepest = rank
                    elif rank not in self.optional_ranks:
                        break
            calls.append(RankCall(
                labels=dict(ev.labels), confidence={r: float(conf[r][i]) for r in RANKS},
                identity=dict(ev.identity), margin=dict(ev.margin), deepest_rank=deepest,
                deepest_label=ev.labels[deepest] if deepest else None))
        return calls

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"target_overclassification": self.target_overclassification, "min_absent": self.min_absent,
                "min_absent_taxa": self.min_absent_taxa, "optional_ranks": list(self.optional_ranks),
                "max_per_species": self.max_per_species,
                "rank_targets": self.rank_targets, "default_thresholds": self.default_thresholds,
                "thresholds": self.thresholds_, "kind": self.kind_, "calibration": self.calibration_,
                "confidence": {r: m.to_dict() for r, m in self.confidence_.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> "HierarchicalClassifier":
        legacy = "kind" not in data  # format-1 bundle: identity thresholds on every rank, every rank gates
        self = cls(float(data["target_overclassification"]), int(data["min_absent"]), data["default_thresholds"],
                   data.get("rank_targets"), int(data.get("min_absent_taxa", 1)),
                   () if legacy else data.get("optional_ranks", ()), int(data.get("max_per_species", 25)))
        self.thresholds_ = {r: float(v) for r, v in data["thresholds"].items()}
        self.kind_ = {r: "identity" for r in RANKS} if legacy else dict(data["kind"])
        self.calibration_ = dict(data["calibration"])
        self.confidence_ = {r: JsonLogistic.from_dict(m) for r, m in data["confidence"].items()}
        return self
