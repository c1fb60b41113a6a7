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


def test_a_species_with_keys_from_another_country_is_also_met_from_elsewhere() -> None:
    """``sim_present_elsewhere``: a present query of a species with keys from another country is searched a
    second time without its own country's keys of that species (nor its barcode's copies anywhere), in the
    same species group; a species from one country, or keys without a country, get the one query only."""
    species = ["G a"] * 5 + ["G b"] * 4 + ["G c"] * 3 + ["G d"] * 2 + [None] * 2 + ["G e"] * 2
    lineages = [("O", "F", None, "G", sp) for sp in species]
    countries = ["Canada", "Canada", "Canada", "Peru", "Peru"] + ["Canada"] * 4 + [None] * 3 + ["Canada", "Peru"] * 2 \
        + [None, "Canada"]  # G e: a key without a country is not "from another country", and meets nothing
    seqs = [f"ACGT{i:04d}" for i in range(len(lineages))]
    seqs[3] = seqs[1]  # a Peruvian copy of a Canadian barcode
    seqs[13] = seqs[12]  # G d's only Peruvian key is a copy of its only Canadian one: left out with it, so no twin
    queries, _ = plan_simulation(lineages, seqs, NamingConfig(), countries)
    by_key: dict[int, list] = defaultdict(list)
    for q in queries:
        if q.position >= 0 and not isinstance(q.exclude, tuple) and (q.scenario == "present" or not q.elsewhere):
            by_key[q.position].append(q)  # (a left-out species met without its relatives: the next test)
    # G a's five keys twice; every other key once (14-15 are named to genus only)
    assert {j: len(qs) for j, qs in by_key.items()} == {j: 2 if j < 5 else 1 for j in range(len(lineages))}
    plain, elsewhere = by_key[1]
    assert plain.exclude.tolist() == [1, 3]  # its barcode's copies
    assert elsewhere.exclude.tolist() == [0, 1, 2, 3]  # Canada's keys of its species and its copy in Peru
    assert by_key[3][1].exclude.tolist() == [1, 3, 4]  # Peru's keys and the Canadian copy
    assert elsewhere.group == plain.group == "present:G a"
    assert elsewhere.scenario == "present" and elsewhere.present[-1]  # Peru's keys still name it
    for cfg, where in ((NamingConfig(sim_present_elsewhere=False), countries), (NamingConfig(), None)):
        queries, _ = plan_simulation(lineages, seqs, cfg, where)
        assert sorted(q.position for q in queries if not isinstance(q.exclude, tuple)) == list(range(len(lineages)))


def test_a_left_out_species_is_also_met_without_its_relatives_from_its_own_country() -> None:
    """The absent side of "met elsewhere": a species left out whole (``absent:species``) is searched a second
    time with its genus's keys from its own country left out too, in the same group, where the genus keeps keys
    from another country; a query without a country, or a genus with nothing left elsewhere, gets no twin."""
    species = ["G a"] * 2 + ["G b"] * 2 + ["G c"] * 2 + ["H d"] * 2 + ["H e"] * 2
    genus = [sp.split()[0] for sp in species]
    lineages = [("O", "F", None, g, sp) for g, sp in zip(genus, species)]
    countries = ["Canada", "Peru", "Canada", "Canada", "Peru", "Peru", "Canada", "Canada", "Canada", None]
    seqs = [f"ACGT{i:04d}" for i in range(len(lineages))]
    queries, _ = plan_simulation(lineages, seqs, NamingConfig(sim_per_taxon=2), countries)
    left = [q for q in queries if q.scenario == "absent:species"]
    twins = {q.position: q for q in left if q.elsewhere}
    plain = {q.position: q for q in left if not q.elsewhere}
    # G a's Canadian key: G a and G b's Canadian keys out, G c (Peru) names the genus still
    assert twins[0].exclude.tolist() == [0, 1, 2, 3] and twins[0].group == plain[0].group == "absent:species:G a"
    assert twins[0].present == (True, True, False, True, False)  # (no subfamily label)
    # G a's Peruvian key: G c's Peruvian keys out, G b's Canadian keys remain
    assert twins[1].exclude.tolist() == [0, 1, 4, 5]
    # H: every other key of the genus is Canadian or has no country, so nothing is left elsewhere
    assert not {6, 7, 8, 9} & set(twins)
    assert all(not q.elsewhere for q in queries if q.scenario.startswith("absent:") and q.scenario != "absent:species")
    no_rank = plan_simulation(lineages, seqs, NamingConfig(sim_per_taxon=2, sim_absent_elsewhere_ranks=()),
                              countries)[0]
    assert not any(q.elsewhere for q in no_rank if q.scenario != "present")  # present twins still
    assert any(q.elsewhere for q in no_rank if q.scenario == "present")
    for cfg, where in ((NamingConfig(sim_per_taxon=2, sim_present_elsewhere=False), countries),
                       (NamingConfig(sim_per_taxon=2), None)):
        assert not any(q.elsewhere for q in plan_simulation(lineages, seqs, cfg, where)[0])


