"""BIOSCAN-5M metadata and dataset roots, with the official loader's semantics.

The official ``bioscan-dataset`` package imports torchvision at load time, which
the default install avoids; this module re-implements its pandas logic so label
indices compare one to one with published results:

* all 23 columns read with the loader's ``COLUMN_DTYPES``;
* barcodes cut to the first 660 nt;
* ``reduce_repeated_barcodes``: shuffle with seed 0, keep the first row of each
  N-right-stripped barcode, restore file order — done over the whole file before
  the split filter, as the loader does;
* ``<rank>_index`` = category code, categories = sorted labels of the *whole*
  file (so an index is stable across splits), -1 = missing;
* ``image_path`` = ``<split>/[<chunk>/]<processid>.jpg``.

Unlike the loader it reads in chunks, so the 4 GB / 5.15M-row file is never held
whole unless the caller asks for all of it; ``.csv``, ``.csv.gz`` and ``.tsv``
are accepted.
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal, Mapping, Sequence, cast

import numpy as np
import pandas as pd

from biodiscover.storage.collections import CollectionReader, header_found, layout_reader, sniff_format
from biodiscover.storage.errors import InputError
from biodiscover.storage.layout import METADATA_SUFFIXES as METADATA_SUFFIXES
from biodiscover.storage.layout import OFFICIAL_METADATA as OFFICIAL_METADATA
from biodiscover.storage.layout import find_image_dir as find_image_dir
from biodiscover.storage.layout import find_metadata as find_metadata
from biodiscover.storage.layout import image_path, wanted_splits
from biodiscover.storage.layout import is_dataset_root as is_dataset_root
from biodiscover.storage.records import (
    BIOSCAN_COLUMNS,
    COLUMN_DTYPES,
    DEFAULT_IMAGE_PACKAGE,
    MAX_NUCLEOTIDES,
    TAXONOMY_COLUMNS,
    Specimen,
)
from biodiscover.storage.textlines import TruncatedInputError, open_text_lines
from biodiscover.storage.validation import QuarantinedRecord

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

#: Columns the loader turns into ``<column>_index`` targets.
LABEL_INDEX_COLUMNS: tuple[str, ...] = TAXONOMY_COLUMNS + ("dna_bin",)
CATEGORY_COLUMNS: tuple[str, ...] = tuple(c for c, d in COLUMN_DTYPES.items() if d == "category")
DEFAULT_CHUNKSIZE = 100_000
_BUFFER = 1 << 16  # pragma: no mutate a read buffer's size: every size reads the same bytes


# -- reading the table ----------------------------------------------------------------
def _csv_options(path: Path) -> dict[str, object]:
    fmt = sniff_format(path)
    if fmt == "fasta":
        raise InputError(f"{path}: is FASTA, not BIOSCAN-5M metadata: a labelled dataset is a CSV/TSV with "
                         "processid, split, dna_barcode and the taxonomy columns (a FASTA collection is for "
                         "validate, ingest and triage)")
    with path.open("rb") as fh:
        is_gzip = fh.read(2) == b"\x1f\x8b"
    return {"sep": "\t" if fmt == "tsv" else ",", "compression": "gzip" if is_gzip else None}


def _header(path: Path, opts: Mapping[str, object]) -> list[str]:
    import csv

    # The header alone, read with our own line reader: pandas would decompress a
    # whole block first and fail on a truncated gzip before naming the header.
    first = ""
    try:
        for _number, text, problem in open_text_lines(path):
            if problem:
                raise InputError(f"{path}: line 1 (the header): {problem}")
            first = text
            break
    except TruncatedInputError:
        pass
    if not first.strip():
        raise InputError(f"{path}: file is empty or has no header line")
    cols = next(csv.reader([first], delimiter=str(opts["sep"])))
    if "processid" not in cols:
        raise InputError(f"{path}: not BIOSCAN-5M metadata: line 1 has no 'processid' column "
                         f"{header_found(cols, str(opts['sep']))}")
    for i, name in enumerate(cols):  # pandas would read the first of the two and drop the other, silently
        if name in BIOSCAN_COLUMNS and name in cols[:i]:
            raise InputError(f"{path}: the header (line 1) names column {name!r} twice "
                             f"(columns {cols.index(name) + 1} and {i + 1}); keep one")
    return cols


def read_header(path: Path) -> list[str]:
    """The column names on line 1 of a metadata table (reads one bounded line, never the rows)."""
    path = Path(path)
    return _header(path, _csv_options(path))


class _CompleteLinesGzip(io.RawIOBase):
    """A gzip stream that ends cleanly at the last complete line when the file is cut short.

    pandas reads compressed input in large blocks, so a truncated gzip would lose
    every row of the block that hit the cut; here the rows before the cut reach
    the parser, the partial last line is dropped, and :attr:`truncated` records
    the error so the reader can report it after yielding what it had.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._gz = gzip.open(path, "rb")
        self._tail = b""
        self._pending = b""
        self._eof = False
        self.truncated: BaseException | None = None

    def readable(self) -> bool:
        return True

    def _next_block(self) -> bytes:
        while not self._eof:
            try:
                block = self._gz.read1(1 << 16)
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                self.truncated, self._eof, self._tail = exc, True, b""
                return b""
            if not block:
                self._eof = True
                data, self._tail = self._tail, b""
                return data
            buf = self._tail + block
            cut = buf.rfind(b"\n") + 1
            self._tail = buf[cut:]
            if cut:
                return buf[:cut]
        return b""

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        if not self._pending:
            self._pending = self._next_block()
        b = memoryview(buffer).cast("B")
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._gz.close()
        super().close()


