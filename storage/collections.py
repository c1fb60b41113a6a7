"""New collections: CSV/TSV with any subset of the 23 columns, BOLD FASTA, image folders.

One entry point, :func:`read_collection`, turns whatever a taxonomist hands us
into validated :class:`~biodiscover.storage.records.Specimen` records plus a quarantine of the
rows that break a rule (see :mod:`biodiscover.storage.validation`). :class:`CollectionReader`
is the streaming form for files too big to hold: it yields specimens one by one
and hands quarantined rows to a callback.

Files are read as bytes and decoded line by line. A file that is not UTF-8 (a
spreadsheet saved as Latin-1/cp1252) is refused before anything is read, naming its
first offending line, rather than losing each accented row to the quarantine; a gzip
file cut short keeps every row read before the cut and reports how many.
"""

from __future__ import annotations

import csv
import gzip
import logging
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal, Mapping, NamedTuple, Sequence, TypeVar

from biodiscover.storage.errors import InputError
from biodiscover.storage.fasta import FASTA_SUFFIXES, iter_fasta_lines
from biodiscover.storage.layout import find_image_dir, find_metadata, image_path, is_dataset_root, wanted_splits
from biodiscover.storage.records import BIOSCAN_COLUMNS, SPLITS, Specimen, quoted
from biodiscover.storage.textlines import TruncatedInputError, first_non_utf8_line, open_text_lines, raw_lines
from biodiscover.storage.validation import (
    MALFORMED_ROW,
    NON_UTF8,
    TRUNCATED_GZIP,
    QuarantinedRecord,
    RowValidator,
    ValidationSummary,
    disagreeing_repeats,
    real_place,
    write_quarantine,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: a field may be as long as a record (lines are bounded by textlines.MAX_LINE_BYTES, records by MAX_RECORD_LINES)
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)  # pragma: no mutate any limit past 50 lines of 16 MiB reads the same
csv.field_size_limit(_FIELD_LIMIT)

Format = Literal["csv", "tsv", "fasta"]
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")

#: Other spellings of our columns (BOLD public TSV downloads, hand-made sheets).
COLUMN_ALIASES: dict[str, str] = {
    "process_id": "processid",
    "sample_id": "sampleid",
    "nucleotides": "dna_barcode",
    "sequence": "dna_barcode",
    "barcode": "dna_barcode",
    "bin_uri": "dna_bin",
    "bin": "dna_bin",
    "lat": "coord-lat",
    "lon": "coord-lon",
    "latitude": "coord-lat",
    "longitude": "coord-lon",
    "coord_lat": "coord-lat",
    "coord_lon": "coord-lon",
    "province/state": "province_state",
    "phylum_name": "phylum",
    "class_name": "class",
    "order_name": "order",
    "family_name": "family",
    "subfamily_name": "subfamily",
    "genus_name": "genus",
    "species_name": "species",
    "image": "image_path",
}
#: Columns we read besides the 23 BIOSCAN ones.
EXTRA_COLUMNS: tuple[str, ...] = ("image_path", "image_file")
#: Physical lines one record may span (a quoted multi-line note) before it is taken for a stray quote.
MAX_RECORD_LINES = 50


def _first_cell(line: str, delimiter: str, index: int) -> str | None:
    """The ``index``-th cell of one physical line split naively (to name a quarantined line's processid)."""
    parts = line.rstrip("\r\n").split(delimiter)
    if index < len(parts):
        value = parts[index].strip().strip('"').strip()
        return value or None
    return None


