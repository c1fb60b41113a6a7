"""Open-world discovery metrics: novelty, deepest-confident-rank errors, candidate species.

Why one module: ``biodiscover evaluate``, the benchmarks and the tests must score
every method (ours, BLAST, SINTAX, vsearch) with the *same* definitions, written
down once here. Every function takes plain sequences (lists / NumPy arrays of
labels or scores), so it can score any tool's output, not only ours.

Definitions
-----------

**Novelty** (``novelty_scores``). A score per specimen, higher = more likely
outside every known species; ``is_novel`` is the truth. AUROC is the probability
that a random novel specimen scores above a random known one (ties count half).
FPR at 95% TPR follows the out-of-distribution literature (Liang et al. 2018;
Sun et al. 2022, "Deep kNN"): the *known* specimens are the positives; the
threshold keeps 95% of them as known, and FPR95 is the share of novel
specimens that are also (wrongly) kept as known. ``fpr95_novel_positive`` is the
mirror figure (threshold flags 95% of novel specimens; share of known flagged).

**Deepest confident rank** (``rank_errors``), after Edgar's TAXXI / ``tax_err``
and Murali et al. 2018 (IDTAXA). For a query and a rank *r* its true taxon at *r*
is *known* when it is present in the reference at *r*, else *novel*. The
prediction names the query at every rank down to its deepest confident rank and
at no rank below it. Then, per rank:

* **TP** — true taxon known, named correctly;
* **MC** (misclassification) — true taxon known, named with a wrong name;
* **UC** (under-classification) — true taxon known, left unnamed;
* **OC** (over-classification) — true taxon novel, yet a name was given
  (necessarily wrong: the true name is not in the reference);
* **TN** — true taxon novel and correctly left unnamed.

Rates: ``tp_rate`` (sensitivity), ``mc_rate`` and ``uc_rate`` are over the known
queries at that rank; ``oc_rate`` is over the novel queries at that rank. A
query with no true label at a rank is not counted at that rank.

**Candidate species** (``clustering_scores``). ``y_true`` = species (or BIN),
``y_pred`` = candidate id. AMI / ARI are scikit-learn's
(``adjusted_mutual_info_score`` with arithmetic averaging, as BIOSCAN-5M).
*Hungarian accuracy* follows Generalized Category Discovery (Vaze et al. 2022,
``split_cluster_acc_v2``): ONE optimal one-to-one matching of predicted clusters
to true classes over all specimens, then accuracy on All, on Old (specimens
whose true class is in ``old_classes``) and on New (the rest).
*Split rate*: share of true classes with >= 2 specimens whose specimens fall in
>= 2 predicted clusters (over-splitting). *Merge rate*: share of predicted
clusters with >= 2 specimens that hold >= 2 true classes (lumping).
*Exact-match rate*: share of true classes recovered exactly as one cluster.
Noise labels (e.g. HDBSCAN's -1), when ``noise_label`` is given, become
singleton clusters: a taxonomist sees each as its own candidate.

**BIN agreement** (``bin_agreement``): the clustering scores with BINs as the
truth, over specimens that have a BIN.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, roc_auc_score

from biodiscover.storage.records import RANKS

log = logging.getLogger(__name__)

__all__ = [
    "RankErrors",
    "bin_agreement",
    "calibration_bins",
    "clustering_scores",
    "fpr_at_tpr",
    "hungarian_accuracy",
    "novelty_auroc",
    "novelty_scores",
    "rank_errors",
    "reliability",
    "split_merge_rates",
    "wilson_interval",
]


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for the share ``successes / n`` (95 % at the default ``z``), inside [0, 1].

    Why Wilson and not the normal approximation: the shares read here are small — a few absent species named
    among a few dozen left out — and at 0 of ``n`` the normal interval is [0, 0], as if nothing could
    happen; Wilson's is honest there (0 of 10 reaches 0.28) and never leaves [0, 1]. ``successes`` may be
    fractional (a rate averaged over groups, times the number of groups)."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(successes / n, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at 0 of n and n of n the interval ends exactly at 0 and 1 (the formula's rounding left 0.9999999999999999)
    lo = 0.0 if p == 0 else max(0.0, float(centre - half))
    hi = 1.0 if p == 1 else min(1.0, float(centre + half))
    return lo, hi


# ---------------------------------------------------------------------------------
# novelty
# ---------------------------------------------------------------------------------
def _binary(is_novel: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(is_novel, dtype=bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"is_novel has {y.size} values but score has {s.size}")
    if not np.isfinite(s).all():
        raise ValueError("novelty scores contain NaN or infinity")
    if y.all() or not y.any():
        raise ValueError("novelty metrics need both known and novel specimens")
    return y, s


def novelty_auroc(is_novel: ArrayLike, score: ArrayLike) -> float:
    """AUROC of ``score`` (higher = more novel) for separating novel from known."""
    y, s = _binary(is_novel, score)
    return float(roc_auc_score(y, s))


def fpr_at_tpr(is_novel: ArrayLike, score: ArrayLike, tpr: float = 0.95,
               positive: str = "known") -> float:
    """False-positive rate at a given true-positive rate.

    ``positive="known"`` (default, the OOD convention): accept as known every
    specimen whose score is <= the ``tpr`` quantile of the known scores (so at
    least ``tpr`` of known specimens are accepted); return the share of novel
    specimens also accepted. ``positive="novel"``: flag as novel every specimen
    whose score is >= the threshold that flags ``tpr`` of novel specimens; return
    the share of known specimens flagged.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    y, s = _binary(is_novel, score)
    if positive == "known":
        known = np.sort(s[~y])
        k = int(np.ceil(tpr * known.size)) - 1
        threshold = known[max(k, 0)]
        return float(np.mean(s[y] <= threshold))
    if positive == "novel":
        novel = np.sort(s[y])[::-1]
        k = int(np.ceil(tpr * novel.size)) - 1
        threshold = novel[max(k, 0)]
        return float(np.mean(s[~y] >= threshold))
    raise ValueError(f"positive must be 'known' or 'novel', got {positive!r}")


