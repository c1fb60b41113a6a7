"""``biodiscover run``: batch discovery over many collections, resumable, with a log file.

Why this shape: a data team points ``run`` at a night's worth of collections and
expects (1) every collection triaged once — a killed job re-run with the same
command continues where it stopped and never writes a collection twice;
(2) one bad collection not to sink the rest; (3) an exit code a scheduler can
act on; (4) a log to read in the morning.

How:

* :func:`discover_collections` expands ``DIR`` (every ``*.csv``, ``*.csv.gz``,
  ``*.tsv``, ``*.fasta``/``*.fa``/``*.fas`` in it, sorted) or a glob; a
  collection's images are the sibling folder ``<stem>_images/`` when present;
* each collection gets a **key** = sha256 of its bytes (+ its images' names),
  so a renamed file is still recognised and an edited one is triaged again;
* per-collection state lives in the database's runs table (:class:`RunLedger`):
  each collection gets a ``batch_item`` run whose parameters hold its key and
  the model fingerprint, finished ``completed`` (its triage run id in the run's
  ``result``) once triage succeeded. A completed item with the same key and model → the
  collection is skipped; so is one the database holds a completed ``triage`` run of (same bytes by the
  ingest's checksum, same model, same level: ``Database.triaged_input``), the skipped row naming that run —
  a reviewed week triaged again would re-cluster its pending candidates under new numbers. ``--force``
  triages every collection again (except those the stopped batch it resumes did). An item or triage run
  left ``running`` by a killed process (same host and its pid is gone, or no heartbeat for
  ``stale_after_s``) is marked ``interrupted`` and the collection triaged
  again; the interrupted run's partial rows belong to a run that is not
  ``completed`` (and its pending proposals are superseded by the re-run's), so
  exports and the review queue never see a specimen twice. Limitation: two
  ``run`` processes on the same database at the same time are not coordinated;
* triage itself is E1's pipeline (``workflows.triage``); this module never
  reimplements it. The model bundle is opened once per batch (its
  fingerprint keys the ledger) and the engine is loaded once, lazily — a
  batch whose collections are all done never loads it — and handed to every
  collection's triage;
* exit codes (:attr:`BatchSummary.exit_code`): 0 every collection ok or skipped
  as done; 1 some collection failed or had rows set aside by this run (not those
  a skipped collection's earlier run set aside); 2 bad input (no collections, no
  model, unusable database) — raised as ``BiodiscoverError`` before any work.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from biodiscover.storage.bundle import Bundle
from biodiscover.storage.errors import BiodiscoverError, InputError
from biodiscover.storage.progress import Progress, describe
from biodiscover.storage.records import plural
from biodiscover.workflows.executors import ExecutorConfig

log = logging.getLogger(__name__)

COLLECTION_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".fasta", ".fa", ".fas", ".fasta.gz")
#: A ``running`` triage run whose heartbeat is older than this is taken as killed.
STALE_AFTER_S = 120.0
BATCH_RUN_KIND = "batch"
TRIAGE_RUN_KIND = "triage"

Status = Literal["ok", "quarantined", "skipped", "failed"]


@dataclass(frozen=True)
class BatchConfig:
    """Everything ``biodiscover run`` needs (frozen: one batch, one configuration)."""

    collections: str
    model: Path
    db: Path
    log_file: Path | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    stale_after_s: float = STALE_AFTER_S
    #: P(right) a rank needs to be named (None: the bundle's), recorded with each collection's triage run; a
    #: collection done at another level is triaged again (what ``--level`` is given for, after an advisory)
    level: float | None = None
    #: triage every collection again, even one done before (by a batch or by ``triage``); a batch resumed after a
    #: stop still skips what the stopped batch did
    force: bool = False
    #: how each collection's share of absent taxa is estimated (``workflows.triage.ABSENT_SHARES``): ``season``
    #: pulls each toward the share of the database's other plates, those done earlier in this batch included
    absent_share: str = "plate"

    def __post_init__(self) -> None:
        from biodiscover.workflows.triage import check_absent_share

        check_absent_share(self.absent_share)


@dataclass(frozen=True)
class CollectionSpec:
    """One collection file (its real place), its images folder (if any) and its content key; ``listed``: the path
    the folder or pattern gave for it, a link's own (None: ``path``); ``notes``: the lines the batch says of how
    it was reached (a link out of the folder, other names for the same file: :func:`discover_collections`)."""

    path: Path
    images: Path | None
    key: str
    listed: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return (self.listed or self.path).name


@dataclass
class BatchEvent:
    """A progress event for the CLI (library code never draws)."""

    kind: Literal["batch_start", "batch_resume", "collection_start", "stage", "collection_done",
                  "collection_skipped", "collection_failed", "batch_done"]
    collection: str = ""
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""


@dataclass
class CollectionOutcome:
    """What happened to one collection (one row of the summary)."""

    collection: str
    path: str
    key: str
    status: Status
    run_id: int | None = None
    specimens: int = 0
    quarantined: int = 0
    named_to_species: int = 0
    #: of ``named_to_species``, those named to a provisional species a reviewer accepted (``… sp. BD-0007``)
    provisional_species: int = 0
    #: named to genus and no further
    named_to_genus: int = 0
    novel: int = 0
    proposals: int = 0
    seconds: float = 0.0
    #: photos set aside from specimens kept without them (listed in the collection's quarantine report)
    photos_set_aside: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    #: triage's advisories for the collection (``TriageSummary.advisories``), shown under the table
    advisories: list[str] = field(default_factory=list)
    #: the quarantine report of the rows and photos set aside, and the first of them as one line
    quarantine_file: str | None = None
    first_set_aside: str | None = None
    #: skipped because the interrupted batch this one resumes had finished it (its advisories are shown again:
    #: the stopped batch never printed its table)
    done_before_stop: bool = False
    #: skipped because of a completed triage run of this very input with no batch record of it (``triage``'s, as a
    #: reviewer triages week by week): the line under the table names it and how to redo it
    triaged_before: bool = False

    @property
    def set_aside_before(self) -> bool:
        """Skipped as done by an earlier run (not by the stopped batch this one resumes), so what it set aside was
        set aside then, not by this run (:attr:`BatchSummary.exit_code`)."""
        return self.status == "skipped" and not self.done_before_stop

    def set_aside_lines(self) -> list[str]:
        """What ``triage`` says of the rows and photos it set aside from this collection, in its words
        (``workflows.triage.set_aside_lines``): a ``warning:`` line for the first record, then how many more and
        the report listing every one; empty when nothing was set aside."""
        from biodiscover.workflows.triage import set_aside_lines

        shown = [self.first_set_aside] if self.first_set_aside else []
        return set_aside_lines(shown, self.quarantined + self.photos_set_aside, self.quarantine_file, self.collection)


def status_counts(outcomes: Sequence[CollectionOutcome]) -> dict[str, int]:
    """How many collections have each status."""
    return dict(Counter(o.status for o in outcomes))


def counts_line(outcomes: Sequence[CollectionOutcome]) -> str:
    """``4 collections: 2 ok, 1 quarantined, 1 skipped``: the one way the table and the batch's stored run say it.
    Why: the run stored "4 of 4 collections ok" for a batch whose table said 2 ok, 1 quarantined, 1 skipped (e31
    review F28)."""
    return (f"{plural(len(outcomes), 'collection')}: "
            + ", ".join(f"{v} {k}" for k, v in sorted(status_counts(outcomes).items())))


@dataclass
class BatchSummary:
    """Per-collection outcomes, totals and the exit code."""

    outcomes: list[CollectionOutcome]
    log_file: Path
    seconds: float
    batch_run_id: int | None = None
    #: the interrupted batch run this one went on from (same collections, stopped by Ctrl-C or a kill), else None
    resumed: int | None = None
    #: what the batch says of how its collections were reached (``CollectionSpec.notes``: links)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 when a collection failed or had rows or photos set aside by this run (or by the stopped batch it
        resumes, which never gave its exit code); else 0, also when a collection skipped as done had rows set
        aside by its earlier run (:attr:`CollectionOutcome.set_aside_before`).

        Why: a nightly cron acts on the exit code. A season's run of 6 weeks, 5 of them skipped as done, exited 1
        every night for a 106-nt read set aside days before (e36 season review F8), so a crash tonight and last
        week's short read looked alike. The skipped collection's set-aside lines are still printed (the same
        bytes still have those rows out of the database, as ``validate`` of the file says: e31 review F28), and
        the counts line says they are from earlier runs."""
        return 1 if any(o.status in ("failed", "quarantined") or (o.set_aside_lines() and not o.set_aside_before)
                        for o in self.outcomes) else 0

    def exit_said(self) -> str:
        """``exit 1``, or ``exit 0: the rows set aside above were set aside by earlier runs`` where the table shows
        only set-aside lines of collections skipped as done (why they do not make it exit 1: :attr:`exit_code`)."""
        code = self.exit_code
        if code == 0 and any(o.set_aside_lines() for o in self.outcomes):
            return "exit 0: the rows set aside above were set aside by earlier runs"
        return f"exit {code}"

    def counts(self) -> dict[str, int]:
        return status_counts(self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "seconds": round(self.seconds, 3), "log_file": str(self.log_file),
                "batch_run_id": self.batch_run_id, "resumed": self.resumed, "counts": self.counts(),
                "notes": self.notes,
                "collections": [asdict(o) for o in self.outcomes]}

    def table(self) -> str:
        """Plain-text per-collection summary for the terminal.

        A skipped collection shows its run's figures (what a morning report must still say of it). Under the
        table: how links reached collections (:attr:`notes`), one ``error:`` line per failed collection,
        ``triage``'s ``warning:`` line for the first row set aside from a collection (then how many more, and the
        report), then triage's advisories of each collection triaged now (or by the stopped batch this one
        resumes)."""
        head = f"{'collection':<32} {'status':<11} {'run':>5} {'specimens':>9} {'quar.':>6} {'species':>8} " \
               f"{'prov.':>6} {'genus':>6} {'novel':>6} {'cands':>6} {'secs':>7}"
        lines = [head, "-" * len(head)]
        for o in self.outcomes:
            lines.append(f"{o.collection[:32]:<32} {o.status:<11} {o.run_id if o.run_id is not None else '-':>5} "
                         f"{o.specimens:>9} {o.quarantined:>6} {o.named_to_species:>8} {o.provisional_species:>6} "
                         f"{o.named_to_genus:>6} {o.novel:>6} {o.proposals:>6} {o.seconds:>7.1f}")
        if any(o.provisional_species for o in self.outcomes):
            lines.append("prov.: of the species names, those of provisional species reviewers accepted "
                         "(… sp. BD-NNNN)")
        lines.extend(self.notes)
        for o in self.outcomes:
            if o.error:
                lines.append(f"error: {o.error}")
            lines.extend(o.set_aside_lines())
        for o in self.outcomes:
            if o.status != "skipped" or o.done_before_stop:
                lines.extend(f"{o.collection}: {line}" for line in o.advisories)
            if o.triaged_before:
                lines.append(f"{o.collection}: skipped: triaged into this database before as run {o.run_id} (same "
                             "bytes, same model, same level); --force triages it again")
        lines.append(f"{counts_line(self.outcomes)} in {self.seconds:.1f}s ({self.exit_said()})")
        said = self.batch_line()
        if said:
            lines.append(said)
        return "\n".join(lines)

    def batch_line(self) -> str | None:
        """``batch run 6 (resuming batch run 1): export --run 6 exports its 4 collections as one``: the id this batch
        wrote, which the table's runs are not. Why: README says to export "the batch's own run id", and only
        ``--json`` had it; after a resume the screen named only the stopped batch's id."""
        if self.batch_run_id is None:
            return None
        head = f"batch run {self.batch_run_id}" + (f" (resuming batch run {self.resumed})" if self.resumed else "")
        exported = sum(o.run_id is not None for o in self.outcomes)
        if not exported:
            return f"{head}: no collection triaged, nothing to export"
        return f"{head}: export --run {self.batch_run_id} exports its {plural(exported, 'collection')} as one"


