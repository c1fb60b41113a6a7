"""Candidate species: cluster novel specimens within their parent taxon.

Why two clusterers, reconciled:

* **Agglomerative clustering** (average linkage by default) on a precomputed
  distance — pairwise p-distance of barcodes (edlib alignment) or cosine
  distance of embeddings — cut at a distance threshold *learned from the
  reference's barcode gap* (:class:`BarcodeGapThreshold`: the cut that best
  recovers the labelled reference species). This is what taxonomists already
  trust (BINs, vsearch OTUs are threshold clusters) and it fixes the partition.
* **HDBSCAN** (``prediction_data=True``) on the same geometry adds what a fixed
  cut cannot: soft membership (``all_points_membership_vectors``), GLOSH outlier
  scores, and ``approximate_predict`` for specimens that arrive later. DNA
  distances are turned into coordinates by classical MDS (with Gower's
  out-of-sample projection), because hdbscan's prediction machinery needs a
  feature space, not a precomputed matrix.

Reconciliation (:class:`CandidateSpeciesClusterer`): the candidates are the
agglomerative clusters (singletons kept as singleton candidates). Each member's
membership probability is the mean of (a) the reference-calibrated probability
that it is the same species as its candidate's other members, given its linkage
distance to them (nearest other member for single linkage, mean for average;
:meth:`BarcodeGapThreshold.same_species_proba`), and (b) HDBSCAN's soft
membership of the member in the HDBSCAN cluster that holds most of the
candidate, relative to the member's best cluster (0 when HDBSCAN disagrees). A singleton's probability is (a)
alone with (a) = 1. ``agreement_`` records per candidate whether both methods
agree, so a reviewer sees where they do not.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.metrics import adjusted_mutual_info_score

from biodiscover.storage.distance import cross_p_distance, pairwise_p_distance

log = logging.getLogger(__name__)

__all__ = [
    "ClusteringConfig",
    "cosine_distance",
    "BarcodeGapThreshold",
    "ClassicalMDS",
    "CandidateSpeciesClusterer",
]

#: Fallback when no threshold was learned: what BarcodeGapThreshold learned on the
#: real BOLD dev set's val_unseen (single linkage, 3.0% p-distance; AMI 0.994 there).
DEFAULT_THRESHOLD = 0.03
DEFAULT_LINKAGE = "single"


# ---------------------------------------------------------------------------------
# distances (barcode p-distance: storage.distance, the one definition)
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
    d = np.clip(1.0 - xn @ yn.T, 0.0, 2.0)
    if y is None:
        np.fill_diagonal(d, 0.0)
    return d


def _distance(x: Sequence[str] | np.ndarray, metric: str) -> np.ndarray:
    if metric == "p":
        return pairwise_p_distance(list(x))
    if metric == "cosine":
        return cosine_distance(np.asarray(x))
    raise ValueError(f"unknown metric {metric!r} (use 'p' for barcodes or 'cosine' for embeddings)")


def _cross(x: Sequence[str] | np.ndarray, y: Sequence[str] | np.ndarray, metric: str) -> np.ndarray:
    if metric == "p":
        return cross_p_distance(list(x), list(y))
    return cosine_distance(np.asarray(x), np.asarray(y))


def _link(dist_to_members: np.ndarray, method: str, axis: int = 1) -> np.ndarray:
    """Distance of a point to a cluster as the linkage ``method`` sees it."""
    if method == "single":
        return dist_to_members.min(axis=axis)
    if method == "complete":
        return dist_to_members.max(axis=axis)
    return dist_to_members.mean(axis=axis)


def _cut(dist: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Agglomerative labels (0..k-1) cutting a ``method`` linkage at ``threshold``."""
    n = dist.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    z = linkage(squareform(dist, checks=False).astype(np.float64), method=method)
    return fcluster(z, t=threshold, criterion="distance").astype(np.int64) - 1


