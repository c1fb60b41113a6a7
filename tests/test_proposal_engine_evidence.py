"""From triage results to finished proposals (discovery.proposals): which parent a novel specimen is grouped
under, the parent lineage and nearest known species a proposal takes from its members' engine results, and
the evidence a reviewer's split or merge recomputes.

Engine results are written out by hand (``TriageResult`` is a plain record), so each rule is checked on a case
whose answer is known; the clustering and alignment underneath are the real ones.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from biodiscover.discovery.engine import TriageResult
from biodiscover.discovery.proposals import (candidate_species, compute_evidence, novel_parent, recompute_evidence,
                                             with_engine_evidence)
from biodiscover.storage.evidence import CandidateProposal, Evidence, MemberHit, NearestKnown
from biodiscover.storage.records import RANKS, Specimen
from fixtures.discovery import BASES, mutate


def _result(pid: str, labels: list[str | None], deepest: str | None, identity: float = 0.9, *,
            novel: bool = True, modality: str = "dna", top_hit: str | None = None,
            reason: str | None = None) -> TriageResult:
    lab = dict(zip(RANKS, labels))
    return TriageResult(pid, modality, lab, {r: 0.9 for r in RANKS}, identity, deepest,
                        lab.get(deepest) if deepest else None, 0.95 if novel else 0.05, novel, top_hit, 0.8,
                        reason=reason)


LINEAGE = ["Ord", "Fam", "Sub", "Gen", "Gen near"]


def test_novel_parent_is_the_deepest_confident_rank_above_species() -> None:
    assert novel_parent(_result("a", LINEAGE, "species")) == ("genus", "Gen")
    assert novel_parent(_result("a", LINEAGE, "genus")) == ("genus", "Gen")
    assert novel_parent(_result("a", LINEAGE, "subfamily")) == ("subfamily", "Sub")
    # labels below the deepest confident rank are not trusted
    assert novel_parent(_result("a", LINEAGE, "family")) == ("family", "Fam")
    assert novel_parent(_result("a", LINEAGE, "order")) == ("order", "Ord")
    # a blank subfamily is skipped, not the end of the walk
    assert novel_parent(_result("a", ["Ord", "Fam", None, "Gen", "Gen near"], "species")) == ("genus", "Gen")
    assert novel_parent(_result("a", ["Ord", "Fam", None, None, None], "genus")) == ("family", "Fam")
    assert novel_parent(_result("a", LINEAGE, None)) is None
    assert novel_parent(_result("a", [None] * 5, "order")) is None


def _proposal(evidence: Evidence | None = None, **kw: Any) -> CandidateProposal:
    return CandidateProposal(members=("m1", "m2", "m3"), evidence=evidence or Evidence(size=3), **kw)


def test_parent_lineage_comes_from_the_engine_down_to_the_parent_rank_only() -> None:
    # every member's engine call agrees down to species, but the proposal's parent is the genus:
    # the lineage stops there (a candidate species is not placed inside a known species)
    results = [_result(f"m{i}", LINEAGE, "genus", 0.9 + i / 100) for i in (1, 2, 3)]
    out = with_engine_evidence(_proposal(parent_rank="genus", parent_name="Gen"), results)
    assert out.parent_lineage == {"order": "Ord", "family": "Fam", "subfamily": "Sub", "genus": "Gen"}
    # a rank where the members' calls disagree is left out; the parent's own name always stands
    mixed = [_result("m1", LINEAGE, "genus"), _result("m2", ["Ord", "Fam2", "Sub", "Gen", None], "genus")]
    out = with_engine_evidence(_proposal(parent_rank="genus", parent_name="Gen"), mixed)
    assert out.parent_lineage == {"order": "Ord", "subfamily": "Sub", "genus": "Gen"}
    out = with_engine_evidence(_proposal(parent_rank="family", parent_name="FamX"), results)
    assert out.parent_lineage == {"order": "Ord", "family": "FamX"}
    # what the proposal already knew wins over the engine's calls
    out = with_engine_evidence(_proposal(parent_rank="genus", parent_name="Gen",
                                         parent_lineage={"order": "Known", "genus": "Gen"}), results)
    assert out.parent_lineage == {"order": "Known", "family": "Fam", "subfamily": "Sub", "genus": "Gen"}
    # no parent rank: no lineage to fill
    assert with_engine_evidence(_proposal(), results).parent_lineage is None


def test_nearest_known_species_is_the_best_member_hit() -> None:
    results = [_result("m1", ["Ord", "Fam", None, "Gen", "Gen a"], "genus", 0.91, top_hit="K1"),
               _result("m2", ["Ord", "Fam", None, "Gen", "Gen b"], "genus", 0.95, top_hit="K2",
                       reason="P(right) 0.40 below the level"),
               _result("m3", ["Ord", "Fam", None, "Gen", "Gen a"], "genus", 0.89, top_hit="K3")]
    seen: list[str] = []

    def barcode(pid: str) -> str:
        seen.append(pid)
        return "ACGT" * 10

    out = with_engine_evidence(_proposal(parent_rank="genus", parent_name="Gen"), results,
                               reference_barcode=barcode, reference_image=lambda pid: f"img/{pid}.jpg")
    assert out.nearest_species == "Gen b" and out.nearest_identity == pytest.approx(0.95)
    near = out.evidence.nearest_known
    assert near is not None
    assert (near.species, near.genus, near.processid, near.identity) == ("Gen b", "Gen", "K2", pytest.approx(0.95))
    assert near.top_distances == pytest.approx((0.05, 0.09, 0.11))  # every member's, ascending
    assert out.evidence.nearest_known_distances == near.top_distances
    assert near.not_named_because == "P(right) 0.40 below the level"
    assert near.barcode == "ACGT" * 10 and near.image == "img/K2.jpg"
    assert set(seen) == {"K1", "K2", "K3"}  # every hit key's barcode, for a later split or merge
    assert out.evidence.hit_barcodes == {k: "ACGT" * 10 for k in ("K1", "K2", "K3")}
    assert out.evidence.member_hits == {
        "m1": MemberHit("Gen a", "Gen", "K1", pytest.approx(0.91)),
        "m2": MemberHit("Gen b", "Gen", "K2", pytest.approx(0.95)),
        "m3": MemberHit("Gen a", "Gen", "K3", pytest.approx(0.89))}


def test_a_short_read_does_not_set_the_candidates_identity_where_a_full_length_member_was_read() -> None:
    """A real Australian plate's *Spodoptera* #2: 96.9 % to *S. mauritia* from one member read over 257 bases, its
    best full-length member 95.4 %: the queue, header, barcode gap and ⚑ all read the short one. Each member's
    overlap is kept; the candidate's identity (nearest species, the nearest species list, the identity to an
    assigned species, and a split's recomputed nearest species) is the full-length members' best, a short
    read's only where no member was read at full length."""
    near = [["Spo mauritia", "Spo", "K1", 0.969]]
    results = [dataclasses.replace(_result("m1", ["Ord", "Fam", None, "Spo", None], "genus", 0.969, top_hit="K1"),
                                   overlap=257, near=near),
               dataclasses.replace(_result("m2", ["Ord", "Fam", None, "Spo", None], "genus", 0.954, top_hit="K2"),
                                   overlap=640, near=[["Spo mauritia", "Spo", "K2", 0.954]]),
               dataclasses.replace(_result("m3", ["Ord", "Fam", None, "Spo", None], "genus", 0.951, top_hit="K2"),
                                   overlap=655, near=[["Spo mauritia", "Spo", "K2", 0.951]])]
    lineage = {"K1": ("Ord", "Fam", None, "Spo", "Spo mauritia"), "K2": ("Ord", "Fam", None, "Spo", "Spo mauritia")}
    out = with_engine_evidence(_proposal(parent_rank="genus", parent_name="Spo"), results,
                               reference_lineage=lineage.get)
    ev = out.evidence
    assert out.nearest_identity == pytest.approx(0.954) and ev.nearest_known.processid == "K2"
    assert ev.near_species[0].identity == pytest.approx(0.954)
    assert ev.near_species[0].members["m1"] == pytest.approx(0.969)  # every member's kept, for a split
    assert ev.member_hits["m1"].overlap == 257 and ev.short_reads == {"m1"}
    assert ev.identity_to("Spo mauritia") == pytest.approx(0.954)
    assert Evidence.from_dict(ev.to_dict()).member_hits["m1"].overlap == 257  # stored and read back
    # the short read alone (split off): its own identity is all there is
    seqs = {m: "ACGT" * 150 for m in ("m1", "m2", "m3")}
    alone = recompute_evidence([Specimen(processid="m1", dna_barcode=seqs["m1"])], None, [ev])
    assert alone.nearest_known.identity == pytest.approx(0.969) and alone.near_species[0].identity == \
        pytest.approx(0.969)
    kept = recompute_evidence([Specimen(processid=m, dna_barcode=seqs[m]) for m in ("m1", "m3")], None, [ev])
    assert kept.nearest_known.identity == pytest.approx(0.951) and kept.near_species[0].identity == \
        pytest.approx(0.951)