# -- collections ---------------------------------------------------------------------------------------------

def _is_collection(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and name.endswith(COLLECTION_SUFFIXES) \
        and not name.endswith(".quarantine.csv")


def collection_key(path: Path, images: Path | None) -> str:
    """sha256 of the collection's bytes and its image file names (content, not path, identifies it)."""
    with open(path, "rb") as fh:
        h = hashlib.file_digest(fh, "sha256")  # streamed in blocks
    if images is not None:
        for p in sorted(images.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(images)).encode())
                h.update(str(p.stat().st_size).encode())
    return h.hexdigest()


def discover_collections(spec: str) -> list[CollectionSpec]:
    """Expand ``DIR`` or a glob into collection files (sorted); none found is bad input.

    Links are followed, and each file they reach is one collection. Why: a link beside its target
    (``alias.csv -> plate.csv``), or a glob walking into a linked folder, listed the same file twice and the batch
    triaged it twice, the same specimens stored under two runs (e35 review Q4). The name kept is the one that
    reaches the file without a link, else the first listed; each other name gets a ``skipped:`` line. A file
    outside the folder (or the pattern's folder) is triaged under its link's name, with a ``warning:`` line
    saying where it is: a folder of links is a way to gather a batch, and triage writes its quarantine report
    beside the file it read (``storage.validation.quarantine_path_for``), there rather than in the folder."""
    from biodiscover.storage.validation import real_place

    root = Path(spec).expanduser()
    base: Path | None = root
    if root.is_dir():
        paths = sorted(p for p in root.iterdir() if _is_collection(p))
        where = f"folder {root}"
    elif root.is_file():
        paths = [root] if _is_collection(root) else []
        where, base = f"file {root}", None  # the file the user named, link or not
    else:
        paths = sorted(Path(p) for p in glob.glob(str(root), recursive=True) if _is_collection(Path(p)))
        where = f"pattern {spec!r}"
        literal = list(itertools.takewhile(lambda part: not glob.has_magic(part), root.parts))
        base = Path(*literal) if literal else Path(".")
    if not paths:
        raise InputError(f"no collections found in {where} (looked for {', '.join(COLLECTION_SUFFIXES)})")
    folder = real_place(base) if base is not None else None
    reached: dict[Path, list[Path]] = {}
    for p in paths:
        reached.setdefault(real_place(p), []).append(p)
    out = []
    for real, names in reached.items():
        direct = [p for p in names if not p.is_symlink() and folder is not None
                  and real_place(p.parent).is_relative_to(folder)]
        p = (direct or names)[0]
        notes = [f"{other}: skipped: the same file as {p} (through a link); triaged once, as {p.name}"
                 for other in names if other != p]
        if folder is not None and not real.is_relative_to(folder):
            notes.insert(0, f"warning: {p}: is {real} (through a link), outside {base}: triaged from there; a "
                            "quarantine report of it goes beside it")
        stem = p.name
        for suffix in sorted(COLLECTION_SUFFIXES, key=len, reverse=True):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        beside = p.parent / f"{stem}_images"
        images = real_place(beside) if beside.is_dir() else None
        out.append(CollectionSpec(path=real, images=images, key=collection_key(p, beside if images else None),
                                  listed=p, notes=tuple(notes)))
    return sorted(out, key=lambda s: str(s.listed))


