"""Issue 14 item 7: a new export format is one new file plus one registry line.

The test writes a throwaway format module to disk (as a contributor would add
``workflows/export/<name>.py``: a module whose ``FORMAT`` registers itself),
imports it with one line (as ``workflows/export/formats.py`` does for each
format) ahead of the real ``biodiscover`` entry point in a fresh process, and
finds it in the CLI help, the format list and a real export through the CLI —
with no other edit anywhere. A second test holds the product to the same shape:
each shipped format is one module plus exactly one line of the table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from biodiscover.storage.db.database import Database
from biodiscover.storage.errors import InputError
from biodiscover.workflows.export import FORMATS, REGISTRY, ExportFormat
from fixtures.inprocess import run_cli

THROWAWAY = textwrap.dedent('''
    """``tally``: one line per candidate species (name and size), a format made up by a test."""

    from biodiscover.workflows.export.registry import REGISTRY, ExportFormat
    from biodiscover.workflows.export.tables import candidate_label, live_candidates


    def render(data, options):
        rows = [f"{candidate_label(p)}\\t{p['size']}" for p in live_candidates(data.proposals).to_dict("records")]
        return ("\\n".join(rows) + "\\n").encode("utf-8")


    FORMAT = REGISTRY.register(ExportFormat("tally", "candidate names and sizes", "file", render, suffix=".tsv"))
''')

#: The real entry point behind one import line: the line a new format adds to workflows/export/formats.py.
ENTRY = "import sys\nimport tally_format\nfrom biodiscover.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


def _biodiscover_with_tally(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    plugin = tmp_path / "plugin"
    plugin.mkdir(exist_ok=True)
    (plugin / "tally_format.py").write_text(THROWAWAY)
    # the plugin's folder before, not instead of, the PYTHONPATH this test runs under (which may name the code
    # under test, as bench_mutation's shim does)
    env = {**os.environ, "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join(p for p in (str(plugin), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture()
def small_db(tmp_path: Path) -> tuple[Path, int]:
    from biodiscover.storage.records import Specimen

    db = Database.create(tmp_path / "lab.sqlite")
    db.ingest([Specimen(processid=f"P{i}", dna_barcode="ACGT" * 40) for i in range(5)], collection="c", backup=False)
    run = db.start_run("triage", {}, collection="c", backup=False)
    db.write_assignments(run, [{"processid": f"P{i}", "deepest_rank": None, "novelty": 0.9} for i in range(5)])
    db.write_proposals(run, [{"members": ["P0", "P1", "P2"], "parent_rank": "genus", "parent_name": "Megaselia"},
                             {"members": ["P3", "P4"], "parent_rank": "family", "parent_name": "Phoridae"}])
    db.finish_run(run, "completed")
    db.close()
    return tmp_path / "lab.sqlite", run


def _words(text: str) -> str:
    """Help text with rich's box drawing and line wrapping taken out."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_a_registered_format_is_in_the_help_the_list_and_the_cli(small_db, tmp_path) -> None:
    proc = _biodiscover_with_tally(tmp_path, "export", "--help")
    assert proc.returncode == 0, proc.stderr
    help_text = _words(proc.stdout)
    assert "tally: candidate names and sizes (a .tsv file)" in help_text
    assert "One of: csv, dwca, fasta, html, json, tally" in help_text
    assert "a file for dwca (.zip), html (.html), json (.json), tally (.tsv)" in help_text
    path, run = small_db
    out = tmp_path / "c.tsv"
    proc = _biodiscover_with_tally(tmp_path, "export", "--db", str(path), "--run", str(run), "-f", "tally",
                                   "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"exported run {run} as tally" in proc.stdout
    assert out.read_text() == "Megaselia sp. cand1\t3\nPhoridae gen. sp. cand2\t2\n"


def test_each_shipped_format_is_one_module_and_one_table_line() -> None:
    """The product has the shape the test above relies on: every module of the export package that defines a
    FORMAT is imported by exactly one line of formats.py, that line names nothing else, and the registry holds
    exactly those formats (nothing else lists them: the CLI reads the registry)."""
    package = Path(__file__).resolve().parent.parent / "workflows" / "export"
    modules = sorted(p.stem for p in package.glob("*.py") if re.search(r"^FORMAT = ", p.read_text(), re.M))
    table = [line for line in (package / "formats.py").read_text().splitlines()
             if line.startswith(("from ", "import "))]
    lines = [line for line in table if "registry import REGISTRY" not in line and "__future__" not in line]
    assert lines == [f"from biodiscover.workflows.export import {m}" for m in modules]
    assert list(REGISTRY.names()) == sorted(REGISTRY.get(m).name for m in modules) == modules
    cli = (package.parent.parent / "cli" / "jobs.py").read_text()
    assert "FORMATS" in cli and not re.search(r"\"(csv|dwca|fasta|html|json)\"", cli)  # no format named
    assert [n for n in REGISTRY.names() if REGISTRY.get(n).publishes_metadata] == ["dwca"]


def test_unregistered_format_is_unknown_everywhere(small_db, tmp_path) -> None:
    assert "tally" not in FORMATS and list(FORMATS) == ["csv", "dwca", "fasta", "html", "json"]
    with pytest.raises(InputError, match=r"unknown export format 'tally' \(known: csv, dwca, fasta, html, json\)"):
        REGISTRY.get("tally")


def test_cli_help_lists_every_registered_format_from_the_registry() -> None:
    proc = run_cli("export", "--help", env={"COLUMNS": "200"})
    text = _words(proc.stdout)
    assert proc.returncode == 0
    for fmt in REGISTRY.names():
        assert " ".join(REGISTRY.get(fmt).help_line().split()) in text
    assert "a folder for csv, fasta; a file for dwca (.zip), html (.html), json (.json)" in text


def test_registry_refuses_bad_or_duplicate_formats() -> None:
    render = REGISTRY.get("json").render
    with pytest.raises(ValueError, match="registered twice"):
        REGISTRY.register(ExportFormat("json", "again", "file", render))
    with pytest.raises(ValueError, match="lower-case"):
        REGISTRY.register(ExportFormat("Bad Name", "x", "file", render))


def test_a_registry_built_from_formats_keeps_them_in_name_order_with_count_and_help_lines() -> None:
    from biodiscover.workflows.export.registry import FormatRegistry

    def render(data, options):  # never called here
        raise AssertionError

    formats = [ExportFormat("b-tab", "a table", "file", render, suffix=".tsv"),
               ExportFormat("a-dir", "a folder of tables", "folder", render),
               ExportFormat("c-raw", "raw bytes", "file", render)]
    reg = FormatRegistry(formats)
    assert len(reg) == 3 and reg.names() == ("a-dir", "b-tab", "c-raw") and list(reg) == list(reg.names())
    assert [reg.get(n).help_line() for n in reg] == ["a-dir: a folder of tables (a folder)",
                                                     "b-tab: a table (a .tsv file)", "c-raw: raw bytes (one file)"]
    assert "a-dir" in reg and "d" not in reg and reg.get("c-raw") is formats[2]
    assert len(FormatRegistry()) == 0
    assert len(REGISTRY) >= 5  # csv, dwca, fasta, html, json at least
    assert reg.register(formats[0]) is formats[0]  # registering again the same object is no duplicate


def test_each_format_module_s_format_is_the_one_its_line_registered() -> None:
    """``FORMAT = REGISTRY.register(ExportFormat(...))``: ``register`` hands back what it registered, so a
    module's ``FORMAT`` (what a caller or a plug-in imports) is the registry's entry, not ``None``."""
    import importlib

    for name in ("csv", "dwca", "fasta", "html", "json"):
        module = importlib.import_module(f"biodiscover.workflows.export.{name}")
        assert module.FORMAT is REGISTRY.get(name), name
