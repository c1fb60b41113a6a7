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


def _reviewed_keys_db(path: Path) -> tuple[int, str]:
    """Run 1: two candidates under Gonodonta, one accepted (``Gonodonta sp. BD-0001``), one assigned to the known
    Gonodonta bidens. Run 2 names four specimens from the barcode: from a member of each (a key a triage adds for
    the session), from a reference key, and one from its photograph. Returns run 2's id and the accepted name."""
    from fixtures.review_db import GONODONTA, one_run_db

    week1 = ["A0", "A1", "K0", "K1"]
    week2 = {"W0": {"top_hit": "A1", "identity": 1.0, "overlap": 608, "modality": "dna+image"},
             "W1": {"top_hit": "K0", "identity": 0.998, "overlap": 640, "modality": "dna"},
             "W2": {"top_hit": "REF-9", "identity": 0.93, "overlap": 658, "modality": "dna"},
             "W3": {"top_hit": "A0", "modality": "image"}}
    a, k = one_run_db(path, [Specimen(processid=p, dna_barcode="ACGT" * 150, country="Peru") for p in week1 + [*week2]],
                      [{**GONODONTA, "species": "Gonodonta bidens"}],
                      [{"members": week1[:2], "parent_lineage": GONODONTA},
                       {"members": week1[2:], "parent_lineage": GONODONTA}],
                      [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Gonodonta", "novelty": 0.9,
                        "labels": GONODONTA} for p in week1])
    with Database.open(path) as db:
        bd = db.accept(a, db.proposal(a).version, reviewer="Test Taxonomist").name
        db.assign(k, db.proposal(k).version, "Gonodonta bidens", reviewer="Ana Silva")
        run = db.start_run("triage", {"provisional_keys": 4}, backup=False)
        db.write_assignments(run, [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Gonodonta",
                                    "labels": GONODONTA, "confidences": {"order": 1.0, "family": 1.0, "genus": 0.99},
                                    "novelty": 0.1, "is_novel": False, **e} for p, e in week2.items()])
        db.write_proposals(run, [])
        db.finish_run(run, "completed")
    assert bd
    return run, str(bd)


def test_a_key_a_reviewer_decided_is_called_what_it_is_in_every_export(tmp_path: Path) -> None:
    """e35 week-2 review, finding 7: a week-2 specimen named from a member of a candidate a reviewer accepted last
    week (a key the triage adds for the session) was published as "COI barcode 100.0 % identical to reference
    SOONR2491-20": not a reference barcode. The archive, assignments.csv and the JSON now say which candidate the
    key is a member of and what the reviewer decided, in the same words; a reference key stays "reference"."""
    import csv
    import json

    from fixtures.inprocess import run_cli

    path = tmp_path / "weeks.sqlite"
    run, bd = _reviewed_keys_db(path)
    rows, _ = export_dwca(path, run, tmp_path)

    def said(pid: str) -> str:
        remarks = rows[pid]["identificationRemarks"]
        return next((p.removeprefix("evidence=") for p in remarks.split("; ") if p.startswith("evidence=")), "")

    accepted = f"a member of run 1's #1, accepted as {bd} by Test Taxonomist"
    assigned = "a member of run 1's #2, assigned to Gonodonta bidens by Ana Silva"
    assert said("W0") == f"COI barcode 100.0 % identical to A1 ({accepted}) over 608 bases and photograph"
    assert said("W1") == f"COI barcode 99.8 % identical to K0 ({assigned}) over 640 bases"
    assert said("W2") == "COI barcode 93.0 % identical to reference REF-9 over 658 bases"
    assert said("W3") == "photograph alone (no usable barcode), nearest reference A0"
    proc = run_cli("export", "--db", str(path), "--run", str(run), "-f", "csv", "-o", str(tmp_path / "csv"),
                   "-f", "json", "-o", str(tmp_path / "run.json"))
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "csv" / "assignments.csv").open(encoding="utf-8-sig", newline="") as fh:
        sheet = {r["processid"]: r["top_hit_source"] for r in csv.DictReader(fh)}
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    want = {"W0": accepted, "W1": assigned, "W2": "reference", "W3": "reference"}
    assert sheet == want
    assert {a["processid"]: a["top_hit_source"] for a in doc["assignments"]} == want
    assert "what top_hit is" in (tmp_path / "csv" / "columns.txt").read_text(encoding="utf-8")


