"""The fasta export is BOLD's shape: ``processid|identification|marker|accession``, our fields after.

Found reviewing the demo's export (``biodiscover demo``, review, ``export -f fasta``): the header read
``>KNFZ912-20|Thopliaus sp. Kruger-1|Thopliaus|2|0.995|``, the parent taxon in the third field, where BOLD
(and our own reader, :mod:`biodiscover.storage.fasta`, whose docstring promised the writer makes the same
shape) reads the marker. A BOLD-aware tool took ``Thopliaus`` for the marker and ``2`` for an accession.

Real SQLite database, the real review API, the real CLI, and our own reader on what the export wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from biodiscover.storage.collections import read_collection
from biodiscover.storage.db import Database
from biodiscover.storage.fasta import iter_fasta_lines
from fixtures.review_db import build_review_db


def test_an_exported_fasta_reads_back_with_processid_identification_and_marker(tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=3)
    first = fx.proposal_ids[0]
    db = Database.open(fx.path)
    try:
        accepted = db.accept(first, db.proposal(first).version, reviewer="A. Taxonomist")
        db.rename(first, db.proposal(first).version, f"{accepted.name.split(' sp. ')[0]} sp. Kruger-1",
                  reviewer="A. Taxonomist")
        name = db.proposal(first).provisional_name
    finally:
        db.close()
    out = tmp_path / "fasta"
    proc = subprocess.run([sys.executable, "-m", "biodiscover.cli", "export", "--db", str(fx.path), "--run",
                           str(fx.run_id), "-f", "fasta", "-o", str(out)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    (path,) = [p for p in sorted(out.glob("*.fasta")) if p.name.endswith("_Kruger-1.fasta")]
    with path.open(encoding="utf-8") as fh:
        records = list(iter_fasta_lines(enumerate(fh, start=1)))
    assert records
    for rec in records:
        # where any BOLD-aware tool reads them: identification second, marker third, accession fourth
        assert rec.fields[1:4] == [name, "COI-5P", ""], rec.header
        assert (rec.identification, rec.marker, rec.accession) == (name, "COI-5P", "")  # and our reader
        assert rec.fields[4] == str(first)  # our own fields come after BOLD's four
    # what ``triage --input that.fasta`` reads: every specimen back, by its processid, with its barcode
    back = read_collection(path)
    assert back.ok and [s.processid for s in back.specimens] == [r.processid for r in records]
    assert all(s.dna_barcode and s.taxon == name for s in back.specimens)
