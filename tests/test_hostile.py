"""Every verb that reads input walks the hostile corpus (tests/hostile/, issue 12).

For each corpus file and each of ``validate``, ``ingest``, ``triage`` and ``split``
(the CLI entry point in this process: same code as the console script), then
``run`` over all of them in one real process and ``info`` on damaged manifests:

* a usable file: every physical record is either kept or set aside with a reason
  (kept + set aside == the records the file holds: nothing silently dropped);
* an unusable file: exit 2 and exactly one ``error:`` line, never a traceback;
* the input is byte-for-byte unchanged;
* nothing written (quarantine reports, results, split tables) carries a control
  character, and no quarantine cell starts with a spreadsheet formula trigger.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from biodiscover.cli.main import main
from biodiscover.storage.safetext import FORMULA_PREFIXES, control_characters
from fixtures.discovery import make_world, write_metadata
from fixtures.inprocess import run_cli

HOSTILE = Path(__file__).resolve().parent / "hostile"
REPO = HOSTILE.parent.parent

#: file -> (validate exit code, records, kept, set aside); None = unusable (exit 2, one error line)
EXPECTED: dict[str, tuple[int, int, int, int] | None] = {
    "stray_quote.csv": (1, 49, 48, 1),
    "unclosed_last_line.csv": (1, 5, 4, 1),
    "formulas.csv": (1, 6, 2, 4),
    "control_chars.csv": (1, 6, 2, 4),
    "nul_header.fasta": (1, 3, 2, 1),
    "bad_barcodes.csv": (1, 5, 2, 3),
    "duplicates.csv": (1, 20, 5, 15),  # five pairs that differ, both rows; five exact repeats
    "non_utf8.csv": None,  # Latin-1 bytes: the whole file is refused (re-save as UTF-8), no row lost one by one
    "crlf_bom.csv": (0, 3, 3, 0),
    "blank_lines.csv": (1, 4, 3, 1),
    "images.csv": (1, 4, 4, 0),  # three bad photos: each set aside alone, its barcoded specimen kept (PHOTOS)
    "header_only.csv": (0, 0, 0, 0),
    "empty.csv": None,
    "no_processid.csv": None,
    "header_quote.csv": None,
    "zip_archive.csv": None,
    "binary.csv": None,
}
#: file -> photos set aside from specimens kept without them (listed in the quarantine, exit code 1)
PHOTOS: dict[str, int] = {"images.csv": 3}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_corpus_is_what_the_expectations_name() -> None:
    tables = {p.name for p in HOSTILE.iterdir() if p.is_file() and p.suffix in (".csv", ".fasta")}
    assert tables - {"reference_rows.csv"} == set(EXPECTED)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_one_error_line(code: int, err: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err


def _assert_outputs_inert(folder: Path, inputs: set[Path]) -> None:
    """No control character in anything written; no formula trigger at the start of a quarantine cell."""
    for path in folder.rglob("*"):
        if not path.is_file() or path in inputs or path.suffix in (".sqlite", ".log") or ".backups" in str(path):
            continue
        text = path.read_bytes().decode("utf-8")
        bad = [c for c in control_characters(text.replace("\r\n", "\n")) if c != "\n"]
        assert not bad, f"{path} carries control characters {bad!r}"
        if path.name.endswith(".quarantine.csv"):
            with path.open(newline="", encoding="utf-8") as fh:
                for record in csv.DictReader(fh):
                    for column, cell in record.items():
                        if column != "line":
                            assert not cell.startswith(FORMULA_PREFIXES), f"{path}: {column} = {cell!r}"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DNA reference bundle built from a small generated world (seconds)."""
    root = tmp_path_factory.mktemp("world")
    write_metadata(root, make_world(seed=5))
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    assert main(["build-reference", "--data", str(root), "--out", str(out), "--keys", "train",
                 "--max-outliers", "40", "--quiet"]) == 0
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_reading_verb_keeps_or_sets_aside_every_record(name: str, bundle: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "in"
    work.mkdir()
    src = Path(shutil.copy(HOSTILE / name, work / name))
    images: list[str] = []
    if name == "images.csv":
        shutil.copytree(HOSTILE / "images_images", work / "images_images")
        images = ["--images", str(work / "images_images")]
    digest = sha(src)
    inputs = set(work.rglob("*"))
    expected = EXPECTED[name]

    code, out, err = _cli(capsys, "validate", str(src), *images, "--json")
    if expected is None:
        _assert_one_error_line(code, err)
    else:
        report = json.loads(out)
        assert (code, report["rows"], report["ok"], report["quarantined"]) == expected, report
        assert report["photos_set_aside"] == PHOTOS.get(name, 0), report

    db = tmp_path / "out" / "bd.sqlite"
    db.parent.mkdir()
    code, out, err = _cli(capsys, "ingest", "--input", str(src), "--db", str(db), *images, "--json")
    if expected is None:
        _assert_one_error_line(code, err)
        assert not db.exists() or db.stat().st_size == 0 or "ingests" not in err
    else:
        assert code == 0, err
        report = json.loads(out)
        # total counts the records stored; with those set aside they make up the file
        assert (report["total"], report["new"], report["quarantined"]) == (expected[2], expected[2], expected[3])
        assert report["photos_set_aside"] == PHOTOS.get(name, 0), report
        again = json.loads(_cli(capsys, "ingest", "--input", str(src), "--db", str(db), *images, "--json")[1])
        assert again["skipped"] and again["quarantined"] == expected[3], again
        assert again["photos_set_aside"] == PHOTOS.get(name, 0), again

    code, out, err = _cli(capsys, "triage", "--input", str(src), *images, "--model", str(bundle),
                          "--db", str(tmp_path / "out" / "triage.sqlite"),
                          "--results", str(tmp_path / "out" / "results.jsonl"), "--json", "-q")
    if expected is None or expected[2] == 0:
        _assert_one_error_line(code, err)
    else:
        assert code == 0, err
        summary = json.loads(out)
        assert (summary["specimens"], summary["quarantined"]) == (expected[1], expected[3]), summary
        # every kept specimen has a result (the corpus's random barcodes are unrelated to the test world's keys,
        # so most carry no DNA call: modality "none" with the reason, tests/test_homology.py)
        assert sum(summary["by_modality"].values()) == expected[2], summary
        assert summary["photos_set_aside"] == PHOTOS.get(name, 0)
        if expected[3] or PHOTOS.get(name):
            assert summary["quarantine_file"] == str(work / f"{src.name.split('.')[0]}.quarantine.csv")

    code, out, err = _cli(capsys, "split", str(src), "--out", str(tmp_path / "out" / "split.csv"), "--json")
    if expected is None or expected[2] == 0:
        _assert_one_error_line(code, err)
    elif code == 0:
        report = json.loads(out)
        assert report["records"] and sum(report["records"].values()) + report["quarantined"] == expected[1]
    else:
        _assert_one_error_line(code, err)  # e.g. too few labelled records to partition: said in one line

    assert sha(src) == digest
    _assert_outputs_inert(tmp_path, inputs)


def test_run_takes_the_whole_corpus_in_one_process(bundle: Path, tmp_path: Path) -> None:
    """`biodiscover run` over every corpus file: bad collections fail alone with their reason, bad
    photos are set-aside rows (the collection is not failed), and no crash is called 'internal error'."""
    folder = tmp_path / "collections"
    folder.mkdir()
    for name in EXPECTED:
        shutil.copy(HOSTILE / name, folder / name)
    shutil.copytree(HOSTILE / "images_images", folder / "images_images")
    inputs = set(folder.rglob("*"))
    res = run_cli("run", "--collections", str(folder), "--model", str(bundle), "--db", str(tmp_path / "run.sqlite"),
                  "--json", cwd=REPO)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    outcomes = {o["collection"]: o for o in json.loads(res.stdout)["collections"]}
    assert set(outcomes) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        o = outcomes[name]
        assert "internal error" not in (o["error"] or ""), o
        if expected is None or expected[2] == 0:
            assert o["status"] == "failed" and o["error"], o
        else:
            assert o["status"] == ("quarantined" if expected[3] or PHOTOS.get(name) else "ok"), o
            assert (o["specimens"], o["quarantined"], o["photos_set_aside"]) == (
                expected[2], expected[3], PHOTOS.get(name, 0)), o
    # a decompression bomb is a set-aside photo: the collection is not failed and its specimens are all kept
    assert outcomes["images.csv"]["status"] == "quarantined" and outcomes["images.csv"]["specimens"] == 4
    assert "Latin-1" in outcomes["non_utf8.csv"]["error"], outcomes["non_utf8.csv"]
    _assert_outputs_inert(folder, inputs)


@pytest.mark.parametrize("name", ["config_list", "config_string", "packages_list"])
def test_info_refuses_a_damaged_manifest_section_in_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _cli(capsys, "info", str(HOSTILE / "bundles" / name))
    _assert_one_error_line(code, err)
    assert f"'{name.split('_')[0]}' must be a JSON object" in err, err


def test_info_skips_damaged_nested_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "info", str(HOSTILE / "bundles" / "metrics_nested_garbage"))
    assert code == 0 and "Traceback" not in err and "bundle " in out, err


@pytest.mark.parametrize("name", ["version_string", "version_float"])
def test_info_calls_a_malformed_format_version_damaged_not_newer(name: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _cli(capsys, "info", str(HOSTILE / "bundles" / name))
    _assert_one_error_line(code, err)
    assert "is not a bundle format version" in err and "newer" not in err, err
