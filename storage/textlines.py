"""Text lines of plain or gzip files, one at a time and bounded: the floor every reader stands on.

Why its own module: the collection reader, the BIOSCAN-5M metadata reader and the FASTA
reader all need the same decoding rules (one non-UTF-8 line is that line's problem, an
over-long line is never held whole, a gzip cut short keeps what came before the cut), and
each of them sits above this one, so no reader has to import another to get them.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from pathlib import Path
from typing import Iterator

from biodiscover.storage.errors import InputError
from biodiscover.storage.validation import MALFORMED_ROW, NON_UTF8


class TruncatedInputError(InputError):
    """A gzip file ended before its end-of-stream marker; ``lines`` were read before."""

    def __init__(self, message: str, *, lines: int = 0, rows: int = 0) -> None:
        super().__init__(message)
        self.lines = lines
        self.rows = rows


#: A physical line longer than this is refused without being held in memory whole
#: (a 10 MB barcode still fits, so it is judged as a barcode; a 200 MB file with no
#: line breaks is not a table).
MAX_LINE_BYTES = 16 * 1024 * 1024


class LineProblem(str):
    """Why one physical line cannot be used as it stands; ``kind`` is a validation problem kind."""

    kind: str = NON_UTF8

    @classmethod
    def of(cls, reason: str, kind: str) -> "LineProblem":
        out = cls(reason)
        out.kind = kind
        return out


#: A stream the line readers take: a plain file's or a gzip file's (both can peek and read a block at a time).
Stream = io.BufferedReader | gzip.GzipFile
#: A line break where a lone ``\r`` ends lines too (see :func:`_read_lines`).
_ANY_BREAK = re.compile(rb"\r\n|\r|\n")


def _read_lines(fh: Stream, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Physical lines of a binary stream as ``(line, length)``, each with its line break; an over-long line comes
    back as ``(b"", length)`` after being skipped in blocks, so memory stays bounded.

    Why the first line break decides how lines end: ``\\n`` or ``\\r\\n`` ends lines in nearly every file, and a
    lone ``\\r`` inside such a line is that line's defect (a control character in a cell, reported at the line an
    editor shows). A file whose first line break is a lone ``\\r`` was saved by an old Mac program ("CSV
    (Macintosh)"): read by ``\\n`` alone it was one line, one record swallowing all the others. Such a file is
    read with ``\\r``, ``\\r\\n`` and ``\\n`` each ending a line, so it gives the records, and the line numbers,
    the same file saved with ``\\n`` gives."""
    held = b""
    found = _ANY_BREAK.search(fh.peek(1))
    if found is None:  # no line break in what is buffered: read the first line to see how it ends
        held = fh.readline(max_bytes + 1)
        found = _ANY_BREAK.search(held)
    if found is not None and found.group() == b"\r":
        yield from _lines_of_any_break(held, fh, max_bytes)
        return
    raw = held or fh.readline(max_bytes + 1)
    while raw:
        if len(raw) <= max_bytes or raw.endswith(b"\n"):
            yield raw, len(raw)
        else:
            length = len(raw)
            while True:
                more = fh.readline(1 << 20)  # pragma: no mutate the block an over-long line is skipped in
                length += len(more)
                if not more or more.endswith(b"\n"):
                    break
            yield b"", length
        raw = fh.readline(max_bytes + 1)