# -- opening and sniffing -------------------------------------------------------------
def _head(path: Path, n: int = 8192) -> bytes:
    """First bytes of the (decompressed) file, for sniffing."""
    with path.open("rb") as fh:
        magic = fh.read(4)  # pragma: no mutate only magic[:2] (gzip) is compared: any read of 2 or more is the same
    try:
        if magic[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as gz:
                return gz.read(n)
        with path.open("rb") as fh:
            return fh.read(n)
    except (EOFError, OSError, gzip.BadGzipFile):
        with path.open("rb") as fh:
            return fh.read(n)


def check_input(path: Path) -> Path:
    """Refuse an input that is missing or unreadable, in one line, before any output is prepared."""
    import os

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    need = os.R_OK | (os.X_OK if path.is_dir() else 0)
    if not os.access(path, need):
        raise InputError(f"{path}: not readable by you (permission denied); check its permissions")
    return path


def _check_readable_text(path: Path) -> None:
    """Raise one clear InputError when ``path`` is missing, a directory or binary."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a CSV/TSV/FASTA file")
    with path.open("rb") as fh:
        magic = fh.read(6)  # pragma: no mutate xz's magic is FD 37 7A 58 5A 00; only prefixes of it are tested
    if magic.startswith(b"PK\x03\x04"):
        raise InputError(f"{path}: is a zip archive, not a CSV/TSV/FASTA file; extract it first")
    if magic.startswith(b"BZh") or magic.startswith(b"\xfd7zXZ"):
        raise InputError(f"{path}: compressed with bzip2/xz; only plain or gzip (.gz) files are read")
    head = _head(path)
    if _looks_utf16(head):
        raise InputError(f"{path}: UTF-16 text (Excel's 'Unicode Text'?); save it as UTF-8 (CSV UTF-8) and try again")
    if _looks_binary(head):
        raise InputError(f"{path}: binary content, not a CSV/TSV/FASTA text file")


_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 12, 13))


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 text: a UTF-16 byte-order mark, or (without one) a NUL as every other byte of mostly ASCII text.
    Why: Excel's "Unicode Text" and some LIMS exports write it, and it read as "binary content", which sent the
    user looking for a broken file rather than re-saving it."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    pairs = len(head) // 2
    if pairs < 8:
        return False
    even, odd = head[0 : 2 * pairs : 2], head[1 : 2 * pairs : 2]
    return any(high.count(0) >= 0.9 * pairs and low.count(0) == 0  # little-endian, big-endian
               for low, high in ((even, odd), (odd, even)))


def _looks_binary(head: bytes) -> bool:
    """Binary if the first line holds a NUL or control bytes are more than 1% of the head.

    A stray NUL in one row of a real table is a bad row (quarantined), not a
    reason to reject the file.
    """
    if not head:
        return False
    first_line = head.splitlines()[0]  # ended by "\n", "\r\n" or an old Mac's lone "\r"
    if b"\x00" in first_line:
        return True
    controls = len(head) - len(head.translate(None, _CONTROL))
    return controls > len(head) // 100


def sniff_format(path: Path) -> Format:
    """``fasta``, ``tsv`` or ``csv`` from the content, the suffix breaking ties.

    Content wins because a TSV saved as ``.csv`` is common; a file whose first
    line is neither a FASTA header nor a delimited header naming ``processid`` is
    rejected with one clear error.
    """
    path = Path(path)
    _check_readable_text(path)
    head = _head(path)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    text = head.decode("utf-8", errors="replace")
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if first.startswith(">") or (not first and suffix in FASTA_SUFFIXES):
        return "fasta"
    tabs, commas = first.count("\t"), first.count(",")
    if tabs > commas:
        return "tsv"
    if commas > tabs:
        return "csv"
    return "tsv" if suffix in (".tsv", ".tab") else "csv"


def _normalise_header(cells: list[str]) -> list[str]:
    out = []
    for c in cells:
        name = c.strip().strip('"').strip()
        low = name.lower()
        if name in BIOSCAN_COLUMNS or name in EXTRA_COLUMNS:
            out.append(name)
        elif low in BIOSCAN_COLUMNS or low in EXTRA_COLUMNS:
            out.append(low)
        else:
            out.append(COLUMN_ALIASES.get(low, name))
    return out


#: Separators a spreadsheet may save its "CSV" with that the readers do not split on (they read ``,`` and tab).
OTHER_SEPARATORS = (";", "|")


def header_found(cells: Sequence[str], delimiter: str) -> str:
    """``(found 'a', 'b', …)`` for a header without processid, with the fix when another separator names it.

    Many European spreadsheets save "CSV" with ``;``: the header is then one cell,
    ``'processid;sampleid;…'``, and the user has to spot the separator in the quote.
    Both readers (collections and the BIOSCAN-5M reference) say it this way.
    """
    shown = ", ".join(quoted(c) for c in cells[:6])
    line = delimiter.join(cells)
    for sep in OTHER_SEPARATORS:
        if "processid" in _normalise_header(line.split(sep)):
            return f"(found {shown}): are the columns separated by {sep!r}? save the file comma- or tab-separated"
    return f"(found {shown})"


def index_images(directory: Path) -> dict[str, Path]:
    """``processid → image path`` for ``<processid>.jpg`` (also .jpeg/.png) in a folder."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: image folder does not exist")
    index: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in index and index[p.stem].suffix.lower() == ".jpg":
                continue
            index[p.stem] = p
    return index


