"""What a later triage does to a reviewer's work on an earlier run's candidates: splits, merges, rejections, notes,
and candidates the later run no longer proposes.

Found on a real 5,300-specimen US batch (review of run 1, then a second triage of the same plate): the reviewer's
split of #22 (two *Harpalus*) came back joined in one new candidate with no word; the merge of #25 into #41 came back
apart, and the second part had no history at all; four run-1 candidates whose specimens run 2 named only to genus
stayed pending in the queue; the rejected specimen was listed twice (#31 and #75) and run 2's export named nobody
as having rejected it; the note on #34 stayed on the stale candidate. Real SQLite files, the real review API, the
real triage workflow's evidence of split parts and the real CLI export.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from biodiscover.discovery.proposals import nearest_candidate
from biodiscover.storage.db import Database, check_database
from biodiscover.storage.errors import StaleProposalError
from biodiscover.storage.records import Specimen
from biodiscover.storage.review_log import carried
from biodiscover.tui.evidence import edge_line, history_entries
from biodiscover.workflows.triage import split_parts
from fixtures.db_views import proposal_history
from fixtures.run_export import export_dwca

HARPALUS = {"order": "Coleoptera", "family": "Carabidae", "genus": "Harpalus"}
EVEN = ("ACGTTGCA" * 80)[:640]
ODD = EVEN[:300] + "G" * 40 + EVEN[340:]


def _specimens(n: int) -> list[Specimen]:
    # two barcode groups 40 bases apart mid-read, so the evidence of each part is measurably its own
    return [Specimen(processid=f"S{i}", order="Coleoptera", family="Carabidae", genus="Harpalus",
                     dna_barcode=EVEN if i % 2 == 0 else ODD, country="United States") for i in range(n)]


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    handle = Database.create(tmp_path / "carry.sqlite")
    handle.ingest(_specimens(12), collection="plate", backup=False)
    yield handle
    handle.close()


def _run(db: Database, proposals: list[dict], named: dict[str, tuple[str, str]] | None = None,
         **kw) -> tuple[int, list[int]]:
    run = db.start_run("triage", {}, backup=False)
    if named:
        db.write_assignments(run, [{"processid": p, "deepest_rank": r, "deepest_taxon": t}
                                   for p, (r, t) in named.items()])
    return run, db.write_proposals(run, proposals, **kw)


def test_a_reviewers_split_is_carried_to_a_later_triage_that_joins_its_parts_again(db: Database) -> None:
    """Run 1's candidate of S0-S3 is split by a reviewer (S1, S3 off, with a note on the part); run 2 proposes S0-S4
    together. The new proposal is split along the reviewer's line, logged as the reviewer's split at its time
    saying where it was made, each part with its own recomputed evidence, lineage and notes; undoing it joins them."""
    _r1, (whole,) = _run(db, [{"members": ["S0", "S1", "S2", "S3"], "parent_lineage": HARPALUS}])
    made = db.split(whole, 1, ["S1", "S3"], reviewer="Test Taxonomist")
    off = made.new_proposal_id
    db.note(off, "pensylvanicus, not rubripes", reviewer="Test Taxonomist")
    split_at = db.reviews(whole)[0]["created_at"]
    run2, (again,) = _run(db, [{"members": ["S0", "S1", "S2", "S3", "S4"], "parent_lineage": HARPALUS}],
                          part_evidence=split_parts(_specimens(12)))
    parts = {p.id: sorted(m for m, q in db.run_members(run2).items() if q.id == p.id)
             for p in db.proposal_queue(status="pending", run_id=run2)[0]}
    assert len(parts) == 2 and parts[again] == ["S0", "S2", "S4"]
    (part,) = set(parts) - {again}
    assert parts[part] == ["S1", "S3"]
    (split,) = [r for r in db.reviews(again) if r["action"] == "split"]
    # the database's split, dated when carried, saying whose split on which candidate it repeats (e29 F9)
    assert (split["reviewer"], split["note"]) == ("biodiscover", None) and split["created_at"] > split_at
    how = carried(split)
    assert (how.source, how.run, how.reviewer, how.at) == (whole, run2, "Test Taxonomist", split_at)
    assert how.words("split") == f"split carried from #{whole} by run {run2}"
    # each part's evidence is its own members' (not the joined proposal's), and each continues its lineage
    assert db.proposal_detail(part).evidence.size == 2 and db.proposal_detail(again).evidence.size == 3
    # and each names the other as its closest candidate, as far apart as their barcodes, as after a reviewer's split
    assert (db.proposal_detail(part).closest_candidate.id, db.proposal_detail(again).closest_candidate.id) == (
        again, part)
    ours, theirs = (db.proposal_detail(k).evidence.consensus_barcode for k in (part, again))
    apart = nearest_candidate(ours, {again: theirs}).distance
    assert apart > 0.04 and db.proposal_detail(part).evidence.between_distance.distance == pytest.approx(apart)
    assert (db.proposal(again).lineage, db.proposal(part).lineage) == (db.proposal(whole).lineage,
                                                                       db.proposal(off).lineage)
    assert (db.proposal(whole).superseded_by, db.proposal(off).superseded_by) == (again, part)
    # the note written on the part split off follows its specimens, not the part that stayed
    (note,) = [r for r in db.reviews(part) if r["action"] == "note"]
    # her text and name, saying which specimens she wrote it on
    assert (note["note"], note["reviewer"]) == ("pensylvanicus, not rubripes", "Test Taxonomist")
    assert carried(note).written_on() == f"on #{off}: 2 specimens of plate"
    assert not [r for r in db.reviews(again) if r["action"] == "note"]
    lines = [h[1] for h in history_entries(db.reviews(part), proposal_history(db, part), part)]
    assert f"split off from #{again} (2 members, review {split['id']})" in lines
    # undoable, as any split: the later triage's grouping comes back whole
    db.undo(split["id"], reviewer="Test Taxonomist")
    assert db.proposal(again).size == 5 and db.proposal(part).status == "withdrawn"
    # a split undone is not carried again by the next triage
    run3, (third,) = _run(db, [{"members": ["S0", "S1", "S2", "S3", "S4"], "parent_lineage": HARPALUS}],
                          part_evidence=split_parts(_specimens(12)))
    assert db.proposal(third).size == 5 and len(db.proposal_queue(status="pending", run_id=run3)[0]) == 1


def test_a_merge_is_not_carried_and_both_later_candidates_say_so(db: Database) -> None:
    """A reviewer merges #B into #A; run 2 proposes their members apart again. Both new candidates' histories say
    the merge was not carried (the second had no history at all)."""
    _r1, (a, b) = _run(db, [{"members": ["S0", "S2"], "parent_lineage": HARPALUS},
                            {"members": ["S1"], "parent_lineage": HARPALUS}])
    db.merge([a, b], [1, 1], reviewer="Test Taxonomist")
    _r2, (first, second) = _run(db, [{"members": ["S0", "S2"], "parent_lineage": HARPALUS},
                                     {"members": ["S1"], "parent_lineage": HARPALUS}])
    for new, shared in ((first, 2), (second, 1)):
        (edge,) = [e for e in proposal_history(db, new) if e["kind"] == "recluster"]
        assert edge["source_id"] == a
        assert edge_line(edge, new) == (
            f"re-clusters #{a} of an earlier run ({shared} members shared; Test Taxonomist's merge of #{b} into "
            f"#{a} is not carried: {3 - shared} of its members {'is' if shared == 2 else 'are'} elsewhere now)")


def test_an_earlier_candidate_a_later_run_triaged_whole_and_does_not_propose_leaves_the_queue(
        db: Database, tmp_path: Path) -> None:
    """Run 1 proposes #A (S0, S1; noted), #B (S2) and #C (S3, S4). Run 2 triages S0-S3, names them to genus and
    proposes none of them: #A and #B leave the queue as superseded by run 2 with what it named, #C (S4 not
    triaged again) stays pending. A decision on #A is refused saying why; its note follows its specimens into
    run 2's archive."""
    _r1, (a, b, c) = _run(db, [{"members": ["S0", "S1"], "parent_lineage": HARPALUS},
                               {"members": ["S2"], "parent_lineage": HARPALUS},
                               {"members": ["S3", "S4"], "parent_lineage": HARPALUS}])
    db.note(a, "needs morphology", reviewer="Test Taxonomist")
    run2, _ = _run(db, [], named={p: ("genus", "Harpalus") for p in ("S0", "S1", "S2", "S3")})
    assert db.retire_unproposed(run2) == [a, b]
    assert [p.id for p in db.proposal_queue(status="pending")[0]] == [c]
    assert db.queue_counts()["pending"] == 1
    assert (db.proposal(a).status, db.proposal(a).superseded_by) == ("superseded", None)
    (edge,) = [e for e in proposal_history(db, a) if e["kind"] == "retired"]
    assert edge_line(edge, a) == ("retired by run 2: it triaged all 2 members and proposes none of them (named "
                                  "genus Harpalus (2)); out of the queue, status superseded")
    (one,) = [e for e in proposal_history(db, b) if e["kind"] == "retired"]
    assert edge_line(one, b) == ("retired by run 2: it triaged its one member and does not propose it (named genus "
                                 "Harpalus (1)); out of the queue, status superseded")
    assert [r["action"] for r in db.reviews(a)] == ["note"]  # its history stays
    assert check_database(db.path).ok  # superseded by a run, not by a proposal: no successor is missing
    assert db.run_tables(1)["run"]["superseded"] == {"candidates": 2, "by_runs": [2]}  # run 1's export says so
    with pytest.raises(StaleProposalError, match=r"retired by run 2.*named genus Harpalus"):
        db.accept(a, db.proposal(a).version - 1, reviewer="Test Taxonomist")
    db.finish_run(run2, "completed")
    db.close()
    core, _history = export_dwca(tmp_path / "carry.sqlite", run2, tmp_path)
    assert core["S0"]["identificationRemarks"].endswith(
        f"; proposed in run 1 as candidate species {a} (Harpalus sp. cand{a}), not proposed again by run 2; "
        f"reviewer notes there: “needs morphology” (Test Taxonomist, {core['S0']['dateIdentified']})")
    assert "proposed in run 1" not in core["S3"]["identificationRemarks"]


