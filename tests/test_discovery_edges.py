"""Branches of discovery/ that no other test reached (found by the coverage run of the mutation pool,
``benchmarks/bench_mutation.py --area discovery --keep-coverage``): the caps that keep an MSA or a
pairwise spread affordable on a big cluster, a query whose search leaves nothing, the level setter,
the barcode-gap learner's specimen cap, a reloaded product-quantised index, session keys.

Each asserts what the branch does to the numbers a user sees, on tiny real inputs (real FAISS, real
pyfamsa, real edlib), so that the branch cannot be deleted or inverted unnoticed.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder
from biodiscover.discovery.proposals import _within, align_members
from biodiscover.discovery.reference import Reference
from biodiscover.storage.distance import pairwise_p_distance
from biodiscover.storage.errors import InputError
from biodiscover.storage.records import RANKS, Specimen
from fixtures.discovery import make_world

BASES = np.array(list("ACGT"))


def _seq(rng: np.random.Generator, n: int = 300) -> str:
    return "".join(rng.choice(BASES, n))


def _point_mutants(base: str, counts: list[int], seed: int = 0) -> list[str]:
    """``base`` with 0, c1, c2, ... substitutions at distinct random sites (exact p-distances to it)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in counts:
        s = list(base)
        for i in rng.choice(len(base), c, replace=False):
            s[i] = {"A": "C", "C": "G", "G": "T", "T": "A"}[s[i]]
        out.append("".join(s))
    return out


@pytest.fixture(scope="module")
def world() -> dict[str, list[Specimen]]:
    return make_world(seed=5)


@pytest.fixture(scope="module")
def model(world) -> DiscoveryModel:
    cfg = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15)
    return DiscoveryModel(cfg).fit(world["train"])


def test_a_big_cluster_is_aligned_from_evenly_spread_members() -> None:
    """Above ``max_msa`` members the MSA takes ``max_msa`` of them, first and last included, evenly
    spread; the consensus is then theirs alone."""
    base = _seq(np.random.default_rng(1))
    seqs = _point_mutants(base, [0, 5, 9, 14, 20, 27, 33], seed=2)
    ids = [f"m{i}" for i in range(len(seqs))]
    consensus, aligned = align_members(ids, seqs, max_msa=3)
    assert sorted(aligned) == ["m0", "m3", "m6"]  # linspace(0, 6, 3)
    assert {k: v.replace("-", "") for k, v in aligned.items()} == {"m0": seqs[0], "m3": seqs[3], "m6": seqs[6]}
    # at or under the cap, every member is aligned
    assert sorted(align_members(ids[:3], seqs[:3], max_msa=3)[1]) == ["m0", "m1", "m2"]
    assert len(consensus) == len(base)


def test_two_members_are_aligned_and_their_evidence_keeps_the_alignment() -> None:
    """A candidate of two specimens whose barcodes differ by an indel is aligned (both rows of one length, each
    its own barcode with gaps) and its evidence carries that alignment; identical barcodes need no MSA. (An
    exploration found the two-member case unpinned: ``len({...}) == 1`` -> ``== 2`` returned two unaligned
    barcodes, and ``len(alignment) > 1`` -> ``> 2`` dropped a pair's alignment from its evidence.)"""
    from biodiscover.discovery.proposals import compute_evidence

    base = _seq(np.random.default_rng(5))
    short = base[:100] + base[103:]  # a three-base deletion
    _, aligned = align_members(["a", "b"], [base, short])
    assert len(aligned["a"]) == len(aligned["b"]) == len(base)
    assert aligned["a"] == base and aligned["b"].replace("-", "") == short and aligned["b"].count("-") == 3
    assert align_members(["a", "b"], [base, base.lower()]) == (base, {"a": base, "b": base})
    ev = compute_evidence([Specimen(processid="a", dna_barcode=base), Specimen(processid="b", dna_barcode=short)])
    assert ev.alignment == aligned and ev.size == 2
    assert compute_evidence([Specimen(processid="a", dna_barcode=base)]).alignment == {}  # one member: nothing


def test_a_big_clusters_spread_comes_from_evenly_spread_members() -> None:
    """``_within`` measures at most ``max_members`` members (evenly spread) and keeps at most
    ``max_values`` of their pairwise distances; mean and max are of the members it measured."""
    base = _seq(np.random.default_rng(3))
    seqs = _point_mutants(base, [0, 3, 30, 6, 9], seed=4)  # the 30-substitution one sits at index 2
    full = pairwise_p_distance(seqs, max_aligned=1.0)  # every pair aligned: a within distance is exact (cb0fe6f)
    spread, sample = _within(seqs)
    assert spread.max == pytest.approx(full.max()) and len(sample) == 10
    capped, sample2 = _within(seqs, max_members=2)  # members 0 and 4 only: 9 substitutions apart
    assert capped.max == pytest.approx(full[0, 4]) and capped.mean == pytest.approx(full[0, 4])
    assert capped.max < 0.5 * spread.max and sample2 == (pytest.approx(full[0, 4]),)
    _, few = _within(seqs, max_values=3)
    assert len(few) == 3 and set(few) <= set(sample)
    assert _within(seqs[:1]) is None


def test_set_level_changes_what_triage_names_and_refuses_levels_outside_half_to_one(model, world) -> None:
    default = model.config.naming.level
    before = model.triage(world["test"][:20])
    try:
        for bad in (0.5, 0.2, 1.01):
            with pytest.raises(InputError, match=r"level must be in \(0.5, 1\]"):
                model.set_level(bad)
        assert model.config.naming.level == default  # a refused level changes nothing
        model.set_level(1.0)  # the closed end is a level
        assert model.config.naming.level == 1.0
        model.set_level(0.999)
        assert model.config.naming.level == 0.999
        strict = model.triage(world["test"][:20])
        depth = [-1 if r.deepest_rank is None else RANKS.index(r.deepest_rank) for r in before]
        depth1 = [-1 if r.deepest_rank is None else RANKS.index(r.deepest_rank) for r in strict]
        assert all(a <= b for a, b in zip(depth1, depth, strict=True)) and sum(depth1) < sum(depth)
        # the same calls as asking triage for that level directly
        assert [r.deepest_rank for r in strict] == [r.deepest_rank for r in model.triage(world["test"][:20], 0.999)]
    finally:
        model.set_level(default)
    assert [r.deepest_rank for r in model.triage(world["test"][:20])] == [r.deepest_rank for r in before]


