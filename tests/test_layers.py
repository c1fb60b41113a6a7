"""The layering rule of docs/DESIGN.md, enforced, and the one ``biodiscover`` namespace.

``biodiscover.cli`` is the composition root; ``tui`` and ``workflows`` sit under it,
independent of each other; ``discovery`` and ``encoders`` under them, independent of
each other; ``storage`` is the floor. import-linter checks the contract in
pyproject.toml on the real import graph.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AREAS = ("cli", "discovery", "encoders", "storage", "tui", "workflows")


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    # the contract covers every area folder (a new one would otherwise go unchecked)
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    roots = config["tool"]["importlinter"]["root_packages"]
    assert sorted(roots) == [f"biodiscover.{a}" for a in AREAS]


def test_every_package_folder_is_installed_under_biodiscover() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {"biodiscover." + ".".join(p.parent.relative_to(REPO).parts)
               for a in AREAS for p in (REPO / a).rglob("__init__.py")}
    assert listed == on_disk
    assert config["package-dir"] == {f"biodiscover.{a}": a for a in AREAS}


def test_no_generic_top_level_modules_are_importable_outside_the_repo(tmp_path: Path) -> None:
    """``import storage`` must not resolve to this project from an installed environment."""
    code = ("import importlib.util, sys; "
            "bad = [m for m in %r if (s := importlib.util.find_spec(m)) and s.origin and %r in s.origin]; "
            "import biodiscover.storage, biodiscover.cli.main; print(bad)") % (AREAS, str(REPO))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_help_lists_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "biodiscover.cli", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "biodiscover" in result.stdout