def test_the_nearest_known_species_is_the_best_keys_own_not_the_members_labels() -> None:
    # labels a photograph's call changed below the DNA's named rank (multimodal.combine_results): the species
    # shown beside the key's barcode and identity is the key's own, looked up by its processid
    lineages = {"K1": ("Ord", "Fam", None, "Gen", "Gen a"), "K2": ("Ord", "Fam", None, "Other", "Other b")}
    results = [_result("m1", ["Ord", "Fam", None, "Gen", "Gen photo"], "genus", 0.91, top_hit="K1"),
               _result("m2", ["Ord", "Fam", None, "Gen", "Gen photo"], "genus", 0.95, top_hit="K2"),
               _result("m3", ["Ord", "Fam", None, "Gen", "Gen c"], "genus", 0.89, top_hit="K9")]
    out = with_engine_evidence(_proposal(parent_rank="genus", parent_name="Gen"), results,
                               reference_lineage=lineages.get)
    assert (out.nearest_species, out.nearest_identity) == ("Other b", pytest.approx(0.95))
    near = out.evidence.nearest_known
    assert near is not None and (near.species, near.genus, near.processid) == ("Other b", "Other", "K2")
    assert out.evidence.member_hits == {
        "m1": MemberHit("Gen a", "Gen", "K1", pytest.approx(0.91)),
        "m2": MemberHit("Other b", "Other", "K2", pytest.approx(0.95)),
        "m3": MemberHit("Gen c", "Gen", "K9", pytest.approx(0.89))}  # a key the lookup lacks: its labels
    # the parent lineage is still the members' calls, down to the parent rank
    assert out.parent_lineage == {"order": "Ord", "family": "Fam", "genus": "Gen"}