# -- the reader -----------------------------------------------------------------------
class _TableRow(NamedTuple):
    """One record of a table: its cells by column (None: it could not be split into cells, set aside whole with
    ``problems``), the text it was read from, and the problems found in reading it."""

    line: int
    row: dict[str, str] | None
    raw: str
    problems: list[tuple[str, str]]
    processid: str | None


def _repeats_that_differ(path: Path, delimiter: str, pid_col: int) -> set[str]:
    """The processids two physical lines of a table give with other text: a quick first read (undecoded bytes,
    split naively as :func:`_first_cell` does) whose few candidates
    :func:`~biodiscover.storage.validation.disagreeing_repeats` then judges on their rows read whole. Why not read
    every row whole twice: the full read of 98,000 rows took 5 s more (37 %); this scan takes a fraction of it."""
    sep = delimiter.encode()
    first: dict[bytes, int] = {}
    found: set[bytes] = set()
    lines = raw_lines(path)
    next(lines, None)  # the header
    for raw in lines:
        cells = raw.split(sep, pid_col + 1)
        if len(cells) <= pid_col:
            continue
        digest = hash(raw.rstrip(b"\r\n"))
        if first.setdefault(cells[pid_col].strip().strip(b'"').strip(), digest) != digest:
            found.add(cells[pid_col].strip().strip(b'"').strip())
    return {pid.decode("utf-8", "replace") for pid in found}


def _until_truncated(items: Iterator[_T]) -> Iterator[_T]:
    """``items`` up to a truncated gzip's end: the first pass stops there, the second says so."""
    try:
        yield from items
    except TruncatedInputError:
        return


RowFilter = Callable[[Mapping[str, str]], bool]