# -- logging -------------------------------------------------------------------------------------------------

class _SaidInTheSummary(logging.Filter):
    """Keeps the batch's own records off the other handlers (the console): what they say (a collection failed,
    rows set aside) the summary says once, under its table; the log file keeps them. A failure had been printed
    three times, once as a raw ``ERROR`` line glued onto the progress bar."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != log.name


_SUMMARISED = _SaidInTheSummary()


def _attach_log(log_file: Path) -> logging.Handler:
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    for h in root.handlers:
        if h is not handler:
            h.addFilter(_SUMMARISED)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
        for h in root.handlers:  # keep the console as quiet as the user asked
            if h is not handler and h.level == logging.NOTSET:
                h.setLevel(logging.WARNING)
    return handler


def _detach_log(handler: logging.Handler) -> None:
    root = logging.getLogger()
    root.removeHandler(handler)
    handler.close()
    for h in root.handlers:
        h.removeFilter(_SUMMARISED)


#: The default run logs (:func:`default_log_file`) kept beside a database: each ``run`` keeps its own and the
#: newest before it, up to this many in all (as ``storage.db.backup.KEEP_AUTOMATIC`` bounds the backups).
KEEP_RUN_LOGS = 10
#: A default run log's name after ``<db file name>``: the UTC second it started.
_RUN_LOG_NAME = r"\.run-\d{8}T\d{6}Z\.log"


def default_log_file(db: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return db.with_name(f"{db.name}.run-{stamp}.log")


def prune_run_logs(db: Path, current: Path, keep: int = KEEP_RUN_LOGS) -> list[Path]:
    """Delete all but the newest ``keep`` default run logs of ``db`` (``current``, the one this run writes, always
    stays); returns those deleted.

    Why: ``run`` writes one log per invocation beside the database; after a few weeks of nightly batches there
    were dozens. Only a file whose whole name is one :func:`default_log_file` gives (``<db>.run-<UTC
    time>.log``), a plain file and not a link, is ever deleted: a log named with ``--log``, a copy renamed, or
    another database's logs are never touched. Newest by the time in the name."""
    pattern = re.compile(re.escape(db.name) + _RUN_LOG_NAME)
    try:
        logs = sorted((p for p in db.absolute().parent.iterdir() if pattern.fullmatch(p.name) and not p.is_symlink()
                       and p.is_file() and p.absolute() != current.absolute()), key=lambda p: p.name, reverse=True)
    except OSError as exc:  # an unreadable folder: the logs stay, the run goes on
        log.warning("%s: could not list the old run logs (%s)", db.absolute().parent, exc.strerror)
        return []
    deleted = []
    for old in logs[max(keep - 1, 0):]:
        try:
            old.unlink()
        except OSError as exc:
            log.warning("%s: could not delete this old run log (%s)", old, exc.strerror)
            continue
        deleted.append(old)
    if deleted:
        log.info("deleted %d old run logs of %s (the newest %d are kept)", len(deleted), db.name, keep)
    return deleted