def test_a_query_whose_search_leaves_nothing_has_empty_hits_of_its_informative_length(model, world) -> None:
    seq = world["test"][0].dna_barcode
    order = world["test"][0].order
    every_order = {lin[0] for lin in model.ref_lineages_}
    assert every_order == {order}  # make_world has one order: leaving it out leaves no key
    masked = "NNNN" + seq[:200] + "nn" + seq[200:]  # N is no information, in either case
    got = model._hits([seq, masked], exclude=[(0, order), (0, order)])
    assert len(got) == 2
    for h, informative in zip(got, (len(seq), len(seq))):
        assert len(h.positions) == 0 and len(h.identities) == 0 and h.top == -1
        assert h.query_length == informative
    kept = model._hits([seq])[0]
    assert len(kept.positions) > 0 and kept.query_length == len(seq)


def test_the_barcode_gap_sample_takes_distinct_keys_of_each_species_up_to_the_cap() -> None:
    """``gap_sample``: a key drawn twice would be a within-species pair at distance 0 that no two specimens make
    (seed 6263's engine.py:441, drawn with replacement, survived: the counts the log reports stay the same)."""
    from collections import Counter

    from biodiscover.discovery.engine import gap_sample

    lineages = [("O", "F", None, "G", f"G s{i // 5}") for i in range(20)] + [("O", "F", None, "G", None)] * 3
    picks = gap_sample(lineages, per_species=4, cap=100)
    assert picks == sorted(set(picks)) and len(picks) == 16
    assert Counter(lineages[j][-1] for j in picks) == {f"G s{k}": 4 for k in range(4)}
    assert all(lineages[j][-1] for j in picks)  # a key named to genus only has no species to learn from
    whole = gap_sample(lineages, per_species=5, cap=100)
    assert whole == list(range(20))  # every key of a species at most once, all of them where allowed
    capped = gap_sample(lineages, per_species=5, cap=7)
    assert len(capped) == len(set(capped)) == 7 and set(capped) <= set(whole)
    assert gap_sample(lineages[:5], per_species=4, cap=100) == []  # one species: no gap


def test_the_barcode_gap_is_learned_on_at_most_gap_max_specimens(world, caplog) -> None:
    cfg = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15, gap_per_species=3,
                       gap_max_specimens=7)
    with caplog.at_level(logging.INFO, logger="biodiscover.discovery.engine"):
        m = DiscoveryModel(cfg).fit(world["train"])
    said = [r.getMessage() for r in caplog.records if "barcode gap learned on" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("barcode gap learned on 7 reference specimens"), said
    assert m.barcode_gap_ is not None and 0.0 < m.barcode_gap_.threshold_ < 0.2
    roomy = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15, gap_per_species=3,
                         gap_max_specimens=10_000)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biodiscover.discovery.engine"):
        DiscoveryModel(roomy).fit(world["train"])
    n_species = len({s.species for s in world["train"]})
    said = [r.getMessage() for r in caplog.records if "barcode gap learned on" in r.getMessage()]
    assert said[0].startswith(f"barcode gap learned on {3 * n_species} reference specimens"), said
    # keys named to genus only are keys, but no species to learn a gap from (written after the seed-4242
    # sample, where `lin[-1] and lin[-2]` -> `lin[-2] and lin[-2]` survived; not re-scored)
    import dataclasses

    genus_only = [dataclasses.replace(s, processid=f"G-{s.processid}", species=None) for s in world["train"][:9]]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biodiscover.discovery.engine"):
        m = DiscoveryModel(roomy).fit(world["train"] + genus_only)
    assert len(m.reference_) == len(world["train"]) + 9
    said = [r.getMessage() for r in caplog.records if "barcode gap learned on" in r.getMessage()]
    assert said[0].startswith(f"barcode gap learned on {3 * n_species} reference specimens"), said


def test_two_reference_species_are_enough_for_a_barcode_gap_and_one_is_not(world, caplog) -> None:
    """The gap is learned from two species on (the smallest reference it can separate species in); with one
    species there is nothing to separate and clustering keeps its default cut, said in the log (an exploration
    of the engine found the boundary unpinned: ``len(by_species) < 2`` -> ``< 3`` survived). The other keys are
    named to genus only, so the reference and its naming model stay the same size."""
    import dataclasses

    cfg = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15)
    species = sorted({s.species for s in world["train"]})
    for kept in (species[:2], species[:1]):
        keys = [s if s.species in kept else dataclasses.replace(s, species=None) for s in world["train"]]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="biodiscover.discovery.engine"):
            m = DiscoveryModel(cfg).fit(keys)
        said = [r.getMessage() for r in caplog.records]
        if len(kept) == 2:
            assert m.barcode_gap_ is not None and set(m.barcode_gap_.curve_) and m.barcode_gap_.score_ > 0.5
            assert any(x.startswith("barcode gap learned on") for x in said)
        else:
            assert m.barcode_gap_ is None
            assert "fewer than 2 reference species: no barcode gap learned (clustering uses its default)" in said


def test_a_reloaded_index_knows_its_kind(tmp_path) -> None:
    """The kind is read back from the FAISS type (``_kind_of``): a product-quantised index stays one."""
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(300, 24)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    for kind in ("ivfpq", "ivfsq", "ivf", "hnsw", "flat"):
        index = ReferenceIndex(IndexConfig(kind=kind, ivf_nlist=4)).fit(keys)
        back = ReferenceIndex.from_bytes(index.to_bytes())
        assert back.kind_ == index.kind_ == kind
        assert back.ntotal_ == 300 and back.dim_ == 24
        assert back.search(keys[:5], 1)[1][:, 0].tolist() == index.search(keys[:5], 1)[1][:, 0].tolist()


