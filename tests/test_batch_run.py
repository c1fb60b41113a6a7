"""``biodiscover run`` end to end: real bundle, real triage pipeline, real SQLite, a real SIGKILL.

What it reports was found wanting on a real weekly batch (5 countries' BOLD records against a reference of every
other country): a re-run showed each done collection as ``skipped … 0 0 0 0``; quarantined rows were counted but
never named; a broken file's error was printed three times; ``run`` printed none of triage's advisories and had no
``--level``; a re-run after Ctrl-C never said it resumed; the candidates bar read 1000/1000 while clustering ran;
and ``export --run`` on the batch's id wrote 0 specimens with exit 0. The tests after ``_bad_rows_plate`` hold
those.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from fixtures.batch import build_bundle_and_frame, write_collections

pytest.importorskip("biodiscover.workflows.triage", reason="E1's triage pipeline (workflows/triage.py) not present")

from biodiscover.cli.main import main
from biodiscover.storage.db.database import Database
from biodiscover.storage.db.integrity import backups_dir
from biodiscover.storage.errors import InputError
from biodiscover.storage.validation import QuarantinedRecord, write_quarantine
from biodiscover.workflows.batch import BATCH_RUN_KIND, ITEM_RUN_KIND, TRIAGE_RUN_KIND, BatchConfig, run_batch
from biodiscover.workflows.triage import drop_stale_report
from fixtures.db_views import runs
from fixtures.inprocess import run_cli
from fixtures.redirected import run_until

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    bundle, meta = build_bundle_and_frame(root)
    return root, bundle, meta


def _completed_triage_runs(db_path: Path) -> list:
    db = Database.open(db_path, readonly=True)
    try:
        return [r for r in runs(db) if r.kind == TRIAGE_RUN_KIND and r.status == "completed"]
    finally:
        db.close()


def _items(db_path: Path) -> list:
    db = Database.open(db_path, readonly=True)
    try:
        return [r for r in runs(db) if r.kind == ITEM_RUN_KIND]
    finally:
        db.close()


def test_batch_summary_quarantine_failure_and_resume(workspace, tmp_path: Path) -> None:
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    plates = write_collections(meta, folder, 3, rows_per_collection=30)
    # A plate with two bad rows (an impossible barcode, a repeated processid) among good ones.
    good = meta[meta["split"] == "test"].head(10)[["processid", "dna_barcode"]]
    bad = good.to_csv(index=False) + "BAD-1,ACGT!!QQ\n" + f"{good.iloc[0]['processid']},{good.iloc[0]['dna_barcode']}\n"
    (folder / "plate-bad-rows.csv").write_text(bad)
    # A file that is not a collection at all.
    (folder / "plate-broken.csv").write_text("this,is,not\na,collection,file\n")
    db_path = tmp_path / "night.sqlite"
    events = []
    summary = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path), progress=events.append)
    status = {o.collection: o.status for o in summary.outcomes}
    assert status == {"plate-00.csv": "ok", "plate-01.csv": "ok", "plate-02.csv": "ok",
                      "plate-bad-rows.csv": "quarantined", "plate-broken.csv": "failed"}, summary.table()
    assert summary.exit_code == 1
    by_name = {o.collection: o for o in summary.outcomes}
    assert by_name["plate-bad-rows.csv"].quarantined >= 1
    assert "plate-broken.csv" in by_name["plate-broken.csv"].error
    assert all(by_name[p.name].specimens == 30 for p in plates)
    assert summary.log_file.is_file() and "plate-broken.csv" in summary.log_file.read_text()
    kinds = Counter(e.kind for e in events)
    assert kinds["collection_done"] == 4 and kinds["collection_failed"] == 1 and kinds["batch_start"] == 1
    done_runs = {o.run_id for o in summary.outcomes if o.status in ("ok", "quarantined")}
    assert len(done_runs) == 4 and {r.id for r in _completed_triage_runs(db_path)} == done_runs
    db = Database.open(db_path, readonly=True)
    n_assign = {r: len(db.assignments(r)) for r in done_runs}
    db.close()
    assert sorted(n_assign.values()) == sorted([30, 30, 30, by_name["plate-bad-rows.csv"].specimens])

    # Re-running the same command: finished collections are skipped, nothing is written twice.
    again = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    status2 = {o.collection: o.status for o in again.outcomes}
    assert status2 == {**{n: "skipped" for n in status if n != "plate-broken.csv"}, "plate-broken.csv": "failed"}
    assert {o.run_id for o in again.outcomes if o.status == "skipped"} == done_runs
    assert {r.id for r in _completed_triage_runs(db_path)} == done_runs
    # A fixed file is a new collection: triaged on the next run, the others still skipped.
    (folder / "plate-broken.csv").unlink()
    third = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    assert {o.status for o in third.outcomes} == {"skipped"}
    # e31 review F28: plate-bad-rows.csv (the same bytes) still has its rows out of the database, and its set-aside
    # lines say so; set aside by its earlier run, not this one: exit 0, saying why (e36 season review F8)
    assert third.exit_code == 0 and "(exit 0: the rows set aside above were set aside by earlier runs)" in third.table()
    said = [x for x in third.table().splitlines() if x.startswith(("error: ", "warning: ", "… and"))]
    assert said == by_name["plate-bad-rows.csv"].set_aside_lines() and len(said) == 2
    assert said[1] == f"… and 1 more; see {folder / 'plate-bad-rows.quarantine.csv'}"
    # and each batch's stored run says what its table said (it read "5 of 5 collections ok", "4 of 4 … ok")
    with Database.open(db_path, readonly=True) as db:
        said = {s.batch_run_id: db.run_progress(s.batch_run_id).message for s in (summary, third)}
    assert said == {summary.batch_run_id: "5 collections: 1 failed, 3 ok, 1 quarantined",
                    third.batch_run_id: "4 collections: 4 skipped"}


@pytest.mark.slow  # a CLI process killed by a real SIGKILL (its resumption runs in this process)
def test_redirected_run_writes_progress_on_stderr_and_in_its_log_as_it_happens(workspace, tmp_path: Path) -> None:
    """`run > run.out 2> run.err` (cron, nohup): the review's 20,000-specimen run left both files and its log
    empty past "started run 3 (triage)" for 13.5 minutes (e32 R15): rich drew its bars only when stopped. Now,
    while the batch still runs, stderr holds plain lines as `triage` writes them when redirected (the batch's
    count, each collection's stages with their counts) and the log each stage a collection enters."""
    _root, bundle, meta = workspace
    folder = tmp_path / "plates"
    write_collections(meta, folder, 2)
    db_path, log_path = tmp_path / "quiet.sqlite", tmp_path / "run.log"
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    cmd = [sys.executable, "-m", "biodiscover.cli", "run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path),
           "--log", str(log_path)]
    running = run_until(cmd, out, err, "plate-00.csv: triage: ", cwd=REPO, env={"OMP_NUM_THREADS": "1"})
    lines = err.read_text(errors="replace").splitlines()
    logged = log_path.read_text(errors="replace")
    assert running, "the batch finished before its first collection's line reached stderr"
    assert lines[0] == "collections: 0/2", lines
    stages = [x for x in lines if x.startswith("plate-00.csv")]
    assert any(x.startswith("plate-00.csv: triage: ") for x in stages), lines
    n = len(pd.read_csv(folder / "plate-00.csv"))
    ingest = [f"plate-00.csv: ingest: 0/{n}", f"plate-00.csv: ingest: {n}/{n}"]
    assert [x for x in stages if ": ingest: " in x] == ingest, lines
    assert "plate-00.csv: triage" in logged, logged
    assert len(lines) == len(set(lines))  # a repeated count is said once


def test_cli_run_killed_then_resumed_without_duplicates(workspace, tmp_path: Path) -> None:
    _root, bundle, meta = workspace
    folder = tmp_path / "plates"
    plates = write_collections(meta, folder, 5)
    db_path = tmp_path / "kill.sqlite"
    cmd = [sys.executable, "-m", "biodiscover.cli", "run", "--collections", str(folder), "--model", str(bundle),
           "--db", str(db_path), "--json"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if db_path.exists():
                try:
                    if any(r.status == "completed" for r in _items(db_path)):
                        break
                except Exception:  # noqa: BLE001 - the database is being created
                    pass
            if proc.poll() is not None:
                pytest.fail(f"run finished before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = [r for r in _items(db_path) if r.status == "completed"]
    assert 1 <= len(done_before) < len(plates)  # killed in the middle of the batch

    result = run_cli(*cmd[3:], cwd=REPO)  # the resumption needs no process of its own
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    statuses = Counter(c["status"] for c in summary["collections"])
    assert statuses["skipped"] == len(done_before) and statuses["ok"] == len(plates) - len(done_before)
    # Exactly one completed item per collection; the one in flight at the kill is marked interrupted.
    items = _items(db_path)
    per_key = Counter(r.parameters["collection_key"] for r in items if r.status == "completed")
    assert len(per_key) == len(plates) and set(per_key.values()) == {1}
    assert all(r.status != "running" for r in items)
    # No specimen has two assignments in completed triage runs.
    db = Database.open(db_path, readonly=True)
    try:
        completed = [r.id for r in runs(db) if r.kind == TRIAGE_RUN_KIND and r.status == "completed"]
        pids = Counter(p for r in completed for p in db.assignments(r)["processid"])
    finally:
        db.close()
    assert len(completed) == len(plates)
    assert max(pids.values()) == 1
    assert sum(pids.values()) == sum(len(p.read_text().splitlines()) - 1 for p in plates)


def test_run_with_ray_executor_matches_local(workspace, tmp_path: Path) -> None:
    """`--executor ray` (a local Ray instance started by the executor) gives the same calls as local."""
    pytest.importorskip("ray")
    from biodiscover.workflows.executors import ExecutorConfig

    _root, bundle, meta = workspace
    folder = tmp_path / "plates"
    write_collections(meta, folder, 2, rows_per_collection=40)
    out = {}
    for kind in ("local", "ray"):
        db_path = tmp_path / f"{kind}.sqlite"
        summary = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path,
                                        executor=ExecutorConfig(kind=kind)))
        assert summary.exit_code == 0
        db = Database.open(db_path, readonly=True)
        try:
            tables = [db.assignments(r.id) for r in _completed_triage_runs(db_path)]
        finally:
            db.close()
        frame = pd.concat(tables).sort_values("processid").reset_index(drop=True)
        out[kind] = frame[["processid", "deepest_rank", "deepest_taxon", "novelty"]]
    assert len(out["local"]) == 80
    pd.testing.assert_frame_equal(out["local"], out["ray"], check_exact=False, atol=1e-6)


def test_ctrl_c_marks_runs_for_what_they_hold_and_the_rerun_finishes(workspace, tmp_path: Path) -> None:
    """Ctrl-C (KeyboardInterrupt) in the middle of a collection: the triage run is failed with the count of
    results it stored (none: assignments are written in one step at the end — not the 30 of 30 its heartbeat
    had counted in memory), the batch item is 'interrupted', not left 'running' for `db check` to report,
    and the same command then triages that collection and skips the finished one."""
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    write_collections(meta, folder, 2, rows_per_collection=30)
    db_path = tmp_path / "night.sqlite"

    def stop_in_second_plate(event) -> None:
        if event.kind == "stage" and event.collection == "plate-01.csv" and event.stage == "candidates":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path), progress=stop_in_second_plate)
    db = Database.open(db_path, readonly=True)
    try:
        by_kind = {(r.kind, r.status): r for r in runs(db)}
        statuses = Counter((r.kind, r.status) for r in runs(db))
        assert statuses[(ITEM_RUN_KIND, "completed")] == 1 and statuses[(ITEM_RUN_KIND, "interrupted")] == 1
        assert statuses[(ITEM_RUN_KIND, "running")] == 0
        failed = by_kind[(TRIAGE_RUN_KIND, "interrupted")]
        assert len(db.assignments(failed.id)) == 0
        progress = db.run_progress(failed.id)
        assert (progress.done, progress.total) == (0, 30)
        assert "interrupted before its results were stored" in (progress.message or "")
    finally:
        db.close()
    again = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    assert {o.collection: o.status for o in again.outcomes} == {"plate-00.csv": "skipped", "plate-01.csv": "ok"}
    assert len(_completed_triage_runs(db_path)) == 2