# -- per-collection state in the runs table ------------------------------------------------------------------

ITEM_RUN_KIND = "batch_item"


class RunLedger:
    """Which collections are done, read from and written to the database's runs table.

    Each collection triaged by a batch gets a ``batch_item`` run whose parameters
    hold the collection key, path and model fingerprint; it is finished
    ``completed`` with its triage run id in ``result`` once triage succeeded,
    ``failed`` otherwise. A ``running`` item (or triage) run whose process is gone
    (same host, pid dead) or whose heartbeat is older than ``stale_after_s`` is
    marked ``interrupted`` by :meth:`recover`. The queries are
    :class:`~biodiscover.storage.db.Database` methods (``interrupt_dead_runs``,
    ``find_completed_run``): no SQL and no message parsing here.
    """

    def __init__(self, db: Any, stale_after_s: float = STALE_AFTER_S) -> None:
        self.db = db
        self.stale_after_s = stale_after_s

    def recover(self) -> list[int]:
        """Mark runs left ``running`` by a dead process as ``interrupted``; returns their ids."""
        return self.db.interrupt_dead_runs(
            (ITEM_RUN_KIND, TRIAGE_RUN_KIND, BATCH_RUN_KIND), self.stale_after_s,
            message="process gone before the run finished; biodiscover run resumes this collection")

    def done(self, key: str, model_fingerprint: str | None, level: float | None = None) -> Any:
        """The completed item (a ``RunProgress``) with this collection key, model and ``--level`` (None: the
        bundle's; an item written before the level was recorded has none), else None."""
        return self.db.find_completed_run(ITEM_RUN_KIND, {"collection_key": key,
                                                          "model_fingerprint": model_fingerprint, "level": level})

    def completed(self, key: str, model_fingerprint: str | None, level: float | None = None) -> int | None:
        """Triage run id of a completed item with this collection key and model, else None (-1: id unknown)."""
        item = self.done(key, model_fingerprint, level)
        if item is None:
            return None
        triage_run = item.result.get("triage_run_id")
        return int(triage_run) if isinstance(triage_run, int) else -1

    def start(self, spec: CollectionSpec, model_fingerprint: str | None, batch_run_id: int | None,
              level: float | None = None) -> int:
        return self.db.start_run(ITEM_RUN_KIND, {"collection_key": spec.key, "path": str(spec.path),
                                                 "images": str(spec.images) if spec.images else None,
                                                 "model_fingerprint": model_fingerprint,
                                                 "batch_run_id": batch_run_id, "level": level},
                                 model_fingerprint=model_fingerprint, backup=False)

    def finish(self, item_run: int, outcome: CollectionOutcome) -> None:
        """End the item: completed with its triage run id and figures (shown again when a later batch skips the
        collection), or failed with the error."""
        if outcome.status in ("ok", "quarantined"):
            self.db.finish_run(item_run, "completed",
                               message=f"triage run {outcome.run_id}: {plural(outcome.specimens, 'specimen')}, "
                                       f"{outcome.quarantined} quarantined, "
                                       f"{plural(outcome.proposals, 'candidate')}",
                               result={"triage_run_id": outcome.run_id,
                                       "figures": {k: getattr(outcome, k) for k in STORED_FIGURES}})
        else:
            self.db.finish_run(item_run, "failed", message=(outcome.error or "failed")[:500])


