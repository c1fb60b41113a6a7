"""The fasta export is BOLD's shape: ``processid|identification|marker|accession``, our fields after.

Found reviewing the demo's export (``biodiscover demo``, review, ``export -f fasta``): the header read
``>KNFZ912-20|Thopliaus sp. Kruger-1|Thopliaus|2|0.995|``, the parent taxon in the third field, where BOLD
(and our own reader, :mod:`biodiscover.storage.fasta`, whose docstring promised the writer makes the same
shape) reads the marker. A BOLD-aware tool took ``Thopliaus`` for the marker and ``2`` for an accession.

Real SQLite database, the real review API, the real CLI, and our own reader on what the export wrote.
"""

from __future__ import annotations

from pathlib import Path

from biodiscover.storage.collections import read_collection
from biodiscover.storage.db import Database
from biodiscover.storage.fasta import iter_fasta_lines
from fixtures.inprocess import run_cli
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
    proc = run_cli("export", "--db", str(fx.path), "--run", str(fx.run_id), "-f", "fasta", "-o", str(out),
                   env={"XDG_CONFIG_HOME": str(tmp_path)})
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


def test_every_sequenced_specimen_is_in_all_specimens_fasta_under_its_current_determination(tmp_path: Path) -> None:
    """The export review's F5: the FASTA export held only pending and accepted candidates' members (79 of a Norwegian
    plate's 1,125 sequences); the 11 a reviewer assigned to *Pseudosmittia albipennis*, and every specimen the
    machine named, were in no FASTA — a BOLD submitter uploads a plate, not its candidates. ``all_specimens.fasta``
    beside the per-candidate files holds every barcoded specimen of the run once, under the determination the
    archive gives it; a candidate's member has the same header line as in its candidate's file."""
    import csv as csv_

    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=3)
    first, assigned = fx.proposal_ids[:2]
    with Database.open(fx.path) as db:
        known_id, known_label = db.known_species(limit=1)[0]
        db.assign(assigned, db.proposal(assigned).version, known_id, reviewer="Cy Roe")
        barcoded = {s.processid for s in db.specimens() if s.dna_barcode}
        moved = {m.processid for m in db.proposal_detail(assigned).members}
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    for fmt, out in (("fasta", tmp_path / "fasta"), ("csv", tmp_path / "csv")):
        proc = run_cli("export", "--db", str(fx.path), "--run", str(fx.run_id), "-f", fmt, "-o", str(out), env=env)
        assert proc.returncode == 0, proc.stderr
    with (tmp_path / "fasta" / "all_specimens.fasta").open(encoding="utf-8") as fh:
        every = list(iter_fasta_lines(enumerate(fh, start=1)))
    assert sorted(r.processid for r in every) == sorted(barcoded)  # each sequenced specimen once
    with (tmp_path / "csv" / "assignments.csv").open(encoding="utf-8-sig", newline="") as fh:
        sheet = {r["processid"]: r for r in csv_.DictReader(fh)}
    for rec in every:
        row = sheet[rec.processid]
        assert rec.identification == (row["verbatimIdentification"] or row["scientificName"]), rec.header
        assert rec.marker == "COI-5P"
    known = known_label.split("  (")[0]  # "name  (family › genus)"
    assert moved and all(r.identification == known for r in every if r.processid in moved)
    candidate_lines = {line.strip() for path in (tmp_path / "fasta").glob("*.fasta")
                       if path.name != "all_specimens.fasta" for line in path.open(encoding="utf-8")
                       if line.startswith(">")}
    in_candidates = [r for r in every if ">" + r.header in candidate_lines]
    assert any(r.fields[4] == str(first) for r in in_candidates)  # the first candidate's members, with its id
    assert len(in_candidates) == len(candidate_lines)  # every candidate file's line is in it, as written there


