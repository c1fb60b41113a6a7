"""Validation rules for specimen records: nothing is silently dropped.

Every reader (BIOSCAN-5M metadata, collection CSV/TSV, FASTA, image folders) runs
its rows through :class:`RowValidator`. A valid row becomes a
:class:`~biodiscover.storage.records.Specimen`; an invalid one becomes a
:class:`QuarantinedRecord` that names the file, the line, the processid and the
problem, so a taxonomist can fix the source and re-run. :class:`ValidationSummary`
counts each kind of problem for the ``validate`` report.

``clean_barcode`` is THE barcode normaliser of the project (upper-case, gaps
removed, leading/trailing N runs trimmed, first 660 nt kept); every other area
reuses it so that "the same barcode" means the same thing everywhere. The
validator keeps the cleaned read before the cut too (``Specimen.submitted_barcode``):
the analysis reads the first 660 nt, the exports send on what was submitted.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from biodiscover.storage.records import (
    BIOSCAN_COLUMNS,
    TAXONOMY_COLUMNS,
    IUPAC,
    MAX_NUCLEOTIDES,
    MIN_BARCODE_LENGTH,
    SPLITS,
    Specimen,
    quoted,
)
from biodiscover.storage.safetext import control_characters

log = logging.getLogger(__name__)

# -- problem kinds --------------------------------------------------------------------
#: Barcode holds characters that are not IUPAC nucleotide codes.
BARCODE_CHARS = "barcode_chars"
#: The processid cell is empty.
EMPTY_PROCESSID = "empty_processid"
#: The processid was already seen earlier in the same input.
DUPLICATE_PROCESSID = "duplicate_processid"
#: Barcode shorter than MIN_BARCODE_LENGTH after trimming N runs.
SHORT_BARCODE = "short_barcode"
#: Latitude outside [-90, 90], longitude outside [-180, 180], or not a number.
COORDINATES = "coordinates"
#: An image the record refers to (or that is required) does not exist.
IMAGE_MISSING = "image_missing"
#: An image exists but PIL cannot read it.
IMAGE_UNREADABLE = "image_unreadable"
#: The split cell is not one of the BIOSCAN-5M split names.
UNKNOWN_SPLIT = "unknown_split"
#: The line is not valid UTF-8.
NON_UTF8 = "non_utf8"
#: A gzip file ends before its end-of-stream marker (file-level record).
TRUNCATED_GZIP = "truncated_gzip"
#: The row has a different number of fields than the header.
MALFORMED_ROW = "malformed_row"
#: A numeric column holds something that is not a number.
BAD_VALUE = "bad_value"
#: Neither a barcode nor an image: nothing to identify the specimen from.
NO_DATA = "no_data"
#: A cell holds a NUL, line break, bidi override or other control character.
CONTROL_CHARS = "control_chars"
#: The raw barcode is longer than any COI barcode (a genome, or lines run together).
LONG_BARCODE = "long_barcode"
#: A text cell (processid, names, country, province, BIN …) is longer than :data:`MAX_TEXT_CELL`.
LONG_VALUE = "long_value"

#: Problems of the input file itself, not of a record (a quarantine row without a specimen behind it): never
#: counted among the records or specimens set aside.
FILE_PROBLEMS: frozenset[str] = frozenset({TRUNCATED_GZIP})

#: How the reason of a quarantine row starts when only the photo was set aside: the record
#: itself (its barcode and the rest) was kept, without the photo. The prefix is the mark, so
#: it survives the quarantine table and the report file (:attr:`QuarantinedRecord.photo_only`).
PHOTO_SET_ASIDE = "photo set aside, specimen kept without it"

PROBLEM_KINDS: tuple[str, ...] = (
    BARCODE_CHARS,
    EMPTY_PROCESSID,
    DUPLICATE_PROCESSID,
    SHORT_BARCODE,
    COORDINATES,
    IMAGE_MISSING,
    IMAGE_UNREADABLE,
    UNKNOWN_SPLIT,
    NON_UTF8,
    TRUNCATED_GZIP,
    MALFORMED_ROW,
    BAD_VALUE,
    NO_DATA,
    CONTROL_CHARS,
    LONG_BARCODE,
    LONG_VALUE,
)

#: Each problem kind in words (``validate``'s table, the exports' count of specimens set aside at ingest).
KIND_LABELS: dict[str, str] = {
    "barcode_chars": "barcode characters outside IUPAC",
    "empty_processid": "empty processid",
    "duplicate_processid": "duplicate processid",
    "short_barcode": "barcode shorter than 200 nt (N runs trimmed)",
    "coordinates": "coordinates out of range",
    "image_missing": "image file missing",
    "image_unreadable": "image file unreadable",
    "unknown_split": "unknown split name",
    "non_utf8": "non-UTF-8 text",
    "truncated_gzip": "truncated gzip",
    "malformed_row": "wrong number of fields",
    "bad_value": "non-numeric value in a numeric column",
    "no_data": "neither barcode nor image",
    "control_chars": "control characters in a cell",
    "long_barcode": "barcode longer than any COI barcode",
    "long_value": "text cell longer than 200 characters",
}

#: Raw barcodes longer than this (gaps removed) are refused, not cut to 660 nt: COI-5P
#: barcodes are about 658 nt and full-length COI about 1,550 (the longest in the real dev
#: set); 5,000 leaves room for flanks while a 10 MB "barcode" is never taken for one.
MAX_RAW_BARCODE_LENGTH = 5000
#: Text cells a specimen keeps (ids, taxon names, country, province, BIN, chunk) longer than this are refused, not
#: cut: the longest in the real dev data is 43 characters (a sampleid; a country 32: "Democratic Republic of the
#: Congo"), so 200 is never a real value, while a 10,000-character note pasted into ``country`` would otherwise
#: be printed by triage and carried into the evidence, the review and every export. Image paths are not bounded.
MAX_TEXT_CELL = 200

_NON_IUPAC = re.compile("[^" + "".join(sorted(IUPAC)) + "]")
_GAP_CHARS = ("-", ".", " ", "\t", "\r", "\n")


def _remove_gaps(seq: str) -> str:
    """Drop alignment gaps and whitespace (``in`` checks first: most barcodes have none)."""
    for ch in _GAP_CHARS:
        if ch in seq:
            seq = seq.replace(ch, "")
    return seq
_FLOAT_COLUMNS = ("image_measurement_value", "area_fraction", "scale_factor")
_INT_COLUMNS = ("inferred_ranks", "index_bioscan_1M_insect")


def clean_barcode(seq: str | None, max_nucleotides: int | None = MAX_NUCLEOTIDES) -> str:
    """Normalise a COI barcode: upper-case, gaps and whitespace removed, N runs trimmed.

    U (uracil, an RNA or cDNA-style export) is written as T: it is the same base, and the
    reference's barcodes say T, so an alignment would count every U as a mismatch.

    Why this order: alignment gaps (``-``, ``.``) are not bases, so they go first;
    leading/trailing N runs are unread ends, not sequence; the official loader keeps
    the first 660 nt because longer tails are likely bad reads, and trailing Ns the
    cut exposes are trimmed again. Internal Ns and IUPAC codes are kept (tokenisers
    map them to ``[UNK]``). Characters are not checked here; see
    :func:`barcode_problems`.
    """
    if seq is None:
        return ""
    return cut_barcode(_remove_gaps(str(seq)).upper().replace("U", "T").strip("N"), max_nucleotides)


def cut_barcode(clean: str, max_nucleotides: int | None = MAX_NUCLEOTIDES) -> str:
    """The part of a cleaned barcode the analysis reads: its first ``max_nucleotides``, trailing Ns the cut
    exposes trimmed; ``clean`` itself (the same object) when it is not longer."""
    if max_nucleotides is not None and len(clean) > max_nucleotides:
        return clean[:max_nucleotides].rstrip("N")
    return clean


def barcode_as_submitted(spec: Specimen) -> str | None:
    """``spec``'s barcode as it was submitted (cleaned, not cut), or None when it has no barcode.

    Readers keep the submitted read in ``Specimen.submitted_barcode``; it stands only while the analysed
    ``dna_barcode`` is still its start (its cut, :func:`cut_barcode`). A specimen built in code, or one whose
    barcode code replaced since (the demo drops a share to simulate failed sequencing), has its
    ``dna_barcode`` as the barcode it was given: that is what was submitted.
    """
    analysed = spec.dna_barcode
    if not analysed:
        return None
    full = spec.submitted_barcode
    return full if full is not None and full.startswith(analysed) else analysed


def barcode_problems(raw: str, *, min_length: int = MIN_BARCODE_LENGTH) -> list[tuple[str, str]]:
    """(kind, reason) for a raw barcode cell; empty list when it is usable."""
    problems: list[tuple[str, str]] = []
    stripped = _remove_gaps(raw).upper()
    if len(stripped) > MAX_RAW_BARCODE_LENGTH:
        return [(LONG_BARCODE, f"barcode is {len(stripped):,} characters long, more than the "
                               f"{MAX_RAW_BARCODE_LENGTH:,} of any COI barcode (a genome, or lines run together?)")]
    first_bad = _NON_IUPAC.search(stripped)
    if first_bad is not None:
        bad = sorted({c for c in stripped if c not in IUPAC})
        pos = first_bad.start()
        shown = ", ".join(repr(c) for c in bad[:8])
        problems.append((BARCODE_CHARS, f"barcode has characters outside IUPAC: {shown} (first at position {pos + 1})"))
    trimmed = stripped.strip("N")
    if len(trimmed) < min_length:
        problems.append(
            (SHORT_BARCODE, f"barcode is {len(trimmed)} nt after trimming N runs, shorter than {min_length}")
        )
    return problems


def check_image(path: Path) -> tuple[str, str] | None:
    """(kind, reason) when ``path`` is missing or not a readable image, else None.

    ``Image.verify`` checks the file structure without decoding every pixel, so it
    is cheap enough to run on every image of a collection; a truncated JPEG is
    caught by a full ``load`` afterwards.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        return IMAGE_MISSING, f"image file {path} does not exist"
    try:
        # A decompression bomb (a small file that decodes to gigapixels) is a hostile
        # photo, not a reason to fail the collection: PIL's warning zone (over
        # MAX_IMAGE_PIXELS) is refused too, so nothing near the limit is ever decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return IMAGE_UNREADABLE, f"image file {path} is refused: {exc}"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError) as exc:
        return IMAGE_UNREADABLE, f"image file {path} is not a readable image ({exc})"
    return None


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """One input record that was set aside, with everything needed to find and fix it."""

    file: str
    line: int | None
    processid: str | None
    kind: str
    reason: str
    raw: str = ""

    @property
    def message(self) -> str:
        """``file:line (processid 'X'): reason`` — the one-line form the CLI prints."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.processid:
            where += f" (processid {quoted(self.processid)})"
        return f"{where}: {self.reason}"

    @property
    def whole_file(self) -> bool:
        """True for a problem of the file itself (``FILE_PROBLEMS``): no record was set aside by it."""
        return self.kind in FILE_PROBLEMS

    @property
    def photo_only(self) -> bool:
        """True when only the record's photo was set aside (the specimen was kept without it)."""
        return self.reason.startswith(PHOTO_SET_ASIDE)