#: what a completed item stores of its collection's outcome (``RunLedger.finish``), for a later batch's table
STORED_FIGURES: tuple[str, ...] = ("specimens", "quarantined", "named_to_species", "provisional_species",
                                   "named_to_genus", "novel", "proposals", "photos_set_aside", "advisories",
                                   "quarantine_file", "first_set_aside")


def stored_outcome(outcome: CollectionOutcome, item: Any, database: Any) -> None:
    """Fill a skipped collection's ``outcome`` with the figures of the run that did it: those its item stored, or,
    for an item written before they were, the run's figures counted again from its rows
    (``Database.run_figures``). Why: a re-run showed every done collection as ``0 0 0 0``, in the table and in
    ``--json``, and a nightly report then said week 1 had no specimens."""
    figures = item.result.get("figures")
    if isinstance(figures, dict):
        for k in STORED_FIGURES:
            if k in figures:
                setattr(outcome, k, figures[k])
        return
    if outcome.run_id is None:
        return
    counted = database.run_figures(outcome.run_id)
    for k in ("specimens", "quarantined", "named_to_species", "provisional_species", "named_to_genus", "novel",
              "proposals"):
        setattr(outcome, k, int(counted.get(k, 0)))
    outcome.quarantine_file, outcome.first_set_aside = counted.get("quarantine_file"), counted.get("first_set_aside")


# -- triage of one collection (E1's pipeline) ----------------------------------------------------------------

@dataclass
class TriageCall:
    """Everything one collection's triage gets from the batch.

    ``bundle`` is the batch's open model bundle; ``engine()`` returns the
    discovery engine loaded from it (once per batch, on first use), wrapped to
    run its per-specimen work through ``executor``.
    """

    spec: CollectionSpec
    model: Path
    db_path: Path
    database: Any
    executor: Any
    stage: Progress
    parameters: dict[str, Any]
    bundle: Bundle | None = None
    engine: Callable[[], Any] | None = None
    #: ``BatchConfig.level``
    level: float | None = None
    #: ``BatchConfig.absent_share``
    absent_share: str = "plate"


@dataclass
class TriageReport:
    """What the batch needs back from triage for its summary."""

    run_id: int
    specimens: int = 0
    quarantined: int = 0
    named_to_species: int = 0
    novel: int = 0
    proposals: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    photos_set_aside: int = 0
    provisional_species: int = 0
    named_to_genus: int = 0
    advisories: list[str] = field(default_factory=list)
    quarantine_file: str | None = None
    first_set_aside: str | None = None


TriageFn = Callable[[TriageCall], TriageReport]


# -- the batch -----------------------------------------------------------------------------------------------

