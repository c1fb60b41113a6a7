"""Idempotent, versioned ingest of specimens with provenance.

API (a mixin of :class:`biodiscover.storage.db.Database`)::

    db.ingest(specimens, collection="plate-42", source=Path("plate42.csv"),
              checksum=None, chunk_size=2000, backup=True, register_taxa=True,
              quarantine=reader.quarantine, quarantine_file=Path("plate42.quarantine.csv")) -> IngestReport
    db.ingest_file(path, collection=None, images=None, quarantine_file=None) -> (IngestReport, reader)
    db.ingest_quarantine(ingest_id) -> list[QuarantinedRecord]     # what an ingest set aside
    db.specimens(processids=None) -> list[Specimen]           # current versions (old ones stay in the file)

Why it is built this way:

* **Idempotent.** Every record gets a content hash (all BIOSCAN-5M fields, the
  image path, and the submitted read where it was cut). Re-ingesting an unchanged
  record writes nothing; re-ingesting a file whose SHA-256 matches a completed
  ingest of the same collection is skipped outright, so "the same collection
  twice changes nothing" holds to the row.
* **Versioned.** A record whose hash changed gets a new row (``version`` + 1)
  and the old row is kept with ``current = 0``. A partial unique index allows
  one current row per processid, so duplicates cannot appear even under a crash.
* **Crash-safe and interleavable.** Records are committed in chunks, each its
  own ``BEGIN IMMEDIATE`` transaction that also updates the ingest's counters.
  A process killed mid-ingest leaves whole chunks only; re-running skips what
  is already there and completes the rest. A reviewer's write waits at most one
  chunk.
* **Provenance.** ``ingests`` keeps file, checksum, start/finish time and counts;
  every specimen row points at the ingest that wrote it. The checksum of a file
  read with an image folder covers the folder's listing too, so adding a photo
  is a new ingest, never "already ingested".
* **Nothing set aside is lost.** Rows the reader quarantined go into the
  ``quarantine`` table in the same transaction as the chunk they came with; the
  report file (``quarantine_file``) is checked before anything is written and
  written atomically *before* the ingest is marked completed. If it cannot be
  written the ingest stays unfinished and a re-run does it again; a re-run of a
  completed ingest reports what was set aside the first time.
* **Interrupted ingests are closed.** When an ingest completes, earlier ingests
  of the same file into the same collection left ``running`` by a killed process
  are marked ``interrupted``, so ``db check`` stops warning about them.
* **The barcode as submitted.** ``dna_barcode`` is what the analysis reads (cleaned,
  first 660 nt); ``submitted_barcode_length`` records the cleaned read's length and
  ``submitted_barcode`` the read itself where it was longer, so the exports send on
  what the lab sequenced (schema 0006; see its migration for why only then).
* With ``register_taxa`` the identification provided with the records
  (order … species) is added to ``taxa`` (status accepted, source
  ``collection:<name>``), so the taxonomy graph covers the collection.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from biodiscover.storage.db.clock import utcnow
from biodiscover.storage.db.engine import CHUNK_ROWS
from biodiscover.storage.db.core import DatabaseCore, chunked, dbapi, inserted_id, table
from biodiscover.storage.db.models import Collection, Ingest, QuarantinedRow, SpecimenRow, Taxon
from biodiscover.storage.records import BIOSCAN_COLUMNS, RANKS, Specimen, plural, read_lineage
from biodiscover.storage.validation import (FILE_PROBLEMS, PHOTO_SET_ASIDE, QuarantinedRecord, barcode_as_submitted,
                                             count_set_aside, shorten_raw)

log = logging.getLogger(__name__)

SPECIMENS = table(SpecimenRow)
TAXA = table(Taxon)
INGESTS = table(Ingest)
COLLECTIONS = table(Collection)
QUARANTINE = table(QuarantinedRow)

#: specimens-table column for each BIOSCAN-5M column.
COLUMN_KEYS: dict[str, str] = {c: c.replace("-", "_") for c in BIOSCAN_COLUMNS}


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did (``skipped`` = same file already ingested into this collection)."""

    collection: str
    collection_id: int
    ingest_id: int | None
    source: str | None
    checksum: str | None
    total: int
    new: int
    changed: int
    unchanged: int
    skipped: bool = False
    backup: Path | None = None
    #: rows set aside (by this ingest, or — when ``skipped`` — by the completed ingest it matched)
    quarantined: int = 0
    quarantine_file: str | None = None
    #: photos set aside from records that were kept without them (listed in the quarantine too)
    photos_set_aside: int = 0
    #: processids stored before in another collection with another barcode, now this collection's new version:
    #: how many, and (processid, that collection) of the first :data:`MOVED_KEPT`
    moved: int = 0
    moved_from: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"collection": self.collection, "collection_id": self.collection_id, "ingest_id": self.ingest_id,
                "source": self.source, "checksum": self.checksum, "total": self.total, "new": self.new,
                "changed": self.changed, "unchanged": self.unchanged, "skipped": self.skipped,
                "backup": str(self.backup) if self.backup else None, "quarantined": self.quarantined,
                "photos_set_aside": self.photos_set_aside, "quarantine_file": self.quarantine_file,
                "moved": self.moved, "moved_from": [list(m) for m in self.moved_from]}

    def moved_lines(self, shown: int = 5) -> list[str]:
        """One line per processid this ingest took from another collection with another barcode (the first
        ``shown``, then how many more). Why: a re-sequenced or mislabelled well whose id another plate already held
        became the new plate's specimen and its old plate's names were for another barcode; ``ingest`` said only
        "5 changed", triage and run nothing (e31 review F22)."""
        lines = [f"{pid} was in collection {other} with another barcode: stored as a new version in {self.collection} "
                 "(the old one kept, no longer current)" for pid, other in self.moved_from[:shown]]
        if self.moved > len(lines):
            lines.append(f"… and {plural(self.moved - len(lines), 'more processid')} taken from another collection "
                         "with another barcode")
        return lines


