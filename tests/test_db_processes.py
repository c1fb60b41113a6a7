"""Proof that nothing is lost: real processes on a real SQLite file (issue 3, item 5).

a. a batch writer and a reviewer write concurrently from two processes;
b. SIGKILL in the middle of a bulk ingest, then `db check` and a re-run;
c. a review of a proposal that a newer run (another process) re-clustered;
d. unwritable path, corrupt file, newer schema: clear error, file untouched.

The workers use a 20 ms busy timeout so lock contention really happens and the
retry path (not just SQLite's own wait) is what keeps errors from users.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from biodiscover.storage.db import Database, check_database
from biodiscover.storage.errors import DatabaseError, StaleProposalError
from fixtures.db_views import proposal_members

REPO = Path(__file__).resolve().parent.parent

COMMON = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from biodiscover.storage.db import Database, EngineConfig
    from biodiscover.storage.records import Specimen
    CFG = EngineConfig(busy_timeout_ms=20, max_wait_s=60)
    def specimens(n, start=0):
        for i in range(start, start + n):
            yield Specimen(processid=f"BD{i:07d}", order="Diptera", family="Phoridae", genus="Megaselia",
                           dna_barcode="ACGT" * 150, country="Canada", split="test")
""")


def run_py(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", COMMON + textwrap.dedent(code), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _seed(path: Path, n_specimens: int, n_proposals: int) -> list[int]:
    from biodiscover.storage.records import Specimen

    with Database.create(path) as db:
        db.ingest((Specimen(processid=f"BD{i:07d}", order="Diptera", family="Phoridae", genus="Megaselia",
                            dna_barcode="ACGT" * 150) for i in range(n_specimens)), collection="seed", backup=False)
        run = db.start_run("triage", {}, "m0", backup=False)
        ids = db.write_proposals(run, [{"members": [f"BD{i:07d}"], "parent_lineage": {"genus": "Megaselia"}}
                                       for i in range(n_proposals)])
        db.finish_run(run)
    return ids


def test_a_batch_writer_and_reviewer_concurrently_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bd.sqlite"
    go, stop = tmp_path / "go", tmp_path / "stop"
    ids = _seed(path, 1500, 60)
    writer = run_py("""
        db = Database.open(sys.argv[1], config=CFG)
        go, stop = Path(sys.argv[2]), Path(sys.argv[3])
        rows = [{"processid": f"BD{i:07d}", "deepest_rank": "genus", "deepest_taxon": "Megaselia", "novelty": 0.3}
                for i in range(1500)]
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.01)
        run = db.start_run("batch", {}, "m1", backup=False)
        rep = 0
        while not stop.exists() and rep < 500:  # keep writing until the reviewer is done
            db.write_assignments(run, rows, chunk_size=50)
            rep += 1
            db.heartbeat(run, done=rep * 1500)
        db.finish_run(run)
        print("writer done", rep, run, flush=True)
    """, str(path), str(go), str(stop))
    reviewer = run_py("""
        db = Database.open(sys.argv[1], config=CFG)
        go = Path(sys.argv[3])
        ids = [int(x) for x in sys.argv[2].split(",")]
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.01)
        time.sleep(0.2)  # let the batch job get going first
        for i, pid in enumerate(ids):
            p = db.proposal(pid)
            if i % 3 == 0:
                db.accept(pid, p.version, reviewer="ana")
            elif i % 3 == 1:
                db.reject(pid, p.version, reviewer="ana")
            else:
                db.note(pid, f"note {i}", reviewer="ana")
        print("reviewer done", flush=True)
    """, str(path), ",".join(map(str, ids)), str(go))
    assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    assert reviewer.stdout.readline().strip() == "ready", reviewer.stderr.read()
    go.touch()
    _r_out, r_err = reviewer.communicate(timeout=120)
    stop.touch()
    w_out, w_err = writer.communicate(timeout=120)
    assert writer.returncode == 0, w_err
    assert reviewer.returncode == 0, r_err
    assert "locked" not in (w_err + r_err).lower() and "busy" not in (w_err + r_err).lower()
    with Database.open(path) as db:
        log = db.reviews()
        assert len(log) == len(ids)
        assert sorted(r["proposal_id"] for r in log) == sorted(ids)
        counts = db.queue_counts()
        assert (counts["accepted"], counts["rejected"], counts["pending"]) == (20, 20, 20)
        run_id = int(w_out.split()[-1])
        assert len(db.assignments(run_id)) == 1500
        # the two processes really overlapped: the batch job ran before, during and after the reviews
        prog = db.run_progress(run_id)
        assert prog.started_at < min(r["created_at"] for r in log)
        assert max(r["created_at"] for r in log) < prog.finished_at
        assert int(w_out.split()[-2]) >= 2
    assert check_database(path).ok


def test_b_sigkill_mid_ingest_leaves_a_sound_db_and_rerun_completes(tmp_path: Path) -> None:
    path = tmp_path / "bd.sqlite"
    Database.create(path).close()
    n = 8_000
    code = """
        db = Database.open(sys.argv[1], config=CFG)
        def progress(done):
            print(done, flush=True)
        db.ingest(specimens(int(sys.argv[2])), collection="big", chunk_size=500, backup=False, on_progress=progress)
        print("finished", flush=True)
    """
    proc = run_py(code, str(path), str(n))
    done = 0
    while done < 1500:  # let a few chunks commit, then kill without warning
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        done = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    report = check_database(path)
    assert report.ok, report.problems
    assert any("ingests that did not finish" in w for w in report.warnings)
    with Database.open(path) as db:
        partial = len(db.specimens())
        assert 1500 <= partial < n and partial % 500 == 0  # whole chunks only
    rerun = run_py(code, str(path), str(n))
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "finished" in out, err
    con = sqlite3.connect(path)
    total, distinct, current = con.execute(
        "SELECT count(*), count(DISTINCT processid), sum(current) FROM specimens").fetchone()
    con.close()
    assert total == distinct == current == n
    assert check_database(path).ok


def test_c_review_of_a_reclustered_proposal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bd.sqlite"
    _seed(path, 10, 0)
    with Database.open(path) as db:
        run = db.start_run("triage", {}, "m1", backup=False)
        (pid,) = db.write_proposals(run, [{"members": ["BD0000000", "BD0000001"], "parent_name": "Megaselia"}])
        db.finish_run(run)
        seen = db.proposal_detail(pid)  # what the reviewer has on screen
        newer = run_py("""
            db = Database.open(sys.argv[1], config=CFG)
            run = db.start_run("triage", {}, "m2", backup=False)
            print(db.write_proposals(run, [{"members": ["BD0000000", "BD0000002"], "parent_name": "Megaselia"}])[0])
            db.finish_run(run)
        """, str(path))
        out, err = newer.communicate(timeout=60)
        assert newer.returncode == 0, err
        new_id = int(out)
        before = db.reviews()
        with pytest.raises(StaleProposalError) as info:
            db.accept(pid, seen.summary.version, reviewer="ana")
        msg = str(info.value)
        assert f"proposal {pid} was re-clustered by run" in msg and f"into proposal {new_id}" in msg
        assert db.reviews() == before  # nothing written
        assert db.proposal(pid).status == "superseded"
        assert proposal_members(db, pid) == ["BD0000000", "BD0000001"]
        assert db.proposal(new_id).status == "pending"
        assert db.taxonomy().provisional() == []


def _cli_process(*args: str) -> subprocess.CompletedProcess:
    """The real `biodiscover` in its own process (slow to start: every area's verbs are imported)."""
    return subprocess.run([sys.executable, "-m", "biodiscover.cli", *args], cwd=REPO, capture_output=True, text=True)


CLI = Callable[..., subprocess.CompletedProcess[str]]  # conftest's in-process ``cli`` fixture


def test_d_unwritable_path_gives_clear_error(tmp_path: Path, cli: CLI) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DatabaseError, match="is a file, not a folder"):
        Database.create(blocker / "bd.sqlite")
    with pytest.raises(DatabaseError, match="does not exist"):
        Database.create(tmp_path / "missing" / "bd.sqlite")
    res = cli("ingest", "--input", str(blocker), "--db", str(tmp_path / "missing" / "bd.sqlite"))
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert not (tmp_path / "missing").exists()


