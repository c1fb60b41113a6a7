"""The leave-clade-out simulation's choice of queries (``naming.plan_simulation``): a left-out taxon is
represented by different species of it before a second key of one species, so the simulated absent
queries span the taxon's diversity rather than its most crowded species."""

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
