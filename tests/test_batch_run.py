"""``biodiscover run`` end to end: real bundle, real triage pipeline, real SQLite, a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from fixtures.batch import build_bundle_and_frame, write_collections

pytest.importorskip("biodiscover.workflows.triage", reason="E1's triage pipeline (workflows/triage.py) not present")

from biodiscover.storage.db.database import Database
from biodiscover.workflows.batch import ITEM_RUN_KIND, TRIAGE_RUN_KIND, BatchConfig, run_batch
from fixtures.db_views import runs

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
    assert third.exit_code == 0 and {o.status for o in third.outcomes} == {"skipped"}


@pytest.mark.slow  # two CLI processes (≈10 s of imports each on 2 busy cores) and a real SIGKILL
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

    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
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
        failed = by_kind[(TRIAGE_RUN_KIND, "failed")]
        assert len(db.assignments(failed.id)) == 0
        progress = db.run_progress(failed.id)
        assert (progress.done, progress.total) == (0, 30)
        assert "interrupted before its results were stored" in (progress.message or "")
    finally:
        db.close()
    again = run_batch(BatchConfig(collections=str(folder), model=bundle, db=db_path))
    assert {o.collection: o.status for o in again.outcomes} == {"plate-00.csv": "skipped", "plate-01.csv": "ok"}
    assert len(_completed_triage_runs(db_path)) == 2