def test_what_the_proposal_already_holds_is_kept() -> None:
    known = NearestKnown(species="Ref sp", genus="Ref", processid="R9", identity=0.97, top_distances=(0.03,),
                         barcode="GGGG", image="mine.jpg")
    p = _proposal(Evidence(size=3, nearest_known=known), nearest_species="Ref sp", nearest_identity=0.97)
    results = [_result("m1", LINEAGE, "genus", 0.99, top_hit="K1")]
    out = with_engine_evidence(p, results, reference_barcode=lambda pid: "AAAA",
                               reference_image=lambda pid: "other.jpg")
    assert (out.nearest_species, out.nearest_identity) == ("Ref sp", 0.97)
    assert out.evidence.nearest_known == known  # its barcode and photo are not looked up again
    assert out.evidence.hit_barcodes == {"K1": "AAAA", "R9": "GGGG"}  # the members' hits' and the recorded one's
    # a recorded nearest species with a barcode but no key to file it under adds none (seed-7919 mutation sample:
    # ``near.processid and near.barcode`` -> ``or`` filed it under None and survived)
    nameless = _proposal(Evidence(size=3, nearest_known=dataclasses.replace(known, processid=None)))
    assert with_engine_evidence(nameless, results, reference_barcode=lambda pid: "AAAA").evidence.hit_barcodes == \
        {"K1": "AAAA"}
    # a recorded nearest species without its barcode gets it from the reference
    bare = _proposal(Evidence(size=3, nearest_known=NearestKnown(species="Ref sp", processid="R9", identity=0.97)))
    filled = with_engine_evidence(bare, results, reference_barcode=lambda pid: f"seq-of-{pid}")
    assert filled.evidence.nearest_known is not None and filled.evidence.nearest_known.barcode == "seq-of-R9"
    assert filled.evidence.nearest_known.image is None
    assert with_engine_evidence(p, []) is p