def test_a_rejection_recognised_again_is_one_queue_row_the_later_one_with_the_reviewers_reason(
        db: Database) -> None:
    """Run 1's #A (S5) is rejected with a reason; run 2 proposes S5 alone again. The queue lists one rejected row,
    run 2's, whose log holds the reviewer's rejection at its time with the reason, undoable; run 1's filter still
    lists run 1's own."""
    _r1, (a,) = _run(db, [{"members": ["S5"], "parent_lineage": HARPALUS}])
    db.reject(a, 1, reviewer="Test Taxonomist", note="non-COI / contaminant")
    when = db.reviews(a)[0]["created_at"]
    run2, (again,) = _run(db, [{"members": ["S5"], "parent_lineage": HARPALUS}])
    assert [p.id for p in db.proposal_queue()[0]] == [again]
    assert db.proposal_queue()[1] == 1 and db.queue_counts()["rejected"] == 1
    assert [p.id for p in db.proposal_queue(status="rejected")[0]] == [again]
    assert [p.id for p in db.proposal_queue(run_id=1)[0]] == [a]
    ((rejected, how),) = [(r, carried(r)) for r in db.reviews(again)]
    # the database's rejection, dated when carried; the reason hers, as she gave it, written on #a's one specimen
    assert (rejected["action"], rejected["reviewer"], rejected["note"]) == ("reject", "biodiscover",
                                                                           "non-COI / contaminant")
    assert rejected["created_at"] > when
    assert (how.source, how.run, how.reviewer, how.at) == (a, run2, "Test Taxonomist", when)
    assert how.written_on() == f"on #{a}: 1 specimen of plate"
    # the history tab: the database's action, whose rejection it repeats, and her reason as hers
    (entry,) = history_entries(db.reviews(again), [], again)
    assert entry[1:] == (f"rejected — reject carried from #{a} by run {run2} (Test Taxonomist's, {when[:10]}, on "
                         f"#{a}: 1 specimen of plate)", "biodiscover", "non-COI / contaminant")
    tables = db.run_tables(run2)
    assert tables["proposals"]["status"].tolist() == ["rejected"] and len(tables["reviews"]) == 1
    db.undo(db.reviews(again)[0]["id"], reviewer="Test Taxonomist")
    assert db.proposal(again).status == "pending"