def _bad_rows_plate(meta, folder: Path) -> tuple[Path, str]:
    """A plate of 10 good rows and one with an impossible barcode (``BAD-1``, line 12)."""
    good = meta[meta["split"] == "test"].head(10)[["processid", "dna_barcode", "country"]]
    path = folder / "plate-bad-rows.csv"
    path.write_text(good.to_csv(index=False) + "BAD-1,ACGT!!QQ,Norway\n")
    return path, good.to_csv(index=False)


def test_rerun_shows_each_done_collection_with_its_figures_and_names_what_was_set_aside(workspace,
                                                                                      tmp_path: Path) -> None:
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    write_collections(meta, folder, 2, rows_per_collection=30)
    bad, good_text = _bad_rows_plate(meta, folder)
    db_path = tmp_path / "night.sqlite"
    first = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    by_name = {o.collection: o for o in first.outcomes}
    db = Database.open(db_path, readonly=True)
    try:
        for o in first.outcomes:  # the genus column counts what the run stored
            ranks = db.assignments(o.run_id)["deepest_rank"].value_counts()
            assert (o.named_to_species, o.named_to_genus) == (ranks.get("species", 0), ranks.get("genus", 0))
    finally:
        db.close()
    assert sum(o.named_to_genus for o in first.outcomes) > 0
    report = bad.with_name("plate-bad-rows.quarantine.csv")
    assert report.is_file()
    # triage's warning: line for the collection with a row set aside: the record by file, line, processid, reason
    said = [line for line in first.table().splitlines() if line.startswith(("error: ", "warning: ", "… and"))]
    assert said == [f"warning: {bad}:12 (processid 'BAD-1'): "
                    f"{by_name['plate-bad-rows.csv'].first_set_aside.split(': ', 1)[1]}"]
    assert "barcode" in said[0]
    assert "genus" in first.table().splitlines()[0]

    # re-run: every collection skipped, each with the figures of the run that did it (table and --json)
    again = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    figures = ("run_id", "specimens", "quarantined", "named_to_species", "provisional_species", "named_to_genus",
               "novel", "proposals", "first_set_aside", "quarantine_file")
    for o in again.outcomes:
        assert o.status == "skipped"
        assert {k: getattr(o, k) for k in figures} == {k: getattr(by_name[o.collection], k) for k in figures}
    doc = again.to_json()
    assert [c["specimens"] for c in doc["collections"]] == [o.specimens for o in first.outcomes]
    assert all(c["specimens"] > 0 for c in doc["collections"])
    assert [line for line in again.table().splitlines() if line.startswith(("error: ", "warning: "))] == said

    # the row fixed: the collection re-runs clean and its stale report is gone; a user's file of that name stays
    bad.write_text(good_text)
    fixed = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    assert {o.collection: o.status for o in fixed.outcomes}["plate-bad-rows.csv"] == "ok"
    assert not report.exists() and fixed.exit_code == 0
    assert not [line for line in fixed.table().splitlines() if line.startswith(("error: ", "warning: "))]
    mine = "processid,what\nBAD-1,my own notes\n"
    report.write_text(mine)
    assert not drop_stale_report(report) and report.read_text() == mine  # only a report biodiscover wrote goes


