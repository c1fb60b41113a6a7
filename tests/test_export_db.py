"""Exports from a real SQLite database filled through the storage API, and the CLI verb."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from fixtures.run_export import make_run_export
from biodiscover.cli.main import main
from biodiscover.workflows.export import export_run

db_mod = pytest.importorskip("biodiscover.storage.db.database")


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory) -> tuple[Path, int, dict]:
    """A database holding one completed triage run with candidates (one accepted when reviews exist)."""
    data = make_run_export(n_known=30, n_candidates=6, seed=3)
    path = tmp_path_factory.mktemp("db") / "work.sqlite"
    db = db_mod.Database.create(path)
    specimens = [Specimen.from_row({k: _clean(v) for k, v in row.items()}, source="plate-1.csv", line=i + 2)
                 for i, row in enumerate(data.specimens.to_dict(orient="records"))]
    db.ingest(specimens, collection="plate-1", backup=False)
    run = db.start_run("triage", {"k": 20}, model_fingerprint="sha256:feedbeef", collection="plate-1", backup=False)
    db.write_assignments(run, [{k: _clean(v) for k, v in r.items()} for r in data.assignments.to_dict("records")])
    proposals = []
    for _, p in data.proposals.iterrows():
        mem = data.members[data.members["proposal_id"] == p["proposal_id"]]
        proposals.append({"members": list(zip(mem["processid"], mem["probability"])), "parent_rank": "genus",
                          "parent_name": "Megaselia", "provisional_name": p["provisional_name"],
                          "novelty": 0.9, "nearest_species": "Megaselia k1", "nearest_identity": 0.91,
                          "evidence": p["evidence"]})
    ids = db.write_proposals(run, proposals)
    db.finish_run(run, "completed")
    # A taxonomist accepts the largest candidate (default name) and rejects the first.
    largest = max(ids, key=lambda i: db.proposal(i).size)
    db.accept(largest, expected_version=db.proposal(largest).version, reviewer="ana")
    db.reject(ids[0], expected_version=db.proposal(ids[0]).version, reviewer="ana")
    db.close()
    return path, run, {"ids": ids, "data": data, "accepted": largest, "rejected": ids[0]}


def test_export_all_formats_from_db(tmp_path: Path, filled_db) -> None:
    path, run, info = filled_db
    data = info["data"]
    res = export_run(path, run, "json", tmp_path / "run.json")
    doc = json.loads(res.files[0].read_text())
    assert doc["run"]["id"] == run and doc["run"]["model_fingerprint"] == "sha256:feedbeef"
    assert doc["run"]["superseded"] == {"candidates": 0, "by_runs": []}  # no later run re-clustered this one
    assert len(doc["assignments"]) == len(data.assignments)
    assert sorted(p["proposal_id"] for p in doc["proposals"]) == sorted(info["ids"])
    assert sum(len(p["members"]) for p in doc["proposals"]) == len(data.members)
    doc_members = {p["proposal_id"]: [m["processid"] for m in p["members"]] for p in doc["proposals"]}
    assert {p["proposal_id"]: p["status"] for p in doc["proposals"]}[info["accepted"]] == "accepted"
    # the evidence stored with each candidate is exported as it was stored (an export without it says nothing
    # about why a candidate was proposed)
    stored = {pid: ev for pid, ev in zip(info["ids"], data.proposals["evidence"])}
    for p in doc["proposals"]:
        ev = stored[p["proposal_id"]]
        assert p["evidence"]["consensus_barcode"] == ev["consensus_barcode"]
        assert p["evidence"]["nearest_known"]["identity"] == ev["nearest_known"]["identity"]

    from dwca.read import DwCAReader

    export_run(path, run, "dwca", tmp_path / "run.zip")
    with DwCAReader(str(tmp_path / "run.zip")) as dwca:
        rows = list(dwca)
        assert len(rows) == len(data.assignments)
        dwc = "http://rs.tdwg.org/dwc/terms/"
        with Database.open(path, readonly=True) as db:  # the candidate in this database, whatever run proposed it
            concept = f"biodiscover:{db.database_id()}:candidate:"
        assert concept.startswith("biodiscover:db-")
        qualified = [r for r in rows if r.data[dwc + "taxonConceptID"].startswith(concept)]
        rejected_members = set(doc_members[info["rejected"]])
        assert len(qualified) == len(data.members) - len(rejected_members)
        assert not {r.id for r in qualified} & rejected_members
        assert {r.data[dwc + "identificationQualifier"] for r in qualified} == {"sp."}
        assert {r.data[dwc + "scientificName"] for r in qualified} == {"Megaselia"}
        accepted = [r for r in qualified if r.data[dwc + "taxonConceptID"].endswith(f":{info['accepted']}")]
        assert accepted and all(r.data[dwc + "identificationVerificationStatus"]
                                == "identified by reviewer (provisional species)" for r in accepted)
        # The reviewer's accepted name (counter-based, e.g. "Megaselia sp. BD-0001") is the verbatim name.
        assert re.fullmatch(r"Megaselia sp\. BD-\d{4}", accepted[0].data[dwc + "verbatimIdentification"])

    res = export_run(path, run, "csv", tmp_path / "csv")
    import csv

    with open(tmp_path / "csv" / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(data.assignments)
    # A rejected candidate is no candidate any more: its member keeps no proposal in the specimen table.
    assert sum(1 for r in rows if r["proposal_id"]) == len(data.members) - len(rejected_members)
    res = export_run(path, run, "fasta", tmp_path / "fasta")
    # the rejected candidate is not exported; all_specimens.fasta holds every sequenced specimen
    assert sorted(f.name for f in res.files)[-1] == "all_specimens.fasta"
    assert len(res.files) == len(info["ids"]) - 1 + 1
    res = export_run(path, run, "html", tmp_path / "r.html")
    assert res.files[0].read_text().count("data:image/png;base64,") == 5


def test_cli_export_and_errors(tmp_path: Path, filled_db, capsys) -> None:
    path, run, _ = filled_db
    out = tmp_path / "x.json"
    assert main(["export", "--db", str(path), "--run", str(run), "--format", "json", "--out", str(out)]) == 0
    assert f"exported run {run} as json" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(["export", "--db", str(path), "--run", str(run), "--format", "json", "--out", str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["export", "--db", str(path), "--run", str(run), "--format", "json", "--out", str(out),
                 "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["format"] == "json"
    assert main(["export", "--db", str(path), "--run", "999", "--format", "json", "--out", str(tmp_path / "y")]) == 2
    assert "no run 999" in capsys.readouterr().err
    assert main(["export", "--db", str(tmp_path / "none.sqlite"), "--run", "1", "--format", "csv",
                 "--out", str(tmp_path / "z")]) == 2
    assert "no database here" in capsys.readouterr().err
    assert main(["export", "--db", str(path), "--run", str(run), "--format", "xlsx", "--out", str(tmp_path / "w")]) == 2
    assert "unknown export format 'xlsx'" in capsys.readouterr().err


def test_several_formats_from_one_read_of_the_database(tmp_path: Path, filled_db, cli, monkeypatch) -> None:
    """e32 review R4: a hand-over of the five formats was five commands, each reading the database again (8–14 s
    each for 1,125 specimens). ``-f`` and ``-o`` repeat in pairs: each format to its own output, from one read, the
    same bytes as one format's export; every output is checked before anything is written, with --force per output
    as for one; unpaired or shared outputs are one error line."""
    from biodiscover.workflows.export import pipeline

    path, run, _ = filled_db
    reads: list[int] = []
    real = pipeline.load_run_export
    monkeypatch.setattr(pipeline, "load_run_export", lambda db, r: reads.append(r) or real(db, r))
    one, both = tmp_path / "one", tmp_path / "both"
    one.mkdir()
    both.mkdir()
    for fmt, name in (("json", "x.json"), ("dwca", "x.zip")):
        assert cli("export", "--db", str(path), "--run", str(run), "-f", fmt, "-o", str(one / name)).returncode == 0
    reads.clear()
    args = ("export", "--db", str(path), "--run", str(run), "-f", "json", "-o", str(both / "x.json"), "-f", "dwca",
            "-o", str(both / "x.zip"))
    done = cli(*args)
    assert done.returncode == 0 and reads == [run], (done.stderr, reads)
    assert [line.split(" -> ")[1] for line in done.stdout.splitlines()] == [f"{both / 'x.json'} (1 file)",
                                                                            f"{both / 'x.zip'} (1 file)"]
    for name in ("x.json", "x.zip"):
        assert (both / name).read_bytes() == (one / name).read_bytes(), name
    # the same command again: the first output is refused, nothing read or written; --force replaces both
    reads.clear()
    again = cli(*args)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr and reads == []
    assert cli(*args, "--force").returncode == 0 and reads == [run]
    # an output biodiscover did not write, second in line: refused before the first is written
    (tmp_path / "mine.zip").write_bytes(b"my archive")
    reads.clear()
    mixed = cli("export", "--db", str(path), "--run", str(run), "-f", "csv", "-o", str(tmp_path / "new_csv"), "-f",
                "dwca", "-o", str(tmp_path / "mine.zip"), "--force")
    assert mixed.returncode == 2 and str(tmp_path / "mine.zip") in mixed.stderr and reads == []
    assert not (tmp_path / "new_csv").exists() and (tmp_path / "mine.zip").read_bytes() == b"my archive"
    unpaired = cli("export", "--db", str(path), "--run", str(run), "-f", "csv", "-f", "json", "-o", str(tmp_path / "u"))
    assert unpaired.stderr.strip().splitlines() == [
        "error: 2 formats and 1 output given: give each --format its own --out, in the same order (-f csv -o "
        "hand_csv -f dwca -o hand.zip)"] and unpaired.returncode == 2
    shared = cli("export", "--db", str(path), "--run", str(run), "-f", "csv", "-o", str(tmp_path / "s"), "-f",
                 "fasta", "-o", str(tmp_path / "s"))
    assert shared.returncode == 2 and shared.stderr.strip().splitlines() == [
        f"error: {tmp_path / 's'}: given as the output of both csv and fasta; give each format its own --out"]


def test_a_ctrl_c_between_two_formats_names_the_one_written_and_what_to_re_run(tmp_path: Path, filled_db, cli,
                                                                               monkeypatch) -> None:
    """Ctrl-C after the first of two outputs is whole (here while its line is printed): the same command again would
    refuse that output for want of --force, so the line names it as written and the pair still to write."""
    from biodiscover.cli import jobs

    path, run, _ = filled_db
    said = jobs._say_exported

    def first_then_ctrl_c(result, *args):
        said(result, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "_say_exported", first_then_ctrl_c)
    stopped = cli("export", "--db", str(path), "--run", str(run), "-f", "csv", "-o", str(tmp_path / "a_csv"), "-f",
                  "json", "-o", str(tmp_path / "b.json"))
    assert stopped.returncode == 130 and stopped.stderr.strip() == (
        f"interrupted: {tmp_path / 'a_csv'} written whole; nothing of {tmp_path / 'b.json'} was written; for the rest "
        f"re-run the command with only -f json -o {tmp_path / 'b.json'}"), stopped.stderr
    assert (tmp_path / "a_csv" / "assignments.csv").is_file() and not (tmp_path / "b.json").exists()


def test_export_of_a_run_whose_candidates_a_later_run_reclustered_says_where_they_went(
        tmp_path: Path, filled_db, capsys) -> None:
    """Re-triaging the same collection supersedes the earlier run's pending candidates; exporting the earlier
    run then holds fewer candidates, and must say which later run holds them instead of reading silently
    '0 candidate species'; a reviewer's note on a re-clustered candidate follows it (both found by a new-user
    pass)."""
    import shutil

    src, run, info = filled_db
    path = tmp_path / "work.sqlite"
    shutil.copy(src, path)
    db = db_mod.Database.open(path)
    pending = [i for i in info["ids"] if db.proposal(i).status == "pending"]
    assert len(pending) >= 2
    members = info["data"].members
    # another run first, so the later triage's id (3) is not the number of candidates it takes over (2)
    db.finish_run(db.start_run("build-reference", {}, model_fingerprint="sha256:feedbeef", backup=False), "completed")
    run2 = db.start_run("triage", {"k": 20}, model_fingerprint="sha256:feedbeef", collection="plate-1", backup=False)
    assert run2 != 2
    again = [{"members": list(zip(m["processid"], m["probability"])), "parent_rank": "genus",
              "parent_name": "Megaselia", "provisional_name": "again", "novelty": 0.9}
             for pid in pending[:2] for m in [members[members["proposal_id"] == info["data"].proposals.loc[
                 info["ids"].index(pid), "proposal_id"]]]]
    db.note(pending[0], "Weevil? check genitalia", reviewer="ana")
    new_ids = db.write_proposals(run2, again)
    db.finish_run(run2, "completed")
    assert [db.proposal(i).status for i in pending[:2]] == ["superseded", "superseded"]
    # the reviewer's note follows the candidate into its re-clustered successor, saying where it was written
    reviews = db.run_tables(run2)["reviews"]
    carried = reviews[(reviews["proposal_id"] == new_ids[0]) & (reviews["action"] == "note")]
    assert list(carried["note"]) == ["Weevil? check genitalia"]
    assert list(carried["reviewer"]) == ["ana"]
    assert [c["carried"]["from"] for c in carried["after"]] == [pending[0]]
    assert reviews[reviews["proposal_id"] == new_ids[1]].empty
    db.close()
    before = len(info["ids"])
    res = export_run(path, run, "json", tmp_path / "run1.json")
    assert res.proposals + res.rejected == before - 2
    assert (res.superseded, res.superseded_by) == (2, (run2,))
    assert res.to_json()["superseded"] == 2
    assert main(["export", "--db", str(path), "--run", str(run), "--format", "csv", "--out",
                 str(tmp_path / "run1-csv")]) == 0
    err = capsys.readouterr().err
    assert (f"note: 2 candidate species of run {run} were re-clustered by later run {run2} and are not in this "
            f"export; export run {run2} for the current grouping") in err
    # the later run's export has nothing to say
    assert export_run(path, run2, "json", tmp_path / "run2.json").superseded_note(run2) is None


def test_review_trails_follow_undo_and_the_undo_of_an_undo(tmp_path: Path) -> None:
    """The export's "decided by" and notes come from the reviews in force: an undone accept is not in force,
    undoing that undo puts it back (the database's own log, read as the export reads it)."""
    import pandas as pd

    from biodiscover.storage.db import Database
    from biodiscover.storage.records import Specimen
    from biodiscover.workflows.export import review_trails

    with Database.create(tmp_path / "bd.sqlite") as db:
        db.ingest([Specimen(f"R{i}", dna_barcode="ACGT" * 60, genus="Megaselia", family="Phoridae",
                            order="Diptera") for i in range(4)], collection="c", backup=False)
        run = db.start_run("triage", {}, "sha256:m", backup=False)
        a, b = db.write_proposals(run, [{"members": ["R0", "R1"], "parent_rank": "genus", "parent_name": "Megaselia"},
                                        {"members": ["R2"], "parent_rank": "genus", "parent_name": "Megaselia"}])
        db.note(a, "wing venation", reviewer="bo")
        acc = db.accept(a, 1, reviewer="ana")
        undo = db.undo(acc.review_id, reviewer="ana")
        log = pd.DataFrame(db.reviews())
        trails = review_trails(log)
        assert trails[a].decision is None and trails[a].reviewers == ("bo",)
        assert [n[1:] for n in trails[a].notes] == [("bo", "wing venation", None)]
        db.undo(undo.review_id, reviewer="carl")
        db.reject(b, 1, reviewer="dee")
        log = pd.DataFrame(db.reviews())
        trails = review_trails(log)
        assert (trails[a].decision, trails[a].decided_by) == ("accept", "ana")
        assert trails[a].reviewers == ("bo", "ana")
        rejected_at = log.loc[log["action"] == "reject", "created_at"].item()
        assert (trails[b].decision, trails[b].decided_by, trails[b].decided_at) == ("reject", "dee", rejected_at)
    assert review_trails(pd.DataFrame()) == {}


def test_an_export_reads_the_database_without_changing_a_byte_of_it(tmp_path: Path, filled_db) -> None:
    """Exporting opens the database read-only: a file in rollback-journal mode (as another tool may leave
    it) is not switched to WAL, and no -wal/-shm file is left beside it."""
    import hashlib
    import shutil
    import sqlite3

    path, run, _ = filled_db
    copy = tmp_path / "db" / "work.sqlite"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    con = sqlite3.connect(copy)
    assert con.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    con.close()
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    export_run(copy, run, "json", tmp_path / "run.json")
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in copy.parent.iterdir()) == ["work.sqlite"]


