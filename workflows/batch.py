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
  collection is skipped. An item or triage run left ``running`` by a killed
  process (same host and its pid is gone, or no heartbeat for
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
* exit codes (:attr:`BatchSummary.exit_code`): 0 every collection ok; 1 some
  collection failed or had quarantined rows; 2 bad input (no collections, no
  model, unusable database) — raised as ``BiodiscoverError`` before any work.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any, Callable, Literal

from biodiscover.storage.bundle import Bundle
from biodiscover.storage.errors import BiodiscoverError, InputError
from biodiscover.storage.progress import Progress
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


@dataclass(frozen=True)
class CollectionSpec:
    """One collection file, its images folder (if any) and its content key."""

    path: Path
    images: Path | None
    key: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class BatchEvent:
    """A progress event for the CLI (library code never draws)."""

    kind: Literal["batch_start", "collection_start", "stage", "collection_done", "collection_skipped",
                  "collection_failed", "batch_done"]
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
    novel: int = 0
    proposals: int = 0
    seconds: float = 0.0
    #: photos set aside from specimens kept without them (listed in the collection's quarantine report)
    photos_set_aside: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class BatchSummary:
    """Per-collection outcomes, totals and the exit code."""

    outcomes: list[CollectionOutcome]
    log_file: Path
    seconds: float
    batch_run_id: int | None = None

    @property
    def exit_code(self) -> int:
        return 1 if any(o.status in ("failed", "quarantined") for o in self.outcomes) else 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.status] = out.get(o.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "seconds": round(self.seconds, 3), "log_file": str(self.log_file),
                "batch_run_id": self.batch_run_id, "counts": self.counts(),
                "collections": [asdict(o) for o in self.outcomes]}

    def table(self) -> str:
        """Plain-text per-collection summary for the terminal."""
        head = f"{'collection':<32} {'status':<11} {'run':>5} {'specimens':>9} {'quar.':>6} {'species':>8} " \
               f"{'novel':>6} {'cands':>6} {'secs':>7}"
        lines = [head, "-" * len(head)]
        for o in self.outcomes:
            lines.append(f"{o.collection[:32]:<32} {o.status:<11} {o.run_id if o.run_id is not None else '-':>5} "
                         f"{o.specimens:>9} {o.quarantined:>6} {o.named_to_species:>8} {o.novel:>6} "
                         f"{o.proposals:>6} {o.seconds:>7.1f}")
            if o.error:
                lines.append(f"    error: {o.error}")
        c = self.counts()
        lines.append(f"{len(self.outcomes)} collections: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items()))
                     + f" in {self.seconds:.1f}s (exit {self.exit_code})")
        return "\n".join(lines)


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
    """Expand ``DIR`` or a glob into collection files (sorted); none found is bad input."""
    root = Path(spec).expanduser()
    if root.is_dir():
        paths = sorted(p for p in root.iterdir() if _is_collection(p))
        where = f"folder {root}"
    elif root.is_file():
        paths = [root] if _is_collection(root) else []
        where = f"file {root}"
    else:
        paths = sorted(Path(p) for p in glob.glob(str(root), recursive=True) if _is_collection(Path(p)))
        where = f"pattern {spec!r}"
    if not paths:
        raise InputError(f"no collections found in {where} (looked for {', '.join(COLLECTION_SUFFIXES)})")
    out = []
    for p in paths:
        stem = p.name
        for suffix in sorted(COLLECTION_SUFFIXES, key=len, reverse=True):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        beside = p.parent / f"{stem}_images"
        images = beside.resolve() if beside.is_dir() else None
        out.append(CollectionSpec(path=p.resolve(), images=images, key=collection_key(p, beside if images else None)))
    return out


# -- logging -------------------------------------------------------------------------------------------------

def _attach_log(log_file: Path) -> logging.Handler:
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
        for h in root.handlers:  # keep the console as quiet as the user asked
            if h is not handler and h.level == logging.NOTSET:
                h.setLevel(logging.WARNING)
    return handler


