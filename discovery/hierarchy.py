"""Hierarchical classification: a label and a confidence at every rank, and the
deepest rank that can be named with confidence.

Why this shape: on real COI barcodes the reference rarely holds every species a
collection contains. Naming a novel species to the nearest known species (what a
BLAST top hit does) is over-classification. We therefore keep the label of the
best-identity reference at each rank, but stop at the deepest rank whose
evidence passes a threshold *calibrated* on specimens whose taxon at that rank
is absent from the reference (val_unseen for species, other_heldout for genus),
so that at most ``target_overclassification`` of them are named that deep.

Evidence per rank: the identity of the query to the best reference of the
chosen taxon (pairwise alignment, ``discovery.identity``) and the margin to the
best reference of any *other* taxon at that rank. A per-rank logistic model on
(identity, margin) gives the probability that the label is right (the reported
confidence).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from storage.records import RANKS

log = logging.getLogger(__name__)

Lineage = tuple[str | None, ...]  # one label per rank in RANKS order

#: Identity thresholds used when a rank has too few calibration specimens whose
#: taxon is absent from the reference (rough COI barcode-gap conventions).
DEFAULT_THRESHOLDS: dict[str, float] = {"order": 0.80, "family": 0.85, "subfamily": 0.87, "genus": 0.90,
                                        "species": 0.97}


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

    @classmethod
    def empty(cls) -> "RankEvidence":
        return cls({r: None for r in RANKS}, {r: 0.0 for r in RANKS}, {r: 0.0 for r in RANKS}, -1)


def rank_evidence(candidates: Sequence[int], identities: np.ndarray, retrieval: np.ndarray | None,
                  lineages: Sequence[Lineage]) -> RankEvidence:
    """Per-rank label, identity and margin from one query's aligned candidates.

    The label at every rank is the lineage of the best-identity candidate
    (ties broken by retrieval similarity), which keeps the ranks consistent;
    the margin at a rank is its identity minus the best identity of a candidate
    whose label at that rank differs (or minus the worst candidate's identity
    when every candidate agrees, a lower bound of the true margin).
    """
    if len(candidates) == 0:
        return RankEvidence.empty()
    ids = np.asarray(identities, dtype=np.float64)
    order_key = ids + (1e-6 * np.asarray(retrieval, dtype=np.float64) if retrieval is not None else 0.0)
    best = int(np.argmax(order_key))
    top_pos = int(candidates[best])
    top_lineage = lineages[top_pos]
    labels: dict[str, str | None] = {}
    identity: dict[str, float] = {}
    margin: dict[str, float] = {}
    floor = float(ids.min())
    for r, rank in enumerate(RANKS):
        label = top_lineage[r]
        labels[rank] = label
        identity[rank] = float(ids[best])
        other = [ids[i] for i, j in enumerate(candidates) if lineages[j][r] != label]
        margin[rank] = float(ids[best] - (max(other) if other else floor))
    return RankEvidence(labels, identity, margin, top_pos)


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

    ``fit(evidence, truths, reference_taxa)`` learns, per rank, the identity
    threshold ``thresholds_[rank]`` and the confidence model ``confidence_[rank]``;
    ``predict(evidence)`` returns one ``RankCall`` per specimen.
    """

    def __init__(self, target_overclassification: float = 0.02, min_absent: int = 20,
                 default_thresholds: Mapping[str, float] | None = None,
                 rank_targets: Mapping[str, float] | None = None) -> None:
        self.target_overclassification = target_overclassification
        #: per-rank override of the target (e.g. a looser one above species)
        self.rank_targets = dict(rank_targets or {})
        self.min_absent = min_absent
        self.default_thresholds = dict(default_thresholds or DEFAULT_THRESHOLDS)

    def fit(self, evidence: Sequence[RankEvidence], truths: Sequence[Mapping[str, str | None]],
            reference_taxa: Mapping[str, set[str]]) -> "HierarchicalClassifier":
        if len(evidence) != len(truths):
            raise ValueError("evidence and truths differ in length")
        thresholds: dict[str, float] = {}
        self.calibration_: dict[str, dict] = {}
        self.confidence_: dict[str, JsonLogistic] = {}
        previous = 0.0
        for rank in RANKS:
            known = reference_taxa.get(rank, set())
            absent_ids = np.array([ev.identity[rank] for ev, t in zip(evidence, truths)
                                   if t.get(rank) and t[rank] not in known and ev.top_position >= 0])
            if len(absent_ids) >= self.min_absent:
                # smallest threshold with share(identity >= t) <= target among absent taxa
                target = self.rank_targets.get(rank, self.target_overclassification)
                allowed = int(np.floor(target * len(absent_ids)))
                ordered = np.sort(absent_ids)[::-1]
                t = float(np.nextafter(ordered[allowed], np.inf)) if allowed < len(ordered) else float(ordered[-1])
                source = "calibrated"
            else:
                t = self.default_thresholds[rank]
                source = "default"
            t = max(t, previous)  # a deeper rank never needs less identity than a shallower one
            previous = t
            thresholds[rank] = t
            self.calibration_[rank] = {"threshold": t, "source": source, "n_absent": int(len(absent_ids))}
            X, y = [], []
            for ev, truth in zip(evidence, truths):
                if truth.get(rank) and ev.top_position >= 0:
                    X.append([ev.identity[rank], ev.margin[rank]])
                    y.append(int(ev.labels[rank] == truth[rank]))
            self.confidence_[rank] = JsonLogistic().fit(np.asarray(X).reshape(-1, 2), np.asarray(y))
        self.thresholds_ = thresholds
        log.info("per-rank identity thresholds: %s", thresholds)
        return self

    def confidences(self, evidence: Sequence[RankEvidence]) -> dict[str, np.ndarray]:
        out = {}
        for rank in RANKS:
            X = np.array([[ev.identity[rank], ev.margin[rank]] for ev in evidence]).reshape(-1, 2)
            p = self.confidence_[rank].predict_proba(X) if len(X) else np.zeros(0)
            p[[ev.top_position < 0 for ev in evidence]] = 0.0
            out[rank] = p
        return out

    def predict(self, evidence: Sequence[RankEvidence]) -> list[RankCall]:
        conf = self.confidences(evidence)
        calls = []
        for i, ev in enumerate(evidence):
            deepest: str | None = None
            if ev.top_position >= 0:
                for rank in RANKS:
                    if ev.identity[rank] < self.thresholds_[rank]:
                        break
                    if ev.labels[rank]:  # a rank the reference leaves blank does not stop descent
                        deepest = rank
            calls.append(RankCall(
                labels=dict(ev.labels), confidence={r: float(conf[r][i]) for r in RANKS},
                identity=dict(ev.identity), margin=dict(ev.margin), deepest_rank=deepest,
                deepest_label=ev.labels[deepest] if deepest else None))
        return calls

    def to_dict(self) -> dict:
        return {"target_overclassification": self.target_overclassification, "min_absent": self.min_absent,
                "rank_targets": self.rank_targets,
                "default_thresholds": self.default_thresholds, "thresholds": self.thresholds_,
                "calibration": self.calibration_,
                "confidence": {r: m.to_dict() for r, m in self.confidence_.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> "HierarchicalClassifier":
        self = cls(float(data["target_overclassification"]), int(data["min_absent"]), data["default_thresholds"],
                   data.get("rank_targets"))
        self.thresholds_ = {r: float(v) for r, v in data["thresholds"].items()}
        self.calibration_ = dict(data["calibration"])
        self.confidence_ = {r: JsonLogistic.from_dict(m) for r, m in data["confidence"].items()}
        return self
