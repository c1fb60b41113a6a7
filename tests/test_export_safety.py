"""Issue 12's export items, each through the real CLI on a real database.

The CLI runs in the test's own process (``fixtures.inprocess.run_cli``, the console script's code path) except
where the process is the point: another user, Ctrl-C.

Every test asserts the exit code, the one ``error:`` line and the SHA-256 of every
file that must stay untouched: partial runs (item 6), formulas and control
characters (item 9), ``--force`` (item 10), overwrites and file modes (item 12).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from biodiscover.storage.db.database import Database
from biodiscover.storage.errors import InputError
from biodiscover.storage.records import Specimen
from biodiscover.workflows.export import MANIFEST, write_export
from fixtures.inprocess import run_cli
from fixtures.run_export import make_run_export

CONTROL = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + ["\x7f"] + [chr(c) for c in range(0x80, 0xa0)]


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def db_runs(tmp_path_factory) -> tuple[Path, int, int]:
    """A database with a completed run (reviewed, hostile notes) and a run killed half-way (status running)."""
    data = make_run_export(n_known=20, n_candidates=5, seed=5)
    path = tmp_path_factory.mktemp("db") / "lab.sqlite"
    db = Database.create(path)
    specimens = [Specimen.from_row({k: _clean(v) for k, v in row.items()}, source="plate.csv", line=i + 2)
                 for i, row in enumerate(data.specimens.to_dict(orient="records"))]
    db.ingest(specimens, collection="plate", backup=False)
    rows = [{k: _clean(v) for k, v in r.items()} for r in data.assignments.to_dict("records")]
    done = db.start_run("triage", {"model": "m/"}, model_fingerprint="sha256:1", collection="plate", backup=False)
    db.write_assignments(done, rows)
    ids = db.write_proposals(done, [
        {"members": list(data.members.loc[data.members["proposal_id"] == p, "processid"]), "parent_rank": "genus",
         "parent_name": "Megaselia", "evidence": {}} for p in sorted(data.members["proposal_id"].unique())])
    db.finish_run(done, "completed")
    p = db.proposal(ids[0])
    db.note(ids[0], '=HYPERLINK("http://evil.example","x")\x00\x1b[31m red', reviewer="ana\x07")
    db.accept(ids[0], p.version, "Megaselia sp. BD-0042", reviewer="ana")
    killed = db.start_run("triage", {"model": "m/"}, model_fingerprint="sha256:1", collection="plate",
                          total=len(rows), backup=False)
    db.write_assignments(killed, rows[: len(rows) // 2])
    db.heartbeat(killed, done=len(rows) // 2, message="triage")
    db.close()  # never finished: what a SIGKILL leaves
    return path, done, killed


def cli(*args: str, cwd: Path | None = None, env_home: Path) -> subprocess.CompletedProcess:
    """``biodiscover ARGS`` in this process, with its config folder under ``env_home``."""
    return run_cli(*args, env={"XDG_CONFIG_HOME": str(env_home)}, cwd=cwd)


@contextlib.contextmanager
def umask_set(mask: int) -> Iterator[None]:
    """The process umask set to ``mask`` for the block, then put back: the export reads the process's own mask
    when it writes, so the in-process CLI sees it as a process started under it would (a subprocess per format cost
    the suite 36 s for the same code path)."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def one_error(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


# -- item 6: a run that did not complete ----------------------------------------------------------------------