def test_kmer_embed_reads_each_specimens_barcode() -> None:
    emb = KmerEmbedder(KmerConfig(ks=(3,)))
    specs = [Specimen(processid="a", dna_barcode="ACGTACGTAA"), Specimen(processid="b"),
             Specimen(processid="c", dna_barcode="TTTTGGGG")]
    got = emb.embed(specs)
    assert got.shape == (3, 64)
    assert np.array_equal(got, emb.embed_dna(["ACGTACGTAA", None, "TTTTGGGG"]))
    assert got[0].any() and not got[1].any() and got[2].any()


def test_session_keys_extend_the_reference_and_nothing_is_a_no_op(world) -> None:
    keys = world["train"]
    lins = [tuple(getattr(s, r) or None for r in RANKS) for s in keys]
    ref = Reference.build([s.processid for s in keys], [s.dna_barcode for s in keys], lins,
                          kmer=KmerConfig(ks=(5,)), index=IndexConfig(kind="flat"))
    n = len(ref)
    assert ref.add([], [], []) == 0 and len(ref) == n and ref.sketches_.shape[0] == n
    new = world["test_unseen"][:2]
    new_lins = [tuple(getattr(s, r) or None for r in RANKS) for s in new]
    assert ref.add([s.processid for s in new], [s.dna_barcode for s in new], new_lins) == 2
    assert len(ref) == n + 2 and ref.ids[n] == new[0].processid and ref.lineages[n + 1] == new_lins[1]
    assert ref.sequences[n] == new[0].dna_barcode
    assert ref.sketches_.shape[0] == ref.sketch_bits_.shape[0] == n + 2
    found = ref.candidates([new[0].dna_barcode], n_search=10, per_taxon=2, max_candidates=5)[0]
    assert int(found.positions[0]) == n and float(found.identities[0]) == pytest.approx(1.0)


def test_saving_into_an_existing_bundle_keeps_what_else_it_holds(model, world, tmp_path) -> None:
    """A bundle may hold more than the DNA engine (an image classifier, a user's tables): saving the
    engine into it again adds and replaces the engine's own parts only, unless asked to overwrite."""
    from biodiscover.storage.bundle import Bundle

    path = tmp_path / "bundle"
    model.save(path)
    Bundle.open(path).save_table("kept", {"note": "written by someone else"})
    model.save(path)
    again = Bundle.open(path)
    assert "kept" in again.names("tables") and again.load_table("kept") == {"note": "written by someone else"}
    back = DiscoveryModel.load(path)
    want = [(r.deepest_rank, r.deepest_label) for r in model.triage(world["test"][:10])]
    assert [(r.deepest_rank, r.deepest_label) for r in back.triage(world["test"][:10])] == want
    model.save(path, overwrite=True)
    assert "kept" not in Bundle.open(path).names("tables")


def test_session_references_name_their_species_and_skip_known_or_unusable_specimens(world) -> None:
    """``add_references`` (accepted candidates become keys for the rest of the session): a species that
    was absent is then named; keys already there, barcodes too short and unlabelled specimens are not
    added; the record's top similarity is the k-mer profile cosine to the best-identity key."""
    import dataclasses

    m = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15)).fit(world["train"])
    by_species: dict[str, list[Specimen]] = {}
    for s in world["test_unseen"]:
        by_species.setdefault(s.species, []).append(s)
    species, members = sorted(by_species.items())[0]
    first, rest = members[:3], members[3:]
    assert rest and all(r.deepest_rank != "species" for r in m.triage(rest))  # absent: not named to species
    n = len(m.reference_)
    short = dataclasses.replace(members[0], processid="short", dna_barcode=members[0].dna_barcode[:30])
    unlabelled = Specimen(processid="nolabel", dna_barcode=members[0].dna_barcode)
    known = world["train"][0]
    assert m.add_references(first + [short, unlabelled, known]) == 3
    assert len(m.reference_) == n + 3 and list(m.ref_ids_[n:]) == [s.processid for s in first]
    assert m.add_references(first) == 0 and len(m.reference_) == n + 3  # the same processids: nothing new
    assert len(m.ref_lengths_) == n + 3 and m.ref_lengths_[n] == len(first[0].dna_barcode)
    # a copy of a key's barcode under another processid (its own record is never its evidence)
    res = m.triage(rest + [dataclasses.replace(first[0], processid="copy")])
    assert all(r.deepest_rank == "species" and r.deepest_label == species for r in res[:-1]), res
    assert all(r.top_hit in {s.processid for s in first} for r in res)
    copy = res[-1]
    assert copy.top_hit == first[0].processid and copy.identity == pytest.approx(1.0)
    assert copy.top_similarity == pytest.approx(1.0, abs=1e-5)
    emb = m.reference_.embedder
    cosines = []
    for r, s in zip(res[:-1], rest, strict=True):
        top_seq = m.ref_seqs_[list(m.ref_ids_).index(r.top_hit)]
        cosines.append(float((emb.embed_dna([s.dna_barcode]) * emb.embed_dna([top_seq])).sum()))
        assert r.top_similarity == pytest.approx(cosines[-1], abs=1e-5)
    assert min(cosines) < 0.99  # not every one a copy of its key
    # a species added as one key and a fragment of it: a copy of the whole barcode meets both at 100 %, and the
    # overlap it keeps is what it shares with its best key, whichever of the two that is (seed 1701's
    # ``engine.py:475`` ``pos[0]`` -> ``pos[1]`` survived: the overlap was the runner-up's)
    from biodiscover.discovery.engine import informative_length
    from biodiscover.storage.distance import shared_identity

    other = next(s for sp, ms in sorted(by_species.items())[1:] for s in ms[:1])
    whole = other.dna_barcode
    frag = dataclasses.replace(other, processid="frag", dna_barcode=whole[:200])
    assert m.add_references([other, frag]) == 2
    (again,) = m.triage([dataclasses.replace(other, processid="whole")])
    assert again.top_hit in {other.processid, "frag"} and again.identity == pytest.approx(1.0)
    best = m.ref_seqs_[list(m.ref_ids_).index(again.top_hit)]
    assert again.overlap == shared_identity(whole, best)[1]
    assert {shared_identity(whole, x)[1] for x in (whole, whole[:200])} == {informative_length(whole), 200}


