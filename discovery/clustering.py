"""Candidate species: cluster novel specimens within their parent taxon, from small swappable parts.

Why parts: a newcomer who wants another clustering method should write one
file, not edit a 300-line class. Every method has one interface
(:class:`SpeciesClusterer`): ``fit(distances, groups)`` sets ``labels_`` (one
candidate id per specimen, 0..K-1) and ``probabilities_`` (membership), plus
the facts the evidence reports (``outlier_scores_``, ``agreement_``,
``candidate_group_``, ``threshold_``, ``linkage_``). ``distances`` is a
:class:`Distances` part that computes distances for any subset on demand
(:class:`BarcodeDistances`: the p-distance of ``storage.distance``;
:class:`EmbeddingDistances`: cosine), because a full matrix over a 50k-specimen
plate would not fit in memory while per-parent-group matrices do.

Methods live one per module in ``discovery/clustering_methods/`` and are chosen
by ``ClusteringConfig.method`` (the module name, or ``"package.module:Class"``
for one outside the package); :func:`make_clusterer` builds the configured one
and the run records the config (:meth:`ClusteringConfig.to_dict`). Built in:

* ``threshold_hdbscan`` (default): an agglomerative cut at the threshold learned
  from the reference's barcode gap (:class:`BarcodeGapThreshold`), reconciled
  with HDBSCAN's soft membership and GLOSH outlier scores;
* ``threshold``: the agglomerative cut alone (no HDBSCAN opinion).

Shared parts here: :func:`threshold_cut`, :func:`same_species_probability`,
:func:`merge_across_groups`, :class:`BarcodeGapThreshold`, :class:`ClassicalMDS`.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Protocol, Sequence

import numpy as np

from biodiscover.storage.distance import cross_p_distance, pairwise_p_distance
from biodiscover.storage.errors import NotFittedError

log = logging.getLogger(__name__)

__all__ = [
    "BarcodeDistances",
    "BarcodeGapThreshold",
    "ClassicalMDS",
    "ClusteringConfig",
    "Distances",
    "EmbeddingDistances",
    "SpeciesClusterer",
    "available_methods",
    "cosine_distance",
    "distances_of",
    "make_clusterer",
    "merge_across_groups",
    "run_record",
    "same_species_probability",
    "threshold_cut",
]

#: Fallback when no threshold was learned: what BarcodeGapThreshold learned on the
#: real BOLD dev set's val_unseen (single linkage, 3.0% p-distance; AMI 0.994 there).
DEFAULT_THRESHOLD = 0.03
DEFAULT_LINKAGE = "single"
METHODS_PACKAGE = "biodiscover.discovery.clustering_methods"


# ---------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------
def cosine_distance(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """1 - cosine similarity of embedding rows (clipped to [0, 2])."""
    x = np.asarray(x, dtype=np.float32)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if y is None:
        yn = xn
    else:
        y = np.asarray(y, dtype=np.float32)
        yn = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    d = np.asarray(np.clip(1.0 - xn @ yn.T, 0.0, 2.0))
    if y is None:
        np.fill_diagonal(d, 0.0)
    return d


class Distances(Protocol):
    """Distances among specimens, computed for any subset when a method asks."""

    @property
    def metric(self) -> str:
        """"p" (barcodes) or "cosine" (embeddings)."""
        ...

    def __len__(self) -> int: ...

    def subset(self, index: Sequence[int] | np.ndarray) -> "Distances":
        """The same distances restricted to ``index`` (in that order)."""
        ...

    def pairwise(self) -> np.ndarray:
        """Symmetric matrix among all specimens of this set (zero diagonal)."""
        ...

    def cross(self, other: "Distances") -> np.ndarray:
        """``len(self) x len(other)`` distances to the specimens of ``other``."""
        ...

    def coordinates(self) -> np.ndarray | None:
        """Points in a feature space when the specimens have them (embeddings), else None."""
        ...


@dataclass(frozen=True)
class BarcodeDistances:
    """p-distances among barcodes (``storage.distance``)."""

    barcodes: Sequence[str]
    metric: str = "p"

    def __len__(self) -> int:
        return len(self.barcodes)

    def subset(self, index: Sequence[int] | np.ndarray) -> "BarcodeDistances":
        return BarcodeDistances([self.barcodes[int(i)] for i in index])

    def pairwise(self) -> np.ndarray:
        return pairwise_p_distance(list(self.barcodes))

    def cross(self, other: Distances) -> np.ndarray:
        if not isinstance(other, BarcodeDistances):
            raise TypeError("barcode distances compare only with barcodes")
        return cross_p_distance(list(self.barcodes), list(other.barcodes))

    def coordinates(self) -> np.ndarray | None:
        return None


@dataclass(frozen=True)
class EmbeddingDistances:
    """Cosine distances among embedding rows."""

    vectors: np.ndarray
    metric: str = "cosine"

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def subset(self, index: Sequence[int] | np.ndarray) -> "EmbeddingDistances":
        return EmbeddingDistances(self.vectors[np.asarray(index, dtype=np.int64)])

    def pairwise(self) -> np.ndarray:
        return cosine_distance(self.vectors)

    def cross(self, other: Distances) -> np.ndarray:
        if not isinstance(other, EmbeddingDistances):
            raise TypeError("embedding distances compare only with embeddings")
        return cosine_distance(self.vectors, other.vectors)

    def coordinates(self) -> np.ndarray:
        x = np.asarray(self.vectors, dtype=np.float64)
        return np.asarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def distances_of(x: Sequence[str] | np.ndarray, metric: str) -> Distances:
    """The :class:`Distances` part for barcodes (``"p"``) or embedding rows (``"cosine"``)."""
    if metric == "p":
        return BarcodeDistances(list(x))
    if metric == "cosine":
        return EmbeddingDistances(np.asarray(x))
    raise ValueError(f"unknown metric {metric!r} (use 'p' for barcodes or 'cosine' for embeddings)")


# ---------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusteringConfig:
    """Settings of candidate-species clustering (frozen: recorded with every run).

    ``method``: a module of ``discovery/clustering_methods`` (``"threshold_hdbscan"``,
    ``"threshold"``) or ``"package.module:Class"``.
    ``metric``: ``"p"`` (barcode p-distance) or ``"cosine"`` (embeddings).
    ``linkage``: ``"average"``, ``"single"`` or ``"complete"``; None = the
    method the :class:`BarcodeGapThreshold` picked (else single).
    ``distance_threshold``: None = learned with :class:`BarcodeGapThreshold`.
    ``min_cluster_size`` / ``min_samples``: HDBSCAN's; 2 / 1 lets pairs form.
    ``mds_dims``: coordinates for HDBSCAN on DNA distances.
    """

    method: str = "threshold_hdbscan"
    metric: str = "p"
    linkage: str | None = None
    distance_threshold: float | None = None
    min_cluster_size: int = 2
    min_samples: int = 1
    mds_dims: int = 16
    #: join candidates of different parent groups within the threshold (see merge_across_groups)
    merge_across_groups: bool = True
    merge_representatives: int = 5
    thresholds: tuple[float, ...] = tuple(round(0.0025 * i, 4) for i in range(1, 41))  # 0.25%..10%

    def __post_init__(self) -> None:
        if self.linkage not in (None, "average", "single", "complete"):
            raise ValueError(f"linkage must be average, single or complete, got {self.linkage!r}")
        if self.metric not in ("p", "cosine"):
            raise ValueError(f"unknown metric {self.metric!r} (use 'p' for barcodes or 'cosine' for embeddings)")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "thresholds": list(self.thresholds)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClusteringConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown clustering setting(s): {', '.join(unknown)}")
        values = dict(data)
        if "thresholds" in values:
            values["thresholds"] = tuple(float(t) for t in values["thresholds"])
        return cls(**values)


# ---------------------------------------------------------------------------------
# the interface and the methods
# ---------------------------------------------------------------------------------
class SpeciesClusterer:
    """Base of every clustering method: ``fit(distances, groups)`` → fitted attributes.

    Subclasses implement :meth:`fit` and set ``labels_`` and ``probabilities_``;
    :meth:`_finish` fills the evidence facts a method has no opinion on
    (``outlier_scores_`` 0, ``agreement_`` 1.0, ``candidate_group_`` = the group
    holding most members). ``threshold_`` / ``linkage_``: the cut used, from
    the config, else the learned gap, else the defaults (:meth:`_resolve_cut`).

    ``partition_only`` (default False): the caller reads only the partition (``labels_``,
    ``candidate_group_``); a method may then skip what sets nothing else (``threshold_hdbscan`` skips
    HDBSCAN, which adds outlier scores and agreement but never moves a label or a membership).
    """

    partition_only: bool = False
    labels_: np.ndarray
    probabilities_: np.ndarray
    outlier_scores_: np.ndarray
    agreement_: dict[int, float]
    candidate_group_: dict[int, Hashable]
    threshold_: float
    linkage_: str

    def __init__(self, config: ClusteringConfig = ClusteringConfig(), gap: "BarcodeGapThreshold | None" = None
                 ) -> None:
        self.config = config
        self.gap = gap

    def fit(self, distances: Distances, groups: Sequence[Hashable] | None = None) -> "SpeciesClusterer":
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "labels_")

    def fit_predict(self, distances: Distances, groups: Sequence[Hashable] | None = None) -> np.ndarray:
        return self.fit(distances, groups).labels_

    def prepare(self) -> None:
        """Import what :meth:`fit` will need, so a caller can do it early (triage runs it while a forked
        child aligns). This module imports SciPy's clustering and scikit-learn only where used: a
        triage that clusters nothing (or ``--no-cluster``) never loads them (~1.5 s of CPU)."""
        import scipy.cluster.hierarchy  # noqa: F401  (threshold_cut)

    # -- helpers for subclasses --------------------------------------------------------
    def _resolve_cut(self) -> None:
        if self.config.distance_threshold is not None:
            self.threshold_ = float(self.config.distance_threshold)
        elif self.gap is not None:
            self.threshold_ = float(self.gap.threshold_)
        else:
            self.threshold_ = DEFAULT_THRESHOLD
            log.warning("no learned threshold given; using the default %.3f (%s linkage)",
                        DEFAULT_THRESHOLD, DEFAULT_LINKAGE)
        self.linkage_ = self.config.linkage or (self.gap.linkage_ if self.gap is not None else DEFAULT_LINKAGE)

    @staticmethod
    def _check_input(distances: Distances, groups: Sequence[Hashable] | None) -> list[Hashable]:
        n = len(distances)
        if n == 0:
            raise ValueError("nothing to cluster: no specimens")
        if groups is not None and len(groups) != n:
            raise ValueError(f"{n} specimens but {len(groups)} group labels")
        return list(groups) if groups is not None else [None] * n

    def _finish(self, groups: Sequence[Hashable]) -> None:
        """Defaults for the evidence facts a method did not set."""
        n = len(self.labels_)
        if not hasattr(self, "outlier_scores_"):
            self.outlier_scores_ = np.zeros(n, dtype=np.float64)
        candidates = np.unique(self.labels_).tolist()
        if not hasattr(self, "agreement_"):
            self.agreement_ = {int(c): 1.0 for c in candidates}
        if not hasattr(self, "candidate_group_"):
            votes: dict[int, Counter[Hashable]] = defaultdict(Counter)
            for c, g in zip(self.labels_.tolist(), groups):
                votes[int(c)][g] += 1
            self.candidate_group_ = {c: v.most_common(1)[0][0] for c, v in votes.items()}
        if not hasattr(self, "threshold_"):
            self._resolve_cut()


def run_record(config: ClusteringConfig, gap: "BarcodeGapThreshold | None") -> dict[str, Any]:
    """What a run records about its clustering: the settings and the learned cut they fall back on."""
    learned = None if gap is None else {"threshold": gap.threshold_, "linkage": gap.linkage_, "ami": gap.score_}
    return {**config.to_dict(), "learned_gap": learned}


def available_methods() -> list[str]:
    """The built-in methods: one module each in ``discovery/clustering_methods``."""
    from biodiscover.discovery import clustering_methods  # the package only: its modules import this one

    return sorted(m.name for m in pkgutil.iter_modules(clustering_methods.__path__) if not m.name.startswith("_"))


def make_clusterer(config: ClusteringConfig = ClusteringConfig(), gap: "BarcodeGapThreshold | None" = None
                   ) -> SpeciesClusterer:
    """The configured method, ready to fit.

    Why a dynamic import: methods are plug-ins — a new one is one new module in
    ``discovery/clustering_methods`` (exposing ``Clusterer``) or anywhere on the
    path as ``"package.module:Class"``, with no registry to edit.
    """
    module_name, _, attr = config.method.partition(":")
    if not attr:
        if config.method not in available_methods():
            raise ValueError(f"unknown clustering method {config.method!r} "
                             f"(built in: {', '.join(available_methods())}; or 'package.module:Class')")
        module_name, attr = f"{METHODS_PACKAGE}.{config.method}", "Clusterer"
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"clustering method {config.method!r} cannot be loaded: {err}") from err
    clusterer = cls(config, gap)
    if not isinstance(clusterer, SpeciesClusterer):
        raise TypeError(f"clustering method {config.method!r} is not a SpeciesClusterer")
    return clusterer


# ---------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------
def link_distance(dist_to_members: np.ndarray, method: str, axis: int = 1) -> np.ndarray:
    """Distance of a point to a cluster as the linkage ``method`` sees it."""
    if method == "single":
        return np.asarray(dist_to_members.min(axis=axis))
    if method == "complete":
        return np.asarray(dist_to_members.max(axis=axis))
    return np.asarray(dist_to_members.mean(axis=axis))


def threshold_cut(dist: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Agglomerative labels (0..k-1) cutting a ``method`` linkage at ``threshold``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = dist.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    z = linkage(squareform(dist, checks=False).astype(np.float64), method=method)
    return np.asarray(fcluster(z, t=threshold, criterion="distance").astype(np.int64) - 1)


@dataclass(frozen=True)
class TwoGroups:
    """How a candidate's members fall apart first (:func:`two_groups`): ``smaller`` (indices of the smaller
    group), ``between`` (the linkage distance at which the two groups join: what the clustering merged them at)
    and ``within`` (the widest p-distance inside either group)."""

    smaller: tuple[int, ...]
    between: float
    within: float


def two_groups(dist: np.ndarray, method: str = "average") -> TwoGroups | None:
    """The top split of the members' ``method`` linkage (the clustering's own): the two groups they fall into
    last; None under two members.

    Why: a reviewer who opens the split dialog on a mixed candidate had to find the members to tick alone. On a
    real Costa Rican plate (115 candidates, 77 with three or more barcodes not all alike) the top split of both
    mixed candidates is exactly the two species (#16: *Memphis aulica* 6 / *M. orthesia* 5, 2.3 % apart, each
    within 0.2 %; #66: *M. ada* 2 / *M. beatrix* 3, 1.8 % apart, each within 0.0 %). It is a proposal to look at,
    not a verdict: one species' two haplotype groups part the same way (#20, 1.8 % apart)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = dist.shape[0]
    if n < 2:
        return None
    z = linkage(squareform(dist, checks=False).astype(np.float64), method=method)
    if z[-1, 2] <= 0.0:  # every member identical: nothing tells them apart
        return None
    labels = np.asarray(fcluster(z, t=2, criterion="maxclust"))
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    groups.sort(key=lambda g: (len(g), int(0 in g)))  # the smaller; of two alike, the one without the first member
    within = max(float(dist[np.ix_(g, g)].max()) for g in groups)
    return TwoGroups(tuple(int(i) for i in groups[0]), float(z[-1, 2]), within)


def same_species_probability(dist: np.ndarray, labels: np.ndarray, method: str,
                             gap: "BarcodeGapThreshold | None") -> np.ndarray:
    """Per specimen, the reference-calibrated P(same species as the rest of its cluster).

    The distance to the other members is taken as the linkage sees it (nearest
    for single, farthest for complete, mean for average); 1.0 for singletons
    and when no gap was learned (nothing to calibrate with).
    """
    p = np.ones(len(labels))
    if gap is None:
        return p
    for c in np.unique(labels):
        mem = np.nonzero(labels == c)[0]
        if mem.size > 1:
            sub = dist[np.ix_(mem, mem)].astype(np.float64)
            np.fill_diagonal(sub, np.nan)
            link = {"single": np.nanmin, "complete": np.nanmax}.get(method, np.nanmean)(sub, axis=1)
            p[mem] = gap.same_species_proba(link)
    return p


def merge_across_groups(distances: Distances, labels: np.ndarray, candidate_group: Mapping[int, Hashable],
                        threshold: float, representatives: int) -> np.ndarray | None:
    """Old → new candidate ids joining candidates of different parent groups within ``threshold``.

    Why: a specimen put under a wrong parent taxon would otherwise split its
    species for good; one species cannot belong to two genera. Each candidate
    is represented by up to ``representatives`` members; two candidates join
    when any of their representatives are within the threshold (single link),
    and only across groups. None when nothing joins. New ids keep the order of
    each joined set's smallest old id.
    """
    n_candidates = int(labels.max()) + 1
    reps: list[int] = []
    owner: list[int] = []
    for c in range(n_candidates):
        mem = np.nonzero(labels == c)[0]
        pick = mem[np.unique(np.linspace(0, mem.size - 1, min(mem.size, representatives)).astype(int))]
        reps.extend(pick.tolist())
        owner.extend([c] * pick.size)
    d = distances.subset(reps).pairwise()
    own = np.asarray(owner)
    group_index: dict[Hashable, int] = {}
    grp = np.asarray([group_index.setdefault(candidate_group[c], len(group_index)) for c in owner])
    parent = list(range(n_candidates))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ii, jj = np.nonzero(np.triu(d <= threshold, k=1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        if grp[i] != grp[j] and own[i] != own[j]:
            ra, rb = find(int(own[i])), find(int(own[j]))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = [find(c) for c in range(n_candidates)]
    if len(set(roots)) == n_candidates:
        return None
    new_id = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.asarray([new_id[r] for r in roots])


# ---------------------------------------------------------------------------------
# threshold from the barcode gap
# ---------------------------------------------------------------------------------
class BarcodeGapThreshold:
    """Learn the species distance threshold from labelled reference specimens.

    ``fit(X, species, groups=None)`` clusters the reference (within each group,
    e.g. genus, as novel specimens are clustered within their parent taxon) at
    every candidate threshold and keeps the one with the highest AMI against the
    species labels: the barcode gap as the clustering will actually use it. It
    also fits a logistic model of P(same species | distance) on within-group
    pairs, used for membership probabilities.

    Several linkage methods may compete (``linkage_methods``); the best pair wins.

    Fitted: ``threshold_``, ``linkage_`` (the winning method), ``score_`` (AMI
    at them), ``curve_`` ((method, threshold) → AMI),
    ``within_q95_`` / ``between_q05_`` (the gap as quantiles), ``coef_``/``intercept_``.
    """

    def __init__(self, metric: str = "p", linkage_methods: Sequence[str] = ("single", "average"),
                 thresholds: Sequence[float] = ClusteringConfig.thresholds, max_group: int = 2000,
                 random_state: int = 0) -> None:
        self.metric = metric
        self.linkage_methods = tuple(linkage_methods)
        self.thresholds = tuple(thresholds)
        self.max_group = max_group
        self.random_state = random_state

    def fit(self, X: Sequence[str] | np.ndarray, species: Sequence[Hashable],
            groups: Sequence[Hashable] | None = None) -> "BarcodeGapThreshold":
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform
        from sklearn.metrics import adjusted_mutual_info_score

        n = len(species)
        if len(X) != n:
            raise ValueError(f"{len(X)} specimens but {n} species labels")
        if n < 3 or len(set(species)) < 2:
            raise ValueError("learning a threshold needs >= 3 labelled specimens of >= 2 species")
        rng = np.random.default_rng(self.random_state)
        groups = list(groups) if groups is not None else [None] * n
        by_group: dict[Hashable, list[int]] = defaultdict(list)
        for i, g in enumerate(groups):
            by_group[g].append(i)
        species = list(species)
        cuts: dict[tuple[str, float], list[np.ndarray]] = {(meth, t): [] for meth in self.linkage_methods
                                                           for t in self.thresholds}
        truth: list[Hashable] = []
        within: list[np.ndarray] = []
        between: list[np.ndarray] = []
        offset = 0
        for idx in by_group.values():
            if len(idx) > self.max_group:
                idx = sorted(rng.choice(idx, self.max_group, replace=False).tolist())
            sub = [X[i] for i in idx] if not isinstance(X, np.ndarray) else X[idx]
            dist = distances_of(sub, self.metric).pairwise()
            labs = [species[i] for i in idx]
            truth.extend(labs)
            if len(idx) > 1:
                iu = np.triu_indices(len(idx), k=1)
                same = np.asarray(labs, dtype=object)[iu[0]] == np.asarray(labs, dtype=object)[iu[1]]
                within.append(dist[iu][same])
                between.append(dist[iu][~same])
            for meth in self.linkage_methods:
                z = (linkage(squareform(dist, checks=False).astype(np.float64), method=meth)
                     if len(idx) > 1 else None)
                for t in self.thresholds:
                    lab = fcluster(z, t=t, criterion="distance") - 1 if z is not None else np.zeros(1, int)
                    cuts[(meth, t)].append(lab + offset)
            offset += len(idx)
        self.curve_ = {t: float(adjusted_mutual_info_score(truth, np.concatenate(c))) for t, c in cuts.items()}
        best = max(self.curve_.values())
        self.linkage_ = max(self.curve_, key=lambda key: self.curve_[key])[0]
        # among ties keep the middle of the plateau: the most robust cut
        plateau = [t for (m, t), s in self.curve_.items() if m == self.linkage_ and s >= best - 1e-9]
        self.threshold_ = float(plateau[len(plateau) // 2])
        self.score_ = float(best)
        w = np.concatenate(within) if within else np.zeros(0)
        b = np.concatenate(between) if between else np.zeros(0)
        self.within_q95_ = float(np.quantile(w, 0.95)) if w.size else float("nan")
        self.between_q05_ = float(np.quantile(b, 0.05)) if b.size else float("nan")
        self._fit_logistic(w, b, rng)
        log.info("barcode-gap threshold %.4f, %s linkage (AMI %.4f on %d reference specimens)",
                 self.threshold_, self.linkage_, best, n)
        return self

    def _fit_logistic(self, within: np.ndarray, between: np.ndarray, rng: np.random.Generator) -> None:
        """P(same species | distance) by logistic regression on balanced pair samples."""
        from sklearn.linear_model import LogisticRegression

        if within.size == 0 or between.size == 0:
            # no pairs of one kind: a steep step at the threshold
            self.coef_, self.intercept_ = -200.0, 200.0 * self.threshold_
            return
        m = min(20000, within.size, between.size)
        w = rng.choice(within, m, replace=False)
        b = rng.choice(between, m, replace=False)
        x = np.r_[w, b][:, None].astype(np.float64)
        y = np.r_[np.ones(m), np.zeros(m)]
        lr = LogisticRegression(C=100.0).fit(x, y)
        self.coef_, self.intercept_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])

    def to_dict(self) -> dict[str, float | str]:
        """The fitted state as JSON (for a model bundle; no pickling)."""
        if not hasattr(self, "threshold_"):
            raise NotFittedError("BarcodeGapThreshold is not fitted; call fit() first")
        return {"metric": self.metric, "threshold": self.threshold_, "linkage": self.linkage_,
                "score": self.score_, "within_q95": self.within_q95_, "between_q05": self.between_q05_,
                "coef": self.coef_, "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BarcodeGapThreshold":
        """Rebuild a fitted learner from :meth:`to_dict` output."""
        try:
            gap = cls(metric=str(data["metric"]), linkage_methods=(str(data["linkage"]),))
            gap.threshold_, gap.linkage_ = float(data["threshold"]), str(data["linkage"])
            gap.score_ = float(data["score"])
            gap.within_q95_, gap.between_q05_ = float(data["within_q95"]), float(data["between_q05"])
            gap.coef_, gap.intercept_ = float(data["coef"]), float(data["intercept"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a saved BarcodeGapThreshold: {err}") from err
        return gap

    def same_species_proba(self, distance: np.ndarray | float) -> np.ndarray:
        """Calibrated P(same species) for a distance (array in, array out)."""
        d = np.asarray(distance, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-(self.coef_ * d + self.intercept_)))


# ---------------------------------------------------------------------------------
# MDS coordinates for HDBSCAN
# ---------------------------------------------------------------------------------
class ClassicalMDS:
    """Classical (Torgerson) MDS with Gower's out-of-sample projection.

    Why: hdbscan's ``approximate_predict`` and soft clustering need points in a
    metric space; barcodes only have pairwise distances.
    """

    def __init__(self, n_components: int = 16) -> None:
        self.n_components = n_components

    def fit_transform(self, dist: np.ndarray) -> np.ndarray:
        d2 = np.asarray(dist, dtype=np.float64) ** 2
        n = d2.shape[0]
        self.col_mean_ = d2.mean(axis=0)
        j = np.eye(n) - 1.0 / n
        b = -0.5 * j @ d2 @ j
        from scipy.linalg import eigh

        top = min(self.n_components, n)
        b = 0.5 * (b + b.T)  # exactly symmetric: LAPACK's partial solver can fail on rounding asymmetry
        try:
            vals, vecs = eigh(b, subset_by_index=(n - top, n - 1))
        except np.linalg.LinAlgError:
            # syevr ("Internal Error") on highly degenerate spectra (many identical barcodes):
            # the full divide-and-conquer solver is slower but robust.
            log.warning("partial eigensolver failed on a %d x %d distance matrix; using the full one", n, n)
            vals, vecs = eigh(b, driver="evd")
            vals, vecs = vals[n - top:], vecs[:, n - top:]
        order = np.argsort(vals)[::-1]
        vals, vecs = vals[order], vecs[:, order]
        keep = max(1, min(self.n_components, int((vals > 1e-12).sum())))
        self.eigenvalues_ = np.maximum(vals[:keep], 1e-12)
        self.vectors_ = vecs[:, :keep]
        return np.asarray(self.vectors_ * np.sqrt(self.eigenvalues_))

    def transform(self, dist_to_train: np.ndarray) -> np.ndarray:
        """Coordinates of new points from their distances to the training points."""
        d2 = np.asarray(dist_to_train, dtype=np.float64) ** 2
        return np.asarray(-0.5 * (d2 - self.col_mean_) @ (self.vectors_ / np.sqrt(self.eigenvalues_)))
