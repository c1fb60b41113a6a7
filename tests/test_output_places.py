"""Where triage, validate, ingest and export may write: a folder that exists, never the input, never another output
of the same command (``storage.validation.check_output_path``), each refused before any work.

Why: ``triage --results nodir/r.csv`` ran the whole triage, then a traceback, the run left ``failed`` holding its
assignments; ``--results in4.quarantine.csv`` overwrote the only record of the rows set aside; with ``--force``
``triage --results in.csv`` and ``validate in.csv --quarantine in.csv`` replaced the user's collection (e34 attack
O1, O2, O3). None of these needs a reference: the refusal comes before the bundle is opened, so an empty model
folder stands in for one and the tests take well under a second.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.inprocess import run_cli


@pytest.fixture
def plate(fixtures_dir: Path, tmp_path: Path) -> Path:
    """A collection with rows set aside (``bad_rows.csv``: a bad base, no processid, a duplicate), and an empty
    model folder beside it."""
    (tmp_path / "model").mkdir()
    return Path(shutil.copy(fixtures_dir / "readers" / "bad_rows.csv", tmp_path / "in.csv"))


def _refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: {message}"


def test_an_output_in_a_missing_folder_is_refused_before_any_work_by_triage_and_validate(plate: Path) -> None:
    """One rule for both verbs (and export's): the folder must exist. Before, triage ran whole and then raised
    FileNotFoundError (run 1 ``failed`` with its assignments) while validate made the folder silently."""
    here = plate.parent
    _refused(run_cli("triage", "-i", "in.csv", "-m", "model", "--db", "y.sqlite", "--results", "nodir/r.csv",
                     cwd=here), "nodir/r.csv: cannot write the results file: folder nodir does not exist")
    _refused(run_cli("validate", "in.csv", "--quarantine", "nodir/q.csv", cwd=here),
             "nodir/q.csv: cannot write the quarantine report: folder nodir does not exist")
    assert sorted(p.name for p in here.iterdir()) == ["in.csv", "model"]  # no database, no folder, no report


def test_the_results_are_never_written_over_the_inputs_quarantine_report(plate: Path) -> None:
    """``--results in.quarantine.csv`` (the report triage writes for in.csv), however spelled: refused, the report
    kept byte for byte (before: overwritten by the results, then a KeyError traceback)."""
    here = plate.parent
    assert run_cli("validate", "in.csv", cwd=here).returncode == 1  # rows set aside: the report is written
    report = here / "in.quarantine.csv"
    kept = report.read_bytes()
    (here / "sub").mkdir()
    for given in ("in.quarantine.csv", "sub/../in.quarantine.csv"):
        _refused(run_cli("triage", "-i", "in.csv", "-m", "model", "--db", "y.sqlite", "--results", given,
                         "--force", cwd=here),
                 f"{given}: is also where the quarantine report goes; give the results file another name")
    _refused(run_cli("triage", "-i", "in.csv", "-m", "model", "--db", "y.csv", "--results", "y.csv", "--force",
                     cwd=here), "y.csv: is also where the database goes; give the results file another name")
    assert report.read_bytes() == kept
    assert not (here / "y.sqlite").exists()


def test_an_output_that_is_the_input_is_refused_even_with_force(plate: Path) -> None:
    """triage's --results, validate's and ingest's --quarantine: the input is kept as it is, under any spelling
    (before: replaced by the results table or by its own quarantine report, rc 0)."""
    here = plate.parent
    (here / "sub").mkdir()
    kept = plate.read_bytes()
    for given in ("in.csv", "sub/../in.csv"):
        _refused(run_cli("triage", "-i", "in.csv", "-m", "model", "--db", "y.sqlite", "--results", given, "--force",
                         cwd=here),
                 f"{given}: is the input; give the results file another name (the input is kept as it is)")
        for verb in (["validate", "in.csv"], ["ingest", "--input", "in.csv", "--db", "y.sqlite"]):
            _refused(run_cli(*verb, "--quarantine", given, "--force", cwd=here),
                     f"{given}: is the input; give the quarantine report another name (the input is kept as it is)")
    assert plate.read_bytes() == kept
    assert sorted(p.name for p in here.iterdir()) == ["in.csv", "model", "sub"]


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("regfile", "", "not a .toml or .json file; --metadata reads one of those (name it so)"),
    ("meta.toml", "\n  \n", "is empty; --metadata needs the dataset's title, creator and licence"),
])
def test_export_metadata_that_exists_says_what_is_wrong_with_it(tmp_path: Path, name: str, text: str,
                                                                 problem: str) -> None:
    """An existing empty file without an ending was reported as "metadata file not found" (e34 attack E7)."""
    (tmp_path / name).write_text(text)
    _refused(run_cli("export", "--db", "none.sqlite", "--run", "1", "-f", "dwca", "-o", "m.zip", "--metadata", name,
                     cwd=tmp_path), f"{name}: {problem}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