def count_set_aside(records: Iterable[QuarantinedRecord]) -> tuple[int, int]:
    """``(records set aside whole, photos set aside from kept records)`` of a quarantine; a problem of the file
    itself (a gzip cut short) is neither: it set no record aside, and counting it made "0 of 197 specimens" of a
    file that held 196."""
    rows = photos = 0
    for r in records:
        if r.photo_only:
            photos += 1
        elif not r.whole_file:
            rows += 1
    return rows, photos


QUARANTINE_COLUMNS: tuple[str, ...] = ("file", "line", "processid", "kind", "reason", "raw")


QUARANTINE_HEADER = ",".join(QUARANTINE_COLUMNS)
#: A raw record longer than this is cut in the report (file and line still point at all of it).
MAX_RAW_IN_REPORT = 20_000


def shorten_raw(raw: str) -> str:
    """``raw`` cut to :data:`MAX_RAW_IN_REPORT` characters, saying how much was left out."""
    if len(raw) <= MAX_RAW_IN_REPORT:
        return raw
    return raw[:MAX_RAW_IN_REPORT] + f"…[{len(raw) - MAX_RAW_IN_REPORT:,} more characters; see the file and line]"


def is_quarantine_report(path: Path) -> bool:
    """True when ``path`` is a quarantine report biodiscover wrote (its first line is our header)."""
    try:
        with Path(path).open("rb") as fh:
            first = fh.readline(4096)  # pragma: no mutate a line this long is never the ~100-byte header
    except OSError:
        return False
    return first.rstrip(b"\r\n") == QUARANTINE_HEADER.encode()