def test_evidence_parts_from_members_by_hand() -> None:
    """The evidence a reviewer reads, from members whose numbers are known: size statistics skip
    missing and non-finite values; geography gives ranges, centre and box of the members with both
    coordinates, countries by frequency; BINs name the dominant one, its share, and the other candidates
    that hold it (never this one); the parent taxon is where more than half the members are and none elsewhere
    (storage.records.placement, e33 review F6: a majority of the named ones placed #44 by 1 of 4); the shared
    lineage keeps
    only the ranks every labelled member agrees on, down to the parent."""
    from biodiscover.discovery.proposals import _bins, _determinations, _geography, _shared_lineage, _stats
    from biodiscover.storage.records import placement

    s = _stats([3.0, None, float("nan"), 1.0, 8.0, float("inf")])
    assert (s.n, s.median, s.min, s.max) == (3, 3.0, 1.0, 8.0)
    assert _stats([None, float("nan")]) is None
    members = [Specimen(processid="a", country="Peru", coord_lat=-10.0, coord_lon=-70.0, dna_bin="B1"),
               Specimen(processid="b", country="Chile", coord_lat=-30.0, coord_lon=-72.0, dna_bin="B1"),
               Specimen(processid="c", country="Peru", province_state="Cusco", coord_lat=-12.0, dna_bin="B2"),
               Specimen(processid="d", country="Peru", province_state="Cusco", dna_bin="B1"),
               Specimen(processid="e")]
    geo = _geography(members)
    assert geo.n_with_coordinates == 2 and list(geo.countries.items()) == [("Peru", 3), ("Chile", 1)]
    assert geo.provinces == {"Cusco": 2}
    assert geo.lat_range == (-30.0, -10.0) and geo.lon_range == (-72.0, -70.0)
    assert geo.centroid == (pytest.approx(-20.0), pytest.approx(-71.0))
    assert geo.bbox == (-30.0, -10.0, -72.0, -70.0)
    assert _geography(members[2:]).lat_range is None and _geography(members[2:]).n_with_coordinates == 0
    b = _bins(members, candidate=4, holders={"B1": {4, 7, 2}, "B2": {9}})
    assert b.dominant == "B1" and b.counts == {"B1": 3, "B2": 1} and b.n_with_bin == 4
    assert b.agreement == pytest.approx(0.75) and b.shared_with == (2, 7)
    assert _bins(members, candidate=None, holders=None).shared_with == ()
    none = _bins(members[4:], candidate=1, holders={"B1": {2}})
    assert none.dominant is None and none.agreement is None and none.n_with_bin == 0
    parents = [("genus", "G1"), ("genus", "G2"), None, ("genus", "G1"), ("family", "F")]
    assert placement(_determinations([0, 3, 2], parents, None)) == {"genus": "G1"}  # 2 of 3
    assert placement(_determinations([0, 1, 3], parents, None)) == {}  # a member of another genus contradicts it
    assert placement(_determinations([0, 2], parents, None)) == {}  # 1 of 2: no majority
    assert _determinations([2], parents, None) == [{}] and _determinations([0], None, None) == [{}]
    lineage = [Specimen(processid="x", order="O", family="F", genus="G1"),
               Specimen(processid="y", order="O", family="F2", genus="G1"),
               Specimen(processid="z", order="O", genus="G1")]
    assert _shared_lineage(lineage, ("genus", "G1")) == {"order": "O", "genus": "G1"}  # family disagrees
    assert _shared_lineage(lineage, ("family", "Fx")) == {"order": "O", "family": "Fx"}
    assert _shared_lineage(lineage, None) is None


def test_an_ivf_index_over_fewer_than_39_vectors_has_one_cell() -> None:
    """FAISS wants ~39 training vectors a cell: below that one cell, whatever ``ivf_nlist`` asks, and every
    key is still its own nearest hit (written after the seed-4242 sample, where ``or 1`` → ``or 2`` on this
    line survived; not re-scored)."""
    import faiss

    rng = np.random.default_rng(1)
    keys = rng.normal(size=(30, 16)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    for nlist in (None, 50):
        index = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=nlist, ivf_nprobe=8)).fit(keys)
        assert faiss.extract_index_ivf(index._fitted()).nlist == 1
        assert index.search(keys, 1)[1][:, 0].tolist() == list(range(30))
    assert faiss.extract_index_ivf(ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=50)).fit(
        np.tile(keys, (3, 1)))._fitted()).nlist == 2  # 90 vectors: two cells of 39


def _aligning_in_two_workers(world) -> tuple[Reference, list[str], list]:
    """A reference over the world's train keys that aligns in two forked workers, after one search of eight
    test barcodes (its pool started): the reference, the queries and their candidates."""
    keys = world["train"]
    lins = [tuple(getattr(s, r) or None for r in RANKS) for s in keys]
    ref = Reference.build([s.processid for s in keys], [s.dna_barcode for s in keys], lins,
                          kmer=KmerConfig(ks=(5,)), index=IndexConfig(kind="flat"))
    ref.align_workers, ref.parallel_min_pairs = 2, 1
    queries = [s.dna_barcode for s in world["test"][:8]]
    return ref, queries, ref.candidates(queries, n_search=10, per_taxon=2, max_candidates=5)


def _all_stopped(procs: list, within: float = 30.0) -> bool:
    """Whether every one of ``procs`` has ended, waiting up to ``within`` seconds."""
    import time

    deadline = time.monotonic() + within
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(p.is_alive() for p in procs)