def test_partial_run_is_refused_without_partial_and_marked_with_it(tmp_path: Path, db_runs) -> None:
    path, _, killed = db_runs
    out = tmp_path / "run.json"
    line = one_error(cli("export", "--db", str(path), "--run", str(killed), "--format", "json", "--out", str(out),
                         env_home=tmp_path))
    assert line == (f"error: run {killed} did not complete (status running: 19 of 38 specimens); pass --partial "
                    "to export what it holds, marked as partial")
    assert not out.exists()
    ok = cli("export", "--db", str(path), "--run", str(killed), "--format", "json", "--out", str(out), "--partial",
             env_home=tmp_path)
    assert ok.returncode == 0 and "(partial)" in ok.stdout
    doc = json.loads(out.read_text())
    assert doc["partial"] is True and len(doc["assignments"]) == 19
    html = tmp_path / "r.html"
    assert cli("export", "--db", str(path), "--run", str(killed), "-f", "html", "-o", str(html), "--partial",
               env_home=tmp_path).returncode == 0
    assert "did not complete (status running: 19 of 38 specimens): this report is partial" in html.read_text()
    zpath = tmp_path / "r.zip"
    assert cli("export", "--db", str(path), "--run", str(killed), "-f", "dwca", "-o", str(zpath), "--partial",
               env_home=tmp_path).returncode == 0
    assert "this dataset is partial" in zipfile.ZipFile(zpath).read("eml.xml").decode()


def test_dwca_out_must_end_in_zip(tmp_path: Path, db_runs) -> None:
    """A Darwin Core Archive named e.txt would be a zip posing as text: refused with one error line, nothing
    written; a name that ends in .zip (any case) is written."""
    path, done, _ = db_runs
    out = tmp_path / "e.txt"
    line = one_error(cli("export", "--db", str(path), "--run", str(done), "-f", "dwca", "-o", str(out),
                         env_home=tmp_path))
    assert line == f"error: {out}: the dwca export writes a .zip file; name it e.zip"
    assert not out.exists() and not (tmp_path / "e.zip").exists()
    ok = tmp_path / "E.ZIP"
    assert cli("export", "--db", str(path), "--run", str(done), "-f", "dwca", "-o", str(ok),
               env_home=tmp_path).returncode == 0
    assert zipfile.is_zipfile(ok)


# -- item 9: formulas and control characters --------------------------------------------------------------------

def _all_output_text(files: list[Path]) -> str:
    chunks = []
    for f in files:
        if f.suffix == ".zip":
            with zipfile.ZipFile(f) as zf:
                chunks += [zf.read(n).decode("utf-8") for n in zf.namelist()]
        else:
            chunks.append(f.read_text(encoding="utf-8"))
    return "\n".join(chunks)


def test_control_characters_never_reach_any_output(tmp_path: Path) -> None:
    data = make_run_export(n_known=5, n_candidates=3, seed=1)
    spec = data.specimens.copy()
    spec.loc[0, "processid"] = "KN\x000000"
    spec.loc[1, "country"] = "=cmd|' /C calc'!A0\x1b]0;pwned\x07"
    assign = data.assignments.copy()
    assign.loc[0, "processid"] = "KN\x000000"
    props = data.proposals.copy()
    props.loc[0, "provisional_name"] = "Megaselia\x00 sp.\x9b2J BD-0001"
    props["evidence"] = [{"note": "\x1b[2J", "nested": {"x": ["\x00a"]}}] * len(props)
    reviews = pd.DataFrame([{"id": 1, "proposal_id": 1, "action": "note", "reviewer": "ana\x00",
                             "created_at": "2026-11-23T09:00:00Z", "note": "@SUM(1)\x1b[31m",
                             "target_review_id": None}])
    hostile = dataclasses.replace(data, specimens=spec, assignments=assign, proposals=props, reviews=reviews)
    files: list[Path] = []
    for fmt, name in (("csv", "csv"), ("dwca", "a.zip"), ("fasta", "fa"), ("html", "r.html"), ("json", "r.json")):
        files += list(write_export(hostile, fmt, tmp_path / name).files)
    text = _all_output_text(files)
    assert not [c for c in CONTROL if c in text]
    assert "KN0000" in text and "Megaselia sp.2J BD-0001" in text
    rows = pd.read_csv(tmp_path / "csv" / "proposals.csv", dtype=str)
    # a note is text, never a formula: quoted as notes are since each is told apart (the cell starts with '"',
    # which no spreadsheet reads as a formula; a formula character first would be neutralised with "'")
    assert rows.loc[0, "review_notes"].startswith('“@SUM(1)') and rows.loc[0, "review_notes"][0] not in "=+-@\t\r"
    occ = zipfile.ZipFile(tmp_path / "a.zip").read("occurrence.txt").decode()
    assert "\t'=cmd|' /C calc'!A0]0;pwned\t" in occ