_INPUT_SUFFIXES = (".gz", ".csv", ".tsv", ".txt", ".fasta", ".fa", ".fas", ".fna")


def _input_stem(name: str) -> str:
    """``name`` without its input suffixes (``plate.csv.gz`` -> ``plate``): the default report's stem."""
    stripped = True
    while stripped:
        stripped = False
        for suffix in _INPUT_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name, stripped = name[: -len(suffix)], True
    return name or "input"


def report_written_for_another_input(report: Path, source: Path) -> str | None:
    """The other input whose quarantine report ``report`` is, or None when it is free for ``source``'s.

    ``plate.csv.gz`` and ``plate.fasta.gz`` (or ``plate.csv`` and ``plate.tsv``)
    share the default name ``plate.quarantine.csv``; replacing the first's report
    with the second's would lose the record of what the first set aside. The report
    says which input it was written for: its ``file`` column names the file of each
    row. A row from another file of the same stem, that is neither ``source`` nor
    inside it (a dataset root, an image folder), is another input's. A photo from
    ``--images`` is named by its own file (``<processid>.jpg``) and does not count:
    its stem is not the input's. A file that is not a biodiscover report is None
    here; :func:`check_output_path` refuses that one. Both sides are compared
    resolved (``..`` collapsed, symbolic links followed): ``sub/../plate.csv`` is
    ``plate.csv``, the same input, whose report this is.
    """
    source = real_place(Path(source))
    stem = _input_stem(source.name)
    if not is_quarantine_report(report):
        return None
    try:
        with Path(report).open(encoding="utf-8", errors="replace", newline="") as fh:
            for row in csv.DictReader(fh):
                cell = row.get("file") or ""
                other = real_place(Path(cell))
                if (not cell or other == source or source in other.parents
                        or _input_stem(other.name) != stem):
                    continue
                return str(other)
    except (OSError, csv.Error):
        return None
    return None


