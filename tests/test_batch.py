"""Batch runs: collection discovery, bad-input exit codes, the runs-table ledger on a real database.

End-to-end batches through the real triage pipeline are in ``test_batch_run.py``.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from biodiscover.storage.errors import InputError
from biodiscover.workflows.batch import (
    BatchSummary,
    CollectionOutcome,
    RunLedger,
    discover_collections,
)
from biodiscover.cli.main import main


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_discover_collections_folder_glob_and_images(tmp_path: Path) -> None:
    _write(tmp_path / "b.csv", "processid,dna_barcode\nP1,ACGT\n")
    _write(tmp_path / "a.tsv", "processid\tdna_barcode\nP2\tACGT\n")
    _write(tmp_path / "c.csv.gz", "processid,dna_barcode\nP3,ACGT\n")
    _write(tmp_path / "d.fasta", ">P4|x\nACGT\n")
    _write(tmp_path / "notes.txt", "not a collection")
    _write(tmp_path / "b.quarantine.csv", "file,line\n")  # our own quarantine reports are not inputs
    (tmp_path / "b_images").mkdir()
    (tmp_path / "b_images" / "P1.jpg").write_bytes(b"\xff\xd8fake")
    specs = discover_collections(str(tmp_path))
    assert [s.name for s in specs] == ["a.tsv", "b.csv", "c.csv.gz", "d.fasta"]
    b = specs[1]
    assert b.images == (tmp_path / "b_images").resolve()
    assert specs[0].images is None
    assert [s.name for s in discover_collections(str(tmp_path / "*.csv*"))] == ["b.csv", "c.csv.gz"]
    # The key follows content, not the name: a renamed copy has the same key, an edit changes it.
    copy = _write(tmp_path / "other" / "renamed.tsv", (tmp_path / "a.tsv").read_text())
    assert discover_collections(str(copy))[0].key == specs[0].key
    _write(copy, "processid\tdna_barcode\nP2\tACGA\n")
    assert discover_collections(str(copy))[0].key != specs[0].key
    # Images count in the key: adding a photo makes the collection new.
    (tmp_path / "b_images" / "P9.jpg").write_bytes(b"\xff\xd8more")
    assert discover_collections(str(tmp_path / "b.csv"))[0].key != b.key



def test_a_file_reached_through_links_is_one_collection_and_a_link_out_of_the_folder_is_named(tmp_path: Path
                                                                                               ) -> None:
    """``run`` over a folder followed every link as a collection of its own: ``alias.csv -> plate.csv`` beside
    ``plate.csv`` triaged the same file twice (two runs, the same specimens twice, both rows named ``plate.csv``),
    and a link to a file elsewhere was triaged under the other file's name, its quarantine report written there,
    with nothing said (e35 review Q4). Now each file the links reach is one collection, named as the folder
    lists it; a file outside the folder is still triaged (a folder of links is a way to gather a batch), and one
    ``warning:`` line says where it is."""
    night, away = tmp_path / "night", tmp_path / "away"
    plate = _write(night / "plate.csv", "processid,dna_barcode\nP1,ACGT\n")
    week = _write(away / "week.csv", "processid,dna_barcode\nW1,ACGT\n")
    (night / "alias.csv").symlink_to("plate.csv")
    (night / "from-lab.csv").symlink_to(week)
    (night / "sub").symlink_to(away, target_is_directory=True)  # a folder is no collection of the folder's
    specs = discover_collections(str(night))
    assert [(s.name, s.path) for s in specs] == [("from-lab.csv", week), ("plate.csv", plate)]
    assert [line for s in specs for line in s.notes] == [
        f"warning: {night / 'from-lab.csv'}: is {week} (through a link), outside {night}: triaged from there; a "
        "quarantine report of it goes beside it",
        f"{night / 'alias.csv'}: skipped: the same file as {night / 'plate.csv'} (through a link); triaged once, as "
        "plate.csv"]
    # a glob that walks into the linked folder reaches week.csv a second time: still one collection
    specs = discover_collections(str(night / "**" / "*.csv"))
    assert [(s.name, s.path) for s in specs] == [("from-lab.csv", week), ("plate.csv", plate)]
    assert [line.split(": ")[0] for s in specs for line in s.notes] == [
        "warning", str(night / "sub" / "week.csv"), str(night / "alias.csv")]
    # named by itself, a link is the user's choice of file: followed, nothing to say
    (only,) = discover_collections(str(night / "from-lab.csv"))
    assert (only.name, only.path, only.notes) == ("from-lab.csv", week, ())

def test_no_collections_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no collections found in folder"):
        discover_collections(str(tmp_path))
    with pytest.raises(InputError, match="no collections found in pattern"):
        discover_collections(str(tmp_path / "*.csv"))


def test_cli_run_bad_input_exits_2(tmp_path: Path, capsys) -> None:
    db = tmp_path / "x.sqlite"
    assert main(["run", "--collections", str(tmp_path / "nothing*"), "--model", str(tmp_path), "--db", str(db)]) == 2
    assert "no collections found" in capsys.readouterr().err
    _write(tmp_path / "c.csv", "processid,dna_barcode\nP1,ACGT\n")
    assert main(["run", "--collections", str(tmp_path), "--model", str(tmp_path / "nomodel"), "--db", str(db)]) == 2
    assert f"error: {tmp_path / 'nomodel'}: no such folder" in capsys.readouterr().err
    assert not db.exists()  # nothing was created before the input was checked


def test_summary_exit_codes_and_table() -> None:
    ok = CollectionOutcome("a.csv", "/x/a.csv", "k1", "ok", run_id=3, specimens=10)
    skipped = CollectionOutcome("b.csv", "/x/b.csv", "k2", "skipped", run_id=2)
    quarantined = CollectionOutcome("c.csv", "/x/c.csv", "k3", "quarantined", run_id=4, quarantined=2)
    failed = CollectionOutcome("d.csv", "/x/d.csv", "k4", "failed", error="d.csv:3: bad barcode")
    assert BatchSummary([ok, skipped], Path("l.log"), 1.0).exit_code == 0
    assert BatchSummary([ok, quarantined], Path("l.log"), 1.0).exit_code == 1
    # done before with rows set aside (e31 review F28): the same bytes still have them out, and its warning: line
    # says so (in triage's words: e35 review Q3); but that earlier run set them aside, not this one: exit 0, and
    # the counts line says why (a nightly cron read every night's exit 1 as a failure: e36 season review F8)
    set_aside_before = CollectionOutcome("e.csv", "/x/e.csv", "k5", "skipped", run_id=5, quarantined=1)
    earlier = BatchSummary([ok, set_aside_before], Path("l.log"), 1.0)
    assert earlier.exit_code == 0 and earlier.to_json()["exit_code"] == 0
    assert set_aside_before.set_aside_lines() == ["warning: e.csv: 1 record set aside"]  # no record, no report known
    assert earlier.table().splitlines()[-1] == ("2 collections: 1 ok, 1 skipped in 1.0s (exit 0: the rows set aside "
                                                "above were set aside by earlier runs)")
    # done by the stopped batch this one resumes: that batch never gave its exit code, so this one does
    set_aside_before_stop = CollectionOutcome("e.csv", "/x/e.csv", "k5", "skipped", run_id=5, quarantined=1,
                                              done_before_stop=True)
    assert BatchSummary([ok, set_aside_before_stop], Path("l.log"), 1.0).exit_code == 1
    s = BatchSummary([ok, skipped, quarantined, failed], Path("l.log"), 1.0)
    assert s.exit_code == 1
    assert s.counts() == {"ok": 1, "skipped": 1, "quarantined": 1, "failed": 1}
    table = s.table()
    assert "error: d.csv:3: bad barcode" in table and "(exit 1)" in table
    assert "warning: c.csv: 2 records set aside" in table.splitlines()
    doc = s.to_json()
    assert doc["exit_code"] == 1 and len(doc["collections"]) == 4


# -- the ledger on a real database ---------------------------------------------------------------------------

def test_ledger_completed_and_dead_process_recovery(tmp_path: Path) -> None:
    from biodiscover.storage.db.database import Database
    from biodiscover.workflows.batch import ITEM_RUN_KIND, CollectionSpec

    path = tmp_path / "l.sqlite"
    db = Database.create(path)
    ledger = RunLedger(db, stale_after_s=3600)
    spec = CollectionSpec(tmp_path / "a.csv", None, "sha256:aaa")
    assert ledger.completed(spec.key, "m1") is None
    item = ledger.start(spec, "m1", batch_run_id=None)
    ledger.finish(item, CollectionOutcome("a.csv", "a", spec.key, "ok", run_id=42, specimens=5))
    assert ledger.completed(spec.key, "m1") == 42
    assert ledger.completed(spec.key, "other-model") is None  # a new model means a new triage
    db.close()
    # A process that starts an item run and dies without finishing it (like SIGKILL).
    code = ("from biodiscover.storage.db.database import Database; import os, sys; db = Database.open(sys.argv[1]); "
            f"db.start_run({ITEM_RUN_KIND!r}, {{'collection_key': 'sha256:bbb', 'model_fingerprint': 'm1'}}, "
            "backup=False); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=Path(__file__).resolve().parent.parent)
    db = Database.open(path)
    ledger = RunLedger(db, stale_after_s=3600)  # heartbeat is fresh: only the dead pid gives it away
    dead = ledger.recover()
    assert len(dead) == 1
    assert db.run_progress(dead[0]).status == "interrupted"
    assert ledger.completed("sha256:bbb", "m1") is None
    assert ledger.recover() == []  # idempotent
    # A live run of this very process is never taken as dead.
    live = db.start_run(ITEM_RUN_KIND, {"collection_key": "sha256:ccc"}, backup=False)
    assert ledger.recover() == []
    assert db.run_progress(live).status == "running"
    db.close()
