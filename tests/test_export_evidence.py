"""What each specimen was named from, as the Darwin Core archive says it (schema 0005).

A photograph-only call and a barcode at 99.8 % to a key are not one kind of identification, and a GBIF user
filters on how a record was identified; before, the archive said only "method=biodiscover triage run N" for
both (the taxonomist's review of the demo's export, F9). Real SQLite database and the real ``export`` CLI.
"""

from __future__ import annotations

from pathlib import Path

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from fixtures.run_export import export_dwca

LINEAGE = {"order": "Diptera", "family": "Phoridae", "subfamily": None, "genus": "Megaselia", "species": None}
#: processid → what triage stored about its evidence (BD5's row is one written before schema 0005: nothing)
EVIDENCE = {
    "BD1-24": {"modality": "dna", "identity": 0.9984, "overlap": 611, "top_hit": "KEY-7"},
    "BD2-24": {"modality": "image", "top_hit": "KEY-9"},
    "BD3-24": {"modality": "dna+image", "identity": 0.9712, "overlap": 658, "top_hit": "KEY-3"},
    "BD4-24": {"modality": "none"},
    "BD5-24": {},
}


def test_the_archive_says_what_each_specimen_was_named_from(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(processid=p, dna_barcode="ACGT" * 150 if p != "BD2-24" else None, country="Peru")
                   for p in EVIDENCE], collection="plate", backup=False)
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Megaselia",
                                    "labels": LINEAGE, "confidences": {"order": 1.0, "family": 1.0, "genus": 0.99},
                                    "novelty": 0.2, "is_novel": False, **e} for p, e in EVIDENCE.items()])
        db.finish_run(run, "completed")
    rows, _ = export_dwca(path, run, tmp_path)

    def said(pid: str) -> str:
        remarks = rows[pid]["identificationRemarks"]
        return next((p.removeprefix("evidence=") for p in remarks.split("; ") if p.startswith("evidence=")), "")

    assert said("BD1-24") == "COI barcode 99.8 % identical to reference KEY-7 over 611 bases"
    assert said("BD2-24") == "photograph alone (no usable barcode), nearest reference KEY-9"
    assert said("BD3-24") == "COI barcode 97.1 % identical to reference KEY-3 over 658 bases and photograph"
    assert said("BD4-24") == "no call (no usable barcode or photograph)"
    assert said("BD5-24") == ""  # stored before the evidence was kept: the archive claims nothing
    assert all(rows[p]["genus"] == "Megaselia" for p in EVIDENCE)