def file_checksum(path: Path, images: Path | None = None) -> str:
    """SHA-256 of a file, streamed (collections can be gigabytes), plus the image folder's listing.

    With ``images`` the name, size and modification time of every file in the
    folder are hashed too: the same table with a photo added (or replaced) is
    different input, and skipping it as "already ingested" would drop the photo.
    """
    with Path(path).open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")  # streamed in blocks
    if images is not None and Path(images).is_dir():
        for p in sorted(Path(images).rglob("*")):
            if p.is_file():
                st = p.stat()
                digest.update(f"\x00{p.relative_to(images)}\x1f{st.st_size}\x1f{st.st_mtime_ns}".encode())
    return "sha256:" + digest.hexdigest()


#: (specimens column, Specimen attribute) for the BIOSCAN fields, resolved once (ingest is a hot loop).
_FIELD_PAIRS: tuple[tuple[str, str], ...] = tuple((COLUMN_KEYS[c], Specimen.field_for_column(c))
                                                  for c in BIOSCAN_COLUMNS)
#: processids taken from another collection with another barcode that an ingest names (``IngestReport.moved_from``)
MOVED_KEPT = 20
#: Column order of the raw INSERT used by bulk ingest.
_INSERT_COLUMNS: tuple[str, ...] = tuple(k for k, _ in _FIELD_PAIRS) + (
    "image_path", "source", "line", "submitted_barcode_length", "submitted_barcode", "record_hash", "version",
    "current", "collection_id", "ingest_id")
_INSERT_SQL = "INSERT INTO specimens ({}) VALUES ({})".format(
    ", ".join(f'"{c}"' for c in _INSERT_COLUMNS), ", ".join("?" for _ in _INSERT_COLUMNS))


def specimen_values(spec: Specimen) -> dict[str, Any]:
    """The specimen as a ``specimens`` row (without bookkeeping columns).

    The barcode as submitted (:func:`~biodiscover.storage.validation.barcode_as_submitted`) gives its length
    for every barcoded record, and itself only where it is longer than the analysed ``dna_barcode``.
    """
    row = {key: getattr(spec, attr) for key, attr in _FIELD_PAIRS}
    row["image_path"] = str(spec.image_path) if spec.image_path is not None else None
    row["source"] = spec.source
    row["line"] = spec.line
    submitted = barcode_as_submitted(spec)
    row["submitted_barcode_length"] = len(submitted) if submitted is not None else None
    row["submitted_barcode"] = submitted if submitted is not None and submitted != spec.dna_barcode else None
    return row