def test_run_and_triage_say_a_row_set_aside_in_the_same_warning_line(workspace, tmp_path: Path) -> None:
    """A row set aside from a collection that was triaged is a warning (the triage went on without it), in the
    words ``triage`` uses for it, whichever command triaged the file: ``run`` printed it as an ``error:`` line,
    in other words (the file by its name alone, how many, the report), beside ``triage``'s ``warning:`` line
    (e35 review Q3). Paths given relative, as a person types them."""
    _root, bundle, meta = workspace
    (tmp_path / "night").mkdir()
    _bad_rows_plate(meta, tmp_path / "night")
    triaged = run_cli("triage", "--input", "night/plate-bad-rows.csv", "--model", str(bundle), "--db", "t.sqlite",
                      "-q", cwd=tmp_path)
    ran = run_cli("run", "--collections", "night", "--model", str(bundle), "--db", "r.sqlite", cwd=tmp_path)
    assert triaged.returncode == 0, triaged.stderr
    by_triage = [line for line in triaged.stderr.splitlines() if "BAD-1" in line]
    by_run = [line for line in (ran.stdout + ran.stderr).splitlines() if "BAD-1" in line]
    plate = tmp_path / "night" / "plate-bad-rows.csv"
    assert len(by_triage) == 1 and by_triage[0].startswith(f"warning: {plate}:12 (processid 'BAD-1'): barcode ")
    assert by_run == by_triage, ran.stdout
    assert not [line for line in (ran.stdout + ran.stderr).splitlines() if line.startswith("error:")], ran.stdout


