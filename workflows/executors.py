"""Where the per-specimen work of a discovery run executes: in-process, or on a Ray cluster.

Why an interface: the expensive stages of discovery (embedding barcodes and images,
classifying against the reference, FAISS search over a reference too big for one
machine's memory) are embarrassingly parallel over specimens, while the rest
(clustering novel specimens of one collection, writing the database) is not. The
pipelines call the two parallel shapes through :class:`Executor` and never care
where they run:

* :meth:`Executor.map_batches` — apply a function to column batches
  (``dict[str, np.ndarray]``, 2-D arrays allowed for embeddings) and return the
  concatenated output columns **in input order**;
* the reference index split into shards: :class:`ExecutorModel` cuts the
  engine's ``ReferenceIndex`` with ``ReferenceIndex.shards`` (shards share the
  trained projection and cells), puts each shard in a Ray actor
  (:class:`ShardSearcher`) and hands the reference a :class:`ShardedSearch`
  that fans a query batch out to the actors and merges their top-k
  (:func:`merge_topk`) into the whole index's top-k.

:class:`LocalExecutor` (the default) runs in the calling process, so the
default install and every test need nothing extra. :class:`RayExecutor` (extra
``ray``: ``pip install -e ".[ray]"``) runs ``map_batches`` as Ray Data
``Dataset.map_batches``; ``ray`` is imported only when it is built, so
``import biodiscover.workflows.executors`` never needs it.

Usage::

    with make_executor("local") as ex:
        out = ex.map_batches(embed_fn, {"processid": pids, "dna": seqs}, batch_size=512)
    with make_executor(ExecutorConfig(kind="ray", shards=4)) as ex:
        results = ExecutorModel(DiscoveryModel.from_bundle(bundle), ex).triage(specimens)
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Mapping, Sequence

import numpy as np

from biodiscover.storage.errors import InputError

log = logging.getLogger(__name__)

Columns = dict[str, np.ndarray]
BatchFn = Callable[[Columns], Mapping[str, np.ndarray]]
#: Column that carries the input row number through a distributed map so the
#: output can be put back in input order whatever the scheduler did.
ROW_COLUMN = "_row"


@dataclass(frozen=True)
class ExecutorConfig:
    """How to build an executor (``biodiscover run --executor …``).

    ``address`` is a Ray cluster address (``auto`` joins a running cluster; ``None``
    starts a local instance with ``num_cpus`` CPUs). ``num_gpus_per_batch`` > 0 asks
    Ray to place each embedding batch on a GPU.
    """

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    num_cpus: int | None = None
    num_gpus_per_batch: float = 0.0
    batch_size: int = 1024
    #: Ray only: split the reference index over this many shard actors (1 = every worker holds
    #: the whole index; 0 = one shard per CPU of the Ray cluster)
    shards: int = 0


@dataclass
class StageTiming:
    """Wall time and row count of one executed stage (for progress and benchmarks)."""

    stage: str
    rows: int
    seconds: float


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard (similarities, global positions) into the global top-``k`` per query.

    Larger similarity first (the reference index is inner product); ties keep
    shard order, so merging is deterministic. Shards may return fewer columns
    than ``k`` (a shard smaller than ``k``); missing hits are position -1
    (similarity NaN), also when the shards hold fewer than ``k`` keys in all.
    """
    if not parts:
        raise InputError("no shard results to merge")
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    n = scores.shape[0]
    if scores.shape[1] == 0:
        return np.full((n, k), np.nan, np.float32), np.full((n, k), -1, np.int64)
    key = np.where(ids < 0, np.inf, -scores)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    top_s = np.take_along_axis(scores, order, axis=1)
    top_i = np.take_along_axis(ids, order, axis=1)
    if top_s.shape[1] < k:  # fewer reference rows than k in total
        pad = k - top_s.shape[1]
        top_s = np.hstack([top_s, np.full((n, pad), np.nan, np.float32)])
        top_i = np.hstack([top_i, np.full((n, pad), -1, np.int64)])
    return top_s.astype(np.float32), top_i.astype(np.int64)


def _check_columns(columns: Mapping[str, np.ndarray]) -> int:
    lengths = {name: len(col) for name, col in columns.items()}
    if not lengths:
        raise InputError("map_batches needs at least one input column")
    if len(set(lengths.values())) != 1:
        raise InputError(f"input columns differ in length: {lengths}")
    if ROW_COLUMN in columns:
        raise InputError(f"input column name {ROW_COLUMN!r} is reserved")
    return next(iter(lengths.values()))