def test_a_photograph_only_name_is_published_as_an_image_score_at_its_threshold_not_a_confidence(
        tmp_path: Path) -> None:
    """e35 week-2 review F5: GBIF read "confidence=0.657 at species" for a species named from a photograph alone
    at the image classifier's threshold, under the level 0.98. The archive gives the image score as one and the
    triage's sentence (its threshold, not the level); a run stored before triage wrote that sentence gets the
    same in general words."""
    said = ("photograph only: species Megaselia abdita named at the image classifier's threshold 0.54 (score "
            "0.66), not at the level 0.98: image scores are not P(right)")
    path = tmp_path / "lab.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(processid=p, dna_barcode=None, country="Peru") for p in ("PH1-24", "PH2-24")],
                  collection="plate", backup=False)
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [{"processid": p, "deepest_rank": "species", "deepest_taxon": "Megaselia abdita",
                                    "labels": {**LINEAGE, "species": "Megaselia abdita"}, "modality": "image",
                                    "confidences": {"order": 0.88, "family": 0.81, "genus": 0.78, "species": 0.657},
                                    "top_hit": "KEY-9", "reason": reason, "novelty": float("nan"), "is_novel": False}
                                   for p, reason in (("PH1-24", said), ("PH2-24", None))])
        db.finish_run(run, "completed")
    rows, _ = export_dwca(path, run, tmp_path)
    for pid in ("PH1-24", "PH2-24"):
        parts = rows[pid]["identificationRemarks"].split("; ")
        assert "image score=0.657 at species" in parts and not any(p.startswith("confidence=") for p in parts)
    assert rows["PH1-24"]["identificationRemarks"].endswith("; " + said)
    assert "photograph only: named at the image classifier's own threshold per rank, not at the level: image " \
           "scores are not P(right)" in rows["PH2-24"]["identificationRemarks"]


def test_a_photograph_only_name_at_the_level_is_published_with_its_calibrated_p_right_as_the_confidence(
        tmp_path: Path) -> None:
    """A photograph alone is now named at the level by the P(right) calibrated from its image score
    (``multimodal.photo_only_call``), which the confidences hold: the archive gives it as the confidence, as a
    barcode's, with the triage's sentence saying which score it was calibrated from (not "image score=", which
    would read a P(right) as a score)."""
    said = ("photograph only: genus Megaselia P(right) 0.984 (calibrated from the image score 0.78) passes the "
            "level 0.98; species Megaselia abdita P(right) 0.60 (calibrated from the image score 0.66) below the "
            "level 0.98")
    path = tmp_path / "lab.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(processid="PH1-24", dna_barcode=None, country="Peru")], collection="plate", backup=False)
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [{"processid": "PH1-24", "deepest_rank": "genus", "deepest_taxon": "Megaselia",
                                    "labels": {**LINEAGE, "species": "Megaselia abdita"}, "modality": "image",
                                    "confidences": {"order": 0.984, "family": 0.984, "genus": 0.984, "species": 0.6},
                                    "top_hit": "KEY-9", "reason": said, "novelty": float("nan"), "is_novel": False}])
        db.finish_run(run, "completed")
    rows, _ = export_dwca(path, run, tmp_path)
    parts = rows["PH1-24"]["identificationRemarks"].split("; ")
    assert "confidence=0.984 at genus" in parts and not any(p.startswith("image score=") for p in parts)
    assert rows["PH1-24"]["identificationRemarks"].endswith("; " + said)