def test_closing_a_reference_stops_its_alignment_workers(world) -> None:
    """``Reference.close`` ends the forked identity workers (else every triage of a long session leaves
    processes behind). The executor is held here while the reference closes it, as another part of a
    session may hold it: dropping the last reference to an executor also stops its workers, so without
    that hold a close that forgot to shut the pool down looked the same (seed 4242's survivor)."""
    ref, _, _ = _aligning_in_two_workers(world)
    held = ref._pool
    assert held is not None
    procs = list(held._processes.values())
    assert procs and all(p.is_alive() for p in procs)
    try:
        ref.close()
        assert ref._pool is None
        assert _all_stopped(procs)
    finally:
        held.shutdown(cancel_futures=True)


def test_asking_for_another_number_of_alignment_workers_stops_the_old_ones(world) -> None:
    """A reference whose worker count changes (``align_workers``) starts a new pool and shuts the old one down,
    held elsewhere or not: without it each change left its processes running (seed 4909's reference.py:807,
    the ``close`` before the new pool deleted, survived)."""
    ref, queries, first = _aligning_in_two_workers(world)
    held = ref._pool
    assert held is not None
    procs = list(held._processes.values())
    try:
        ref.align_workers = 3
        again = ref.candidates(queries, n_search=10, per_taxon=2, max_candidates=5)
        assert ref._pool is not None and ref._pool is not held
        assert [c.identities.tolist() for c in again] == [c.identities.tolist() for c in first]
        assert _all_stopped(procs)
    finally:
        held.shutdown(cancel_futures=True)
        ref.close()