def _lines_of_any_break(held: bytes, fh: Stream, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """:func:`_read_lines` for a file whose lines end in ``\\r``, ``\\r\\n`` or ``\\n`` (the breaks
    ``bytes.splitlines`` splits at): ``held`` (read already), then the rest of ``fh`` a block at a time, so a gzip
    cut short loses no line that came before the cut."""
    skipped, end_of_file = 0, False  # skipped: the bytes of an over-long line dropped so far

    def judged(line: bytes) -> tuple[bytes, int]:
        if skipped or len(line.rstrip(b"\r\n")) > max_bytes:
            return b"", skipped + len(line)
        return line, len(line)

    while True:
        lines = held.splitlines(keepends=True)
        # the last line may go on in the next block (a "\r" last may be the first half of "\r\n")
        held = lines.pop() if lines and not end_of_file else b""
        for line in lines:
            yield judged(line)
            skipped = 0
        if end_of_file:
            if skipped:
                yield b"", skipped
            return
        if len(held) > max_bytes and not held.endswith(b"\r"):  # no line break yet: drop what is held of it
            skipped, held = skipped + len(held), b""
        try:
            more = fh.read1(1 << 20)  # pragma: no mutate the most a block read here may hold
        except (EOFError, OSError, zlib.error):
            if held.endswith((b"\r", b"\n")):  # a whole line before the cut
                yield judged(held)
            raise
        end_of_file = not more
        held += more


def raw_lines(path: Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The physical lines of a plain or gzip file, undecoded (an over-long one as ``b""``): for a quick scan
    before the full read. A gzip stream cut short ends them quietly; the full read says so."""
    try:
        with _open_binary(Path(path)) as fh:
            for raw, _length in _read_lines(fh, max_line_bytes):
                yield raw
    except (EOFError, OSError, zlib.error):
        return


def open_text_lines(path: Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str, str | None]]:
    """Yield ``(line_number, text, problem)`` for a plain or gzip text file.

    Each line is decoded on its own: a non-UTF-8 line comes back decoded with
    replacement characters and a :class:`LineProblem`, so the caller can
    quarantine that one record; a line longer than ``max_line_bytes`` comes back
    empty with a problem (never read whole into memory). A gzip stream that ends
    early raises :class:`TruncatedInputError` after every complete line before
    the cut was yielded.
    """
    path = Path(path)
    number = 0
    try:
        with _open_binary(path) as fh:
            for raw, length in _read_lines(fh, max_line_bytes):
                number += 1
                if not raw:
                    yield number, "\n", LineProblem.of(
                        f"line is {length:,} bytes long, more than the {max_line_bytes:,} a record may take "
                        "(a file without line breaks?)", MALFORMED_ROW)
                    continue
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    yield number, raw.decode("utf-8"), None
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start : exc.end]
                    reason = f"line is not valid UTF-8 (byte {bad!r} at column {exc.start + 1})"
                    yield number, raw.decode("utf-8", errors="replace"), LineProblem.of(reason, NON_UTF8)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise TruncatedInputError(
            f"{path}: gzip stream is truncated or corrupt after line {number} ({exc})", lines=number
        ) from exc


def _open_binary(path: Path) -> Stream:
    with path.open("rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else path.open("rb")


def _all_utf8(path: Path, block: int = 1 << 20) -> bool:  # pragma: no mutate an incremental decoder's block
    """True when the whole (decompressed) file is UTF-8; read in blocks, fast (no line splitting).

    A gzip stream cut short ends the scan as if the file ended there: the reader itself reports the cut.
    """
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with _open_binary(path) as fh:
            while chunk := fh.read(block):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return True
    return True


def _looks_latin1(raw: bytes, start: int) -> str | None:
    """The word around byte ``start`` decoded as cp1252, when the line reads as cp1252 text (else None)."""
    try:
        text = raw.rstrip(b"\r\n").decode("cp1252")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c != "\t" for c in text):
        return None
    return _word_at(text, start)


def _word_at(text: str, index: int) -> str:
    """The cell text around character ``index`` (up to a separator or quote), at most 80 characters."""
    left, right = index, index
    while left > 0 and text[left - 1] not in ',\t;"':
        left -= 1
    while right < len(text) and text[right] not in ',\t;"':
        right += 1
    return text[left:right].strip()[:80]


def _utf8_word(raw: bytes) -> str | None:
    """The first word holding a non-ASCII character of a line that is valid UTF-8 (None: ASCII, or not UTF-8)."""
    if raw.isascii():
        return None
    try:
        text = raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _word_at(text, next(i for i, c in enumerate(text) if ord(c) > 127))


def first_non_utf8_line(path: Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> str | None:
    """Why ``path`` is not a UTF-8 text file, naming its first offending line; None when it is UTF-8.

    Why a whole file and not a line: a spreadsheet saved as Latin-1/cp1252 has an accent
    on many rows (``Québec``, ``Ménétries``); setting each such row aside one by one would
    take half a collection out for a reason that is the file's, not the rows'. So the
    file is refused before anything is read, with the fix: re-save it as UTF-8. The
    check reads the file in blocks (fast); only a file that fails it is read line by line
    to name the line.
    """
    path = Path(path)
    if _all_utf8(path):
        return None
    number = 0
    utf8: tuple[int, str] | None = None  # the first line with a non-ASCII character that is UTF-8
    latin: tuple[int, str] | None = None  # the first line that is not UTF-8 and reads as cp1252
    try:
        with _open_binary(path) as fh:
            for raw, _length in _read_lines(fh, max_line_bytes):
                number += 1
                if utf8 is None and (word := _utf8_word(raw)) is not None:
                    utf8 = (number, word)
                if latin is not None:  # looking on for a UTF-8 line after the cp1252 one
                    if utf8 is not None:
                        break
                    continue
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    word = _looks_latin1(raw, exc.start)
                    if word is None:
                        bad = raw[exc.start : exc.end]
                        return (f"not UTF-8; re-save as UTF-8 — first at line {number}, column {exc.start + 1} "
                                f"(byte {bad!r})")
                    latin = (number, word)
                    if utf8 is not None:
                        break
    except (EOFError, gzip.BadGzipFile, zlib.error):
        if latin is None:
            return None
    if latin is not None and utf8 is not None:
        # two exports pasted together: converting the whole file from cp1252 turns the UTF-8 "Perú" into "PerÃº"
        return (f"mixes UTF-8 and Latin-1/cp1252 lines (UTF-8 at line {utf8[0]}: {utf8[1]!r}; cp1252 first at line "
                f"{latin[0]}: {latin[1]!r}); re-encode the cp1252 lines as UTF-8 (converting the whole file from "
                "cp1252 would garble the UTF-8 ones)")
    if latin is not None:
        return (f"not UTF-8 (looks like Latin-1/cp1252); re-save as UTF-8 — first at line {latin[0]}: "
                f"{latin[1]!r} read as cp1252")
    # only the end of the file is not UTF-8 (a multi-byte character cut short): the reader names it
    return None