def test_run_exits_1_only_for_rows_set_aside_by_this_run(workspace, tmp_path: Path) -> None:
    """A season's nightly ``run``: week 1 had a short read set aside (exit 1: there is something to fix), then
    week 2 came in clean. Its run printed "2 collections: 1 ok, 1 skipped (exit 1)": the 1 came from week 1,
    skipped as done, whose row an earlier run had set aside (e36 season review F8), so a cron could not tell
    tonight's failure from last week's short read. Now exit 1 is what this run failed or set aside; the old row is
    still named (the same bytes still have it out of the database), and the counts line says why it is exit 0."""
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    folder.mkdir()
    _bad_rows_plate(meta, folder)
    first = run_cli("run", "--collections", "night", "--model", str(bundle), "--db", "s.sqlite", cwd=tmp_path)
    assert first.returncode == 1 and "1 quarantined in" in first.stdout, first.stdout
    old = [line for line in first.stdout.splitlines() if "BAD-1" in line]
    write_collections(meta, folder, 1, rows_per_collection=10)
    week2 = run_cli("run", "--collections", "night", "--model", str(bundle), "--db", "s.sqlite", cwd=tmp_path)
    assert week2.returncode == 0, week2.stdout
    assert [line for line in week2.stdout.splitlines() if "BAD-1" in line] == old and len(old) == 1
    assert ("2 collections: 1 ok, 1 skipped in " in week2.stdout
            and "s (exit 0: the rows set aside above were set aside by earlier runs)" in week2.stdout), week2.stdout
    doc = json.loads(run_cli("run", "--collections", "night", "--model", str(bundle), "--db", "s.sqlite", "--json",
                             cwd=tmp_path).stdout)
    assert doc["exit_code"] == 0 and {c["status"] for c in doc["collections"]} == {"skipped"}
    # the same row set aside again tonight (the file edited, still with it) is exit 1
    with (folder / "plate-bad-rows.csv").open("a") as fh:
        fh.write("BAD-2,ACGT,Norway\n")
    again = run_cli("run", "--collections", "night", "--model", str(bundle), "--db", "s.sqlite", cwd=tmp_path)
    assert again.returncode == 1 and "(exit 1)" in again.stdout, again.stdout


def test_run_triages_a_file_reached_through_a_link_once(workspace, tmp_path: Path) -> None:
    """``alias.csv -> plate-00.csv`` beside it: one triage run, not two of the same specimens (e35 review Q4), the
    other name said under the table and in ``--json``."""
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    (plate,) = write_collections(meta, folder, 1, rows_per_collection=10)
    (folder / "alias.csv").symlink_to(plate.name)
    ran = run_cli("run", "--collections", str(folder), "--model", str(bundle), "--db", str(tmp_path / "n.sqlite"),
                  "--json")
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert [(c["collection"], c["status"]) for c in doc["collections"]] == [("plate-00.csv", "ok")]
    assert doc["notes"] == [f"{folder / 'alias.csv'}: skipped: the same file as {plate} (through a link); triaged "
                            "once, as plate-00.csv"]
    assert len(_completed_triage_runs(tmp_path / "n.sqlite")) == 1


def test_skipped_collection_of_an_earlier_version_shows_its_run_figures_from_the_database(workspace,
                                                                                        tmp_path: Path) -> None:
    """A batch item finished before items stored their figures (only its triage run id): the figures are counted
    again from the run's rows (``Database.run_figures``), not shown as zeros."""
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    write_collections(meta, folder, 1, rows_per_collection=25)
    _bad_rows_plate(meta, folder)
    db_path = tmp_path / "old.sqlite"
    first = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    db = Database.open(db_path)
    try:
        for item in [r for r in runs(db) if r.kind == ITEM_RUN_KIND]:  # as an earlier version finished it
            db.finish_run(item.id, "completed", result={"triage_run_id": item.result["triage_run_id"]})
    finally:
        db.close()
    # the report an earlier version left beside the clean plate (its rows since fixed) goes; the bad plate's stays
    stale = write_quarantine([QuarantinedRecord(str(folder / "plate-00.csv"), 3, "P1", "barcode_chars", "old")],
                             folder / "plate-00.quarantine.csv")
    again = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    for before, now in zip(first.outcomes, again.outcomes):
        assert now.status == "skipped"
        for k in ("run_id", "specimens", "quarantined", "named_to_species", "named_to_genus", "novel", "proposals",
                  "quarantine_file", "first_set_aside"):
            assert getattr(now, k) == getattr(before, k), k
    assert again.outcomes[1].first_set_aside.startswith(f"{folder / 'plate-bad-rows.csv'}:12 (processid 'BAD-1'): ")
    assert not stale.exists() and (folder / "plate-bad-rows.quarantine.csv").is_file()


def test_run_prints_triages_advisories_and_takes_level(workspace, tmp_path: Path, capsys) -> None:
    """``run`` shows, per collection, the lines ``triage`` prints (the same words: one owner,
    ``TriageSummary.advisories``), in the table, the log and ``--json``; ``--level`` is recorded with each
    collection's triage run, and a collection done at another level is triaged again."""
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    (plate,) = write_collections(meta, folder, 1, rows_per_collection=40)
    db_path = tmp_path / "night.sqlite"
    summary = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    (o,) = summary.outcomes
    lower = [a for a in o.advisories if a.startswith("named to species at a lower --level (the same P(right)): ")]
    assert len(lower) == 1 and lower[0].endswith(f" (now {o.named_to_species})")
    assert all(f"plate-00.csv: {a}" in summary.table().splitlines() for a in o.advisories)
    assert all(a in summary.log_file.read_text() for a in o.advisories)
    assert summary.to_json()["collections"][0]["advisories"] == o.advisories

    # the triage verb on the same file into another database prints those very lines
    assert main(["triage", "-i", str(plate), "-m", str(bundle), "--db", str(tmp_path / "t.sqlite"), "-q"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line in o.advisories] == o.advisories

    # --level: recorded with the triage run; the done collection is triaged again at it; none lower to advise
    at = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path, level=0.9))
    (o9,) = at.outcomes
    assert o9.status == "ok" and o9.run_id != o.run_id and o9.named_to_species >= o.named_to_species
    assert not [a for a in o9.advisories if a.startswith("named to species at a lower --level")]
    db = Database.open(db_path, readonly=True)
    try:
        assert db.run_progress(o9.run_id).parameters["level"] == 0.9
        assert db.run_progress(o.run_id).parameters["level"] == pytest.approx(0.98)
    finally:
        db.close()
    again = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path, level=0.9))
    assert [(x.status, x.run_id) for x in again.outcomes] == [("skipped", o9.run_id)]
    assert main(["run", "--help"]) == 0
    assert "--level" in capsys.readouterr().out


