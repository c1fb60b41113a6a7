"""Reopening a decision made in an earlier session (e29 F2), through the storage API and the exports.

A taxonomist's season review rejected #3 in week 1 as "known species"; in week 3 she knew which, opened #3 in a new
session and pressed ``i``: the dialog let her pick and confirm *Brachypogon incompletus*, then said "cannot assign
proposal 3: it is rejected (undo that decision first)", and ``u`` said "nothing to undo in this session" (undo is
per session). ``Database.reopen`` takes back the decision in force from any session: a ``reopen`` row targets it
(the decision stays in the log, out of force, as an undo's target), with an optimistic version as every review
action, and the candidate is pending again. The exports read the reopened decision as not in force.

Real SQLite database, the real review API and the real CLI.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from biodiscover.storage.db import Database
from biodiscover.storage.errors import DatabaseError, StaleProposalError
from fixtures.inprocess import run_cli
from fixtures.db_views import proposal_members
from fixtures.review_db import build_review_db


def _export(home: Path, db: Path, run: int, fmt: str, out: Path) -> None:
    proc = run_cli("export", "--db", str(db), "--run", str(run), "-f", fmt, "-o", str(out),
                   env={"XDG_CONFIG_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def _species(db: Database, name: str) -> int:
    (tid,) = [t for t, label in db.known_species(name, limit=5) if label.split("  (")[0] == name]
    return tid


def test_a_rejection_of_an_earlier_session_is_reopened_then_assigned_and_the_exports_read_so(tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=6)
    p = fx.proposal_ids[0]
    with Database.open(fx.path) as week1:  # the first session
        rejected = week1.reject(p, week1.proposal(p).version, reviewer="Kari Nordmann", note="known species")
    db = Database.open(fx.path)  # a later session: nothing of the first one's in memory
    try:
        species = db.proposal(p).nearest_species
        tid = _species(db, species)
        with pytest.raises(DatabaseError, match=rf"cannot assign proposal {p}: it is rejected \(reopen it first\)"):
            db.assign(p, db.proposal(p).version, tid, reviewer="Kari Nordmann")
        assert db.decision_in_force(p)["id"] == rejected.review_id
        seen = db.proposal(p).version
        with pytest.raises(StaleProposalError, match="changed since you loaded it"):
            db.reopen(p, seen - 1, reviewer="Kari Nordmann")
        reopened = db.reopen(p, seen, reviewer="Kari Nordmann", note="it is Brachypogon incompletus")
        now = db.proposal(p)
        assert (now.status, now.taxon_id, now.version) == ("pending", None, seen + 1)
        assert reopened.versions == {p: seen + 1}
        log = sorted(db.reviews(p), key=lambda r: r["id"])
        # the rejection stays, word for word; the reopen names it and says who and when
        assert [(r["action"], r["reviewer"], r["note"], r["target_review_id"]) for r in log] == [
            ("reject", "Kari Nordmann", "known species", None),
            ("reopen", "Kari Nordmann", "it is Brachypogon incompletus", rejected.review_id)]
        assert log[1]["created_at"] >= log[0]["created_at"]
        assert db.decision_in_force(p) is None
        with pytest.raises(DatabaseError, match=rf"cannot reopen proposal {p}: it is pending$"):
            db.reopen(p, now.version, reviewer="Kari Nordmann")
        assigned = db.assign(p, now.version, tid, reviewer="Kari Nordmann")
        assert db.decision_in_force(p)["id"] == assigned.review_id
        members = proposal_members(db, p)
    finally:
        db.close()

    _export(tmp_path, fx.path, fx.run_id, "json", tmp_path / "run.json")
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    (prop,) = [x for x in doc["proposals"] if x["proposal_id"] == p]
    assert (prop["review"]["decision"], prop["review"]["decided_by"]) == ("assign", "Kari Nordmann")
    assert [(h["review_id"], h["action"], h["undone_by"], h["undoes"]) for h in prop["review"]["history"]] == [
        (rejected.review_id, "reject", reopened.review_id, None),
        (reopened.review_id, "reopen", None, rejected.review_id),
        (assigned.review_id, "assign", None, None)]

    _export(tmp_path, fx.path, fx.run_id, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        row = {int(r["proposal_id"]): r for r in csv.DictReader(fh)}[p]
    assert (row["decision"], row["decided_by"], row["name"]) == ("assign", "Kari Nordmann", species)
    # the reopen's reason is in force; the rejection's went with it (as an undone one's), kept in the history
    assert "it is Brachypogon incompletus" in row["review_notes"] and "known species" not in row["review_notes"]
    assert row["reviewers"] == "Kari Nordmann"
    with open(tmp_path / "csv" / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        named = {r["processid"]: r for r in csv.DictReader(fh) if r["processid"] in set(members)}
    assert len(named) == len(members)
    assert {(r["verbatimIdentification"], r["candidate_status"], r["identifiedBy"]) for r in named.values()} == \
        {(species, "assigned", "Kari Nordmann")}


def test_reopening_an_accepted_species_keeps_its_rename_takes_its_taxon_out_and_undo_brings_it_back(
        tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=6)
    p, q = fx.proposal_ids[:2]
    with Database.open(fx.path) as db:
        before = db.proposal(p)
        accepted = db.accept(p, before.version, reviewer="Ana Silva")
        renamed = db.rename(p, db.proposal(p).version, "Kruger sp. 1", reviewer="Ana Silva")
        # another candidate assigned to the new species holds it: reopening would orphan that assignment
        other = db.assign(q, db.proposal(q).version, accepted.taxon_id, reviewer="Ben Ode")
        with pytest.raises(DatabaseError, match=rf"proposal {q} was assigned to Kruger sp. 1 since; reopen that one"):
            db.reopen(p, db.proposal(p).version, reviewer="Ana Silva")
        db.reopen(q, db.proposal(q).version, reviewer="Ben Ode")
        # the assign gave #q its species' name and genus: reopened, it has its own again
        back = db.proposal(q)
        assert (back.status, back.provisional_name, back.parent_taxon_id) == \
            ("pending", None, db.reviews(q)[-1]["before"]["proposals"][str(q)]["parent_taxon_id"])
        assert other.review_id in {r["target_review_id"] for r in db.reviews(q)}
        reopen = db.reopen(p, db.proposal(p).version, reviewer="Ana Silva")
        now = db.proposal(p)
        # pending again under the name the later rename gave (a reviewer's, still in force), the species taken out
        assert (now.status, now.taxon_id, now.provisional_name) == ("pending", None, "Kruger sp. 1")
        assert accepted.taxon_id not in db.taxonomy()  # status rejected: out of every list and search
        assert "Kruger sp. 1" not in db.provisional_concepts()
        assert [r["action"] for r in sorted(db.reviews(p), key=lambda r: r["id"])] == ["accept", "rename", "reopen"]
        assert renamed.review_id not in {r["target_review_id"] for r in db.reviews(p)}
        # the reopen is a review like any other: undone (in its session), the acceptance is back in force
        db.undo(reopen.review_id, reviewer="Ana Silva")
        again = db.proposal(p)
        assert (again.status, again.taxon_id, again.provisional_name) == ("accepted", accepted.taxon_id,
                                                                          "Kruger sp. 1")
        assert db.taxonomy().node(accepted.taxon_id).status == "provisional"
        assert db.decision_in_force(p)["id"] == accepted.review_id
    _export(tmp_path, fx.path, fx.run_id, "json", tmp_path / "run.json")
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    (prop,) = [x for x in doc["proposals"] if x["proposal_id"] == p]
    assert (prop["review"]["decision"], prop["review"]["decided_by"]) == ("accept", "Ana Silva")


def test_a_fresh_accept_of_a_reopened_candidate_takes_back_only_what_the_accept_gave(tmp_path: Path) -> None:
    """Without a later rename the accept's own name goes with it: pending under the name it had before."""
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=6)
    p = fx.proposal_ids[0]
    with Database.open(fx.path) as db:
        working = db.proposal(p)
        db.accept(p, working.version, reviewer="Ana Silva")
        db.reopen(p, db.proposal(p).version, reviewer="Ana Silva")
        now = db.proposal(p)
        assert (now.status, now.provisional_name, now.name, now.parent_taxon_id) == \
            ("pending", working.provisional_name, working.name, working.parent_taxon_id)
        again = db.accept(p, now.version, reviewer="Ana Silva")
        assert again.name.endswith("BD-0002")  # a BD number is never reused


