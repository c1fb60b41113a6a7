"""assignments.csv carries each specimen's current determination, the same as the Darwin Core core.

Found reviewing the demo's export (FINDINGS F4): ``SOONR2410-20``, whose candidate a reviewer identified as
``Tiaopsis sp. BIOUG57720-B08``, showed only the machine's genus with an empty ``proposal_id``; the members
of a rejected candidate were not marked; an accepted candidate's members had its name but no status. The
DwC core said "identified by reviewer". Both now read the determination from one place
(:func:`biodiscover.workflows.export.dwca.determinations`).

Real SQLite database, the real review API and the real CLI.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

from biodiscover.storage.db import Database
from fixtures.inprocess import run_cli
from fixtures.db_views import proposal_members
from fixtures.review_db import ReviewFixture, build_review_db

#: The Darwin Core terms of a current determination, as assignments.csv names its columns.
DETERMINATION_TERMS = ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification",
                       "identifiedBy", "dateIdentified", "identificationVerificationStatus")


def _cli(home: Path, *args: str) -> None:
    proc = run_cli("export", *args, env={"XDG_CONFIG_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def _decided(tmp_path: Path) -> tuple[ReviewFixture, list[int]]:
    """The fixture database with its first four candidates accepted, rejected, assigned and left pending."""
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=4)
    acc, rej, ass, _ = fx.proposal_ids[:4]
    with Database.open(fx.path) as db:
        db.accept(acc, db.proposal(acc).version, reviewer="Ana Silva")
        db.reject(rej, db.proposal(rej).version, reviewer="Ben Ode", note="contaminated wells")
        known_id, _ = db.known_species(limit=1)[0]
        db.assign(ass, db.proposal(ass).version, known_id, reviewer="Cy Roe")
    return fx, fx.proposal_ids[:4]


def _sheet_and_json(tmp_path: Path, fx: ReviewFixture) -> tuple[dict[str, dict], dict[str, dict]]:
    """The run exported as csv and json through the CLI: processid → its assignments.csv row, its JSON row."""
    run = str(fx.run_id)
    _cli(tmp_path, "--db", str(fx.path), "--run", run, "-f", "csv", "-o", str(tmp_path / "csv"))
    _cli(tmp_path, "--db", str(fx.path), "--run", run, "-f", "json", "-o", str(tmp_path / "run.json"))
    with open(tmp_path / "csv" / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        sheet = {r["processid"]: r for r in csv.DictReader(fh)}
    rows = {r["processid"]: r for r in json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["assignments"]}
    return sheet, rows


def test_each_specimen_carries_the_determination_the_darwin_core_core_gives(tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=4)
    acc, rej, ass, pend = fx.proposal_ids[:4]
    db = Database.open(fx.path)
    try:
        db.accept(acc, db.proposal(acc).version, reviewer="Ana Silva")
        db.reject(rej, db.proposal(rej).version, reviewer="Ben Ode", note="contaminated wells")
        known_id, known_label = db.known_species(limit=1)[0]
        db.assign(ass, db.proposal(ass).version, known_id, reviewer="Cy Roe")
        members = {p: set(proposal_members(db, p)) for p in (acc, rej, ass, pend)}
        decided_on = {r["proposal_id"]: r["created_at"][:10] for r in db.reviews()}
        accepted_name = db.proposal(acc).provisional_name
    finally:
        db.close()
    run = str(fx.run_id)
    _cli(tmp_path, "--db", str(fx.path), "--run", run, "-f", "csv", "-o", str(tmp_path / "csv"))
    _cli(tmp_path, "--db", str(fx.path), "--run", run, "-f", "dwca", "-o", str(tmp_path / "a.zip"))
    with open(tmp_path / "csv" / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        sheet = {r["processid"]: r for r in csv.DictReader(fh)}
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        core = {r["id"]: r for r in csv.DictReader(io.StringIO(zf.read("occurrence.txt").decode("utf-8")),
                                                   delimiter="\t", quoting=csv.QUOTE_NONE)}
    assert set(sheet) == set(core)
    # every specimen, reviewed or not: the sheet says what the archive says
    for pid, row in sheet.items():
        assert {t: row[t] for t in DETERMINATION_TERMS} == {t: core[pid][t] for t in DETERMINATION_TERMS}, pid

    def of(pid: int) -> list[dict[str, str]]:
        assert members[pid]
        return [sheet[m] for m in sorted(members[pid])]

    for row in of(ass):  # identified as a known species: that species, by that reviewer, on that day; still its
        # candidate's members (a data manager found the link lost: MHACG775-05 proposal_id='', status assigned)
        assert (row["proposed_in"], row["candidate_status"], row["proposal_id"]) == (str(ass), "assigned", str(ass))
        assert (row["verbatimIdentification"], row["identifiedBy"], row["dateIdentified"]) == \
            (known_label.split("  ")[0], "Cy Roe", decided_on[ass])
        assert row["identificationVerificationStatus"] == "identified by reviewer (known species)"
    for row in of(rej):  # rejected: marked, the machine's name stands (and is the machine's), rejected by whom, when
        assert (row["proposed_in"], row["candidate_status"], row["proposal_id"]) == (str(rej), "rejected", "")
        assert f"rejected by Ben Ode on {decided_on[rej]}" in core[row["processid"]]["identificationRemarks"]
        assert (row["identifiedBy"], row["identificationVerificationStatus"]) == \
            ("biodiscover", "candidate species rejected by reviewer (the machine's name stands)")
    for row in of(acc):  # accepted: open nomenclature, the reviewer and the day, and the status
        assert (row["proposed_in"], row["candidate_status"], row["proposal_id"]) == (str(acc), "accepted", str(acc))
        assert (row["verbatimIdentification"], row["identificationQualifier"], row["identifiedBy"],
                row["dateIdentified"]) == (accepted_name, "sp.", "Ana Silva", decided_on[acc])
        assert row["identificationVerificationStatus"] == "identified by reviewer (provisional species)"
    for row in of(pend):
        assert (row["candidate_status"], row["identifiedBy"]) == ("pending", "biodiscover")
    proposed = set().union(*members.values())
    outside = [r for p, r in sheet.items() if p not in proposed]
    assert outside and all(r["proposed_in"] == r["candidate_status"] == "" for r in outside)


def test_the_json_export_carries_each_specimens_determination_as_assignments_csv_does(tmp_path: Path) -> None:
    """A third real-plate review (C3): the JSON export's ``assignments`` rows ended at the machine's ``reason``
    (no candidate, status, reviewer or determination, which assignments.csv has): a script reading the
    "everything" export had to join the proposals itself. Each row now carries every column of assignments.csv,
    with the same values. ``taxon_id`` is written by no run: columns.txt says it is always empty, as it is."""
    fx, (acc, rej, ass, pend) = _decided(tmp_path)
    sheet, rows = _sheet_and_json(tmp_path, fx)
    assert set(rows) == set(sheet)
    compared = ("proposal_id", "provisional_name", "proposed_in", "candidate_status", *DETERMINATION_TERMS)
    for pid, row in sheet.items():
        assert list(rows[pid]) == list(row), pid  # the same columns, in the same order
        assert {c: "" if rows[pid][c] is None else str(rows[pid][c]) for c in compared} == \
            {c: row[c] for c in compared}, pid
    statuses = {r["proposed_in"]: (r["candidate_status"], r["identifiedBy"]) for r in rows.values() if r["proposed_in"]}
    assert statuses == {acc: ("accepted", "Ana Silva"), rej: ("rejected", "biodiscover"), ass: ("assigned", "Cy Roe"),
                        pend: ("pending", "biodiscover")}
    assert all(r["taxon_id"] == "" for r in sheet.values())
    columns = (tmp_path / "csv" / "columns.txt").read_text(encoding="utf-8")
    assert "  taxon_id — always empty" in columns


def test_no_name_below_the_deepest_confident_rank_in_assignments_csv_or_the_json(tmp_path: Path) -> None:
    """A data manager's review of a real plate (F8): the 120 specimens not named to species all had
    ``label_species`` filled (confidence 0.0015-0.01), 88 of them a wrong species (CHEIK004-13 "Metriocnemus
    brusti" beside its scientificName *Pseudosmittia albipennis*), and columns.txt called it "the machine's species
    for the specimen": a spreadsheet pivoted on it counts false records. A taxonomist writes no name the machine
    did not give with confidence: ``label_<rank>`` is empty below ``deepest_rank`` (all of them where it named
    none), in the CSV and in the JSON (one table); ``confidence_<rank>`` stays, and columns.txt says both."""
    from biodiscover.storage.records import RANKS

    import sqlite3

    fx, _ = _decided(tmp_path)
    # what a real triage stores below the deepest confident rank: the model's best guess at every rank (the
    # fixture's engine results stop at genus)
    with sqlite3.connect(fx.path) as con:
        con.execute("UPDATE assignments SET label_species = label_genus || ' brusti', confidence_species = 0.002 "
                    "WHERE deepest_rank = 'genus'")
    con.close()
    with Database.open(fx.path) as db:
        stored = {r["processid"]: r for r in db.assignments(fx.run_id).to_dict("records")}
    sheet, rows = _sheet_and_json(tmp_path, fx)
    shallow = 0
    for pid, row in sheet.items():
        deepest = row["deepest_rank"]
        named = RANKS[: RANKS.index(deepest) + 1] if deepest else ()
        for rank in RANKS:
            machine = stored[pid][f"label_{rank}"]
            if rank in named:
                assert row[f"label_{rank}"] == (machine or "") and rows[pid][f"label_{rank}"] == machine, (pid, rank)
            else:
                shallow += isinstance(machine, str)
                assert row[f"label_{rank}"] == "" and rows[pid][f"label_{rank}"] is None, (pid, rank, machine)
            conf = stored[pid][f"confidence_{rank}"]
            assert (row[f"confidence_{rank}"] != "") == (conf is not None and conf == conf), (pid, rank)  # kept
    assert shallow > 50  # the fixture's candidates' members: labelled to species by the machine, not named there
    columns = (tmp_path / "csv" / "columns.txt").read_text(encoding="utf-8")
    assert ("  label_species — the machine's species for the specimen where it named one with confidence (species "
            "at or above deepest_rank); empty below it: its best guess there is no determination (confidence_species "
            "says how likely it was, reason names the rivals)") in columns
    assert "  confidence_species — probability (0-1) that the machine's best guess at species is right" in columns