# ---------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusteringConfig:
    """Settings of candidate-species clustering (frozen: recorded with every run).

    ``metric``: ``"p"`` (barcode p-distance) or ``"cosine"`` (embeddings).
    ``linkage``: ``"average"``, ``"single"`` or ``"complete"``; None = the
    method the :class:`BarcodeGapThreshold` picked (else average).
    ``distance_threshold``: None = learned with :class:`BarcodeGapThreshold`.
    ``min_cluster_size`` / ``min_samples``: HDBSCAN's; 2 / 1 lets pairs form.
    ``mds_dims``: coordinates for HDBSCAN on DNA distances.
    """

    metric: str = "p"
    linkage: str | None = None
    distance_threshold: float | None = None
    min_cluster_size: int = 2
    min_samples: int = 1
    mds_dims: int = 16
    #: join candidates of different parent groups within the threshold (see fit)
    merge_across_groups: bool = True
    merge_representatives: int = 5
    thresholds: tuple[float, ...] = tuple(round(0.0025 * i, 4) for i in range(1, 41))  # 0.25%..10%


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
        cuts = {(meth, t): [] for meth in self.linkage_methods for t in self.thresholds}
        truth: list[Hashable] = []
        within, between = [], []
        offset = 0
        for g, idx in by_group.items():
            if len(idx) > self.max_group:
                idx = sorted(rng.choice(idx, self.max_group, replace=False).tolist())
            sub = [X[i] for i in idx] if not isinstance(X, np.ndarray) else X[idx]
            dist = _distance(sub, self.metric)
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
        self.linkage_ = max(self.curve_, key=self.curve_.get)[0]
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
            raise RuntimeError("BarcodeGapThreshold is not fitted; call fit() first")
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
        return self.vectors_ * np.sqrt(self.eigenvalues_)

    def transform(self, dist_to_train: np.ndarray) -> np.ndarray:
        """Coordinates of new points from their distances to the training points."""
        d2 = np.asarray(dist_to_train, dtype=np.float64) ** 2
        return -0.5 * (d2 - self.col_mean_) @ (self.vectors_ / np.sqrt(self.eigenvalues_))


# ---------------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------------
@dataclass
class _Group:
    """Fitted state of one parent-taxon group."""

    key: Hashable
    index: np.ndarray  # positions in the fitted data
    data: list | np.ndarray
    labels: np.ndarray  # global candidate ids
    clusterer: object | None = None  # hdbscan.HDBSCAN
    mds: ClassicalMDS | None = None
    candidate_to_hdb: dict[int, int] | None = None  # candidate -> its dominant HDBSCAN cluster
    #: approximate_predict label -> candidate, learned by re-predicting the fitted
    #: points (hdbscan's approximate_predict ignores cluster_selection_epsilon, so
    #: its labels need not equal labels_)
    approx_to_candidate: dict[int, int] | None = None