#: invisible characters that make a text display as something else: bidi embeddings, overrides and isolates
#: ("Trojan source"), the Unicode line and paragraph separators, a zero-width no-break space
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u2028",
        "\u2029", "\ufeff"]


def test_a_reject_reason_with_a_bidi_override_reaches_no_output(tmp_path: Path) -> None:
    """A reviewer's reason typed (or pasted) with a right-to-left override read back reversed in every export:
    the exports dropped C0/C1 controls only, while the validation's rule (``storage.safetext``) counts these as
    control characters too. The reason's words and its line breaks stay."""
    data = make_run_export(n_known=5, n_candidates=3, seed=1)
    reason = "known species\nsee \u202eexe.txt\u202c \u2066isolated\u2069\u2028line\ufeff"
    reviews = pd.DataFrame([{"id": 1, "proposal_id": int(data.proposals["proposal_id"].iloc[0]), "action": "reject",
                             "reviewer": "ana\u202e", "created_at": "2026-11-23T09:00:00Z", "note": reason,
                             "target_review_id": None}])
    hostile = dataclasses.replace(data, reviews=reviews)
    files: list[Path] = []
    for fmt, name in (("csv", "csv"), ("dwca", "a.zip"), ("fasta", "fa"), ("html", "r.html"), ("json", "r.json")):
        files += list(write_export(hostile, fmt, tmp_path / name).files)
    # the CSVs open with a byte-order mark on purpose (Excel); inside a cell it is one of these characters
    text = _all_output_text(files).replace("\n\ufeff", "\n").removeprefix("\ufeff")
    assert not [c for c in BIDI if c in text]
    assert "see exe.txt isolatedline" in text
    rows = pd.read_csv(tmp_path / "csv" / "proposals.csv", dtype=str, encoding="utf-8-sig")
    assert "known species\\nsee exe.txt" in rows.loc[0, "review_notes"]


def test_cli_export_of_a_hostile_note_is_inert(tmp_path: Path, db_runs) -> None:
    path, done, _ = db_runs
    out = tmp_path / "csv"
    proc = cli("export", "--db", str(path), "--run", str(done), "-f", "csv", "-o", str(out), env_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (out / "proposals.csv").read_text(encoding="utf-8-sig")
    assert not [c for c in CONTROL if c in text]
    row = pd.read_csv(out / "proposals.csv", dtype=str).iloc[0]
    assert row["review_notes"].startswith('“=HYPERLINK(') and row["decided_by"] == "ana"  # quoted: text, inert


# -- item 10: --force ---------------------------------------------------------------------------------------------

def test_force_refuses_a_forged_manifest_even_with_the_right_checksum(tmp_path: Path, db_runs) -> None:
    path, done, _ = db_runs
    folder = tmp_path / "shared"
    folder.mkdir()
    notes = folder / "notes.txt"
    notes.write_text("years of work")
    (folder / MANIFEST).write_text(json.dumps({"format": "csv", "files": {"notes.txt": sha(notes)}}))
    before = tree_hashes(folder)
    line = one_error(cli("export", "--db", str(path), "--run", str(done), "-f", "csv", "-o", str(folder), "--force",
                         env_home=tmp_path))
    assert line == (f"error: refusing to replace {folder}: it holds files no csv export wrote (notes.txt); "
                    "choose a new or empty folder")
    assert tree_hashes(folder) == before


def test_force_keeps_a_lone_proposals_csv_of_ones_own(tmp_path: Path, db_runs) -> None:
    path, done, _ = db_runs
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "proposals.csv").write_text("my,own,table\n")
    before = tree_hashes(folder)
    line = one_error(cli("export", "--db", str(path), "--run", str(done), "-f", "csv", "-o", str(folder), "--force",
                         env_home=tmp_path))
    assert "it holds files no csv export wrote (proposals.csv)" in line
    assert tree_hashes(folder) == before