def _exported_renamed(tmp_path: Path, name: str) -> tuple[Path, set[str]]:
    """A review database whose first candidate was accepted and renamed ``name``, exported as FASTA: the folder
    and the candidate's members."""
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=3)
    first = fx.proposal_ids[0]
    with Database.open(fx.path) as db:
        db.accept(first, db.proposal(first).version, reviewer="Kari Nordmann")
        db.rename(first, db.proposal(first).version, name, reviewer="Kari Nordmann")
        members = {m.processid for m in db.proposal_detail(first).members}
    out = tmp_path / "fasta"
    proc = run_cli("export", "--db", str(fx.path), "--run", str(fx.run_id), "-f", "fasta", "-o", str(out),
                   env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    return out, members


def test_deflines_are_ascii_and_their_first_token_is_the_process_id(tmp_path: Path) -> None:
    """The export review's F10: for GenBank and BLAST tools the sequence id is the defline's first token (up to the
    first space) and NCBI wants ASCII; ``>CHRFI703-11|Smittia sp. BD-0001|…`` gave them "CHRFI703-11|Smittia", and a
    reviewer's "Harpalinae gen. sp. Ødegaard-1" put an Ø in the defline (and the file name dropped it:
    "7_Harpalinae_gen._sp._degaard-1.fasta"). Now the first token is the process id, a space then BOLD's fields
    (BOLD's upload takes the process id followed by a pipe, an underscore or a space), the rest transliterated."""
    out, members = _exported_renamed(tmp_path, "Harpalinae gen. sp. Ødegaard-1")
    (path,) = [p for p in out.glob("*.fasta") if "Odegaard" in p.name]
    assert path.name.endswith("_Harpalinae_gen._sp._Odegaard-1.fasta")
    for fasta in out.glob("*.fasta"):
        raw = fasta.read_bytes()
        assert raw.isascii(), fasta.name
        with fasta.open(encoding="ascii") as fh:
            records = list(iter_fasta_lines(enumerate(fh, start=1)))
        for rec in records:
            assert rec.header.split()[0] == rec.processid, rec.header  # GenBank's and BLAST's sequence id
            assert rec.marker == "COI-5P"  # BOLD's fields as before
    with path.open(encoding="ascii") as fh:
        named = list(iter_fasta_lines(enumerate(fh, start=1)))
    assert {r.processid for r in named} == members
    assert {r.identification for r in named} == {"Harpalinae gen. sp. Odegaard-1"}


def test_german_quotes_and_micro_are_transliterated_not_spelled_as_code_points(tmp_path: Path) -> None:
    """e31 review F17: an accepted name ``Sitona sp. „Müller-1" (Jäger, 2026)`` became the file
    ``007_Sitona_sp._U_201EMuller-1_Jager_2026.fasta`` and the defline field ``Sitona sp. U+201EMuller-1" (Jager,
    2026)``; a processid ``µ-ÄÖ/1`` became ``U+03BC-AO/1``. Quotation marks of every language are ASCII quotes, µ is
    u, dashes are hyphens: what a taxonomist reads and types."""
    from biodiscover.storage.safetext import ascii_text

    out, _ = _exported_renamed(tmp_path, 'Sitona sp. „Müller-1" (Jäger, 2026)')
    (path,) = [p for p in out.glob("*.fasta") if "Sitona" in p.name]
    assert path.name.endswith("_Sitona_sp._Muller-1_Jager_2026.fasta")
    with path.open(encoding="ascii") as fh:
        assert {r.identification for r in iter_fasta_lines(enumerate(fh, start=1))} == {
            'Sitona sp. "Muller-1" (Jager, 2026)'}
    assert ascii_text("µ-ÄÖ/1") == "u-AO/1"
    assert ascii_text("«Bembidion» ‚cf.‘ “x” – × − μm") == "\"Bembidion\" 'cf.' \"x\" - x - um"
    assert "U+" not in ascii_text("„“”‘’‚«»‹›–—µμ×")
