"""The reference: keys (ids, barcodes, lineages) and the candidate search over them.

Why one object: the naming model needs, per query, the reference keys most
likely to be its relatives with their *exact* identities (the evidence a
taxonomist trusts), and during calibration the same with a whole clade left out
of the keys. Everything about how keys are stored (compact, memory-mapped from
the bundle) and searched (which FAISS index, sharded or not) lives here, so the
naming code never depends on it and a change of index kind cannot change what
it is given beyond what the search itself misses (measured: benchmarks/
RESULTS-scale.md).

Search: k-mer profile (``discovery.kmer``) → FAISS (``discovery.index``; by
default exact below ``exact_max`` keys, and above it an uncentred SVD projection
to 256-d in IVF cells of 8-bit codes) → a pool of hits re-ranked
by the exact cosine of binary k-mer sketches (one bit per k-mer present: 512
bytes a key for 6-mers, compared with popcounts) → top ``n_search`` keys → at
most ``per_taxon`` keys per species up to ``max_candidates`` (so a crowded
species does not push every other candidate out) → exact identity to each
candidate (edlib, ``discovery.identity``). An exact reference (flat index over
unprojected presence vectors) skips the float scan: every key is scored from its
packed sketch (FAISS Hamming distances give the shared k-mers exactly), the
same similarity at a sixth of the CPU.

Why the sketch re-ranking: a compact index orders near-identical keys of one
species slightly differently from the full profile, and the per-species cap
then keeps two of its keys that are not its closest, so the best identity
found drops (4.7 % of dev queries with a 256-d projection). Ordering the pool
by an exact similarity of the k-mer sets — the same function whatever index
produced the pool — leaves the index only the job of getting the right keys
into the pool, which is what its recall measures. The index itself stores the
sketches as unit vectors (``presence``), projected and quantised, so it
approximates that same similarity: a flat index over unprojected presence
vectors is exact, and every other kind is measured against it.

Storage (bundle arrays, all memory-mapped on load; tables are small JSON):

* ``<prefix>_seqs`` / ``<prefix>_seq_offsets``: barcodes as one ASCII byte
  string and int64 offsets (``n + 1``), 1 byte a base;
* ``<prefix>_ids`` / ``<prefix>_id_offsets``: processids the same way;
* ``<prefix>_sketch`` / ``<prefix>_sketch_bits``: packed k-mer presence bits
  ``(n, dim / 8)`` and their popcounts;
* ``<prefix>_lineage``: int32 codes ``(n, len(RANKS))`` into the table's
  per-rank vocabulary, ``-1`` = blank;
* ``<prefix>_index``: the serialised FAISS index (projection included);
* table ``<prefix>``: format, ranks, vocabularies, key count, index settings and
  what the index holds (``vectors``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
import zlib
from array import array
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import faiss
import numpy as np

from biodiscover.discovery.identity import candidate_identities
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder, bootstrap_wins
from biodiscover.storage.distance import reverse_complement
from biodiscover.storage.errors import ModelBundleError
from biodiscover.storage.records import RANKS
from biodiscover.storage.safetext import control_characters, escape_controls
from biodiscover.storage.validation import MAX_TEXT_CELL

log = logging.getLogger(__name__)

REFERENCE_FORMAT = 2  # 2: the table says what the index holds (``vectors``); 1: k-mer profiles
Lineage = tuple[str | None, ...]  # over RANKS
#: queries searched (and keys embedded) a batch at a time by default
BATCH_SIZE = 2048  # pragma: no mutate batches of rows and chunks of keys: each row's answer and key's sketch is its own
#: queries re-ranked together (bounds the gathered sketch block: 128 × pool × dim/8 bytes)
_RERANK_BLOCK = 128  # pragma: no mutate rows are re-ranked independently: any block gives the same rows
#: a key covering less of the query than this counts as covering this much in ``Reference.containment``
CONTAIN_FLOOR = 0.8
_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # pragma: no mutate a byte is < 256
#: a chunk needs this many distinct (query, candidate) alignments (~2 s of edlib) before they are spread
#: over worker processes: forking a loaded engine costs ~0.5 s of CPU (copy-on-write of the parent's
#: heap, pickled jobs), more than it saves below that (on the SINTAX set's 62k alignments, 2 workers
#: took 0.5 s more CPU and, at load 11, 2.5 s more wall than one; benchmarks/RESULTS-scale.md)
PARALLEL_MIN_PAIRS = 100_000  # pragma: no mutate only the path: the same identities in or out of the pool
#: the reference forked align workers read (set in the parent just before the fork)
_FORKED: dict[str, Any] = {}
#: distinct alignments (~0.1 s of edlib) a chunk needs before ``while_aligning``'s work is done beside them
OVERLAP_MIN_PAIRS = 5_000  # pragma: no mutate only when: the work runs beside or after, the identities are the same
#: work registered by ``while_aligning``, waiting for a chunk to align beside
_MEANWHILE: list[Callable[[], None]] = []


@contextlib.contextmanager
def while_aligning(work: Callable[[], None]) -> Iterator[None]:
    """Inside the block, run ``work`` in this process while one forked child aligns the first chunk that
    needs at least ``OVERLAP_MIN_PAIRS`` exact identities (and is too small for the worker pool).

    Why: edlib holds the GIL, so a thread cannot overlap the alignments with anything; a child
    process can. Meant for work the caller needs next anyway — triage imports the clustering
    stack (hdbscan, scikit-learn, SciPy's stats: ~1.5 s of CPU) while ~1.4 s of alignments run —
    so nothing is done twice: the wall time falls by the shorter of the two, the CPU stays (plus the
    fork). The identities are the child's own ``candidate_identities`` values, sent back as float32
    bytes: the same numbers. When no chunk qualifies (few queries, no ``fork``, other threads running,
    ``align_workers`` 1) ``work`` is not run here; the caller's next step does it.
    """
    _MEANWHILE.append(work)
    try:
        yield
    finally:
        if work in _MEANWHILE:
            _MEANWHILE.remove(work)


def _aligned_beside(queries: list[str], cands: list[list[int]], sequences: Sequence[str],
                    work: Callable[[], None]) -> list[np.ndarray]:
    """``candidate_identities`` in a forked child while this process runs ``work``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: align, send the values, leave without the parent's exit handlers
        code = 1
        try:
            os.close(read_fd)
            values = candidate_identities(queries, cands, sequences)
            with os.fdopen(write_fd, "wb") as fh:
                fh.write(np.concatenate(values).astype(np.float32, copy=False).tobytes())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    payload = b""
    try:
        try:
            work()
        except Exception:  # the caller's next step does the same work again and reports what fails
            log.debug("work beside the alignments failed", exc_info=True)
        with os.fdopen(read_fd, "rb") as fh:
            read_fd = -1
            payload = fh.read()
    finally:
        if read_fd >= 0:  # interrupted before reading: a child blocked on a full pipe gets EPIPE and exits
            os.close(read_fd)
        status = os.waitpid(pid, 0)[1]
    sizes = [len(c) for c in cands]
    if status != 0 or len(payload) != 4 * sum(sizes):
        log.warning("forked alignment failed (wait status %d); aligning in this process", status)
        return candidate_identities(queries, cands, sequences)
    flat = np.frombuffer(payload, dtype=np.float32)
    ends = np.cumsum(sizes)
    return [flat[end - n : end].copy() for n, end in zip(sizes, ends.tolist())]


def align_workers_default() -> int:
    """Worker processes for exact identities: ``BIODISCOVER_ALIGN_WORKERS``, else the CPUs this process may use."""
    env = os.environ.get("BIODISCOVER_ALIGN_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except AttributeError:  # not Linux (macOS, Windows): no affinity mask
        return max(1, min(os.cpu_count() or 1, 8))


def _forked_identities(job: tuple[list[str], list[list[int]]]) -> list[np.ndarray]:
    queries, cands = job
    return candidate_identities(queries, cands, _FORKED["sequences"])


def popcount_rows(bits: np.ndarray) -> np.ndarray:
    """Set bits per row of a packed uint8 array (last axis summed)."""
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(bits).sum(axis=-1, dtype=np.int32))
    return np.asarray(_POP8[bits].sum(axis=-1, dtype=np.int32))  # numpy < 2.0


def _as_words(bits: np.ndarray) -> np.ndarray:
    """Packed bits as 64-bit words when the width allows (8x fewer popcounts), else as they are."""
    return bits.view(np.uint64) if bits.shape[-1] % 8 == 0 and bits.flags.c_contiguous else bits


def sketch(profiles: np.ndarray) -> np.ndarray:
    """Binary k-mer sketches: one bit per profile entry that is non-zero, packed (``(n, dim / 8)`` uint8)."""
    return np.asarray(np.packbits(profiles > 0, axis=1))


def presence(profiles: np.ndarray) -> np.ndarray:
    """The sketches as unit vectors (k-mer present = 1, scaled to unit length): inner product = sketch cosine."""
    bits = (profiles > 0).astype(np.float32)
    norms = np.linalg.norm(bits, axis=1, keepdims=True)
    return np.asarray(np.divide(bits, norms, out=bits, where=norms > 0))


class StringStore(Sequence[str]):
    """Immutable strings as one byte buffer + offsets (memory-mappable), plus an in-memory tail.

    ``store[i]`` decodes one string on demand, so a million barcodes cost their
    bytes (paged in from the bundle as they are read), not a million Python
    strings. ``extend`` appends in memory (session keys; nothing is written back).
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self._data = data
        self._offsets = offsets
        self._n = len(offsets) - 1
        self._tail: list[str] = []

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> "StringStore":
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(bytes, offsets) of every string, the tail included (for saving)."""
        if not self._tail:
            return np.asarray(self._data), np.asarray(self._offsets)
        tail = StringStore.from_strings(self._tail)
        data = np.concatenate([np.asarray(self._data), tail._data])
        offsets = np.concatenate([np.asarray(self._offsets), tail._offsets[1:] + self._offsets[-1]])
        return data, offsets

    def __len__(self) -> int:
        return self._n + len(self._tail)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if i >= self._n:
            return self._tail[i - self._n]
        if i < 0:
            raise IndexError(i)
        return bytes(self._data[self._offsets[i] : self._offsets[i + 1]]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def extend(self, strings: Iterable[str]) -> None:
        self._tail.extend(strings)


class KeyColumns:
    """Reference keys accumulated one at a time into compact columns: the streaming build's input.

    Why: a million keys read as ``Specimen`` objects cost ≈ 2.3 KB each (a dict of
    two dozen fields and a string per cell); here a key costs its barcode and
    processid bytes, two int64 offsets, ``len(RANKS)`` int32 taxon codes and an int32 country code, so a
    build never holds more than that (plus one row in flight). ``columns()``
    hands :meth:`Reference.build` the same ids, barcodes and lineages, in the
    same order, as lists would; ``countries()`` where each key was collected (the naming
    model's simulation meets a species from another part of its range through it).
    """

    def __init__(self) -> None:
        self._ids, self._seqs = bytearray(), bytearray()
        self._id_end, self._seq_end = array("q"), array("q")  # end offsets (8 B a key, no int objects)
        self._codes = array("i")  # len(RANKS) taxon codes a key, -1 = blank
        self._vocab: list[dict[str, int]] = [{} for _ in RANKS]
        self._country = array("i")  # the collecting country's code a key, -1 = none recorded
        self._country_vocab: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._id_end)

    def append(self, processid: str, sequence: str, lineage: Lineage, country: str | None = None) -> None:
        if len(lineage) != len(RANKS):
            raise ValueError(f"lineage of {len(lineage)} ranks for {len(RANKS)}")
        self._country.append(self._country_vocab.setdefault(country, len(self._country_vocab)) if country else -1)
        self._ids += processid.encode("utf-8")
        self._id_end.append(len(self._ids))
        self._seqs += sequence.encode("utf-8")
        self._seq_end.append(len(self._seqs))
        for vocab, name in zip(self._vocab, lineage):
            self._codes.append(vocab.setdefault(name, len(vocab)) if name else -1)

    def reverse_complement(self, positions: Iterable[int]) -> None:
        """Store the barcodes at ``positions`` as their reverse complement, in place (a key stored
        reversed, found by the reference audit: same length, so nothing else moves)."""
        for j in positions:
            start = self._seq_end[j - 1] if j else 0
            end = self._seq_end[j]
            self._seqs[start:end] = reverse_complement(self._seqs[start:end].decode("utf-8")).encode("utf-8")

    def extend(self, other: "KeyColumns") -> None:
        """Append ``other``'s keys after these (e.g. the key splits in the order they were asked for)."""
        base_i, base_s = len(self._ids), len(self._seqs)
        self._ids += other._ids
        self._seqs += other._seqs
        self._id_end.extend(e + base_i for e in other._id_end)
        self._seq_end.extend(e + base_s for e in other._seq_end)
        names = [{c: n for n, c in vocab.items()} for vocab in other._vocab]
        width = len(RANKS)
        for j, c in enumerate(other._codes):
            vocab = self._vocab[j % width]
            self._codes.append(vocab.setdefault(names[j % width][c], len(vocab)) if c >= 0 else -1)
        places = {c: n for n, c in other._country_vocab.items()}
        for c in other._country:
            self._country.append(self._country_vocab.setdefault(places[c], len(self._country_vocab)) if c >= 0 else -1)

    def countries(self) -> list[str | None] | None:
        """Each key's collecting country (None where not recorded), or None when no key has one."""
        if not self._country_vocab:
            return None
        names = list(self._country_vocab)  # insertion order = code order
        return [names[c] if c >= 0 else None for c in self._country]

    def columns(self) -> tuple["StringStore", "StringStore", list[Lineage]]:
        """(ids, barcodes, lineages): byte stores over these buffers and one shared str per taxon name."""
        def store(data: bytearray, ends: "array[int]") -> StringStore:
            offsets = np.zeros(len(ends) + 1, dtype=np.int64)
            offsets[1:] = np.frombuffer(ends, dtype=np.int64)
            return StringStore(np.frombuffer(data, dtype=np.uint8), offsets)  # a view: no copy of the barcodes

        codes = np.frombuffer(self._codes, dtype=np.int32).reshape(len(self), len(RANKS))
        vocab = {r: list(v) for r, v in zip(RANKS, self._vocab)}  # insertion order = code order
        return store(self._ids, self._id_end), store(self._seqs, self._seq_end), decode_lineages(codes, vocab)


def encode_lineages(lineages: Sequence[Lineage], ranks: Sequence[str] = RANKS
                    ) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Lineages as int32 codes ``(n, ranks)`` (-1 = blank) and the sorted per-rank vocabulary."""
    vocab = {r: sorted({name for lin in lineages if (name := lin[i])}) for i, r in enumerate(ranks)}
    codes = np.full((len(lineages), len(ranks)), -1, dtype=np.int32)
    for i, r in enumerate(ranks):
        index = {name: c for c, name in enumerate(vocab[r])}
        codes[:, i] = [index.get(name, -1) if (name := lin[i]) else -1 for lin in lineages]
    return codes, vocab


def decode_lineages(codes: np.ndarray, vocab: dict[str, list[str]], ranks: Sequence[str] = RANKS) -> list[Lineage]:
    """Inverse of :func:`encode_lineages` (one shared str object per taxon name)."""
    cols = []
    for i, r in enumerate(ranks):
        names = np.array(list(vocab[r]) + [None], dtype=object)  # code -1 → the trailing None
        cols.append(names[np.asarray(codes[:, i])])
    return list(zip(*cols)) if cols and len(codes) else []


@dataclass(frozen=True)
class Candidates:
    """One query's candidate keys: positions (search order), retrieval similarities, exact identities."""

    positions: np.ndarray  # int64 positions into the reference
    similarities: np.ndarray  # float32, the index's similarity (cosine in its space)
    identities: np.ndarray  # float32, exact identity (discovery.identity) to each candidate
    top_similarity: float  # similarity of the best search hit (0.0 when none)


#: what one query's search leaves out: ``(rank index into RANKS, label)`` — that whole taxon — or an
#: int array of key positions (a leave-one-barcode-out query's identical copies); None: nothing
Exclusion = tuple[int, str] | np.ndarray | None


def _check_country_list(places: Any, where: str) -> None:
    """Refuse a reference table's country list unless it is what :meth:`Reference.save` writes: a list of
    country names. Why: the names go on into every candidate's evidence, the review screen and the report; a
    number stopped ``load`` with a TypeError, a dict or a string read silently as its keys or letters, a null as
    a country called 'None', and a name with a terminal escape or a bidi override, or one of 10,000 characters
    (which a collection's own cells are quarantined for) would reach the screen."""
    if not isinstance(places, list):
        raise ModelBundleError(f"{where}: the country list is not a list of names ({type(places).__name__})")
    for i, name in enumerate(places):
        if not isinstance(name, str) or not name.strip():
            raise ModelBundleError(f"{where}: the country list's entry {i} is {name!r}, not a country name")
        if control_characters(name):
            raise ModelBundleError(f"{where}: the country list's entry {i} holds control characters: "
                                   f"{escape_controls(name)[:80]}")
        if len(name) > MAX_TEXT_CELL:  # what a collection's country cell is set aside for (a bundle built before)
            raise ModelBundleError(f"{where}: the country list's entry {i} is {len(name):,} characters long, more "
                                   f"than the {MAX_TEXT_CELL} a country name may take: {name[:40]!r}…")


class Reference:
    """Reference keys and their search; build with :meth:`build`, or :meth:`load` from a bundle.

    Attributes: ``ids`` and ``sequences`` (:class:`StringStore`), ``lineages``
    (list of tuples over ``RANKS``), ``index_`` (:class:`ReferenceIndex`),
    ``embedder`` (:class:`KmerEmbedder`).
    """

    ids: StringStore
    sequences: StringStore
    lineages: list[Lineage]
    index_: ReferenceIndex
    #: packed binary k-mer sketches of the keys and their set-bit counts (the identity pre-filter)
    sketches_: np.ndarray
    sketch_bits_: np.ndarray
    #: where each key was collected (None where not recorded); None: the reference records no country
    #: (built before countries were kept, or from keys that carry none). The review shows a candidate's
    #: nearest known species with the countries of its keys (a known species met from another part of its
    #: range looks new when every key of it comes from elsewhere).
    countries: list[str | None] | None

    def __init__(self, kmer: KmerConfig | None = None, index: IndexConfig | None = None,
                 batch_size: int = BATCH_SIZE, align_workers: int | None = None) -> None:
        self.embedder = KmerEmbedder(kmer or KmerConfig(ks=(6,), sqrt=True))
        self.index_config = index or IndexConfig()
        self.batch_size = batch_size
        #: processes computing exact identities (None: ``align_workers_default()``; 1: in this process)
        self.align_workers = align_workers
        #: distinct alignments a chunk needs before they go to worker processes
        self.parallel_min_pairs = PARALLEL_MIN_PAIRS
        #: what the index holds and is queried with: ``presence`` (unit k-mer presence, approximating the
        #: sketch cosine that re-ranks its hits) or ``profile`` (the k-mer profile: format-1 references)
        self.index_vectors = "presence" if self.index_config.sketch_rerank else "profile"
        #: replaces ``index_.search`` for the pool search when the index lives elsewhere (Ray shards)
        self.remote_search: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._pool_size = 0
        self.countries = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for another process (Ray): no worker pool, and no index when searches go to shards."""
        state = dict(self.__dict__)
        state["_pool"], state["_pool_size"] = None, 0
        if self.remote_search is not None:
            state["index_"] = _IndexStub(self.index_)
        return state

    def close(self) -> None:
        """Stop the identity worker processes (they are also stopped at interpreter exit)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool, self._pool_size = None, 0

    # -- building ----------------------------------------------------------------------
    @classmethod
    def build(cls, ids: Sequence[str], sequences: Sequence[str], lineages: Sequence[Lineage], *,
              kmer: KmerConfig | None = None, index: IndexConfig | None = None, batch_size: int = BATCH_SIZE,
              progress: Callable[[str], None] | None = None) -> "Reference":
        """Index ``sequences`` streaming: train on a sample, then embed and add chunk by chunk.

        Peak memory is one chunk of full-size profiles plus the index, never all
        keys' profiles at once.
        """
        if not (len(ids) == len(sequences) == len(lineages)):
            raise ValueError(f"{len(ids)} ids, {len(sequences)} sequences and {len(lineages)} lineages")
        if not len(ids):
            raise ValueError("a reference needs at least one key")
        self = cls(kmer, index, batch_size)
        t = time.perf_counter()
        self.ids = ids if isinstance(ids, StringStore) else StringStore.from_strings(ids)
        self.sequences = sequences if isinstance(sequences, StringStore) else StringStore.from_strings(sequences)
        self.lineages = [tuple(x) for x in lineages]
        self._refresh()
        n = len(self.ids)
        cfg = self.index_config
        rng = np.random.default_rng(cfg.seed)
        take = np.sort(rng.choice(n, cfg.train_size, replace=False)) if n > cfg.train_size else np.arange(n)
        built = ReferenceIndex(cfg)
        # IVF cells want ~39 keys each: more keys than the projection's sample, embedded chunk by chunk
        want = min(n, 40 * built.cells_for(n)) if built._choose_kind(n) in ("ivf", "ivfsq", "ivfpq") else 0
        rest = np.setdiff1d(np.arange(n), take)
        extra = np.sort(rng.choice(rest, min(len(rest), max(0, want - len(take))), replace=False)) \
            if want > len(take) else np.zeros(0, dtype=np.int64)

        def cell_chunks() -> Iterator[np.ndarray]:
            for start in range(0, len(extra), batch_size):
                yield self._vectors(self.embedder.embed_dna([self.sequences[int(j)]
                                                             for j in extra[start : start + batch_size]]))

        self.index_ = built.train(self._vectors(self.embedder.embed_dna([self.sequences[int(j)] for j in take])),
                                  n_total=n, cell_sample=cell_chunks())
        (progress or log.info)(f"trained the {self.index_.kind_} index on {len(take) + len(extra)} of {n} keys "
                               f"in {time.perf_counter() - t:.1f}s")
        self.sketches_ = np.zeros((n, (self.embedder.dim + 7) // 8), dtype=np.uint8)
        for start in range(0, n, batch_size):
            profiles = self.embedder.embed_dna(self.sequences[start : start + batch_size])
            self.index_.add(self._vectors(profiles))
            self.sketches_[start : start + len(profiles)] = sketch(profiles)
        self.sketch_bits_ = popcount_rows(self.sketches_)
        (progress or log.info)(f"indexed {n} reference keys ({self.index_.kind_}, "
                               f"{self.describe_index()}) in {time.perf_counter() - t:.1f}s")
        return self

    def _vectors(self, profiles: np.ndarray) -> np.ndarray:
        """What the index stores and is queried with (``index_vectors``): k-mer presence (unit length) when
        hits are re-ranked by sketch cosine, so the index approximates the very similarity that orders its
        hits; the profile itself otherwise (``sketch_rerank=False``, and format-1 references)."""
        return presence(profiles) if self.index_vectors == "presence" else profiles

    def describe_index(self) -> str:
        d = self.index_.stored_dim
        return f"{self.embedder.dim}-d k-mer profile" + (f" projected to {d}-d" if d != self.embedder.dim else "")

    def _refresh(self, codes: np.ndarray | None = None, vocab: dict[str, list[str]] | None = None) -> None:
        """Per-key taxon codes (from the bundle, or encoded from ``lineages``): the diversity rule
        reads the species column, leave-clade-out searches compare one column."""
        if codes is None or vocab is None:
            codes, vocab = encode_lineages(self.lineages)
        self._codes = np.asarray(codes)
        self._code_of = {r: {name: c for c, name in enumerate(vocab[r])} for r in RANKS}
        self._species = self._codes[:, -1].astype(np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: Sequence[str], sequences: Sequence[str], lineages: Sequence[Lineage],
            countries: Sequence[str | None] | None = None) -> int:
        """Append keys for this session (in memory; the bundle is not changed). Returns how many.
        ``countries``: where each was collected (kept when the reference records countries)."""
        if not ids:
            return 0
        if self.countries is not None:
            self.countries.extend(countries if countries is not None else [None] * len(ids))
        profiles = self.embedder.embed_dna(list(sequences))
        self.index_.add(self._vectors(profiles))
        new = sketch(profiles)
        self.sketches_ = np.concatenate([np.asarray(self.sketches_), new])
        self.sketch_bits_ = np.concatenate([np.asarray(self.sketch_bits_), popcount_rows(new)])
        self.ids.extend(ids)
        self.sequences.extend(sequences)
        self.lineages.extend(tuple(x) for x in lineages)
        self._refresh()
        self.close()  # forked workers hold the old key list
        return len(ids)

    # -- search ------------------------------------------------------------------------
    def search(self, sequences: Sequence[str], k: int, exclude: Sequence[Exclusion] | None = None,
               exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` keys per query: (similarities, positions; -1 where fewer keys qualify).

        Similarity = cosine of the binary k-mer sketches, over a pool the index
        proposes (``pool_factor`` × ``k`` for approximate kinds). ``exclude[i] =
        (rank index, label)`` leaves every key of that taxon out of query ``i``'s
        search (the naming model's leave-clade-out simulation); queries sharing a
        taxon are searched together with one ID selector. ``exclude[i]`` = an array
        of key positions (a handful: a leave-one-barcode-out query's identical
        copies) is met by fetching that many more hits and dropping them.
        ``exact``: every key scored from its sketch whatever the index kind (``scan_exact``).
        """
        k = max(1, min(int(k), len(self)))
        out_s = np.zeros((len(sequences), k), dtype=np.float32)
        out_p = np.full((len(sequences), k), -1, dtype=np.int64)
        groups: dict[Any, list[int]] = {}
        if exclude is None:
            groups[None] = list(range(len(sequences)))
        else:
            if len(exclude) != len(sequences):
                raise ValueError(f"{len(exclude)} exclusions for {len(sequences)} queries")
            for i, e in enumerate(exclude):
                if e is None:
                    key: Any = None
                elif isinstance(e, tuple):
                    key = (int(e[0]), e[1])
                else:  # positions: over-fetch by the next power of two of their count
                    key = ("keys", 1 << int(len(e)).bit_length())
                groups.setdefault(key, []).append(i)
        rerank = self.index_config.sketch_rerank
        scan = self.scan_exact(exact)
        pool = k if self.index_.exact or not rerank else int(np.ceil(k * self.index_config.pool_factor))
        for group, rows in groups.items():
            allowed = None
            extra = 0
            if group is not None and group[0] == "keys":
                extra = int(group[1])
            elif group is not None:
                code = self._code_of[RANKS[group[0]]].get(group[1])
                allowed = self._codes[:, group[0]] != code if code is not None else None
                if allowed is not None and not allowed.any():
                    continue
            for start in range(0, len(rows), self.batch_size):
                part = rows[start : start + self.batch_size]
                # identical barcodes (a third of a real collection's rows) are searched once
                distinct = {str(sequences[i] or ""): 0 for i in part}
                for n, seq in enumerate(distinct):
                    distinct[seq] = n
                again = np.array([distinct[str(sequences[i] or "")] for i in part], dtype=np.int64)
                remote = self.remote_search is not None and allowed is None
                if scan and not remote:
                    # the flat index would score every key by this very similarity, in floats
                    s, p = self._sketch_search(self.query_sketches(list(distinct)), k + extra, allowed)
                else:
                    profiles = self.embedder.embed_dna(list(distinct))
                    search = self.remote_search if remote and self.remote_search is not None else self.index_.search
                    s, p = search(self._vectors(profiles), pool + extra, allowed=allowed)
                    if rerank:
                        s, p = self._rerank(sketch(profiles), p, k + extra)
                s, p = s[again], p[again]
                if extra:
                    # a "keys" group: every exclusion in it is an array of key positions
                    s, p = _drop_positions(s, p, [np.asarray(exclude[i]) for i in part if exclude is not None], k)
                m = min(k, p.shape[1])
                out_s[part, :m], out_p[part, :m] = s[:, :m], p[:, :m]
        return out_s, out_p

    def scan_exact(self, exact: bool = False) -> bool:
        """Whether a search scores every key from its packed sketch (``_sketch_search``): always on an
        exact index, and on any index when ``exact`` is asked (the naming model's simulation: its
        training candidates must not depend on an approximate index's recall). Needs sketch re-ranking
        of presence vectors (a format-1 reference is searched through its index)."""
        return bool(self.index_config.sketch_rerank and self.index_vectors == "presence"
                    and (exact or self.index_.exact))

    def query_sketches(self, sequences: Sequence[str]) -> np.ndarray:
        """Packed sketches of ``sequences``: ``sketch(embedder.embed_dna(sequences))`` without the dense profiles.

        The bits are the k-mers ``embedder.present`` lists, which are the profile's non-zero entries; one
        row of booleans at a time instead of a (queries x 4,096) float matrix (less CPU, no 16 KB a query).
        """
        out = np.zeros((len(sequences), (self.embedder.dim + 7) // 8), dtype=np.uint8)
        row = np.zeros(self.embedder.dim, dtype=bool)
        for i, seq in enumerate(sequences):
            if seq:
                row[:] = False
                row[self.embedder.present(seq)] = True
                out[i] = np.packbits(row)
        return out

    def _sketch_search(self, query_sketches: np.ndarray, k: int, allowed: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` keys by sketch cosine, every key scored from its packed bits.

        What a flat index over the presence vectors followed by :meth:`_rerank` returns, without the
        float scan of ``dim`` floats a key: FAISS's Hamming distances of the packed sketches give the
        shared k-mers exactly (``|q ∩ k| = (|q| + |k| − H) / 2``), at a sixth of the CPU on 4,096-bit
        sketches. Same similarity and tie rule as ``_rerank`` (ties to the lower position), computed the
        same way, and no float rounding at the ``k``-th hit. ``allowed``: keys that may be returned.
        """
        q = np.ascontiguousarray(query_sketches, dtype=np.uint8)
        keys = np.ascontiguousarray(self.sketches_, dtype=np.uint8)
        n, width = keys.shape
        k = min(k, n)
        out_s = np.zeros((len(q), k), dtype=np.float32)
        out_p = np.full((len(q), k), -1, dtype=np.int64)
        qbits = popcount_rows(q).astype(np.float64)
        key_bits = np.asarray(self.sketch_bits_)
        # queries scored at once: up to 256k (query, key) pairs (~2 MB a scratch array), so the scratch is
        # reused from the heap instead of fresh pages each block (each row's result does not depend on it)
        block = max(1, min(64, (1 << 18) // n))  # pragma: no mutate a scratch block: each row's result is its own
        for start in range(0, len(q), block):
            qb = q[start : start + block]
            ham = np.empty((len(qb), n), dtype=np.int32)
            # why the ignore: faiss ships its own stubs (faiss/__init__.pyi) and they omit the SWIG hammings
            faiss.hammings(faiss.swig_ptr(qb), faiss.swig_ptr(keys), len(qb), n, width,  # type: ignore[attr-defined]
                           faiss.swig_ptr(ham))
            inter = (qbits[start : start + len(qb), None].astype(np.int64) + key_bits[None, :] - ham) // 2
            norm = np.sqrt(key_bits[None, :] * qbits[start : start + len(qb), None])
            sim = inter / np.maximum(norm, 1e-12)
            if allowed is not None:
                sim[:, ~allowed] = -np.inf
            # the k best, ties at the k-th included, then ordered by similarity and position
            kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1 : k]
            for row in range(len(qb)):
                pos = np.flatnonzero(sim[row] >= kth[row])
                pos = pos[np.lexsort((pos, -sim[row, pos]))][:k]
                top = sim[row, pos]
                keep = np.isfinite(top)
                m = int(keep.sum())
                out_s[start + row, :m] = top[keep]
                out_p[start + row, :m] = pos[keep]
        return out_s, out_p

    def shared_kmers(self, query_sketches: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Sketch bits (k-mers) each hit ``pos[i, j]`` shares with query ``i`` (0 where ``pos`` is -1)."""
        out = np.zeros(pos.shape, dtype=np.int64)
        words, qwords = _as_words(np.asarray(self.sketches_)), _as_words(np.ascontiguousarray(query_sketches))
        for start in range(0, len(pos), _RERANK_BLOCK):
            p = pos[start : start + _RERANK_BLOCK]
            valid = p >= 0
            keys = np.take(words, np.where(valid, p, 0).ravel(), axis=0).reshape(*p.shape, -1)  # (block, pool, words)
            out[start : start + len(p)] = np.where(valid, popcount_rows(keys & qwords[start : start + len(p), None, :]),
                                                   0)
        return out

    def containment(self, query_sketches: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Share of the smaller of (query, key) k-mer sets that the other holds, per hit (0 where ``pos`` is -1),
        a key covering under ``CONTAIN_FLOOR`` of the query's k-mers counted as covering that much.

        The k-mer estimate of what ``identity`` measures, the identity over the two reads' overlap; the
        search's cosine also falls with a length difference (``diversify`` says why that matters). The floor:
        a 300-bp fragment identical to a 658-bp query is weaker evidence than the query's full-length key at
        99.8 % (the naming model reads the best key's overlap), so it must not take its species' first slot.
        """
        inter = self.shared_kmers(query_sketches, pos)
        qbits = popcount_rows(query_sketches).astype(np.float64)[:, None]
        kbits = np.asarray(self.sketch_bits_, dtype=np.float64)[np.where(pos >= 0, pos, 0)]
        return np.where(pos >= 0, inter / np.maximum(1.0, np.maximum(np.minimum(qbits, kbits), CONTAIN_FLOOR * qbits)),
                        0.0)

    def _rerank(self, query_sketches: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Order each row's hits by sketch cosine (ties: index order) and keep the top ``k``."""
        n = len(pos)
        out_s = np.zeros((n, k), dtype=np.float32)
        out_p = np.full((n, k), -1, dtype=np.int64)
        qbits = popcount_rows(query_sketches).astype(np.float64)
        key_bits = np.asarray(self.sketch_bits_)
        inter_all = self.shared_kmers(query_sketches, pos)
        for start in range(0, n, _RERANK_BLOCK):
            p = pos[start : start + _RERANK_BLOCK]
            valid = p >= 0
            safe = np.where(valid, p, 0)
            norm = np.sqrt(key_bits[safe] * qbits[start : start + len(p), None])
            sim = np.where(valid, inter_all[start : start + len(p)] / np.maximum(norm, 1e-12), -np.inf)
            # ties (identical barcodes are common) go to the lower position, whatever order the
            # index (or a merge of shards) returned them in: results do not depend on the index layout
            order = np.lexsort((np.where(valid, p, np.iinfo(np.int64).max), -sim), axis=1)[:, :k]
            top = np.take_along_axis(sim, order, axis=1)
            m = top.shape[1]
            out_s[start : start + len(p), :m] = np.where(np.isfinite(top), top, 0.0)
            out_p[start : start + len(p), :m] = np.where(np.isfinite(top), np.take_along_axis(p, order, axis=1), -1)
        return out_s, out_p

    def diversify(self, positions: np.ndarray, per_taxon: int, max_candidates: int,
                  contain: np.ndarray | None = None) -> list[list[int]]:
        """Per query row: search hits in order, at most ``per_taxon`` per species, up to ``max_candidates``.

        Keys without a species name each count as their own taxon. With ``contain`` (``containment`` of
        each hit, same shape as ``positions``), a species' first slot goes to its hit of highest
        containment (ties: search order) and its other slots follow search order.

        Why: the search ranks by sketch cosine, which a length difference lowers as much as a few
        mismatches do. A 660-bp Harpalus rubripes query's identical keys of 577–621 bp ranked 48th–57th,
        under its species' 658-bp keys at 96.7 %; the two slots went to those, the species' best identity
        (what the naming model reads) came out 96.7 % instead of 100 %, and a known species was called
        absent with P 0.995. On the per-order folds, 2.2 % (Lepidoptera) to 4.7 % (Diptera) of the test
        queries had their best identity under-read by ≥ 0.5 point that way (``bench_candidates.py``);
        containment, the k-mer estimate of the identity over the overlap, finds the best key at the same
        number of alignments
        (benchmarks/RESULTS-discovery.md, "The candidate keys: containment, not cosine, picks a species'
        first key").
        """
        out = []
        species = self._species
        for r, row in enumerate(positions):
            hits = [int(j) for j in row.tolist()]
            hits = hits[: hits.index(-1)] if -1 in hits else hits
            # per species, its hit of highest containment (first of equals in search order) fills its first
            # slot; its other slots take its other hits in search order, each where the search met it
            best: dict[int, int] = {}
            if contain is not None and hits:
                h = np.asarray(hits)
                sp = species[h]
                by = np.lexsort((np.arange(len(h)), -contain[r, : len(h)], sp))  # species, containment, order
                lead = by[np.r_[True, sp[by][1:] != sp[by][:-1]]]
                best = {int(sp[c]): int(h[c]) for c in lead if sp[c] >= 0}
            waiting: dict[int, list[int]] = defaultdict(list)  # a species' hits met so far, not yet placed
            seen: dict[int, int] = {}
            cand: list[int] = []
            for j in hits:
                key = int(species[j])
                if key < 0:
                    cand.append(j)
                else:
                    c = seen.get(key, 0)
                    if c >= per_taxon:
                        continue
                    seen[key] = c + 1
                    if key not in best:
                        cand.append(j)
                    else:
                        if j != best[key]:
                            waiting[key].append(j)
                        cand.append(best[key] if c == 0 else waiting[key].pop(0))
                if len(cand) >= max_candidates:
                    break
            out.append(cand)
        return out

    def candidates(self, sequences: Sequence[str], *, n_search: int, per_taxon: int, max_candidates: int,
                   exclude: Sequence[Exclusion] | None = None, exact: bool = False,
                   containment_first: bool = True) -> list[Candidates]:
        """Per query: the diversified top search hits with their exact identities (``exact``: see ``search``;
        ``containment_first``: see ``align``)."""
        out: list[Candidates] = []
        bs = self.batch_size
        for start in range(0, len(sequences), bs):
            chunk = list(sequences[start : start + bs])
            sims, pos = self.search(chunk, n_search, None if exclude is None else exclude[start : start + bs],
                                    exact=exact)
            out.extend(self.align(chunk, sims, pos, per_taxon=per_taxon, max_candidates=max_candidates,
                                  containment_first=containment_first))
        return out

    def align(self, sequences: Sequence[str], sims: np.ndarray, pos: np.ndarray, *, per_taxon: int,
              max_candidates: int, containment_first: bool = True) -> list[Candidates]:
        """Diversify search hits (``search``'s output) and align each query to its candidates.

        ``containment_first``: a species' first candidate is its hit of highest k-mer containment
        (``diversify``); off, its first hit by cosine (bundles written before this choice).
        """
        contain = self.containment(self.query_sketches(sequences), pos) if containment_first else None
        cands = self.diversify(pos, per_taxon, max_candidates, contain)
        ids = self._identities(list(sequences), cands)
        out = []
        for i, (cand, idv) in enumerate(zip(cands, ids)):
            sim_of = dict(zip(pos[i].tolist(), sims[i].tolist()))
            out.append(Candidates(np.asarray(cand, dtype=np.int64),
                                  np.array([sim_of[j] for j in cand], dtype=np.float32), idv,
                                  float(sims[i, 0]) if cand else 0.0))
        return out

    def bootstrap(self, sequence: str, positions: np.ndarray) -> np.ndarray:
        """SINTAX-style bootstrap over one query's candidate keys (``kmer.bootstrap_wins`` on their
        sketches): each candidate's share of wins, seeded by the sequence (same query, same answer)."""
        pos = np.asarray(positions, dtype=np.int64)
        return bootstrap_wins(self.embedder.present(sequence), np.asarray(self.sketches_[pos]),
                              seed=zlib.crc32(sequence.encode("utf-8", "replace")))

    def _identities(self, queries: list[str], cands: list[list[int]]) -> list[np.ndarray]:
        """Exact identities, spread over forked worker processes for large chunks.

        Why processes: edlib holds the GIL, and alignment is most of a large
        triage's time. Forked workers share the memory-mapped barcodes with
        this process (no copy); they are started on first use and kept.
        """
        # repeated (barcode, candidates) rows — a collection's identical barcodes — are aligned once
        row_of: dict[tuple[str, tuple[int, ...]], int] = {}
        first: list[int] = []
        which: list[int] = []
        for i, (q, c) in enumerate(zip(queries, cands)):
            r = row_of.setdefault((q or "", tuple(c)), len(first))
            if r == len(first):
                first.append(i)
            which.append(r)
        if len(first) < len(queries):
            unique = self._identities([queries[i] for i in first], [cands[i] for i in first])
            return [unique[r].copy() for r in which]
        workers = self.align_workers or align_workers_default()
        pairs = sum(len(c) for c in cands)
        can_fork = workers > 1 and "fork" in multiprocessing.get_all_start_methods()
        if (can_fork and _MEANWHILE and OVERLAP_MIN_PAIRS <= pairs < self.parallel_min_pairs
                and threading.active_count() == 1):
            return _aligned_beside(queries, cands, self.sequences, _MEANWHILE.pop())
        if not can_fork or pairs < self.parallel_min_pairs:
            return candidate_identities(queries, cands, self.sequences)
        if self._pool is None or self._pool_size != workers:
            self.close()
            _FORKED["sequences"] = self.sequences
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            self._pool_size = workers
        elif _FORKED.get("sequences") is not self.sequences:  # another reference forked since: restart
            self.close()
            return self._identities(queries, cands)
        step = -(-len(queries) // (workers * 4))  # pragma: no mutate job sizes: the pool's map keeps order
        jobs = [(queries[i : i + step], cands[i : i + step]) for i in range(0, len(queries), step)]
        out: list[np.ndarray] = []
        for part in self._pool.map(_forked_identities, jobs):
            out.extend(part)
        return out

    # -- persistence -------------------------------------------------------------------
    def save(self, bundle: Any, prefix: str) -> None:
        """Write into ``bundle`` (``storage.bundle.Bundle``) under ``prefix``: arrays + one small table."""
        seqs, seq_off = self.sequences.arrays()
        ids, id_off = self.ids.arrays()
        codes, vocab = encode_lineages(self.lineages)
        bundle.save_array(f"{prefix}_seqs", seqs)
        bundle.save_array(f"{prefix}_seq_offsets", seq_off)
        bundle.save_array(f"{prefix}_ids", ids)
        bundle.save_array(f"{prefix}_id_offsets", id_off)
        bundle.save_array(f"{prefix}_lineage", codes)
        bundle.save_array(f"{prefix}_sketch", np.asarray(self.sketches_))
        bundle.save_array(f"{prefix}_sketch_bits", np.asarray(self.sketch_bits_, dtype=np.int32))
        bundle.save_array(f"{prefix}_index", self.index_.to_bytes())
        places: list[str] = []
        if self.countries is not None:
            code = {c: i for i, c in enumerate(sorted({c for c in self.countries if c}))}
            places = list(code)
            bundle.save_array(f"{prefix}_country", np.array([code[c] if c else -1 for c in self.countries],
                                                            dtype=np.int32))
        else:
            bundle.remove("arrays", f"{prefix}_country")
        bundle.save_table(prefix, {"format": REFERENCE_FORMAT, "n": len(self), "ranks": list(RANKS),
                                   "countries": places if self.countries is not None else None,
                                   "vocab": vocab, "kmer": self.embedder.config.to_dict(),
                                   "index": self.index_config.to_dict(), "index_kind": self.index_.kind_,
                                   "vectors": self.index_vectors, "dim": self.embedder.dim})

    @classmethod
    def load(cls, bundle: Any, prefix: str, batch_size: int = BATCH_SIZE) -> "Reference":
        """Open a saved reference: arrays memory-mapped, every shape checked against the table."""
        where = f"{bundle.path}: reference {prefix!r}"
        meta = bundle.load_table(prefix, expect=dict)
        try:
            n = meta["n"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"key count {n!r}")
            if int(meta["format"]) > REFERENCE_FORMAT:
                raise ModelBundleError(f"{where}: format {meta['format']} is newer than supported; upgrade")
            if list(meta["ranks"]) != list(RANKS):
                raise ValueError(f"ranks {meta['ranks']} differ from {list(RANKS)}")
            vocab = {r: [str(x) for x in meta["vocab"][r]] for r in RANKS}
            self = cls(KmerConfig.from_dict(meta["kmer"]), IndexConfig.from_dict(meta["index"]), batch_size)
            # a format-1 index holds profiles: it keeps being queried with profiles (re-ranking still exact)
            self.index_vectors = meta.get("vectors", "profile")
            if self.index_vectors not in ("presence", "profile"):
                raise ValueError(f"index vectors {self.index_vectors!r}")
        except ModelBundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelBundleError(f"{where}: malformed table ({type(exc).__name__}: {exc})") from None
        self.sequences = _strings(bundle, f"{prefix}_seqs", f"{prefix}_seq_offsets", n, where)
        self.ids = _strings(bundle, f"{prefix}_ids", f"{prefix}_id_offsets", n, where)
        codes = bundle.load_array(f"{prefix}_lineage", mmap=True, dtype=np.int32, shape=(n, len(RANKS)))
        for i, r in enumerate(RANKS):
            col = np.asarray(codes[:, i])
            if col.size and (col.min() < -1 or col.max() >= len(vocab[r])):
                raise ModelBundleError(f"{where}: {r} codes outside its vocabulary of {len(vocab[r])}")
        self.lineages = decode_lineages(codes, vocab)
        width = (self.embedder.dim + 7) // 8
        self.sketches_ = bundle.load_array(f"{prefix}_sketch", mmap=True, dtype=np.uint8, shape=(n, width))
        self.sketch_bits_ = bundle.load_array(f"{prefix}_sketch_bits", mmap=True, dtype=np.int32, shape=(n,))
        blob = bundle.load_array(f"{prefix}_index", mmap=True, dtype=np.uint8, shape=(None,))
        self.index_ = ReferenceIndex.from_bytes(blob, self.index_config, where=f"{where} index", ntotal=n,
                                                dim=self.embedder.dim)
        places = meta.get("countries")
        if places is not None:  # a reference written before countries were kept has none
            _check_country_list(places, where)
            country = np.asarray(bundle.load_array(f"{prefix}_country", dtype=np.int32, shape=(n,)))
            if country.size and (country.min() < -1 or country.max() >= len(places)):
                raise ModelBundleError(f"{where}: country codes outside its list of {len(places)}")
            names: list[str | None] = [*places, None]  # code -1 → the trailing None
            self.countries = [names[c] for c in country.tolist()]
        self._refresh(codes, vocab)
        return self


def _drop_positions(sims: np.ndarray, pos: np.ndarray, drop: Sequence[np.ndarray], k: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's hits without the positions in ``drop[row]``, the first ``k`` kept, -1 padded."""
    out_s = np.zeros((len(pos), k), dtype=np.float32)
    out_p = np.full((len(pos), k), -1, dtype=np.int64)
    for row, gone in enumerate(drop):
        keep = (pos[row] >= 0) & ~np.isin(pos[row], gone)
        s, p = sims[row][keep][:k], pos[row][keep][:k]
        out_s[row, : len(p)], out_p[row, : len(p)] = s, p
    return out_s, out_p


class _IndexStub:
    """What a Reference whose index lives in remote shards still needs to know about it."""

    def __init__(self, index: ReferenceIndex) -> None:
        self.kind_, self.ntotal_, self.dim_, self.exact = index.kind_, index.ntotal_, index.dim_, index.exact
        self.stored_dim = index.stored_dim

    def search(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("this reference's index lives in remote shards; leave-clade-out search needs the index")


def _strings(bundle: Any, data_name: str, offsets_name: str, n: int, where: str) -> StringStore:
    offsets = bundle.load_array(offsets_name, mmap=True, dtype=np.int64, shape=(n + 1,))
    data = bundle.load_array(data_name, mmap=True, dtype=np.uint8, shape=(None,))
    off = np.asarray(offsets)
    if off[0] != 0 or off[-1] != len(data) or (len(off) > 1 and np.any(np.diff(off) < 0)):
        raise ModelBundleError(f"{where}: {offsets_name} do not describe {data_name} ({len(data)} bytes)")
    return StringStore(data, offsets)