def test_reopening_a_rejection_reopens_the_later_runs_rejections_that_repeated_it_each_undoable(
        tmp_path: Path) -> None:
    """Week 3's bad read (vial W3-40) was rejected as #10; the re-run (run 5) proposed the very specimen again and
    the database rejected #13 citing #10. Reopening #10 left #13 rejected: the specimen she now means to name stayed
    "rejected by Kari Nordmann" in run 5's exports and out of the queue (e29). A rejection's repetitions are reopened
    with it, each as its own reopen (undoable alone); another rejection, and its repetition, are left as they are."""
    from biodiscover.storage.records import Specimen

    place = {"order": "Coleoptera", "family": "Chrysomelidae", "genus": "Phyllotreta"}
    db = Database.create(tmp_path / "lab.sqlite")
    try:
        db.ingest([Specimen(processid=p, genus="Phyllotreta", dna_barcode="ACGT" * 150) for p in ("W3-40", "W3-41")],
                  collection="week3", backup=False)
        groups = [{"members": ["W3-40"], "parent_lineage": place}, {"members": ["W3-41"], "parent_lineage": place}]

        def triage() -> tuple[int, list[int]]:
            run = db.start_run("triage", {}, backup=False)
            ids = db.write_proposals(run, groups)
            db.finish_run(run, "completed")
            return run, ids

        _run1, (bad, kept) = triage()
        db.reject(bad, db.proposal(bad).version, reviewer="Kari Nordmann", note="⚠COI: contaminant")
        db.reject(kept, db.proposal(kept).version, reviewer="Kari Nordmann", note="mixed sample")
        run5, (again, kept_again) = triage()
        _run6, (third, _kept_third) = triage()
        assert {db.proposal(i).status for i in (again, kept_again, third)} == {"rejected"}
        assert db.repeated_rejections(bad) == [again, third]
        reopened = db.reopen(bad, db.proposal(bad).version, reviewer="Kari Nordmann", note="a Phyllotreta after all")
        assert reopened.reopened == (again, third)
        assert [db.proposal(i).status for i in (bad, again, third, kept, kept_again)] == [
            "pending", "pending", "pending", "rejected", "rejected"]
        follows = f"follows from reopening #{bad} (review {reopened.review_id}): its rejection repeated that one"
        log = sorted(db.reviews(again), key=lambda r: r["id"])
        assert [(r["action"], r["reviewer"], r["note"]) for r in log] == [
            ("reject", "biodiscover", "⚠COI: contaminant"), ("reopen", "Kari Nordmann", follows)]
        assert log[1]["target_review_id"] == log[0]["id"]
        # each its own review: undoing the third's reopen rejects it again, and nothing else
        (third_reopen,) = [r for r in db.reviews(third) if r["action"] == "reopen"]
        db.undo(third_reopen["id"], reviewer="Kari Nordmann")
        assert [db.proposal(i).status for i in (bad, again, third)] == ["pending", "pending", "rejected"]
    finally:
        db.close()
    _export(tmp_path, tmp_path / "lab.sqlite", run5, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        row = {int(r["proposal_id"]): r for r in csv.DictReader(fh)}[again]
    assert (row["status"], row["decision"]) == ("pending", "")
    assert "contaminant" not in row["review_notes"] and follows in row["review_notes"]


def test_undoing_a_reopen_rejects_its_repetitions_again_but_keeps_what_she_decided_on_them_since(
        tmp_path: Path) -> None:
    """Reopening a rejection reopens the later runs' rejections that repeated it; undoing that reopen (``u`` right
    after ``R``, one key each) put back only hers, and left #13 and #16 pending: a reviewer who changed her mind back
    had to find and reject each repetition anew (e30, left). The undo of a reopen now undoes the reopens that
    followed from it, in the same transaction, each logged as its own undo; a repetition she has decided anew since
    keeps her later decision (it is hers, not the database's repetition of the one undone)."""
    from biodiscover.storage.records import Specimen

    place = {"order": "Coleoptera", "family": "Chrysomelidae", "genus": "Phyllotreta"}
    db = Database.create(tmp_path / "lab.sqlite")
    try:
        db.ingest([Specimen(processid="W3-40", genus="Phyllotreta", dna_barcode="ACGT" * 150)], collection="week3",
                  backup=False)

        def triage() -> int:
            run = db.start_run("triage", {}, backup=False)
            (pid,) = db.write_proposals(run, [{"members": ["W3-40"], "parent_lineage": place}])
            db.finish_run(run, "completed")
            return pid

        bad = triage()
        first = db.reject(bad, db.proposal(bad).version, reviewer="Kari Nordmann", note="⚠COI: contaminant")
        again, third, fourth = triage(), triage(), triage()
        reopened = db.reopen(bad, db.proposal(bad).version, reviewer="Kari Nordmann", note="a Phyllotreta after all")
        assert reopened.reopened == (again, third, fourth)
        # she decides the third anew herself before changing her mind about #bad
        db.reject(third, db.proposal(third).version, reviewer="Kari Nordmann", note="mixed well")
        undone = db.undo(reopened.review_id, reviewer="Kari Nordmann")
        assert (undone.restored, undone.kept) == ((fourth, again), (third,))
        assert [db.proposal(i).status for i in (bad, again, third, fourth)] == ["rejected"] * 4
        assert db.decision_in_force(bad)["id"] == first.review_id
        assert db.decision_in_force(third)["note"] == "mixed well"
        for pid in (again, fourth):  # the database's rejection citing hers is in force again, undo logged on it
            assert db.decision_in_force(pid)["reviewer"] == "biodiscover"
            (row,) = [r for r in db.reviews(pid) if r["action"] == "undo"]
            assert row["reviewer"] == "Kari Nordmann"
            assert row["note"] == f"follows from undoing review {reopened.review_id} (the reopen of #{bad})"
        assert not [r for r in db.reviews(third) if r["action"] == "undo"]
        # undone alone first, a repetition is not undone twice
        reopened = db.reopen(bad, db.proposal(bad).version, reviewer="Kari Nordmann")
        assert reopened.reopened == (again, fourth)
        db.undo(max(r["id"] for r in db.reviews(fourth) if r["action"] == "reopen"), reviewer="Kari Nordmann")
        undone = db.undo(reopened.review_id, reviewer="Kari Nordmann")
        assert (undone.restored, undone.kept) == ((again,), (fourth,))
        assert [db.proposal(i).status for i in (bad, again, fourth)] == ["rejected"] * 3
    finally:
        db.close()
