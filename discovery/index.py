"""Reference index: nearest-neighbour search over reference keys with FAISS.

Why FAISS: the reference grows from ~20k keys (the dev set) to the 5M specimens of
BIOSCAN-5M. Below ``exact_max`` keys we search exactly (``IndexFlatIP`` on unit
vectors = cosine), so small references lose nothing; above it an approximate
index (HNSW by default, IVF-Flat or IVF-PQ on request) keeps queries fast. When
faiss-gpu and a CUDA device are present the index is moved to the GPU for search
and moved back to the CPU to save, so a bundle built on one loads on the other.

Memory and time for a 5M-key reference (computed from FAISS's storage layout,
not measured here — the session had no machine with that many keys):
* exact flat, d=4096 float32 (6-mer profile): 5e6 × 4096 × 4 B = 82 GB — too big;
  use a smaller profile (5-mers, d=1024: 20 GB) or a compressed index;
* HNSW32 on d=1024: 20 GB vectors + 5e6 × 32 × 2 × 4 B ≈ 1.3 GB links; ~1 ms/query;
* IVF-PQ (nlist=16384, 128 sub-quantisers × 8 bit): 5e6 × 128 B = 0.64 GB codes
  (+ ids 40 MB); query time ~1–5 ms on CPU with nprobe=32, training on ~1M keys
  takes minutes. This is the setting to use for a full BIOSCAN-5M reference.
Exact identity re-ranking (``discovery.identity``) on the top hits repairs most
of the recall an approximate index loses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq")


@dataclass(frozen=True)
class IndexConfig:
    """How to index reference keys.

    ``kind='auto'`` = exact below ``exact_max`` keys, HNSW above. ``use_gpu=None``
    = use a GPU when faiss has GPU support and sees a device.
    """

    kind: str = "auto"
    exact_max: int = 500_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 256
    ivf_nlist: int | None = None
    ivf_nprobe: int = 32
    pq_m: int = 64
    use_gpu: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {self.kind!r} (known: {', '.join(INDEX_KINDS)})")

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexConfig":
        return cls(**data)


def gpu_available() -> bool:
    """True when this faiss build has GPU support and a CUDA device is visible."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class ReferenceIndex:
    """Inner-product (cosine on unit vectors) search over reference keys.

    ``fit(keys)`` builds the index; ``search(queries, k)`` returns
    ``(similarities, positions)`` with ``-1`` positions where fewer than ``k``
    keys exist. Fitted attributes: ``kind_``, ``dim_``, ``ntotal_``.
    """

    FILENAME = "reference.faiss"

    def __init__(self, config: IndexConfig | None = None) -> None:
        self.config = config or IndexConfig()
        self._cpu_index: faiss.Index | None = None
        self._search_index: faiss.Index | None = None

    # -- building ------------------------------------------------------------------
    def _choose_kind(self, n: int) -> str:
        if self.config.kind != "auto":
            return self.config.kind
        return "flat" if n <= self.config.exact_max else "hnsw"

    def fit(self, keys: np.ndarray) -> "ReferenceIndex":
        keys = np.ascontiguousarray(keys, dtype=np.float32)
        if keys.ndim != 2 or keys.shape[0] == 0:
            raise ValueError(f"reference keys must be a non-empty 2-D array, got shape {keys.shape}")
        n, d = keys.shape
        kind = self._choose_kind(n)
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.config.hnsw_ef_search
        else:
            nlist = self.config.ivf_nlist or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
            quantizer = faiss.IndexFlatIP(d)
            if kind == "ivf":
                index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                m = self.config.pq_m
                while d % m:
                    m //= 2
                index = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            index.train(keys)
            index.nprobe = min(self.config.ivf_nprobe, nlist)
        index.add(keys)
        self._cpu_index = index
        self._search_index = None
        self.kind_ = kind
        self.dim_ = d
        self.ntotal_ = int(index.ntotal)
        log.info("built %s index over %d keys of dimension %d", kind, n, d)
        return self

    def add(self, keys: np.ndarray) -> "ReferenceIndex":
        """Append keys (positions continue after the existing ones); every index kind supports it."""
        if self._cpu_index is None:
            raise RuntimeError("ReferenceIndex is not fitted; call fit() or load() first")
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
            raise RuntimeError("ReferenceIndex is not fitted; call fit() or load() first")
        if self._search_index is None:
            use_gpu = self.config.use_gpu if self.config.use_gpu is not None else gpu_available()
            if use_gpu and gpu_available() and self.kind_ != "hnsw":  # HNSW has no GPU version
                self._search_index = faiss.index_cpu_to_all_gpus(self._cpu_index)
                log.info("reference index moved to %d GPU(s)", faiss.get_num_gpus())
            else:
                self._search_index = self._cpu_index
        return self._search_index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` keys per query: (similarities float32, positions int64)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim_:
            raise ValueError(f"queries must have shape (n, {self.dim_}), got {queries.shape}")
        k = max(1, min(int(k), self.ntotal_))
        if queries.shape[0] == 0:
            return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
        sims, pos = self._searcher().search(queries, k)
        return sims, pos

    # -- persistence -----------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        """Write the CPU index to ``directory/reference.faiss`` (FAISS's own format, no pickle)."""
        if self._cpu_index is None:
            raise RuntimeError("cannot save an unfitted ReferenceIndex")
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
            raise RuntimeError("cannot serialise an unfitted ReferenceIndex")
        return faiss.serialize_index(self._cpu_index)

    @classmethod
    def from_bytes(cls, data: np.ndarray, config: IndexConfig | None = None) -> "ReferenceIndex":
        return cls.from_faiss(faiss.deserialize_index(np.asarray(data, dtype=np.uint8)), config)

    @classmethod
    def from_faiss(cls, index: faiss.Index, config: IndexConfig | None = None) -> "ReferenceIndex":
        """Wrap a FAISS index read back from disk (kind inferred from its type)."""
        self = cls(config)
        self._cpu_index = index
        self.dim_ = int(index.d)
        self.ntotal_ = int(index.ntotal)
        if isinstance(index, faiss.IndexHNSWFlat):
            self.kind_ = "hnsw"
            index.hnsw.efSearch = self.config.hnsw_ef_search
        elif isinstance(index, faiss.IndexIVFPQ):
            self.kind_ = "ivfpq"
        elif isinstance(index, faiss.IndexIVF):
            self.kind_ = "ivf"
        else:
            self.kind_ = "flat"
        return self
