"""Genetic distance profile of a collection, used to calibrate and check the generator.

Why here: the generator's claims (median within-species ≈ 1.2%, within-genus ≈ 8%,
within-family ≈ 14%) must be measured the same way on real and synthetic data.
Both go through :func:`distance_profile`: barcodes cleaned (upper case, first
660 nt, N runs stripped), unique barcodes per group, distance =
:func:`biodiscover.storage.distance.divergence` (1 − identity: the shorter of each
pair aligned inside the longer, N matches anything, differences per informative
base of the shorter). Real barcodes differ in start and end, so an ungapped
prefix comparison would overstate distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from biodiscover.storage.distance import divergence
from biodiscover.storage.records import MAX_NUCLEOTIDES


def clean(barcode: str) -> str:
    """Upper case, first 660 nt, leading/trailing N runs stripped."""
    return str(barcode).upper()[:MAX_NUCLEOTIDES].strip("N")


@dataclass(frozen=True)
class RankDistances:
    """Per rank: median over groups of the mean pairwise distance, median over all pairs,
    quantiles of group means, and how many groups/pairs were measured."""

    rank: str
    median_of_group_means: float
    median_of_pairs: float
    q10: float
    q90: float
    groups: int
    pairs: int


#: The rank whose labels must differ for a pair to count as "between" at a rank.
CHILD_RANK = {"genus": "species", "family": "genus", "order": "family"}


def distance_profile(df: pd.DataFrame, ranks: tuple[str, ...] = ("species", "genus", "family"), *,
                     between_children: bool = True, min_unique: int = 2, max_per_group: int = 12,
                     max_groups: int = 250, min_length: int = 200, seed: int = 0) -> dict[str, RankDistances]:
    """Within-group distances at each rank of ``df`` (needs ``dna_barcode`` and the rank columns).

    With ``between_children`` (default) a genus-level pair must come from two
    different species and a family-level pair from two different genera, the
    distances a barcode-gap analysis compares; otherwise every pair of unique
    barcodes in the group counts (BIOSCAN-5M's "P.D." statistic, which mixes in
    same-species pairs). Groups need ≥ ``min_unique`` unique cleaned barcodes ≥
    ``min_length`` nt; at most ``max_per_group`` barcodes per group and
    ``max_groups`` groups are sampled.
    """
    rng = np.random.default_rng(seed)
    bc = df["dna_barcode"].fillna("").astype(str).map(clean)
    ok = bc.str.len() >= min_length
    out: dict[str, RankDistances] = {}
    for rank in ranks:
        child = CHILD_RANK.get(rank) if between_children else None
        sub = pd.DataFrame({"g": df.loc[ok, rank], "b": bc[ok],
                            "c": df.loc[ok, child] if child else 0})
        sub = sub.dropna(subset=["g", "c"]).drop_duplicates(subset=["g", "b"])
        if child:
            n_child = sub.groupby("g")["c"].nunique()
            sub = sub[sub["g"].isin(n_child.index[n_child >= 2])]
        groups = [g for g, n in sub.groupby("g")["b"].size().items() if n >= min_unique]
        if len(groups) > max_groups:
            groups = list(rng.choice(np.array(groups, dtype=object), max_groups, replace=False))
        by = sub.groupby("g")
        means: list[float] = []
        pairs: list[float] = []
        for g in groups:
            grp = by.get_group(g)
            if child:
                # One barcode per child taxon first, so big species do not crowd out the others.
                grp = grp.sample(frac=1.0, random_state=int(rng.integers(2**31))).drop_duplicates("c")
            if len(grp) > max_per_group:
                grp = grp.sample(max_per_group, random_state=int(rng.integers(2**31)))
            seqs = grp["b"].to_numpy()
            labs = grp["c"].to_numpy()
            d = [divergence(seqs[i], seqs[j]) for i in range(len(seqs)) for j in range(i + 1, len(seqs))
                 if not child or labs[i] != labs[j]]
            d = [x for x in d if x == x]
            if d:
                means.append(float(np.mean(d)))
                pairs.extend(d)
        if means:
            out[rank] = RankDistances(rank, float(np.median(means)), float(np.median(pairs)),
                                      float(np.quantile(means, 0.1)), float(np.quantile(means, 0.9)),
                                      len(means), len(pairs))
    return out