def run_batch(config: BatchConfig, progress: Callable[[BatchEvent], None] | None = None, *,
              triage: TriageFn | None = None) -> BatchSummary:
    """Triage every collection of ``config.collections`` into ``config.db``; see the module docstring.

    Raises ``BiodiscoverError`` (exit 2) for bad input found before any work:
    no collections, no model bundle, an unusable database. Per-collection
    problems never raise: they become ``failed`` outcomes (exit 1).
    """
    from biodiscover.storage.db.database import Database
    from biodiscover.workflows.executors import make_executor

    emit = progress or (lambda event: None)
    t_batch = time.perf_counter()
    specs = discover_collections(config.collections)
    bundle = Bundle.open(config.model)  # a missing or damaged bundle is bad input (exit 2) before any work
    fingerprint = bundle.fingerprint
    triage_fn = triage or default_triage
    log_file = Path(config.log_file) if config.log_file else default_log_file(Path(config.db))
    # an unusable --db (a folder, damaged, read-only) is refused before the log is made: a refused run left a log
    # beside a folder it never used (e31 review F14)
    database = Database.open_or_create(Path(config.db))
    try:
        handler = _attach_log(log_file)
    except OSError as exc:
        database.close()
        raise InputError(f"cannot write the log file {log_file}: {exc.strerror}") from None
    if not config.log_file:  # a log named with --log is the user's: theirs to keep, and nothing is pruned
        prune_run_logs(Path(config.db), log_file)
    executor = None
    outcomes: list[CollectionOutcome] = []
    batch_run: int | None = None
    resumed: int | None = None
    try:
        ledger = RunLedger(database, config.stale_after_s)
        recovered = ledger.recover()
        if recovered:
            log.info("runs %s had been left running by a process that is gone: marked interrupted", recovered)
        stopped = _stopped_batch(database, config)
        done = _done_before(database, ledger, specs, config, bundle, stopped)
        engine = _lazy_engine(bundle)
        to_triage = any(item is None for item in done.values())
        if to_triage:
            engine()  # load now: a damaged bundle is bad input (exit 2), found before any collection
        log.info("batch over %d collections with model %s (%s)", len(specs), config.model, fingerprint)
        for spec in specs:
            for line in spec.notes:
                log.info("%s", line)
        batch_run = database.start_run(BATCH_RUN_KIND, {"collections": config.collections,
                                                        "model": str(config.model), "n_collections": len(specs),
                                                        "executor": config.executor.kind, "level": config.level,
                                                        "force": config.force,
                                                        "resumes": stopped.id if stopped else None},
                                       model_fingerprint=fingerprint, total=len(specs),
                                       # a batch that skips every collection writes only its own run row: no copy of
                                       # the database for it (a several-GB copy each morning the folder was unchanged)
                                       backup=to_triage)
        executor = make_executor(config.executor)
        engine = _lazy_engine(bundle, executor, engine)
        emit(BatchEvent("batch_start", total=len(specs)))
        if stopped is not None:
            resumed = stopped.id
            said = _resume_message(stopped.id, specs, done)
            log.info("%s", said)
            emit(BatchEvent("batch_resume", message=said))
            # the stopped batch is history now: it says which batch went on from it (it read as a batch still to
            # be resumed, for good)
            database.finish_run(stopped.id, stopped.status, message=f"{stopped.message or stopped.status}; resumed "
                                f"by batch run {batch_run}", result={**stopped.result, "resumed_by": batch_run})
        for i, spec in enumerate(specs):
            outcome = _one_collection(spec, config, database, ledger, executor, triage_fn, fingerprint, batch_run,
                                      emit, bundle, engine, done=done[spec.key], resumed=resumed)
            outcomes.append(outcome)
            database.heartbeat(batch_run, done=i + 1, total=len(specs),
                               message=f"{spec.name}: {outcome.status}")
        failed = sum(o.status == "failed" for o in outcomes)
        database.finish_run(batch_run, "completed" if not failed else "failed",
                            message=counts_line(outcomes),
                            result={"triage_runs": {o.collection: o.run_id for o in outcomes
                                                    if o.run_id is not None}})
    except KeyboardInterrupt:
        if database is not None and batch_run is not None:
            database.finish_run(batch_run, "interrupted", message="stopped by the user")
        raise
    finally:
        if executor is not None:
            executor.close()
        if database is not None:
            database.close()
        _detach_log(handler)
    summary = BatchSummary(outcomes, log_file, time.perf_counter() - t_batch, batch_run, resumed,
                           [line for spec in specs for line in spec.notes])
    emit(BatchEvent("batch_done", total=len(specs), message=json.dumps(summary.counts())))
    return summary


def _stopped_batch(database: Any, config: BatchConfig) -> Any:
    """The batch this one goes on from: the latest batch run, when it was stopped (Ctrl-C, or a kill found by
    ``RunLedger.recover``) over the same collections and no batch has gone on from it yet; else None."""
    last = database.latest_run(kind=BATCH_RUN_KIND)
    if last is None or last.status != "interrupted" or "resumed_by" in last.result:
        return None
    return last if last.parameters.get("collections") == config.collections else None


def _done_before(database: Any, ledger: RunLedger, specs: Sequence[CollectionSpec], config: BatchConfig,
                 bundle: Bundle, stopped: Any) -> dict[str, Any]:
    """Each collection's run that did it before, by key: its completed batch item, else a completed ``triage`` run
    of the same bytes, model and level (``Database.triaged_input``), else None (to be triaged now).

    With ``config.force`` only the items of the stopped batch this one resumes (and of those it went on from)
    count: the same ``run --force`` again after a Ctrl-C goes on from the stop rather than starting over."""
    from biodiscover.storage.db.ingest import file_checksum

    level = config.level if config.level is not None else _bundle_level(bundle)
    resumed = _resumed_batches(database, stopped)
    fingerprints = bundle.fingerprints  # this model under each fingerprint a version recorded for it
    out: dict[str, Any] = {}
    for spec in specs:
        item = next((x for fp in fingerprints if (x := ledger.done(spec.key, fp, config.level))), None)
        if item is not None and config.force and item.parameters.get("batch_run_id") not in resumed:
            item = None
        if item is None and not config.force:
            checksum = file_checksum(spec.path, spec.images)
            item = database.triaged_input(checksum, fingerprints, level)
        out[spec.key] = item
    return out


def _bundle_level(bundle: Bundle) -> float | None:
    """The naming level the bundle's engine was saved with (what a triage without ``--level`` records), else None."""
    level = (bundle.manifest.get("discovery") or {}).get("level")
    return float(level) if isinstance(level, (int, float)) and not isinstance(level, bool) else None


def _resumed_batches(database: Any, stopped: Any) -> set[int]:
    """The ids of ``stopped`` and of each batch it went on from in turn (none without ``stopped``)."""
    ids: set[int] = set()
    while stopped is not None and stopped.id not in ids:
        ids.add(stopped.id)
        before = stopped.parameters.get("resumes")
        stopped = database.run_progress(int(before)) if isinstance(before, int) else None
    return ids