def test_force_replaces_an_untouched_export_in_place_with_out_dot(tmp_path: Path, db_runs) -> None:
    path, done, _ = db_runs
    folder = tmp_path / "exp"
    assert cli("export", "--db", str(path), "--run", str(done), "-f", "fasta", "-o", str(folder),
               env_home=tmp_path).returncode == 0
    first = tree_hashes(folder)
    proc = cli("export", "--db", str(path), "--run", str(done), "-f", "fasta", "-o", ".", "--force", cwd=folder,
               env_home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert folder.is_dir() and tree_hashes(folder).keys() == first.keys()
    # The same in a folder holding a file of one's own: refused, nothing deleted.
    (folder / "keep.txt").write_text("mine")
    before = tree_hashes(folder)
    line = one_error(cli("export", "--db", str(path), "--run", str(done), "-f", "fasta", "-o", ".", "--force",
                         cwd=folder, env_home=tmp_path))
    assert "keep.txt" in line and tree_hashes(folder) == before


def test_out_a_symlink_is_refused_and_never_followed(tmp_path: Path, db_runs) -> None:
    path, done, _ = db_runs
    target = tmp_path / "real"
    target.mkdir()
    (target / "data.txt").write_text("precious")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    before = tree_hashes(target)
    for fmt in ("csv", "json"):
        line = one_error(cli("export", "--db", str(path), "--run", str(done), "-f", fmt, "-o", str(link), "--force",
                             env_home=tmp_path))
        assert line == f"error: {link} is a symbolic link; give the real path (biodiscover never writes through a link)"
    assert tree_hashes(target) == before and link.is_symlink()


def test_force_never_deletes_through_a_link_or_an_edited_file(tmp_path: Path, db_runs) -> None:
    path, done, _ = db_runs
    folder = tmp_path / "exp"
    assert cli("export", "--db", str(path), "--run", str(done), "-f", "csv", "-o", str(folder),
               env_home=tmp_path).returncode == 0
    precious = tmp_path / "precious.csv"
    precious.write_text("do not delete")
    (folder / "members.csv").unlink()
    (folder / "members.csv").symlink_to(precious)
    (folder / "proposals.csv").write_text("edited by hand")
    before = tree_hashes(folder) | {"precious": sha(precious)}
    line = one_error(cli("export", "--db", str(path), "--run", str(done), "-f", "csv", "-o", str(folder), "--force",
                         env_home=tmp_path))
    assert "members.csv" in line and "proposals.csv (changed since biodiscover wrote it)" in line
    assert tree_hashes(folder) | {"precious": sha(precious)} == before
    assert (folder / "members.csv").is_symlink()


@pytest.mark.parametrize("fmt,name", [("html", "report.html"), ("json", "r.json"), ("dwca", "a.zip")])
def test_force_replaces_a_single_file_export_only_when_biodiscover_wrote_it_and_nobody_changed_it(
        tmp_path: Path, db_runs, fmt: str, name: str) -> None:
    """``--force`` promised to replace only files biodiscover wrote and nobody changed since; a folder export keeps
    a signed manifest, but a single file (html, json, a DwC-A zip) was replaced whatever it was: a hand-written
    report.html of the same name was gone (e31 review F19). Each single file an export writes is recorded (its
    path and SHA-256, signed, in the user's config folder); --force replaces it while it is unchanged, and refuses,
    naming it, a file that is not on that record or was edited since."""
    path, done, _ = db_runs
    home = tmp_path / "home"
    out = tmp_path / name

    def export(*extra: str) -> subprocess.CompletedProcess:
        return cli("export", "--db", str(path), "--run", str(done), "-f", fmt, "-o", str(out), *extra,
                   env_home=home)

    out.write_bytes(b"my precious data\n")  # a file of the user's, by the name the export is told to write
    line = one_error(export("--force"))
    assert line == (f"error: refusing to replace {out}: biodiscover did not write it (or it was changed since); "
                    "choose a new file name")
    assert out.read_bytes() == b"my precious data\n"
    out.unlink()
    assert export().returncode == 0
    first = out.read_bytes()
    assert export("--force").returncode == 0  # its own, unchanged: replaced
    assert out.read_bytes()[:64] == first[:64]
    out.write_bytes(out.read_bytes() + b"\n")  # edited since
    before = out.read_bytes()
    assert one_error(export("--force")).startswith(f"error: refusing to replace {out}: ")
    assert out.read_bytes() == before


# -- item 12: no overwrite without --force; the user's umask ------------------------------------------------------

@pytest.mark.parametrize("fmt,name", [("json", "r.json"), ("csv", "csvdir")])
def test_outputs_are_not_overwritten_without_force(tmp_path: Path, db_runs, fmt: str, name: str) -> None:
    path, done, _ = db_runs
    out = tmp_path / name
    assert cli("export", "--db", str(path), "--run", str(done), "-f", fmt, "-o", str(out),
               env_home=tmp_path).returncode == 0
    before = tree_hashes(tmp_path)
    line = one_error(cli("export", "--db", str(path), "--run", str(done), "-f", fmt, "-o", str(out),
                         env_home=tmp_path))
    assert line == f"error: {out} already exists; pass --force to overwrite it"
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                        (0o002, 0o664, 0o775)])
def test_exports_get_the_users_umask(tmp_path: Path, db_runs, umask: int, file_mode: int, dir_mode: int) -> None:
    path, done, _ = db_runs
    with umask_set(umask):
        for fmt, name in (("json", "r.json"), ("dwca", "r.zip"), ("csv", "csvdir")):
            proc = cli("export", "--db", str(path), "--run", str(done), "-f", fmt, "-o", str(tmp_path / name),
                       env_home=tmp_path)
            assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "r.zip").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "csvdir").stat().st_mode) == dir_mode
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "csvdir").iterdir()} == {file_mode}