def quarantine_path_for(source: Path, *, fallback: Path | None = None) -> Path:
    """Where the quarantine report of ``source`` goes by default: beside it, as an absolute path.

    ``<folder of source>/<name>.quarantine.csv``, where the rows can be fixed; if
    that folder is not writable (a read-only share), ``fallback`` (the database's
    folder), then the current directory. Never silently the current directory
    when the input's folder would do, and always printed in full by the caller.
    When that file already holds the report of another input of the same name
    (``plate.csv`` beside ``plate.fasta``: see :func:`report_written_for_another_input`),
    this input's report is ``<full input name>.quarantine.csv``
    (``plate.fasta.quarantine.csv``), so neither record is lost; the single-input
    case keeps the short name. Should that one be another input's too (two
    ``plate.csv`` from read-only folders, both sent to the current directory), the
    run is refused (:class:`~biodiscover.storage.errors.InputError`) rather than
    replace it. The path is resolved (``..`` collapsed, links followed), as the
    reader names the input in the report (:class:`~biodiscover.storage.collections.CollectionReader`),
    so one input has one report however it was spelled.
    """
    import os

    from biodiscover.storage.errors import InputError

    source = real_place(Path(source))
    names = [f"{_input_stem(source.name)}.quarantine.csv", f"{source.name}.quarantine.csv"]
    folders = [source.parent] + ([real_place(Path(fallback))] if fallback is not None else []) + [Path.cwd()]
    folder = next((f for f in folders if f.is_dir() and os.access(f, os.W_OK | os.X_OK)), folders[0])
    other = None
    for name in names:
        other = report_written_for_another_input(folder / name, source)
        if other is None:
            return folder / name
    raise InputError(f"{folder / names[-1]}: holds the quarantine report of {other}, not of {source}; move or "
                     "rename that report, then run again")


def real_place(path: Path) -> Path:
    """``path`` as the file system reaches it: absolute, ``..`` and links followed (``os.path.realpath``, which
    never raises). Why: two outputs, or an output and an input, compared as ``absolute()`` paths pass under two
    spellings (``d`` and ``sub/../d``, a linked folder), and with --force one replaced the other (e34 attack E2)."""
    import os

    return Path(os.path.realpath(path))


