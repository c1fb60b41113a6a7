"""Shared pytest fixtures: paths to shipped fixtures and the optional real dev data."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Real data lives beside the checkout in ../shared; a user's clone has none.
SHARED_DATA = Path(os.environ.get("BIODISCOVER_SHARED_DATA", REPO.parent / "shared" / "data"))

# One OpenMP thread per process (torch, faiss), set before either is imported and inherited by every CLI
# subprocess a test starts. The tests' models are tiny: on the 2-core CI machine a second thread buys nothing,
# and whenever the other core is busy (a subprocess, a Ray worker, another job) OpenMP's threads wait on each
# other, and the demo's tiny-preset training took 36 s instead of 3. A value set by the caller is kept.
for _omp in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_omp, "1")

# Each test process keeps its config (the export signing key, the record of the single-file exports it wrote, a
# reviewer's config.toml) in a folder of its own, inherited by every CLI subprocess, never the user's
# ~/.config/biodiscover: a run of the suite had left its export records there. Tests that need a particular
# config folder still pass their own XDG_CONFIG_HOME (a process of another user: its own HOME's).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="biodiscover-test-config-")
os.chmod(os.environ["XDG_CONFIG_HOME"], 0o755)  # as a home's .config: others read it, a test's own user writes it
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], Any]:
    """``load_benchmark(name)``: ``benchmarks/<name>.py`` as a module (``_load_benchmark``)."""
    return _load_benchmark


def _load_benchmark(name: str) -> Any:
    """``benchmarks/<name>.py`` imported as the module ``name`` (the scripts are no package; a dataclass looks
    its module up by name, so it is registered in ``sys.modules``), with ``benchmarks/`` on the path for the
    scripts it imports in turn."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def real_dev_csv() -> Path:
    """The real BOLD dev file, or a clean skip where ../shared is absent."""
    path = SHARED_DATA / "bold-insects-dev.csv.gz"
    if not path.exists():
        pytest.skip(f"real dev data not present at {path}")
    return path


@pytest.fixture(scope="session")
def real_images_dir() -> Path:
    path = SHARED_DATA / "bioscan-images"
    if not path.is_dir():
        pytest.skip(f"real specimen photos not present at {path}")
    return path


# -- running a command as a user without write permission (issue 12) -----------------------------------------
# CI runs as root, and root ignores file modes; a permission test that skips as root proves nothing there.
# So the command runs without privileges: as nobody (uid 65534) when that user can read this checkout and its
# interpreter, else as root without the capabilities that bypass file modes (DAC override/read-search, fowner).
# Folders and files the test makes read-only get modes without any write bit, so both ways are denied.

_UNPRIVILEGED_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"),
    ("setpriv", "--inh-caps=-all", "--bounding-set=-all"),
)


@pytest.fixture(scope="session")
def unprivileged_prefix() -> tuple[str, ...]:
    """The command prefix that drops write privileges here; () when the tests already run unprivileged."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.fail("tests run as root but setpriv (util-linux) is missing: cannot drop privileges; "
                    "install util-linux rather than skipping the permission tests")
    probe_dir = Path(tempfile.mkdtemp(prefix="bd-priv-"))
    try:
        probe_dir.chmod(0o755)
        target = probe_dir / "ro.txt"
        target.write_text("x")
        target.chmod(0o444)
        code = ("import biodiscover.cli.main, sys\n"
                f"try:\n    open({str(target)!r}, 'a')\nexcept PermissionError:\n    sys.exit(0)\nsys.exit(3)\n")
        for prefix in _UNPRIVILEGED_PREFIXES:
            res = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True,
                                 cwd=probe_dir, env={**os.environ, "HOME": str(probe_dir)})
            if res.returncode == 0:
                return prefix
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    pytest.fail("cannot drop privileges with setpriv here (neither uid 65534 nor a reduced bounding set works)")


@pytest.fixture()
def open_tmp() -> Iterator[Path]:
    """A temporary folder every user can enter (tmp_path's parents are private to root)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bd-test-"))
    folder.chmod(0o755)
    home = folder / ".home"
    home.mkdir()
    home.chmod(0o777)
    yield folder
    for p in [folder, *folder.rglob("*")]:  # read-only modes the test set must not stop the cleanup
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The CLI entry point in this process (same code path as the console script, minus start-up time):
    ``fixtures.inprocess.run_cli``, with what earlier calls left in the capture cleared first."""
    from fixtures.inprocess import run_cli

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        return run_cli(*args)

    return call


@pytest.fixture(scope="session")
def review_template(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A review database filled by discovery, with photographs (built once per test process: every test gets its
    own copy through ``review_db``, and nothing writes to the template)."""
    from fixtures.review_db import build_review_db

    root = tmp_path_factory.mktemp("tui-review")
    return build_review_db(root / "review.sqlite", images_dir=root / "images")


@pytest.fixture
def review_db(review_template: Any, tmp_path: Path) -> Path:
    """A private copy of the template database (the template is closed, so copying is safe)."""
    import shutil

    dest = tmp_path / "review.sqlite"
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(review_template.path) + suffix)
        if src.exists():
            shutil.copy(src, Path(str(dest) + suffix))
    return dest