def _concat(outputs: Sequence[Mapping[str, np.ndarray]]) -> Columns:
    if not outputs:
        return {}
    names = list(outputs[0])
    return {name: np.concatenate([np.asarray(o[name]) for o in outputs]) for name in names}


class Executor(ABC):
    """Runs the parallel stages of a discovery run (see module docstring)."""

    name: ClassVar[str] = "abstract"

    def __init__(self) -> None:
        self.timings: list[StageTiming] = []

    @abstractmethod
    def _map(self, fn: Callable[..., Columns], columns: Columns, n: int, batch_size: int,
             context: Any = None) -> Columns: ...

    def map_batches(self, fn: BatchFn | Callable[[Columns, Any], Mapping[str, np.ndarray]],
                    columns: Mapping[str, np.ndarray], *, batch_size: int = 1024, stage: str = "map",
                    context: Any = None) -> Columns:
        """Apply ``fn`` to batches of ``columns``; output columns concatenated in input order.

        ``fn`` must return columns of the same length as its input batch (one
        output row per input row); a violation raises ``ValueError`` naming the stage.
        With ``context`` (e.g. a fitted model), ``fn`` is called as
        ``fn(batch, context)``; Ray ships the context to each worker process once
        (object store + a per-process cache), not once per batch.
        """
        cols = {k: np.asarray(v) for k, v in columns.items()}
        n = _check_columns(cols)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        t0 = time.perf_counter()
        out = self._map(_checked(fn, stage, context is not None), cols, n, batch_size, context) if n else {}
        self.timings.append(StageTiming(stage, n, time.perf_counter() - t0))
        log.info("%s: stage %s, %d rows in %.2fs", self.name, stage, n, self.timings[-1].seconds)
        return out

    def close(self) -> None:  # noqa: B027 - a no-op by default: only executors with workers override it
        """Release workers (no-op locally)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked(fn: Callable[..., Mapping[str, np.ndarray]], stage: str, with_context: bool
             ) -> Callable[..., Columns]:
    def wrapper(batch: Columns, context: Any = None) -> Columns:
        n = len(next(iter(batch.values())))
        result = fn(batch, context) if with_context else fn(batch)
        out = {k: np.asarray(v) for k, v in result.items()}
        bad = {k: len(v) for k, v in out.items() if len(v) != n}
        if bad:
            raise ValueError(f"stage {stage!r}: batch function returned {bad} rows for a batch of {n}")
        return out
    return wrapper


class LocalExecutor(Executor):
    """Everything in the calling process, batch after batch (the default)."""

    name = "local"

    def _map(self, fn: Callable[..., Columns], columns: Columns, n: int, batch_size: int,
             context: Any = None) -> Columns:
        outputs = []
        for start in range(0, n, batch_size):
            batch = {k: v[start:start + batch_size] for k, v in columns.items()}
            outputs.append(fn(batch, context))
        return _concat(outputs)

_WORKER_CONTEXT: dict[str, Any] = {}


def _worker_context(ref: Any) -> Any:
    """The context behind a Ray object ref, fetched once per worker process."""
    if ref is None:
        return None
    key = ref.hex()
    if key not in _WORKER_CONTEXT:
        import ray

        _WORKER_CONTEXT.clear()  # one context at a time: a new run's model replaces the old
        _WORKER_CONTEXT[key] = ray.get(ref)
    return _WORKER_CONTEXT[key]


class ShardSearcher:
    """One shard of a reference index in a Ray actor: searched on demand, positions made global.

    Plain class (``ray.remote`` is applied where Ray is present). The shard
    arrives as FAISS bytes through the object store, once per actor.
    """

    def __init__(self, blob: np.ndarray, offset: int) -> None:
        from biodiscover.discovery.index import ReferenceIndex

        self.index = ReferenceIndex.from_bytes(blob)
        self.offset = int(offset)

    def search(self, profiles: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, pos = self.index.search(profiles, k)
        return sims, np.where(pos >= 0, pos + self.offset, -1)


class ShardedSearch:
    """A reference's pool search fanned out to shard actors and merged (``merge_topk``).

    Picklable (actor handles only), so a ``discovery.reference.Reference`` that
    carries it as ``remote_search`` travels to Ray workers without its index:
    queries are split over workers, the index over shard actors. The shards
    share the index's trained projection and cells (``ReferenceIndex.shards``),
    so the merged pool is the one the whole index returns (ties aside, and the
    reference breaks ties by position), and results equal the local executor's.
    """

    def __init__(self, actors: list[Any]) -> None:
        self.actors = actors

    def __call__(self, profiles: np.ndarray, k: int, allowed: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        import ray

        if allowed is not None:
            raise InputError("leave-clade-out searches need the whole index, not Ray shards")
        ref = ray.put(np.ascontiguousarray(profiles, dtype=np.float32))
        parts = ray.get([a.search.remote(ref, k) for a in self.actors])
        return merge_topk(parts, k)


def shard_reference(index: Any, n_shards: int) -> list[Any]:
    """Ray actors holding ``n_shards`` contiguous shards of ``index`` (a ``discovery.index.ReferenceIndex``)."""
    import ray

    actor = ray.remote(ShardSearcher)
    return [actor.remote(ray.put(shard.to_bytes()), offset) for shard, offset in index.shards(n_shards)]


class RayExecutor(Executor):
    """Ray Data ``map_batches`` for per-specimen stages (index shards: :class:`ExecutorModel`).

    Starts a local Ray instance (``num_cpus``) unless ``address`` names a cluster.
    The instance is shut down on :meth:`close` only if this executor started it.
    """

    name = "ray"

    def __init__(self, config: ExecutorConfig = ExecutorConfig(kind="ray")) -> None:
        super().__init__()
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise InputError('the Ray executor needs the "ray" extra: pip install -e ".[ray]"') from exc
        self._ray = ray
        self.config = config
        self._owns_ray = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if config.address:
                kwargs["address"] = config.address
            elif config.num_cpus:
                kwargs["num_cpus"] = config.num_cpus
            ray.init(**kwargs)
            self._owns_ray = True
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False

    def n_shards(self) -> int:
        """Shards of a reference index: ``config.shards``, or one per CPU Ray reports (0)."""
        if self.config.shards:
            return int(self.config.shards)
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def _map(self, fn: Callable[..., Columns], columns: Columns, n: int, batch_size: int,
             context: Any = None) -> Columns:
        import pyarrow as pa
        from ray.data.extensions import ArrowTensorArray

        arrays: dict[str, Any] = {ROW_COLUMN: np.arange(n, dtype=np.int64)}
        for name, col in columns.items():
            arrays[name] = ArrowTensorArray.from_numpy(col) if col.ndim > 1 \
                else pa.array(col.tolist() if col.dtype == object else col)
        ds = self._ray.data.from_arrow(pa.table(arrays))
        ctx_ref = self._ray.put(context) if context is not None else None

        def body(batch: Columns) -> Columns:
            rows = batch.pop(ROW_COLUMN)
            out = dict(fn(batch, _worker_context(ctx_ref)))
            out[ROW_COLUMN] = rows
            return out

        kwargs: dict[str, Any] = {"batch_format": "numpy", "batch_size": batch_size}
        if self.config.num_gpus_per_batch:
            kwargs["num_gpus"] = self.config.num_gpus_per_batch
        mapped = ds.map_batches(body, **kwargs)
        outputs = list(mapped.iter_batches(batch_format="numpy", batch_size=None))
        merged = _concat(outputs)
        order = np.argsort(merged.pop(ROW_COLUMN), kind="stable")
        return {k: v[order] for k, v in merged.items()}

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False


def _triage_batch(batch: Columns, model: Any) -> Columns:
    """Worker body: rebuild specimens from columns, run the engine, return results as JSON rows."""
    import json

    from biodiscover.storage.records import Specimen

    specimens = [Specimen(processid=str(pid), dna_barcode=(str(seq) if seq is not None and seq == seq and seq != ""
                                                            else None))
                 for pid, seq in zip(batch["processid"], batch["dna_barcode"])]
    results = model.triage(specimens, collection=None)  # a batch of a collection: decided as a whole
    return {"result": np.array([json.dumps(r.to_dict()) for r in results], dtype=object)}


def triage_with(executor: Executor, model: Any, specimens: Sequence[Any], *, batch_size: int = 2048,
                collection: bool | None = True) -> list[Any]:
    """``model.triage(specimens)`` with the per-specimen work spread by ``executor``.

    Embedding, FAISS search, identity, per-rank calls and novelty are all
    per specimen (``discovery.engine.DiscoveryModel.triage``), so they map over
    batches; the fitted model is shipped once per worker as the map's context.
    Results come back in input order as the engine's own ``TriageResult``, then decided here as
    ``triage`` decides them for ``collection`` (True: as one collection, ``DiscoveryModel.adapt``;
    None: left undecided for a caller that decides a bigger collection).
    """
    import json

    from biodiscover.discovery.engine import TriageResult

    if not specimens:
        return []
    columns = {"processid": np.array([s.processid for s in specimens], dtype=object),
               "dna_barcode": np.array([s.dna_barcode or "" for s in specimens], dtype=object)}
    out = executor.map_batches(_triage_batch, columns, batch_size=batch_size, stage="embed+classify",
                               context=model)
    results = [TriageResult(**json.loads(r)) for r in out["result"]]
    return results if collection is None else model.adapt(results, collection=collection)[0]


class ExecutorModel:
    """A fitted ``DiscoveryModel`` whose ``triage`` runs through an executor.

    Everything else (config, reference, thresholds) is the wrapped model's, so
    a pipeline that takes a model can take this instead and stays unaware of
    where the per-specimen work runs.
    """

    def __init__(self, model: Any, executor: Executor, batch_size: int = 2048, shards: int | None = None) -> None:
        self.model, self.executor, self.batch_size, self.shards = model, executor, batch_size, shards
        self._shard()

    def _shard(self) -> None:
        """With Ray: the reference index goes to shard actors; workers get the model without it.

        Changes the wrapped model's reference in place (its searches then go to
        the shards, wherever it runs).
        """
        reference = getattr(self.model, "reference_", None)
        if not isinstance(self.executor, RayExecutor) or reference is None:
            return
        n = self.shards or self.executor.n_shards()
        reference.remote_search = None
        if n > 1:
            reference.remote_search = ShardedSearch(shard_reference(reference.index_, n))
            log.info("reference index of %d keys split over %d Ray shard actors", len(reference), n)
        reference.align_workers = 1  # Ray spreads the work; no process pool inside a worker

    def add_references(self, specimens: Sequence[Any]) -> int:
        """Session keys go into the model's index, then the shards are cut again."""
        reference = getattr(self.model, "reference_", None)
        if reference is not None:
            reference.remote_search = None
        added = self.model.add_references(specimens)
        self._shard()
        return added

    @classmethod
    def load(cls, bundle: Any, executor: Executor, batch_size: int = 2048) -> "ExecutorModel":
        from biodiscover.discovery.engine import DiscoveryModel

        return cls(DiscoveryModel.load(bundle), executor, batch_size)

    def triage(self, specimens: Sequence[Any], collection: bool | None = True) -> list[Any]:
        """As ``DiscoveryModel.triage`` (through ``triage_with`` where the work is spread)."""
        if isinstance(self.executor, LocalExecutor):  # no copies through columns when nothing is distributed
            return self.model.triage(specimens, collection=collection)
        return triage_with(self.executor, self.model, specimens, batch_size=self.batch_size, collection=collection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def ray_available() -> bool:
    """True when the ``ray`` extra is importable (without importing it twice)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def make_executor(kind: str | ExecutorConfig = "local") -> Executor:
    """Build an executor by name (``local`` | ``ray``) or from a config."""
    if isinstance(kind, ExecutorConfig):
        config = kind
    elif kind == "local":
        config = ExecutorConfig(kind="local")
    elif kind == "ray":
        config = ExecutorConfig(kind="ray")
    else:
        raise InputError(f"unknown executor {kind!r} (known: local, ray)")
    if config.kind == "local":
        return LocalExecutor()
    if config.kind == "ray":
        return RayExecutor(config)
    raise InputError(f"unknown executor {config.kind!r} (known: local, ray)")


__all__ = [
    "BatchFn", "Columns", "Executor", "ExecutorConfig", "ExecutorModel", "LocalExecutor", "RayExecutor",
    "ShardSearcher", "ShardedSearch", "StageTiming", "make_executor", "merge_topk", "ray_available",
    "shard_reference", "triage_with",
]
