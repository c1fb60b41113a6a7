"""A barcode longer than 660 nt reaches the exports as it was submitted; the analysis keeps using the first 660.

Found in a taxonomist's review of a real plate (item C2): ingest cleans a barcode (gaps, case, U→T, end N runs)
and cuts it to the first 660 nt as the BIOSCAN-5M loader does, and the database kept only the cut one, so the
Darwin Core archive's DNA-derived data and the FASTA export sent a 1,500-nt full-length COI on as a 660-nt
"barcode", and nothing said how long the submitted read was. Now ``specimens`` keeps the submitted length and,
where it was cut, the whole cleaned sequence (schema 0006); the exports carry that sequence and the archive says
the analysis compared the first 660 nt. A database written before 0006 upgrades and exports what it kept, saying
that the submitted length was not recorded.

Real collection file, the real ``biodiscover ingest`` and ``biodiscover export`` in their own processes (the
old-database case through the same ``Database.ingest_file`` and ``export_run`` in this one), a real SQLite file,
and the exports read back from the files written.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import zipfile
from pathlib import Path

import numpy as np

from biodiscover.storage.collections import read_collection
from biodiscover.storage.db import Database
from biodiscover.storage.fasta import iter_fasta_lines
from biodiscover.storage.records import MAX_NUCLEOTIDES
from fixtures.inprocess import run_cli

_rng = np.random.default_rng(25)
#: A 1,200-nt full-length read and a 600-nt one, as the lab's sequencer called them.
LONG = "".join(_rng.choice(list("ACGT"), size=1200))
SHORT = "".join(_rng.choice(list("ACGT"), size=600))
LINEAGE = {"order": "Diptera", "family": "Phoridae", "genus": "Megaselia"}


def _plate(folder: Path) -> Path:
    """The plate as a lab hands it in: the long read lower-case with alignment gaps and an unread N tail."""
    raw_long = "-".join(LONG[i:i + 100].lower() for i in range(0, len(LONG), 100)) + "NNNN"
    path = folder / "plate.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["processid", "sampleid", "dna_barcode", "country", "order", "family"])
        out.writerow(["LONG-1", "S-1", raw_long, "Peru", "Diptera", "Phoridae"])
        out.writerow(["SHORT-1", "S-2", SHORT, "Peru", "Diptera", "Phoridae"])
    return path


def _triage(db: Database) -> int:
    """A finished run naming both to genus and proposing them as one candidate species (what triage writes)."""
    run = db.start_run("triage", {}, "sha256:model", backup=False)
    db.write_assignments(run, [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Megaselia",
                                "labels": LINEAGE, "confidences": {"order": 1.0, "family": 1.0, "genus": 0.97},
                                "novelty": 0.9, "is_novel": True, "modality": "dna"} for p in ("LONG-1", "SHORT-1")])
    db.write_proposals(run, [{"members": ["LONG-1", "SHORT-1"], "parent_lineage": LINEAGE}])
    db.finish_run(run, "completed")
    return run


def _export(path: Path, run: int, out: Path, *, process: bool = False) -> tuple[dict[str, dict[str, str]],
                                                                             dict[str, str]]:
    """Export the run as a Darwin Core archive and as FASTA (``process``: with the real ``biodiscover export`` in
    its own process, else through the same ``export_run`` in this one); the archive's DNA-derived rows by id and
    the FASTA sequences by processid, read back from the files written."""
    from biodiscover.workflows.export import export_run

    for fmt, dest in (("dwca", out / "plate.zip"), ("fasta", out / "fasta")):
        if process:
            _biodiscover("export", "--db", str(path), "--run", str(run), "-f", fmt, "-o", str(dest), home=out)
        else:
            export_run(path, run, fmt, dest)
    with zipfile.ZipFile(out / "plate.zip") as zf:
        dna = {r["coreid"]: r for r in csv.DictReader(io.StringIO(zf.read("dna.txt").decode("utf-8")),
                                                      delimiter="\t", quoting=csv.QUOTE_NONE)}
    (fasta,) = sorted(p for p in (out / "fasta").glob("*.fasta") if p.name != "all_specimens.fasta")
    with fasta.open(encoding="utf-8") as fh:
        seqs = {rec.processid: rec.sequence for rec in iter_fasta_lines(enumerate(fh, start=1))}
    return dna, seqs


def _biodiscover(*args: str, home: Path) -> None:
    proc = run_cli(*args, env={"XDG_CONFIG_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def test_a_barcode_longer_than_660_nt_is_exported_as_submitted_and_analysed_as_its_first_660(tmp_path: Path) -> None:
    plate = _plate(tmp_path)
    # what triage hands the engine: the first 660 nt, cleaned
    read = {s.processid: s for s in read_collection(plate).specimens}
    assert read["LONG-1"].dna_barcode == LONG[:MAX_NUCLEOTIDES] and read["SHORT-1"].dna_barcode == SHORT
    path = tmp_path / "lab.sqlite"
    _biodiscover("ingest", "--input", str(plate), "--db", str(path), home=tmp_path)
    with Database.open(path) as db:
        stored = {s.processid: s for s in db.specimens()}
        run = _triage(db)
    # the analysis (naming, novelty, the candidates' distances) reads the 660-nt barcode, as before
    assert stored["LONG-1"].dna_barcode == LONG[:MAX_NUCLEOTIDES] and stored["SHORT-1"].dna_barcode == SHORT
    assert stored["LONG-1"].submitted_barcode == LONG and stored["SHORT-1"].submitted_barcode == SHORT
    con = sqlite3.connect(path)
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT processid, length(dna_barcode), submitted_barcode, submitted_barcode_length FROM specimens")}
    con.close()
    # the whole read is kept only where it was cut: an uncut barcode is not stored twice
    assert rows == {"LONG-1": (660, LONG, 1200), "SHORT-1": (600, None, 600)}

    dna, seqs = _export(path, run, tmp_path, process=True)
    assert len(dna["LONG-1"]["DNA_sequence"]) == 1200 and dna["LONG-1"]["DNA_sequence"] == LONG
    assert dna["SHORT-1"]["DNA_sequence"] == SHORT
    # the archive says, in the standard term for how sequences were compared, what the analysis compared
    assert "compared on the first 660 nt of the 1,200 nt submitted" in dna["LONG-1"]["otu_seq_comp_appr"]
    assert "660" not in dna["SHORT-1"]["otu_seq_comp_appr"]
    assert seqs == {"LONG-1": LONG, "SHORT-1": SHORT}


def test_a_database_written_before_0006_upgrades_and_exports_the_barcode_it_kept(tmp_path: Path) -> None:
    """An older biodiscover kept only the cut barcode: after the upgrade the exports carry that, and the archive
    says the submitted length was not recorded rather than presenting 660 nt as the whole read."""
    from biodiscover.storage.db.schema import head_revision, inspect_revision
    from fixtures.db_views import downgrade

    path = tmp_path / "old.sqlite"
    with Database.create(path) as db:
        db.ingest_file(_plate(tmp_path), backup=False)
        run = _triage(db)
    downgrade(path, "0005")  # the file as a revision-0005 biodiscover wrote it: the 660-nt barcode alone
    assert inspect_revision(path).revision == "0005"
    cols = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(specimens)")}
    assert "dna_barcode" in cols and not {"submitted_barcode", "submitted_barcode_length"} & cols
    assert Database.upgrade(path) is not None and inspect_revision(path).revision == head_revision()
    with Database.open(path) as db:
        old = {s.processid: s for s in db.specimens()}
    assert old["LONG-1"].dna_barcode == LONG[:MAX_NUCLEOTIDES] and old["LONG-1"].submitted_barcode is None

    dna, seqs = _export(path, run, tmp_path)
    assert dna["LONG-1"]["DNA_sequence"] == LONG[:MAX_NUCLEOTIDES] and dna["SHORT-1"]["DNA_sequence"] == SHORT
    for pid in ("LONG-1", "SHORT-1"):
        assert "length as submitted not recorded" in dna[pid]["otu_seq_comp_appr"]
    assert seqs == {"LONG-1": LONG[:MAX_NUCLEOTIDES], "SHORT-1": SHORT}


def test_a_new_tail_past_660_nt_is_a_new_version_of_the_record(tmp_path: Path) -> None:
    """The record's content hash covers the submitted read where it was cut: the same plate re-sent with the tail
    re-called is a changed record (a new version, the old one kept), not "unchanged" because its first 660 nt
    are; a plate whose barcodes were never cut hashes as before, so nothing already stored reads as changed."""
    from fixtures.db_views import specimen_versions

    plate = _plate(tmp_path)
    path = tmp_path / "lab.sqlite"
    with Database.create(path) as db:
        db.ingest_file(plate, backup=False)
        text = plate.read_text(encoding="utf-8")
        tail = LONG[1100:1200].lower()
        plate.write_text(text.replace(tail, tail[::-1]), encoding="utf-8")
        again, _ = db.ingest_file(plate, backup=False)
    assert (again.new, again.changed, again.unchanged) == (0, 1, 1)
    first, second = specimen_versions(path, "LONG-1")
    assert first["submitted_barcode"] == LONG and not first["current"]
    assert second["submitted_barcode"] == LONG[:1100] + LONG[1100:1200][::-1] and second["current"]
    assert first["dna_barcode"] == second["dna_barcode"] == LONG[:MAX_NUCLEOTIDES]


def test_the_demo_plate_hands_in_whole_reads(tmp_path: Path) -> None:
    """The demo writes its plate from specimens its reader already cut to 660 nt: it writes each read as submitted
    (the synthetic reads run past 660 nt, as real ones do), and nothing for a barcode it dropped as failed."""
    import dataclasses

    import pandas as pd

    from biodiscover.workflows.demo import write_collection

    read = {s.processid: s for s in read_collection(_plate(tmp_path)).specimens}
    failed = dataclasses.replace(read["SHORT-1"], dna_barcode=None)  # what _fail_barcodes does to a share
    path, _ = write_collection([read["LONG-1"], failed], tmp_path / "demo")
    written = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("processid")["dna_barcode"]
    assert written.to_dict() == {"LONG-1": LONG, "SHORT-1": ""}
