"""A candidate's member in the Darwin Core archive and assignments.csv: its own determination, the candidate beside.

e32 review R1: a pending candidate placed at order Diptera published its five members the machine had named to
subfamily Syrphinae as "Diptera" (family Syrphidae lost for GBIF), and one placed at family Chironomidae published a
member named only to order as a Chironomidae whose own remark read "confidence … at order". A pending candidate is
no one's determination of its members: each keeps its own deepest confident rank, linked to the candidate by
verbatimIdentification and taxonConceptID; an accepted one is the reviewer's, at its placement.

Real SQLite database, the real review API and the real CLI.
"""

from __future__ import annotations

import csv
from pathlib import Path

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from fixtures.inprocess import run_cli
from fixtures.review_db import one_run_db
from fixtures.run_export import export_dwca

SYRPHINAE = {"order": "Diptera", "family": "Syrphidae", "subfamily": "Syrphinae"}
CHIRONOMIDAE = {"order": "Diptera", "family": "Chironomidae"}


def _named(pid: str, lineage: dict[str, str]) -> dict[str, object]:
    deepest = list(lineage)[-1]
    return {"processid": pid, "deepest_rank": deepest, "deepest_taxon": lineage[deepest], "labels": lineage,
            "confidences": {r: 0.995 for r in lineage}, "novelty": 0.99, "is_novel": True}


def _db(path: Path) -> tuple[Path, int, list[int]]:
    db = Database.create(path)
    try:
        db.ingest([Specimen(processid=p, dna_barcode="ACGT" * 150, country="Norway")
                   for p in ("SYR1", "SYR2", "DIP1", "CHI1", "DIP2", "ACC1")], collection="plate", backup=False)
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [_named("SYR1", SYRPHINAE), _named("SYR2", SYRPHINAE),
                                   _named("DIP1", {"order": "Diptera"}), _named("CHI1", CHIRONOMIDAE),
                                   _named("DIP2", {"order": "Diptera"}), _named("ACC1", {"order": "Diptera"})])
        ids = db.write_proposals(run, [{"members": ["SYR1", "SYR2", "DIP1"], "parent_lineage": {"order": "Diptera"}},
                                       {"members": ["CHI1", "DIP2"], "parent_lineage": CHIRONOMIDAE},
                                       {"members": ["ACC1"], "parent_lineage": CHIRONOMIDAE}])
        db.finish_run(run, "completed")
        db.accept(ids[2], db.proposal(ids[2]).version, reviewer="Ana Silva")
    finally:
        db.close()
    return path, run, list(ids)


