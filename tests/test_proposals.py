"""Proposals and their evidence on synthetic specimens whose truth is known."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from biodiscover.discovery.clustering import BarcodeGapThreshold
from biodiscover.discovery.proposals import build_proposals, consensus_barcode, discover_candidates, nearest_known
from biodiscover.storage.distance import cross_p_distance
from biodiscover.storage.records import Specimen
from fixtures.discovery import BASES, mutate




@pytest.fixture(scope="module")
def world() -> dict:
    """2 genera; per genus 3 known species (reference) and 3 novel species (collection)."""
    rng = np.random.default_rng(42)
    reference, novel, templates = [], [], {}
    for g in range(2):
        genus = f"Genus{g}"
        anc = rng.choice(BASES, 500)
        for s in range(6):
            sp = mutate(rng, anc, 0.12)
            name = f"{genus} sp{s}"
            templates[name] = "".join(sp)
            target = reference if s < 3 else novel
            for k in range(6):
                seq = "".join(mutate(rng, sp, 0.006))
                target.append(Specimen(
                    processid=f"{'R' if s < 3 else 'N'}{g}{s}{k}", order="Diptera", family="Fam", genus=genus,
                    species=name, dna_barcode=seq,
                    # species 3 of genus 0 spans two BINs; others have one
                    dna_bin=f"BOLD:{g}{s}{'b' if (g, s, k % 2) == (0, 3, 1) else 'a'}",
                    country="Canada" if k < 4 else "Costa Rica", coord_lat=45.0 + k, coord_lon=-75.0 - k,
                    image_measurement_value=1000.0 + 10 * k, area_fraction=0.2, scale_factor=1.0,
                    image_path=Path(f"images/{g}{s}{k}.jpg"),
                ))
    gap = BarcodeGapThreshold().fit([r.dna_barcode for r in reference], [r.species for r in reference],
                                    groups=[r.genus for r in reference])
    parents = [("genus", s.genus) for s in novel]
    clusterer, proposals = discover_candidates(novel, parents=parents, threshold=gap, reference=reference,
                                               novelty=[0.9] * len(novel))
    return {"reference": reference, "novel": novel, "templates": templates, "gap": gap,
            "clusterer": clusterer, "proposals": proposals}


def _fresh(world: dict) -> tuple:
    """The world's candidates and proposals computed again inside the calling test: what the module's fixture
    computed once is, for a mutation tool that attributes each line run to the test running it, the first
    test's alone, so a test reading the fixture's proposals would never be run against a mutant of the code
    that made them (bench_mutation.py selects the tests that ran a mutated line)."""
    return discover_candidates(world["novel"], parents=[("genus", s.genus) for s in world["novel"]],
                               threshold=world["gap"], reference=world["reference"],
                               novelty=[0.9] * len(world["novel"]))


def test_one_proposal_per_novel_species(world: dict) -> None:
    proposals = world["proposals"]
    by_pid = {s.processid: s for s in world["novel"]}
    assert len(proposals) == 6
    for p in proposals:
        species = {by_pid[m.processid].species for m in p.members}
        assert len(species) == 1 and p.size == 6
        assert p.parent_rank == "genus" and p.parent_name == next(iter(species)).split()[0]
        assert p.parent_lineage == {"order": "Diptera", "family": "Fam", "genus": p.parent_name}
        assert p.novelty == pytest.approx(0.9)
        assert all(0.0 <= m.probability <= 1.0 for m in p.members)


def test_consensus_recovers_the_species_template(world: dict) -> None:
    by_pid = {s.processid: s for s in world["novel"]}
    for p in _fresh(world)[1]:
        species = by_pid[p.members[0].processid].species
        cons = p.evidence.consensus_barcode
        # each read carries ~0.45% errors; the majority of six removes nearly all of them
        assert cross_p_distance([cons], [world["templates"][species]])[0, 0] <= 0.002
        assert p.evidence.consensus_length == len(cons)


def test_distances_and_nearest_known(world: dict) -> None:
    for p in _fresh(world)[1]:
        ev = p.evidence
        assert ev.within_distance.mean < 0.02
        assert ev.between_distance.distance > world["gap"].threshold_
        # nearest known: a reference species of the same genus, clearly below species identity
        assert p.nearest_species.startswith(p.parent_name)
        assert 0.70 < p.nearest_identity < 0.95
        assert ev.nearest_known.genus == p.parent_name


def test_bin_geography_size_images(world: dict) -> None:
    by_pid = {s.processid: s for s in world["novel"]}
    for p in _fresh(world)[1]:
        ev = p.evidence
        species = by_pid[p.members[0].processid].species
        if species == "Genus0 sp3":
            assert ev.bin.agreement == pytest.approx(0.5) and len(ev.bin.counts) == 2
        else:
            assert ev.bin.agreement == 1.0 and ev.bin.shared_with == ()
        assert ev.geography.countries == {"Canada": 4, "Costa Rica": 2}
        assert ev.geography.lat_range == (45.0, 50.0)
        assert ev.size_summary.image_measurement_value.median == pytest.approx(1025.0)
        assert ev.size_summary.image_measurement_value.n == 6
        imgs = ev.representative_images
        assert len(imgs) == 3
        prob = {m.processid: m.probability for m in p.members}
        ranked = sorted(prob.values(), reverse=True)[:3]
        got = [prob[i.processid] for i in imgs]
        assert got == pytest.approx(ranked)
        assert all(i.path == str(by_pid[i.processid].image_path) for i in imgs)
        assert ev.geography.bbox == (45.0, 50.0, -80.0, -75.0)
        assert len(ev.within_distances) == 15  # 6 members -> 15 pairs
        assert max(ev.within_distances) == pytest.approx(ev.within_distance.max)
        assert set(ev.alignment) == {m.processid for m in p.members}
        assert ev.nearest_known_distances[0] == pytest.approx(1 - p.nearest_identity)


def test_candidates_whose_members_carry_one_bin_name_each_other(world: dict) -> None:
    """Two new species whose specimens BOLD put in one BIN stay two candidates (their barcodes are 12 % apart)
    and each one's evidence names the other as holding its BIN: the split a reviewer must weigh."""
    shared = {"Genus1 sp3", "Genus1 sp4"}
    novel = [dataclasses.replace(s, dna_bin="BOLD:SHARED") if s.species in shared else s for s in world["novel"]]
    _, proposals = discover_candidates(novel, parents=[("genus", s.genus) for s in novel], threshold=world["gap"])
    by_pid = {s.processid: s.species for s in novel}
    of_species = {by_pid[p.members[0].processid]: p for p in proposals}
    assert len(of_species) == 6
    for species, p in of_species.items():
        bins = p.evidence.bin
        if species in shared:
            (other,) = shared - {species}
            assert bins.dominant == "BOLD:SHARED" and bins.shared_with == (of_species[other].evidence.candidate,)
        else:
            assert bins.shared_with == ()