def test_a_present_budget_smaller_than_the_reference_is_spread_over_all_of_it() -> None:
    """More species than the present budget: the species that get a leave-one-barcode-out query are drawn at
    random, not the first in the reference's order. A reference written order by order would otherwise simulate
    known species of its first order only (seed 4909's naming.py:524, the shuffle deleted, survived)."""
    lineages = [(f"O{o}", f"F{o}", None, f"G{o}", f"G{o} s{s}") for o in range(3) for s in range(20) for _ in range(2)]
    seqs = [f"ACGT{i:04d}" for i in range(len(lineages))]
    queries, _ = plan_simulation(lineages, seqs, NamingConfig(sim_max_present=12, sim_present_per_species=1))
    present = [q for q in queries if q.scenario == "present"]
    assert len(present) == 12 and len({q.truth[-1] for q in present}) == 12
    assert {q.truth[0] for q in present} == {"O0", "O1", "O2"}


def test_a_key_named_to_order_only_is_searched_as_a_present_query_too() -> None:
    """Leave-one-barcode-out groups keys by their deepest label, the order included: a reference whose keys of
    one order carry no family simulates that order's present queries as well (seed 4909's naming.py:521,
    ``deepest >= 0`` -> ``>= 1``, dropped them and survived)."""
    lineages = [("O1", None, None, None, None)] * 3 + [("O2", "F", None, "G", f"G s{i // 2}") for i in range(4)]
    seqs = [f"ACGT{i:04d}" for i in range(len(lineages))]
    queries, _ = plan_simulation(lineages, seqs, NamingConfig())
    present = sorted(q.position for q in queries if q.scenario == "present")
    assert present == list(range(7))
    assert {q.group for q in queries if q.scenario == "present" and q.position < 3} == {"present:O1"}


def test_a_leave_out_budget_smaller_than_the_eligible_taxa_is_spread_over_the_reference() -> None:
    """More taxa that can be left out at a rank than its budget: the taxa left out are drawn at random, not the
    first in the reference's order. A reference written order by order would otherwise teach the species model
    absent species of its first order only (seed 6263's naming.py:570, the shuffle deleted, survived; the present
    side's twin is the test above)."""
    lineages = [(f"O{o}", f"F{o}", None, f"G{o}", f"G{o} s{s}") for o in range(3) for s in range(20) for _ in range(2)]
    seqs = [f"ACGT{i:04d}" for i in range(len(lineages))]
    queries, support = plan_simulation(lineages, seqs, NamingConfig(sim_queries_per_rank=12, sim_per_taxon=1))
    assert support["species"]["leave_out_taxa"] == 60
    left = [q for q in queries if q.scenario == "absent:species"]
    assert len(left) == 12 and len({q.truth[-1] for q in left}) == 12
    assert {q.truth[0] for q in left} == {"O0", "O1", "O2"}
