"""Reference index: nearest-neighbour search over reference keys with FAISS.

Why FAISS: the reference grows from ~20k keys (the dev set) to the 5M specimens of
BIOSCAN-5M. Kinds (``IndexConfig.kind``):

* ``flat``: exact inner product (cosine on unit vectors); nothing lost, cost grows
  with keys × dimension;
* ``ivfsq``: inverted lists (k-means cells) of 8-bit scalar-quantised vectors —
  a quarter of the float32 size, and a query scans only ``ivf_nprobe`` cells;
* ``hnsw``, ``ivf`` (IVF-Flat) and ``ivfpq`` (product quantisation, the smallest)
  on request;
* ``auto``: ``flat`` over the vectors as given up to ``exact_max`` keys (exact:
  nothing lost on a small reference), ``ivfsq`` over the projection above.

``project_dim`` puts a learned linear projection in front of the index (FAISS
``IndexPreTransform``: an uncentred SVD basis of a sample of the keys, then L2
normalisation), so a 4,096-d 6-mer profile is stored as a few hundred numbers and
the projection travels inside the serialised index (queries are given in the
original space). Memory per key: 16 KB for the raw 6-mer profile, 1 KB for a
256-d float32 projection, 256 B as ``ivfsq`` codes. Recall against exact search
over the raw profile, and what it does to naming, are measured in
``benchmarks/bench_scale.py`` (benchmarks/RESULTS-scale.md).

Searches can leave keys out (``search(..., allowed=mask)``: a FAISS ID selector,
so a left-out clade costs nothing extra; IVF kinds then scan every cell so a
crowded clade never hides the rest). ``shards(n)`` splits the index into
contiguous key blocks that share the trained projection and cells, so the merged
top-k of the shards equals the whole index's (the distributed executor relies on
it). When faiss-gpu and a CUDA device are present the index is moved to the GPU
for search and moved back to the CPU to save, so a bundle built on one loads on
the other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Iterable, cast

import faiss
import numpy as np

from biodiscover.storage.errors import ModelBundleError, NotFittedError

#: faiss as Any, for the SWIG keyword constructors and constants its type stubs omit
_SWIG: Any = faiss

log = logging.getLogger(__name__)

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "ivfsq", "ivfpq")
#: most IVF cells the automatic choice makes (training k-means on 39 keys a cell stays minutes)
MAX_CELLS = 4096


@dataclass(frozen=True)
class IndexConfig:
    """How to index reference keys.

    ``kind='auto'`` = exact (flat, no projection) up to ``exact_max`` keys, ``ivfsq`` above.
    ``project_dim`` = learn a linear projection to that many dimensions first
    (None: index the vectors as given; ignored for fewer than ``2 * project_dim`` keys).
    ``train_size`` = keys sampled to learn the projection and the IVF cells. ``use_gpu=None`` = use a GPU when faiss
    has GPU support and sees a device.
    """

    kind: str = "auto"
    exact_max: int = 500_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 256
    ivf_nlist: int | None = None
    ivf_nprobe: int = 32
    pq_m: int = 64
    use_gpu: bool | None = None
    project_dim: int | None = None
    train_size: int = 20_000
    seed: int = 0
    #: approximate kinds fetch this many times the hits asked for, for an exact re-ranking
    #: (``discovery.reference``: binary k-mer sketches) to choose from
    pool_factor: float = 4.0
    #: order hits by the exact cosine of binary k-mer sketches (False: by the index's own similarity)
    sketch_rerank: bool = True

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {self.kind!r} (known: {', '.join(INDEX_KINDS)})")
        if self.project_dim is not None and self.project_dim < 1:
            raise ValueError(f"project_dim must be >= 1 or None, got {self.project_dim}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IndexConfig":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def gpu_available() -> bool:
    """True when this faiss build has GPU support and a CUDA device is visible."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _kind_of(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivfpq"
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return "ivfsq"
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    return "flat"