def test_json_and_database_contract(world: dict) -> None:
    p = _fresh(world)[1][0]
    text = json.dumps(p.to_dict())
    assert json.loads(text)["evidence"]["size"] == 6
    db = pytest.importorskip("biodiscover.storage.db.proposals")
    row = db.ProposalIn.coerce(p)
    assert row.parent_name == p.parent_name and row.nearest_identity == p.nearest_identity
    assert len(row.member_rows()) == 6
    tui = pytest.importorskip("biodiscover.tui.evidence")
    within, nearest = tui.distances(p.evidence)
    assert len(within) == 15 and nearest[0] == pytest.approx(1 - p.nearest_identity)
    assert tui.consensus(p.evidence) == p.evidence.consensus_barcode


def test_singleton_candidate_and_consensus_of_one(world: dict) -> None:
    rng = np.random.default_rng(8)
    lone = Specimen(processid="LONE", dna_barcode="".join(rng.choice(BASES, 450)), genus="Genus1")
    novel = world["novel"][:6] + [lone]
    _, props = discover_candidates(novel, threshold=world["gap"])
    assert [p.size for p in props] == [6, 1]
    single = props[1]
    assert single.members[0].processid == "LONE" and single.members[0].probability == 1.0
    assert single.evidence.consensus_barcode == lone.dna_barcode
    assert single.evidence.within_distance is None
    assert single.parent_name is None and single.nearest_species is None
    assert consensus_barcode([]) == ""