def _triaged(db: Database, members: list[str], proposals: list[dict]) -> tuple[int, list[int]]:
    """A run as triage makes it: the specimens it triaged (``members``) recorded, then its candidates."""
    return _run(db, proposals, named={p: ("genus", "Harpalus") for p in members})


def test_a_triage_of_part_of_a_candidate_leaves_its_other_members_in_it(db: Database) -> None:
    """A season-long candidate (a reviewer merged three weeks' specimens into #2 and named it) met a re-run of one
    week: the week's 2 specimens came back grouped alone, #2 was superseded by the 2-specimen candidate, and the 9
    specimens of the other weeks — never triaged again — were in no candidate at all. A run replaces a grouping only
    for the specimens it triaged: here its proposal holds only members of the candidate, so it is that candidate
    again (kept, not queued twice), and the candidate keeps every member, its name and its version."""
    _r1, (week1,) = _triaged(db, ["S0", "S1", "S2"], [{"members": ["S0", "S1", "S2"], "parent_lineage": HARPALUS}])
    _r2, (week2,) = _triaged(db, ["S3", "S4"], [{"members": ["S3", "S4"], "parent_lineage": HARPALUS}])
    merged = db.merge([week1, week2], {week1: 1, week2: 1}, reviewer="Kari Nordmann")
    db.rename(week1, merged.versions[week1], "Harpalus sp. NOR-A", reviewer="Kari Nordmann")
    before = db.proposal(week1)
    run3, (again,) = _triaged(db, ["S3", "S4"], [{"members": ["S3", "S4"], "parent_lineage": HARPALUS}])
    kept = db.proposal(week1)
    assert kept.status == "pending" and kept.version == before.version and kept.size == 5
    assert kept.provisional_name == "Harpalus sp. NOR-A"
    assert sorted(m.processid for m in db.proposal_detail(week1).members) == ["S0", "S1", "S2", "S3", "S4"]
    assert db.proposal(again).status == "merged" and db.proposal(again).merged_into == week1
    queue, total = db.proposal_queue(status="pending")
    assert [p.id for p in queue] == [week1] and total == 1
    # the run's own record of its specimens says where they are: the candidate that holds them
    assert {pid: p.id for pid, p in db.run_members(run3).items()} == {"S3": week1, "S4": week1}
    lines = [line for _, line, _, _ in history_entries(db.reviews(week1), proposal_history(db, week1), week1)]
    assert any(f"run {run3} triaged 2 of its 5 members again and grouped them alone: kept here (#{again})" in line
               for line in lines), lines
    assert check_database(db.path).ok


