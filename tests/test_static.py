"""Static checks run by the suite, so README's test command (what CI runs) runs them too.

ruff over the whole tree (package, tests, benchmarks) with the rules in pyproject.toml;
mypy over the installed package, strict on ``storage``, ``discovery``, ``tui`` and ``cli``. Both tools are
pinned in the ``dev`` extra so a new release cannot turn CI red on unchanged code.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AREAS = ("cli", "discovery", "encoders", "storage", "tui", "workflows")
BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--output-format", "concise", "."],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_mypy_is_clean_and_strict_on_the_floor_the_science_and_the_front(tmp_path: Path) -> None:
    """mypy sees the package as installed: ``biodiscover.<area>`` mapped onto the repository's folders.

    Why the link farm: pyproject maps the top-level folders to ``biodiscover.*`` with
    ``package-dir``; an editable install serves that through an import hook mypy does not
    run, so mypy is pointed at a ``biodiscover/`` folder of links to the real sources.
    """
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    strict = next(o for o in config["overrides"] if o.get("disallow_untyped_defs"))
    assert sorted(strict["module"]) == ["biodiscover.cli.*", "biodiscover.discovery.*", "biodiscover.storage.*",
                                        "biodiscover.tui.*"]
    package = tmp_path / "biodiscover"
    package.mkdir()
    for area in AREAS:
        (package / area).symlink_to(REPO / area, target_is_directory=True)
    result = subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
         "--namespace-packages", "--explicit-package-bases", "-p", "biodiscover"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # it saw the package: a wrong path would "succeed" on nothing
    n = int(result.stdout.split("no issues found in ")[1].split()[0])
    assert n >= 100, result.stdout