def test_bad_input(world: dict) -> None:
    with pytest.raises(ValueError, match="no barcode to cluster: X1"):
        discover_candidates([Specimen(processid="X1")])
    # the message names at most five of them, and says when there are more
    with pytest.raises(ValueError, match=r"^5 specimen\(s\) have no barcode to cluster: X0, X1, X2, X3, X4$"):
        discover_candidates([Specimen(processid=f"X{i}") for i in range(5)])
    with pytest.raises(ValueError, match=r"^6 specimen\(s\) have no barcode to cluster: X0, X1, X2, X3, X4 …$"):
        discover_candidates([Specimen(processid=f"X{i}") for i in range(6)] + world["novel"][:1])
    with pytest.raises(ValueError, match="fitted on 36 specimens, got 2"):
        build_proposals(world["novel"][:2], world["clusterer"])
    assert nearest_known(["ACGT"], []) == [None]


def test_nearest_known_is_the_best_alignment_among_the_kmer_shortlist() -> None:
    """The k-mer cosine only shortlists (``top`` hits); the alignment decides. A reference barcode with its
    differences in one block shares more 8-mers with the query than one with fewer differences spread out,
    so the k-mer ranking puts it first; the nearest known species is still the one with fewer differences."""
    rng = np.random.default_rng(21)
    query = rng.choice(BASES, 500)

    def changed(at: np.ndarray) -> np.ndarray:  # another base at each of these positions
        out = query.copy()
        out[at] = [rng.choice([b for b in BASES if b != query[i]]) for i in at]
        return out

    spread, block = changed(np.arange(8, 500, 17)), changed(np.arange(200, 260))  # 29 apart, 60 in a row
    refs = [Specimen(processid="SPREAD", genus="Ga", species="Ga spread", dna_barcode="".join(spread)),
            Specimen(processid="BLOCK", genus="Gb", species="Gb block", dna_barcode="".join(block)),
            Specimen(processid="EMPTY", genus="Gc", species="Gc none")]  # no barcode: never a candidate
    q = "".join(query)
    d_spread, d_block = cross_p_distance([q], ["".join(spread), "".join(block)], max_aligned=0.3)[0].tolist()
    assert 0.05 < d_spread < d_block - 0.01  # aligned, the spread differences are fewer
    (best,) = nearest_known([q], refs)
    assert (best.species, best.genus, best.processid) == ("Ga spread", "Ga", "SPREAD")
    assert best.identity == pytest.approx(1 - d_spread)
    assert best.top_distances == pytest.approx((d_spread, d_block))  # both aligned, nearest first
    (kmer_first,) = nearest_known([q], refs, top=1)  # a shortlist of one: the k-mer ranking's first
    assert kmer_first.processid == "BLOCK" and kmer_first.top_distances == pytest.approx((d_block,))
    assert nearest_known([q, q.lower()], refs[:1])[1].identity == pytest.approx(1 - d_spread)  # any case
    assert nearest_known([], refs) == [] and nearest_known([q], refs[2:]) == [None]


