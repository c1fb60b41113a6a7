"""The leave-clade-out simulation's choice of queries (``naming.plan_simulation``): a left-out taxon is
represented by different species of it before a second key of one species, so the simulated absent
queries span the taxon's diversity rather than its most crowded species; leave-one-barcode-out searches
distinct keys of each species."""

from __future__ import annotations

from collections import defaultdict

from biodiscover.discovery.naming import NamingConfig, plan_simulation
from biodiscover.storage.records import RANKS


def test_absent_genus_queries_are_drawn_from_different_species() -> None:
    # one order and family, 4 genera x 3 species x 4 keys; 12 genus queries: 3 per genus
    lineages = [("O", "F", None, f"G{g}", f"G{g} s{s}") for g in range(4) for s in range(3) for _ in range(4)]
    seqs = [f"ACGT{i:04d}" for i in range(len(lineages))]
    queries, support = plan_simulation(lineages, seqs, NamingConfig(sim_queries_per_rank=12, sim_per_taxon=3))
    assert support["genus"]["learned"] and support["genus"]["leave_out_taxa"] == 4
    species_of: dict[str, list[str]] = defaultdict(list)
    for q in queries:
        if q.scenario == "absent:genus":
            species_of[q.truth[RANKS.index("genus")]].append(q.truth[-1])
    assert sorted(species_of) == ["G0", "G1", "G2", "G3"]
    for genus, species in species_of.items():
        assert len(species) == 3 and len(set(species)) == 3, (genus, species)


def test_present_queries_are_distinct_keys_of_each_species() -> None:
    """Leave-one-barcode-out draws a taxon's keys without replacement: while the budget allows (3,000 present
    queries over 12 species: 250 a species) every key is searched once, and at two a species (a budget of
    24) two different keys. Seed 6607's naming.py:481 ``replace=False`` -> True survived: a key drawn twice
    is the same example twice and another key of its species is never simulated."""
    lineages = [("O", "F", None, f"G{g}", f"G{g} s{s}") for g in range(4) for s in range(3) for _ in range(4)]
    seqs = [f"ACGT{i:04d}" for i in range(len(lineages))]
    queries, _ = plan_simulation(lineages, seqs, NamingConfig())
    present = sorted(q.position for q in queries if q.scenario == "present")
    assert present == list(range(len(lineages)))
    queries, _ = plan_simulation(lineages, seqs, NamingConfig(sim_max_present=24))
    by_species: dict[str, list[int]] = defaultdict(list)
    for q in queries:
        if q.scenario == "present":
            by_species[q.truth[-1]].append(q.position)
    assert len(by_species) == 12
    for species, keys in by_species.items():
        assert len(keys) == 2 and len(set(keys)) == 2, (species, keys)
        assert all(lineages[j][-1] == species for j in keys)