def _species_world(seed: int = 3) -> tuple[list[Specimen], list[str]]:
    """Two novel species of one genus, 5 specimens each, ~10 % apart; 0.5 % within."""
    rng = np.random.default_rng(seed)
    anc = rng.choice(BASES, 450)
    specimens, truth = [], []
    for s in range(2):
        sp = mutate(rng, anc, 0.12)
        for i in range(5):
            specimens.append(Specimen(processid=f"S{s}{i}", dna_barcode="".join(mutate(rng, sp, 0.005))))
            truth.append(f"sp{s}")
    return specimens, truth


def test_candidate_species_clusters_only_novel_dna_calls() -> None:
    specimens, _ = _species_world()
    results = [_result(s.processid, ["Ord", "Fam", None, "Gen", "Gen near"], "genus", 0.9 - i / 100)
               for i, s in enumerate(specimens)]
    results[0] = _result("S00", LINEAGE, "species", 0.995, novel=False)  # named: not a candidate
    results[5] = _result("S10", [None] * 5, None, 0.0, modality="none")  # no DNA call
    proposals = candidate_species(specimens, results)
    members = sorted(sorted(m.processid for m in p.members) for p in proposals)
    assert members == [["S01", "S02", "S03", "S04"], ["S11", "S12", "S13", "S14"]]
    for p in proposals:
        assert (p.parent_rank, p.parent_name) == ("genus", "Gen")
        assert p.parent_lineage == {"order": "Ord", "family": "Fam", "genus": "Gen"}
        assert p.novelty == pytest.approx(0.95)
        assert p.nearest_species == "Gen near"
        assert set(p.evidence.member_hits) == {m.processid for m in p.members}
    assert candidate_species(specimens, [_result(s.processid, LINEAGE, "species", novel=False)
                                         for s in specimens]) == []


def test_recompute_evidence_of_a_split_takes_the_best_kept_member_hit() -> None:
    specimens, _ = _species_world(seed=8)
    source = Evidence(
        size=10, threshold=0.027, linkage="average",
        nearest_known=NearestKnown(species="Gen far", processid="K9", identity=0.9, barcode="AC" * 30,
                                   image="k9.jpg"),
        member_hits={"S00": MemberHit("Gen near", "Gen", "K9", 0.93), "S01": MemberHit("Gen x", "Gen", "K2", 0.91),
                     "S10": MemberHit("Gen y", "Gen", "K3", 0.99), "S11": MemberHit(None, None, None, None)})
    kept = specimens[:5]  # the split keeps species 0 only: S10's better hit no longer counts
    ev = recompute_evidence(kept, None, [source], candidate=4)
    near = ev.nearest_known
    assert near is not None
    assert (near.species, near.processid, near.identity) == ("Gen near", "K9", pytest.approx(0.93))
    assert near.top_distances == pytest.approx((0.07, 0.09))
    assert (near.barcode, near.image) == ("AC" * 30, "k9.jpg")  # recorded by the source for K9
    assert set(ev.member_hits) == {"S00", "S01"}
    assert (ev.threshold, ev.linkage, ev.candidate, ev.size) == (0.027, "average", 4, 5)
    assert ev.within_distance is not None and ev.within_distance.max is not None
    assert ev.within_distance.max < 0.03
    # two members' hits at the same identity: the larger key id, whatever order the sources come in (the
    # nearest key of a re-made candidate must not depend on the order a reviewer merged; written after the
    # seed-3299 sample, where the tie-break `processid or ""` -> `processid and ""` survived; not re-scored)
    tied = [Evidence(member_hits={"S00": MemberHit("Gen a", "Gen", "K1", 0.95)}),
            Evidence(member_hits={"S01": MemberHit("Gen b", "Gen", "K7", 0.95)})]
    for sources in (tied, tied[::-1]):
        near = recompute_evidence(kept, None, sources).nearest_known
        assert near is not None and (near.processid, near.species) == ("K7", "Gen b")
    # records without per-member hits: the best nearest species the sources recorded
    old = [Evidence(nearest_known=NearestKnown(species="A", identity=0.8)),
           Evidence(nearest_known=NearestKnown(species="B", identity=0.92)), Evidence()]
    assert recompute_evidence(kept, None, old).nearest_known == NearestKnown(species="B", identity=0.92)
    assert recompute_evidence(kept, None, []).nearest_known is None


