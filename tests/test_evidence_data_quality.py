"""What the evidence tells a taxonomist about a candidate's data, on the real barcodes of a reviewed US plate
(``fixtures.usa_plate``; session 25's FINDINGS 4, 11 and 12):

* a read as near its best key as chance is not usable COI, not a very distinct new species (cand31, cand32);
* members that match a record the reference refused say so, naming it (*Pyrausta pseudonythesalis*, whose only key
  was quarantined at 146 nt);
* a ⚑ whose species has a congener nearer it than the candidate is says DNA cannot pick among them (#34, *Amara*).

Identities are measured on the sequences as triage measures them; the database, the app and the exports are real.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from biodiscover.discovery.audit import RefusedKey
from biodiscover.discovery.barcode_gap import gap_of
from biodiscover.discovery.engine import DiscoveryModel, TriageResult
from biodiscover.discovery.proposals import congeners_apart, dropped_keys, recompute_evidence, with_engine_evidence
from biodiscover.storage.db import Database
from biodiscover.storage.distance import cross_p_distance, shared_identity
from biodiscover.storage.evidence import (CandidateProposal, Evidence, Geography, NearSpecies, chance_note,
                                          indistinct_congeners, member_quality, unusable_reads)
from biodiscover.storage.records import RANKS, Specimen
from biodiscover.tui.app import ReviewApp
from biodiscover.workflows.export.flags import candidate_flags
from fixtures.review_db import one_run_db
from fixtures.run_export import export_dwca
from fixtures.tui_pilot import asynctest, open_proposal, reviewing, settle
from fixtures.usa_plate import PLATE, REFERENCE, USA_NULL
from test_tui_queue import status_cells


def _chance() -> DiscoveryModel:
    model = DiscoveryModel()
    model.null_identity_ = list(USA_NULL)
    return model


def _result(pid: str, key: str) -> TriageResult:
    """What triage stores for ``pid`` whose best key is ``key``: its identity over the bases they share."""
    species, seq = REFERENCE[key]
    ident, overlap = shared_identity(PLATE[pid], seq)
    labels = {r: None for r in RANKS} | {"genus": species.split()[0], "species": species}
    return TriageResult(pid, "dna", labels, {}, ident, "order", None, 0.99, True, key, ident, overlap=overlap)


def _proposal(pairs: list[tuple[str, str]], **kw: object) -> CandidateProposal:
    p = CandidateProposal(members=tuple(pid for pid, _ in pairs), parent_rank="order", parent_name="Coleoptera",
                          evidence=Evidence(size=len(pairs)))
    return with_engine_evidence(p, [_result(pid, key) for pid, key in pairs], chance_identity=_chance().null_floor,
                                **kw)  # type: ignore[arg-type]


def _pyrausta() -> tuple[str, list[tuple[str, str]], CandidateProposal]:
    """The US plate's *Pyrausta pseudonythesalis* candidate: two members whose species' only reference record,
    ZYPAN924-10 (146 nt), was refused at build-reference; (its species, (member, best kept key) pairs, the proposal
    with the dropped record matched)."""
    species, barcode = REFERENCE["ZYPAN924-10"]
    model = DiscoveryModel()
    model.refused_ = [RefusedKey("ZYPAN924-10", species, "Pyrausta", "barcode is 146 nt after trimming N runs, "
                                 "shorter than 200", barcode)]
    pairs = [("BBLOB578-11", "BLPED208-11"), ("BBLSX247-09", "BLPED208-11")]
    return species, pairs, _proposal(pairs, dropped=model.dropped_matches(
        [(pid, PLATE[pid], _result(pid, key).identity) for pid, key in pairs]))


def _pyrausta_db(path: Path, species: str, pairs: list[tuple[str, str]], pyrausta: CandidateProposal,
                 named: bool = False) -> int:
    """A review database of the *Pyrausta* candidate alone, its species and *Palpita venatalis* registered; with
    ``named``, its members' assignments (to order) too, as the archive needs them. The candidate's id."""
    lep = {"order": "Lepidoptera", "family": "Crambidae", "subfamily": "Pyraustinae"}
    (pid,) = one_run_db(path, [Specimen(processid=p, dna_barcode=PLATE[p], country="United States")
                               for p, _ in pairs],
                        [{**lep, "genus": "Pyrausta", "species": species},
                         {**lep, "genus": "Palpita", "species": "Palpita venatalis"}],
                        [dataclasses.replace(pyrausta, parent_lineage={"order": "Lepidoptera"}, parent_rank="order",
                                             parent_name="Lepidoptera")],
                        [{"processid": p, "deepest_rank": "order", "deepest_taxon": "Lepidoptera", "novelty": 0.99,
                          "is_novel": True, "labels": {"order": "Lepidoptera"}, "confidences": {"order": 0.99}}
                         for p, _ in pairs] if named else ())
    return pid


def test_a_read_as_near_its_key_as_chance_is_not_usable_coi_not_a_barcode_gap() -> None:
    junk = _proposal([("BETN14393-22", "ACB658-06")])  # cand31: 60.5 % to a Simulium key over 618 bases
    ev = junk.evidence
    assert list(unusable_reads(ev.member_hits)) == ["BETN14393-22"]
    chance = ev.member_hits["BETN14393-22"].chance
    assert chance is not None and round(chance, 3) == 0.567  # the reference's curve at 618 bases
    gap = gap_of(ev, junk.nearest_identity)
    assert gap.verdict == "not COI"
    assert gap.sentence().startswith("not usable as COI: 60.5% to its nearest key over 618 bases, nearer the 56.7% "
                                     "unrelated sequences reach than identity — possible contaminant, pseudogene or "
                                     "misread")
    assert "barcode gap" not in gap.sentence()
    assert candidate_flags({"evidence": ev.to_dict()})[0] == chance_note(ev)
    assert member_quality(ev, "BETN14393-22")[0].startswith("barcode not usable as COI: 60.5%")
    # cand32: 75.4 % over 305 shared bases, under the 79.0 % midpoint there
    assert unusable_reads(_proposal([("BETN15850-23", "ANICT138-11")]).evidence.member_hits)
    # a real barcode of a genus the reference lacks (82.2 %) is a candidate as before
    real = _proposal([("NBINS697-16", "FBCOF923-12")]).evidence
    assert not unusable_reads(real.member_hits) and chance_note(real) is None
    assert gap_of(real).verdict != "not COI"
    # one junk read among good ones marks the candidate, saying how many; the gap is the good members'
    mixed = _proposal([("NBINS697-16", "FBCOF923-12"), ("BETN14393-22", "ACB658-06")]).evidence
    assert (chance_note(mixed) or "").startswith("not usable as COI: 1 of 2 members: 60.5%")
    assert gap_of(mixed).verdict != "not COI"
    # a split keeps each member's chance level; a record from before it was kept says nothing
    again = recompute_evidence([Specimen(processid="BETN14393-22", dna_barcode=PLATE["BETN14393-22"])], None, [ev])
    assert unusable_reads(again.member_hits)
    old = Evidence.from_dict({**ev.to_dict(), "format": 4, "member_hits": {
        pid: {k: v for k, v in h.items() if k != "chance"} for pid, h in ev.to_dict()["member_hits"].items()}})
    assert not unusable_reads(old.member_hits) and gap_of(old).verdict != "not COI"


def test_members_matching_a_key_the_reference_refused_say_which_and_why() -> None:
    """*Pyrausta pseudonythesalis*: its only key, 146 nt, was quarantined; its specimens read 91.5 % to a Palpita."""
    species, barcode = REFERENCE["ZYPAN924-10"]
    model = DiscoveryModel()
    model.refused_ = [RefusedKey("ZYPAN924-10", species, "Pyrausta",
                                 "barcode is 146 nt after trimming N runs, shorter than 200", barcode)]
    pairs = [("BBLOB578-11", "BLPED208-11"), ("BBLSX247-09", "BLPED208-11")]
    found = model.dropped_matches([(pid, PLATE[pid], _result(pid, key).identity) for pid, key in pairs])
    assert sorted(found) == ["BBLOB578-11", "BBLSX247-09"]
    assert [(m[0], m[1], round(m[3], 3), m[4]) for m in found["BBLSX247-09"]] == \
        [("ZYPAN924-10", "Pyrausta pseudonythesalis", 0.993, 146)]
    p = _proposal(pairs, dropped=found)
    (k,) = p.evidence.dropped_keys
    assert k.sentence(2) == ("2 of 2 members match ZYPAN924-10 (Pyrausta pseudonythesalis) at 100.0% over 146 "
                             "bases, a reference record quarantined at build-reference: barcode is 146 nt after "
                             "trimming N runs, shorter than 200")
    flags = candidate_flags({"evidence": p.evidence.to_dict()})
    assert any("ZYPAN924-10 (Pyrausta pseudonythesalis)" in f for f in flags)
    # a member that matches its kept key better than the refused one: nothing to say; nor does the refused record's
    # own specimen triaged again (it is not its own evidence)
    assert not model.dropped_matches([("BBLOB578-11", PLATE["BBLOB578-11"], 1.0)])
    assert not model.dropped_matches([("ZYPAN924-10", barcode, 0.9)])
    # a split keeps the member it still holds
    one = recompute_evidence([Specimen(processid="BBLSX247-09", dna_barcode=PLATE["BBLSX247-09"])], None,
                             [p.evidence])
    assert [(d.processid, list(d.members), round(d.identity or 0, 3)) for d in one.dropped_keys] == \
        [("ZYPAN924-10", ["BBLSX247-09"], 0.993)]
    assert dropped_keys({}) == ()


def _apart(a: str, b: str, limit: float) -> float | None:
    """The reference's distance between two species' keys, as ``DiscoveryModel.species_apart`` measures it."""
    keys = {sp: seq for sp, seq in REFERENCE.values()}
    d = float(cross_p_distance([keys[a]], [keys[b]], max_aligned=min(limit, 0.12)).min())
    return d if d <= limit + 1e-9 else None


def test_the_flag_says_when_congeners_lie_nearer_each_other_than_the_candidate() -> None:
    """#34: 97.1 % to *A. ovata*, whose keys lie 0.9 % from *A. similata*'s: DNA cannot pick between the two."""
    near = tuple(NearSpecies(sp, "Amara", shared_identity(PLATE["BETN3017-19"], seq)[0], 3, {"Canada": 3},
                             {"BETN3017-19": shared_identity(PLATE["BETN3017-19"], seq)[0]})
                 for key, (sp, seq) in REFERENCE.items() if sp.startswith("Amara"))
    near = tuple(sorted(near, key=lambda s: -(s.identity or 0)))
    ev = Evidence(near_species=congeners_apart(near, _apart))
    group = indistinct_congeners(ev, ev.near_species[0])
    assert [s.species for s in group] == ["Amara ovata", "Amara similata"]  # A. aenea's key is 4.1 % from both
    assert round(ev.near_species[0].apart["Amara similata"], 4) == 0.0087
    assert indistinct_congeners(ev, ev.near_species[2]) == []  # A. aenea: 4.1 % away, nothing nearer it
    # a candidate at 99.5 % to A. ovata is nearer it than A. similata is: the barcode does pick
    close = tuple(dataclasses.replace(s, identity=0.995 if i == 0 else s.identity) for i, s in enumerate(near))
    assert indistinct_congeners(Evidence(near_species=congeners_apart(close, _apart)), close[0]) == []