def test_read_only_output_folder_is_one_error_line(db_runs, unprivileged_prefix: tuple[str, ...]) -> None:
    """Run without write privileges (CI runs as root, which ignores permissions): no traceback.

    conftest's ``unprivileged_prefix`` drops them: user nobody where it can read the checkout, else root
    without the capabilities that override file permissions."""
    import shutil
    import tempfile

    path, done, _ = db_runs
    base = Path(tempfile.mkdtemp(prefix="bd-ro-"))
    try:
        os.chmod(base, 0o777)
        db = base / "lab.sqlite"
        shutil.copy(path, db)
        os.chmod(db, 0o666)
        folder = base / "ro"
        folder.mkdir()
        os.chmod(folder, 0o555)
        cmd = [sys.executable, "-m", "biodiscover.cli", "export", "--db", str(db), "--run", str(done), "-f",
               "json", "-o", str(folder / "r.json")]
        cmd = [*unprivileged_prefix, *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "XDG_CONFIG_HOME": str(base), "HOME": str(base)})
        line = one_error(proc)
        assert line == f"error: cannot write {folder / 'r.json'}: folder {folder} is not writable"
        assert not list(folder.iterdir()) and sha(db) == sha(path)
    finally:
        os.chmod(base / "ro", 0o755)
        shutil.rmtree(base)


def test_force_works_for_a_user_whose_config_folder_already_exists(tmp_path: Path, db_runs) -> None:
    """The export key is created inside an existing config folder (one holding config.toml, no key yet), so
    --force can replace that user's own export (found by mutation testing: every test started from no folder)."""
    path, done, _ = db_runs
    home = tmp_path / "config"
    (home / "biodiscover").mkdir(parents=True)
    (home / "biodiscover" / "config.toml").write_text("")
    folder = tmp_path / "exp"
    assert cli("export", "--db", str(path), "--run", str(done), "-f", "fasta", "-o", str(folder),
               env_home=home).returncode == 0
    assert len((home / "biodiscover" / "export.key").read_bytes()) >= 32
    proc = cli("export", "--db", str(path), "--run", str(done), "-f", "fasta", "-o", str(folder), "--force",
               env_home=home)
    assert proc.returncode == 0, proc.stderr