def default_log_file(db: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return db.with_name(f"{db.name}.run-{stamp}.log")


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

    def completed(self, key: str, model_fingerprint: str | None) -> int | None:
        """Triage run id of a completed item with this collection key and model, else None (-1: id unknown)."""
        item = self.db.find_completed_run(ITEM_RUN_KIND, {"collection_key": key,
                                                          "model_fingerprint": model_fingerprint})
        if item is None:
            return None
        triage_run = item.result.get("triage_run_id")
        return int(triage_run) if isinstance(triage_run, int) else -1

    def start(self, spec: CollectionSpec, model_fingerprint: str | None, batch_run_id: int | None) -> int:
        return self.db.start_run(ITEM_RUN_KIND, {"collection_key": spec.key, "path": str(spec.path),
                                                 "images": str(spec.images) if spec.images else None,
                                                 "model_fingerprint": model_fingerprint,
                                                 "batch_run_id": batch_run_id},
                                 model_fingerprint=model_fingerprint, backup=False)

    def finish(self, item_run: int, outcome: CollectionOutcome) -> None:
        if outcome.status in ("ok", "quarantined"):
            self.db.finish_run(item_run, "completed",
                               message=f"triage run {outcome.run_id}: {plural(outcome.specimens, 'specimen')}, "
                                       f"{outcome.quarantined} quarantined, "
                                       f"{plural(outcome.proposals, 'candidate')}",
                               result={"triage_run_id": outcome.run_id})
        else:
            self.db.finish_run(item_run, "failed", message=(outcome.error or "failed")[:500])


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
    try:
        handler = _attach_log(log_file)
    except OSError as exc:
        raise InputError(f"cannot write the log file {log_file}: {exc.strerror}") from None
    database = None
    executor = None
    outcomes: list[CollectionOutcome] = []
    batch_run: int | None = None
    try:
        database = Database.open_or_create(Path(config.db))
        ledger = RunLedger(database, config.stale_after_s)
        recovered = ledger.recover()
        if recovered:
            log.info("resuming: runs %s had been interrupted", recovered)
        engine = _lazy_engine(bundle)
        if any(ledger.completed(spec.key, fingerprint) is None for spec in specs):
            engine()  # load now: a damaged bundle is bad input (exit 2), found before any collection
        log.info("batch over %d collections with model %s (%s)", len(specs), config.model, fingerprint)
        batch_run = database.start_run(BATCH_RUN_KIND, {"collections": config.collections,
                                                        "model": str(config.model), "n_collections": len(specs),
                                                        "executor": config.executor.kind},
                                       model_fingerprint=fingerprint, total=len(specs))
        executor = make_executor(config.executor)
        engine = _lazy_engine(bundle, executor, engine)
        emit(BatchEvent("batch_start", total=len(specs)))
        for i, spec in enumerate(specs):
            outcome = _one_collection(spec, config, database, ledger, executor, triage_fn, fingerprint, batch_run,
                                      emit, bundle, engine)
            outcomes.append(outcome)
            database.heartbeat(batch_run, done=i + 1, total=len(specs),
                               message=f"{spec.name}: {outcome.status}")
        failed = sum(o.status == "failed" for o in outcomes)
        database.finish_run(batch_run, "completed" if not failed else "failed",
                            message=f"{len(specs) - failed} of {len(specs)} collections ok")
    except KeyboardInterrupt:
        if database is not None and batch_run is not None:
            database.finish_run(batch_run, "interrupted", message="stopped by the user")
        raise
    finally:
        if executor is not None:
            executor.close()
        if database is not None:
            database.close()
        logging.getLogger().removeHandler(handler)
        handler.close()
    summary = BatchSummary(outcomes, log_file, time.perf_counter() - t_batch, batch_run)
    emit(BatchEvent("batch_done", total=len(specs), message=json.dumps(summary.counts())))
    return summary


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
                    engine: Callable[[], Any] | None = None) -> CollectionOutcome:
    outcome = CollectionOutcome(spec.name, str(spec.path), spec.key, "ok")
    done_run = ledger.completed(spec.key, fingerprint)
    if done_run is not None:
        outcome.status, outcome.run_id = "skipped", (done_run if done_run >= 0 else None)
        log.info("%s: already triaged with this model (run %s); skipped", spec.name, done_run)
        emit(BatchEvent("collection_skipped", spec.name, message=f"already done (triage run {done_run})"))
        return outcome
    emit(BatchEvent("collection_start", spec.name))
    item_run = ledger.start(spec, fingerprint, batch_run)
    t0 = time.perf_counter()
    stage_started: dict[str, float] = {}
    lock = threading.Lock()  # called from triage and from the heartbeat poller thread

    def stage(name: str, done: float = 0, total: float | None = 0, message: str = "") -> None:
        with lock:
            now = time.perf_counter()
            if name not in stage_started:
                if stage_started:  # close the previous stage
                    last = list(stage_started)[-1]
                    outcome.stages.setdefault(last, now - stage_started[last])
                stage_started[name] = now
            emit(BatchEvent("stage", spec.name, name, int(done), int(total or 0)))

    try:
        with HeartbeatPoller(database, item_run, stage):
            report = triage_fn(TriageCall(spec, Path(config.model), Path(config.db), database, executor, stage,
                                          {"collection_key": spec.key, "batch_run_id": batch_run,
                                           "batch_item_run_id": item_run}, bundle, engine))
        if stage_started:
            last = list(stage_started)[-1]
            outcome.stages.setdefault(last, time.perf_counter() - stage_started[last])
        outcome.stages.update(report.stages)
        outcome.run_id = report.run_id
        outcome.specimens, outcome.quarantined = report.specimens, report.quarantined
        outcome.photos_set_aside = report.photos_set_aside
        outcome.named_to_species, outcome.novel, outcome.proposals = report.named_to_species, report.novel, \
            report.proposals
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
        outcome.status, outcome.error = "failed", f"internal error ({type(exc).__name__}: {exc}); see the log"
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
    return outcome


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
                              "collection": call.spec.name.split(".")[0], "model": engine, "bundle": bundle}
    summary = run_triage(call.spec.path, call.model, call.db_path, **kwargs)
    if summary.run_id is None:
        raise InputError(f"{call.spec.path}: triage wrote no run to the database")
    return TriageReport(run_id=int(summary.run_id), specimens=summary.specimens - summary.quarantined,
                        quarantined=summary.quarantined, named_to_species=int(summary.named_to.get("species", 0)),
                        novel=summary.novel, proposals=summary.proposals, photos_set_aside=summary.photos_set_aside,
                        stages={k: float(v) for k, v in summary.seconds.items()})