@asynctest
async def test_the_review_and_the_exports_say_it_for_the_real_reads(tmp_path: Path) -> None:
    junk = _proposal([("BETN14393-22", "ACB658-06")])
    _, _, pyrausta = _pyrausta()
    path = tmp_path / "plate.sqlite"
    ids = one_run_db(path, [Specimen(processid=pid, dna_barcode=seq, country="United States")
                            for pid, seq in PLATE.items()],
                     [{"order": "Coleoptera"}, {"order": "Lepidoptera"}],
                     [dataclasses.replace(junk, parent_lineage={"order": "Coleoptera"}),
                      dataclasses.replace(pyrausta, parent_lineage={"order": "Lepidoptera"},
                                          parent_rank="order", parent_name="Lepidoptera")],
                     [{"processid": pid, "deepest_rank": "order", "deepest_taxon": "Coleoptera", "novelty": 0.99,
                       "is_novel": True, "labels": {"order": "Coleoptera"}, "confidences": {"order": 0.99}}
                      for pid in ("BETN14393-22", "BBLOB578-11", "BBLSX247-09")])
    with Database.open(path, readonly=True) as db:  # the queue's ⚠ mark and what it stands for, one query a page
        assert db.data_marks(ids) == {ids[0]: "not COI", ids[1]: "dropped key: Pyrausta pseudonythesalis"}
        assert {pid: [(m.kind, m.value) for m in marks] for pid, marks in db.proposal_marks(ids).items()} == \
            {ids[0]: [("data", 1.0)], ids[1]: [("data", 0.0)]}
    for size, want in (((80, 24), ("⚠", "⚠")), ((200, 50), ("⚠COI", "⚠key"))):
        async with reviewing(path, size=size) as (app, shown, pilot):
            await settle(pilot)
            cells = status_cells(app)
            assert cells[ids[0]].startswith("·") and cells[ids[0]].endswith(want[0]), cells
            assert cells[ids[1]].endswith(want[1]), cells
        shown.close()
    db = Database.open(path)
    app = ReviewApp(db, reviewer="ana", halfcell_images=True, poll_seconds=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_proposal(pilot, ids[0])
        header = " ".join(str(app.screen.query_one("#detail-summary").render()).split())
        assert "⚠ not usable as COI: 60.5% to its nearest key over 618 bases" in header
        assert "barcode gap" not in header
        app.screen.load_detail(ids[1])
        await settle(pilot)
        header = " ".join(str(app.screen.query_one("#detail-summary").render()).split())
        assert ("⚠ 2 of 2 members match a record the reference dropped: ZYPAN924-10 (Pyrausta pseudonythesalis) "
                "100.0%, quarantined at build-reference") in header
    db.close()
    run = 1  # one_run_db's one triage run
    rows, _ = export_dwca(path, run, tmp_path)
    assert "barcode not usable as COI: 60.5% to its nearest reference key over 618 bases" in \
        rows["BETN14393-22"]["identificationRemarks"]
    assert "matches ZYPAN924-10 (Pyrausta pseudonythesalis) at 99.3%, a reference record quarantined at " \
        "build-reference" in rows["BBLSX247-09"]["identificationRemarks"]
    assert "not usable" not in rows["BBLSX247-09"]["identificationRemarks"]
    out = tmp_path / "csv"
    from biodiscover.workflows.export.pipeline import export_run

    export_run(path, run, "csv", out)
    with (out / "proposals.csv").open(encoding="utf-8-sig") as fh:
        flags = {r["proposal_id"]: r["review_flags"] for r in csv.DictReader(fh)}
    assert flags[str(ids[0])].startswith("not usable as COI: 60.5%")
    assert "ZYPAN924-10 (Pyrausta pseudonythesalis)" in flags[str(ids[1])]
    export_run(path, run, "html", tmp_path / "report.html")
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "data quality" in report and "not usable as COI: 60.5% to its nearest key over 618 bases" in report
    assert "2 of 2 members match ZYPAN924-10 (Pyrausta pseudonythesalis) at 100.0% over 146 bases" in report


@asynctest
async def test_the_review_shows_congeners_dna_cannot_pick_among_together(tmp_path: Path) -> None:
    """#34 in the app: the ⚑ names A. ovata, a second ⚑ line says A. similata lies 0.9 % from it (the two keys
    nearest the specimen), and ``i`` lists the two first, each saying DNA cannot pick among them."""
    from biodiscover.tui.screens.dialogs import PickDialog

    member = PLATE["BETN3017-19"]
    listed = [NearSpecies(sp, "Amara", shared_identity(member, seq)[0], 3, {"Germany": 3},
                          {"BETN3017-19": shared_identity(member, seq)[0]})
              for sp, seq in REFERENCE.values() if sp.startswith("Amara")]
    near = congeners_apart(tuple(sorted(listed, key=lambda s: -(s.identity or 0))), _apart)
    p = _proposal([("BETN3017-19", "SSROB6562-14")])
    ev = dataclasses.replace(p.evidence, near_species=near,
                             geography=dataclasses.replace(p.evidence.geography or Geography(),
                                                           countries={"United States": 1}))
    amara = {"order": "Coleoptera", "family": "Carabidae", "subfamily": "Harpalinae", "genus": "Amara"}
    path = tmp_path / "plate.sqlite"
    (pid,) = one_run_db(path, [Specimen(processid="BETN3017-19", dna_barcode=member, country="United States")],
                        [{**amara, "species": s.species} for s in near],
                        [dataclasses.replace(p, evidence=ev, parent_lineage=amara, parent_rank="genus",
                                             parent_name="Amara")])
    db = Database.open(path)
    app = ReviewApp(db, reviewer="ana", halfcell_images=True, poll_seconds=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_proposal(pilot, pid)
        header = " ".join(str(app.screen.query_one("#detail-summary").render()).split())
        assert "⚑ Amara ovata (97.1%)" in header
        assert ("⚑ 2 Amara species 0.9% apart (Amara ovata / A. similata), nearer each other than to the members "
                "(2.9%): DNA cannot pick among them") in header
        await pilot.press("3")
        await settle(pilot)
        listed = " ".join(str(app.screen.query_one("#nearest").render()).split())
        assert ("⚑ 2 Amara species within 0.9% of each other (Amara ovata / A. similata), nearer each other than the "
                "members are to them (2.9%): DNA cannot pick among them") in listed
        await pilot.press("1")
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        rows = [label for _, label in app.screen.options]
        assert rows[0].startswith("Amara ovata") and rows[1].startswith("Amara similata"), rows[:3]
        assert all("one of 2 species DNA cannot pick among" in r for r in rows[:2])
        assert rows[2].startswith("Amara aenea") and "cannot pick" not in rows[2]
    db.close()


@asynctest
async def test_the_assign_list_offers_the_species_of_a_dropped_record_the_members_match_first(tmp_path: Path) -> None:
    """The weekly-batch review's Norwegian #113: the "not named" line said a key set aside by the audit lay at 99.8 %
    (GDIP3709-22, *Pseudosmittia albipennis*), while `i` offered that species at 85.1 % among the others — the
    deciding evidence was not where the reviewer picks. A species whose dropped record the members match now comes
    first in `i`'s list, at that identity, saying the record was dropped and why (the reviewer judges it)."""
    from biodiscover.tui.screens.dialogs import PickDialog

    species, pairs, pyrausta = _pyrausta()
    path = tmp_path / "plate.sqlite"
    pid = _pyrausta_db(path, species, pairs, pyrausta)
    db = Database.open(path)
    app = ReviewApp(db, reviewer="ana", halfcell_images=True, poll_seconds=3600)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_proposal(pilot, pid)
        await pilot.press("i")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, PickDialog)
        first = dialog.options[0][1]
        assert first.startswith(species), dialog.options[:3]
        assert "100.0 % to ZYPAN924-10, a record the reference dropped (quarantined at build-reference)" in first
    db.close()


def test_a_candidate_assigned_on_a_dropped_record_keeps_that_evidence_in_every_export(tmp_path: Path) -> None:
    """The export review's F2 (Norway, #2 assigned to *Pseudosmittia albipennis* on GDIP3709-22, a key the audit set
    aside, at 99.8 %): once assigned, the archive's remarks of its 11 members said only "85.1 % identical to
    reference BSCHI275-17", and proposals.csv's ``identity_to_assigned`` read 0.851 — a species name published as
    resting on 85 %, while the assign dialog had shown the 99.8 % it was decided on. The dropped record counts as
    the assigned species' evidence (saying it was dropped), and each member's remark keeps the match."""
    species, pairs, pyrausta = _pyrausta()
    (k,) = pyrausta.evidence.dropped_keys
    assert k.species == species and k.identity is not None
    assert pyrausta.evidence.identity_to(species) == k.identity  # the reference's own keys of it: none
    path = tmp_path / "plate.sqlite"
    pid = _pyrausta_db(path, species, pairs, pyrausta, named=True)
    with Database.open(path) as db:
        db.assign(pid, db.proposal_detail(pid).summary.version, species, reviewer="ana")
    rows, _ = export_dwca(path, 1, tmp_path)
    for member, _key in pairs:
        assert rows[member]["scientificName"] == species
        assert f"matches ZYPAN924-10 ({species}) at {100 * k.members[member]:.1f}%, a reference record quarantined " \
               "at build-reference" in rows[member]["identificationRemarks"], rows[member]["identificationRemarks"]
    from biodiscover.workflows.export.pipeline import export_run

    export_run(path, 1, "csv", tmp_path / "csv")
    with (tmp_path / "csv" / "proposals.csv").open(encoding="utf-8-sig") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["proposal_id"] == str(pid)]
    assert float(row["identity_to_assigned"]) == k.identity


