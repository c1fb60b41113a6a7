"""The layering rule of docs/DESIGN.md, enforced, and the one ``biodiscover`` namespace.

``biodiscover.cli`` is the composition root; ``tui`` and ``workflows`` sit under it,
independent of each other; ``discovery`` and ``encoders`` under them, independent of
each other; ``storage`` is the floor. import-linter checks the contract in
pyproject.toml on the real import graph.
"""

from __future__ import annotations

import re
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


# -- docs/DESIGN.md describes the real house -----------------------------------------------------------

DESIGN = REPO / "docs" / "DESIGN.md"
_MODULE = re.compile(r"`((?:biodiscover\.)?(?:%s)(?:\.[a-z_][a-z0-9_]*)*)`" % "|".join(AREAS))
_PATH = re.compile(r"`((?:%s)/[\w/]*(?:\.py)?)`" % "|".join(AREAS))


def _exists(dotted: str) -> bool:
    """A module or package of the repository, or a function/name defined at the top of one."""
    parts = dotted.removeprefix("biodiscover.").split(".")
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
        return True
    module = REPO.joinpath(*parts[:-1]).with_suffix(".py")
    return module.is_file() and re.search(rf"^(def |class )?{parts[-1]}\b", module.read_text(), re.M) is not None


def test_design_md_names_only_modules_that_exist() -> None:
    text = DESIGN.read_text(encoding="utf-8")
    modules = set(_MODULE.findall(text))
    paths = set(_PATH.findall(text))
    assert len(modules) > 40  # the module tables are there
    assert sorted(m for m in modules if not _exists(m)) == []
    assert sorted(p for p in paths if not (REPO / p).exists()) == []
    # every module of the discovery and storage areas is named (a new one must be described)
    for area in ("discovery", "storage"):
        for f in (REPO / area).glob("*.py"):
            if f.stem != "__init__":
                assert f"{area}.{f.stem}" in modules, f"docs/DESIGN.md does not describe {area}.{f.stem}"


def test_design_md_states_the_contract_import_linter_checks() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in config if c["type"] == "layers")["layers"]
    drawn = "  ->  ".join(f"({layer})" if "|" in layer else layer for layer in layers).replace("biodiscover.", "")
    assert drawn in DESIGN.read_text(encoding="utf-8")


# -- no circles in the import graph ------------------------------------------------------------------------

#: Circles present when this check landed, each with the engineer removing it. The list only shrinks:
#: a circle not listed fails, and so does a listed one that is gone (delete its line when you fix it).
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _cycles() -> set[frozenset[str]]:
    """Strongly connected groups of modules (TYPE_CHECKING imports count: they are edges a reader follows)."""
    import grimp
    import networkx as nx

    graph = grimp.build_graph(*(f"biodiscover.{a}" for a in AREAS))
    edges = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            edges.add_edge(module.removeprefix("biodiscover."), imported.removeprefix("biodiscover."))
    return {frozenset(c) for c in nx.strongly_connected_components(edges) if len(c) > 1}


def test_import_graph_has_no_new_cycles() -> None:
    found = _cycles()
    assert sorted(map(sorted, found - set(KNOWN_CYCLES))) == [], "new import cycle(s)"
    assert sorted(map(sorted, set(KNOWN_CYCLES) - found)) == [], "a listed cycle is gone: delete it from KNOWN_CYCLES"


def test_test_helpers_live_in_tests_fixtures() -> None:
    """``tests/`` holds tests and conftest.py only; shared helpers are modules of ``tests/fixtures``."""
    stray = sorted(p.name for p in (REPO / "tests").glob("*.py")
                   if p.name != "conftest.py" and (not p.name.startswith("test_") or p.stem.endswith("_fixtures")))
    assert stray == []


def test_no_hidden_imports_outside_the_clustering_plugins() -> None:
    """Every edge between the project's modules is a plain import the checks above see; a module named by a
    string is imported only where a plug-in is truly dynamic: the clustering method a config names (one file in
    discovery/clustering_methods, or any ``package.module:Class``). Export formats are static imports."""
    dynamic = re.compile(r"\bimport_module\(|\b__import__\(|\bspec_from_file_location\(|\bexec_module\(")
    found = sorted(f"{p.relative_to(REPO)}:{n}" for area in AREAS for p in (REPO / area).rglob("*.py")
                   for n, line in enumerate(p.read_text().splitlines(), 1) if dynamic.search(line))
    assert [f.split(":")[0] for f in found] == ["discovery/clustering.py"], found