def test_a_re_export_removes_its_own_old_files_and_a_failed_one_leaves_the_old_export_whole(
        tmp_path: Path, monkeypatch) -> None:
    """write_folder at the library level: with --force an export replaces biodiscover's previous files (one the
    new export lacks is removed), and an export that fails midway leaves the previous one and no temporary files.
    A manifest that is not biodiscover's shape names nothing replaceable."""
    from biodiscover.workflows.export.output import read_manifest, write_folder

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    out = tmp_path / "export"
    write_folder(out, {"a.csv": b"1\n", "b.csv": b"2\n"}, force=False, fmt="csv")
    assert read_manifest(out) == {"a.csv": hashlib.sha256(b"1\n").hexdigest(),
                                  "b.csv": hashlib.sha256(b"2\n").hexdigest()}
    write_folder(out, {"a.csv": b"3\n"}, force=True, fmt="csv")
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.csv", MANIFEST])
    assert (out / "a.csv").read_bytes() == b"3\n" and read_manifest(out) == {"a.csv": sha(out / "a.csv")}
    with pytest.raises(TypeError):
        write_folder(out, {"a.csv": b"4\n", "c.csv": "not bytes"}, force=True, fmt="csv")  # type: ignore[dict-item]
    assert sorted(p.name for p in out.iterdir()) == sorted(["a.csv", MANIFEST])  # no temporary file left
    assert (out / "a.csv").read_bytes() == b"3\n" and read_manifest(out) == {"a.csv": sha(out / "a.csv")}
    manifest = json.loads((out / MANIFEST).read_text())
    for forged in ([manifest], {**manifest, "files": list(manifest["files"])}, {**manifest, "signature": "0" * 64}):
        (out / MANIFEST).write_text(json.dumps(forged))
        assert read_manifest(out) == {}
    (out / MANIFEST).write_text("{not json")
    assert read_manifest(out) == {}


# -- paths no other test walks (found from the coverage of the mutation pool, not from any mutant) ----------
def test_an_empty_or_cut_export_key_signs_nothing_and_a_manifest_forged_with_it_deletes_nothing(
        tmp_path: Path, monkeypatch) -> None:
    """A key file left empty (a disk full at first use) or cut short is no key: with the empty key anyone
    could sign a manifest naming a user's file; such a manifest must authorise no deletion."""
    from biodiscover.workflows.export.output import KEY_FILE, _signature, export_key, read_manifest

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    key = tmp_path / "config" / "biodiscover" / KEY_FILE
    key.parent.mkdir(parents=True)
    out = tmp_path / "export"
    out.mkdir()
    (out / "notes.txt").write_bytes(b"mine\n")
    for short in (b"", b"0123456789abcdef"):
        key.write_bytes(short)
        assert export_key() is None
        body = {"format": "csv", "files": {"notes.txt": sha(out / "notes.txt")}}
        (out / MANIFEST).write_text(json.dumps({**body, "signature": _signature(body, short)}))
        assert read_manifest(out) == {}
    key.unlink()
    made = export_key()  # made on first use: 64 hex characters, readable by this user only
    assert made is not None and len(made) == 64 and export_key() == made
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_files_appearing_between_the_check_and_the_write_are_named_and_kept(tmp_path: Path, monkeypatch) -> None:
    """Someone saves a file into the export folder after the check passed: the export is refused naming it,
    and the file is left as it is."""
    from biodiscover.workflows.export import output

    real_check = output.check_output
    data = make_run_export(n_known=4, n_candidates=2, seed=3)
    out = tmp_path / "export"

    def check_then_a_user_saves_a_file(path: Path, **kwargs) -> None:
        real_check(path, **kwargs)
        if not kwargs.get("force"):
            out.mkdir(exist_ok=True)
            (out / "my-notes.txt").write_text("field notes")

    monkeypatch.setattr(output, "check_output", check_then_a_user_saves_a_file)
    with pytest.raises(InputError, match=r"my-notes\.txt"):
        write_export(data, "csv", out)
    assert (out / "my-notes.txt").read_text() == "field notes"
    assert sorted(p.name for p in out.iterdir()) == ["my-notes.txt"]


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    from biodiscover.workflows.export.output import atomic_write

    def refused(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "report.html", b"<html></html>")
    assert list(tmp_path.iterdir()) == []