def test_an_index_saved_into_a_new_folder_reads_back(tmp_path) -> None:
    """``ReferenceIndex.save`` creates its folder (written after the seed-4242 sample, where deleting the
    ``mkdir`` survived: every test saved into an existing folder; not re-scored)."""
    rng = np.random.default_rng(2)
    keys = rng.normal(size=(40, 8)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    index = ReferenceIndex(IndexConfig(kind="flat")).fit(keys)
    where = tmp_path / "new" / "deeper"
    index.save(where)
    back = ReferenceIndex.load(where)
    assert back.ntotal_ == 40 and back.search(keys, 1)[1][:, 0].tolist() == list(range(40))


def test_presence_vectors_are_unit_length_sketches() -> None:
    """What the index holds for re-ranked kinds: k-mer presence scaled to unit length, so an inner product
    is the sketch cosine (written after the seed-4242 sample, where scaling only the empty rows survived;
    not re-scored)."""
    from biodiscover.discovery.reference import presence

    emb = KmerEmbedder(KmerConfig(ks=(3,)))
    prof = emb.embed_dna(["ACGTACGTTTGACCA", "AAAA", None])
    v = presence(prof)
    assert np.allclose(np.linalg.norm(v[:2], axis=1), 1.0) and not v[2].any()
    assert np.array_equal(v[0] > 0, prof[0] > 0)
    assert float(v[1] @ v[1]) == pytest.approx(1.0) and float((v[0] > 0).sum()) == pytest.approx(1 / v[0].max() ** 2)


# -- the engine's candidate search against brute force, at its documented defaults ---------------------------
def _species_keys(rng: np.random.Generator, sizes: list[int], genus: str = "Gn") -> tuple[list, list, list]:
    """Keys of species ~15 % apart (8 % from one ancestor each), ``sizes[s]`` keys of species ``s`` ~2 % apart."""
    anc = rng.choice(BASES, 400)
    ids, seqs, lins = [], [], []
    for s, per in enumerate(sizes):
        sp = np.where(rng.random(400) < 0.08, rng.choice(BASES, 400), anc)
        for i in range(per):
            seqs.append("".join(np.where(rng.random(400) < 0.01, rng.choice(BASES, 400), sp)))
            ids.append(f"{genus}{s}-{i}")
            lins.append(("Ord", "Fam", None, genus, f"{genus} sp{s}"))
    return ids, seqs, lins


def _brute_candidates(ref: Reference, query: str, n_search: int, per_taxon: int, most: int
                      ) -> tuple[list[int], list[float]]:
    """Every key scored by sketch cosine (shared k-mers over the root of the product of the counts; ties to
    the lower position), the first ``n_search``, at most ``per_taxon`` a species up to ``most`` — a species'
    first slot to its key of highest containment (shared k-mers over the smaller count; ties: search order),
    its others to its other keys in search order, each where the search met the species — then aligned and
    ordered by identity (ties: by similarity)."""
    from biodiscover.storage.distance import identity

    q = set(ref.embedder.present(query).tolist())
    sims, contain = [], []
    for j in range(len(ref)):
        k = set(ref.embedder.present(ref.sequences[j]).tolist())
        sims.append(len(q & k) / np.sqrt(len(q) * len(k)))
        contain.append(len(q & k) / min(len(q), len(k)))
    ranked = sorted(range(len(ref)), key=lambda j: (-sims[j], j))[:n_search]
    of_species: dict[str, list[int]] = {}
    for j in ranked:
        of_species.setdefault(ref.lineages[j][-1], []).append(j)
    slots = {sp: sorted(js, key=lambda j: (-contain[j], js.index(j)))[:1] for sp, js in of_species.items()}
    for sp, js in of_species.items():
        slots[sp] += [j for j in js if j != slots[sp][0]]
    taken: dict[str, int] = {}
    cands = []
    for j in ranked:
        sp = ref.lineages[j][-1]
        if taken.get(sp, 0) < per_taxon:
            cands.append(slots[sp][taken.get(sp, 0)])
            taken[sp] = taken.get(sp, 0) + 1
        if len(cands) == most:
            break
    ids = {j: identity(query, ref.sequences[j]) for j in cands}
    cands.sort(key=lambda j: (-ids[j], -sims[j]))
    return cands, [ids[j] for j in cands]


def _engine_over(ids: list, seqs: list, lins: list) -> DiscoveryModel:
    m = DiscoveryModel()  # the default engine: its reference alone (no naming model is needed to search)
    m.reference_ = Reference.build(ids, seqs, lins, kmer=m.config.kmer, index=m.config.index)
    return m


def test_the_engines_candidates_are_300_keys_searched_two_a_species_up_to_60() -> None:
    """``_hits`` at the defaults (``n_search`` 300, ``per_taxon`` 2, ``max_candidates`` 60), against brute
    force: 300 keys of 10 species near the query and 10 unrelated keys, so the 301st key by similarity is the
    first unrelated one (left out); then 50 species of 2 keys, so the 60 cap binds. The queries are keys (or
    a part of one) of a species with two keys, the others ~15 % away: no other key could contend with them."""
    rng = np.random.default_rng(31)
    ids, seqs, lins = _species_keys(rng, [2, 34] + [33] * 8)
    ids += [f"far{i}" for i in range(10)]
    seqs += ["".join(rng.choice(BASES, 400)) for _ in range(10)]
    lins += [("Ord", "Fam", None, "Gfar", f"Gfar sp{i}") for i in range(10)]
    m = _engine_over(ids, seqs, lins)
    queries = [seqs[0], seqs[1][:300]]
    for q, hits in zip(queries, m._hits(queries), strict=True):
        want, idv = _brute_candidates(m.reference_, q, 300, 2, 60)
        assert hits.positions.tolist() == want and len(want) == 20
        assert not any(ids[j].startswith("far") for j in want)
        np.testing.assert_allclose(hits.identities, idv, atol=1e-6)
        assert hits.query_length == len(q) and idv[0] == pytest.approx(1.0)
    ids2, seqs2, lins2 = _species_keys(np.random.default_rng(32), [2] * 50)
    m2 = _engine_over(ids2, seqs2, lins2)
    (hits,) = m2._hits(seqs2[:1])
    want, idv = _brute_candidates(m2.reference_, seqs2[0], 300, 2, 60)
    assert len(want) == 60 and hits.positions.tolist() == want


def test_a_key_needs_50_informative_bases_and_a_label() -> None:
    from biodiscover.discovery.reference import KeyColumns

    m = DiscoveryModel()
    keys = KeyColumns()
    fifty = "ACGT" * 12 + "AC"
    assert m.add_key(keys, Specimen(processid="A", species="G s", dna_barcode=fifty))
    assert not m.add_key(keys, Specimen(processid="B", species="G s", dna_barcode=fifty[:-1] + "N"))
    assert not m.add_key(keys, Specimen(processid="C", dna_barcode=fifty + "ACGT"))  # no label at any rank
    assert m.add_key(keys, Specimen(processid="D", order="Ord", dna_barcode="NN" + fifty))
    assert len(keys) == 2 and keys.columns()[0][:] == ["A", "D"]


def test_the_default_barcode_gap_is_learned_on_8_keys_a_species(caplog) -> None:
    ids, seqs, lins = _species_keys(np.random.default_rng(33), [10, 10, 10])
    m = _engine_over(ids, seqs, lins)
    with caplog.at_level(logging.INFO, logger="biodiscover.discovery.engine"):
        gap = m._learn_gap(lambda msg: logging.getLogger("biodiscover.discovery.engine").info(msg))
    said = [r.getMessage() for r in caplog.records if "barcode gap learned on" in r.getMessage()]
    assert said and said[0].startswith("barcode gap learned on 24 reference specimens"), said
    assert gap is not None and gap.score_ == pytest.approx(1.0)


def test_the_engines_index_is_exact_to_20000_keys_then_256_d_cells_probed_64_deep() -> None:
    """The engine's documented index (``EngineConfig.index``; recall and naming per kind in
    benchmarks/RESULTS-scale.md) and its profile (square-rooted 6-mer counts)."""
    import dataclasses

    cfg = EngineConfig().index
    auto = ReferenceIndex(cfg)
    assert auto._choose_kind(20_000) == "flat" and auto._choose_kind(20_001) == "ivfsq"
    rng = np.random.default_rng(34)

    def unit(n: int, d: int) -> np.ndarray:
        x = rng.normal(size=(n, d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    projected = ReferenceIndex(dataclasses.replace(cfg, exact_max=10)).fit(unit(520, 300))
    assert projected.kind_ == "ivfsq" and projected.stored_dim == 256
    probed = ReferenceIndex(dataclasses.replace(cfg, kind="ivf", project_dim=None, ivf_nlist=66)).fit(unit(66 * 39, 8))
    assert faiss_nprobe(probed) == 64
    seq = "ACGTTT" * 20 + "GATTACA" * 10
    engine = DiscoveryModel().embedder
    assert engine.dim == 4096
    np.testing.assert_allclose(engine.profile(seq), KmerEmbedder(KmerConfig(ks=(6,), sqrt=True)).profile(seq))
    assert not np.allclose(engine.profile(seq), KmerEmbedder(KmerConfig(ks=(6,))).profile(seq))


def faiss_nprobe(index: ReferenceIndex) -> int:
    import faiss

    return int(faiss.extract_index_ivf(index._fitted()).nprobe)


def test_what_build_reference_prints_while_it_fits_states_what_was_built(world) -> None:
    """``fit``'s progress lines (what ``build-reference`` prints) each state a number of what was built: the keys
    indexed, the simulated queries and the extra labelled specimens searched, which ranks were learned, the
    forecast at the level, the barcode gap, the audit; every duration printed lies within the fit's own wall
    time. Seed 3299 left a deleted progress line "harmless" (``engine.py:273``) and seeds 4242/3299 a printed
    duration (``perf_counter() - t`` -> ``+ t``): what a user reads of the build was checked by no test."""
    import re
    import time

    from biodiscover.discovery.audit import describe_audit
    from biodiscover.discovery.naming import cutoff_words

    said: list[str] = []
    extra = world["val"]
    t = time.perf_counter()
    m = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15)).fit(
        world["train"], calibration=extra, progress=said.append)
    wall = time.perf_counter() - t
    assert 0 < m.fit_seconds_ <= wall

    def line(start: str) -> str:
        (found,) = [x for x in said if x.startswith(start)]
        return found

    n = len(world["train"])
    assert len(m.ref_ids_) == n
    assert line("indexing ") == f"indexing {n} reference keys"
    trained = re.fullmatch(rf"trained the flat index on {n} of {n} keys in ([\d.]+)s", line("trained the "))
    indexed = re.fullmatch(rf"indexed {n} reference keys \(flat, .+\) in ([\d.]+)s", line("indexed "))
    assert trained and indexed and float(trained[1]) <= float(indexed[1]) <= wall + 0.05
    simulated = re.fullmatch(r"simulating (\d+) queries from the reference \(leave-one-barcode-out, the keys give "
                             r"no country: no species is met from another part of its range, and leave-clade-out at "
                             r"every rank\)", line("simulating "))  # the generated world records no country
    assert simulated and int(simulated[1]) > n  # one per key left out, and the left-out taxa at every rank
    assert line("searching ") == f"searching {len(extra)} extra labelled specimens (calibration splits, outliers)"
    naming = re.fullmatch(r"naming model: (\d+) simulated queries; (.+)", line("naming model: "))
    assert naming and int(naming[1]) == int(simulated[1]) + len(extra)
    support = m.naming_.support_
    # a cut-off rank with the one identity that acts, as info and each reason give it (e33 review F2: "0.85")
    assert naming[2].split(", ") == [f"{r} learned" if support[r].get("learned")
                                     else f"{r} by {cutoff_words(r, support[r], m.config.naming.level)}"
                                     for r in RANKS]
    assert any(support[r].get("learned") for r in RANKS) and not all(support[r].get("learned") for r in RANKS)
    # bagging is optional (docs/DESIGN.md): a default model fits one pair of boosted trees per learned rank
    assert m.naming_.models_ and all(len(r.members_) == 1 for r in m.naming_.models_.values())
    trees = line("boosted trees per rank ")
    assert trees.endswith(": " + ", ".join(f"{r} {'/'.join(f'{v:g}' for v in t['chosen'])}"
                                           for r, t in m.naming_.tuning_.items()))
    level = m.config.naming.level
    at = m.naming_.expected_[f"{level}"]
    forecast = re.findall(r": ([\d.]+) \((\d+) queries of (\d+) taxa; 95 %: ([\d.]+)–([\d.]+)\)",
                          line(f"expected at level {level}: "))
    assert len(forecast) == 5
    for rate, queries, taxa, lo, hi in forecast:
        assert float(lo) <= float(rate) <= float(hi) and float(hi) - float(lo) > 0.01  # a few dozen taxa: not a point
        assert any(abs(v["rate"] - float(rate)) <= 5e-4 and (v["n"], v["taxa"]) == (int(queries), int(taxa))
                   for v in at.values() if "rate" in v)  # the by-order breakdowns are no figure of their own
    gap = m.barcode_gap_
    learned = re.fullmatch(r"barcode gap learned on (\d+) reference specimens: (\w+) linkage at ([\d.]+) p-distance "
                           r"\(AMI ([\d.]+); ([\d.]+)s\)", line("barcode gap learned on "))
    per_species: dict[str, int] = {}
    for lin in m.ref_lineages_:
        per_species[lin[-1]] = per_species.get(lin[-1], 0) + 1
    assert learned and int(learned[1]) == sum(min(8, c) for c in per_species.values())
    assert learned[2] == gap.linkage_ and float(learned[3]) == pytest.approx(gap.threshold_, abs=5e-5)
    assert float(learned[4]) == pytest.approx(gap.score_, abs=5e-4) and float(learned[5]) <= wall + 0.05
    audit = describe_audit(m.audit_summary_)
    assert said[-len(audit):] == audit and audit[0].endswith(
        f"every key of the {len(per_species)} species with 2 or more keys lies within 10 % of another key of its "
        "species")


def test_a_query_whose_best_key_is_the_references_first_keeps_its_overlap(model, world) -> None:
    """What a result keeps to be decided again (``overlap``: the informative bases shared with the best key) holds
    for the reference's first key as for any other (position 0 is a key, not "no key")."""
    from biodiscover.discovery.engine import informative_length

    first, other = model.ref_ids_[0], model.ref_ids_[5]
    by_id = {s.processid: s for s in world["train"]}
    results = model.triage([dataclasses.replace(by_id[pid], processid=f"Q{pid}") for pid in (first, other)])
    for r, pid in zip(results, (first, other), strict=True):
        assert r.top_hit == pid and r.identity == pytest.approx(1.0)
        assert r.overlap == informative_length(by_id[pid].dna_barcode) > 0
    # the informative bases of nothing are none (seed 2606's ``0`` -> ``1`` for a missing barcode survived)
    assert informative_length(None) == informative_length("") == 0 and informative_length("ACNNGTn") == 4


def test_saving_into_a_bundle_of_an_older_engine_drops_its_replaced_index(model, tmp_path) -> None:
    """A format-2 engine kept its FAISS index as the array ``discovery_index``; later formats keep it with the
    reference. Saved into such a bundle (an open one, as ``build-reference`` does with an image model), the
    engine leaves no stale index behind (seed 5651: deleting that ``bundle.remove`` survived; written after the
    sample, not re-scored)."""
    from biodiscover.discovery.engine import INDEX_ARRAY
    from biodiscover.storage.bundle import Bundle

    bundle = Bundle.create(tmp_path / "b", config={})
    bundle.save_array(INDEX_ARRAY, np.zeros(8, dtype=np.uint8))
    assert INDEX_ARRAY in bundle.names("arrays")
    model.save(bundle)
    assert INDEX_ARRAY not in Bundle.open(tmp_path / "b").names("arrays")
    again = DiscoveryModel.load(tmp_path / "b")
    assert list(again.ref_ids_) == list(model.ref_ids_)


def test_session_references_do_not_count_as_the_references_coverage_of_a_country(world) -> None:
    """A real tropical plate: one accepted one-specimen candidate from Indonesia (its member a session key on the
    next triage) silenced "collected where the reference holds no key: Indonesia 465" although the reference still
    held no Indonesian key of any other species. ``key_countries`` is the reference's coverage: the keys a session
    adds are the collection's own specimens and are not counted; the species they name still carry their country."""
    import dataclasses

    train = [dataclasses.replace(s, country="Canada") for s in world["train"]]
    m = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15)).fit(train)
    assert m.key_countries() == {"Canada"}
    member = dataclasses.replace(world["test_unseen"][0], country="Indonesia")
    assert m.add_references([member]) == 1
    assert m.key_countries() == {"Canada"}
    assert m.species_keys()[member.species] == (1, {"Indonesia": 1})



