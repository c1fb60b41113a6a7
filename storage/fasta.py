"""FASTA with BOLD-style headers: reader for new collections, writer for exports.

BOLD's sequence downloads look like ``>GMEEO6589-21|Tuta absoluta|COI-5P|MG123456``:
the processid first, then the identification (the deepest name given), then
marker and accession (:data:`BOLD_FIELDS`). We read the processid and the identification and keep the
header verbatim; the writer produces the same shape so a file we export reads
back into BOLD-aware tools (and into us) unchanged. Fields of our own (the candidate
export's candidate id, membership, BIN) go *after* those four, never in their
places: a BOLD-aware tool reads the third field as the marker and the fourth as
a GenBank accession whatever we meant by them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from biodiscover.storage.records import Specimen
from biodiscover.storage.safetext import escape_controls

FASTA_SUFFIXES: tuple[str, ...] = (".fasta", ".fa", ".fas", ".fna", ".ffn", ".fsa")
#: A binomial "Genus species" (genus capitalised, epithet lower-case): safe to split.
_BINOMIAL = re.compile(r"^([A-Z][a-z]+) ([a-z][a-z-]+)$")
#: Characters that would break a header field.
_FIELD_UNSAFE = re.compile(r"[|\r\n>]")
#: BOLD's header fields, in the order BOLD writes them.
BOLD_FIELDS: tuple[str, ...] = ("processid", "identification", "marker", "accession")
#: The marker every barcode biodiscover handles is (BIOSCAN-5M's, BOLD's animal barcode region).
MARKER = "COI-5P"


@dataclass(frozen=True, slots=True)
class FastaRecord:
    """One FASTA entry: header without ``>``, sequence as written, header line number."""

    header: str
    sequence: str
    line: int

    @property
    def fields(self) -> list[str]:
        return [f.strip() for f in self.header.split("|")]

    @property
    def processid(self) -> str:
        return self.fields[0].split()[0] if self.fields and self.fields[0].split() else ""

    def _at(self, name: str) -> str:
        """BOLD's field ``name`` (see :data:`BOLD_FIELDS`), '' where the header is shorter."""
        fields, i = self.fields, BOLD_FIELDS.index(name)
        return fields[i] if i < len(fields) else ""

    @property
    def identification(self) -> str:
        return self._at("identification")

    @property
    def marker(self) -> str:
        return self._at("marker")

    @property
    def accession(self) -> str:
        return self._at("accession")

    def as_row(self) -> dict[str, str]:
        """The record as BIOSCAN columns: processid, dna_barcode, taxon (+ genus/species).

        Only an unambiguous binomial fills ``genus``/``species``; anything else
        (a family name, ``Megaselia sp. BIOUG1234-A01``) stays in ``taxon`` so we
        never invent a rank.
        """
        row = {"processid": self.processid, "dna_barcode": self.sequence}
        taxon = self.identification
        if taxon:
            row["taxon"] = taxon
            m = _BINOMIAL.match(taxon)
            if m:
                row["genus"] = m.group(1)
                row["species"] = taxon
        return row


def iter_fasta_lines(lines: Iterable[tuple[int, str]]) -> Iterator[FastaRecord]:
    """Parse ``(line_number, text)`` pairs into records (multi-line sequences joined).

    Takes numbered lines rather than a file so the collection reader can decode
    each line itself and report non-UTF-8 bytes by line.
    """
    header: str | None = None
    header_line = 0
    chunks: list[str] = []
    for number, text in lines:
        text = text.rstrip("\r\n")
        if text.startswith(">"):
            if header is not None:
                yield FastaRecord(header, "".join(chunks), header_line)
            header, header_line, chunks = text[1:].strip(), number, []
        elif header is None:
            if text.strip() and not text.startswith(";"):
                raise ValueError(f"line {number}: sequence data before the first '>' header")
        else:
            chunks.append(text.strip())
    if header is not None:
        yield FastaRecord(header, "".join(chunks), header_line)


def _field(value: object) -> str:
    """A header field: separators and line breaks become spaces, other control characters
    (a NUL in a processid) visible escapes, so no byte of a record can forge a header."""
    if value is None:
        return ""
    return escape_controls(_FIELD_UNSAFE.sub(" ", str(value)).strip())


def specimen_header(specimen: Specimen, extra: Sequence[str] = (MARKER,)) -> str:
    """BOLD-style header ``processid|identification|<extra…>`` for one specimen.

    The identification is the deepest name we have: species, else genus, …, else
    ``taxon``; empty when unlabelled.
    """
    deepest = specimen.deepest_label
    ident = deepest[1] if deepest else (specimen.taxon or "")
    return "|".join([_field(specimen.processid), _field(ident), *(_field(e) for e in extra)])


def write_fasta(
    records: Iterable[Specimen | tuple[str, str]],
    out: Path | IO[str],
    *,
    width: int = 0,
    extra: Sequence[str] = (MARKER,),
) -> int:
    """Write specimens (or ``(header, sequence)`` pairs) as FASTA; returns records written.

    Specimens without a barcode are skipped (FASTA cannot hold an image-only
    record). ``width`` > 0 wraps sequence lines; 0 writes one line per sequence,
    which is what BOLD produces and what most aligners read fastest.
    """
    own = isinstance(out, (str, os.PathLike))
    fh: IO[str] = Path(out).open("w", encoding="utf-8", newline="\n") if isinstance(out, (str, os.PathLike)) else out
    n = 0
    try:
        for rec in records:
            if isinstance(rec, Specimen):
                if not rec.dna_barcode:
                    continue
                header, seq = specimen_header(rec, extra), rec.dna_barcode
            else:
                header, seq = rec
                header = escape_controls(str(header).replace("\r", " ").replace("\n", " "))
            seq = re.sub(r"\s+", "", seq)
            fh.write(f">{header}\n")
            if width > 0:
                for i in range(0, len(seq), width):
                    fh.write(seq[i : i + width] + "\n")
            else:
                fh.write(seq + "\n")
            n += 1
    finally:
        if own:
            fh.close()
    return n
