"""The CSV export as a collection manager opens it, and the Darwin Core terms that claimed what nobody recorded.

From the review of the last session's exports: Excel on Windows reads a CSV without a byte-order mark as the
local code page, so "≈0.3%" in a reason and accented collector or place names came out garbled; nothing said
what the ~90 columns mean; ``associatedSequences = BOLD:<processid>`` claimed a public BOLD record for every
specimen whose id has BOLD's shape, though the ingest records no such source; ``recordedBy`` was a column of the
core that no reader ever filled.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from biodiscover.storage.db import Database
from biodiscover.workflows.export import export_run, write_export
from biodiscover.workflows.export.csv import FILES
from fixtures.review_db import build_review_db
from fixtures.run_export import make_run_export

BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("excel")
    fx = build_review_db(root / "lab.sqlite")
    db = Database.open(fx.path)
    try:
        a, r, k = fx.proposal_ids[:3]
        db.accept(a, db.proposal(a).version, "Megaselia sp. Pérez-1", reviewer="Ana María Pérez")
        db.reject(r, db.proposal(r).version, reviewer="Ben Ode", note="≈ the same as #1")
        db.assign(k, db.proposal(k).version, db.known_species(limit=1)[0][0], reviewer="Cy Roe")
    finally:
        db.close()
    return fx.path, fx.run_id


def test_the_csv_files_carry_a_bom_so_excel_reads_utf8(tmp_path: Path, reviewed: tuple[Path, int]) -> None:
    path, run = reviewed
    export_run(path, run, "csv", tmp_path / "csv")
    for name in FILES:
        raw = (tmp_path / "csv" / name).read_bytes()
        assert raw.startswith(BOM) and not raw[3:].startswith(BOM), name
        # pandas and Python's csv module read it with the header's first name intact
        first = pd.read_csv(tmp_path / "csv" / name, encoding="utf-8-sig").columns[0]
        assert first in ("run_id", "proposal_id"), name
        with open(tmp_path / "csv" / name, newline="", encoding="utf-8-sig") as fh:
            assert next(csv.reader(fh))[0] == first
    proposals = pd.read_csv(tmp_path / "csv" / "proposals.csv", encoding="utf-8-sig", dtype=str)
    assert "Megaselia sp. Pérez-1" in set(proposals["name"]) and "Ana María Pérez" in set(proposals["decided_by"])
    assert proposals["review_notes"].str.contains("≈ the same as #1", regex=False).any()


def test_a_column_list_beside_the_csvs_describes_every_column_written(tmp_path: Path,
                                                                      reviewed: tuple[Path, int]) -> None:
    path, run = reviewed
    res = export_run(path, run, "csv", tmp_path / "csv")
    assert sorted(p.name for p in res.files) == sorted([*FILES, "columns.txt"])
    text = (tmp_path / "csv" / "columns.txt").read_text(encoding="utf-8")
    listed: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line in FILES:
            current = line
            listed[current] = []
        elif current and line.startswith("  ") and " — " in line:
            name, description = line.strip().split(" — ", 1)
            assert description.strip() and "not described" not in description, line
            listed[current].append(name)
    for name in FILES:
        with open(tmp_path / "csv" / name, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh))
        assert listed[name] == header, name  # every column, in the order written
    assert "evidence_nearest_known_not_named_because — " in text


def test_a_column_nobody_described_says_so() -> None:
    from biodiscover.workflows.export.csv import column_description

    assert "not described" in column_description("proposals.csv", "evidence_some_future_key")
    assert column_description("assignments.csv", "label_genus").startswith("the machine's genus")
    assert column_description("proposals.csv", "evidence_within_distance_max").startswith("largest p-distance")


def test_the_archive_claims_no_bold_record_and_no_empty_recorder(tmp_path: Path) -> None:
    """The ingest keeps a file path per specimen, never that the record came from BOLD: the barcodes travel in the
    DNA extension, tied to their occurrence by its id, and no ``associatedSequences`` names a record elsewhere."""
    data = make_run_export(n_known=4, n_candidates=2, seed=1)
    specimens = data.specimens.copy()
    specimens.loc[0, "processid"] = "BIOUG001-24"  # BOLD's shape, and still no record of where it came from
    assignments = data.assignments.copy()
    assignments.loc[0, "processid"] = "BIOUG001-24"
    write_export(replace(data, specimens=specimens, assignments=assignments), "dwca", tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        meta = zf.read("meta.xml").decode("utf-8")
        header = zf.read("occurrence.txt").decode("utf-8").splitlines()[0].split("\t")
        dna = zf.read("dna.txt").decode("utf-8").splitlines()
    assert "associatedSequences" not in meta and "associatedSequences" not in header
    assert "recordedBy" not in meta and "recordedBy" not in header
    assert "BOLD:BIOUG001-24" not in zipfile.ZipFile(tmp_path / "a.zip").read("occurrence.txt").decode("utf-8")
    sequenced = int(specimens["dna_barcode"].notna().sum())
    assert len(dna) == 1 + sequenced and any(line.startswith("BIOUG001-24\t") for line in dna)