def test_a_stored_evidence_dict_is_read_once_however_many_members_ask() -> None:
    """e32 review R20: the archive and the CSV read each member's data quality from its candidate's stored
    evidence, and parsed the whole record once per member (a 20,000-specimen run's CSV export spent 404 of its
    418 s there). The same stored dict is now read once; another dict, even an equal one, is read afresh, so a
    record read from the database again is never confused with an earlier one; malformed evidence is empty."""
    from biodiscover.workflows.export.flags import evidence_of

    stored = Evidence(size=3, consensus_barcode="ACGT" * 60, within_distances=(0.01, 0.02),
                      alignment={"A1": "ACGT" * 60, "A2": "ACGA" * 60}).to_dict()
    first = evidence_of(stored)
    assert first.size == 3 and first.alignment["A2"].startswith("ACGA")
    assert evidence_of(stored) is first  # the same object: read once
    again = dict(stored, size=4)
    assert evidence_of(again) is not first and evidence_of(again).size == 4
    copy = dict(stored)
    assert evidence_of(copy) == first and evidence_of(copy) is not first  # an equal dict read afresh
    for _ in range(100):  # a long export: the cache stays small and the dict it first read still reads right
        evidence_of(dict(stored))
    assert evidence_of(stored) == first
    assert evidence_of({"format": 999}) == Evidence() and evidence_of("not a dict") == Evidence()