def _resume_message(stopped: int, specs: Sequence[CollectionSpec], done: Mapping[str, Any]) -> str:
    """``resuming batch run 3 (stopped before it finished): done 2 (a.csv, b.csv); to go 3 (c.csv, …)``: what a
    re-run after a stop takes up (it had said nothing, and started a batch of its own as if from scratch)."""
    def names(group: list[str]) -> str:
        return ", ".join(group[:5]) + (f" and {len(group) - 5} more" if len(group) > 5 else "")

    finished = [s.name for s in specs if done.get(s.key) is not None]
    to_go = [s.name for s in specs if done.get(s.key) is None]
    return (f"resuming batch run {stopped} (stopped before it finished): done {len(finished)}"
            + (f" ({names(finished)})" if finished else "") + f"; to go {len(to_go)}"
            + (f" ({names(to_go)})" if to_go else ""))


def _lazy_engine(bundle: Bundle, executor: Any = None, load: Callable[[], Any] | None = None
                 ) -> Callable[[], Any]:
    """The batch's engine, loaded from ``bundle`` (or by ``load``) on the first call, once.

    With an ``executor`` it comes wrapped so its per-specimen work runs there.
    """
    loaded: list[Any] = []
    lock = threading.Lock()

    def engine() -> Any:
        with lock:
            if not loaded:
                if load is not None:
                    model = load()
                else:
                    from biodiscover.discovery.engine import DiscoveryModel

                    model = DiscoveryModel.from_bundle(bundle)
                if executor is not None:
                    from biodiscover.workflows.executors import ExecutorModel

                    model = ExecutorModel(model, executor)
                loaded.append(model)
            return loaded[0]
    return engine


def _one_collection(spec: CollectionSpec, config: BatchConfig, database: Any, ledger: RunLedger, executor: Any,
                    triage_fn: TriageFn, fingerprint: str, batch_run: int | None,
                    emit: Callable[[BatchEvent], None], bundle: Bundle | None = None,
                    engine: Callable[[], Any] | None = None, *, done: Any = None,
                    resumed: int | None = None) -> CollectionOutcome:
    outcome = CollectionOutcome(spec.name, str(spec.path), spec.key, "ok")
    if done is not None:
        done_run = done.id if done.kind == TRIAGE_RUN_KIND else done.result.get("triage_run_id")
        outcome.status, outcome.run_id = "skipped", (int(done_run) if isinstance(done_run, int) else None)
        outcome.triaged_before = done.kind == TRIAGE_RUN_KIND
        stored_outcome(outcome, done, database)
        outcome.done_before_stop = resumed is not None and done.parameters.get("batch_run_id") == resumed
        if not (outcome.quarantined or outcome.photos_set_aside):
            _drop_stale_report(spec)  # one an earlier version left when the fixed file ran clean
        log.info("%s: already triaged with this model%s (run %s); skipped", spec.name,
                 f" at level {config.level}" if config.level is not None else "", outcome.run_id)
        emit(BatchEvent("collection_skipped", spec.name, message=f"already done (triage run {outcome.run_id})"))
        return outcome
    emit(BatchEvent("collection_start", spec.name))
    item_run = ledger.start(spec, fingerprint, batch_run, config.level)
    t0 = time.perf_counter()
    stage_started: dict[str, float] = {}
    lock = threading.Lock()  # called from triage and from the heartbeat poller thread
    told: list[bool] = []  # whether triage reports its stages itself (then the poller stays quiet)

    def stage(name: str, done: float = 0, total: float | None = 0, message: str = "", *,
              polled: bool = False) -> None:
        with lock:
            if polled and told:
                return
            if not polled:
                told.append(True)
            now = time.perf_counter()
            if name not in stage_started:
                if stage_started:  # close the previous stage
                    last = list(stage_started)[-1]
                    outcome.stages.setdefault(last, now - stage_started[last])
                stage_started[name] = now
                # the log said nothing between "started run 3 (triage)" and the end of a 13.5-minute collection
                log.info("%s: %s", spec.name, describe(name, done, total or None, message))
            emit(BatchEvent("stage", spec.name, name, int(done), int(total or 0)))

    def polled(name: str, done: float = 0, total: float | None = 0, message: str = "") -> None:
        stage(name, done, total, message, polled=True)

    try:
        with HeartbeatPoller(database, item_run, polled):
            report = triage_fn(TriageCall(spec, Path(config.model), Path(config.db), database, executor, stage,
                                          {"collection_key": spec.key, "batch_run_id": batch_run,
                                           "batch_item_run_id": item_run}, bundle, engine, config.level,
                                          config.absent_share))
        if stage_started:
            last = list(stage_started)[-1]
            outcome.stages.setdefault(last, time.perf_counter() - stage_started[last])
        outcome.stages.update(report.stages)
        outcome.run_id = report.run_id
        outcome.specimens, outcome.quarantined = report.specimens, report.quarantined
        outcome.photos_set_aside = report.photos_set_aside
        outcome.named_to_species, outcome.novel, outcome.proposals = report.named_to_species, report.novel, \
            report.proposals
        outcome.provisional_species, outcome.named_to_genus = report.provisional_species, report.named_to_genus
        outcome.advisories = list(report.advisories)
        outcome.quarantine_file, outcome.first_set_aside = report.quarantine_file, report.first_set_aside
        outcome.status = "quarantined" if report.quarantined or report.photos_set_aside else "ok"
    except KeyboardInterrupt:
        # the item run must not stay 'running' (db check would report it): the next batch resumes it
        database.finish_run(item_run, "interrupted", message="stopped by the user; biodiscover run resumes "
                                                             "this collection")
        raise
    except BiodiscoverError as exc:
        outcome.status, outcome.error = "failed", str(exc)
        log.error("%s: %s", spec.name, exc)
    except Exception as exc:  # a bug in one collection must not sink the night's batch
        outcome.status, outcome.error = "failed", f"{spec.name}: internal error ({type(exc).__name__}: {exc}); " \
                                                  "see the log"
        log.exception("%s: triage crashed", spec.name)
    outcome.seconds = time.perf_counter() - t0
    ledger.finish(item_run, outcome)
    if outcome.status == "failed":
        emit(BatchEvent("collection_failed", spec.name, message=outcome.error or ""))
    else:
        emit(BatchEvent("collection_done", spec.name, message=(
            f"run {outcome.run_id}: {plural(outcome.specimens, 'specimen')}, {outcome.quarantined} quarantined, "
            + (f"{plural(outcome.photos_set_aside, 'photo')} set aside, " if outcome.photos_set_aside else "")
            + f"{outcome.novel} novel, {plural(outcome.proposals, 'candidate')} in {outcome.seconds:.1f}s")))
    log.info("%s: %s in %.1fs (%s)", spec.name, outcome.status, outcome.seconds,
             ", ".join(f"{k} {v:.1f}s" for k, v in outcome.stages.items()))
    for said in outcome.set_aside_lines():
        log.warning("%s", said.removeprefix("warning: "))
    for line in outcome.advisories:
        log.info("%s: %s", spec.name, line)
    return outcome


