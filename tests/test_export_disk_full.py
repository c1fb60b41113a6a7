"""An export the disk has no room for (e31 review F14): one error naming the output, and no empty folder left."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from biodiscover.storage.db import Database
from fixtures.db_views import runs

# a tmpfs of one page in a mount namespace of its own: a real full disk, gone when the process ends; the shell
# lists what the export left there before it goes
SCRIPT = ('mount -t tmpfs -o size=4k tmpfs "$1" || exit 99; "$2" -m biodiscover.cli export --db "$3" --run "$4" '
          '-f "$5" -o "$1/$6"; code=$?; echo "left: $(ls -A "$1")"; exit $code')


@pytest.mark.parametrize(("fmt", "name"), [("csv", "x_csv"), ("fasta", "x_fasta"), ("html", "x.html")])
def test_an_export_to_a_full_disk_names_its_output_and_leaves_no_empty_folder(review_db, tmp_path: Path, fmt: str,
                                                                              name: str) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here to mount a small file system")
    with Database.open(review_db) as db:
        run = max(r.id for r in runs(db) if r.kind == "triage")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["unshare", "-rm", "sh", "-c", SCRIPT, "sh", str(mnt), sys.executable, str(review_db),
                           str(run), fmt, name], capture_output=True, text=True, env={"XDG_CONFIG_HOME": str(tmp_path),
                                                                                   "PATH": "/usr/bin:/bin"})
    if done.returncode == 99 or "unshare:" in done.stderr:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines()[-1] == (f"error: cannot write {mnt / name}: the disk is full (nothing of "
                                                    "this export was kept)"), done.stderr
    assert done.stdout.strip().splitlines()[-1] == "left:", done.stdout