def _project(transform: faiss.VectorTransform, x: np.ndarray) -> np.ndarray:
    """``x`` through the learned projection, then to unit length (what the IVF index receives)."""
    y = np.asarray(transform.apply(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)
    faiss.normalize_L2(y)
    return y


def _projection(sample: np.ndarray, dim: int, seed: int) -> faiss.VectorTransform:
    """Uncentred SVD basis of ``sample`` (keeps inner products best in least squares), then L2 norm."""
    from sklearn.utils.extmath import randomized_svd

    d_in = sample.shape[1]
    dim = min(dim, d_in, max(1, sample.shape[0]))
    _, _, vt = randomized_svd(sample.astype(np.float32), dim, n_iter=4, random_state=seed)
    lt = faiss.LinearTransform(d_in, dim, False)
    faiss.copy_array_to_vector(np.ascontiguousarray(vt, dtype=np.float32).ravel(), lt.A)
    lt.is_trained = True
    return lt


class ReferenceIndex:
    """Inner-product (cosine on unit vectors) search over reference keys.

    ``fit(keys)`` = ``train(keys)`` + ``add(keys)``; large references are built
    streaming: ``train(sample)`` then ``add(chunk)`` per chunk, so the full-size
    key vectors never sit in memory together. ``search(queries, k)`` returns
    ``(similarities, positions)`` with ``-1`` positions where fewer than ``k``
    keys exist. Fitted attributes: ``kind_``, ``dim_`` (dimension of the
    vectors given), ``ntotal_``.
    """

    FILENAME = "reference.faiss"

    def __init__(self, config: IndexConfig | None = None) -> None:
        self.config = config or IndexConfig()
        self._cpu_index: faiss.Index | None = None
        self._search_index: faiss.Index | None = None

    # -- building ------------------------------------------------------------------
    @property
    def exact(self) -> bool:
        """Whether search is exact over the vectors as given: flat and not projected."""
        self._fitted()
        return self.kind_ == "flat" and not isinstance(self._cpu_index, faiss.IndexPreTransform)

    def _choose_kind(self, n: int) -> str:
        if self.config.kind != "auto":
            return self.config.kind
        return "flat" if n <= self.config.exact_max else "ivfsq"

    def cells_for(self, n: int) -> int:
        """IVF cells for ``n`` keys: ``ivf_nlist``, else about 200 keys a cell, at most ``MAX_CELLS``.

        Why keys per cell rather than the usual 4·sqrt(n): a query scans ``nprobe``
        cells, so a constant cell size keeps the work per query (and the recall
        measured at 64k keys) the same as the reference grows, up to the cap.
        """
        return int(self.config.ivf_nlist or min(MAX_CELLS, max(1, n // 200)))

    def train(self, sample: np.ndarray, n_total: int | None = None,
              cell_sample: Iterable[np.ndarray] = ()) -> "ReferenceIndex":
        """Create the index for ``n_total`` keys (default: the sample's size) and learn what it needs.

        The kind (``auto``), the IVF cell count and the projection are chosen
        here; ``sample`` is a random subset of the keys (``train_size`` is enough
        for the projection). ``cell_sample``: more keys, in chunks, for the IVF
        cells only (39 a cell are needed); they are projected chunk by chunk, so
        only their projections are held.
        """
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        if sample.ndim != 2 or sample.shape[0] == 0:
            raise ValueError(f"reference keys must be a non-empty 2-D array, got shape {sample.shape}")
        n = int(n_total or sample.shape[0])
        d_in = sample.shape[1]
        kind = self._choose_kind(n)
        transform = None
        d = d_in
        # a basis learned from fewer keys than its dimension is only their span: keep the raw vectors then;
        # ``auto`` keeps them for its exact (flat) choice too: below exact_max nothing is approximated
        if self.config.project_dim is not None and self.config.project_dim < d_in \
                and sample.shape[0] > 2 * self.config.project_dim \
                and not (self.config.kind == "auto" and kind == "flat"):
            transform = _projection(sample, self.config.project_dim, self.config.seed)
            d = transform.d_out
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.config.hnsw_ef_search
        else:
            cells = [sample if transform is None else _project(transform, sample)]
            cells += [c if transform is None else _project(transform, c) for c in cell_sample]
            cell_vectors = np.concatenate(cells) if len(cells) > 1 else cells[0]
            nlist = max(1, min(self.cells_for(n), len(cell_vectors) // 39 or 1))
            quantizer = faiss.IndexFlatIP(d)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            elif kind == "ivfsq":
                index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                      faiss.METRIC_INNER_PRODUCT)
            else:
                m = self.config.pq_m
                while d % m:
                    m //= 2
                index = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            index.nprobe = min(self.config.ivf_nprobe, nlist)
        if kind in ("ivf", "ivfsq", "ivfpq"):
            index.train(np.ascontiguousarray(cell_vectors, dtype=np.float32))
        if transform is not None:
            # faiss's Python wrappers keep the parts referenced from the IndexPreTransform
            index = faiss.IndexPreTransform(faiss.NormalizationTransform(d, 2.0), index)
            index.prepend_transform(transform)
        self._cpu_index = index
        self._search_index = None
        self.kind_ = kind
        self.dim_ = d_in
        self.ntotal_ = 0
        return self

    def _fitted(self) -> faiss.Index:
        if self._cpu_index is None:
            raise NotFittedError("ReferenceIndex is not fitted; call fit() or load() first")
        return self._cpu_index

    @property
    def stored_dim(self) -> int:
        """Dimension of the vectors the index holds (the projection's, when there is one)."""
        index = self._fitted()
        return int(index.index.d) if isinstance(index, faiss.IndexPreTransform) else int(index.d)

    def fit(self, keys: np.ndarray) -> "ReferenceIndex":
        keys = np.ascontiguousarray(keys, dtype=np.float32)  # its shape is checked by ``train``
        sample = keys
        if (keys.shape[0] > self.config.train_size and self._choose_kind(len(keys)) != "flat") \
                or (self.config.project_dim is not None and keys.shape[0] > self.config.train_size):
            rng = np.random.default_rng(self.config.seed)
            sample = keys[np.sort(rng.choice(len(keys), self.config.train_size, replace=False))]
        self.train(sample, n_total=len(keys))
        self.add(keys)
        log.info("built %s index over %d keys of dimension %d", self.kind_, self.ntotal_, self.dim_)
        return self

    def add(self, keys: np.ndarray) -> "ReferenceIndex":
        """Append keys (positions continue after the existing ones); every index kind supports it."""
        if self._cpu_index is None:
            raise NotFittedError("ReferenceIndex is not fitted; call fit() or load() first")
        keys = np.ascontiguousarray(keys, dtype=np.float32)
        if keys.ndim != 2 or keys.shape[1] != self.dim_:
            raise ValueError(f"keys must have shape (n, {self.dim_}), got {keys.shape}")
        if len(keys):
            self._cpu_index.add(keys)
            self._search_index = None  # a GPU copy would be stale
            self.ntotal_ = int(self._cpu_index.ntotal)
        return self

    def _searcher(self) -> faiss.Index:
        if self._cpu_index is None:
            raise NotFittedError("ReferenceIndex is not fitted; call fit() or load() first")
        if self._search_index is None:
            use_gpu = self.config.use_gpu if self.config.use_gpu is not None else gpu_available()
            if use_gpu and gpu_available() and self.kind_ != "hnsw":  # HNSW has no GPU version
                self._search_index = faiss.index_cpu_to_all_gpus(self._cpu_index)
                log.info("reference index moved to %d GPU(s)", faiss.get_num_gpus())
            else:
                self._search_index = self._cpu_index
        return self._search_index

    def _params(self, allowed: np.ndarray) -> tuple[faiss.SearchParameters, list[Any]]:
        """Search parameters leaving out keys where ``allowed`` is False (and what must outlive them)."""
        bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
        sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
        inner = faiss.downcast_index(self._cpu_index.index) if isinstance(self._cpu_index, faiss.IndexPreTransform) \
            else self._cpu_index
        if isinstance(inner, faiss.IndexIVF):
            params: faiss.SearchParameters = _SWIG.SearchParametersIVF(sel=sel, nprobe=int(inner.nlist))
        elif isinstance(inner, faiss.IndexHNSW):
            params = _SWIG.SearchParametersHNSW(sel=sel, efSearch=max(self.config.hnsw_ef_search, 1024))
        else:
            params = _SWIG.SearchParameters(sel=sel)
        if isinstance(self._cpu_index, faiss.IndexPreTransform):
            outer = faiss.SearchParametersPreTransform()
            outer.index_params = params
            return outer, [bits, sel, params]
        return params, [bits, sel]

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` keys per query: (similarities float32, positions int64).

        ``allowed``: boolean mask over the keys; keys where it is False are never
        returned (leave-clade-out calibration). Searched on the CPU index.
        """
        self._fitted()  # before dim_ / ntotal_, which exist only once fitted
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim_:
            raise ValueError(f"queries must have shape (n, {self.dim_}), got {queries.shape}")
        k = max(1, min(int(k), self.ntotal_))
        if queries.shape[0] == 0:
            return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
        if allowed is not None:
            if len(allowed) != self.ntotal_:
                raise ValueError(f"allowed mask has {len(allowed)} entries for {self.ntotal_} keys")
            params, keep = self._params(allowed)
            n = queries.shape[0]
            sims = np.empty((n, k), dtype=np.float32)
            pos = np.empty((n, k), dtype=np.int64)
            # the SWIG call itself: faiss.contrib.torch_utils (imported by pytorch-metric-learning)
            # replaces Index.search with a version that drops ``params``
            index: Any = self._fitted()  # search_c: the raw SWIG method, absent from faiss's stubs
            index.search_c(n, faiss.swig_ptr(queries), k, faiss.swig_ptr(sims), faiss.swig_ptr(pos), params)
            del keep
            return sims, pos
        return self._searcher().search(queries, k)

    # -- shards --------------------------------------------------------------------
    def shards(self, n: int) -> list[tuple["ReferenceIndex", int]]:
        """Split into ``n`` contiguous key blocks: ``(shard, offset to add to its positions)``.

        Shards share the trained projection and IVF cells, so a query scans the
        same cells in every shard and the merged per-shard top-k is the whole
        index's top-k (ties aside). HNSW graphs cannot be split: their shards are
        rebuilt from the stored vectors (approximate in another way).
        """
        if self._cpu_index is None:
            raise NotFittedError("ReferenceIndex is not fitted; call fit() or load() first")
        n = max(1, min(int(n), self.ntotal_ or 1))
        bounds = np.linspace(0, self.ntotal_, n + 1).astype(np.int64)
        return [self._subset(int(lo), int(hi)) for lo, hi in pairwise(bounds)]

    def _subset(self, lo: int, hi: int) -> tuple["ReferenceIndex", int]:
        """Keys ``lo..hi-1`` as an index of their own, and what to add to its positions."""
        whole = self._fitted()
        inner = faiss.downcast_index(whole.index) if isinstance(whole, faiss.IndexPreTransform) else whole
        if isinstance(inner, faiss.IndexIVF):
            part = faiss.deserialize_index(faiss.serialize_index(whole))  # clone_index lacks transforms
            part_inner = faiss.extract_index_ivf(part)
            part_inner.reset()
            inner.copy_subset_to(part_inner, _SWIG.InvertedLists.SUBSET_TYPE_ID_RANGE, lo, hi)
            if isinstance(part, faiss.IndexPreTransform):
                part.ntotal = part_inner.ntotal
            return ReferenceIndex.from_faiss(part, self.config), 0  # IVF lists keep the global ids
        vectors = inner.reconstruct_n(lo, hi - lo)
        part = faiss.deserialize_index(faiss.serialize_index(whole))  # clone_index lacks transforms
        target = faiss.downcast_index(part.index) if isinstance(part, faiss.IndexPreTransform) else part
        if isinstance(target, faiss.IndexHNSW):
            target = faiss.IndexHNSWFlat(inner.d, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            target.hnsw.efSearch = self.config.hnsw_ef_search
            if isinstance(part, faiss.IndexPreTransform):
                part.index = target
                cast(Any, part).referenced_objects = [target]  # keeps the new index alive (SWIG ownership)
            else:
                part = target
        target.reset()
        target.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if isinstance(part, faiss.IndexPreTransform):
            part.ntotal = target.ntotal
        return ReferenceIndex.from_faiss(part, self.config), lo

    # -- persistence -----------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        """Write the CPU index to ``directory/reference.faiss`` (FAISS's own format, no pickle)."""
        if self._cpu_index is None:
            raise NotFittedError("cannot save an unfitted ReferenceIndex; call fit() or load() first")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.FILENAME
        faiss.write_index(self._cpu_index, str(path))
        return path

    @classmethod
    def load(cls, directory: Path, config: IndexConfig | None = None) -> "ReferenceIndex":
        path = Path(directory) / cls.FILENAME
        if not path.exists():
            raise FileNotFoundError(f"no reference index at {path}")
        return cls.from_faiss(faiss.read_index(str(path)), config)

    def to_bytes(self) -> np.ndarray:
        """The CPU index serialised by FAISS (uint8 array, storable as a bundle array)."""
        if self._cpu_index is None:
            raise NotFittedError("cannot serialise an unfitted ReferenceIndex; call fit() or load() first")
        return faiss.serialize_index(self._cpu_index)

    @classmethod
    def from_bytes(cls, data: np.ndarray, config: IndexConfig | None = None, *, where: str = "reference index",
                   ntotal: int | None = None, dim: int | None = None) -> "ReferenceIndex":
        """Deserialise (FAISS's own format, never pickle); a damaged blob is a ``ModelBundleError``.

        ``ntotal`` / ``dim``: what the bundle's manifest says the index holds;
        an index that disagrees (a truncated or swapped file whose checksum was
        forged to match) is refused before any search.
        """
        try:
            index = faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8))
        except (RuntimeError, ValueError, TypeError, MemoryError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelBundleError(f"{where}: not a readable FAISS index ({first[:200]})") from None
        self = cls.from_faiss(index, config)
        if ntotal is not None and self.ntotal_ != ntotal:
            raise ModelBundleError(f"{where}: FAISS index holds {self.ntotal_} keys where the bundle lists {ntotal}")
        if dim is not None and self.dim_ != dim:
            raise ModelBundleError(f"{where}: FAISS index of dimension {self.dim_} where {dim} is expected")
        return self

    @classmethod
    def from_faiss(cls, index: faiss.Index, config: IndexConfig | None = None) -> "ReferenceIndex":
        """Wrap a FAISS index read back from disk (kind inferred from its type).

        With a ``config``, its search settings (``ivf_nprobe``, ``hnsw_ef_search``)
        replace the stored ones; without, the index searches as it was saved.
        """
        given = config is not None
        self = cls(config)
        self._cpu_index = index  # keep the owning wrapper: a downcast copy would not own the C++ index
        self.dim_ = int(index.d)
        self.ntotal_ = int(index.ntotal)
        self.kind_ = _kind_of(index)
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
        if given and isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efSearch = self.config.hnsw_ef_search
        elif given and isinstance(inner, faiss.IndexIVF):
            inner.nprobe = min(self.config.ivf_nprobe, int(inner.nlist))
        return self