def check_output_path(path: Path, *, what: str, force: bool = False,
                      ours: Callable[[Path], bool] | None = None, inputs: Iterable[Path | None] = (),
                      others: Mapping[str, Path | None] | None = None, new_folder: bool = False) -> Path:
    """Refuse an output path before any work: an input, another output, a folder, a missing or unwritable
    place, or someone else's file.

    ``inputs``: what the command reads; an output there is refused even with ``force`` (``triage --results
    in.csv --force`` replaced the user's collection with its results: e34 attack O2, as ``synth`` refused since
    e31 review F26). ``others``: the command's other outputs by what they are (``{"quarantine report": …}``);
    one file cannot be both (``--results in4.quarantine.csv`` overwrote the only record of the rows set aside:
    e34 attack O1). Both compared as real paths (:func:`real_place`). The file's folder must exist, as for
    ``export``, unless ``new_folder`` (a bundle's report, whose folder the build makes): triage found a missing
    one only after the whole run (e34 attack O3). An existing file is replaced only with ``force`` or when
    ``ours(path)`` says biodiscover wrote it (re-running a command replaces its own report, never a user's
    spreadsheet that happens to have the name). Raises :class:`InputError`.
    """
    from biodiscover.storage.errors import InputError

    path = Path(path)
    place = real_place(path)
    if any(given is not None and real_place(given) == place for given in inputs):
        raise InputError(f"{path}: is the input; give the {what} another name (the input is kept as it is)")
    for other, given in (others or {}).items():
        if given is not None and real_place(given) == place:
            raise InputError(f"{path}: is also where the {other} goes; give the {what} another name")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file path for the {what}")
    if path.is_symlink() and not force:
        raise InputError(f"{path}: is a symbolic link; refusing to write the {what} through it (use --force)")
    if path.exists() and not force and not (ours is not None and ours(path)):
        raise InputError(f"{path}: already exists and was not written by biodiscover; "
                         f"use --force to replace it or choose another path for the {what}")
    problem = unwritable_place(path, new_folder=new_folder)
    if problem is not None:
        raise InputError(f"{path}: cannot write the {what}: {problem}")
    return path


def unwritable_place(path: Path, *, new_folder: bool = True) -> str | None:
    """Why nothing can be written at ``path`` (``folder X is not writable``), or None when it can.

    The nearest folder that exists above ``path`` is the one that must take the
    new file (and any folders still to make). One probe for every output:
    :func:`check_output_path` for a file, ``build-reference`` for a bundle folder
    (given a path inside the bundle), so each names the thing the user asked for.
    ``new_folder`` False: ``path``'s own folder must exist already (``folder X does not exist``), the rule of
    triage, validate and export, which never make one (e34 attack O3).
    """
    import os

    path = Path(path)
    probe = path.parent if str(path.parent) else Path(".")
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder" if probe.is_file() else f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"folder {probe} is not writable"
    if not new_folder and not path.absolute().parent.is_dir():
        return f"folder {path.parent} does not exist"
    return None


def write_quarantine(records: Iterable[QuarantinedRecord], path: Path, *, force: bool = False) -> Path:
    """Write quarantined records to a CSV, atomically (one row each).

    Every text cell is made safe for a spreadsheet and a terminal: control
    characters are shown as ``\\xNN`` escapes and a cell starting with ``= + - @``
    gets a leading ``'`` (:mod:`biodiscover.storage.safetext`, as the exports do). The
    file is written to a temporary name and renamed, so a crash never leaves half a
    report. An existing file is replaced only when biodiscover wrote it or with
    ``force``; every failure is one :class:`~biodiscover.storage.errors.InputError`.
    """
    import os
    import secrets

    from biodiscover.storage.errors import InputError
    from biodiscover.storage.safetext import safe_text_cell

    path = Path(path)
    # the folder is made here (a library call, or build-reference's bundle); the verbs refused a missing one first
    check_output_path(path, what="quarantine report", force=force, ours=is_quarantine_report, new_folder=True)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_name = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial"))  # pragma: no mutate a temp name
        # os.open with 0o666 applies the user's umask (mkstemp would force 0600)
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(QUARANTINE_COLUMNS)
            for r in records:
                writer.writerow([safe_text_cell(r.file), "" if r.line is None else r.line,
                                 safe_text_cell(r.processid or ""), r.kind, safe_text_cell(r.reason),
                                 safe_text_cell(shorten_raw(r.raw))])
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise InputError(f"{path}: cannot write the quarantine report ({exc.strerror or exc})") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return path



@dataclass
class ValidationSummary:
    """Counts for the report: rows seen, rows kept, and problems per kind.

    A row with two problems counts once in ``quarantined`` and once under each kind.
    A kept row whose photo was set aside counts in ``ok``, in ``photos_set_aside`` and
    under its photo's problem kind.
    """

    rows: int = 0
    ok: int = 0
    quarantined: int = 0
    photos_set_aside: int = 0
    problems: Counter[str] = field(default_factory=Counter)

    def add_ok(self) -> None:
        self.rows += 1
        self.ok += 1

    def add_quarantined(self, kinds: Iterable[str], *, is_row: bool = True) -> None:
        if is_row:
            self.rows += 1
            self.quarantined += 1
        for k in kinds:
            self.problems[k] += 1

    def add_photo_set_aside(self, kind: str) -> None:
        """A kept row (counted with :meth:`add_ok`) whose photo was set aside."""
        self.photos_set_aside += 1
        self.problems[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "ok": self.ok,
            "quarantined": self.quarantined,
            "photos_set_aside": self.photos_set_aside,
            "problems": {k: self.problems.get(k, 0) for k in PROBLEM_KINDS if self.problems.get(k, 0)},
        }