def novelty_scores(is_novel: ArrayLike, score: ArrayLike) -> dict[str, float]:
    """AUROC, FPR95 (known positive) and FPR95 (novel positive), plus counts."""
    y, s = _binary(is_novel, score)
    return {
        "auroc": novelty_auroc(y, s),
        "fpr95": fpr_at_tpr(y, s, 0.95, "known"),
        "fpr95_novel_positive": fpr_at_tpr(y, s, 0.95, "novel"),
        "n_known": int((~y).sum()),
        "n_novel": int(y.sum()),
    }


def _checked(prob: Sequence[float], outcome: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(prob, dtype=float).ravel()
    y = np.asarray(outcome, dtype=float).ravel()
    if p.shape != y.shape:
        raise ValueError(f"prob has {p.size} values but outcome has {y.size}")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must be finite and in [0, 1]")
    return p, y


def _binned(p: np.ndarray, y: np.ndarray, which: np.ndarray, edges: Sequence[float]) -> list[dict[str, Any]]:
    """One row per non-empty bin: its edges, specimens, mean predicted and observed share."""
    table = []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.any():
            table.append({"lo": edges[b], "hi": edges[b + 1], "n": int(sel.sum()), "mean_p": float(p[sel].mean()),
                          "observed": float(y[sel].mean())})
    return table


def reliability(prob: Sequence[float], outcome: Sequence[Any], bins: int = 10) -> dict[str, Any]:
    """Calibration of probabilities ``prob`` for 0/1 ``outcome``: expected calibration error and the
    reliability table (equal-width bins: mean predicted vs observed rate, counts).

    ECE = Σ_b (n_b / n) |mean p_b − observed_b| (Guo et al. 2017); 0 is perfectly calibrated. Its bins stay
    equal (issue 11's target is defined on them); a plot that must separate the probabilities near 1 bins
    them itself (``calibration_bins``).
    """
    p, y = _checked(prob, outcome)
    table = _binned(p, y, np.clip((p * bins).astype(int), 0, bins - 1), [b / bins for b in range(bins + 1)])
    ece = sum(b["n"] / p.size * abs(b["mean_p"] - b["observed"]) for b in table)
    return {"ece": float(ece) if p.size else None, "n": int(p.size), "bins": table}


def calibration_bins(prob: Sequence[float], outcome: Sequence[Any], edges: Sequence[float]) -> list[dict[str, Any]]:
    """The reliability table over the given bin ``edges`` (increasing, 0 first, 1 last): each bin holds the
    probabilities from its lower edge up to, not including, its upper one; the last holds 1 too."""
    p, y = _checked(prob, outcome)
    if len(edges) < 2 or edges[0] != 0 or edges[-1] != 1 or any(a >= b for a, b in pairwise(edges)):
        raise ValueError(f"bin edges must increase from 0 to 1, got {list(edges)}")
    which = np.clip(np.searchsorted(np.asarray(edges, dtype=float), p, side="right") - 1, 0, len(edges) - 2)
    return _binned(p, y, which, list(edges))


# ---------------------------------------------------------------------------------
# deepest confident rank
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankErrors:
    """Counts and rates at one rank (definitions in the module docstring)."""

    rank: str
    tp: int
    mc: int
    uc: int
    oc: int
    tn: int

    @property
    def n_known(self) -> int:
        return self.tp + self.mc + self.uc

    @property
    def n_novel(self) -> int:
        return self.oc + self.tn

    @staticmethod
    def _rate(num: int, den: int) -> float:
        return num / den if den else float("nan")

    @property
    def tp_rate(self) -> float:
        return self._rate(self.tp, self.n_known)

    @property
    def mc_rate(self) -> float:
        return self._rate(self.mc, self.n_known)

    @property
    def uc_rate(self) -> float:
        return self._rate(self.uc, self.n_known)

    @property
    def oc_rate(self) -> float:
        return self._rate(self.oc, self.n_novel)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: counts plus rates (NaN where the denominator is zero)."""
        out: dict[str, Any] = asdict(self)
        out.update(n_known=self.n_known, n_novel=self.n_novel, tp_rate=self.tp_rate,
                   mc_rate=self.mc_rate, uc_rate=self.uc_rate, oc_rate=self.oc_rate)
        return out


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) \
        or (isinstance(value, str) and not value.strip())


def rank_errors(
    truth: Sequence[Mapping[str, Any]],
    predicted: Sequence[Mapping[str, Any]],
    reference_taxa: Mapping[str, Iterable[str]],
    ranks: Sequence[str] = RANKS,
) -> dict[str, RankErrors]:
    """TP / MC / UC / OC / TN per rank of the deepest-confident-rank predictions.

    ``truth[i]`` and ``predicted[i]`` map rank -> name for query *i*; a missing or
    empty predicted name means "not named at that rank". ``reference_taxa[rank]``
    holds the names present in the reference at that rank (what a classifier
    could possibly name). Names are compared as strings at each rank.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truth lineages but {len(predicted)} predictions")
    known = {rank: set(reference_taxa.get(rank, ())) for rank in ranks}
    out: dict[str, RankErrors] = {}
    for rank in ranks:
        counts: Counter[str] = Counter()
        for true_lineage, pred_lineage in zip(truth, predicted):
            t = true_lineage.get(rank)
            if _blank(t):
                continue
            p = pred_lineage.get(rank)
            named = not _blank(p)
            if t in known[rank]:
                counts["uc" if not named else ("tp" if p == t else "mc")] += 1
            else:
                counts["oc" if named else "tn"] += 1
        out[rank] = RankErrors(rank, counts["tp"], counts["mc"], counts["uc"], counts["oc"], counts["tn"])
    return out


# ---------------------------------------------------------------------------------
# candidate species
# ---------------------------------------------------------------------------------
def _encode(labels: Sequence[Hashable], noise_label: Hashable | None = None) -> np.ndarray:
    """Integer codes for arbitrary labels; each ``noise_label`` gets its own code."""
    codes: dict[Hashable, int] = {}
    out = np.empty(len(labels), dtype=np.int64)
    for i, lab in enumerate(labels):
        if noise_label is not None and lab == noise_label:
            out[i] = len(codes)
            codes[("__noise__", i)] = out[i]
            continue
        out[i] = codes.setdefault(lab, len(codes))
    return out


def _pair(y_true: Sequence[Hashable], y_pred: Sequence[Hashable],
          noise_label: Hashable | None) -> tuple[np.ndarray, np.ndarray]:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predicted labels")
    if len(y_true) == 0:
        raise ValueError("no specimens to score")
    y_true = list(np.asarray(y_true, dtype=object)) if isinstance(y_true, np.ndarray) else list(y_true)
    y_pred = list(np.asarray(y_pred, dtype=object)) if isinstance(y_pred, np.ndarray) else list(y_pred)
    for i, t in enumerate(y_true):
        if _blank(t):
            raise ValueError(f"true label of specimen {i} is missing; drop unlabelled specimens first")
    return _encode(y_true), _encode(y_pred, noise_label)


def hungarian_accuracy(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    old_classes: Iterable[Hashable] | None = None,
    noise_label: Hashable | None = None,
) -> dict[str, float]:
    """GCD-v2 clustering accuracy: one Hungarian matching, then All / Old / New.

    Returns ``{"all", "old", "new"}``; ``old``/``new`` are NaN when that subset
    is empty (or when ``old_classes`` is None, then every class counts as New).
    """
    raw_true = list(y_true)
    t, p = _pair(raw_true, list(y_pred), noise_label)
    n_pred, n_true = int(p.max()) + 1, int(t.max()) + 1
    w = np.zeros((n_pred, n_true), dtype=np.int64)
    np.add.at(w, (p, t), 1)
    rows, cols = linear_sum_assignment(w, maximize=True)
    matched = np.zeros(n_true, dtype=np.int64)  # correct count per true class
    matched[cols] = w[rows, cols]
    size = np.bincount(t, minlength=n_true)
    old = set(old_classes) if old_classes is not None else set()
    code_of: dict[Hashable, int] = {}
    for lab, code in zip(raw_true, t):
        code_of.setdefault(lab, int(code))
    is_old = np.zeros(n_true, dtype=bool)
    for lab, code in code_of.items():
        is_old[code] = lab in old
    def acc(mask: np.ndarray) -> float:
        total = size[mask].sum()
        return float(matched[mask].sum() / total) if total else float("nan")
    return {"all": float(matched.sum() / t.size), "old": acc(is_old), "new": acc(~is_old)}


def split_merge_rates(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], noise_label: Hashable | None = None
) -> dict[str, float]:
    """Over-splitting and lumping of true classes by the predicted clusters.

    ``split_rate``: of true classes with >= 2 specimens, the share spread over
    >= 2 clusters. ``merge_rate``: of clusters with >= 2 specimens, the share
    holding >= 2 true classes. ``exact_rate``: share of true classes whose
    specimens form exactly one cluster with nothing else in it.
    """
    t, p = _pair(list(y_true), list(y_pred), noise_label)
    clusters_of: dict[int, set[int]] = defaultdict(set)
    classes_of: dict[int, set[int]] = defaultdict(set)
    for ti, pi in zip(t.tolist(), p.tolist()):
        clusters_of[ti].add(pi)
        classes_of[pi].add(ti)
    class_size = Counter(t.tolist())
    cluster_size = Counter(p.tolist())
    multi_classes = [c for c, n in class_size.items() if n >= 2]
    multi_clusters = [k for k, n in cluster_size.items() if n >= 2]
    split = sum(len(clusters_of[c]) > 1 for c in multi_classes)
    merged = sum(len(classes_of[k]) > 1 for k in multi_clusters)
    exact = sum(
        len(clusters_of[c]) == 1 and len(classes_of[next(iter(clusters_of[c]))]) == 1
        for c in class_size
    )
    return {
        "split_rate": split / len(multi_classes) if multi_classes else float("nan"),
        "merge_rate": merged / len(multi_clusters) if multi_clusters else float("nan"),
        "exact_rate": exact / len(class_size),
        "n_classes": len(class_size),
        "n_clusters": len(cluster_size),
    }


