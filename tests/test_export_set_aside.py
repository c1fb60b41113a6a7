"""Specimens set aside at ingest are counted in the exports, not dropped without a word.

A data manager's review of a real plate (F4): an edge plate of 31 rows (two without a usable barcode: no data,
150 nt) was triaged as "29 of 31 specimens triaged (2 quarantined …)" and every export then published 29
specimens: eml.xml's abstract said "29 specimens named …", nothing said two were sequenced and failed. The run's
ingest keeps what it set aside (the ``quarantine`` table, with the report file it wrote); eml.xml's abstract,
columns.txt of the CSV export and the JSON's run now say how many, why (counted by kind) and which report lists
them.

Real SQLite database, the real validating reader and ingest, the real CLI.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from biodiscover.storage.db import Database
from fixtures.inprocess import run_cli

BARCODE = "ACGTTGCA" * 80
SENTENCE = ("3 specimens of the collection were not triaged: barcode shorter than 200 nt (N runs trimmed) 2, "
            "neither barcode nor image 1 (listed in the quarantine report plate.quarantine.csv)")


def _plate(tmp_path: Path) -> Path:
    path = tmp_path / "plate.csv"
    rows = ["processid,order,dna_barcode,country"]
    rows += [f"OK{i},Diptera,{BARCODE},Norway" for i in range(4)]
    rows += ["EMPTY1,Diptera,,Norway", f"SHORT1,Diptera,{BARCODE[:150]},Norway", f"SHORT2,,{BARCODE[:120]},Norway"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _cli(home: Path, *args: str) -> None:
    proc = run_cli("export", *args, env={"XDG_CONFIG_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def test_the_specimens_an_ingest_set_aside_are_counted_in_eml_csv_and_json(tmp_path: Path) -> None:
    db_path = tmp_path / "lab.sqlite"
    with Database.create(db_path) as db:
        report, _ = db.ingest_file(_plate(tmp_path), collection="plate", backup=False,
                                   quarantine_file=tmp_path / "plate.quarantine.csv")
        assert (report.total, report.quarantined) == (4, 3)
        run = db.start_run("triage", {}, collection="plate", backup=False)
        db.write_assignments(run, [{"processid": f"OK{i}", "deepest_rank": "order", "deepest_taxon": "Diptera",
                                    "is_novel": False, "labels": {"order": "Diptera"}, "confidences": {"order": 0.99},
                                    "novelty": 0.01} for i in range(4)])
        db.finish_run(run, "completed")
        assert db.run_set_aside(run) == {"counts": {"short_barcode": 2, "no_data": 1},
                                         "file": str((tmp_path / "plate.quarantine.csv").resolve())}
    args = ("--db", str(db_path), "--run", str(run))
    _cli(tmp_path, *args, "-f", "dwca", "-o", str(tmp_path / "a.zip"))
    _cli(tmp_path, *args, "-f", "csv", "-o", str(tmp_path / "csv"))
    _cli(tmp_path, *args, "-f", "json", "-o", str(tmp_path / "run.json"))
    _cli(tmp_path, *args, "-f", "html", "-o", str(tmp_path / "report.html"))
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        abstract = "".join(ET.fromstring(zf.read("eml.xml")).find("dataset/abstract").itertext())
    assert abstract.startswith("4 specimens named") and abstract.endswith(" " + SENTENCE + "."), abstract
    columns = (tmp_path / "csv" / "columns.txt").read_text(encoding="utf-8").splitlines()
    assert columns[1] == "This export: run " + str(run) + ". " + SENTENCE + ".", columns[:3]
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert doc["run"]["set_aside"]["counts"] == {"short_barcode": 2, "no_data": 1}
    # and the report, under its heading (the review's F4: "the report never mentions the two failed specimens")
    assert f"<p class='note'>{SENTENCE}.</p>" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_a_run_whose_ingest_set_nothing_aside_says_nothing(tmp_path: Path) -> None:
    from biodiscover.workflows.export.tables import set_aside_text

    db_path = tmp_path / "lab.sqlite"
    with Database.create(db_path) as db:
        plate = tmp_path / "clean.csv"
        plate.write_text(f"processid,dna_barcode\nOK1,{BARCODE}\n", encoding="utf-8")
        db.ingest_file(plate, collection="clean", backup=False)
        run = db.start_run("triage", {}, collection="clean", backup=False)
        assert db.run_set_aside(run) == {"counts": {}, "file": None}
    assert set_aside_text({"set_aside": {"counts": {}, "file": None}}) is None
    assert set_aside_text({}) is None  # a table built without a database (the demo, tests)
    assert set_aside_text({"set_aside": {"counts": {"no_data": 1}, "file": None}}) == \
        "1 specimen of the collection was not triaged: neither barcode nor image 1"