_SPECIMEN_FIELDS: dict[str, str] = {
    col: Specimen.field_for_column(col) for col in BIOSCAN_COLUMNS
}
_SPECIMEN_FIELDS["image_path"] = "image_path"
#: Cells holding a file path: bounded by the file system, not by :data:`MAX_TEXT_CELL`.
_PATH_COLUMNS = frozenset({"image_path", "image_file"})


def _specimen(values: Mapping[str, Any], *, source: str, line: int | None) -> Specimen:
    """Build a Specimen from already-typed cells (faster than ``Specimen.from_row``)."""
    kwargs: dict[str, Any] = {}
    for col, value in values.items():
        name = _SPECIMEN_FIELDS.get(col)
        if name is None or value is None or value == "":
            continue
        kwargs[name] = value
    return Specimen(**kwargs, source=source, line=line)


def _parse_float(value: str) -> float | None:
    v = float(value)
    if math.isnan(v):
        return None
    return v


#: what two rows of one processid are compared on, part by part (the reason names the parts that differ)
_DISAGREEMENT_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("barcodes", ("dna_barcode",)),
    ("taxonomy", ("taxon", *TAXONOMY_COLUMNS)),
)
_PART_COLUMNS = frozenset(c for _, cols in _DISAGREEMENT_PARTS for c in cols)
_PART_NAMES = (*(name for name, _ in _DISAGREEMENT_PARTS), "other columns")


def _row_parts(row: Mapping[str, str]) -> tuple[int, ...]:
    """One hash per part of a row (its barcode, its taxonomy, every other specimen column): what two rows of one
    processid are compared on, without keeping either row."""
    cells = {k: (v or "").strip() for k, v in row.items() if k in _SPECIMEN_FIELDS or k == "image_file"}
    if cells.get("dna_barcode"):  # the sequence, not its writing: 'acg-t' and 'ACGT' are one barcode
        cells["dna_barcode"] = clean_barcode(cells["dna_barcode"], None)
    parts: list[tuple[object, ...]] = [tuple(cells.get(c, "") for c in cols) for _, cols in _DISAGREEMENT_PARTS]
    parts.append(tuple(sorted((k, v) for k, v in cells.items() if k not in _PART_COLUMNS and v)))
    return tuple(hash(p) for p in parts)


def disagreeing_repeats(rows: Iterable[tuple[int | None, Mapping[str, str]]]) -> dict[str, str]:
    """The processids given more than once by rows that differ, each with the reason every one of its rows is set
    aside (``processid 'X' is given twice with different barcodes (lines 11 and 12): both set aside``).

    Rows agree when their cells do, barcodes compared as sequences (case and gaps aside).
    Why all of them: which of two rows that disagree is right cannot be known from the file. Keeping the first
    as the duplicate rule did made whichever row came first the specimen, silently, and the database then kept
    that barcode as the current one (e34 attack Q2). An exact repeat (the same cells) is not here: the rule of
    :meth:`RowValidator.validate` sets the later one aside as a duplicate. The rows are read in a first pass by the
    reader (:class:`~biodiscover.storage.collections.CollectionReader`); only a hash per part of each processid's
    first row is kept, and the rows of the processids that disagree.
    """
    first: dict[str, tuple[int | None, tuple[int, ...]]] = {}
    lines: dict[str, list[int | None]] = {}
    differ: dict[str, set[str]] = {}
    for line, row in rows:
        pid = (row.get("processid") or "").strip()
        if not pid:
            continue
        parts = _row_parts(row)
        if pid not in first:
            first[pid] = (line, parts)
            continue
        line0, parts0 = first[pid]
        lines.setdefault(pid, [line0]).append(line)
        differ.setdefault(pid, set()).update(n for n, a, b in zip(_PART_NAMES, parts0, parts) if a != b)
    reasons: dict[str, str] = {}
    for pid, what in differ.items():
        if not what:
            continue  # exact repeats: the later ones are duplicates
        at = [str(n) for n in lines[pid] if n is not None]
        where = f" (lines {', '.join(at[:-1])} and {at[-1]})" if len(at) > 1 else ""
        times = "twice" if len(lines[pid]) == 2 else f"{len(lines[pid])} times"
        order = [n for n in _PART_NAMES if n in what]
        shown = " and ".join(order) if order != ["other columns"] else "values in other columns"
        every = "both" if len(lines[pid]) == 2 else "all of them"
        reasons[pid] = f"processid {quoted(pid)} is given {times} with different {shown}{where}: {every} set aside"
    return reasons