def test_species_named_from_an_accepted_candidate_are_counted_as_provisional(workspace, tmp_path: Path) -> None:
    _root, bundle, meta = workspace
    novel = meta[meta["split"] == "other_heldout"]  # species of genera the bundle holds no key of
    species = novel["species"].value_counts()
    rows = novel[novel["species"] == species.index[1]]
    half = len(rows) // 2
    assert half >= 3
    week1, week2 = tmp_path / "w1", tmp_path / "w2"
    week1.mkdir()
    week2.mkdir()
    cols = ["processid", "dna_barcode", "country"]
    rows.iloc[:half][cols].to_csv(week1 / "week-1.csv", index=False)
    rows.iloc[half:][cols].to_csv(week2 / "week-2.csv", index=False)
    db_path = tmp_path / "lab.sqlite"
    (w1,) = run_batch(BatchConfig(collections=str(week1), model=bundle, db=db_path)).outcomes
    assert w1.proposals >= 1 and w1.provisional_species == 0
    db = Database.open(db_path)
    try:
        queue, _total = db.proposal_queue("pending")
        biggest = max(queue, key=lambda p: p.size)
        db.accept(biggest.id, biggest.version, reviewer="test")
        name = db.proposal(biggest.id).provisional_name
    finally:
        db.close()
    summary = run_batch(BatchConfig(collections=str(week2), model=bundle, db=db_path))
    (w2,) = summary.outcomes
    db = Database.open(db_path, readonly=True)
    try:
        a = db.assignments(w2.run_id)
    finally:
        db.close()
    assert w2.provisional_species == int(((a["deepest_rank"] == "species") & (a["deepest_taxon"] == name)).sum())
    assert w2.provisional_species > 0 and w2.named_to_species >= w2.provisional_species
    assert "prov.: of the species names, those of provisional species reviewers accepted" in summary.table()
    assert any(x.startswith("references: + ") for x in w2.advisories)


def test_ctrl_c_then_the_same_command_says_it_resumes_and_the_candidates_bar_is_honest(workspace,
                                                                                       tmp_path: Path) -> None:
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    write_collections(meta, folder, 3, rows_per_collection=30)
    db_path = tmp_path / "night.sqlite"
    events: list = []

    def stop_in_second_plate(event) -> None:
        events.append(event)
        if event.kind == "stage" and event.collection == "plate-01.csv" and event.stage == "candidates":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path), progress=stop_in_second_plate)
    # the candidates stage counts itself (0/1 while clustering, 1/1 done), not the specimens triaged before it
    candidates = [(e.done, e.total) for e in events if e.kind == "stage" and e.stage == "candidates"]
    assert candidates and set(candidates) <= {(0, 1), (1, 1)} and candidates[0] == (0, 1)
    db = Database.open(db_path, readonly=True)
    try:
        (stopped,) = [r for r in runs(db) if r.kind == BATCH_RUN_KIND]
    finally:
        db.close()
    assert stopped.status == "interrupted"

    again_events: list = []
    again = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path), progress=again_events.append)
    resume = [e.message for e in again_events if e.kind == "batch_resume"]
    assert resume == [f"resuming batch run {stopped.id} (stopped before it finished): done 1 (plate-00.csv); "
                      "to go 2 (plate-01.csv, plate-02.csv)"]
    assert again.resumed == stopped.id and again.to_json()["resumed"] == stopped.id
    assert [o.status for o in again.outcomes] == ["skipped", "ok", "ok"]
    assert again.outcomes[0].done_before_stop  # the stopped batch never printed its table: its advisories now
    assert all(f"plate-00.csv: {a}" in again.table() for a in again.outcomes[0].advisories)
    db = Database.open(db_path, readonly=True)
    try:
        old = db.run_progress(stopped.id)
    finally:
        db.close()
    # the stopped batch says which batch went on from it, and is not resumed twice
    assert old.result["resumed_by"] == again.batch_run_id
    assert old.message.endswith(f"; resumed by batch run {again.batch_run_id}")
    third_events: list = []
    third = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path), progress=third_events.append)
    assert third.resumed is None and not [e for e in third_events if e.kind == "batch_resume"]
    assert not any(o.done_before_stop for o in third.outcomes)
    assert not [line for line in third.table().splitlines() if ": named to species at a lower" in line]


def _night_with_a_broken_file(meta, tmp_path: Path, plates: int, header: str) -> tuple[Path, Path]:
    """``plates`` plates of 20 rows and ``plate-broken.csv``, a file whose header is ``header``: folder, database."""
    folder = tmp_path / "night"
    write_collections(meta, folder, plates, rows_per_collection=20)
    (folder / "plate-broken.csv").write_text(f"{header}\nA1,ACGT\n")
    return folder, tmp_path / "night.sqlite"


def test_export_of_a_batch_run_id_is_its_triage_runs_and_a_run_that_holds_no_specimens_is_refused(
        workspace, tmp_path: Path) -> None:
    """A batch's id exports its collections' triage runs as one (it was refused, naming them, before export took
    several runs: ``test_export_batch``); a batch's record of one collection is still refused, naming its run."""
    from biodiscover.workflows.export import export_run

    _root, bundle, meta = workspace
    folder, db_path = _night_with_a_broken_file(meta, tmp_path, 2, "this,is")
    summary = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    done = [o.run_id for o in summary.outcomes if o.run_id is not None]
    assert len(done) == 2
    out = tmp_path / "out"
    result = export_run(db_path, summary.batch_run_id, "csv", tmp_path / "batch")
    assert (result.specimens, result.runs, result.partial) == (40, tuple(done), False)
    db = Database.open(db_path)
    try:
        items = {Path(r.parameters["path"]).name: r for r in runs(db) if r.kind == ITEM_RUN_KIND}
        # a triage killed before it stored anything: --partial must not write an empty export with exit 0
        empty = db.start_run(TRIAGE_RUN_KIND, {}, model_fingerprint="sha256:1", total=20, backup=False)
        db.finish_run(empty, "failed", message="triage interrupted before its results were stored")
    finally:
        db.close()
    with pytest.raises(InputError, match=f"^run {items['plate-00.csv'].id} is the batch record of plate-00.csv, not "
                                         f"a triage run: export its triage run, --run {done[0]}$"):
        export_run(db_path, items["plate-00.csv"].id, "csv", out)
    with pytest.raises(InputError, match=r"the batch record of plate-broken\.csv, not a triage run: it made no "
                                         r"triage run \(status failed\)$"):
        export_run(db_path, items["plate-broken.csv"].id, "csv", out, partial=True)
    with pytest.raises(InputError, match=f"^run {empty} holds no specimens \\(status failed: triage interrupted "
                                         "before its results were stored\\); nothing to export$"):
        export_run(db_path, empty, "csv", out, partial=True)
    assert not out.exists()
    assert export_run(db_path, done[0], "csv", out).specimens == 20


