"""``threshold_hdbscan`` (the default): an agglomerative cut reconciled with HDBSCAN.

Why two clusterers, reconciled:

* **Agglomerative clustering** on the precomputed distances — p-distance of
  barcodes or cosine distance of embeddings — cut at the distance threshold
  *learned from the reference's barcode gap* (``BarcodeGapThreshold``: the cut
  that best recovers the labelled reference species). This is what taxonomists
  already trust (BINs, vsearch OTUs are threshold clusters) and it fixes the
  partition.
* **HDBSCAN** on the same geometry adds a density view a fixed cut cannot: which
  members it holds in one cluster with the others (``agreement_``: a chain the cut
  made through sparse links shows as a split or as noise) and GLOSH outlier scores
  per member. DNA distances are turned into coordinates by classical MDS, because
  hdbscan needs a feature space, not a precomputed matrix.

Reconciliation: the candidates are the agglomerative clusters (singletons kept
as singleton candidates). Each member's membership probability is the
reference-calibrated probability that it is the same species as its candidate's
other members, at the distance the linkage sees (``same_species_probability``);
a singleton's is 1. ``agreement_`` records per candidate the share of members
HDBSCAN puts in the candidate's dominant cluster, and ``outlier_scores_`` each
member's GLOSH score, so a reviewer sees where the two methods part.

Why HDBSCAN's per-point figures are not averaged into the membership (they were
until the twenty-seventh session): neither is a membership on barcodes. Its soft
membership vectors (``all_points_membership_vectors``) ignore
``cluster_selection_epsilon`` (hdbscan issue #446) and come out 0 or NaN for
points at distance 0 from others (#568), and identical haplotypes are the rule in
COI: a real US plate's candidate of 69 *Renia* barcodes ≤ 0.9 % apart, HDBSCAN
agreeing on all 69, got soft membership 0 for 66 of them, so the stored membership
read 0.49 for specimens identical to the consensus (in members.csv, the FASTA
headers and the report). Its hard strengths (``probabilities_``) are 0 for points
an epsilon-merged cluster took in. ``approximate_predict`` ignores the epsilon too.
The calibrated probability is the one figure in the unit a taxonomist reads: how
likely this barcode belongs with the others, learned from the reference's own
species.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from biodiscover.discovery.clustering import (ClassicalMDS, Distances, SpeciesClusterer, link_distance,
                                              merge_across_groups, same_species_probability, threshold_cut)
from biodiscover.storage.errors import NotFittedError

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """Fitted state of one parent-taxon group."""

    key: Hashable
    index: np.ndarray  # positions in the fitted data
    distances: Distances
    labels: np.ndarray  # global candidate ids
    clusterer: object | None = None  # hdbscan.HDBSCAN
    mds: ClassicalMDS | None = None
    candidate_to_hdb: dict[int, int] | None = None  # candidate -> its dominant HDBSCAN cluster


class CandidateSpeciesClusterer(SpeciesClusterer):
    """Group novel specimens into candidate species, within each parent taxon.

    ``CandidateSpeciesClusterer(config, gap).fit(distances, groups=None)``:
    ``distances`` of barcodes or embeddings (``discovery.clustering.Distances``);
    ``groups`` the deepest confident parent taxon of each specimen (None = one
    group). The threshold comes from ``config.distance_threshold``, else from
    ``gap`` (a fitted ``BarcodeGapThreshold``, also used for probabilities), else
    ``DEFAULT_THRESHOLD`` / ``DEFAULT_LINKAGE`` with a warning.

    Fitted attributes: ``labels_`` (candidate id per specimen, 0..K-1, every
    specimen in exactly one candidate; singletons kept), ``probabilities_``
    (membership probability), ``outlier_scores_`` (GLOSH, 0 for groups too small
    for HDBSCAN), ``agglomerative_labels_``, ``hdbscan_labels_`` (-1 = noise,
    else 0..H-1 over all groups: each group's ids offset past the previous group's),
    ``candidate_group_`` (candidate id → group), ``agreement_`` (candidate id → share of members HDBSCAN puts in the
    candidate's dominant HDBSCAN cluster), ``threshold_``, ``linkage_``,
    ``n_candidates_``, ``merged_across_groups_`` (candidate id → the parent
    groups it was joined from; see :meth:`_merge_across_groups`). With
    merging, ``agglomerative_labels_`` stays the within-group cut and
    ``candidate_group_`` names the group holding most members.
    """

    def prepare(self) -> None:
        """Import hdbscan (with scikit-learn, SciPy's stats and pandas under it: ~1.5 s of CPU) ahead of fit."""
        super().prepare()
        if not self.partition_only:
            import hdbscan  # noqa: F401

    # -- fit -------------------------------------------------------------------------
    def fit(self, distances: Distances, groups: Sequence[Hashable] | None = None) -> "CandidateSpeciesClusterer":
        keys = self._check_input(distances, groups)
        n = len(keys)
        self._resolve_cut()
        by_group: dict[Hashable, list[int]] = defaultdict(list)
        for i, g in enumerate(keys):
            by_group[g].append(i)
        self.labels_ = np.full(n, -1, dtype=np.int64)
        self.agglomerative_labels_ = np.full(n, -1, dtype=np.int64)
        self.hdbscan_labels_ = np.full(n, -1, dtype=np.int64)
        self.probabilities_ = np.ones(n, dtype=np.float64)
        self.outlier_scores_ = np.zeros(n, dtype=np.float64)
        self.candidate_group_ = {}
        self.agreement_ = {}
        self.groups_: list[_Group] = []
        next_id, hdb_offset = 0, 0
        for key, idx_list in by_group.items():
            idx = np.asarray(idx_list)
            next_id, hdb_offset = self._fit_group(key, idx, distances.subset(idx_list), next_id, hdb_offset)
        self.n_candidates_ = next_id
        self.merged_across_groups_: dict[int, list[Hashable]] = {}
        if len(by_group) > 1 and self.config.merge_across_groups:
            self._merge_across_groups(distances)
        return self

    def _merge_across_groups(self, distances: Distances) -> None:
        """Join candidates of different parent groups within the threshold
        (:func:`~biodiscover.discovery.clustering.merge_across_groups`) and carry the join
        into the per-group state ``predict`` uses."""
        mapping = merge_across_groups(distances, self.labels_, self.candidate_group_, self.threshold_,
                                      self.config.merge_representatives)
        if mapping is None:
            return
        new_count = int(mapping.max()) + 1
        sizes = np.bincount(self.labels_, minlength=self.n_candidates_)
        old_group, old_agree = dict(self.candidate_group_), dict(self.agreement_)
        self.labels_ = mapping[self.labels_]
        for g in self.groups_:
            g.labels = mapping[g.labels]
            if g.candidate_to_hdb:
                g.candidate_to_hdb = {int(mapping[c]): h for c, h in g.candidate_to_hdb.items()}
        self.candidate_group_, self.agreement_ = {}, {}
        for k in range(new_count):
            olds = np.nonzero(mapping == k)[0]
            counts: Counter[Hashable] = Counter()
            for o in olds:
                counts[old_group[int(o)]] += int(sizes[o])
            self.candidate_group_[k] = counts.most_common(1)[0][0]
            w = sizes[olds]
            self.agreement_[k] = float(np.average([old_agree.get(int(o), 1.0) for o in olds], weights=w))
            if olds.size > 1:
                self.merged_across_groups_[k] = list(counts)
        log.info("merged %d candidates across parent groups into %d", self.n_candidates_, new_count)
        self.n_candidates_ = new_count

    def _fit_group(self, key: Hashable, idx: np.ndarray, distances: Distances, next_id: int,
                   hdb_offset: int) -> tuple[int, int]:
        m = len(idx)
        dist = distances.pairwise() if m > 1 else np.zeros((1, 1))
        agg = threshold_cut(dist, self.threshold_, self.linkage_)
        glob = agg + next_id
        self.agglomerative_labels_[idx] = glob
        self.labels_[idx] = glob
        for c in np.unique(glob):
            self.candidate_group_[int(c)] = key
        group = _Group(key, idx, distances, glob)
        # the membership: the calibrated P(same species as the other members) at the linkage's distance (1 for a
        # singleton, and with no learned gap); HDBSCAN, where the group is big enough for it, adds its view as
        # agreement and outlier scores (module docstring: why not its per-point strengths)
        self.probabilities_[idx] = np.where(np.bincount(agg)[agg] > 1,
                                            same_species_probability(dist, agg, self.linkage_, self.gap), 1.0)
        if m > self.config.min_cluster_size and not self.partition_only:
            self._fit_hdbscan(group, dist, agg, hdb_offset)
            hdb_offset = int(self.hdbscan_labels_.max()) + 1
        else:
            for c in np.unique(glob):
                self.agreement_[int(c)] = 1.0
        self.groups_.append(group)
        return next_id + int(agg.max()) + 1, hdb_offset

    def _fit_hdbscan(self, group: _Group, dist: np.ndarray, agg: np.ndarray, hdb_offset: int) -> None:
        """HDBSCAN on the group: its labels (``hdbscan_labels_``), GLOSH outlier scores, and per candidate the
        share of members in its dominant HDBSCAN cluster (``agreement_``; 0 when HDBSCAN calls every member of a
        candidate of two or more noise, 1 for a singleton)."""
        import hdbscan

        m = dist.shape[0]
        points = group.distances.coordinates()
        if points is None:
            group.mds = ClassicalMDS(min(self.config.mds_dims, m - 1))
            coords = group.mds.fit_transform(dist)
        else:
            coords = points
        clusterer = hdbscan.HDBSCAN(
            min_cluster_size=self.config.min_cluster_size, min_samples=self.config.min_samples,
            allow_single_cluster=True,
            cluster_selection_epsilon=float(self.threshold_) if points is None else 0.0,
        ).fit(coords)
        group.clusterer = clusterer
        hl = clusterer.labels_.astype(np.int64)
        self.hdbscan_labels_[group.index] = np.where(hl >= 0, hl + hdb_offset, -1)
        self.outlier_scores_[group.index] = np.nan_to_num(clusterer.outlier_scores_, nan=0.0)
        group.candidate_to_hdb = {}
        for c in np.unique(agg):
            mem = np.nonzero(agg == c)[0]
            cand = int(group.labels[mem[0]])
            votes = Counter(int(v) for v in hl[mem] if v >= 0)
            if not votes:
                self.agreement_[cand] = 1.0 if mem.size == 1 else 0.0
                continue
            dominant, count = votes.most_common(1)[0]
            self.agreement_[cand] = count / mem.size
            group.candidate_to_hdb[cand] = dominant

    # -- predict ---------------------------------------------------------------------
    def predict(self, distances: Distances, groups: Sequence[Hashable] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Place specimens that arrive after fitting; returns (labels, probabilities).

        A specimen joins the candidate of its group with the smallest linkage
        distance (nearest member for single linkage, mean for average, farthest
        for complete) when that distance is within the fitted threshold — the
        rule the fit used — else gets -1 (a new singleton, probability 0). The
        probability is the fit's: the calibrated P(same species) at that
        distance (1 within the threshold when no gap was learned).
        """
        if not self.is_fitted:
            raise NotFittedError("CandidateSpeciesClusterer is not fitted; call fit() first")
        n = len(distances)
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
            d = distances.subset(idx_list).cross(group.distances)
            cands = np.unique(group.labels)
            mean_d = np.stack([link_distance(d[:, group.labels == c], self.linkage_) for c in cands], axis=1)
            best = mean_d.argmin(axis=1)
            best_d = mean_d[np.arange(len(idx_list)), best]
            p_dist = (self.gap.same_species_proba(best_d) if self.gap is not None
                      else (best_d <= self.threshold_).astype(float))
            for r, i in enumerate(idx_list):
                if best_d[r] <= self.threshold_:
                    labels[i] = int(cands[best[r]])
                    probs[i] = float(p_dist[r])
        return labels, probs


#: the method ``ClusteringConfig(method="threshold_hdbscan")`` builds
Clusterer = CandidateSpeciesClusterer