def test_d_read_only_file_is_refused_untouched(open_tmp: Path, unprivileged_prefix: tuple[str, ...]) -> None:
    """Without write permission (as root in CI too: the process drops its privileges), a writer is refused
    in one line that says permissions, and a reader still reads."""
    path = open_tmp / "bd.sqlite"
    _seed(path, 5, 1)
    path.chmod(0o444)
    digest = sha(path)
    code = """
        from biodiscover.storage.errors import DatabaseError
        try:
            Database.open(sys.argv[1])
        except DatabaseError as exc:
            print("refused:", exc)
        with Database.open(sys.argv[1], readonly=True) as db:
            print("pending:", db.queue_counts()["pending"])
    """
    proc = subprocess.run([*unprivileged_prefix, sys.executable, "-c", COMMON + textwrap.dedent(code), str(path)],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "HOME": str(open_tmp / ".home"),
                                  "XDG_CONFIG_HOME": str(open_tmp / ".home" / ".config")})
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "not writable" in proc.stdout and "damaged" not in proc.stdout
    assert "pending: 1" in proc.stdout
    assert sha(path) == digest


def test_d_a_wrong_db_path_is_not_called_a_damaged_database(tmp_path: Path) -> None:
    """`--db plate.csv` (a CSV, not SQLite): say it is not a biodiscover database, with no backup advice;
    the file is left untouched. The damaged-database message stays for real SQLite damage (test below)."""
    plate = tmp_path / "plate.csv"
    plate.write_text("processid,dna_barcode\nBD00001,ACGT\n")
    digest = sha(plate)
    for verb in (["db", "check"], ["ingest", "--input", str(plate)]):
        res = subprocess.run([sys.executable, "-m", "biodiscover.cli", *verb, "--db", str(plate)],
                             capture_output=True, text=True, timeout=120)
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        assert res.returncode == 2 and lines == [
            f"error: {plate}: not a biodiscover database (not a SQLite database at all); check that --db names "
            "the database file"], (verb, res.stderr)
    assert sha(plate) == digest and not (tmp_path / "plate.csv.backups").exists()