def test_a_pending_candidates_member_keeps_its_own_rank_and_links_the_candidate(tmp_path: Path) -> None:
    path, run, ids = _db(tmp_path / "lab.sqlite")
    rows, _ = export_dwca(path, run, tmp_path)
    got = {pid: (r["scientificName"], r["taxonRank"], r["identificationQualifier"], r["family"], r["subfamily"])
           for pid, r in rows.items()}
    assert got == {
        # named to subfamily, in a candidate placed at order: not "Diptera", and the family kept
        "SYR1": ("Syrphinae", "subfamily", "gen. sp.", "Syrphidae", "Syrphinae"),
        "SYR2": ("Syrphinae", "subfamily", "gen. sp.", "Syrphidae", "Syrphinae"),
        "DIP1": ("Diptera", "order", "gen. sp.", "", ""),
        "CHI1": ("Chironomidae", "family", "gen. sp.", "Chironomidae", ""),
        # named to order only, in a candidate placed at family: no family invented
        "DIP2": ("Diptera", "order", "gen. sp.", "", ""),
        # an accepted candidate is the reviewer's determination of every member, at its placement
        "ACC1": ("Chironomidae", "family", "gen. sp.", "Chironomidae", ""),
    }
    syr, dip = rows["SYR1"], rows["DIP2"]
    assert syr["verbatimIdentification"] == "Diptera gen. sp. cand" + str(ids[0])
    assert syr["taxonConceptID"].endswith(f":candidate:{ids[0]}")
    assert syr["identifiedBy"] == "biodiscover"
    assert f"candidate species {ids[0]} (status pending, version 1); the candidate is placed at order Diptera, " \
           "this specimen alone at subfamily Syrphinae" in syr["identificationRemarks"]
    assert "confidence=0.995 at order" in dip["identificationRemarks"]
    assert "the candidate is placed at family Chironomidae, this specimen alone at order Diptera" in \
        dip["identificationRemarks"]
    assert "placed at" not in rows["CHI1"]["identificationRemarks"]  # where both agree, nothing to say
    assert rows["ACC1"]["identifiedBy"] == "Ana Silva"
    # assignments.csv says the same: its determination is the archive's, its deepest_rank the machine's
    out = tmp_path / "csv"
    proc = run_cli("export", "--db", str(path), "--run", str(run), "-f", "csv", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with open(out / "assignments.csv", encoding="utf-8-sig", newline="") as f:
        sheet = {r["processid"]: r for r in csv.DictReader(f)}
    assert all(sheet[p]["taxonRank"] == sheet[p]["deepest_rank"] for p in ("SYR1", "SYR2", "DIP1", "CHI1", "DIP2"))
    assert sheet["SYR1"]["proposal_id"] == str(ids[0]) and sheet["DIP2"]["proposal_id"] == str(ids[1])


def _identifications(path: Path, run: int, where: Path, terms: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """identification.txt of run ``run``'s archive, exported into the new folder ``where``: identificationID → the
    row's ``terms``, then its identificationRemarks."""
    import io
    import zipfile

    where.mkdir()
    out = where / "a.zip"
    proc = run_cli("export", "--db", str(path), "--run", str(run), "-f", "dwca", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as zf:
        found = csv.DictReader(io.StringIO(zf.read("identification.txt").decode()), delimiter="\t",
                               quoting=csv.QUOTE_NONE)
        return {r["identificationID"]: (*(r[t] for t in terms), r["identificationRemarks"]) for r in found}


def test_the_machines_row_keeps_its_content_under_its_id_once_a_reviewer_decides(tmp_path: Path) -> None:
    """e32 review R9: before the review ``CHRSV021-08:run3`` was the current row "Chironomidae gen. sp. cand2" (the
    candidate's placement, R1) with the candidate's concept; after the review the same identificationID read
    "Chironominae gen. sp.", no concept: an aggregator keying on it saw an edit the machine never made. The
    machine's row now says the same before and after (its own rank, the candidate as it was named then)."""
    terms = ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification", "taxonConceptID",
             "identifiedBy")
    path, run = tmp_path / "lab.sqlite", 1
    (cand,) = one_run_db(path, [Specimen(processid=p, dna_barcode="ACGT" * 150) for p in ("SYR1", "DIP1")],
                         [SYRPHINAE], [{"members": ["SYR1", "DIP1"], "parent_lineage": {"order": "Diptera"}}],
                         [_named("SYR1", SYRPHINAE), _named("DIP1", {"order": "Diptera"})])

    def machine_rows(where: Path) -> dict[str, tuple[str, ...]]:
        return {i: r[:len(terms)] for i, r in _identifications(path, run, where, terms).items()
                if i.endswith(f":run{run}")}

    before = machine_rows(tmp_path / "before")
    with Database.open(path) as db:
        db.move(cand, db.proposal(cand).version, "Syrphinae", reviewer="Ana Silva")
        db.accept(cand, db.proposal(cand).version, "Syrphinae gen. sp. Tromso-B", reviewer="Ana Silva")
    after = machine_rows(tmp_path / "after")
    assert set(before) == set(after) == {f"SYR1:run{run}", f"DIP1:run{run}"}
    assert after == before
    assert before[f"SYR1:run{run}"][:4] == ("Syrphinae", "subfamily", "gen. sp.", f"Diptera gen. sp. cand{cand}")


def test_a_rejection_is_a_row_of_its_own_and_leaves_the_machines_row_as_it_was(tmp_path: Path) -> None:
    """e32 review R9, the 6 rows left: the members of the batch's rejected #3 read "Udea sp. cand3", the candidate's
    concept, "unverified (machine prediction)" under ``LEPVM619-14:run3`` before the review, and "Udea sp.", no
    concept, "candidate species rejected by reviewer" under the same id after it. The machine's row keeps its
    content; the rejection's current row has the review's id."""
    terms = ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification", "taxonConceptID",
             "identifiedBy", "identificationVerificationStatus")
    path, run = tmp_path / "lab.sqlite", 1
    (cand,) = one_run_db(path, [Specimen(processid=p, dna_barcode="ACGT" * 150) for p in ("SYR1", "SYR2")],
                         [SYRPHINAE], [{"members": ["SYR1", "SYR2"], "parent_lineage": SYRPHINAE}],
                         [_named("SYR1", SYRPHINAE), _named("SYR2", SYRPHINAE)])

    def rows(where: Path) -> dict[str, tuple[str, ...]]:
        return _identifications(path, run, where, terms)

    before = rows(tmp_path / "before")
    with Database.open(path) as db:
        review = db.reject(cand, db.proposal(cand).version, reviewer="Ana Silva", note="contaminant").review_id
    after = rows(tmp_path / "after")
    assert set(before) == {f"SYR1:run{run}", f"SYR2:run{run}"}
    assert set(after) == set(before) | {f"SYR1:review{review}", f"SYR2:review{review}"}
    for pid in ("SYR1", "SYR2"):
        mine = f"{pid}:run{run}"
        assert after[mine][:-1] == before[mine][:-1], (before[mine], after[mine])
        assert before[mine][3] == f"Syrphinae gen. sp. cand{cand}" and before[mine][4].endswith(f":candidate:{cand}")
        assert before[mine][-1].startswith("current determination")
        assert not after[mine][-1].startswith("current determination")
        now = after[f"{pid}:review{review}"]
        assert now[:4] == ("Syrphinae", "subfamily", "gen. sp.", "Syrphinae gen. sp.") and now[4] == ""
        assert now[5:7] == ("biodiscover", "candidate species rejected by reviewer (the machine's name stands)")
        assert now[-1].startswith("current determination")


def test_a_pending_candidate_a_reviewer_moved_is_the_reviewers_determination_not_the_machines(tmp_path: Path) -> None:
    """e36 rev3 F1: a pending candidate a reviewer moved into another order was published at the reviewer's
    placement with ``identifiedBy`` biodiscover, "unverified (machine prediction)", beside a remark that the machine
    had named it a fly genus: GBIF would credit the software with the reviewer's placement. The placement is the
    reviewer's, so is the determination (who, when, a status saying the candidate is still pending); the machine's
    own row is history."""
    from biodiscover.workflows.export.dwca import MOVED_STATUS

    path, run = tmp_path / "lab.sqlite", 1
    (cand,) = one_run_db(path, [Specimen(processid=p, dna_barcode="ACGT" * 150) for p in ("SYR1", "DIP1")],
                         [SYRPHINAE], [{"members": ["SYR1", "DIP1"], "parent_lineage": {"order": "Diptera"}}],
                         [_named("SYR1", SYRPHINAE), _named("DIP1", {"order": "Diptera"})])
    with Database.open(path) as db:
        db.move(cand, db.proposal(cand).version, "Syrphinae", reviewer="Ana Silva")
        assert db.proposal(cand).status == "pending"
    core, history = export_dwca(path, run, tmp_path)
    for pid in ("SYR1", "DIP1"):
        row = core[pid]
        assert (row["scientificName"], row["identifiedBy"], row["identificationVerificationStatus"]) == \
            ("Syrphinae", "Ana Silva", MOVED_STATUS), row
    machine = [r for r in csv.DictReader(history.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
               if r["identificationID"] == f"DIP1:run{run}"]
    assert [(r["scientificName"], r["identifiedBy"]) for r in machine] == [("Diptera", "biodiscover")]