class CandidateSpeciesClusterer:
    """Group novel specimens into candidate species, within each parent taxon.

    ``fit(X, groups=None, threshold=None)``: ``X`` is a list of barcodes
    (``metric="p"``) or an embedding matrix (``metric="cosine"``); ``groups`` the
    deepest confident parent taxon of each specimen (None = one group). The
    threshold comes from ``config.distance_threshold``, else from ``threshold``
    (a fitted :class:`BarcodeGapThreshold`, also used for probabilities), else
    ``DEFAULT_THRESHOLD`` / ``DEFAULT_LINKAGE`` with a warning.

    Fitted attributes: ``labels_`` (candidate id per specimen, 0..K-1, every
    specimen in exactly one candidate; singletons kept), ``probabilities_``
    (membership probability), ``outlier_scores_`` (GLOSH, 0 for groups too small
    for HDBSCAN), ``agglomerative_labels_``, ``hdbscan_labels_`` (-1 = noise,
    group-local ids offset to be unique), ``candidate_group_`` (candidate id →
    group), ``agreement_`` (candidate id → share of members HDBSCAN puts in the
    candidate's dominant HDBSCAN cluster), ``threshold_``, ``linkage_``,
    ``n_candidates_``, ``merged_across_groups_`` (candidate id → the parent
    groups it was joined from; see :meth:`_merge_across_groups`). With
    merging, ``agglomerative_labels_`` stays the within-group cut and
    ``candidate_group_`` names the group holding most members.
    """

    def __init__(self, config: ClusteringConfig = ClusteringConfig()) -> None:
        if config.linkage not in (None, "average", "single", "complete"):
            raise ValueError(f"linkage must be average, single or complete, got {config.linkage!r}")
        self.config = config

    # -- fit -------------------------------------------------------------------------
    def fit(self, X: Sequence[str] | np.ndarray, groups: Sequence[Hashable] | None = None,
            threshold: BarcodeGapThreshold | None = None) -> "CandidateSpeciesClusterer":
        n = len(X)
        if n == 0:
            raise ValueError("nothing to cluster: no specimens")
        if groups is not None and len(groups) != n:
            raise ValueError(f"{n} specimens but {len(groups)} group labels")
        self.gap_ = threshold
        if self.config.distance_threshold is not None:
            self.threshold_ = float(self.config.distance_threshold)
        elif threshold is not None:
            self.threshold_ = float(threshold.threshold_)
        else:
            self.threshold_ = DEFAULT_THRESHOLD
            log.warning("no learned threshold given; using the default %.3f (%s linkage)",
                        DEFAULT_THRESHOLD, DEFAULT_LINKAGE)
        self.linkage_ = self.config.linkage or (threshold.linkage_ if threshold is not None else DEFAULT_LINKAGE)
        keys = list(groups) if groups is not None else [None] * n
        by_group: dict[Hashable, list[int]] = defaultdict(list)
        for i, g in enumerate(keys):
            by_group[g].append(i)
        self.labels_ = np.full(n, -1, dtype=np.int64)
        self.agglomerative_labels_ = np.full(n, -1, dtype=np.int64)
        self.hdbscan_labels_ = np.full(n, -1, dtype=np.int64)
        self.probabilities_ = np.ones(n, dtype=np.float64)
        self.outlier_scores_ = np.zeros(n, dtype=np.float64)
        self.candidate_group_: dict[int, Hashable] = {}
        self.agreement_: dict[int, float] = {}
        self.groups_: list[_Group] = []
        next_id, hdb_offset = 0, 0
        for key, idx_list in by_group.items():
            idx = np.asarray(idx_list)
            data = X[idx] if isinstance(X, np.ndarray) else [X[i] for i in idx_list]
            next_id, hdb_offset = self._fit_group(key, idx, data, next_id, hdb_offset)
        self.n_candidates_ = next_id
        self.merged_across_groups_: dict[int, list[Hashable]] = {}
        if len(by_group) > 1 and self.config.merge_across_groups:
            self._merge_across_groups(X)
        return self

    def _merge_across_groups(self, X: Sequence[str] | np.ndarray) -> None:
        """Join candidates of different parent groups that lie within the threshold.

        Why: a specimen put under a wrong parent taxon would otherwise split its
        species for good; one species cannot belong to two genera. Each
        candidate is represented by up to ``config.merge_representatives``
        members; two candidates join when any of their representatives are
        within the threshold (single link), and only across groups.
        """
        reps: list[int] = []
        owner: list[int] = []
        for c in range(self.n_candidates_):
            mem = np.nonzero(self.labels_ == c)[0]
            pick = mem[np.unique(np.linspace(0, mem.size - 1, min(mem.size, self.config.merge_representatives)).astype(int))]
            reps.extend(pick.tolist())
            owner.extend([c] * pick.size)
        data = X[np.asarray(reps)] if isinstance(X, np.ndarray) else [X[i] for i in reps]
        d = _distance(data, self.config.metric)
        own = np.asarray(owner)
        group_index: dict[Hashable, int] = {}
        grp = np.asarray([group_index.setdefault(self.candidate_group_[c], len(group_index)) for c in owner])
        parent = list(range(self.n_candidates_))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        ii, jj = np.nonzero(np.triu(d <= self.threshold_, k=1))
        for i, j in zip(ii.tolist(), jj.tolist()):
            if grp[i] != grp[j] and own[i] != own[j]:
                ra, rb = find(int(own[i])), find(int(own[j]))
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
        roots = [find(c) for c in range(self.n_candidates_)]
        if len(set(roots)) == self.n_candidates_:
            return
        new_id = {r: k for k, r in enumerate(dict.fromkeys(roots))}
        mapping = np.asarray([new_id[r] for r in roots])
        sizes = np.bincount(self.labels_, minlength=self.n_candidates_)
        old_group, old_agree = dict(self.candidate_group_), dict(self.agreement_)
        self.labels_ = mapping[self.labels_]
        for g in self.groups_:
            g.labels = mapping[g.labels]
            if g.candidate_to_hdb:
                g.candidate_to_hdb = {int(mapping[c]): h for c, h in g.candidate_to_hdb.items()}
            if g.approx_to_candidate:
                g.approx_to_candidate = {h: int(mapping[c]) for h, c in g.approx_to_candidate.items()}
        self.candidate_group_, self.agreement_ = {}, {}
        for k in range(len(new_id)):
            olds = np.nonzero(mapping == k)[0]
            counts: Counter = Counter()
            for o in olds:
                counts[old_group[int(o)]] += int(sizes[o])
            self.candidate_group_[k] = counts.most_common(1)[0][0]
            w = sizes[olds]
            self.agreement_[k] = float(np.average([old_agree.get(int(o), 1.0) for o in olds], weights=w))
            if olds.size > 1:
                self.merged_across_groups_[k] = list(counts)
        log.info("merged %d candidates across parent groups into %d", self.n_candidates_, len(new_id))
        self.n_candidates_ = len(new_id)

    def _fit_group(self, key: Hashable, idx: np.ndarray, data, next_id: int, hdb_offset: int) -> tuple[int, int]:
        m = len(idx)
        dist = _distance(data, self.config.metric) if m > 1 else np.zeros((1, 1))
        agg = _cut(dist, self.threshold_, self.linkage_)
        glob = agg + next_id
        self.agglomerative_labels_[idx] = glob
        self.labels_[idx] = glob
        for c in np.unique(glob):
            self.candidate_group_[int(c)] = key
        group = _Group(key, idx, data, glob)
        # (a) distance-calibrated probability of belonging with the other members
        p_dist = np.ones(m)
        if self.gap_ is not None:
            for c in np.unique(agg):
                mem = np.nonzero(agg == c)[0]
                if mem.size > 1:
                    sub = dist[np.ix_(mem, mem)].astype(np.float64)
                    np.fill_diagonal(sub, np.nan)
                    link = {"single": np.nanmin, "complete": np.nanmax}.get(self.linkage_, np.nanmean)(sub, axis=1)
                    p_dist[mem] = self.gap_.same_species_proba(link)
        # (b) HDBSCAN soft membership, when the group is big enough
        p_hdb = np.ones(m)
        if m > self.config.min_cluster_size:
            p_hdb = self._fit_hdbscan(group, dist, agg, hdb_offset)
            hdb_offset = int(self.hdbscan_labels_.max()) + 1
        else:
            for c in np.unique(glob):
                self.agreement_[int(c)] = 1.0
        self.probabilities_[idx] = np.where(
            np.bincount(agg)[agg] > 1, 0.5 * (p_dist + p_hdb), 1.0
        )
        self.groups_.append(group)
        return next_id + int(agg.max()) + 1, hdb_offset

    def _fit_hdbscan(self, group: _Group, dist: np.ndarray, agg: np.ndarray, hdb_offset: int) -> np.ndarray:
        import hdbscan

        m = dist.shape[0]
        if self.config.metric == "p":
            group.mds = ClassicalMDS(min(self.config.mds_dims, m - 1))
            coords = group.mds.fit_transform(dist)
        else:
            x = np.asarray(group.data, dtype=np.float64)
            coords = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        clusterer = hdbscan.HDBSCAN(
            min_cluster_size=self.config.min_cluster_size, min_samples=self.config.min_samples,
            prediction_data=True, allow_single_cluster=True,
            cluster_selection_epsilon=float(self.threshold_) if self.config.metric == "p" else 0.0,
        ).fit(coords)
        group.clusterer = clusterer
        hl = clusterer.labels_.astype(np.int64)
        self.hdbscan_labels_[group.index] = np.where(hl >= 0, hl + hdb_offset, -1)
        self.outlier_scores_[group.index] = np.nan_to_num(clusterer.outlier_scores_, nan=0.0)
        n_hdb = int(hl.max()) + 1
        soft = np.zeros((m, max(n_hdb, 1)))
        if n_hdb > 0:
            try:
                soft = np.atleast_2d(hdbscan.all_points_membership_vectors(clusterer)).reshape(m, -1)
            except (KeyError, IndexError, ValueError) as err:
                # hdbscan's soft clustering fails on some tiny trees (e.g. with
                # allow_single_cluster); fall back to hard membership strengths
                log.debug("all_points_membership_vectors failed (%r); using hard strengths", err)
                soft = np.zeros((m, n_hdb))
                hit = hl >= 0
                soft[np.nonzero(hit)[0], hl[hit]] = clusterer.probabilities_[hit]
            # soft vectors spread over every cluster of the group; relative to each
            # point's best cluster they read as "how much this is my cluster" in [0, 1]
            soft = soft / np.maximum(soft.max(axis=1, keepdims=True), 1e-12)
        p_hdb = np.zeros(m)
        group.candidate_to_hdb = {}
        for c in np.unique(agg):
            mem = np.nonzero(agg == c)[0]
            cand = int(group.labels[mem[0]])
            votes = Counter(int(v) for v in hl[mem] if v >= 0)
            if not votes:
                self.agreement_[cand] = 1.0 if mem.size == 1 else 0.0
                p_hdb[mem] = 1.0 if mem.size == 1 else 0.0
                continue
            dominant, count = votes.most_common(1)[0]
            self.agreement_[cand] = count / mem.size
            group.candidate_to_hdb[cand] = dominant
            p_hdb[mem] = soft[mem, dominant] if soft.shape[1] > dominant else 0.0
            if mem.size == 1:
                p_hdb[mem] = 1.0
        group.approx_to_candidate = {}
        if n_hdb == 0 or clusterer.prediction_data_.cluster_tree.shape[0] == 0:
            # no cluster (or only allow_single_cluster's root): nothing to predict into
            return p_hdb
        approx, _ = hdbscan.approximate_predict(clusterer, coords)
        votes_by_label: dict[int, Counter] = defaultdict(Counter)
        for a, cand in zip(approx.tolist(), group.labels.tolist()):
            if a >= 0:
                votes_by_label[a][cand] += 1
        group.approx_to_candidate = {a: v.most_common(1)[0][0] for a, v in votes_by_label.items()}
        return p_hdb

    # -- predict ---------------------------------------------------------------------
    def predict(self, X: Sequence[str] | np.ndarray, groups: Sequence[Hashable] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Place specimens that arrive after fitting; returns (labels, probabilities).

        A specimen joins the candidate of its group with the smallest linkage
        distance (nearest member for single linkage, mean for average, farthest
        for complete) when that distance is within the fitted threshold — the
        rule the fit used — else gets -1 (a new singleton). The probability
        is the mean of the calibrated same-species probability and HDBSCAN's
        ``approximate_predict`` strength for that candidate.
        """
        import hdbscan

        self._check_fitted()
        n = len(X)
        keys = list(groups) if groups is not None else [None] * n
        labels = np.full(n, -1, dtype=np.int64)
        probs = np.zeros(n)
        fitted = {g.key: g for g in self.groups_}
        by_group: dict[Hashable, list[int]] = defaultdict(list)
        for i, g in enumerate(keys):
            by_group[g].append(i)
        for key, idx_list in by_group.items():
            group = fitted.get(key)
            if group is None:
                continue
            data = X[np.asarray(idx_list)] if isinstance(X, np.ndarray) else [X[i] for i in idx_list]
            d = _cross(data, group.data, self.config.metric)
            cands = np.unique(group.labels)
            mean_d = np.stack([_link(d[:, group.labels == c], self.linkage_) for c in cands], axis=1)
            best = mean_d.argmin(axis=1)
            best_d = mean_d[np.arange(len(idx_list)), best]
            strength = np.zeros(len(idx_list))
            if group.clusterer is not None and group.approx_to_candidate:
                coords = group.mds.transform(d) if group.mds is not None else (
                    np.asarray(data, dtype=np.float64)
                    / np.maximum(np.linalg.norm(np.asarray(data, dtype=np.float64), axis=1, keepdims=True), 1e-12))
                hl, hs = hdbscan.approximate_predict(group.clusterer, coords)
                for r, (h, s) in enumerate(zip(hl, hs)):
                    if h >= 0 and group.approx_to_candidate.get(int(h)) == int(cands[best[r]]):
                        strength[r] = float(s)
            p_dist = self.gap_.same_species_proba(best_d) if self.gap_ is not None else (best_d <= self.threshold_).astype(float)
            for r, i in enumerate(idx_list):
                if best_d[r] <= self.threshold_:
                    labels[i] = int(cands[best[r]])
                    probs[i] = 0.5 * (float(p_dist[r]) + strength[r]) if group.clusterer is not None else float(p_dist[r])
        return labels, probs

    def fit_predict(self, X: Sequence[str] | np.ndarray, groups: Sequence[Hashable] | None = None,
                    threshold: BarcodeGapThreshold | None = None) -> np.ndarray:
        return self.fit(X, groups, threshold).labels_

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise RuntimeError("CandidateSpeciesClusterer is not fitted; call fit() first")