def test_a_split_whose_nearest_key_was_another_members_hit_still_shows_that_keys_barcode() -> None:
    # the demo's split showed "(its barcode was not recorded by this run)": only the old nearest key's barcode
    # was kept. Triage records every hit key's barcode; a split keeps those of the hits it keeps
    specimens, _ = _species_world(seed=8)
    results = [_result("S00", LINEAGE, "genus", 0.93, top_hit="K1"), _result("S01", LINEAGE, "genus", 0.91,
                                                                             top_hit="K2"),
               _result("S10", LINEAGE, "genus", 0.99, top_hit="K3")]
    barcodes = {"K1": "AC" * 30, "K2": "GT" * 30, "K3": "CA" * 30}
    made = with_engine_evidence(CandidateProposal(members=("S00", "S01", "S10"), evidence=Evidence(size=3)), results,
                                reference_barcode=barcodes.get)
    assert made.evidence.hit_barcodes == barcodes
    assert made.evidence.nearest_known is not None and made.evidence.nearest_known.processid == "K3"
    ev = recompute_evidence(specimens[:2], None, [made.evidence])  # S00 and S01: K1 is now the nearest key
    assert ev.nearest_known is not None
    assert (ev.nearest_known.processid, ev.nearest_known.barcode) == ("K1", "AC" * 30)
    assert ev.hit_barcodes == {"K1": "AC" * 30, "K2": "GT" * 30}  # K3 left with S10
    # and it survives the database's JSON
    assert Evidence.from_dict(ev.to_dict()).hit_barcodes == ev.hit_barcodes


def test_compute_evidence_between_distance_and_bad_input() -> None:
    specimens, _ = _species_world(seed=11)
    other = compute_evidence(specimens[5:])
    own = compute_evidence(specimens[:5])
    assert other.consensus_barcode and own.consensus_barcode
    # the candidate's own consensus (id 0) is not its nearest other candidate
    ev = compute_evidence(specimens[:5], [1.0, 0.5, 1.0, 1.0, 1.0], candidate=0,
                          neighbours={0: own.consensus_barcode, 7: other.consensus_barcode, 9: ""})
    assert ev.between_distance is not None and ev.between_distance.nearest_candidate == 7
    assert 0.08 < ev.between_distance.distance < 0.3  # the sister species
    assert ev.mean_probability == pytest.approx(0.9)
    with pytest.raises(ValueError, match="at least one member"):
        compute_evidence([])
    with pytest.raises(ValueError, match="2 probabilities for 5 members"):
        compute_evidence(specimens[:5], [1.0, 1.0])


