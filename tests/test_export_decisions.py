"""What reviewers decided, as the exports write it: the ``--json`` summary's counts and the Darwin Core rows.

Found by a taxonomist reviewing the demo's exports (findings F2's leftover, F12, F14). Real SQLite
database, the real review API (accept, assign, reject, note) and the real ``biodiscover export`` CLI.

The run: four candidates of one plate, one specimen each. ``BD1-24``'s candidate is placed only in the family
Phoridae and accepted (``Phoridae gen. sp. BD-0001``); ``BD2-24``'s is assigned to that accepted species (a
later specimen of it triaged apart); ``BD3-24``'s is rejected after two notes; ``BD4-24``'s waits for review.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from biodiscover.storage.db import Database
from biodiscover.storage.db.taxonomy import register_lineages
from biodiscover.storage.records import Specimen
from fixtures.inprocess import run_cli

FAMILY = {"order": "Diptera", "family": "Phoridae"}
ACCEPTED = "Phoridae gen. sp. BD-0001"
REVIEWER = "Ana Silva"
NOTES = ("two legs missing; re-check", "a contaminated well")


def _db(path: Path) -> tuple[Path, int]:
    db = Database.create(path)
    try:
        db.ingest([Specimen(processid=f"BD{i}-24", dna_barcode="ACGT" * 150, country="Peru") for i in range(1, 5)],
                  collection="plate", backup=False)
        register_lineages(db, [FAMILY], source="reference:test")
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [
            {"processid": f"BD{i}-24", "deepest_rank": "family", "deepest_taxon": "Phoridae",
             "labels": {**FAMILY, "subfamily": None, "genus": None, "species": None}, "is_novel": True,
             "confidences": {"order": 1.0, "family": 0.99}, "novelty": 0.99} for i in range(1, 5)])
        ids = db.write_proposals(run, [{"members": [f"BD{i}-24"], "parent_lineage": FAMILY} for i in range(1, 5)])
        db.finish_run(run, "completed")
        accepted, assigned, rejected, _pending = ids
        db.accept(accepted, db.proposal(accepted).version, reviewer=REVIEWER)
        (species_id, _), = db.known_species(ACCEPTED, limit=1)
        db.assign(assigned, db.proposal(assigned).version, species_id, reviewer=REVIEWER)
        for note in NOTES:
            db.note(rejected, note, reviewer=REVIEWER)
        db.reject(rejected, db.proposal(rejected).version, reviewer=REVIEWER)
    finally:
        db.close()
    return path, run


def _export(tmp_path: Path, fmt: str, out: Path, json_summary: bool = True) -> subprocess.CompletedProcess[str]:
    path, run = _db(tmp_path / "lab.sqlite")
    proc = run_cli("export", "--db", str(path), "--run", str(run), "-f", fmt, "-o", str(out), "--creator",
                   "Ana Silva <ana@example.org>", "--licence", "CC0-1.0", *(["--json"] if json_summary else []),
                   env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture()
def occurrences(tmp_path: Path) -> dict[str, dict[str, str]]:
    out = tmp_path / "plate.zip"
    _export(tmp_path, "dwca", out)
    with zipfile.ZipFile(out) as zf:
        text = zf.read("occurrence.txt").decode("utf-8")
    return {r["id"]: r for r in csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)}


def test_the_json_summary_counts_each_status_on_its_own(tmp_path: Path) -> None:
    """``"rejected": 2`` for one rejected and one assigned proposal: the assigned one was counted as rejected
    (F14). Each status is counted on its own, and together they are every proposal of the run: ``proposals``, as
    the line without --json counts them (e32 review R18: "proposals": 63 beside "65 candidate species proposed");
    ``candidates`` the ones still candidate species."""
    run = _export(tmp_path, "json", tmp_path / "run.json")
    summary = json.loads(run.stdout)
    assert summary["rejected"] == 1, summary
    assert {k: summary[k] for k in ("specimens", "proposals", "candidates", "accepted", "pending", "rejected",
                                    "assigned", "superseded")} == {
        "specimens": 4, "proposals": 4, "candidates": 2, "accepted": 1, "pending": 1, "rejected": 1, "assigned": 1,
        "superseded": 0}
    assert summary["proposals"] == sum(summary[k] for k in ("accepted", "pending", "rejected", "assigned"))
    (tmp_path / "plain").mkdir()
    plain = _export(tmp_path / "plain", "json", tmp_path / "plain" / "run.json", json_summary=False)
    assert f"{summary['proposals']} candidate species proposed (" in plain.stdout, plain.stdout


def test_a_candidate_assigned_to_an_accepted_species_above_genus_is_in_open_nomenclature(
        occurrences: dict[str, dict[str, str]]) -> None:
    """A later candidate assigned to the accepted ``Phoridae gen. sp. BD-0001`` went out as that whole name at
    species rank, a "binomial" GBIF cannot match (F2's leftover: the interim-name rule only knew ``… sp. …``).
    It is written as the accepted candidate itself is: the family at its rank, ``gen. sp.``, the name verbatim,
    and still the reviewer's identification."""
    terms = ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification")
    assigned, accepted = occurrences["BD2-24"], occurrences["BD1-24"]
    assert [assigned[t] for t in terms] == ["Phoridae", "family", "gen. sp.", ACCEPTED]
    assert [assigned[t] for t in terms] == [accepted[t] for t in terms]
    assert (assigned["identifiedBy"], assigned["identificationVerificationStatus"]) == (
        REVIEWER, "identified by reviewer (provisional species)")
    assert assigned["taxonConceptID"] == accepted["taxonConceptID"] != ""  # one concept, the accepted candidate's


def test_a_candidate_assigned_to_a_species_accepted_under_a_binomial_is_written_as_that_species_is(
        tmp_path: Path) -> None:
    """A third real-plate review: #4 accepted as "Bactrocera aquilonis" (a described species the reference lacked),
    #51 assigned to it. #4's 24 specimens went to GBIF as "Bactrocera sp." (its name verbatim) and #51's one as
    the described species at species rank, "known species", with no taxonConceptID: one taxon written two ways.
    The assigned one is written as the accepted candidate is, with its concept."""
    genus = {"order": "Diptera", "family": "Tephritidae", "genus": "Bactrocera"}
    path = tmp_path / "lab.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(processid=f"T{i}", dna_barcode="ACGT" * 150, country="Australia") for i in (1, 2)],
                  collection="plate", backup=False)
        register_lineages(db, [genus], source="reference:test")
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [
            {"processid": f"T{i}", "deepest_rank": "genus", "deepest_taxon": "Bactrocera", "is_novel": True,
             "labels": {**genus, "subfamily": None, "species": None}, "confidences": {"order": 1.0, "genus": 0.99},
             "novelty": 0.99} for i in (1, 2)])
        accepted, assigned = db.write_proposals(run, [{"members": [f"T{i}"], "parent_lineage": genus}
                                                      for i in (1, 2)])
        db.finish_run(run, "completed")
        made = db.accept(accepted, 1, "Bactrocera aquilonis", reviewer=REVIEWER)
        db.assign(assigned, 1, made.taxon_id, reviewer=REVIEWER)
    out = tmp_path / "plate.zip"
    proc = run_cli("export", "--db", str(path), "--run", str(run), "-f", "dwca", "-o", str(out), "--creator",
                   "Ana Silva <ana@example.org>", "--licence", "CC0-1.0", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as zf:
        rows = {r["id"]: r for r in csv.DictReader(io.StringIO(zf.read("occurrence.txt").decode("utf-8")),
                                                   delimiter="\t", quoting=csv.QUOTE_NONE)}
    terms = ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification", "taxonConceptID")
    assert [rows["T2"][t] for t in terms] == [rows["T1"][t] for t in terms]
    assert [rows["T2"][t] for t in terms[:4]] == ["Bactrocera", "genus", "sp.", "Bactrocera aquilonis"]
    assert rows["T2"]["identificationVerificationStatus"] == "identified by reviewer (provisional species)"


def test_a_rejection_says_who_and_when_and_each_note_is_told_apart(occurrences: dict[str, dict[str, str]],
                                                                   tmp_path: Path) -> None:
    """A rejected candidate's specimen read "rejected by a reviewer", still "unverified (machine prediction)",
    with no reviewer and no day, unlike an accepted or assigned one; and its notes were joined with "; ", the
    separator the remarks use between their own parts (F12). The rejection is now the reviewer's, dated, the
    machine's name standing (and kept in the history); each note is quoted, so a note holding "; " stays one."""
    row = occurrences["BD3-24"]
    accepted = occurrences["BD1-24"]
    # identifiedBy is who assigned the taxon: the machine's name stands, so the machine; the rejection is in the
    # remarks, with who and when (the export review's F11)
    assert (row["identifiedBy"], row["identificationVerificationStatus"]) == (
        "biodiscover", "candidate species rejected by reviewer (the machine's name stands)")
    assert (row["scientificName"], row["taxonRank"], row["identificationQualifier"]) == (
        "Phoridae", "family", "gen. sp.")
    day = accepted["dateIdentified"]
    assert row["identificationRemarks"].endswith(
        f'; proposed in candidate species 3, rejected by {REVIEWER} on {day}; reviewer notes: “{NOTES[0]}” '
        f'({REVIEWER}, {day}); “{NOTES[1]}” ({REVIEWER}, {day})'), row["identificationRemarks"]
    with zipfile.ZipFile(tmp_path / "plate.zip") as zf:
        history = list(csv.DictReader(io.StringIO(zf.read("identification.txt").decode("utf-8")), delimiter="\t",
                                      quoting=csv.QUOTE_NONE))
    # the machine's name, current: the rejection let it stand; under the rejection's own id, the machine's row (the
    # candidate it proposed) kept as the export before the review wrote it (e32 review R9)
    assert [(h["identificationID"].split(":")[1].rstrip("0123456789"), h["identifiedBy"], h["scientificName"],
             h["identificationRemarks"].startswith("current determination"))
            for h in history if h["coreid"] == "BD3-24"] == [("run", "biodiscover", "Phoridae", False),
                                                             ("review", "biodiscover", "Phoridae", True)]


def test_a_rejected_candidate_the_machine_named_nowhere_below_class_does_not_claim_the_machines_name(
        tmp_path: Path) -> None:
    """A third real-plate review (C4): #53, unplaced (the machine named its one specimen nowhere, not even to
    order), was rejected and went to GBIF as ``Insecta`` at class with "the machine's name stands": the machine
    gave no name. It says what is true: the reviewer rejected the candidate species and the specimen stays at
    class. A rejected candidate the machine named to order keeps saying the machine's name stands; the per-specimen
    sheet says what the archive says."""
    order = {"order": "Lepidoptera"}
    path = tmp_path / "lab.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(processid=p, dna_barcode="ACGT" * 150, country="Australia") for p in ("U1", "O1")],
                  collection="plate", backup=False)
        register_lineages(db, [order], source="reference:test")
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [
            {"processid": "U1", "deepest_rank": None, "deepest_taxon": None, "is_novel": True,
             "labels": {"order": "Lepidoptera"}, "confidences": {"order": 0.977}, "novelty": 0.99},
            {"processid": "O1", "deepest_rank": "order", "deepest_taxon": "Lepidoptera", "is_novel": True,
             "labels": order, "confidences": {"order": 0.99}, "novelty": 0.99}])
        unplaced, in_order = db.write_proposals(run, [{"members": ["U1"]},
                                                      {"members": ["O1"], "parent_lineage": order}])
        db.finish_run(run, "completed")
        for pid in (unplaced, in_order):
            db.reject(pid, db.proposal(pid).version, reviewer=REVIEWER, note="singleton, partial read")
    for fmt, out in (("dwca", tmp_path / "plate.zip"), ("csv", tmp_path / "csv")):
        proc = run_cli("export", "--db", str(path), "--run", str(run), "-f", fmt, "-o", str(out), "--creator",
                       "Ana Silva <ana@example.org>", "--licence", "CC0-1.0", env={"XDG_CONFIG_HOME": str(tmp_path)})
        assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(tmp_path / "plate.zip") as zf:
        core = {r["id"]: r for r in csv.DictReader(io.StringIO(zf.read("occurrence.txt").decode("utf-8")),
                                                   delimiter="\t", quoting=csv.QUOTE_NONE)}
    with open(tmp_path / "csv" / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        sheet = {r["processid"]: r for r in csv.DictReader(fh)}
    terms = ("scientificName", "taxonRank", "identifiedBy", "identificationVerificationStatus")
    assert [core["U1"][t] for t in terms] == [
        "Insecta", "class", "biodiscover",
        "candidate species rejected by reviewer (the specimen stays at class: nothing below it was named)"]
    assert [core["O1"][t] for t in terms] == [
        "Lepidoptera", "order", "biodiscover", "candidate species rejected by reviewer (the machine's name stands)"]
    for pid in ("U1", "O1"):
        assert [sheet[pid][t] for t in terms] == [core[pid][t] for t in terms]
        assert sheet[pid]["candidate_status"] == "rejected"