def test_an_html_export_shows_members_photos_when_the_evidence_names_none(tmp_path: Path) -> None:
    """A candidate whose evidence lists no representative images (a merge or split recomputed it without them,
    or an older run) still shows its members' photographs, read from the stored specimens."""
    from PIL import Image

    path = tmp_path / "lab.sqlite"
    photos = []
    for i in range(3):
        photo = tmp_path / "images" / f"P{i}.jpg"
        photo.parent.mkdir(exist_ok=True)
        Image.new("RGB", (16, 12), (40 * i, 90, 160)).save(photo)
        photos.append(photo)
    db = db_mod.Database.create(path)
    db.ingest([Specimen(f"P{i}", dna_barcode="ACGT" * 60, genus="Megaselia", image_path=photos[i]) for i in range(3)]
              + [Specimen("Q0", dna_barcode="ACGA" * 60, genus="Megaselia")], collection="plate", backup=False)
    run = db.start_run("triage", {}, model_fingerprint="sha256:1", collection="plate", backup=False)
    db.write_assignments(run, [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Megaselia"}
                               for p in ("P0", "P1", "P2", "Q0")])
    db.write_proposals(run, [{"members": [("P0", 1.0), ("P1", 0.9), ("Q0", 0.8)], "parent_rank": "genus",
                              "parent_name": "Megaselia", "evidence": {"threshold": 0.02}}])
    db.finish_run(run, "completed")
    db.close()
    export_run(path, run, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    shown = re.findall(r"<figure class='photo'><img alt='([^']+)' src='data:image/jpeg;base64,", page)
    assert sorted(shown) == ["P0", "P1"]  # the members with a photograph; P2 is no member, Q0 has none


def test_an_export_closes_the_database_it_opened(tmp_path: Path, filled_db) -> None:
    """The review app exports again and again from one long-lived process: each export closes its read-only
    connection (no file handle on the database, its WAL or shared memory is left open), so a later restore or
    move of the file is not held up by exports that finished long ago."""
    import gc
    import os
    import shutil

    path, run, _ = filled_db
    copy = tmp_path / "work.sqlite"
    shutil.copy(path, copy)
    gc.disable()  # a leaked connection must show, not be collected by chance before the count
    try:
        def held() -> list[str]:
            fds = Path(f"/proc/{os.getpid()}/fd")
            targets = [os.path.realpath(fd) for fd in fds.iterdir()]
            return [t for t in targets if Path(t).name.startswith(copy.name)]

        assert held() == []
        for i in range(3):
            export_run(copy, run, "json", tmp_path / f"run{i}.json")
        assert held() == []
    finally:
        gc.enable()


def test_a_runs_export_gives_the_barcode_that_run_read_not_a_later_collections(tmp_path: Path, cli) -> None:
    """e31 review F22: week 3's run named FBCOC180-10 *Bitoma crenata* from its barcode; week 3b then brought the
    same processid with another barcode (a new version, current). Week 3's export wrote the new barcode beside
    the old name. A run's specimens are the versions it read (``assignments.specimen_id``); an assignment with
    none recorded (a database written before it was) reads the current version, as before."""
    import sqlite3

    old, new = "ACGT" * 60, "TTGA" * 60
    with Database.create(tmp_path / "bd.sqlite") as db:
        db.ingest([Specimen("FBCOC180-10", dna_barcode=old, order="Coleoptera"),
                   Specimen("K2", dna_barcode=old, order="Coleoptera")], collection="week3", backup=False)
        week3 = db.start_run("triage", {}, "sha256:m", collection="week3", backup=False)
        db.write_assignments(week3, [{"processid": p, "deepest_rank": "order", "deepest_taxon": "Coleoptera"}
                                     for p in ("FBCOC180-10", "K2")])
        db.finish_run(week3, "completed")
        db.ingest([Specimen("FBCOC180-10", dna_barcode=new, order="Lepidoptera")], collection="week3b",
                  backup=False)
        week3b = db.start_run("triage", {}, "sha256:m", collection="week3b", backup=False)
        db.write_assignments(week3b, [{"processid": "FBCOC180-10", "deepest_rank": "order",
                                       "deepest_taxon": "Lepidoptera"}])
        db.finish_run(week3b, "completed")
        first = db.run_tables(week3)["specimens"].set_index("processid")
        assert (first.loc["FBCOC180-10", "dna_barcode"], first.loc["FBCOC180-10", "order"]) == (old, "Coleoptera")
        assert len(first) == 2
        assert db.run_tables(week3b)["specimens"].set_index("processid").loc["FBCOC180-10", "dna_barcode"] == new
    # the two runs as one export: the id once, as week 3b's, saying what week 3 read and named of it
    from biodiscover.workflows.export.pipeline import combine_exports, load_run_export

    both = combine_exports([load_run_export(tmp_path / "bd.sqlite", week3), load_run_export(tmp_path / "bd.sqlite",
                                                                                              week3b)])
    assert both.other_barcodes == {"FBCOC180-10": "also in week3 (run 1) with another barcode: named Coleoptera there"}
    done = cli("export", "--db", str(tmp_path / "bd.sqlite"), "--run", str(week3), "--run", str(week3b), "-f",
               "dwca", "-o", str(tmp_path / "season.zip"))
    assert done.returncode == 0, done.stderr
    import zipfile

    with zipfile.ZipFile(tmp_path / "season.zip") as z:
        rows = [line.split("\t") for line in z.read("occurrence.txt").decode().splitlines()]
    remarks = {r[0]: r[rows[0].index("identificationRemarks")] for r in rows[1:]}
    assert remarks["FBCOC180-10"].endswith("; also in week3 (run 1) with another barcode: named Coleoptera there")
    assert "another barcode" not in remarks["K2"]
    conn = sqlite3.connect(tmp_path / "bd.sqlite")
    conn.execute("UPDATE assignments SET specimen_id = NULL")
    conn.commit()
    conn.close()
    with Database.open(tmp_path / "bd.sqlite", readonly=True) as db:
        assert db.run_tables(week3)["specimens"].set_index("processid").loc["FBCOC180-10", "dna_barcode"] == new


def _export_args(path: Path, run: int, *pairs: tuple[str, Path]) -> tuple[str, ...]:
    return ("export", "--db", str(path), "--run", str(run), *(a for f, o in pairs for a in ("-f", f, "-o", str(o))))


def test_an_output_under_a_regular_file_is_one_error_line_before_anything_is_read(tmp_path: Path, filled_db, cli,
                                                                                   monkeypatch) -> None:
    """e34 attack E1 and E4: ``-o regfile/x.zip`` was a NotADirectoryError traceback (exit 1), and a later output
    that could not be written was found only after the earlier ones were: every output's place is checked (by
    ``storage.validation.unwritable_place``, as every other verb's outputs) before the database is read."""
    from biodiscover.workflows.export import pipeline

    path, run, _ = filled_db
    reads: list[int] = []
    real = pipeline.load_run_export
    monkeypatch.setattr(pipeline, "load_run_export", lambda db, r: reads.append(r) or real(db, r))
    regfile = tmp_path / "regfile"
    regfile.write_text("a file")
    for pairs in ([("dwca", regfile / "x.zip")], [("csv", regfile / "x")], [("dwca", regfile / "sub" / "x.zip")],
                  [("csv", tmp_path / "c2"), ("dwca", regfile / "x.zip")]):
        done = cli(*_export_args(path, run, *pairs))
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [
            f"error: cannot write {pairs[-1][1]}: {regfile} is a file, not a folder"], (pairs, done.stderr)
    assert reads == [] and sorted(p.name for p in tmp_path.iterdir()) == ["regfile"]


def test_one_output_under_two_spellings_or_inside_another_is_refused_before_anything_is_written(
        tmp_path: Path, filled_db, cli) -> None:
    """e34 attack E2, E3: ``-o d`` and ``-o sub/../d`` (or ``link/d``, link → .) passed the "output of both" check,
    and with --force the fasta export deleted the csv files both lines said were written; ``-o e2 … -o e2/r.html``
    was written, and the same command with --force then refused for ever (r.html is no csv file). Both are refused
    up front, in either order, nothing written."""
    path, run, _ = filled_db
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path)
    d = tmp_path / "d"
    for other in (tmp_path / "sub" / ".." / "d", tmp_path / "link" / "d"):
        for force in ((), ("--force",)):
            done = cli(*_export_args(path, run, ("csv", d), ("fasta", other)), *force)
            assert done.returncode == 2 and done.stderr.strip().splitlines() == [
                f"error: {other} is {d}: given as the output of both csv and fasta; give each format its own --out"]
    e2 = tmp_path / "e2"
    e2.mkdir()
    for pairs in ([("csv", e2), ("html", e2 / "r.html")], [("html", e2 / "r.html"), ("csv", e2)],
                  [("fasta", e2), ("csv", e2 / "c")]):
        done = cli(*_export_args(path, run, *pairs))
        inner, outer = (pairs[1], pairs[0]) if pairs[0][1] == e2 else pairs
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [
            f"error: {inner[1]} lies inside {e2}, the {outer[0]} export's folder; give it another place"], pairs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2", "link", "sub"] and not any(e2.iterdir())