def test_a_reviewed_species_counts_once_in_its_taxa_sizes_whatever_its_members_number() -> None:
    """The size feature's count (``taxon_sizes``): the reference's own keys one each; the session's keys (members
    of candidates a reviewer accepted or assigned) once per distinct lineage, at every rank it names, however
    many members carry it. Why: one reviewed batch is one sampling event (the real-data case is in
    tests/test_discovery_real.py)."""
    from biodiscover.discovery.naming import taxon_sizes

    ref = [("O", "F", None, "G", "G a"), ("O", "F", None, "G", "G a"), ("O", "F", None, "G", "G b"),
           ("O", "F", None, "H", "H c")]
    new_sp = ("O", "F", None, "G", "G sp. BD-0001")
    known = ("O", "F", None, "H", "H c")
    sizes = taxon_sizes(ref + [new_sp] * 43 + [known] * 69, session=43 + 69)
    assert sizes[RANKS.index("genus")] == {"G": 4, "H": 2}
    assert sizes[RANKS.index("species")] == {"G a": 2, "G b": 1, "G sp. BD-0001": 1, "H c": 2}
    assert sizes[RANKS.index("family")] == {"F": 6} and sizes[RANKS.index("subfamily")] == {}
    # no session keys: every key counts (the reference the model was fitted on)
    assert taxon_sizes(ref + [new_sp] * 3)[RANKS.index("genus")] == {"G": 6, "H": 1}
    assert taxon_sizes(ref, session=0) == taxon_sizes(ref)


