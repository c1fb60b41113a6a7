"""What biodiscover promises about your data (docs/data-promises.md), one test per break of issue 12.

Every test runs the real ``biodiscover`` command on a real file and checks the exit
code, the one-line message and the SHA-256 of every file that must be left
untouched. The command runs in the test's own process (``fixtures.inprocess.run_cli``:
the console script's code path, its stderr as a terminal would show it) unless the
process is what the promise is about: permission tests run it in a subprocess without
privileges (as nobody, or as root without the capabilities that bypass file modes;
see ``unprivileged_prefix`` in conftest.py; CI runs as root, so skipping there would
prove nothing), and the SIGKILL test kills a real ingest process.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from biodiscover.storage.db import Database, check_database
from biodiscover.storage.records import BIOSCAN_COLUMNS, Specimen
from fixtures.discovery import make_world, write_metadata
from fixtures.db_views import specimen_versions
from fixtures.inprocess import run_cli

REPO = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).resolve().parent / "hostile"
HEADER = "processid,order,family,genus,species,dna_barcode,country"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative name → digest)."""
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(*args: str, prefix: tuple[str, ...] = (), cwd: Path | None = None, home: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``biodiscover ARGS``: in this process, or, given a ``prefix`` that drops privileges, in a subprocess run
    through it (only another process can be another user); ``timeout`` bounds that subprocess."""
    env = {"COLUMNS": "200"}
    if home is not None:
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), MPLCONFIGDIR=str(home / ".mpl"),
                   XDG_CONFIG_HOME=str(home / ".config"))
    if not prefix:
        return run_cli(*args, env=env, cwd=cwd or REPO)
    return subprocess.run([*prefix, sys.executable, "-m", "biodiscover.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={**os.environ, **env}, timeout=timeout)


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a refused command (exit 2, no traceback)."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (
        res.returncode, res.stdout[-2000:], res.stderr[-3000:])
    return lines[0]


def barcode(i: int, n: int = 420) -> str:
    import random

    rng = random.Random(i)
    return "".join(rng.choice("ACGT") for _ in range(n))


def write_plate(path: Path, n: int, *, start: int = 0, prefix: str = "PL", bad: int = 0) -> Path:
    lines = [HEADER]
    lines += [f"{prefix}{i:05d},Diptera,Phoridae,Megaselia,Megaselia sp{i % 3},{barcode(i)},Canada"
              for i in range(start, start + n)]
    lines += [f"BAD{i:03d},Diptera,Phoridae,Megaselia,Megaselia sp1,ACGT,Canada" for i in range(bad)]
    path.write_text("\n".join(lines) + "\n")
    return path


def corrupt_middle(path: Path, seed: int = 0) -> None:
    """Overwrite 4 KB in the middle of a database file with seeded noise (the header stays valid)."""
    import random

    data = bytearray(path.read_bytes())
    middle = (len(data) // 2) // 4096 * 4096
    data[middle:middle + 4096] = random.Random(seed).randbytes(4096)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def world_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    write_metadata(root, make_world(seed=5))
    return root


@pytest.fixture(scope="module")
def bundle(world_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    res = cli("build-reference", "--data", str(world_root), "--out", str(out), "--keys", "train",
              "--max-outliers", "40", "--quiet")
    assert res.returncode == 0, res.stderr
    return out


# -- 2. a damaged database is never written to; backups are verified; pruning keeps the good ones ------------

def test_2_every_writing_verb_refuses_a_damaged_database(tmp_path: Path, bundle: Path) -> None:
    db = tmp_path / "bd.sqlite"
    with Database.create(db) as handle:
        handle.ingest((Specimen(processid=f"BD{i:05d}", order="Diptera", family="Phoridae", genus="Megaselia",
                                dna_barcode=barcode(i)) for i in range(1500)), collection="seed", backup=False)
        good = [handle.backup(reason="pre-run", keep=3) for _ in range(3)]
    corrupt_middle(db)
    plate = write_plate(tmp_path / "plate.csv", 20)
    (tmp_path / "coll").mkdir()
    write_plate(tmp_path / "coll" / "night.csv", 20)
    before_db, before_backups = sha(db), digests(db.with_name(db.name + ".backups"))
    verbs = {
        "ingest": ["ingest", "--input", str(plate), "--db", str(db)],
        "triage": ["triage", "--input", str(plate), "--model", str(bundle), "--db", str(db), "-q"],
        "run": ["run", "--collections", str(tmp_path / "coll"), "--model", str(bundle), "--db", str(db),
                "--log", str(tmp_path / "run.log")],
        "db upgrade": ["db", "upgrade", "--db", str(db)],
        "db backup": ["db", "backup", "--db", str(db)],
        "export": ["export", "--db", str(db), "--run", "1", "--format", "csv", "--out", str(tmp_path / "exp")],
        "review": ["review", "--db", str(db)],
    }
    for verb, args in verbs.items():
        line = one_error_line(cli(*args))
        assert "the database is damaged" in line and "biodiscover db check" in line, (verb, line)
        assert f"the newest good backup is {good[-1]}" in line, (verb, line)
    # the database is checked before the input is read: a named pipe nobody writes to would block any read
    fifo = tmp_path / "never-read.csv"
    os.mkfifo(fifo)
    for args in (["ingest", "--input", str(fifo), "--db", str(db)],
                 ["triage", "--input", str(fifo), "--model", str(bundle), "--db", str(db), "-q"]):
        assert "the database is damaged" in one_error_line(cli(*args, timeout=120))
    res = cli("db", "check", "--db", str(db))
    assert res.returncode == 1 and "problem" in res.stdout, res.stdout + res.stderr
    assert sha(db) == before_db
    assert digests(db.with_name(db.name + ".backups")) == before_backups  # nothing added, nothing pruned
    assert not (tmp_path / "exp").exists()


def test_2_backups_are_verified_and_pruning_never_loses_the_newest_good_one(tmp_path: Path) -> None:
    from biodiscover.storage.db.backup import backup_database, list_backups, newest_good_backup
    from biodiscover.storage.errors import DatabaseError

    db = tmp_path / "bd.sqlite"
    with Database.create(db) as handle:
        handle.ingest((Specimen(processid=f"BD{i:05d}", dna_barcode=barcode(i)) for i in range(1500)),
                      collection="seed", backup=False)
        manual = handle.backup()
        taken = [handle.backup(reason="pre-run", keep=2) for _ in range(3)]
    # keep=2: the two newest pre-run backups stay (the one just taken always), the manual one is another reason
    assert set(list_backups(db)) == {manual, *taken[1:]}
    for b in list_backups(db):
        check = sqlite3.connect(f"file:{b}?immutable=1", uri=True).execute("PRAGMA integrity_check").fetchone()
        assert check == ("ok",)
    assert not list(db.with_name(db.name + ".backups").glob("*-wal"))  # reading a backup leaves no journal files
    # the newest backup rots on disk: the message names the newest one that still passes
    corrupt_middle(taken[-1])
    assert newest_good_backup(db) == taken[-2]
    corrupt_middle(db)
    before = digests(db.with_name(db.name + ".backups"))
    with pytest.raises(DatabaseError, match=r"the database is damaged.*nothing was written"):
        backup_database(db, reason="pre-run", keep=1)
    assert digests(db.with_name(db.name + ".backups")) == before


def test_2_a_file_cut_short_is_damaged_before_sqlite_reads_a_page(tmp_path: Path) -> None:
    from biodiscover.storage.db.integrity import page_problems

    db = tmp_path / "bd.sqlite"
    with Database.create(db) as handle:
        handle.ingest((Specimen(processid=f"BD{i:05d}", dna_barcode=barcode(i)) for i in range(500)),
                      collection="seed", backup=False)
    assert page_problems(db) == []
    data = db.read_bytes()
    (tmp_path / "half.sqlite").write_bytes(data[: len(data) // 2 // 4096 * 4096])
    (tmp_path / "ragged.sqlite").write_bytes(data + b"\0" * 100)
    assert "cut short" in page_problems(tmp_path / "half.sqlite")[0]
    assert "not a whole number" in page_problems(tmp_path / "ragged.sqlite")[0]
    for name in ("half.sqlite", "ragged.sqlite"):
        digest = sha(tmp_path / name)
        line = one_error_line(cli("ingest", "--input", str(write_plate(tmp_path / "p.csv", 3)), "--db",
                                  str(tmp_path / name)))
        assert "the database is damaged" in line and "no good backup was found" in line, line
        assert sha(tmp_path / name) == digest


def test_2_sqlites_multi_line_complaint_is_still_one_error_line(tmp_path: Path) -> None:
    """quick_check can answer '*** in database main ***\\nPage 38: …': the user still gets one line."""
    db = tmp_path / "bd.sqlite"
    with Database.create(db) as handle:
        handle.ingest((Specimen(processid=f"BD{i:05d}", dna_barcode=barcode(i)) for i in range(1500)),
                      collection="seed", backup=False)
    import sqlite3 as sq

    original = db.read_bytes()
    for page in range(2, len(original) // 4096):  # an invalid b-tree page type: the report spans two lines
        damaged = bytearray(original)
        damaged[page * 4096] = 0x07
        db.write_bytes(bytes(damaged))
        try:
            rows = [r[0] for r in sq.connect(f"file:{db}?immutable=1", uri=True).execute("PRAGMA quick_check(5)")]
        except sq.DatabaseError:
            continue
        if any("\n" in r for r in rows):
            break
    else:
        pytest.fail("no single-page damage gave a multi-line quick_check report")
    line = one_error_line(cli("ingest", "--input", str(write_plate(tmp_path / "p.csv", 3)), "--db", str(db)))
    assert "the database is damaged" in line and "biodiscover db check" in line


# -- 3. one stray quote sets aside one line, not the rest of the file -------------------------------------------

def test_3_a_stray_quote_sets_aside_its_line_and_the_rest_is_read(tmp_path: Path) -> None:
    src = HOSTILE / "stray_quote.csv"
    digest = sha(src)
    report = tmp_path / "q.csv"
    res = cli("validate", str(src), "--quarantine", str(report))
    assert res.returncode == 1, res.stderr
    assert f"{src} (csv): 49 records, 48 valid, 1 quarantined" in res.stdout
    with report.open(newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["line"], row["processid"], row["kind"]) == ("5", "SQ003", "malformed_row")
    assert "stray" in row["reason"] and row["raw"].count("\n") == 0
    res = cli("ingest", "--input", str(src), "--db", str(tmp_path / "bd.sqlite"), "--quarantine",
              str(tmp_path / "q2.csv"), "--json")
    out = json.loads(res.stdout)
    assert res.returncode == 0 and (out["new"], out["quarantined"]) == (48, 1), res.stderr
    assert sha(src) == digest


def test_3_a_quoted_note_over_two_or_three_lines_is_one_valid_record(tmp_path: Path) -> None:
    """A properly quoted cell may hold line breaks (spreadsheets write them for notes): in a column biodiscover
    does not keep, such a record is read whole, not set aside as a stray quote; only a break inside a kept column
    is. Two lines is the common case and the edge of the rule."""
    rows = [f"{HEADER},remarks"]
    rows += [f"ML{i:03d},Diptera,Phoridae,Megaselia,Megaselia sp{i % 2},{barcode(i)},Canada,dry" for i in range(4)]
    rows[2] = rows[2].replace(",dry", ',"collected at dusk\nnear the light trap"')  # two physical lines
    rows[3] = rows[3].replace(",dry", ',"one\ntwo\nthree"')  # three
    rows.append(f'ML900,Diptera,Phoridae,Megaselia,Megaselia sp0,{barcode(900)},"Can\nada",dry')  # kept column
    src = tmp_path / "notes.csv"
    src.write_text("\n".join(rows) + "\n")
    report = tmp_path / "q.csv"
    res = cli("validate", str(src), "--quarantine", str(report))
    assert res.returncode == 1, res.stderr
    # the break in `country` sets its line aside and the next physical line is read (and refused) on its own
    assert f"{src} (csv): 6 records, 4 valid, 2 quarantined" in res.stdout, res.stdout
    with report.open(newline="") as fh:
        assert [(r["line"], r["processid"]) for r in csv.DictReader(fh)] == [("9", "ML900"), ("10", 'ada"')]
    res = cli("ingest", "--input", str(src), "--db", str(tmp_path / "bd.sqlite"), "--quarantine",
              str(tmp_path / "q2.csv"), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["new"] == 4, res.stderr
    with Database.open(tmp_path / "bd.sqlite", readonly=True) as db:
        assert sorted(s.processid for s in db.specimens()) == ["ML000", "ML001", "ML002", "ML003"]


# -- 4. the quarantine is stored and written before the ingest counts as done ----------------------------------

def test_4_an_unwritable_quarantine_path_is_refused_before_anything_is_written(
        tmp_path: Path, open_tmp: Path, unprivileged_prefix: tuple[str, ...]) -> None:
    plate = write_plate(open_tmp / "plate.csv", 10, bad=1)
    plate.chmod(0o444)
    (open_tmp / "dbdir").mkdir()
    (open_tmp / "dbdir").chmod(0o777)
    locked = open_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    db = open_tmp / "dbdir" / "bd.sqlite"
    res = cli("ingest", "--input", str(plate), "--db", str(db), "--quarantine", str(locked / "q.csv"),
              prefix=unprivileged_prefix, home=open_tmp / ".home")
    line = one_error_line(res)
    assert str(locked / "q.csv") in line and "not writable" in line
    assert not db.exists()  # refused before the database was even created
    # a writable report path: stored, written, and reported again by every re-run
    report = open_tmp / "dbdir" / "plate.quarantine.csv"
    res = cli("ingest", "--input", str(plate), "--db", str(db), "--quarantine", str(report),
              prefix=unprivileged_prefix, home=open_tmp / ".home")
    assert res.returncode == 0 and f"1 rows set aside: {report}" in res.stdout, res.stderr
    first = sha(report)
    res = cli("ingest", "--input", str(plate), "--db", str(db), "--quarantine", str(report), "--json",
              prefix=unprivileged_prefix, home=open_tmp / ".home")
    again = json.loads(res.stdout)
    assert again["skipped"] and again["quarantined"] == 1 and again["quarantine_file"] == str(report)
    report.unlink()  # the report is lost: a re-run writes it again from the database
    res = cli("ingest", "--input", str(plate), "--db", str(db), "--quarantine", str(report),
              prefix=unprivileged_prefix, home=open_tmp / ".home")
    assert res.returncode == 0 and "1 rows were set aside by that ingest" in res.stdout, res.stderr
    assert sha(report) == first


def test_4_an_unwritable_database_folder_is_named_as_the_databases_problem(
        open_tmp: Path, unprivileged_prefix: tuple[str, ...]) -> None:
    """e31 review F14: a clean input in a read-only folder with the database in that folder too: "cannot write the
    quarantine report: folder … is not writable" — the input has nothing to set aside; the database is what cannot
    be written (with a writable --db the same input triages and a report goes beside the database)."""
    ro = open_tmp / "ro"
    ro.mkdir()
    plate = write_plate(ro / "ok.csv", 5)
    ro.chmod(0o555)
    res = cli("triage", "-i", str(plate), "-m", str(open_tmp / "no-model"), "--db", str(ro / "lab.sqlite"),
              prefix=unprivileged_prefix, home=open_tmp / ".home", cwd=ro)
    assert one_error_line(res) == f"error: {ro / 'lab.sqlite'}: cannot write the database: folder {ro} is not writable"


def test_4_a_report_that_cannot_be_written_leaves_the_ingest_unfinished(tmp_path: Path) -> None:
    from biodiscover.storage.collections import iter_collection
    from biodiscover.storage.errors import InputError

    plate = write_plate(tmp_path / "plate.csv", 30, bad=2)
    blocker = tmp_path / "reports"

    def then_block(reader: Iterable[Specimen]) -> Iterator[Specimen]:
        yield from reader
        blocker.write_text("a file where the report folder should be")  # after the preflight passed

    with Database.create(tmp_path / "bd.sqlite") as db:
        reader = iter_collection(plate)
        with pytest.raises(InputError, match="cannot write the quarantine report"):
            db.ingest(then_block(reader), collection="plate", source=plate, quarantine=reader.quarantine,
                      quarantine_file=blocker / "q.csv", backup=False)
        ingest = sqlite3.connect(tmp_path / "bd.sqlite").execute("SELECT status FROM ingests").fetchall()
        assert ingest == [("running",)]  # not completed: a re-run must not skip it
        blocker.unlink()
        report, _ = db.ingest_file(plate, quarantine_file=blocker / "q.csv", backup=False)
        assert not report.skipped and report.quarantined == 2 and report.unchanged == 30
        assert len(db.ingest_quarantine(report.ingest_id)) == 2 and (blocker / "q.csv").is_file()
    assert check_database(tmp_path / "bd.sqlite").warnings == []


# -- 5. build-reference validates exactly like ingest -----------------------------------------------------------

def test_5_build_reference_sets_aside_bad_barcodes_and_duplicated_processids(world_root: Path,
                                                                            tmp_path: Path) -> None:
    from biodiscover.discovery.engine import DiscoveryModel

    data = tmp_path / "data"
    (data / "metadata").mkdir(parents=True)
    metadata = data / "metadata" / "BIOSCAN_5M_Insect_Dataset_metadata.csv"
    original = (world_root / "metadata" / "BIOSCAN_5M_Insect_Dataset_metadata.csv").read_text()
    with (HOSTILE / "reference_rows.csv").open(newline="") as fh:
        extra = list(csv.DictReader(fh))
    rows = []
    for r in extra:  # hostile rows in the dataset's 23 columns; the stray-quote row keeps its raw text
        if r["processid"] == "QT001":
            continue
        rows.append(",".join(r.get(c, "") for c in BIOSCAN_COLUMNS))
    quote_line = (HOSTILE / "reference_rows.csv").read_text().splitlines()[-1]
    qt = quote_line.split(",")
    rows.append(",".join({"processid": qt[0], "order": qt[1], "family": qt[2], "genus": qt[3], "species": qt[4],
                          "dna_barcode": qt[5], "split": qt[6]}.get(c, "") for c in BIOSCAN_COLUMNS))
    metadata.write_text(original + "\n".join(rows) + "\n")
    digest = sha(metadata)
    out = tmp_path / "ref"
    res = cli("build-reference", "--data", str(data), "--out", str(out), "--keys", "train",
              "--max-outliers", "40")
    assert res.returncode == 0, res.stderr
    report = tmp_path / "ref.quarantine.csv"
    # the 50 appended rows repeat P00001..P00050 with other labels: which row is right cannot be known, so the
    # dataset's own rows of those processids in the splits build-reference reads (keys, and the known species it
    # simulates from) are set aside too (e34 attack Q2), and add no key either
    world = make_world(seed=5)
    repeated = {f"P{i:05d}" for i in range(1, 51)}
    own = sum(s.processid in repeated for split in ("train", "val", "test") for s in world[split])
    assert f"{58 + own} rows set aside (invalid or duplicated): {report}" in res.stdout
    # said once, with progress on: not again by the workflow's progress or the reader's log
    assert (res.stdout + res.stderr).count("set aside") == 1, res.stdout + res.stderr
    with report.open(newline="") as fh:
        kinds = [r["kind"] for r in csv.DictReader(fh)]
    assert sorted(set(kinds)) == ["barcode_chars", "control_chars", "duplicate_processid", "malformed_row"]
    assert kinds.count("duplicate_processid") == 50 + own
    model = DiscoveryModel.load(out)
    in_train = sum(s.processid in repeated for s in world["train"])
    assert len(model.ref_ids_) == len(world["train"]) - in_train  # no duplicated processid adds a key
    assert not repeated & set(model.ref_ids_)
    assert not any(pid.startswith(("XZ", "NUL", "QT")) for pid in model.ref_ids_)
    assert sha(metadata) == digest


# -- 7. a bad photo is a set-aside photo; unwritable outputs and wrong paths are one line -------------------------

def test_7_photos_given_by_a_relative_path_are_found_from_any_folder_later(tmp_path: Path) -> None:
    """`ingest --input images.csv --images images_images` run inside the folder: the database keeps where the
    photo is, not where it was from the folder the command ran in (a review started elsewhere showed
    "missing file")."""
    work = tmp_path / "in"
    work.mkdir()
    shutil.copy(HOSTILE / "images.csv", work / "images.csv")
    shutil.copytree(HOSTILE / "images_images", work / "images_images")
    db = tmp_path / "bd.sqlite"
    res = cli("ingest", "--input", "images.csv", "--images", "images_images", "--db", str(db), cwd=work)
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT image_path FROM specimens WHERE processid = 'IMG001'").fetchone()
    assert Path(stored).is_absolute() and Path(stored) == work / "images_images" / "IMG001.jpg"
    assert Path(stored).is_file()



def test_7_a_decompression_bomb_is_a_set_aside_photo(tmp_path: Path, bundle: Path) -> None:
    """A bad photo (decompression bomb, corrupt, not an image) is set aside alone: its barcoded
    specimen is kept without it and the photo is a quarantine row; a record whose only data is
    the bad photo is still set aside whole."""
    work = tmp_path / "in"
    work.mkdir()
    table = Path(shutil.copy(HOSTILE / "images.csv", work / "images.csv"))
    photos = Path(shutil.copytree(HOSTILE / "images_images", work / "images_images"))
    shutil.copy(photos / "IMG002.png", photos / "ONLY001.png")  # a photo with no row: its only data is the bomb
    before = digests(work)

    res = cli("validate", str(table), "--images", str(photos), "--quarantine", str(tmp_path / "q.csv"))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{table} (csv): 5 records, 4 valid, 1 quarantined, 3 photos set aside" in res.stdout, res.stdout
    res = cli("validate", str(table), "--images", str(photos), "--quarantine", str(tmp_path / "q.csv"), "--json")
    report = json.loads(res.stdout)
    assert (res.returncode, report["rows"], report["ok"], report["quarantined"], report["photos_set_aside"]) == (
        1, 5, 4, 1, 3), report
    assert report["problems"] == {"image_unreadable": 4}
    with (tmp_path / "q.csv").open(newline="") as fh:
        rows = {r["processid"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"IMG002", "IMG003", "IMG004", "ONLY001"}
    for pid in ("IMG002", "IMG003", "IMG004"):  # the photo alone, naming the record's file and line
        assert rows[pid]["file"] == str(table) and rows[pid]["kind"] == "image_unreadable", rows[pid]
        assert rows[pid]["reason"].startswith("photo set aside, specimen kept without it: image file "), rows[pid]
        assert str(photos / pid) in rows[pid]["reason"]
    assert "decompression bomb" in rows["IMG002"]["reason"].lower() and "is refused" in rows["IMG002"]["reason"]
    assert rows["IMG002"]["line"] == "3"
    assert not rows["ONLY001"]["reason"].startswith("photo set aside")  # nothing else to keep: set aside whole
    assert rows["ONLY001"]["file"] == str(photos / "ONLY001.png")

    db = tmp_path / "bd.sqlite"
    res = cli("ingest", "--input", str(table), "--images", str(photos), "--db", str(db))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    qfile = work / "images.quarantine.csv"
    assert f"1 rows set aside, 3 photos set aside (their specimens kept without): {qfile}" in res.stdout, res.stdout
    with sqlite3.connect(db) as conn:
        kept = {pid: (bc, img) for pid, bc, img in conn.execute(
            "SELECT processid, dna_barcode, image_path FROM specimens WHERE current")}
        stored = sorted(conn.execute("SELECT processid, kind, substr(reason, 1, 41) FROM quarantine"))
    assert set(kept) == {"IMG001", "IMG002", "IMG003", "IMG004"}
    barcodes = {r["processid"]: r["dna_barcode"] for r in csv.DictReader(table.open(newline=""))}
    for pid in ("IMG002", "IMG003", "IMG004"):
        assert kept[pid] == (barcodes[pid], None), kept[pid]
    assert kept["IMG001"][1] == str(photos / "IMG001.jpg")
    assert stored == [(pid, "image_unreadable", "photo set aside, specimen kept without it")
                      for pid in ("IMG002", "IMG003", "IMG004")] + [("ONLY001", "image_unreadable",
                                                                     "image file " + str(photos)[:30])]
    res = cli("ingest", "--input", str(table), "--images", str(photos), "--db", str(db), "--json")
    again = json.loads(res.stdout)  # the re-run says the same
    assert (res.returncode, again["skipped"], again["quarantined"], again["photos_set_aside"]) == (0, True, 1, 3)

    res = cli("triage", "--input", str(table), "--images", str(photos), "--model", str(bundle), "--no-images",
              "--results", str(tmp_path / "r.jsonl"), "--json", "-q")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (summary["specimens"], summary["quarantined"], summary["photos_set_aside"]) == (5, 1, 3), summary
    # the 4 kept specimens are triaged; the corpus's barcodes are random sequence, unrelated to this world's
    # keys, so none gets a DNA call (tests/test_homology.py) — each is reported with that reason
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted(r["processid"] for r in rows) == ["IMG001", "IMG002", "IMG003", "IMG004"]
    assert all(r["reason"].startswith("barcode unrelated to every reference key") for r in rows)
    assert digests(work) == {**before, "images.quarantine.csv": sha(qfile)}


def test_7_a_latin1_file_is_refused_whole_naming_its_first_line(tmp_path: Path) -> None:
    """A spreadsheet saved as Latin-1/cp1252 is refused in one line naming the file and its first
    non-UTF-8 line (never each accented row set aside one by one); saved as UTF-8 every row is read."""
    rows = [f"LA{i:03d},Diptera,Phoridae,Megaselia,Megaselia sp1,{barcode(i)},{country}"
            for i, country in enumerate(["Canada", "Québec", "Canada", "México"])]
    text = HEADER + "\n" + "\n".join(rows) + "\n"
    latin = tmp_path / "plate.csv"
    latin.write_bytes(text.encode("cp1252"))
    digest = sha(latin)
    db = tmp_path / "bd.sqlite"
    for args in (["validate", str(latin)], ["ingest", "--input", str(latin), "--db", str(db)]):
        line = one_error_line(cli(*args))
        assert line == (f"error: {latin}: not UTF-8 (looks like Latin-1/cp1252); re-save as UTF-8 — "
                        "first at line 3: 'Québec' read as cp1252"), line
    assert sha(latin) == digest and not (tmp_path / "plate.quarantine.csv").exists()
    assert not db.exists() or not Database.open(db).specimens()
    latin.write_text(text, encoding="utf-8")  # re-saved as UTF-8
    res = cli("validate", str(latin))
    assert res.returncode == 0 and f"{latin} (csv): 4 records, 4 valid, 0 quarantined" in res.stdout, res.stdout
    binary = tmp_path / "odd.csv"  # bytes that are not text in any 8-bit sense: the byte and column are named
    binary.write_bytes((HEADER + "\n").encode() + f"OD001,Diptera,Phoridae,Megaselia,x,{barcode(1)},Can".encode()
                       + b"\x81\x00\n")
    line = one_error_line(cli("validate", str(binary)))
    assert line == (f"error: {binary}: not UTF-8; re-save as UTF-8 — first at line 2, column "
                    f"{len(barcode(1)) + 40} (byte b'\\x81')"), line


def test_7_unwritable_outputs_are_one_line_before_any_work(open_tmp: Path, bundle: Path,
                                                            unprivileged_prefix: tuple[str, ...]) -> None:
    (open_tmp / "in").mkdir()
    (open_tmp / "in").chmod(0o777)
    plate = write_plate(open_tmp / "in" / "plate.csv", 10, bad=1)
    locked = open_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    (open_tmp / "dbdir").mkdir()
    (open_tmp / "dbdir").chmod(0o777)
    db = open_tmp / "dbdir" / "bd.sqlite"
    run: dict[str, Any] = dict(prefix=unprivileged_prefix, home=open_tmp / ".home")
    digest = sha(plate)
    for args, path in (
        (["validate", str(plate), "--quarantine", str(locked / "q.csv")], locked / "q.csv"),
        (["ingest", "--input", str(plate), "--db", str(db), "--quarantine", str(locked / "q.csv")], locked / "q.csv"),
        (["triage", "--input", str(plate), "--model", str(bundle), "--results", str(locked / "r.jsonl")],
         locked / "r.jsonl"),
        (["split", str(plate), "--out", str(locked / "s.csv")], locked / "s.csv"),
    ):
        line = one_error_line(cli(*args, **run))
        assert str(path) in line and "not writable" in line, line
    assert not db.exists() and sha(plate) == digest and list(locked.iterdir()) == []
    # the default report of an input in a read-only folder goes beside the database instead
    (open_tmp / "share").mkdir()
    shared = write_plate(open_tmp / "share" / "plate.csv", 10, bad=1)
    (open_tmp / "share").chmod(0o555)
    res = cli("ingest", "--input", str(shared), "--db", str(db), **run)
    assert res.returncode == 0 and f"1 rows set aside: {open_tmp / 'dbdir' / 'plate.quarantine.csv'}" in res.stdout


def test_7_split_out_a_folder_and_info_on_a_bad_config_are_one_line(tmp_path: Path) -> None:
    line = one_error_line(cli("split", str(HOSTILE / "stray_quote.csv"), "--out", str(tmp_path)))
    assert "is a folder" in line and str(tmp_path / "splits.csv") in line
    line = one_error_line(cli("info", str(HOSTILE / "bundles" / "config_list")))
    assert "'config' must be a JSON object, found list" in line, line


def test_7_a_file_without_line_breaks_is_refused_without_holding_it_whole(tmp_path: Path) -> None:
    import resource

    def peak_kib(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        res = cli(*args)
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return res, max(after, before)

    small = write_plate(tmp_path / "small.csv", 3)
    _, base = peak_kib("validate", str(small), "--quarantine", str(tmp_path / "q0.csv"))
    one_line = tmp_path / "one-line.csv"
    with one_line.open("wb") as fh:  # 40 MB of "barcode" and no line break at all
        fh.write(b"processid,dna_barcode\nLONG1,")
        for _ in range(40):
            fh.write(b"ACGT" * (1 << 18))
    res, peak = peak_kib("validate", str(one_line), "--quarantine", str(tmp_path / "q1.csv"), "--json")
    assert res.returncode == 1 and json.loads(res.stdout)["problems"] == {"malformed_row": 1}, res.stderr
    assert peak - base < 30 * 1024, f"peak RSS grew by {(peak - base) // 1024} MiB"
    header_only = tmp_path / "no-breaks.csv"
    header_only.write_bytes(b"processid" + b",x" * (10 << 20))
    line = one_error_line(cli("validate", str(header_only)))
    assert "line 1 (the header): line is" in line and "bytes long" in line


# -- 8. read-only is not damage ----------------------------------------------------------------------------------

def test_8_a_read_only_database_is_reported_as_permissions_not_damage(open_tmp: Path,
                                                                     unprivileged_prefix: tuple[str, ...]) -> None:
    folder = open_tmp / "share"
    folder.mkdir()
    db = folder / "bd.sqlite"
    plate = write_plate(open_tmp / "plate.csv", 10)
    assert cli("ingest", "--input", str(plate), "--db", str(db)).returncode == 0
    db.chmod(0o444)
    folder.chmod(0o555)
    digest = sha(db)
    run: dict[str, Any] = dict(prefix=unprivileged_prefix, home=open_tmp / ".home")
    res = cli("db", "check", "--db", str(db), **run)
    assert res.returncode == 0 and f"{db}: ok" in res.stdout, res.stdout + res.stderr
    for args in (["ingest", "--input", str(plate), "--db", str(db)], ["review", "--db", str(db)],
                 ["db", "upgrade", "--db", str(db)]):
        line = one_error_line(cli(*args, **run))
        assert "not writable" in line or "read-only" in line, line
        assert "damaged" not in line and "backup" not in line and "restore" not in line, line
        # advice a user can follow: no command that writes opens it read-only (e34 attack T8)
        assert "open it read-only" not in line, line
        if args[0] == "review":
            assert "copy it to a folder you can write; export and db check read it as it is" in line, line
    db.chmod(0o000)
    line = one_error_line(cli("db", "check", "--db", str(db), **run))
    assert "not readable by you" in line and "not known to be damaged" in line, line
    db.chmod(0o444)
    assert sha(db) == digest and sorted(p.name for p in folder.iterdir()) == ["bd.sqlite"]


# -- 9. formulas are neutralised and control characters never reach an output -----------------------------------

def test_9_quarantine_neutralises_formulas_and_controls_never_reach_outputs(tmp_path: Path, bundle: Path) -> None:
    report = tmp_path / "formulas.quarantine.csv"
    assert cli("validate", str(HOSTILE / "formulas.csv"), "--quarantine", str(report)).returncode == 1
    with report.open(newline="") as fh:
        pids = [r["processid"] for r in csv.DictReader(fh)]
    assert pids == ["'=HYPERLINK(\"http://evil.example\",\"x\")", "'+SUM(A1:A9)", "'@cmd|' /C calc'!A0", "'-2+3"]
    report = tmp_path / "controls.quarantine.csv"
    assert cli("validate", str(HOSTILE / "control_chars.csv"), "--quarantine", str(report)).returncode == 1
    raw = report.read_bytes()
    assert b"\x00" not in raw and b"\x1b" not in raw and "\u202e".encode() not in raw
    assert b"CTL\\x00001" in raw and b"CTL\\u202e002" in raw
    # a NUL in a FASTA header: set aside; nothing downstream (database, FASTA export) ever sees it
    db = tmp_path / "bd.sqlite"
    fasta = tmp_path / "nul_header.fasta"
    fasta.write_bytes((HOSTILE / "nul_header.fasta").read_bytes())  # its report goes beside it, not into tests/
    res = cli("triage", "--input", str(fasta), "--model", str(bundle), "--db", str(db), "--json", "-q")
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    assert cli("export", "--db", str(db), "--run", str(run_id), "--format", "fasta", "--out",
               str(tmp_path / "fasta")).returncode == 0
    assert cli("export", "--db", str(db), "--run", str(run_id), "--format", "json", "--out",
               str(tmp_path / "run.json")).returncode == 0
    for path in [*(tmp_path / "fasta").rglob("*"), tmp_path / "run.json"]:
        if path.is_file():
            assert b"\x00" not in path.read_bytes(), path
    pids = [r[0] for r in sqlite3.connect(db).execute("SELECT processid FROM specimens")]
    assert sorted(pids) == ["FA001", "FA003"]


def test_9_fasta_headers_never_carry_control_characters(tmp_path: Path) -> None:
    from biodiscover.storage.fasta import write_fasta

    out = tmp_path / "x.fasta"
    write_fasta([Specimen(processid="A\x00B", species="Meg\u202easelia x", dna_barcode="ACGT"),
                 ("raw\x07header|x\ny", "ACGT")], out)
    text = out.read_text()
    assert text == ">A\\x00B|Meg\\u202easelia x|COI-5P\nACGT\n>raw\\x07header|x y\nACGT\n"


# -- 11. an ingest killed mid-file is finished by the re-run; a photo added later is kept -------------------------

def test_11_sigkill_mid_ingest_of_a_file_then_the_rerun_completes_it(tmp_path: Path) -> None:
    n = 30_000
    plate = write_plate(tmp_path / "big.csv", n)
    db = tmp_path / "bd.sqlite"
    Database.create(db).close()
    cmd = [sys.executable, "-m", "biodiscover.cli", "ingest", "--input", str(plate), "--db", str(db), "--no-backup"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:  # kill once a chunk has committed
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
            partial = con.execute("SELECT count(*) FROM specimens").fetchone()[0]
            con.close()
        except sqlite3.Error:
            partial = 0
        if partial:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < partial < n, f"the ingest was not caught mid-way ({partial} of {n} stored)"
    report = check_database(db)
    assert any("ingests that did not finish" in w for w in report.warnings)
    res = cli("ingest", "--input", str(plate), "--db", str(db), "--json")
    out = json.loads(res.stdout)
    assert res.returncode == 0 and not out["skipped"], res.stderr  # the earlier ingest did not complete
    assert out["total"] == n and out["new"] + out["unchanged"] == n
    with Database.open(db) as handle:
        assert len(handle.specimens()) == n
    res = cli("db", "check", "--db", str(db))
    assert res.returncode == 0 and "warning" not in res.stdout, res.stdout  # the warning cleared
    statuses = [r[0] for r in sqlite3.connect(db).execute("SELECT status FROM ingests ORDER BY id")]
    assert statuses == ["interrupted", "completed"]


def test_11_a_triage_killed_mid_run_is_marked_interrupted_when_triage_runs_again(tmp_path: Path,
                                                                                   bundle: Path) -> None:
    """A triage killed without warning (SIGKILL, the OOM killer, a reboot) leaves its run ``running``, with the pid
    of a process that is gone (the state is made here directly: catching a seconds-long triage mid-run is a race).
    Running triage again worked, but the dead run stayed ``running`` for good: ``db check`` warned about it after
    every later run, and the queue could not tell it from a live one. The next triage marks it ``interrupted``, as
    the next ingest does for an ingest killed mid-way and ``biodiscover run`` for its own runs."""
    plate = write_plate(tmp_path / "plate.csv", 6)
    db = tmp_path / "bd.sqlite"
    assert cli("triage", "--input", str(plate), "--model", str(bundle), "--db", str(db), "-q").returncode == 0
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE runs SET status = 'running', finished_at = NULL, pid = ?", (gone.pid,))
    assert any("runs still marked running" in w for w in check_database(db).warnings)
    res = cli("triage", "--input", str(plate), "--model", str(bundle), "--db", str(db), "-q")
    assert res.returncode == 0, res.stderr
    statuses = [r[0] for r in sqlite3.connect(db).execute("SELECT status FROM runs ORDER BY id")]
    assert statuses == ["interrupted", "completed"]
    report = check_database(db)
    assert report.ok and not report.warnings, (report.problems, report.warnings)


def test_11_a_photo_added_to_a_specimen_later_is_a_new_version(tmp_path: Path) -> None:
    plate = write_plate(tmp_path / "plate.csv", 3)
    db = tmp_path / "bd.sqlite"
    assert json.loads(cli("ingest", "--input", str(plate), "--db", str(db), "--json").stdout)["new"] == 3
    images = tmp_path / "photos"
    images.mkdir()
    (images / "PL00001.jpg").write_bytes((REPO / "tests/fixtures/readers/images/COLL001-24.jpg").read_bytes())
    res = cli("ingest", "--input", str(plate), "--db", str(db), "--images", str(images), "--json")
    out = json.loads(res.stdout)
    assert res.returncode == 0 and not out["skipped"] and (out["changed"], out["unchanged"]) == (1, 2), out
    versions = specimen_versions(db, "PL00001")
    assert [v["image_path"] for v in versions] == [None, str(images / "PL00001.jpg")]


# -- 12. reports beside the input, never over a user's file; versions; absurd barcodes ---------------------------

def test_12_triage_report_goes_beside_the_input_and_never_over_a_users_file(tmp_path: Path, bundle: Path) -> None:
    (tmp_path / "plates").mkdir()
    (tmp_path / "cwd").mkdir()
    plate = write_plate(tmp_path / "plates" / "plate.csv", 10, bad=1)
    db = tmp_path / "bd.sqlite"
    res = cli("triage", "--input", str(plate), "--model", str(bundle), "--db", str(db), "-q", cwd=tmp_path / "cwd")
    report = tmp_path / "plates" / "plate.quarantine.csv"
    assert res.returncode == 0 and f"quarantine report: {report}" in res.stdout, res.stderr
    assert report.is_file() and list((tmp_path / "cwd").iterdir()) == []
    # a re-run replaces its own report; a spreadsheet of the user's with that name is never overwritten
    assert cli("triage", "--input", str(plate), "--model", str(bundle), "--db", str(db), "-q",
               "--again").returncode == 0
    report.write_text("my notes on this plate\n")
    results = tmp_path / "results.jsonl"
    results.write_text("my results\n")
    before = (sha(report), sha(results))
    line = one_error_line(cli("triage", "--input", str(plate), "--model", str(bundle), "--db", str(db), "-q"))
    assert str(report) in line and "not written by biodiscover" in line and "--force" in line
    report.unlink()
    line = one_error_line(cli("triage", "--input", str(plate), "--model", str(bundle), "--results", str(results)))
    assert str(results) in line and "not written by biodiscover" in line
    assert sha(results) == before[1]
    res = cli("triage", "--input", str(plate), "--model", str(bundle), "--results", str(results), "--force", "-q")
    assert res.returncode == 0 and json.loads(results.read_text().splitlines()[0])["processid"] == "PL00000"


def test_12_format_version_one_as_a_string_is_damaged_not_newer() -> None:
    line = one_error_line(cli("info", str(HOSTILE / "bundles" / "version_string")))
    assert "format_version '1' is not a bundle format version" in line and "newer" not in line


def test_12_a_ten_megabyte_barcode_is_invalid_not_a_candidate(tmp_path: Path, bundle: Path) -> None:
    plate = write_plate(tmp_path / "plate.csv", 5)
    with plate.open("a") as fh:
        fh.write(f"HUGE1,Diptera,Phoridae,Megaselia,,{'ACGT' * (10 << 18)},Canada\n")  # 10 MiB
    res = cli("validate", str(plate), "--quarantine", str(tmp_path / "q.csv"), "--json")
    assert res.returncode == 1 and json.loads(res.stdout)["problems"] == {"long_barcode": 1}
    db = tmp_path / "bd.sqlite"
    res = cli("triage", "--input", str(plate), "--model", str(bundle), "--db", str(db), "--json", "-q")
    summary = json.loads(res.stdout)
    assert res.returncode == 0 and (summary["specimens"], summary["quarantined"]) == (6, 1), res.stderr
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM specimens WHERE processid = 'HUGE1'").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM proposal_members WHERE processid = 'HUGE1'").fetchone() == (0,)
        assert con.execute("SELECT max(length(raw)) FROM quarantine").fetchone()[0] < 25_000


def test_12_a_ten_thousand_character_country_is_set_aside_not_printed_or_kept(tmp_path: Path, bundle: Path) -> None:
    """A 10,000-character country was accepted and printed whole in triage's "collected where the reference holds
    no key" line (and kept for the evidence, the review and the exports): the row is set aside, named."""
    plate = write_plate(tmp_path / "plate.csv", 5)
    with plate.open("a") as fh:
        fh.write(f"LONG1,Diptera,Phoridae,Megaselia,,{barcode(99)},{'X' * 10_000}\n")
    res = cli("validate", str(plate), "--quarantine", str(tmp_path / "q.csv"), "--json")
    assert res.returncode == 1 and json.loads(res.stdout)["problems"] == {"long_value": 1}
    db = tmp_path / "bd.sqlite"
    res = cli("triage", "--input", str(plate), "--model", str(bundle), "--db", str(db))
    assert res.returncode == 0 and "X" * 201 not in res.stdout + res.stderr, res.stderr[-2000:]
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM specimens WHERE processid = 'LONG1'").fetchone() == (0,)
        assert con.execute("SELECT processid, kind FROM quarantine").fetchall() == [("LONG1", "long_value")]


def test_the_promises_page_names_tests_that_exist() -> None:
    """docs/data-promises.md cites a test for each promise; each cited test must exist (no stale names)."""
    import re

    page = (REPO / "docs" / "data-promises.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(?:tests/[\w/.]+::)?(test_\w+)`", page))
    defined = set()
    for path in (REPO / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), flags=re.M))
    assert len(cited) >= 15 and cited <= defined, sorted(cited - defined)