def test_an_output_that_fails_after_others_were_written_says_which_are_whole(tmp_path: Path, filled_db, cli,
                                                                               monkeypatch) -> None:
    """e34 attack E4, E5: a later output that could not be written said "nothing of this export was kept" (exit 2)
    with the earlier ones on disk, and an OSError other than a full disk (here ENAMETOOLONG: the temporary name of a
    250-character file name is too long) was a traceback. One error line names the output and the OS's reason, the
    outputs written whole and what to re-run, as a Ctrl-C between formats does; exit 1 (done in part)."""
    from biodiscover.cli import jobs

    path, run, _ = filled_db
    long = tmp_path / ("x" * 250 + ".json")
    alone = cli(*_export_args(path, run, ("json", long)))
    assert alone.returncode == 2 and alone.stderr.strip().splitlines() == [
        f"error: cannot write {long}: file name too long (nothing of this export was kept)"], alone.stderr
    done = cli(*_export_args(path, run, ("csv", tmp_path / "c"), ("json", long), ("dwca", tmp_path / "d.zip")))
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: cannot write {long}: file name too long; {tmp_path / 'c'} written whole; nothing of {long} was "
        f"written; for the rest re-run the command with only -f json -o {long} -f dwca -o {tmp_path / 'd.zip'}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"] and (tmp_path / "c" / "assignments.csv").is_file()
    # the second output's folder turned into a file once the first was written (after the up-front check)
    (tmp_path / "later").mkdir()
    said = jobs._say_exported

    def then_a_file(result, *args):
        said(result, *args)
        (tmp_path / "later").rmdir()
        (tmp_path / "later").write_text("now a file")

    monkeypatch.setattr(jobs, "_say_exported", then_a_file)
    done = cli(*_export_args(path, run, ("json", tmp_path / "a.json"), ("dwca", tmp_path / "later" / "x.zip")))
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: cannot write {tmp_path / 'later' / 'x.zip'}: {tmp_path / 'later'} is a file, not a folder; "
        f"{tmp_path / 'a.json'} written whole; nothing of {tmp_path / 'later' / 'x.zip'} was written; for the rest "
        f"re-run the command with only -f dwca -o {tmp_path / 'later' / 'x.zip'}"], done.stderr