@pytest.mark.slow
def test_cli_prints_a_failed_collections_error_once(workspace, tmp_path: Path) -> None:
    """The CLI in this process (``run_cli``: its stderr carries log records as a terminal's would, so an ERROR
    log line would be seen)."""
    _root, bundle, meta = workspace
    folder, db_path = _night_with_a_broken_file(meta, tmp_path, 1, "Process ID,DNA Barcode")
    proc = run_cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path), cwd=REPO,
                   env={"COLUMNS": "100"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    said = proc.stdout + proc.stderr
    assert said.count("has no 'processid' column") == 1, said
    assert f"error: {folder / 'plate-broken.csv'}: not a specimen table" in proc.stdout
    assert "ERROR" not in said
    doc = run_cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path), "--json", cwd=REPO)
    summary = json.loads(doc.stdout.strip().splitlines()[-1])
    (skipped,) = [c for c in summary["collections"] if c["status"] == "skipped"]
    assert skipped["specimens"] == 20 and skipped["advisories"]
    assert doc.stderr.count("has no 'processid' column") == 0


def test_run_keeps_the_newest_default_logs_and_never_a_file_it_did_not_name(workspace, tmp_path: Path, cli) -> None:
    """After a few weeks of nightly batches a database had dozens of ``<db>.run-<time>.log`` beside it. A run now
    keeps its own log and the newest before it, KEEP_RUN_LOGS in all; only files named exactly as a default log of
    this database are deleted: a look-alike, another database's log, a link and a ``--log`` file stay, and a run
    given ``--log`` deletes nothing."""
    from biodiscover.workflows.batch import KEEP_RUN_LOGS

    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    write_collections(meta, folder, 1, rows_per_collection=20)
    db_path = tmp_path / "lab.sqlite"
    old = [tmp_path / f"lab.sqlite.run-2026{month:02d}01T000000Z.log" for month in range(1, 13)]  # 12 nights
    for p in old:
        p.write_text("an earlier night\n")
    strangers = [tmp_path / "lab.sqlite.run-notes.log", tmp_path / "lab.sqlite.run-20250101T000000Z.log.bak",
                 tmp_path / "other.sqlite.run-20250101T000000Z.log", tmp_path / "mine.log",
                 tmp_path / "xlab.sqlite.run-20250101T000000Z.log"]
    for p in strangers:
        p.write_text("not biodiscover's to delete\n")
    link = tmp_path / "lab.sqlite.run-20240101T000000Z.log"
    link.symlink_to(tmp_path / "mine.log")

    res = cli("run", "--collections", str(folder), "--model", str(bundle), "--db", str(db_path), "--log",
              str(tmp_path / "mine.log"))
    assert res.returncode == 0, res.stderr
    assert all(p.is_file() for p in old), "a run given --log deletes nothing"
    summary = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    assert summary.log_file.is_file() and summary.log_file not in old
    kept = sorted(p for p in old if p.exists())
    assert kept == old[-(KEEP_RUN_LOGS - 1):]  # the newest nine before this run's own
    assert all(p.read_text().startswith("not biodiscover's") for p in strangers) and link.is_symlink()
    assert "deleted 3 old run logs of lab.sqlite (the newest 10 are kept)" in summary.log_file.read_text()
    help_text = cli("run", "--help").stdout
    assert f"the newest {KEEP_RUN_LOGS} such logs are kept" in " ".join(help_text.replace("│", " ").split())


def test_run_skips_a_collection_triage_did_before_naming_its_run_and_force_triages_it_again(
        workspace, tmp_path: Path, cli) -> None:
    """A season review (e29, F8): `run` over a folder of weeks each triaged before into the same database with
    `triage` (same bytes, same model, same level) triaged every week again, re-clustering the reviewer's pending
    candidates under new numbers; README promised the skip. Now such a collection is skipped, its row showing that
    run and a line naming it; a changed file, another level or --force is triaged again."""
    _root, bundle, meta = workspace
    folder = tmp_path / "season"
    weeks = write_collections(meta, folder, 3, rows_per_collection=20)
    db_path = tmp_path / "lab.sqlite"
    triaged = {}
    for week in weeks[:2]:  # weeks 0 and 1 triaged one by one, as a taxonomist reviews them week by week
        res = cli("triage", "-i", str(week), "-m", str(bundle), "--db", str(db_path), "-q")
        assert res.returncode == 0, res.stderr
        triaged[week.name] = _completed_triage_runs(db_path)[0].id  # newest first
    before = len(_completed_triage_runs(db_path))

    res = cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path))
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line.split() for line in res.stdout.splitlines() if line.startswith("plate-")
            and len(line.split()) == 11}
    assert {name: (row[1], int(row[2])) for name, row in rows.items() if name in triaged} == {
        name: ("skipped", run) for name, run in triaged.items()}
    assert rows["plate-02.csv"][1] == "ok"
    assert int(rows["plate-00.csv"][3]) == 20  # the figures of the run that did it, not 0
    for name, run in triaged.items():
        assert (f"{name}: skipped: triaged into this database before as run {run} (same bytes, same model, same "
                "level); --force triages it again") in res.stdout
    assert "plate-02.csv: skipped" not in res.stdout
    assert len(_completed_triage_runs(db_path)) == before + 1  # only the week never triaged
    copies = sorted(backups_dir(db_path).iterdir())
    res = cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path), "--json")
    assert [c["status"] for c in json.loads(res.stdout)["collections"]] == ["skipped"] * 3
    assert sorted(backups_dir(db_path).iterdir()) == copies  # nothing triaged: the database is not copied for it

    weeks[1].write_text(weeks[1].read_text().rsplit("\n", 2)[0] + "\n")  # week 1 edited: one specimen fewer
    res = cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path), "--json")
    assert [c["status"] for c in json.loads(res.stdout)["collections"]] == ["skipped", "ok", "skipped"]
    res = cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path), "--json", "--level", "0.9")
    assert [c["status"] for c in json.loads(res.stdout)["collections"]] == ["ok", "ok", "ok"]  # another level
    done = len(_completed_triage_runs(db_path))
    res = cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path), "--json", "--force")
    assert [c["status"] for c in json.loads(res.stdout)["collections"]] == ["ok", "ok", "ok"]
    assert len(_completed_triage_runs(db_path)) == done + 3


