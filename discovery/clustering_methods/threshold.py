"""``threshold``: candidate species = an agglomerative cut at the learned species threshold.

Why a method of its own: it is what taxonomists already trust (BINs and vsearch
OTUs are threshold clusters) and it is the fixed partition the default method
(``threshold_hdbscan``) starts from; without HDBSCAN's opinion it is quicker and
its membership probability is the reference-calibrated P(same species) alone.
Candidates of different parent groups within the threshold are joined
(``ClusteringConfig.merge_across_groups``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Sequence

import numpy as np

from biodiscover.discovery.clustering import (Distances, SpeciesClusterer, merge_across_groups,
                                              same_species_probability, threshold_cut)


class Clusterer(SpeciesClusterer):
    """Fitted: ``labels_``, ``probabilities_`` (1.0 for singletons), ``candidate_group_``, ``threshold_``,
    ``linkage_``; no outlier scores (0) and no second opinion (agreement 1.0)."""

    def fit(self, distances: Distances, groups: Sequence[Hashable] | None = None) -> "Clusterer":
        keys = self._check_input(distances, groups)
        self._resolve_cut()
        by_group: dict[Hashable, list[int]] = defaultdict(list)
        for i, g in enumerate(keys):
            by_group[g].append(i)
        n = len(keys)
        labels = np.full(n, -1, dtype=np.int64)
        probabilities = np.ones(n, dtype=np.float64)
        candidate_group: dict[int, Hashable] = {}
        next_id = 0
        for key, idx in by_group.items():
            dist = distances.subset(idx).pairwise() if len(idx) > 1 else np.zeros((1, 1))
            cut = threshold_cut(dist, self.threshold_, self.linkage_)
            labels[idx] = cut + next_id
            probabilities[idx] = same_species_probability(dist, cut, self.linkage_, self.gap)
            candidate_group.update({int(c) + next_id: key for c in np.unique(cut)})
            next_id += int(cut.max()) + 1
        if len(by_group) > 1 and self.config.merge_across_groups:
            mapping = merge_across_groups(distances, labels, candidate_group, self.threshold_,
                                          self.config.merge_representatives)
            if mapping is not None:
                labels = mapping[labels]
                candidate_group = {}  # re-derived below: the group holding most members
        self.labels_, self.probabilities_ = labels, probabilities
        if candidate_group:
            self.candidate_group_ = candidate_group
        self._finish(keys)
        return self