def clustering_scores(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    old_classes: Iterable[Hashable] | None = None,
    noise_label: Hashable | None = None,
) -> dict[str, float]:
    """Every candidate-species figure in one JSON-able dict.

    Keys: ``ami``, ``ari``, ``hungarian_all``, ``hungarian_old``,
    ``hungarian_new``, ``split_rate``, ``merge_rate``, ``exact_rate``,
    ``n_classes``, ``n_clusters``, ``n``.
    """
    t, p = _pair(list(y_true), list(y_pred), noise_label)
    hung = hungarian_accuracy(list(y_true), list(y_pred), old_classes, noise_label)
    out: dict[str, float] = {
        "ami": float(adjusted_mutual_info_score(t, p)),
        "ari": float(adjusted_rand_score(t, p)),
        "hungarian_all": hung["all"],
        "hungarian_old": hung["old"],
        "hungarian_new": hung["new"],
    }
    out.update(split_merge_rates(list(y_true), list(y_pred), noise_label))
    out["n"] = int(t.size)
    return out


def bin_agreement(
    bins: Sequence[Hashable | None], y_pred: Sequence[Hashable], noise_label: Hashable | None = None
) -> dict[str, float]:
    """Clustering scores against BINs, over the specimens that have a BIN.

    Adds ``n_with_bin``; returns only that (0) when no specimen has a BIN.
    """
    if len(bins) != len(y_pred):
        raise ValueError(f"{len(bins)} BINs but {len(y_pred)} predicted labels")
    keep = [i for i, b in enumerate(bins) if not _blank(b)]
    if not keep:
        return {"n_with_bin": 0}
    preds = list(y_pred)
    out = clustering_scores([bins[i] for i in keep], [preds[i] for i in keep], None, noise_label)
    for key in ("hungarian_old", "hungarian_new"):
        out.pop(key, None)
    out["n_with_bin"] = len(keep)
    return out