def test_7_the_wrong_place_is_named_not_blamed_on_the_data(tmp_path: Path, bundle: Path) -> None:
    """A backup destination that cannot be written is named (the database is not called unreadable); a folder
    with no photographs is not '0 records, exit 0'; a failed triage leaves no new database behind."""
    db = tmp_path / "bd.sqlite"
    assert cli("ingest", "--input", str(write_plate(tmp_path / "p.csv", 3)), "--db", str(db)).returncode == 0
    digest = sha(db)
    line = one_error_line(cli("db", "backup", "--db", str(db), "--out", "/proc/backup.sqlite"))
    assert line.startswith("error: /proc/backup.sqlite: cannot write the backup") and "was not touched" in line
    assert sha(db) == digest
    folder = tmp_path / "plate-folder"
    folder.mkdir()
    write_plate(folder / "collection.csv", 3)
    (folder / "._collection.csv").write_bytes(b"\x00\x05\x16\x07")  # macOS's AppleDouble file on a USB stick
    (folder / "notes.txt").write_text("trap 4, 2024-06")
    for verb in (["validate", str(folder)], ["ingest", "--input", str(folder), "--db", str(tmp_path / "x.sqlite")]):
        line = one_error_line(cli(*verb))
        # the hint names the collection file only: not a hidden file or one that is no table
        assert "a folder without <processid>.jpg" in line and "(collection.csv)" in line, line
    new_db = tmp_path / "never.sqlite"
    one_error_line(cli("triage", "--input", str(HOSTILE / "empty.csv"), "--model", str(bundle), "--db", str(new_db),
                       "-q"))
    assert not new_db.exists()


def test_4_build_reference_into_a_read_only_folder_names_the_bundle(
        open_tmp: Path, unprivileged_prefix: tuple[str, ...]) -> None:
    """``build-reference --out <read-only folder>/model`` was refused naming the quarantine report that goes beside
    the bundle ("cannot write the quarantine report"): the right folder, but not the thing the user asked for."""
    data = Path(shutil.copy(REPO / "tests" / "fixtures" / "readers" / "bioscan5m_sample.csv", open_tmp / "ref.csv"))
    data.chmod(0o444)
    locked = open_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    res = cli("build-reference", "--data", str(data), "--out", str(locked / "model"), "-q",
              prefix=unprivileged_prefix, home=open_tmp / ".home")
    assert one_error_line(res) == (f"error: {locked / 'model'}: cannot write the bundle: folder {locked} "
                                   "is not writable")
    assert not any(locked.iterdir())