class RowValidator:
    """Stateful row checker: remembers processids so duplicates are caught across a file.

    Parameters
    ----------
    images:
        Optional image folder holding ``<processid>.jpg``; a file found there becomes
        the specimen's image (and is checked for readability).
    require_images:
        Quarantine rows whose image cannot be found (``image_missing``); off by
        default because every modality is optional.
    check_images:
        Open each found image with PIL (costs a file read per row).
    max_nucleotides:
        Barcodes are cut to this many nucleotides after cleaning.
    """

    def __init__(
        self,
        *,
        images: Path | None = None,
        require_images: bool = False,
        check_images: bool = True,
        max_nucleotides: int | None = MAX_NUCLEOTIDES,
        min_barcode_length: int = MIN_BARCODE_LENGTH,
        image_resolver: Any = None,
    ) -> None:
        self.images = Path(images) if images is not None else None
        self.require_images = require_images
        self.check_images = check_images
        self.max_nucleotides = max_nucleotides
        self.min_barcode_length = min_barcode_length
        #: callable(row) -> Path | None: where a row's image should be (dataset roots).
        self.image_resolver = image_resolver
        self.seen: dict[str, int | None] = {}
        #: processid -> why every row of it is set aside (:func:`disagreeing_repeats`); the reader fills it
        self.disagreeing: dict[str, str] = {}
        self.summary = ValidationSummary()

    # The one place a row is judged.
    def validate(
        self,
        row: Mapping[str, Any],
        *,
        source: str,
        line: int | None,
        raw: str = "",
        extra_problems: Iterable[tuple[str, str]] = (),
    ) -> tuple[Specimen | None, QuarantinedRecord | None]:
        """Check one row (BIOSCAN column names, string cells).

        Returns ``(specimen, None)`` for a valid row, ``(None, quarantined)`` for a row
        set aside whole, and ``(specimen, photo)`` for a row kept without its photo: a
        barcoded record whose photo is unreadable, corrupt or a decompression bomb is
        kept on its barcode (no ``image_path``) and ``photo`` (reason starting with
        :data:`PHOTO_SET_ASIDE`) reports the photo alone. A record whose only data is
        the bad photo, or that must have a photo (``require_images``), is set aside whole.
        """
        problems: list[tuple[str, str]] = list(extra_problems)
        cells = {k: ("" if v is None else str(v).strip()) for k, v in row.items() if k is not None}
        pid = cells.get("processid", "")
        if not pid:
            problems.append((EMPTY_PROCESSID, "processid is empty"))
        elif pid in self.disagreeing:
            problems.append((DUPLICATE_PROCESSID, self.disagreeing[pid]))
        elif pid in self.seen:
            first = self.seen[pid]
            at = f" (first seen at line {first})" if first is not None else ""
            problems.append((DUPLICATE_PROCESSID, f"processid {quoted(pid)} is a duplicate{at}"))

        barcode_raw = cells.get("dna_barcode", "")
        if barcode_raw:
            problems.extend(barcode_problems(barcode_raw, min_length=self.min_barcode_length))
        for col, value in cells.items():
            if value and col != "dna_barcode" and (col in _SPECIMEN_FIELDS or col == "image_file"):
                bad_chars = control_characters(value)
                if bad_chars:  # a NUL in a processid must never reach a FASTA header or an export
                    shown = ", ".join(repr(c) for c in bad_chars[:4])
                    problems.append((CONTROL_CHARS, f"{col} holds control characters ({shown})"))
                if len(value) > MAX_TEXT_CELL and col not in _PATH_COLUMNS:
                    problems.append((LONG_VALUE, f"{col} is {len(value):,} characters long, more than the "
                                                 f"{MAX_TEXT_CELL} a text cell may hold (a note in the wrong column?)"))

        values: dict[str, Any] = dict(cells)
        for col, lo, hi in (("coord-lat", -90.0, 90.0), ("coord-lon", -180.0, 180.0)):
            v = cells.get(col, "")
            if not v:
                continue
            try:
                f = _parse_float(v)
            except ValueError:
                problems.append((COORDINATES, f"{col} {v!r} is not a number"))
                continue
            if f is not None and not lo <= f <= hi:
                problems.append((COORDINATES, f"{col} {f:g} is outside [{lo:g}, {hi:g}]"))
            values[col] = f
        for col in _FLOAT_COLUMNS:
            v = cells.get(col, "")
            if v:
                try:
                    values[col] = _parse_float(v)
                except ValueError:
                    problems.append((BAD_VALUE, f"{col} {v!r} is not a number"))
        for col in _INT_COLUMNS:
            v = cells.get(col, "")
            if v:
                try:
                    f = float(v)
                    if not f.is_integer():
                        raise ValueError
                    values[col] = int(f)
                except ValueError:
                    problems.append((BAD_VALUE, f"{col} {v!r} is not an integer"))

        split = cells.get("split", "")
        if split and split not in SPLITS:
            problems.append((UNKNOWN_SPLIT, f"split {split!r} is not one of {', '.join(SPLITS)}"))

        image: Path | None = None
        photo_bad: tuple[str, str] | None = None
        explicit = cells.get("image_path", "") or cells.get("image_file", "")
        if explicit:
            image = self._resolve_explicit(Path(explicit), source)
        elif pid and self.image_resolver is not None:
            image = self.image_resolver(cells)
        elif pid and self.images is not None:
            cand = self.images / f"{pid}.jpg"
            if cand.is_file():
                image = cand
        if image is not None:
            if not image.is_file():
                if explicit or self.require_images:
                    problems.append((IMAGE_MISSING, f"image file {image} does not exist"))
                image = None
            elif self.check_images:
                bad = check_image(image)
                if bad is not None and barcode_raw and not self.require_images:
                    photo_bad, image = bad, None  # the barcode carries the specimen; the photo alone is set aside
                elif bad is not None:
                    problems.append(bad)
        if image is None and self.require_images and pid and not any(k == IMAGE_MISSING for k, _ in problems):
            where = self.images if self.images is not None else "the dataset's image folder"
            problems.append((IMAGE_MISSING, f"no image for {quoted(pid)} in {where}"))
        if not barcode_raw and image is None and not problems:
            problems.append((NO_DATA, "record has neither a DNA barcode nor an image"))

        if pid and pid not in self.seen:
            self.seen[pid] = line
        if problems:
            if photo_bad is not None:  # set aside whole for another reason: the photo's problem is named too
                problems.append(photo_bad)
            self.summary.add_quarantined(k for k, _ in problems)
            rec = QuarantinedRecord(
                file=source,
                line=line,
                processid=pid or None,
                kind=problems[0][0],
                reason="; ".join(r for _, r in problems),
                raw=raw,
            )
            log.debug("quarantined %s", rec.message)
            return None, rec

        submitted: str | None = None
        if barcode_raw:
            submitted = clean_barcode(barcode_raw, None)  # kept whole for the exports (barcode_as_submitted)
            values["dna_barcode"] = cut_barcode(submitted, self.max_nucleotides)
        if image is not None:
            values["image_path"] = image
        else:
            values.pop("image_path", None)
        specimen = _specimen(values, source=source, line=line)  # columns that are no Specimen field (image_file) drop
        if submitted:
            specimen.submitted_barcode = submitted
        self.summary.add_ok()
        if photo_bad is None:
            return specimen, None
        self.summary.add_photo_set_aside(photo_bad[0])
        photo = QuarantinedRecord(file=source, line=line, processid=pid or None, kind=photo_bad[0],
                                  reason=f"{PHOTO_SET_ASIDE}: {photo_bad[1]}", raw=raw)
        log.debug("photo set aside %s", photo.message)
        return specimen, photo

    def _resolve_explicit(self, p: Path, source: str) -> Path:
        """A relative image path is relative to the metadata file's folder, else to --images."""
        if p.is_absolute():
            return p
        base = Path(source).parent if source else Path(".")
        if (base / p).exists() or self.images is None:
            return base / p
        if (self.images / p).exists():
            return self.images / p
        if (self.images / p.name).exists():
            return self.images / p.name
        return base / p

    def reject(self, *, source: str, line: int | None, kind: str, reason: str, raw: str = "",
               processid: str | None = None) -> QuarantinedRecord:
        """Quarantine a row that could not even be split into cells (counted as a row)."""
        self.summary.add_quarantined([kind])
        return QuarantinedRecord(file=source, line=line, processid=processid, kind=kind, reason=reason, raw=raw)

    def file_problem(self, *, source: str, line: int | None, kind: str, reason: str) -> QuarantinedRecord:
        """A problem with the file itself (e.g. truncated gzip): counted, not a row."""
        self.summary.add_quarantined([kind], is_row=False)
        return QuarantinedRecord(file=source, line=line, processid=None, kind=kind, reason=reason)