def test_nearest_species_of_a_candidate_come_from_every_members_aligned_keys_with_their_countries() -> None:
    """A tie the best key hides (S00's runner-up is as close as its best key) is in the list; each species
    carries its keys' count and countries; a member whose result kept no runners-up still counts its best key."""
    specimens, _ = _species_world(seed=8)
    results = [_result("S00", LINEAGE, "genus", 0.95, top_hit="K1"),
               _result("S01", LINEAGE, "genus", 0.93, top_hit="K2"),
               _result("S02", LINEAGE, "genus", 0.91, top_hit="K4")]  # no ``near`` (an older result)
    results[0] = dataclasses.replace(results[0], near=[["Gen near", "Gen", "K1", 0.95], ["Gen tie", "Gen", "K7", 0.95],
                                                       ["Oth far", "Oth", "K9", 0.90]])
    results[1] = dataclasses.replace(results[1], near=[["Gen near", "Gen", "K2", 0.93], ["Oth far", "Oth", "K8", 0.92]])
    keys = {"Gen near": (3, {"Peru": 2}), "Gen tie": (1, {}), "Oth far": (40, None)}
    made = with_engine_evidence(CandidateProposal(members=("S00", "S01", "S02"), evidence=Evidence(size=3)), results,
                                species_keys=keys.get)
    near = made.evidence.near_species
    assert [(s.species, s.genus, s.identity, s.n_keys, s.countries) for s in near] == [
        ("Gen near", "Gen", 0.95, 3, {"Peru": 2}), ("Gen tie", "Gen", 0.95, 1, {}), ("Oth far", "Oth", 0.92, 40, None)]
    assert near[0].members == {"S00": 0.95, "S01": 0.93, "S02": 0.91}  # S02's best key counts without ``near``
    assert near[2].members == {"S00": 0.90, "S01": 0.92}
    assert Evidence.from_dict(made.evidence.to_dict()).near_species == near  # and survives the database's JSON
    # a split recomputes the list from the members it keeps: S00 goes, its tie goes with it
    ev = recompute_evidence(specimens[1:3], None, [made.evidence])
    assert [(s.species, s.identity, s.n_keys) for s in ev.near_species] == [("Gen near", 0.93, 3),
                                                                             ("Oth far", 0.92, 40)]
    # without a lookup (an engine without the census) the species are listed, their keys not counted
    bare = with_engine_evidence(CandidateProposal(members=("S00",), evidence=Evidence(size=1)), results[:1])
    assert [(s.species, s.n_keys, s.countries) for s in bare.evidence.near_species][:2] == [
        ("Gen near", None, None), ("Gen tie", None, None)]


def test_a_split_keeps_the_reason_the_nearest_species_was_not_named() -> None:
    """FINDINGS F11: after a split the "not named" line was gone (the only clue that a known species sat 0.4 %
    away). Where the part's nearest key is the one the reason was given for, the reason stays."""
    specimens, _ = _species_world(seed=8)
    results = [_result("S00", LINEAGE, "genus", 0.96, top_hit="K1", reason="M. aulica lies within 0.4%"),
               _result("S01", LINEAGE, "genus", 0.95, top_hit="K1"), _result("S10", LINEAGE, "genus", 0.90,
                                                                            top_hit="K5")]
    made = with_engine_evidence(CandidateProposal(members=("S00", "S01", "S10"), evidence=Evidence(size=3)), results)
    assert made.evidence.nearest_known is not None
    assert made.evidence.nearest_known.not_named_because == "M. aulica lies within 0.4%"
    kept = recompute_evidence(specimens[:2], None, [made.evidence]).nearest_known
    assert kept is not None and kept.not_named_because == "M. aulica lies within 0.4%"
    other = recompute_evidence(specimens[5:6], None, [made.evidence]).nearest_known  # S10 alone: another key
    assert other is not None and other.processid == "K5" and other.not_named_because is None


def test_the_engine_keeps_each_members_nearest_species_and_every_keys_country(tmp_path) -> None:
    """On a small generated world: each result's ``near`` is its aligned keys' species, best first, one entry a
    species; the engine counts every species' keys and countries, and a bundle keeps the countries."""
    from collections import Counter

    from biodiscover.discovery.engine import NEAR_SPECIES, DiscoveryModel, EngineConfig
    from biodiscover.discovery.kmer import KmerConfig
    from fixtures.discovery import make_world

    world = make_world(seed=3)
    keys = [dataclasses.replace(s, country=("Peru" if i % 3 else None)) for i, s in enumerate(world["train"])]
    model = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=60, max_candidates=20)).fit(keys)
    results = model.triage(world["test_unseen"])
    for r in results:
        assert 1 <= len(r.near) <= NEAR_SPECIES
        assert len({sp for sp, *_ in r.near}) == len(r.near)
        assert [i for *_, i in r.near] == sorted((i for *_, i in r.near), reverse=True)
        assert (r.near[0][2], r.near[0][3]) == (r.top_hit, r.identity)
    census = model.species_keys()
    want = Counter(s.species for s in keys)
    assert {sp: n for sp, (n, _) in census.items()} == dict(want)
    sp = keys[0].species
    assert census[sp][1] == dict(Counter(s.country for s in keys if s.species == sp and s.country))
    again = DiscoveryModel.load(model.save(tmp_path / "bundle"))
    assert again.reference_.countries == [s.country for s in keys] and again.species_keys() == census
    proposals = candidate_species(world["test_unseen"], results, species_keys=census.get)
    assert proposals
    for p in proposals:
        near = p.evidence.near_species
        assert near and near[0].identity == max(r.identity for r in results if r.processid in
                                                {m.processid for m in p.members})
        assert all(s.n_keys == want[s.species] for s in near)