def test_nearest_known_of_every_proposal_is_the_closest_reference_barcode(world: dict) -> None:
    """Brute force: each proposal's nearest known species is the reference barcode at the smallest
    p-distance from its consensus among all 36 keys, and the distances shown are those of the 20 keys the
    k-mer shortlist aligned, nearest first."""
    ref = world["reference"]
    for p in _fresh(world)[1]:
        d = cross_p_distance([p.evidence.consensus_barcode], [r.dna_barcode for r in ref], max_aligned=0.3)[0]
        closest = {(ref[j].processid, ref[j].species) for j in np.flatnonzero(d == d.min())}  # ties: any of them
        near = p.evidence.nearest_known
        assert (near.processid, near.species) in closest
        assert near.identity == pytest.approx(1 - d.min()) and p.nearest_identity == pytest.approx(1 - d.min())
        assert len(near.top_distances) == 20 and list(near.top_distances) == sorted(near.top_distances)
        assert all(np.isclose(x, d, atol=1e-6).any() for x in near.top_distances)


def test_proposals_come_largest_first_each_beside_the_nearest_candidate_of_its_parent_group(world: dict) -> None:
    """Brute force over the proposals: ordered by size (largest first), then candidate id; each one's
    ``between_distance`` is to the candidate of the same parent group whose consensus is nearest (never to
    itself nor to another group's); a proposal's candidate id is its members' clusterer label."""
    clusterer, props = _fresh(world)
    assert [(-p.size, p.evidence.candidate) for p in props] == sorted((-p.size, p.evidence.candidate) for p in props)
    assert sorted(p.evidence.candidate for p in props) == list(range(len(props)))
    for p in props:
        same = [q for q in props if q is not p and q.parent_name == p.parent_name]
        assert len(same) == 2
        d = cross_p_distance([p.evidence.consensus_barcode], [q.evidence.consensus_barcode for q in same])[0]
        near = p.evidence.between_distance
        assert near.distance == pytest.approx(float(d.min()), abs=1e-6)
        assert near.nearest_candidate in {same[j].evidence.candidate for j in np.flatnonzero(d == d.min())}
        assert p.evidence.candidate == clusterer.labels_[
            [s.processid for s in world["novel"]].index(p.members[0].processid)]


def test_a_consensus_keeps_every_column_a_minority_of_reads_has_a_gap_in() -> None:
    """Majority rule over the MSA's columns: a column is dropped only when gaps are at least half of it (an
    insertion in one read of two is dropped, a substitution is not: ``N`` never beats a base, ties go to the
    first base in A, C, G, T order)."""
    rng = np.random.default_rng(23)
    base = "".join(rng.choice(BASES, 120))
    other = base[:60] + ("A" if base[60] != "A" else "C") + base[61:]
    cons = consensus_barcode([base, other])
    assert len(cons) == 120 and cons[:60] == base[:60] and cons[61:] == base[61:]
    assert cons[60] == min(base[60], other[60])  # one vote each: the first in A, C, G, T order
    inserted = base[:30] + "T" + base[30:]
    assert consensus_barcode([base, inserted, base]) == base  # the insertion is one read's of three
    assert consensus_barcode([base, base[:50] + "N" + base[51:]]) == base


def test_proposals_built_from_a_fitted_clusterer_carry_their_evidence_unless_told_not_to(world: dict) -> None:
    """``build_proposals`` on a fitted clusterer, nothing else said about evidence: the same proposals, evidence
    and all, as ``discover_candidates`` made; ``evidence=False`` the same candidates with none (the hunt after
    seed 2027, seed 31337: its default ``evidence=True`` -> ``False`` survived, as only the engine's explicit
    flag was tested)."""
    clusterer, proposals = _fresh(world)
    kw = {"parents": [("genus", s.genus) for s in world["novel"]], "reference": world["reference"],
          "novelty": [0.9] * len(world["novel"])}
    again = build_proposals(world["novel"], clusterer, **kw)
    assert [p.to_dict() for p in again] == [p.to_dict() for p in proposals]
    assert all(p.evidence.consensus_barcode for p in again)
    bare = build_proposals(world["novel"], clusterer, evidence=False, **kw)
    assert [[m.processid for m in p.members] for p in bare] == [[m.processid for m in p.members] for p in proposals]
    assert not any(p.evidence.consensus_barcode for p in bare)