def test_unique_names_fold_case_as_a_file_system_may() -> None:
    from biodiscover.workflows.export.safety import unique_names

    assert unique_names(["a.fasta", "A.fasta", "a.FASTA", "notes", "NOTES", "b.fa"]) == [
        "a.fasta", "A-1.fasta", "a-2.FASTA", "notes", "NOTES-1", "b.fa"]


def test_a_dataset_abstract_leads_and_a_creator_may_be_one_line_of_text(tmp_path: Path) -> None:
    from biodiscover.workflows.export.metadata import ExportOptions, load_metadata

    meta_file = tmp_path / "dataset.toml"
    meta_file.write_text('abstract = "Malaise traps, Ontario 2025."\ncreator = "Ana Ruiz <ana@example.org>"\n'
                         'contact = "Ben Okafor"\nlicence = "CC-BY-4.0"\n')
    meta = load_metadata(meta_file)
    assert [(p.name, p.email) for p in meta.creators] == [("Ana Ruiz", "ana@example.org")]
    assert meta.contact is not None and (meta.contact.name, meta.contact.email) == ("Ben Okafor", None)
    data = make_run_export(n_known=4, n_candidates=2, seed=3)
    write_export(data, "dwca", tmp_path / "a.zip", options=ExportOptions(metadata=meta))
    eml = zipfile.ZipFile(tmp_path / "a.zip").read("eml.xml").decode()
    # the user's abstract first, the run's account its own paragraph (run together they read "… run 1125 specimens",
    # e32 R17)
    assert f"<abstract><para>Malaise traps, Ontario 2025.</para><para>{len(data.assignments)} specimens named" in eml


def test_evidence_pairs_without_a_value_are_empty_columns(tmp_path: Path) -> None:
    data = make_run_export(n_known=4, n_candidates=2, seed=3)
    props = data.proposals.copy()
    props["evidence"] = [{"geography": {"lat_range": None, "lon_range": [1.5, 2.5], "centroid": None}}] * len(props)
    write_export(dataclasses.replace(data, proposals=props), "csv", tmp_path / "csv")
    row = pd.read_csv(tmp_path / "csv" / "proposals.csv", dtype=str, keep_default_na=False).iloc[0]
    for col in ("lat_min", "lat_max", "centroid_lat", "centroid_lon"):
        assert row[f"evidence_geography_{col}"] == "", col
    assert (row["evidence_geography_lon_min"], row["evidence_geography_lon_max"]) == ("1.5", "2.5")


@pytest.mark.parametrize("output", ["file", "folder"])
def test_a_file_that_appears_while_the_export_renders_is_not_overwritten(tmp_path: Path, output: str) -> None:
    """The output is checked before rendering (which can take minutes on a large run) and again just before
    writing: a file another program put there in between is the user's, refused without ``--force`` and
    left byte for byte as it was."""
    from biodiscover.workflows.export.registry import ExportFormat

    out = tmp_path / ("out.txt" if output == "file" else "out")
    user_file = out if output == "file" else out / "notes.txt"

    def render(data: object, options: object) -> bytes | dict[str, bytes]:
        user_file.parent.mkdir(exist_ok=True)
        user_file.write_bytes(b"the user's own notes\n")
        return b"rendered\n" if output == "file" else {"proposals.csv": b"rendered\n"}

    spec = ExportFormat(name="probe", summary="test format", output=output, render=render)
    with pytest.raises(InputError, match=f"^{out} already exists; pass --force to overwrite it$"):
        write_export(make_run_export(n_known=3, n_candidates=1, seed=2), spec, out)
    assert user_file.read_bytes() == b"the user's own notes\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted({out.name, user_file.name})