def test_a_triage_that_groups_part_of_a_candidate_with_new_specimens_takes_only_those_members(db: Database) -> None:
    """The same candidate, when the re-run groups its 2 specimens with a specimen it never held: the new grouping is
    the machine's for what it triaged, so the 2 go to the new candidate; the 3 the run did not triage stay in #1,
    with its name (its version bumped: a review of the 5 it showed is refused); each specimen in one candidate."""
    _r1, (old,) = _triaged(db, ["S0", "S1", "S2", "S3", "S4"],
                           [{"members": ["S0", "S1", "S2", "S3", "S4"], "parent_lineage": HARPALUS}])
    db.rename(old, 1, "Harpalus sp. NOR-B", reviewer="Kari Nordmann")
    run2, (new,) = _triaged(db, ["S3", "S4", "S5"], [{"members": ["S3", "S4", "S5"], "parent_lineage": HARPALUS}])
    kept = db.proposal(old)
    assert kept.status == "pending" and kept.size == 3 and kept.provisional_name == "Harpalus sp. NOR-B"
    assert sorted(m.processid for m in db.proposal_detail(old).members) == ["S0", "S1", "S2"]
    assert sorted(m.processid for m in db.proposal_detail(new).members) == ["S3", "S4", "S5"]
    assert db.proposal(new).status == "pending"
    assert db.proposal(new).lineage != kept.lineage  # not the old candidate's next version: that one lives on
    with pytest.raises(StaleProposalError):
        db.reject(old, 2, reviewer="Kari Nordmann", note="seen as 5")
    lines = [line for _, line, _, _ in history_entries(db.reviews(old), proposal_history(db, old), old)]
    assert any(f"re-clustered by run {run2} into #{new} (2 members shared; the other 3 stay here)" in line
               for line in lines), lines
    assert check_database(db.path).ok
    # a run that triaged every member re-clusters the whole candidate, as before: superseded, nothing left behind
    _r3, (whole,) = _triaged(db, ["S0", "S1", "S2"], [{"members": ["S0", "S1", "S2"], "parent_lineage": HARPALUS}])
    assert db.proposal(old).status == "superseded" and db.proposal(old).superseded_by == whole
    assert db.proposal(whole).provisional_name == "Harpalus sp. NOR-B"  # its reviewer's name carried, as before


