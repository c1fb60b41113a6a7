"""Issue 14 item 7: a new export format is one new file plus one registry line.

The test writes a throwaway format module to disk (as a contributor would add
``workflows/export/<name>.py``), registers it with one line, and finds it in the
CLI help, the format list and a real export through the CLI verb — with no
other edit anywhere.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from biodiscover.storage.db.database import Database
from biodiscover.storage.errors import InputError
from biodiscover.workflows.export import FORMATS, REGISTRY, ExportFormat

THROWAWAY = textwrap.dedent('''
    """``tally``: one line per candidate species (name and size), a format made up by a test."""

    from biodiscover.workflows.export.registry import ExportFormat
    from biodiscover.workflows.export.tables import candidate_label, live_candidates


    def render(data, options):
        rows = [f"{candidate_label(p)}\\t{p['size']}" for p in live_candidates(data.proposals).to_dict("records")]
        return ("\\n".join(rows) + "\\n").encode("utf-8")


    FORMAT = ExportFormat("tally", "candidate names and sizes", "file", render, suffix=".tsv")
''')


@pytest.fixture()
def tally(tmp_path: Path):
    path = tmp_path / "tally.py"
    path.write_text(THROWAWAY)
    spec = importlib.util.spec_from_file_location("tally_format", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    REGISTRY.register(module.FORMAT)  # the one registry line
    try:
        yield module.FORMAT
    finally:
        REGISTRY.unregister("tally")


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


def _app() -> typer.Typer:
    from biodiscover.cli import jobs

    app = typer.Typer()
    jobs.register(app)
    return app


def test_a_registered_format_is_in_the_help_the_list_and_the_cli(tally: ExportFormat, small_db, tmp_path) -> None:
    assert "tally" in FORMATS and FORMATS.names()[-1] == "tally"
    runner = CliRunner()
    help_text = runner.invoke(_app(), ["export", "--help"], terminal_width=200).output
    assert "tally: candidate names and sizes (a .tsv file)" in _words(help_text)
    assert "One of: csv, dwca, fasta, html, json, tally" in _words(help_text)
    path, run = small_db
    out = tmp_path / "c.tsv"
    result = runner.invoke(_app(), ["export", "--db", str(path), "--run", str(run), "-f", "tally", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == "Megaselia sp. cand1\t3\nPhoridae gen. sp. cand2\t2\n"


def test_unregistered_format_is_unknown_everywhere(small_db, tmp_path) -> None:
    assert "tally" not in FORMATS
    with pytest.raises(InputError, match=r"unknown export format 'tally' \(known: csv, dwca, fasta, html, json\)"):
        REGISTRY.get("tally")


def test_cli_help_lists_every_registered_format_from_the_registry() -> None:
    proc = subprocess.run([sys.executable, "-m", "biodiscover.cli", "export", "--help"], capture_output=True,
                          text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}, timeout=120)
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