def test_a_run_that_never_knew_its_total_is_refused_without_a_count(tmp_path: Path) -> None:
    """A run killed before it knew how many specimens it had (``total`` unset, ``done`` counted) is refused like
    any incomplete run, with the one error line naming its status and no "x of y" it cannot state."""
    path = tmp_path / "lab.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(f"BD{i:06d}", dna_barcode="ACGT" * 60) for i in range(4)], collection="plate",
                  backup=False)
        run = db.start_run("triage", {}, model_fingerprint="sha256:1", collection="plate", backup=False)
        db.write_assignments(run, [{"processid": f"BD{i:06d}", "deepest_rank": "order"} for i in range(2)])
        db.heartbeat(run, done=2, message="triage")
    before = sha(path)
    out = tmp_path / "run.json"
    line = one_error(cli("export", "--db", str(path), "--run", str(run), "--format", "json", "--out", str(out),
                         env_home=tmp_path))
    assert line == (f"error: run {run} did not complete (status running); pass --partial to export what it holds, "
                    "marked as partial")
    assert not out.exists() and sha(path) == before


@pytest.mark.parametrize("fmt,name", [("csv", "out"), ("dwca", "out.zip")])
def test_ctrl_c_during_an_export_says_nothing_was_written_and_the_rerun_needs_no_force(
        tmp_path: Path, db_runs, fmt: str, name: str) -> None:
    """Ctrl-C in an export printed the general line ("finished steps are kept and the interrupted one is marked
    as such; re-run the same command to go on"), which says nothing of the output: was anything written, does the
    re-run need --force? A real process, a real SIGINT: held inside the export (reading its --metadata from a pipe
    that gives nothing), it says nothing was written and that the same command needs no --force; it does not."""
    import signal
    import time

    path, done, _ = db_runs
    fifo = tmp_path / "meta.toml"
    os.mkfifo(fifo)
    out = tmp_path / name
    args = ["export", "--db", str(path), "--run", str(done), "-f", fmt, "-o", str(out)]
    # SIGINT back to its default in the child: a suite started as a background job without job control (`cmd &` in
    # a script) inherits SIGINT ignored, Python then never raises KeyboardInterrupt, and the export waits on its pipe
    # (a fresh-clone run started so timed out here after 60 s, twice)
    proc = subprocess.Popen([sys.executable, "-m", "biodiscover.cli", *args, "--metadata", str(fifo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while True:  # the export has opened the pipe once a writer can open it without blocking
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
    try:
        time.sleep(0.3)  # it now waits on the read
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
    assert proc.returncode == 130, err
    assert err.strip() == (f"interrupted: nothing was written ({out} does not exist); re-run the same command "
                           "(no --force needed)."), err
    assert not out.exists()
    again = cli(*args, env_home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert out.exists()


def test_an_export_interrupted_after_it_wrote_says_the_rerun_needs_force(tmp_path: Path) -> None:
    """What an interrupted export says, on real folders: one it made and left empty is removed (nothing written);
    one whose files changed holds part of the export, and the re-run needs --force."""
    from biodiscover.workflows.export.output import interrupted_export, output_state

    empty = tmp_path / "empty"
    before = output_state(empty)
    empty.mkdir()
    said = str(interrupted_export(empty, before))
    assert said.startswith("interrupted: nothing was written") and "no --force needed" in said
    assert not empty.exists()
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "assignments.csv").write_text("old\n", encoding="utf-8")
    before = output_state(folder)
    assert str(interrupted_export(folder, before)) == f"interrupted: nothing was written ({folder} is as it was); " \
        "re-run the same command."
    (folder / "members.csv").write_text("new\n", encoding="utf-8")
    assert str(interrupted_export(folder, before)) == (
        f"interrupted while writing {folder}: it may hold part of this export; re-run the same command with --force "
        "to write it whole (only files biodiscover wrote are replaced).")