def test_a_reviewers_notes_follow_a_decided_candidate_whose_specimens_come_back(db: Database) -> None:
    """A reviewer assigned a singleton to *Harpalus latus* with a note at the decision and a note after it ("det. by
    male genitalia"); a later run re-triaged the specimen and proposed it again: the assignment was carried, but the
    new record quoted only the machine's "came back" sentence, and the genitalia note was in no current record. The
    decision's own note and every note follow it, as they follow a pending candidate's members."""
    _r1, (first,) = _triaged(db, ["S0"], [{"members": ["S0"], "parent_lineage": HARPALUS}])
    db.assign(first, 1, None, new_species="Harpalus latus", reviewer="Kari Nordmann", note="keyed with Lindroth")
    db.note(first, "det. Kari Nordmann 2026 by male genitalia", reviewer="Kari Nordmann")
    _r2, (again,) = _triaged(db, ["S0"], [{"members": ["S0"], "parent_lineage": HARPALUS}])
    assert db.proposal(again).status == "assigned" and db.proposal(again).provisional_name == "Harpalus latus"
    said = sorted((r["action"], r["reviewer"], r["note"], carried(r).source) for r in db.reviews(again))
    assert said == [("assign", "biodiscover", "keyed with Lindroth", first),
                    ("note", "Kari Nordmann", "det. Kari Nordmann 2026 by male genitalia", first)], said
    # the same for a rejected candidate's notes
    _r3, (bad,) = _triaged(db, ["S1"], [{"members": ["S1"], "parent_lineage": HARPALUS}])
    db.reject(bad, 1, reviewer="Kari Nordmann", note="contaminant")
    db.note(bad, "vial W3-40 re-extracted", reviewer="Kari Nordmann")
    _r4, (bad_again,) = _triaged(db, ["S1"], [{"members": ["S1"], "parent_lineage": HARPALUS}])
    assert db.proposal(bad_again).status == "rejected"
    assert [r["note"] for r in db.reviews(bad_again) if r["action"] == "note"] == ["vial W3-40 re-extracted"]


def test_a_note_an_older_version_carried_says_the_specimens_it_was_written_on_when_carried_again(
        db: Database) -> None:
    """The season's database (written before carried reviews were marked) held #12's copy of her note on #2, "(on
    #2) W1: 5 ex. …", with #12's own 2 week-3 specimens in its snapshot; carried again by a re-run it read "on #2: 2
    specimens of week3". It says what she wrote it on: #2's members then."""
    import sqlite3

    _r1, (first,) = _triaged(db, ["S0", "S1", "S2"], [{"members": ["S0", "S1", "S2"], "parent_lineage": HARPALUS}])
    db.note(first, "W1: 3 ex., vials W1-A1..A3", reviewer="Kari Nordmann")
    _r2, (kept, _rest) = _triaged(db, ["S0", "S1", "S2"], [{"members": ["S0", "S1"], "parent_lineage": HARPALUS},
                                                          {"members": ["S2"], "parent_lineage": HARPALUS}])
    with sqlite3.connect(db.path) as raw:  # as an older version wrote it: her name and time, "(on #N) " and no record
        assert raw.execute("UPDATE reviews SET note = '(on #' || ? || ') ' || note, after = json_remove(after, "
                           "'$.carried') WHERE proposal_id = ? AND action = 'note'", (first, kept)).rowcount == 1
    run3, (again,) = _triaged(db, ["S0", "S1"], [{"members": ["S0", "S1"], "parent_lineage": HARPALUS}])
    (note,) = [r for r in db.reviews(again) if r["action"] == "note"]
    assert (note["note"], note["reviewer"]) == ("W1: 3 ex., vials W1-A1..A3", "Kari Nordmann")
    how = carried(note)
    assert (how.source, how.run, how.written_on()) == (kept, run3, f"on #{first}: 3 specimens of plate")