def test_a_specimen_is_never_its_own_evidence(world) -> None:
    """A specimen whose own record is a key (a member of a candidate a reviewer accepted, re-triaged; a collection
    that holds reference records) is searched without that key: the batch review's week-1 Norway specimens,
    re-triaged after review, were published as "COI barcode 100.0 % identical to reference CHEIK003-13" — the
    specimen itself. Its name then comes from the other keys, and the evidence names one of those."""
    m = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15)).fit(world["train"])
    by_species: dict[str, list[Specimen]] = {}
    for s in world["test_unseen"]:
        by_species.setdefault(s.species, []).append(s)
    species, members = max(sorted(by_species.items()), key=lambda kv: len(kv[1]))
    assert len(members) >= 4
    assert m.add_references(members) == len(members)
    keyed = members + world["train"][:5]  # session keys and reference keys, each triaged as itself
    for s, r in zip(keyed, m.triage(keyed), strict=True):
        assert r.top_hit != s.processid, s.processid
        assert all(entry[2] != s.processid for entry in r.near or ()), r.near
    # the same barcode under another processid is a copy, not the record: it still meets the key at 100 %
    (copy,) = m.triage([dataclasses.replace(members[0], processid="another-specimen")])
    assert copy.identity == pytest.approx(1.0)
    # the session's other members still name it: the reviewer's species, from its siblings
    named = m.triage(members)
    assert sum(r.deepest_rank == "species" and r.deepest_label == species for r in named) >= len(members) - 1


def test_a_barcode_two_species_share_is_named_with_the_tie_said(model, world, tmp_path) -> None:
    """e32 review R24: a specimen 100 % identical to keys of *Erebia ligea* and *E. euryale* was named *E. ligea*
    at P(right) 0.997, and nothing said the other species held the same barcode. The name stays where P(right)
    passes (on the dev test split 30 of 31 such ties were named right), and the reason says the tie: the other
    species, its key, the identity and the bases it was measured over. Unnamed, the reason is ``explain``'s."""
    from biodiscover.storage.distance import shared_identity

    model.save(tmp_path / "b")
    m = DiscoveryModel.load(tmp_path / "b")  # the module's model stays as it was
    key = world["train"][0]
    other = next(s for s in world["train"] if s.genus == key.genus and s.species != key.species)  # a congener
    twin = dataclasses.replace(other, processid="twin", dna_barcode=key.dna_barcode)  # its label, key's barcode
    assert m.add_references([twin]) == 1
    query = dataclasses.replace(key, processid="query")
    (named,) = m.triage([query], level=0.6, collection=False)
    assert named.deepest_rank == "species" and named.identity == pytest.approx(1.0), named
    rival, rival_key = (other.species, "twin") if named.deepest_label == key.species else \
        (key.species, key.processid)
    bases = shared_identity(query.dna_barcode, key.dna_barcode)[1]
    assert named.reason == (f"tie: {rival}'s key {rival_key} is as identical (100.0 % over {bases} bases): the "
                            f"reference holds this barcode under {named.deepest_label} and {rival}; "
                            f"{named.deepest_label} is named: its key shares more k-mers with this barcode; the "
                            f"barcode itself cannot tell the two apart"), named.reason
    (unnamed,) = m.triage([query], level=1.0, collection=False)
    assert unnamed.deepest_rank != "species" and "tie:" not in (unnamed.reason or ""), unnamed.reason
    (alone,) = model.triage([query], level=0.6, collection=False)  # without the twin: no tie, nothing said
    assert alone.deepest_label == key.species and "tie:" not in (alone.reason or ""), alone.reason