def test_run_names_the_batch_it_wrote_and_a_stopped_batchs_id_exports_what_its_resumption_finished(
        workspace, tmp_path: Path, cli) -> None:
    """A season review (e29, F6): after Ctrl-C and the same command again, `run` said "resuming batch run 1" and
    never the id of the batch it wrote (6), and `export --run 1` exported 1 of 4 weeks without a word. Now the
    text output names the batch it wrote (and the one it resumes); a stopped batch's id is refused until it is
    resumed, naming the runs it finished, and then exports every collection, as the resuming batch's id does. The
    batch is run with --force: the same command again goes on from the stop, not over plate-00 again."""
    from biodiscover.workflows.export import export_run

    _root, bundle, meta = workspace
    folder = tmp_path / "season"
    write_collections(meta, folder, 3, rows_per_collection=20)
    db_path = tmp_path / "batch.sqlite"

    def stop_in_second_plate(event) -> None:
        if event.kind == "collection_start" and event.collection == "plate-01.csv":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path, force=True),
                  progress=stop_in_second_plate)
    (first,) = _completed_triage_runs(db_path)
    db = Database.open(db_path, readonly=True)
    try:
        (stopped,) = [r for r in runs(db) if r.kind == BATCH_RUN_KIND]
    finally:
        db.close()
    with pytest.raises(InputError, match=f"^batch run {stopped.id} was stopped before it finished: run the same "
                                         f"`biodiscover run` again to finish it, or export the 1 triage run it "
                                         f"finished: --run {first.id}$"):
        export_run(db_path, stopped.id, "csv", tmp_path / "early")

    res = cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path), "--force")
    assert res.returncode == 0, res.stderr
    db = Database.open(db_path, readonly=True)
    try:
        resumed = next(r for r in runs(db) if r.kind == BATCH_RUN_KIND)  # newest first
    finally:
        db.close()
    assert resumed.id != stopped.id and resumed.parameters["resumes"] == stopped.id
    assert res.stdout.splitlines()[-2] == (f"batch run {resumed.id} (resuming batch run {stopped.id}): export --run "
                                           f"{resumed.id} exports its 3 collections as one")
    everything = sorted(r.id for r in _completed_triage_runs(db_path))
    assert len(everything) == 3 and everything[0] == first.id
    for batch in (stopped.id, resumed.id):
        result = export_run(db_path, batch, "csv", tmp_path / f"batch-{batch}")
        assert (result.runs, result.specimens) == (tuple(everything), 60)

    again = cli("run", "-c", str(folder), "-m", str(bundle), "--db", str(db_path))  # nothing to resume: no "resuming"
    said = again.stdout.splitlines()[-2]
    newest = int(said.split()[2].rstrip(":"))
    assert newest > resumed.id and said == f"batch run {newest}: export --run {newest} exports its 3 collections as one"


def test_run_with_absent_share_season_pulls_each_plate_toward_the_ones_before(workspace, tmp_path: Path) -> None:
    """``run --absent-share season`` (season review F7): each collection's share of absent taxa is pulled toward
    the share the database's other plates read — the plates this batch did before it included — and the mode is
    recorded with each triage run; a mode that does not exist is refused before the first collection."""
    _root, bundle, meta = workspace
    folder = tmp_path / "season"
    write_collections(meta, folder, 2, rows_per_collection=40)
    db_path = tmp_path / "season.sqlite"
    summary = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path, absent_share="season"))
    first, second = summary.outcomes
    assert (first.status, second.status) == ("ok", "ok")
    db = Database.open(db_path, readonly=True)
    try:
        one, two = db.run_progress(first.run_id), db.run_progress(second.run_id)
    finally:
        db.close()
    assert (one.parameters["absent_share"], one.parameters["absent_share_from"]) == ("season", [])
    assert (two.parameters["absent_share"], two.parameters["absent_share_from"]) == ("season", [first.run_id])
    assert set(two.parameters["absent_share_toward"]) == set(one.result["absent_share_basis"]) != set()
    # what each plate was read at is said under its row, as triage says it: the first had no plate to lean on
    # (a batch that fell back to even odds said nothing of it: e31 review F3)
    shares = [[a for a in o.advisories if a.startswith("absent from the reference, this collection's estimated share")]
              for o in (first, second)]
    assert [len(s) for s in shares] == [1, 1]
    assert "(no other plate of this model in the database yet)" in shares[0][0]
    assert f"at the share of this database's 1 other plate of this model (run {first.run_id}: " in shares[1][0]
    assert all(f"{o.collection}: {s[0]}" in summary.table().splitlines() for o, s in zip((first, second), shares))
    # and the second says the first was read at even odds, with the command that reads it at the season's share
    # (e31 review F6)
    hints = [[a for a in o.advisories if a.startswith("read at even odds")] for o in (first, second)]
    assert hints[0] == [] and len(hints[1]) == 1, hints
    name = Path(first.collection).stem  # run names each collection after its file
    assert f": run {first.run_id} (collection {name}); re-read it " in hints[1][0]
    assert hints[1][0].endswith(f"--db {db_path} --collection {name} --absent-share season"), hints[1][0]
    with pytest.raises(InputError, match="--absent-share 'weeks': one of plate, season"):
        BatchConfig(collections=str(folder), model=bundle, db=tmp_path / "never.sqlite", absent_share="weeks")
    assert not (tmp_path / "never.sqlite").exists()