def test_a_candidate_is_placed_where_more_than_half_of_all_its_members_are_named_and_none_elsewhere() -> None:
    """e33 review F6: #44 (4 Eristalis tenax) was placed at subfamily Eristalinae, a 1-1 tie with family Syrphidae
    won by the first member, the 2 members given no order not counted; #82 (2 beetles) in Lepidoptera by its one
    member given an order. The place is where more than half of all members are named, and none elsewhere."""
    specimens, _ = _species_world()
    unnamed: list[str | None] = [None] * 5
    results = [_result("S00", ["Dip", "Syr", None, None, None], "family"),
               _result("S01", ["Dip", "Syr", "Eri", None, None], "subfamily"),
               _result("S02", unnamed, None), _result("S03", unnamed, None),
               _result("S04", ["Dip", "Syr", "Eri", None, None], "subfamily"),
               _result("S10", ["Lep", None, None, None, None], "order"), _result("S11", unnamed, None)]
    found = {tuple(sorted(m.processid for m in p.members)): p for p in candidate_species(specimens[:7], results)}
    flies, beetles = found[("S00", "S01", "S02", "S03", "S04")], found[("S10", "S11")]
    assert (flies.parent_rank, flies.parent_name, flies.parent_lineage) == \
        ("family", "Syr", {"order": "Dip", "family": "Syr"})  # 3 of 5 reach Syrphidae, 2 of 5 Eristalinae
    assert (beetles.parent_rank, beetles.parent_name, beetles.parent_lineage) == (None, None, None)  # 1 of 2
    # a member named to another taxon stops the place above it, whatever the count; a rank none is named at is
    # passed over
    from biodiscover.storage.records import placement

    assert placement([{"order": "D", "family": "A"}] * 3 + [{"order": "D", "family": "B"}]) == {"order": "D"}
    assert placement([{"order": "D", "genus": "G"}] * 2) == {"order": "D", "genus": "G"}
    assert placement([{}, {}]) == {} and placement([]) == {}


def test_the_nearest_known_species_has_one_owner_the_one_a_full_length_read_met_first() -> None:
    """e33 review F7: #82's header read "nearest known Scathophaga furcata (83.9%)" (its full-length member's), its
    Evidence tab "Palpita margaritacea 88.8 %" first (met only by a 250-base read, whose identity runs high). The
    species a full-length read met come first, so the list's first is the header's, and one only a short read met
    says so."""
    from biodiscover.tui.evidence import near_species_lines

    specimens, _ = _species_world()
    results = [dataclasses.replace(_result("S00", [None] * 5, None, 0.888, top_hit="K1"), overlap=250,
                                   labels={"species": "Palpita margaritacea", "genus": "Palpita"}),
               dataclasses.replace(_result("S01", [None] * 5, None, 0.839, top_hit="K2"), overlap=640,
                                   labels={"species": "Scathophaga furcata", "genus": "Scathophaga"})]
    (p,) = candidate_species(specimens[:2], results)
    listed = p.evidence.near_species
    assert p.nearest_species == listed[0].species == "Scathophaga furcata"
    assert [s.species for s in listed] == ["Scathophaga furcata", "Palpita margaritacea"]
    # a list stored in the old order (by identity alone) reads the same in the Evidence tab
    stored = dataclasses.replace(p.evidence, near_species=tuple(reversed(listed)))
    lines = near_species_lines(stored)
    assert [s.species for s, _ in lines] == ["Scathophaga furcata", "Palpita margaritacea"]
    assert "met only by a 250-base read (a short read's identity runs high)" in lines[1][1]
    assert "met only" not in lines[0][1]