def record_hash(values: dict[str, Any]) -> str:
    """Content hash of a record: BIOSCAN fields + image path (not where it was read from).

    A submitted read longer than the analysed barcode counts too, only where there is one: a re-called tail
    past 660 nt is a changed record, while every record that was not cut (and every row stored before
    schema 0006) hashes as it always did, so re-ingesting a plate does not turn them into new versions.
    """
    parts = []
    for key in list(COLUMN_KEYS.values()) + ["image_path"]:
        v = values.get(key)
        parts.append("" if v is None else repr(v))
    if values.get("submitted_barcode") is not None:
        parts.append(repr(values["submitted_barcode"]))
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _store_quarantine(conn: Connection, ingest_id: int, records: Sequence[QuarantinedRecord]) -> None:
    if records:
        conn.execute(sa.insert(QUARANTINE), [
            {"ingest_id": ingest_id, "file": r.file, "line": r.line, "processid": r.processid, "kind": r.kind,
             "reason": r.reason, "raw": shorten_raw(r.raw)} for r in records])


def _chunks(items: Iterable[Specimen], size: int) -> Iterator[list[Specimen]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class IngestMixin(DatabaseCore):
    """Ingest API; see the module docstring."""

    def ingest(self, specimens: Iterable[Specimen], *, collection: str, source: Path | str | None = None,
               checksum: str | None = None, chunk_size: int = CHUNK_ROWS, backup: bool = True,
               register_taxa: bool = True,
               on_progress: Callable[[int], None] | None = None,
               quarantine: Sequence[QuarantinedRecord] | None = None,
               quarantine_file: Path | None = None, force: bool = False) -> IngestReport:
        """Store ``specimens`` into ``collection``; see the module docstring for the guarantees.

        ``quarantine``: the reader's live list of set-aside rows (it grows while
        ``specimens`` is iterated); they are stored with the chunks and, when
        ``quarantine_file`` is given, written there (replacing only a report
        biodiscover wrote, unless ``force``) before the ingest is marked completed.
        """
        from biodiscover.storage.validation import check_output_path, is_quarantine_report

        source_s = str(source) if source is not None else None
        if checksum is None and source is not None and Path(source).is_file():
            checksum = file_checksum(Path(source))
        if quarantine_file is not None:  # refuse before anything is written, not after the commit
            check_output_path(Path(quarantine_file), what="quarantine report", force=force, ours=is_quarantine_report,
                              new_folder=True)  # write_quarantine makes it; the ingest verb refused a missing one

        def _skipped(conn: Connection, cid: int, prev: Any) -> IngestReport:
            def rows(*where: Any) -> int:
                return int(conn.execute(sa.select(sa.func.count()).select_from(QUARANTINE).where(
                    QUARANTINE.c.ingest_id == prev["id"], *where)).scalar() or 0)

            photos = rows(QUARANTINE.c.reason.startswith(PHOTO_SET_ASIDE, autoescape=True))
            whole_file = rows(QUARANTINE.c.kind.in_(sorted(FILE_PROBLEMS)))  # no record set aside (count_set_aside)
            return IngestReport(collection, cid, prev["id"], source_s, checksum, prev["n_records"], 0, 0,
                                prev["n_records"], skipped=True,
                                quarantined=int(prev["n_quarantined"] or 0) - photos - whole_file,
                                photos_set_aside=photos,
                                quarantine_file=prev["quarantine_file"])

        def _start(conn: Connection) -> tuple[int, int | None, IngestReport | None]:
            cid = conn.execute(sa.select(COLLECTIONS.c.id).where(COLLECTIONS.c.name == collection)).scalar()
            if cid is None:
                cid = inserted_id(conn.execute(sa.insert(COLLECTIONS).values(name=collection, created_at=utcnow())
                                   ))
            if checksum is not None:
                prev = conn.execute(
                    sa.select(INGESTS).where(INGESTS.c.collection_id == cid, INGESTS.c.checksum == checksum,
                                             INGESTS.c.status == "completed").order_by(INGESTS.c.id.desc())
                ).mappings().first()
                if prev is not None:
                    return cid, None, _skipped(conn, cid, prev)
            iid = inserted_id(conn.execute(sa.insert(INGESTS).values(collection_id=cid, source=source_s,
                                                                     checksum=checksum,
                                                         started_at=utcnow(), status="running")
                               ))
            return cid, iid, None

        # Skip check first (no backup for a no-op), then back up, then start.
        with self._read() as conn:
            cid0 = conn.execute(sa.select(COLLECTIONS.c.id).where(COLLECTIONS.c.name == collection)).scalar()
            if cid0 is not None and checksum is not None:
                prev = conn.execute(sa.select(INGESTS).where(
                    INGESTS.c.collection_id == cid0, INGESTS.c.checksum == checksum,
                    INGESTS.c.status == "completed")).mappings().first()
                if prev is not None:
                    log.info("%s already ingested into %s (ingest %d); nothing to do", source_s, collection,
                             prev["id"])
                    return _skipped(conn, cid0, prev)
        backup_path = self._auto_backup("pre-ingest") if backup else None
        cid, iid, skipped = self._write(_start, "start the ingest")
        if skipped is not None:
            return skipped
        assert iid is not None
        taxa_cache: dict[tuple[str, str, int | None], int] = {}
        if register_taxa:
            with self._read() as conn:
                for r in conn.execute(sa.select(TAXA.c.id, TAXA.c.rank, TAXA.c.name, TAXA.c.parent_id)):
                    taxa_cache.setdefault((r.rank, r.name, r.parent_id), r.id)
        totals = {"n_records": 0, "n_new": 0, "n_changed": 0, "n_unchanged": 0, "moved": 0}
        moved_from: list[tuple[str, str]] = []
        taxa_source = f"collection:{collection}"
        stored = 0  # quarantined records already in the table

        for chunk in _chunks(specimens, chunk_size):
            pending = list(quarantine[stored:]) if quarantine is not None else []

            def _do(conn: Connection, chunk: list[Specimen] = chunk,
                    pending: list[QuarantinedRecord] = pending
                    ) -> tuple[dict[str, int], dict[Any, int], list[tuple[str, str]]]:
                _store_quarantine(conn, iid, pending)
                return _ingest_chunk(conn, chunk, cid, iid, taxa_cache if register_taxa else None, taxa_source)

            counts, added, moved = self._write(_do, "store the specimens")
            totals["moved"] += len(moved)
            moved_from.extend(moved[:MOVED_KEPT - len(moved_from)])
            stored += len(pending)
            taxa_cache.update(added)  # only after the chunk committed (a retried chunk must not see rolled-back ids)
            for k, v in counts.items():
                totals[k] += v
            if on_progress is not None:
                on_progress(totals["n_records"])

        rest = list(quarantine[stored:]) if quarantine is not None else []
        n_quarantined = stored + len(rest)  # every row of the quarantine table: records and photos set aside
        n_records_set_aside, n_photos = count_set_aside(quarantine or [])
        written_file: str | None = None
        if quarantine_file is not None and n_quarantined:
            from biodiscover.storage.validation import write_quarantine

            # before the ingest is marked completed: if this fails the ingest stays unfinished and a re-run redoes it
            written_file = str(write_quarantine(list(quarantine or []), Path(quarantine_file), force=force).resolve())

        def _finish(conn: Connection) -> None:
            _store_quarantine(conn, iid, rest)
            conn.execute(sa.update(INGESTS).where(INGESTS.c.id == iid).values(
                status="completed", finished_at=utcnow(), n_quarantined=n_quarantined, quarantine_file=written_file))
            same_input = (INGESTS.c.checksum == checksum) if checksum is not None else sa.and_(
                INGESTS.c.checksum.is_(None),
                INGESTS.c.source == source_s if source_s is not None else INGESTS.c.source.is_(None))
            conn.execute(sa.update(INGESTS).where(
                INGESTS.c.collection_id == cid, INGESTS.c.id < iid, INGESTS.c.status == "running", same_input,
            ).values(status="interrupted"))

        self._write(_finish, "finish the ingest")
        self.optimize()
        log.info("ingested %d records into %s: %d new, %d changed, %d unchanged, %d set aside, %d photos set aside",
                 totals["n_records"], collection, totals["n_new"], totals["n_changed"], totals["n_unchanged"],
                 n_records_set_aside, n_photos)
        return IngestReport(collection, cid, iid, source_s, checksum, totals["n_records"], totals["n_new"],
                            totals["n_changed"], totals["n_unchanged"], backup=backup_path,
                            quarantined=n_records_set_aside, quarantine_file=written_file, photos_set_aside=n_photos,
                            moved=totals["moved"], moved_from=tuple(moved_from))

    def other_plate(self, collection: str, processids: Sequence[str]) -> tuple[int, list[str]] | None:
        """(its current specimens, its earlier inputs) when ``collection`` holds specimens and none of
        ``processids``; None when it holds none or shares one.

        Why: a collection is named after its file by default and ``collections.name`` is unique, so a new plate
        whose file has an earlier plate's name (labs reuse week1.csv every year) joined that collection silently;
        its exports then read two plates as one (e31 review F15). A file that shares no specimen with the
        collection of its name is another plate; one that shares some is that plate again (corrected, extended)."""
        with self._read() as conn:
            cid = conn.execute(sa.select(COLLECTIONS.c.id).where(COLLECTIONS.c.name == collection)).scalar()
            if cid is None:
                return None
            current = sa.and_(SPECIMENS.c.collection_id == cid, SPECIMENS.c.current.is_(True))
            held = int(conn.execute(sa.select(sa.func.count()).select_from(SPECIMENS).where(current)).scalar() or 0)
            if not held:
                return None
            for part in chunked(processids):
                if conn.execute(sa.select(SPECIMENS.c.id).where(current, SPECIMENS.c.processid.in_(part))
                                .limit(1)).first() is not None:
                    return None
            sources = conn.execute(sa.select(INGESTS.c.source).where(
                INGESTS.c.collection_id == cid, INGESTS.c.status == "completed", INGESTS.c.source.is_not(None))
                .order_by(INGESTS.c.id)).scalars().all()
        return held, list(dict.fromkeys(str(s) for s in sources))

    def ingest_file(self, path: Path | None, *, collection: str | None = None, images: Path | None = None,
                    **kwargs: Any) -> tuple[IngestReport, Any]:
        """Stream a collection (CSV/TSV/FASTA/image folder) through the validating reader and ingest it.

        Uses :func:`biodiscover.storage.collections.iter_collection`, so memory stays flat for
        big files. Returns the report and the reader, whose ``quarantine`` lists the
        rows that were refused (file, line, reason) and ``summary`` the counts; the
        refused rows are stored with the ingest (``quarantine_file=`` also writes them
        out). The file checksum covers ``images`` (see :func:`file_checksum`).
        """
        from biodiscover.storage.bioscan import BioscanDataset, is_dataset_root
        from biodiscover.storage.collections import iter_collection

        if path is not None and Path(path).is_dir() and images is None and is_dataset_root(Path(path)):
            dataset = BioscanDataset(Path(path))  # the official layout: metadata/…csv + images/…
            reader: Any = dataset.reader()
            origin = Path(dataset.metadata_path)
            name = collection or Path(path).name or "bioscan"
        else:
            reader = iter_collection(Path(path) if path is not None else None, images=images)
            origin = Path(path) if path is not None else Path(images) if images is not None else Path("collection")
            name = collection or origin.name.split(".")[0] or "collection"
        if "checksum" not in kwargs and origin.is_file():
            kwargs["checksum"] = file_checksum(origin, images)
        report = self.ingest(reader, collection=name, source=origin, quarantine=reader.quarantine, **kwargs)
        return report, reader

    def ingest_quarantine(self, ingest_id: int) -> list[QuarantinedRecord]:
        """The rows an ingest set aside, in the order they were found."""
        with self._read() as conn:
            rows = conn.execute(sa.select(QUARANTINE).where(QUARANTINE.c.ingest_id == ingest_id)
                                .order_by(QUARANTINE.c.id)).mappings().all()
        return [QuarantinedRecord(file=r["file"], line=r["line"], processid=r["processid"], kind=r["kind"],
                                  reason=r["reason"], raw=r["raw"]) for r in rows]

    # -- reads ----------------------------------------------------------------------------------------------
    def specimens(self, processids: Iterable[str] | None = None) -> list[Specimen]:
        """Current specimen records as :class:`~biodiscover.storage.records.Specimen` (all, or those named)."""
        q = sa.select(SPECIMENS).where(SPECIMENS.c.current.is_(True))
        out: list[Specimen] = []
        with self._read() as conn:
            if processids is None:
                rows = conn.execute(q.order_by(SPECIMENS.c.id)).mappings().all()
            else:
                ids = list(processids)
                rows = []
                for part in chunked(ids):
                    rows.extend(conn.execute(q.where(SPECIMENS.c.processid.in_(part))).mappings().all())
        for r in rows:
            out.append(row_to_specimen(r))
        return out


def row_to_specimen(r: Any) -> Specimen:
    """A ``specimens`` row back to the shared record type."""
    data = {c: r[COLUMN_KEYS[c]] for c in BIOSCAN_COLUMNS}
    spec = Specimen.from_row(data, source=r["source"], line=r["line"])
    if r["image_path"]:
        spec.image_path = Path(r["image_path"])
    spec.submitted_barcode = submitted_of_row(r)
    return spec


def submitted_of_row(r: Any) -> str | None:
    """A ``specimens`` row's barcode as submitted: the whole read where ingest cut it, the barcode itself
    where the recorded length says it was not cut, None where it was never recorded (a row written before
    schema 0006: a 660-nt barcode there may be a longer read's start, and nothing claims otherwise)."""
    if r["submitted_barcode"] is not None:
        return str(r["submitted_barcode"])
    return r["dna_barcode"] if r["submitted_barcode_length"] is not None else None


def _ancestors(conn: Connection, taxon_id: int | None) -> list[int]:
    out: list[int] = []
    while taxon_id is not None and len(out) < 32:
        out.append(taxon_id)
        taxon_id = conn.execute(sa.select(TAXA.c.parent_id).where(TAXA.c.id == taxon_id)).scalar()
    return out


def _compatible_taxon(conn: Connection, rank: str, name: str, parent: int | None) -> int | None:
    """An existing taxon ``rank``/``name`` placed compatibly with ``parent``, or None.

    Records of one genus often disagree on intermediate ranks (one names the
    subfamily, the next leaves it empty); without this the graph would grow a
    second *Megaselia*. A candidate is reused when it is the only live one of
    that rank and name and one placement contains the other.
    """
    found: list[int] = [int(r[0]) for r in conn.execute(sa.select(TAXA.c.id).where(
        TAXA.c.rank == rank, TAXA.c.name == name, TAXA.c.status != "rejected")).all()]
    if len(found) != 1:
        return None
    if parent is None:
        return found[0]
    cand_parent = conn.execute(sa.select(TAXA.c.parent_id).where(TAXA.c.id == found[0])).scalar()
    if cand_parent is None or parent in _ancestors(conn, cand_parent) or cand_parent in _ancestors(conn, parent):
        return found[0]
    return None


def ensure_lineage(conn: Connection, lineage: dict[str, Any], cache: dict[tuple[str, str, int | None], int],
                   added: dict[tuple[str, str, int | None], int], source: str) -> int | None:
    """Id of the deepest taxon of ``lineage`` (rank → name), creating missing taxa (status accepted)."""
    parent: int | None = None
    for rank in RANKS:
        name = lineage.get(rank)
        if not name:
            continue
        key = (rank, name, parent)
        tid = cache.get(key) or added.get(key)
        if tid is None:
            tid = conn.execute(sa.select(TAXA.c.id).where(TAXA.c.rank == rank, TAXA.c.name == name,
                                                          TAXA.c.parent_id.is_(parent) if parent is None
                                                          else TAXA.c.parent_id == parent)).scalar()
        if tid is None:
            tid = _compatible_taxon(conn, rank, name, parent)
        if tid is None:
            tid = inserted_id(conn.execute(sa.insert(TAXA).values(rank=rank, name=name, parent_id=parent,
                                                                  status="accepted",
                                                      source=source, created_at=utcnow())))
        added[key] = tid
        parent = tid
    return parent


def _ingest_chunk(conn: Connection, chunk: list[Specimen], cid: int, iid: int,
                  taxa_cache: dict[tuple[str, str, int | None], int] | None, taxa_source: str,
                  ) -> tuple[dict[str, int], dict[tuple[str, str, int | None], int], list[tuple[str, str]]]:
    rows: dict[str, dict[str, Any]] = {}
    for spec in chunk:
        values = specimen_values(spec)
        if spec.processid in rows:
            log.warning("%s: duplicate processid in one ingest; keeping the first record", spec.where)
            continue
        rows[spec.processid] = values
    existing = {
        r.processid: r for r in conn.execute(
            sa.select(SPECIMENS.c.id, SPECIMENS.c.processid, SPECIMENS.c.version, SPECIMENS.c.record_hash,
                      SPECIMENS.c.dna_barcode, COLLECTIONS.c.name.label("collection"), SPECIMENS.c.collection_id)
            .join(COLLECTIONS, COLLECTIONS.c.id == SPECIMENS.c.collection_id)
            .where(SPECIMENS.c.current.is_(True), SPECIMENS.c.processid.in_(list(rows))))
    }
    moved: list[tuple[str, str]] = []  # (processid, the collection that held it) with another barcode
    inserts: list[dict[str, Any]] = []
    retire: list[int] = []
    new = changed = unchanged = 0
    for pid, values in rows.items():
        h = record_hash(values)
        old = existing.get(pid)
        if old is not None and old.record_hash == h:
            unchanged += 1
            continue
        version = 1
        if old is not None:
            retire.append(old.id)
            version = old.version + 1
            changed += 1
            if old.collection_id != cid and old.dna_barcode != values.get("dna_barcode"):
                moved.append((pid, old.collection))
        else:
            new += 1
        inserts.append({**values, "record_hash": h, "version": version, "current": True,
                        "collection_id": cid, "ingest_id": iid})
    if retire:
        conn.execute(sa.update(SPECIMENS).where(SPECIMENS.c.id.in_(retire)).values(current=False))
    if inserts:
        # Raw executemany: SQLAlchemy's per-row overhead would dominate a million-row ingest.
        raw = dbapi(conn)
        assert raw is not None
        raw.executemany(_INSERT_SQL, [tuple(v[c] for c in _INSERT_COLUMNS) for v in inserts])
    added: dict[tuple[str, str, int | None], int] = {}
    if inserts and taxa_cache is not None:
        seen: set[tuple[Any, ...]] = set()
        for values in inserts:
            key = tuple(values.get(r) for r in RANKS)
            if key not in seen:
                seen.add(key)  # pragma: no mutate it only skips repeating the idempotent ensure_lineage
                # the collection's taxa as the analysis reads its labels; the specimen row keeps them as supplied
                ensure_lineage(conn, read_lineage(values), taxa_cache, added, taxa_source)
    n = len(chunk)
    conn.execute(sa.update(INGESTS).where(INGESTS.c.id == iid).values(
        n_records=INGESTS.c.n_records + n, n_new=INGESTS.c.n_new + new, n_changed=INGESTS.c.n_changed + changed,
        n_unchanged=INGESTS.c.n_unchanged + unchanged + (n - len(rows))))
    return ({"n_records": n, "n_new": new, "n_changed": changed, "n_unchanged": unchanged + (n - len(rows))},
            added, moved)