def _drop_stale_report(spec: CollectionSpec) -> None:
    """Remove the quarantine report beside a collection whose run set nothing aside (``triage.drop_stale_report``)."""
    from biodiscover.storage.validation import quarantine_path_for
    from biodiscover.workflows.triage import drop_stale_report

    try:
        drop_stale_report(quarantine_path_for(spec.path))
    except InputError:  # the report there is another input's: not ours to touch
        pass


class HeartbeatPoller:
    """Turn the triage run's database heartbeats (done / total / message) into stage events.

    Triage writes its progress to its run row (the same rows the review TUI
    watches); polling them gives per-stage progress without the pipeline having
    to know about the batch. Runs in a daemon thread; reads only.
    """

    def __init__(self, database: Any, after_run_id: int, stage: Progress,
                 interval_s: float = 0.5) -> None:
        import threading

        self.database, self.after_run_id, self.stage, self.interval_s = database, after_run_id, stage, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="batch-heartbeat-poller", daemon=True)

    def __enter__(self) -> "HeartbeatPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        last: tuple[Any, ...] | None = None
        while not self._stop.wait(self.interval_s):
            try:
                run = self.database.latest_run(kind=TRIAGE_RUN_KIND)
            except Exception:  # a busy or closing database must never kill the batch
                log.debug("heartbeat poll failed", exc_info=True)
                continue
            if run is None or run.id <= self.after_run_id or run.status != "running":
                continue
            state = (run.message, run.done, run.total)
            if state != last:
                last = state
                self.stage((run.message or "triage").split(":")[0][:40], run.done or 0, run.total or 0)


def default_triage(call: TriageCall) -> TriageReport:
    """One collection through E1's triage pipeline (``workflows.triage.run_triage``).

    The batch's open database is shared (one connection pool per process), the
    pipeline's stage callback feeds the batch progress, and its run row's
    heartbeats feed :class:`HeartbeatPoller`. The batch's open bundle and its
    engine (loaded once, wrapped so its per-specimen work runs through the
    batch's executor: :class:`biodiscover.workflows.executors.ExecutorModel`)
    are handed over.
    """
    from biodiscover.workflows.executors import ExecutorModel
    from biodiscover.workflows.triage import run_triage

    bundle = call.bundle if call.bundle is not None else Bundle.open(call.model)
    if call.engine is not None:
        engine = call.engine()
    else:
        from biodiscover.discovery.engine import DiscoveryModel

        engine = ExecutorModel(DiscoveryModel.from_bundle(bundle), call.executor)
    kwargs: dict[str, Any] = {"images": call.spec.images, "progress": call.stage, "database": call.database,
                              "collection": call.spec.name.split(".")[0], "model": engine, "bundle": bundle,
                              "level": call.level, "absent_share": call.absent_share,
                              "again": True}  # the batch has decided what it triages (``_done_before``)
    summary = run_triage(call.spec.path, call.model, call.db_path, **kwargs)
    if summary.run_id is None:
        raise InputError(f"{call.spec.path}: triage wrote no run to the database")
    return TriageReport(run_id=int(summary.run_id), specimens=summary.specimens - summary.quarantined,
                        quarantined=summary.quarantined, named_to_species=int(summary.named_to.get("species", 0)),
                        novel=summary.novel, proposals=summary.proposals, photos_set_aside=summary.photos_set_aside,
                        stages={k: float(v) for k, v in summary.seconds.items()},
                        provisional_species=summary.named_to_provisional,
                        named_to_genus=int(summary.named_to.get("genus", 0)), advisories=summary.advisories(),
                        quarantine_file=summary.quarantine_file, first_set_aside=summary.first_set_aside)