def _first_non_utf8_line(path: Path) -> int | None:
    """Line number of the first line that is not valid UTF-8 (for a precise error)."""
    try:
        for number, _text, problem in open_text_lines(path):
            if problem:
                return number
    except TruncatedInputError:
        return None
    return None


def _dtypes(columns: Sequence[str], *, labels_as_str: bool,
            categories: Mapping[str, Sequence[str]] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for c in columns:
        d = COLUMN_DTYPES.get(c)
        if d is None:
            continue
        if d == "category":
            if categories is not None and c in categories:
                out[c] = pd.CategoricalDtype(list(categories[c]))
            elif labels_as_str:
                out[c] = "str"
            else:
                out[c] = "category"
        else:
            out[c] = d
    return out


def _iter_chunks(
    path: Path,
    *,
    chunksize: int,
    columns: Sequence[str] | None,
    labels_as_str: bool,
    categories: Mapping[str, Sequence[str]] | None,
    max_nucleotides: int | None,
) -> Iterator[pd.DataFrame]:
    path = Path(path)
    opts = _csv_options(path)
    header = _header(path, opts)
    if columns is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(f"{path}: columns not in the header: {', '.join(missing)}")
    use = list(columns) if columns is not None else header
    dtypes = _dtypes(use, labels_as_str=labels_as_str, categories=categories)
    rows = 0
    source: object = path
    stream: _CompleteLinesGzip | None = None
    if opts.get("compression") == "gzip":
        stream = _CompleteLinesGzip(path)
        source = io.BufferedReader(cast("io.RawIOBase", stream), buffer_size=_BUFFER)
        opts = {**opts, "compression": None}
    try:
        reader = pd.read_csv(source, dtype=dtypes, usecols=use, chunksize=chunksize, **opts)
        with reader:
            for chunk in reader:
                chunk.index = pd.RangeIndex(rows, rows + len(chunk))
                rows += len(chunk)
                if max_nucleotides is not None and "dna_barcode" in chunk.columns:
                    chunk["dna_barcode"] = chunk["dna_barcode"].str[:max_nucleotides]
                yield chunk
        if stream is not None and stream.truncated is not None:
            raise EOFError(str(stream.truncated))
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise TruncatedInputError(
            f"{path}: gzip stream is truncated after {rows} rows (file cut short?); "
            f"the {rows} rows read before are kept ({exc})",
            rows=rows,
        ) from None
    except UnicodeDecodeError:
        line = _first_non_utf8_line(path)
        at = f"line {line}" if line else f"after row {rows}"
        raise InputError(
            f"{path}: {at} is not valid UTF-8; run `biodiscover validate {path}` to quarantine such rows"
        ) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(
            f"{path}: cannot read rows {rows + 2}–{rows + chunksize + 1} with the BIOSCAN-5M dtypes ({exc}); "
            f"run `biodiscover validate {path}` to find the bad records"
        ) from None


def iter_metadata(
    path: Path,
    *,
    chunksize: int = DEFAULT_CHUNKSIZE,
    splits: str | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    max_nucleotides: int | None = MAX_NUCLEOTIDES,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[pd.DataFrame]:
    """Read BIOSCAN-5M metadata in chunks of ``chunksize`` rows (bounded memory).

    Each chunk has the loader's dtypes; its index is the 0-based row number in the
    file (file line = index + 2). Label columns are ``category`` with the chunk's
    own categories unless ``categories`` fixes them (e.g. those of :func:`load_metadata`'s
    frame), because codes stable over the whole file need the whole file — :func:`load_metadata`
    does that. ``splits`` takes a split,
    metasplit or ``a+b`` expression, or a list of split names.
    """
    wanted = wanted_splits(splits)
    for chunk in _iter_chunks(Path(path), chunksize=chunksize, columns=columns, labels_as_str=False,
                              categories=categories, max_nucleotides=max_nucleotides):
        if wanted is not None:
            if "split" not in chunk.columns:
                raise InputError(f"{path}: has no 'split' column; cannot select splits {splits!r}")
            chunk = chunk[chunk["split"].isin(wanted)]
        yield chunk


def _barcode_keys(barcodes: pd.Series) -> np.ndarray:
    """64-bit hashes of N-right-stripped barcodes (the loader's dedup key)."""
    return np.asarray(pd.util.hash_pandas_object(barcodes.str.rstrip("N"), index=False).to_numpy())


def load_metadata(
    path: Path,
    *,
    split: str | Sequence[str] | None = None,
    max_nucleotides: int | None = MAX_NUCLEOTIDES,
    reduce_repeated_barcodes: bool = False,
    columns: Sequence[str] | None = None,
    chunksize: int = DEFAULT_CHUNKSIZE,
    on_truncated: Literal["error", "warn"] = "error",
) -> pd.DataFrame:
    """The metadata table as the official loader returns it, read in one streaming pass.

    Only rows of ``split`` are kept in memory, yet categories (and so the
    ``<rank>_index`` codes) cover the whole file, and ``reduce_repeated_barcodes``
    picks the same surviving row per barcode as the loader's seed-0 shuffle over
    the whole file. The index is the row number in the file.

    ``on_truncated="warn"`` returns the rows of complete chunks read before a
    truncated gzip ends (logged); the default raises :class:`InputError`.
    """
    path = Path(path)
    wanted = wanted_splits(split)
    uniques: dict[str, set[str]] = {}
    kept: list[pd.DataFrame] = []
    keys: list[np.ndarray] = []
    total = 0
    try:
        for chunk in _iter_chunks(path, chunksize=chunksize, columns=columns, labels_as_str=True,
                                  categories=None, max_nucleotides=max_nucleotides):
            total += len(chunk)
            for c in CATEGORY_COLUMNS:
                if c in chunk.columns:
                    uniques.setdefault(c, set()).update(chunk[c].dropna().unique().tolist())
            if reduce_repeated_barcodes:
                if "dna_barcode" not in chunk.columns:
                    raise InputError(f"{path}: reduce_repeated_barcodes needs the dna_barcode column")
                keys.append(_barcode_keys(chunk["dna_barcode"]))
            if wanted is not None:
                if "split" not in chunk.columns:
                    raise InputError(f"{path}: has no 'split' column; cannot select split {split!r}")
                chunk = chunk[chunk["split"].isin(wanted)]
            kept.append(chunk)
    except TruncatedInputError as exc:
        if on_truncated == "error":
            raise
        log.warning("%s", exc)
    if kept:
        df = pd.concat(kept)
    else:
        dt = _dtypes(columns or [], labels_as_str=True, categories=None)
        df = pd.DataFrame({c: pd.Series(dtype=dt.get(c, "str")) for c in (columns or [])})
    if reduce_repeated_barcodes and total:
        all_keys = np.concatenate(keys)
        perm = np.random.RandomState(0).permutation(total)
        rank = np.empty(total, dtype=np.int64)
        rank[perm] = np.arange(total)
        order = np.argsort(rank[: len(all_keys)], kind="stable")
        _, first = np.unique(all_keys[order], return_index=True)
        survivors = np.sort(order[first])
        df = df[df.index.isin(survivors)]
    for c, values in uniques.items():
        df[c] = pd.Categorical(df[c], categories=sorted(values))
    for c in LABEL_INDEX_COLUMNS:
        if c in df.columns:
            df[c + "_index"] = df[c].cat.codes
    if {"split", "processid"} <= set(df.columns):
        chunk_part = df["chunk"].fillna("") if "chunk" in df.columns else pd.Series("", index=df.index)
        sep = "/"
        df["image_path"] = (
            df["split"].astype(str) + sep + chunk_part.where(chunk_part == "", chunk_part + sep)
            + df["processid"] + ".jpg"
        )
    return df


def reduce_repeated_barcodes(df: pd.DataFrame) -> pd.DataFrame:
    """The loader's dedup on an in-memory frame: seed-0 shuffle, first per stripped barcode."""
    shuffled = df.sample(frac=1, random_state=0)
    keys = shuffled["dna_barcode"].str.rstrip("N")
    return shuffled[~keys.duplicated()].sort_index()


# -- dataset roots --------------------------------------------------------------------
@dataclass
class BioscanDataset:
    """A BIOSCAN-5M-layout dataset on disk: metadata plus (optionally) images.

    ``root`` holds ``metadata/…csv`` and ``images/<package>/<split>/<chunk>/<processid>.jpg``,
    or the official download's ``bioscan5m/metadata/csv/…`` and ``bioscan5m/images/…``.
    """

    root: Path
    image_package: str = DEFAULT_IMAGE_PACKAGE
    metadata: Path | None = None
    metadata_path: Path = field(init=False)
    image_dir: Path | None = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).absolute()  # its photos' paths outlive the folder the command ran in
        self.metadata_path = Path(self.metadata) if self.metadata is not None else find_metadata(self.root)
        self.image_dir = find_image_dir(self.root, self.image_package)

    def image_path(self, processid: str, split: str | None, chunk: str | None = None) -> Path | None:
        """Where the image of a specimen is expected (whether or not it exists)."""
        return image_path(self.image_dir, processid, split, chunk)

    def reader(
        self,
        splits: str | Sequence[str] | None = None,
        *,
        check_images: bool = False,
        require_images: bool = False,
    ) -> CollectionReader:
        """A validating streaming reader over the metadata rows of ``splits``.

        Rows failing a rule are quarantined (see :mod:`biodiscover.storage.validation`), not
        dropped silently. ``check_images`` opens each found image with PIL.
        """
        return layout_reader(self.metadata_path, self.image_dir, splits, check_images=check_images,
                             require_images=require_images)


def iter_specimens(data: Path, splits: str | Sequence[str] | None = None, *,
                   quarantine: list[QuarantinedRecord] | None = None,
                   require: Sequence[str] = ()) -> Iterator[Specimen]:
    """:func:`load_specimens` one specimen at a time (a million-row reference never sits in memory as
    Specimen objects); rows set aside are appended to ``quarantine`` once the rows are read.

    ``require``: columns the caller cannot work without (a reference needs ``split`` and
    ``dna_barcode``), checked in the header before a row is read, so a table without them
    fails at once instead of quarantining every row. A bad split expression fails first too.
    Rows set aside are a logged warning only when the caller did not take them to report
    (with ``quarantine``, the caller says it once, with the report's path).
    """
    path = find_metadata(Path(data))
    wanted_splits(splits)  # an unknown split name: InputError before any reading
    if require:
        header = read_header(path)
        for column in require:
            if column not in header:
                raise InputError(f"{path}: has no {column!r} column (line 1); needed here: "
                                 f"{', '.join(require)} (BIOSCAN-5M layout)")
    root = Path(data) if Path(data).is_dir() else path.parent
    reader = BioscanDataset(root, metadata=path).reader(splits, check_images=False)
    yield from reader
    if reader.quarantine:
        if quarantine is None:
            log.warning("%s: %d rows set aside (first: %s)", path, len(reader.quarantine),
                        reader.quarantine[0].message)
        else:
            log.info("%s: %d rows set aside", path, len(reader.quarantine))
            quarantine.extend(reader.quarantine)


def load_specimens(data: Path, splits: str | Sequence[str] | None = None, *,
                   quarantine: list[QuarantinedRecord] | None = None, require: Sequence[str] = ()
                   ) -> list[Specimen]:
    """The valid specimens of ``splits`` of a dataset root or metadata file: the project's one loader.

    Why one: build-reference, training and the demo each read datasets their own way and cleaned
    barcodes differently. This is the validating reader ``ingest`` uses (barcodes cleaned by
    ``storage.validation.clean_barcode``, image paths attached where the files exist); rows it
    sets aside are appended to ``quarantine`` (else logged), never silently dropped. ``require``:
    see :func:`iter_specimens`.
    """
    return list(iter_specimens(data, splits, quarantine=quarantine, require=require))