def test_a_reference_rebuilt_from_the_same_data_is_the_same_model_to_run(workspace, tmp_path: Path) -> None:
    """An ML engineer's review (M7): the same reference built twice differed only in bundle.json's creation time,
    yet its fingerprint differed, so `run` with the rebuild re-triaged the week it had done and re-numbered all
    148 pending candidates. Now the rebuild is the same model: skipped. A database written before the fingerprint
    left the time out recorded the old one; that too is matched. A changed model is still triaged again."""
    import shutil

    from biodiscover.storage.bundle import Bundle

    _root, bundle, meta = workspace
    folder = tmp_path / "week"
    write_collections(meta, folder, 1, rows_per_collection=20)
    db_path = tmp_path / "lab.sqlite"
    first = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    (done,) = first.outcomes
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(bundle, rebuilt)
    manifest = json.loads((rebuilt / "bundle.json").read_text())
    manifest["created"] = "2031-01-01T00:00:00+00:00"
    (rebuilt / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    assert Bundle.open(rebuilt).fingerprint == Bundle.open(bundle).fingerprint
    again = run_batch(BatchConfig(collections=str(folder), model=rebuilt, db=db_path))
    assert [(o.status, o.run_id) for o in again.outcomes] == [("skipped", done.run_id)]

    # the same database as the version before wrote it: every run names the bundle by its bytes' hash
    legacy = Bundle.open(bundle).fingerprints[1]
    con = sqlite3.connect(db_path)
    with con:
        con.execute("UPDATE runs SET model_fingerprint = ?", (legacy,))
        con.execute("UPDATE runs SET parameters = json_set(parameters, '$.model_fingerprint', ?) "
                    "WHERE json_extract(parameters, '$.model_fingerprint') IS NOT NULL", (legacy,))
    con.close()
    assert [(o.status, o.run_id) for o in run_batch(BatchConfig(collections=str(folder), model=bundle,
                                                                db=db_path)).outcomes] == [("skipped", done.run_id)]
    changed = tmp_path / "changed"
    shutil.copytree(bundle, changed)
    Bundle.open(changed).set_section("note", "another model")
    assert [o.status for o in run_batch(BatchConfig(collections=str(folder), model=changed, db=db_path)).outcomes] \
        == ["ok"]


def test_a_processid_another_plate_held_with_another_barcode_is_said_by_ingest_triage_and_run(workspace, tmp_path,
                                                                                             cli) -> None:
    """e31 review F22: week 3b held 5 processids of week 3 with other barcodes (a re-sequenced or mislabelled
    well); each became week 3b's specimen with no word from triage or run, and ``ingest`` said only "5 changed".
    Each now says which processid, which collection held it, and that the old version stays (capped, then a count)."""
    _root, bundle, meta = workspace
    week3 = write_collections(meta, tmp_path / "week3", 1, rows_per_collection=20)[0]
    db_path = tmp_path / "season.sqlite"
    run_batch(BatchConfig(collections=str(week3.parent), model=bundle, db=db_path))
    rows = pd.read_csv(week3).head(2)
    rows["dna_barcode"] = [b[::-1] for b in rows["dna_barcode"]]  # the same wells, other reads
    b_folder = tmp_path / "week3b"
    b_folder.mkdir()
    rows.to_csv(b_folder / "week3b.csv", index=False)
    pids = list(rows["processid"])
    said = [f"{pid} was in collection plate-00 with another barcode: stored as a new version in week3b (the old "
            "one kept, no longer current)" for pid in pids]

    batch = run_batch(BatchConfig(collections=str(b_folder), model=bundle, db=db_path))
    assert batch.outcomes[0].advisories[-2:] == said
    assert [f"week3b.csv: {line}" for line in said] == [line for line in batch.table().splitlines()
                                                        if "another barcode" in line]
    # triage of a third plate with the same ids and yet other reads: moved from week3b now
    rows["dna_barcode"] = [b[:-30] for b in rows["dna_barcode"]]
    rows.to_csv(tmp_path / "week3c.csv", index=False)
    out = cli("triage", "-i", str(tmp_path / "week3c.csv"), "-m", str(bundle), "--db", str(db_path))
    assert [line for line in out.stdout.splitlines() if "another barcode" in line] == [
        line.replace("plate-00", "week3b").replace("in week3b (", "in week3c (") for line in said]
    rows["dna_barcode"] = [b[:-10] for b in rows["dna_barcode"]]
    rows.to_csv(tmp_path / "week3d.csv", index=False)
    out = cli("ingest", "--input", str(tmp_path / "week3d.csv"), "--db", str(db_path))
    assert [line for line in out.stdout.splitlines() if "another barcode" in line] == [
        line.replace("plate-00", "week3c").replace("in week3b (", "in week3d (") for line in said]


def test_a_run_refused_for_its_database_leaves_no_log(workspace, tmp_path: Path, cli) -> None:
    """e31 review F14: `run --db adir` (a folder) refused ("adir: is not a file") but first made the log
    ``adir.run-<time>.log`` beside it: the database is opened before the log is made."""
    _root, bundle, meta = workspace
    folder = tmp_path / "night"
    write_collections(meta, folder, 1, rows_per_collection=20)
    (tmp_path / "adir").mkdir()
    res = cli("run", "--collections", str(folder), "--model", str(bundle), "--db", str(tmp_path / "adir"))
    assert res.returncode == 2 and res.stderr.strip() == f"error: {tmp_path / 'adir'}: is not a file", res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "night"]