def test_d_corrupt_files_are_refused_untouched(tmp_path: Path, cli: CLI) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(8192))
    digest = sha(junk)
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        Database.open(junk)
    for verb in (["db", "check"], ["db", "upgrade"], ["db", "backup"]):
        res = cli(*verb, "--db", str(junk))
        assert res.returncode == 2 and "not a SQLite database" in res.stderr and "Traceback" not in res.stderr
    assert sha(junk) == digest
    # a real database with its middle overwritten: the header is fine, the pages are not
    broken = tmp_path / "broken.sqlite"
    _seed(broken, 1500, 10)
    data = bytearray(broken.read_bytes())
    data[4096 * 3: 4096 * 6] = os.urandom(4096 * 3)
    broken.write_bytes(bytes(data))
    digest = sha(broken)
    res = cli("db", "check", "--db", str(broken))
    assert res.returncode in (1, 2) and ("problem" in res.stdout or "corrupt" in res.stderr), res.stdout + res.stderr
    assert sha(broken) == digest


def test_d_newer_schema_is_refused_untouched(tmp_path: Path, cli: CLI) -> None:
    path = tmp_path / "bd.sqlite"
    _seed(path, 5, 1)
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    digest = sha(path)
    with pytest.raises(DatabaseError, match="written by a newer biodiscover"):
        Database.open(path)
    for verb in (["db", "check"], ["db", "upgrade"]):
        res = cli(*verb, "--db", str(path))
        assert res.returncode == 2 and "newer biodiscover" in res.stderr, res.stderr
    res = _cli_process("db", "check", "--db", str(path))  # and from a real process: one line, no traceback
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert sha(path) == digest
    assert not (tmp_path / "bd.sqlite.backups").exists()


def test_upgrade_is_a_noop_at_head_and_backup_opens(tmp_path: Path, cli: CLI) -> None:
    path = tmp_path / "bd.sqlite"
    _seed(path, 5, 1)
    assert Database.upgrade(path) is None  # already current: no backup, no change
    res = cli("db", "upgrade", "--db", str(path))
    assert res.returncode == 0 and "already at the current schema" in res.stdout
    res = cli("db", "backup", "--db", str(path))
    assert res.returncode == 0
    backup = Path(res.stdout.strip())
    with Database.open(backup) as copy:
        assert copy.queue_counts()["pending"] == 1