@dataclass
class CollectionReader:
    """Streaming reader of one collection: iterate for valid specimens.

    Quarantined rows are appended to :attr:`quarantine` (and passed to
    ``on_quarantine`` if given, e.g. to stream them to disk for a huge file and
    set ``keep_quarantine=False``). :attr:`summary` counts rows and problem kinds
    as the iteration goes.
    """

    path: Path | None
    images: Path | None = None
    #: required: every constructor decides it (a default nobody used was an untestable line)
    require_images: bool = field(kw_only=True)
    check_images: bool = True
    row_filter: RowFilter | None = None
    image_resolver: Callable[[Mapping[str, str]], Path | None] | None = None
    on_quarantine: Callable[[QuarantinedRecord], None] | None = None
    keep_quarantine: bool = True
    quarantine: list[QuarantinedRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        # absolute: the photographs' paths travel with the specimens into the database and the exports, and a
        # relative one was later read against whatever folder `biodiscover review` was started in ("missing file").
        # Resolved, not only absolute: every record's location (the report's `file` column, each warning line) names
        # the input normalised, so `sub/../plate.csv` or a linked folder is the same `plate.csv` and keeps one report
        self.path = real_place(Path(self.path)) if self.path is not None else None
        self.images = real_place(Path(self.images)) if self.images is not None else None
        self._image_index: dict[str, Path] | None = index_images(self.images) if self.images is not None else None
        resolver = self.image_resolver
        if resolver is None and self._image_index is not None:
            index = self._image_index

            def resolver(cells: Mapping[str, str]) -> Path | None:
                return index.get(cells.get("processid", ""))

        self.validator = RowValidator(
            images=self.images,
            require_images=self.require_images,
            check_images=self.check_images,
            image_resolver=resolver,
        )
        self.format: Format | None = None
        self._pid_col = 0  # the processid's column of a table (_peek_header)
        self._stream: Iterator[Specimen] | None = None
        if self.path is not None and not self.path.is_dir():
            self.format = sniff_format(self.path)
            if self.format != "fasta":
                self._peek_header()
            not_utf8 = first_non_utf8_line(self.path)  # the file's problem, not each accented row's
            if not_utf8 is not None:
                raise InputError(f"{self.path}: {not_utf8}")
        elif self.path is not None and self.images is None:
            # A bare image folder is a collection of image-only specimens.
            self.images = self.path
            self._image_index = index_images(self.path)
            if not self._image_index:  # "0 records, exit 0" would hide that the wrong folder was given
                tables = sorted(p.name for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".")
                                and p.name.lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz", *FASTA_SUFFIXES)))
                hint = (f"; give its collection file ({', '.join(tables[:3])}) with --images for the photographs"
                        if tables else "")
                raise InputError(f"{self.path}: a folder without <processid>.jpg/.jpeg/.png images{hint}")
            self.validator.images = self.path
            self.path = None
        elif self.path is not None:
            raise InputError(f"{self.path}: is a directory; give the metadata file and --images DIR")

    @property
    def summary(self) -> ValidationSummary:
        return self.validator.summary

    def _quarantine(self, rec: QuarantinedRecord) -> None:
        if self.keep_quarantine:
            self.quarantine.append(rec)
        if self.on_quarantine is not None:
            self.on_quarantine(rec)

    def __iter__(self) -> Iterator[Specimen]:
        """The reader is single-pass: iterating again continues where it stopped."""
        if self._stream is None:
            self._stream = self._generate()
        return self._stream

    def _generate(self) -> Iterator[Specimen]:
        if self.path is not None:
            src = str(self.path)
            try:
                if self.format == "fasta":
                    yield from self._iter_fasta(src)
                else:
                    yield from self._iter_table(src)
            except TruncatedInputError as exc:
                rec = self.validator.file_problem(
                    source=src,
                    line=exc.lines,
                    kind=TRUNCATED_GZIP,
                    reason=(
                        f"gzip stream ends before its end marker (truncated file?) after line {exc.lines}; "
                        f"the {self.summary.rows} rows read before are kept"
                    ),
                )
                # info, not a warning: the record is in the quarantine, which each command shows as its one
                # `error:` line (a warning here printed the same sentence twice)
                log.info("%s", rec.message)
                self._quarantine(rec)
        yield from self._iter_leftover_images()

    # Rows of a CSV/TSV --------------------------------------------------------------
    def _check_header(self, header_cells: list[str], src: str, delimiter: str) -> list[str]:
        """The normalised header, or one InputError when it cannot be a specimen table."""
        header = _normalise_header(header_cells)
        first_at: dict[str, int] = {}
        for i, name in enumerate(header):
            if name not in BIOSCAN_COLUMNS and name not in EXTRA_COLUMNS:
                continue  # ignored columns may repeat: nothing is read from them
            if name in first_at:  # the row dict would keep the last of the two, silently
                raise InputError(f"{src}: the header (line 1) names column {name!r} twice "
                                 f"(columns {first_at[name] + 1} and {i + 1}); keep one")
            first_at[name] = i
        if "processid" not in header:
            if not any(c.strip() for c in header_cells):  # "(found )" would say nothing
                raise InputError(f"{src}: not a specimen table: the file has no header line (line 1 is blank; "
                                 "the column names, processid among them, go on line 1)")
            raise InputError(f"{src}: not a specimen table: the header (line 1) has no 'processid' column "
                             f"{header_found(header_cells, delimiter)}")
        has_image_col = any(h in header for h in EXTRA_COLUMNS)
        if "dna_barcode" not in header and not has_image_col and self.images is None and self.image_resolver is None:
            raise InputError(
                f"{src}: has no 'dna_barcode' column and no image column; give --images DIR for image-only records"
            )
        return header

    def _peek_header(self) -> None:
        """Check line 1 when the reader is made, so a file that is not a specimen table fails
        before anyone hashes, backs up or starts an ingest for it (not after reading 200 MB)."""
        assert self.path is not None
        src = str(self.path)
        first: tuple[str, str | None] | None = None
        try:
            for _number, text, problem in open_text_lines(self.path):
                first = (text, problem)
                break
        except TruncatedInputError:
            first = None
        if first is None:
            return  # empty (or cut inside line 1): the full read says so
        text, problem = first
        if problem is not None:
            raise InputError(f"{src}: line 1 (the header): {problem}")
        delimiter = "\t" if self.format == "tsv" else ","
        cells = next(csv.reader([text], delimiter=delimiter), [])
        if any("\n" in c or "\r" in c for c in cells):
            raise InputError(f"{src}: line 1 (the header) opens a quoted field that is never closed")
        self._pid_col = self._check_header(cells, src, delimiter).index("processid")

    def _iter_table(self, src: str) -> Iterator[Specimen]:
        """The specimens of a CSV/TSV: its rows (:meth:`_table_rows`) read twice, first for the processids given
        more than once by rows that disagree (:func:`~biodiscover.storage.validation.disagreeing_repeats`: every
        such row is set aside, as which one is right cannot be known), then to validate each row."""
        assert self.path is not None
        maybe = _repeats_that_differ(self.path, "\t" if self.format == "tsv" else ",", self._pid_col)
        if maybe:  # rare: the rows of those processids read whole, and judged
            self.validator.disagreeing = disagreeing_repeats(
                (r.line, r.row) for r in _until_truncated(self._table_rows(src, first_pass=True))
                if r.row is not None and (r.row.get("processid") or "").strip() in maybe)
        for item in self._table_rows(src):
            if item.row is None:
                self._quarantine(self.validator.reject(
                    source=src, line=item.line, kind=item.problems[0][0],
                    reason="; ".join(r for _, r in item.problems), raw=item.raw, processid=item.processid))
                continue
            row = item.row
            if self.row_filter is not None and not item.problems and not self.row_filter(row):
                # not wanted here, but its processid is taken: a later row reusing it is a duplicate
                self.validator.seen.setdefault(row.get("processid", "").strip(), item.line)
                continue
            specimen, rec = self.validator.validate(row, source=src, line=item.line, raw=item.raw,
                                                    extra_problems=item.problems)
            if rec is not None:
                self._quarantine(rec)
            if specimen is not None:  # kept, possibly without its photo (then ``rec`` reports the photo)
                yield specimen

    def _table_rows(self, src: str, *, first_pass: bool = False) -> Iterator[_TableRow]:
        """Rows of a CSV/TSV, one record per physical line unless a quoted field truly spans lines.

        Why not a plain ``csv.reader`` over the file: one stray ``"`` opens a quoted
        field that swallows every following line into one cell (a 49-row file read
        as 4 records). Here a record that spans several physical lines is kept only
        when it has the header's field count and its line breaks sit in columns we
        ignore (a spreadsheet's multi-line note); otherwise its first line is
        quarantined (unclosed quote) and reading resumes at the next physical line.
        A record running past :data:`MAX_RECORD_LINES` lines is cut off the same way,
        so a stray quote near the top of a big file never pulls the rest into memory.
        """
        assert self.path is not None
        delimiter = "\t" if self.format == "tsv" else ","
        lines = iter(open_text_lines(self.path))
        pushback: deque[tuple[int, str, str | None]] = deque()
        consumed: list[tuple[int, str, str | None]] = []

        class _Runaway(Exception):
            """The current record ran past MAX_RECORD_LINES physical lines."""

        def feed() -> Iterator[str]:
            while True:
                if pushback:
                    item = pushback.popleft()
                else:
                    following = next(lines, None)
                    if following is None:
                        return
                    item = following
                consumed.append(item)
                if len(consumed) > MAX_RECORD_LINES:
                    raise _Runaway
                yield item[1]

        def new_reader() -> Iterator[list[str]]:
            return csv.reader(feed(), delimiter=delimiter)

        reader = new_reader()
        try:
            header_cells = next(reader)
        except StopIteration:
            raise InputError(f"{src}: file is empty") from None
        except _Runaway:
            raise InputError(f"{src}: line 1 (the header) opens a quoted field that is never closed") from None
        except csv.Error as exc:
            raise InputError(f"{src}: not a CSV/TSV file ({exc})") from None
        if consumed and consumed[0][2] is not None:
            raise InputError(f"{src}: line 1 (the header): {consumed[0][2]}")
        if len(consumed) > 1 or any("\n" in c or "\r" in c for c in header_cells):
            raise InputError(f"{src}: line 1 (the header) opens a quoted field that is never closed")
        header = self._check_header(header_cells, src, delimiter)
        unknown = [h for h in header if h not in BIOSCAN_COLUMNS and h not in EXTRA_COLUMNS]
        if unknown and not first_pass:
            log.info("%s: ignoring columns %s", src, ", ".join(unknown))
        pid_col = header.index("processid")
        kept_columns = {i for i, h in enumerate(header) if h in BIOSCAN_COLUMNS or h in EXTRA_COLUMNS}
        while True:
            consumed.clear()
            try:
                cells = next(reader)
                broken: str | None = None
            except StopIteration:
                break
            except _Runaway:
                cells, broken = [], (f"a quoted field opened on this line is still open {MAX_RECORD_LINES} lines "
                                     "later (stray '\"'?)")
            except csv.Error as exc:
                cells, broken = [], f"unparseable row ({exc})"
            if not consumed:
                break
            start = consumed[0][0]
            if broken is None and (len(consumed) > 1 or any("\n" in c or "\r" in c for c in cells)):
                spans_ok = len(consumed) > 1 and len(cells) == len(header) and not any(
                    ("\n" in c or "\r" in c) for i, c in enumerate(cells) if i in kept_columns)
                if not spans_ok:
                    broken = ("a quoted field opened on this line is not closed on it (stray '\"'?); "
                              "the line is set aside and reading goes on with the next line")
            if broken is not None:
                first = consumed[0]
                pushback.extendleft(reversed(consumed[1:]))
                reason = broken if first[2] is None else f"{first[2]}; {broken}"
                kind = getattr(first[2], "kind", MALFORMED_ROW) if first[2] is not None else MALFORMED_ROW
                reader = new_reader()
                yield _TableRow(start, None, first[1].rstrip("\r\n"), [(kind, reason)],
                                _first_cell(first[1], delimiter, pid_col))
                continue
            raw = "".join(t for _, t, _ in consumed).rstrip("\r\n")
            extra: list[tuple[str, str]] = []
            for _, _, problem in consumed:
                if problem is not None:
                    extra.append((getattr(problem, "kind", NON_UTF8), str(problem)))
            if not cells or (all(not c.strip() for c in cells) and len(cells) <= 1):
                if extra:  # else a blank line
                    yield _TableRow(start, None, raw, extra, None)
                continue
            if len(cells) != len(header):
                extra.append((MALFORMED_ROW, f"row has {len(cells)} fields, the header has {len(header)}"))
            yield _TableRow(start, dict(zip(header, cells)), raw, extra, None)

    # Records of a FASTA -------------------------------------------------------------
    def _iter_fasta(self, src: str) -> Iterator[Specimen]:
        assert self.path is not None
        path = self.path
        bad_lines: dict[int, str] = {}
        last = {"number": 0, "header": False}

        def feed() -> Iterator[tuple[int, str]]:
            for number, text, problem in open_text_lines(path):
                if problem:
                    bad_lines[number] = problem
                last["number"], last["header"] = number, text.startswith(">")
                yield number, text

        try:
            first_pass = ((rec.line, rec.as_row()) for rec in iter_fasta_lines(
                (number, text) for number, text, _ in open_text_lines(path)))
            self.validator.disagreeing = disagreeing_repeats(_until_truncated(first_pass))  # as _iter_table does
            for rec in iter_fasta_lines(feed()):
                # The parser yields a record after reading the next header (or at EOF):
                # the record's lines are rec.line up to, not including, that header.
                stop = last["number"] if (last["header"] and last["number"] != rec.line) else last["number"] + 1
                extra = [(NON_UTF8, bad_lines.pop(n)) for n in sorted(bad_lines) if rec.line <= n < stop]
                raw = f">{rec.header}\n{rec.sequence}"
                specimen, q = self.validator.validate(rec.as_row(), source=src, line=rec.line, raw=raw,
                                                      extra_problems=extra)
                if q is not None:
                    self._quarantine(q)
                if specimen is not None:
                    yield specimen
        except ValueError as exc:
            raise InputError(f"{src}: not a FASTA file ({exc})") from None

    # Images with no row -------------------------------------------------------------
    def _iter_leftover_images(self) -> Iterator[Specimen]:
        """Images in ``--images`` that no row named become image-only specimens."""
        if self._image_index is None:
            return
        for pid, path in self._image_index.items():
            if pid in self.validator.seen:
                continue
            specimen, rec = self.validator.validate(
                {"processid": pid, "image_path": str(path.resolve())}, source=str(path), line=None, raw=str(path)
            )
            if rec is not None:
                self._quarantine(rec)
            if specimen is not None:  # kept, possibly without its photo (then ``rec`` reports the photo)
                yield specimen


@dataclass
class CollectionRead:
    """Everything read from one collection: valid specimens, quarantine, counts."""

    specimens: list[Specimen]
    quarantine: list[QuarantinedRecord]
    summary: ValidationSummary
    source: str = ""
    format: str | None = None

    def write_quarantine(self, path: Path, *, force: bool = False) -> Path:
        """The quarantined rows as CSV (file, line, processid, kind, reason, raw); see :func:`write_quarantine`."""
        return write_quarantine(self.quarantine, path, force=force)

    @property
    def ok(self) -> bool:
        return not self.quarantine


def layout_reader(metadata: Path, image_dir: Path | None, splits: str | Sequence[str] | None = None, *,
                  check_images: bool, require_images: bool = False) -> CollectionReader:
    """A validating streaming reader over the rows of ``splits`` of a BIOSCAN-5M-layout metadata file,
    each specimen's image looked up where the layout keeps it (``storage.layout.image_path``)."""
    wanted = wanted_splits(splits)
    row_filter = None
    if wanted is not None:
        wanted_set = frozenset(wanted)

        def row_filter(row: Mapping[str, str]) -> bool:
            return row.get("split", "") in wanted_set

    def resolver(cells: Mapping[str, str]) -> Path | None:
        split = cells.get("split", "")
        if split not in SPLITS:
            return None
        return image_path(image_dir, cells.get("processid", ""), split, cells.get("chunk") or None)

    return CollectionReader(
        metadata,
        require_images=require_images,
        check_images=check_images,
        row_filter=row_filter,
        image_resolver=resolver if image_dir is not None else None,
    )


def iter_collection(
    path: Path | None,
    *,
    images: Path | None = None,
    require_images: bool = False,
    check_images: bool = True,
    on_quarantine: Callable[[QuarantinedRecord], None] | None = None,
) -> CollectionReader:
    """Streaming form of :func:`read_collection` (iterate the returned reader)."""
    if path is None and images is None:
        raise InputError("nothing to read: give a metadata/FASTA file or an image folder")
    return CollectionReader(
        path,
        images=images,
        require_images=require_images,
        check_images=check_images,
        on_quarantine=on_quarantine,
        keep_quarantine=on_quarantine is None,
    )


def read_collection(
    path: Path | None,
    *,
    images: Path | None = None,
    require_images: bool = False,
    check_images: bool = True,
) -> CollectionRead:
    """Read a collection (CSV/TSV/FASTA, plain or gzip; or an image folder) and validate it.

    ``path`` may also be a BIOSCAN-5M dataset root (a directory with ``metadata/``);
    then the official layout's images are attached. Raises :class:`InputError` for
    input that cannot be read at all (missing, binary, not a table); every other
    problem is a quarantined record.
    """
    if path is not None and Path(path).is_dir() and images is None and is_dataset_root(Path(path)):
        metadata = find_metadata(Path(path))
        reader = layout_reader(metadata, find_image_dir(Path(path)), None, check_images=check_images,
                               require_images=require_images)
        specimens = list(reader)
        return CollectionRead(specimens, reader.quarantine, reader.summary, str(metadata), reader.format)
    reader = CollectionReader(path, images=images, require_images=require_images, check_images=check_images)
    specimens = list(reader)
    source = str(reader.path or reader.images or "")
    return CollectionRead(specimens, reader.quarantine, reader.summary, source, reader.format or "images")
