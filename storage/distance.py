"""Barcode distances: the one module every layer measures COI barcodes with.

Why here, in ``storage``: the numbers it defines are part of the stored data —
the evidence record (``storage.evidence``) holds p-distances, the synthetic
generator (``storage.synth``) is calibrated against real data in them, and the
engine, clustering, report and TUI all read or produce them. ``storage`` is the
floor every layer may import; a definition in ``discovery`` could not be used by
the generator, and a second copy is how the report's barcode-gap plot came to
measure something other than what the clustering cut.

All distances align the shorter read anywhere inside the longer one (edlib
infix mode, ``HW``), so reads that start or stop at different primers are
compared on what they share; ``N`` matches any base but is never counted as
evidence. Two normalisations, each for a reason:

* :func:`p_distance` — differences per *informative overlap column* (neither
  read ``N``), with the longer read padded by ``N`` so overhangs cost nothing
  (vsearch's identity definition, terminal gaps ignored) as long as the reads
  share at least half the shorter one: two barcodes from primers 40 % of a read
  apart are compared on the 60 % they share. What clustering cuts
  at, what candidate evidence reports (within, between, to the nearest known
  species) and what the report's barcode-gap plot shows. ``inf`` when the
  informative overlap is too short to say anything (a mostly-N read must not
  look identical to everything and chain species together).
* :func:`identity` — 1 − differences per informative base of the *shorter read*
  that lies inside the longer one on bases the longer one calls (a key's run of
  ``N`` is no evidence either: it matched any read lying on it, at "100 %"):
  "how much of this query matches", the
  evidence the naming engine's per-rank P(right) models are fitted on, and
  the distance the synthetic generator is calibrated in
  (:func:`divergence` = 1 − identity, ``nan`` for an empty read). Where the
  longer read starts or ends inside the shorter one (found by exact probes,
  not a padded alignment: see :func:`shared_identity`), the overhang is left
  out, as vsearch and BLAST leave out terminal gaps.

:func:`cross_p_distance` / :func:`pairwise_p_distance` make the p-distance
affordable for thousands of reads: a k-mer containment estimate (Mash-style)
skips alignment for pairs far beyond any species threshold.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Mapping, Sequence

import edlib
import numpy as np
from scipy import sparse

log = logging.getLogger(__name__)

__all__ = [
    "MIN_INFORMATIVE",
    "cross_p_distance",
    "divergence",
    "identity",
    "kmer_presence",
    "mash_distance",
    "p_distance",
    "pairwise_p_distance",
    "probe_index",
    "shared_identity",
]

#: edlib equalities: ``N`` matches any base
_N_EQUAL = [("N", base) for base in "ACGT"]
#: fewest non-N aligned columns a p-distance is computed on
MIN_INFORMATIVE = 100
_NUC = {c: i for i, c in enumerate("ACGT")}


def p_distance(a: str, b: str, max_distance: float = 1.0, *, strict: bool = False) -> float:
    """Differences per informative overlap column of two barcodes (see the module docstring).

    The shorter read is aligned into the longer one padded with half its length
    of ``N`` on both sides. Returns ``inf`` above ``max_distance``
    (the alignment stops early) or when the informative overlap is under
    ``MIN_INFORMATIVE`` bases or half the shorter read's informative bases.

    Why half on both counts: every placement whose overlap the floor accepts must
    be reachable, or a read offset by more than the padding is forced onto bases
    it does not share and reads as another species (with a quarter, a 660-base
    *Ilybius subaeneus* read sharing 435 bases at 99.8 % with its species' 658-base
    keys measured 13.8 % to them and was split off its candidate). More padding
    reaches only placements the floor refuses, and the alignment, free in the
    ``N``s, would take them. For the same reason the reads' own leading and trailing
    ``N``s are dropped first: they are no evidence either way, and with the padding
    they would let a read slide off its bases onto free columns.

    ``strict``: ``inf`` also where the placement lies against the padding's outer edge (within
    ``EDGE_SLACK`` columns): the alignment would have slid further off the longer read had the floor let
    it, so the reads share less than the floor and the columns compared were chosen by the floor, not
    shared. Two partial reads of one *Spodoptera* from the two ends of COI (257 and 419 bases, about 20 in
    common) read 46.3 % apart over the 136 columns the floor forced, and their candidate "members up to
    46 % apart: no barcode gap" (benchmarks/RESULTS-clustering.md, "Partial reads in a candidate's
    spread"). What a candidate's within distance reads (``discovery.proposals._within``); clustering keeps
    the floor's figure, far beyond any cut either way. Fragments of one barcode sharing under the floor
    landed within ``EDGE_SLACK`` of the edge in 96–98 % of 200 trials each; sharing 35 bases more than the
    floor, never.
    """
    a, b = a.strip("N"), b.strip("N")
    q, t = (a, b) if len(a) <= len(b) else (b, a)
    if not q:
        return math.inf
    pad = len(q) // 2  # tied to the floor below: not a setting
    k = int(max_distance * len(q)) + 1
    res = edlib.align(q, "N" * pad + t + "N" * pad, mode="HW", task="locations", k=k,
                      additionalEqualities=_N_EQUAL)
    d = res["editDistance"]
    if d < 0:
        return math.inf
    start, end = res["locations"][0]
    if strict and min(start, len(t) + 2 * pad - 1 - end) <= EDGE_SLACK:
        return math.inf
    lo, hi = max(start, pad), min(end, pad + len(t) - 1)
    informative = (hi - lo + 1) - q.count("N") - t[lo - pad : hi - pad + 1].count("N")
    if informative < max(MIN_INFORMATIVE, (len(q) - q.count("N")) / 2):
        return math.inf
    return float(d / informative)


def identity(a: str, b: str) -> float:
    """1 − differences per informative base the two reads share, in [0, 1] (0.0 when either is empty)."""
    return shared_identity(a, b)[0]


#: length of the exact probes that find an end of the longer read inside the shorter one
END_PROBE = 16
#: probes tried at each end of the longer read, each ``END_PROBE`` further in (a difference in one, a
#: sequencing error at a read's ragged end, must not hide where that end lies)
END_PROBES = 4
#: bases of the shorter read given up beside an overhang: an indel near the probe may move the boundary
OVERHANG_SLACK = 4
#: columns from the padding's outer edge within which :func:`p_distance` (``strict``) takes a placement as pushed
#: there by the floor: a forced placement does not always lie on the edge itself (the differences of unshared
#: bases vary from column to column)
EDGE_SLACK = END_PROBE


def probe_index(read: str) -> dict[str, int]:
    """Each ``END_PROBE``-mer of ``read`` → its first position: what :func:`shared_identity` looks probes
    up in when one read is compared with many (a dictionary lookup instead of a substring search; the
    same positions as ``read.find``)."""
    k = END_PROBE
    return {read[i : i + k]: i for i in range(len(read) - k, -1, -1)}


def shared_identity(a: str, b: str, index_a: Mapping[str, int] | None = None) -> tuple[float, int]:
    """:func:`identity` and the informative bases it was measured on (``(0.0, 0)`` when either is empty).

    The shorter read is aligned anywhere inside the longer one and its differences counted per informative
    base — unless the longer read starts or ends *inside* the shorter one (reads from other primers, or
    trimmed differently): then the shorter read's overhang is no evidence either way and is left out. Charged
    as differences, 32 overhanging bases made a 547-base read that matches its conspecific key at 100 % read
    94.1 %, and a 598-base read sharing 396 bases at 100 % read 66 %; of 18,000 Diptera query–key pairs (300
    test queries against 10 keys of their species and 50 others), 480 read more than half a point closer,
    at ≥ 90 %, over what they share (benchmarks/RESULTS-discovery.md, "Reads from other primers").

    Where the longer read's ends lie is found by exact probes of its first and last bases (``END_PROBES``
    of ``END_PROBE`` bases at each end) looked up in the shorter read; a padded alignment (what
    :func:`p_distance` does) would cost 2.5× the alignment on every pair to settle the few where an end
    lies inside. Probes find ends only between close reads (a 16-base exact match): between distant
    ones the overhang changes nothing a naming decision reads. The shared part must hold
    ``MIN_INFORMATIVE`` bases and half of *each* read's informative bases, and is kept only when it reads
    closer than the whole: a probe matching by chance at the wrong place cannot make two reads look farther
    apart than they are. Why half of each, not of the shorter one only (:func:`p_distance`'s floor): naming
    takes the best of many keys, and the best of many identities measured on short overlaps is biased
    upward — with the shorter read's half, a 246-base fragment key sharing 123 bases with a 531-base query
    of another species read 96.8 % (92.5 % end to end), and the best other-species key of left-out
    Coleoptera species reached ≥ 99.5 % for 12 of 859 of them instead of 7. ``index_a``:
    ``probe_index(a)``, when ``a`` is compared with many.
    """
    if not a or not b:
        return 0.0, 0
    if len(a) > len(b):
        a, b, index_a = b, a, None
    informative = len(a) - a.count("N")
    if informative <= 0:
        return 0.0, 0
    whole = _per_base(a, b, informative)
    lo, hi = _inside(a, b, a.find if index_a is None else lambda probe: index_a.get(probe, -1))
    if lo == 0 and hi == len(a):
        return whole
    part = a[lo:hi]
    shared = len(part) - part.count("N")
    if shared < max(MIN_INFORMATIVE, (len(b) - b.count("N")) / 2):  # half of the longer read, so half of each
        return whole
    inner = _per_base(part, b, shared)
    return inner if inner[0] > whole[0] else whole


def _inside(q: str, t: str, find: Callable[[str], int]) -> tuple[int, int]:
    """The span of ``q`` (the shorter read) that lies inside ``t``: ``(0, len(q))`` unless a probe of an end
    of ``t`` is found inside ``q`` (``find``: first position in ``q``, -1 if absent), less
    ``OVERHANG_SLACK`` bases beside each overhang."""
    k, n, m = END_PROBE, len(q), len(t)
    lo, hi = 0, n
    for j in range(0, min(END_PROBES * k, m - k + 1), k):
        at = find(t[j : j + k])
        if at >= 0:  # t starts at at - j in q's coordinates
            if at > j:
                lo = at - j + OVERHANG_SLACK
            break
    for j in range(0, min(END_PROBES * k, m - k + 1), k):
        at = find(t[m - k - j : m - j])
        if at >= 0:  # t ends at at + k + j
            if at + k + j < n:
                hi = at + k + j - OVERHANG_SLACK
            break
    return lo, max(lo, hi)


def _per_base(q: str, t: str, informative: int) -> tuple[float, int]:
    """(1 − edit distance of ``q`` aligned anywhere inside ``t`` per informative base the two share, floored at
    0; those bases): ``informative`` (``q``'s own called bases) less the ``N`` columns of ``t`` that ``q`` lies
    on. Why the longer read's ``N``s count too: an ``N`` matches any base, so a key with a run of 200 ``N``s
    matched any 200-base read at "100 %" — shuffled keys reached it, and the chance identity learned at 200
    bases read 100 %, so no 200-base read could be named — and a read of another species 88 % alike over a
    658-base key with 250 ``N``s read 93.8 % (its 49 differences over 658 bases, not the 408 they share).
    Where ``t``'s ``N``s cover half of ``q``'s called bases or more, the key cannot speak for the read:
    (0.0, what they share). A column where both reads hold an ``N`` is left out twice (counted without the
    alignment's path, which costs more than the alignment): at worst a read a base or two short of its true
    share."""
    # Edlib unbounded starts at 64 edits and doubles, re-running the alignment each time; most
    # candidate keys lie 8-20 % away (more than 64 edits on a 658-nt barcode), so one bounded pass
    # at a quarter of the read's length, then one covering every possible distance (in infix mode
    # the distance never exceeds the shorter read's length) gives the same exact distance in ~20 %
    # less time (benchmarks/RESULTS-scale.md).
    # ``N`` = any base only matters where an ``N`` is present; without one, edlib's setup of the extra
    # equalities is ~10 % of the call for nothing (same distance: no pair of present letters changes)
    extra = {"additionalEqualities": _N_EQUAL} if "N" in q or "N" in t else {}
    # where the key holds an N, where the read lies on it matters (locations: ~2x a distance; 4 % of real keys)
    task = "locations" if "N" in t else "distance"
    res = edlib.align(q, t, mode="HW", task=task, k=max(64, len(q) // 4), **extra)
    if res["editDistance"] < 0:
        res = edlib.align(q, t, mode="HW", task=task, k=len(q), **extra)
    distance = res["editDistance"]
    if distance < 0:
        return 0.0, informative
    shared = informative
    if task == "locations":
        start, end = res["locations"][0]
        shared = informative - t[start : end + 1].count("N")
        if shared * 2 <= informative:
            return 0.0, max(shared, 0)
    return max(0.0, 1.0 - float(distance) / shared), shared


_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def reverse_complement(seq: str) -> str:
    """The other strand of a barcode read 5'→3' (anything but A, C, G, T becomes N)."""
    return "".join(c if c in "ACGTN" else "N" for c in seq.upper()).translate(_COMPLEMENT)[::-1]


def divergence(a: str, b: str) -> float:
    """1 − :func:`identity`; ``nan`` when either read is empty (nothing to compare)."""
    if not a or not b:
        return float("nan")
    return 1.0 - identity(a, b)


def kmer_presence(seqs: Sequence[str], k: int) -> sparse.csr_matrix:
    """Sparse binary k-mer presence matrix (n x 4**k, CSR float32); k-mers with N are skipped."""
    lut = np.full(256, 255, dtype=np.uint8)
    for c, v in _NUC.items():
        lut[ord(c)] = v
    powers = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    indptr, indices = [0], []
    for s in seqs:
        codes = lut[np.frombuffer(s.encode("ascii"), dtype=np.uint8)]
        if codes.size >= k:
            win = np.lib.stride_tricks.sliding_window_view(codes, k)
            ok = (win != 255).all(axis=1)
            idx = np.unique((win[ok].astype(np.int64) * powers).sum(axis=1))
            indices.append(idx)
            indptr.append(indptr[-1] + idx.size)
        else:
            indptr.append(indptr[-1])
    cols = np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    return sparse.csr_matrix((np.ones(cols.size, dtype=np.float32), cols, np.asarray(indptr)),
                             shape=(len(seqs), 4**k))


def mash_distance(presence_a: sparse.csr_matrix, presence_b: sparse.csr_matrix, k: int) -> np.ndarray:
    """Divergence estimate from k-mer containment, -ln(C)/k (Mash-style).

    Containment (shared k-mers over the smaller set), not Jaccard, so that a
    partial barcode inside a full one still looks close.
    """
    inter = np.asarray((presence_a @ presence_b.T).todense(), dtype=np.float32)
    size_a = np.asarray(presence_a.sum(axis=1), dtype=np.float32).reshape(-1, 1)
    size_b = np.asarray(presence_b.sum(axis=1), dtype=np.float32).reshape(1, -1)
    contain = np.clip(inter / np.maximum(np.minimum(size_a, size_b), 1.0), 1e-9, 1.0)
    return np.asarray(np.clip(-np.log(contain) / k, 0.0, 1.0))


def cross_p_distance(queries: Sequence[str], targets: Sequence[str], *, max_aligned: float = 0.12,
                     k: int = 8) -> np.ndarray:
    """p-distance of every query to every target (``len(queries) x len(targets)``, float32).

    Pairs whose k-mer (Mash) estimate exceeds ``max_aligned`` are not aligned and
    keep the estimate (never below ``max_aligned``): they are far beyond any
    species threshold, and skipping them is what makes n² affordable.
    """
    queries = [q.upper() for q in queries]
    targets = [t.upper() for t in targets]
    out = np.ones((len(queries), len(targets)), dtype=np.float32)
    if not queries or not targets:
        return out
    uq, q_inv = np.unique(np.asarray(queries, dtype=object), return_inverse=True)
    ut, t_inv = np.unique(np.asarray(targets, dtype=object), return_inverse=True)
    est = mash_distance(kmer_presence(list(uq), k), kmer_presence(list(ut), k), k)
    dist = np.maximum(est, max_aligned).astype(np.float32)
    for i, j in zip(*np.nonzero(est <= max_aligned)):
        d = p_distance(uq[i], ut[j], max_aligned)
        if math.isfinite(d):
            dist[i, j] = d
    return np.asarray(dist[np.ix_(q_inv.ravel(), t_inv.ravel())])


def pairwise_p_distance(seqs: Sequence[str], *, max_aligned: float = 0.12, k: int = 8) -> np.ndarray:
    """Symmetric p-distance matrix of barcodes (zero diagonal), see :func:`cross_p_distance`."""
    seqs = [s.upper() for s in seqs]
    n = len(seqs)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    uniq, inv = np.unique(np.asarray(seqs, dtype=object), return_inverse=True)
    inv = inv.ravel()
    pres = kmer_presence(list(uniq), k)
    est = mash_distance(pres, pres, k)
    dist = np.maximum(est, max_aligned).astype(np.float32)
    ii, jj = np.nonzero(np.triu(est <= max_aligned, k=1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        d = p_distance(uniq[i], uniq[j], max_aligned)
        if math.isfinite(d):
            dist[i, j] = d
    iu = np.triu_indices(len(uniq), k=1)
    dist[(iu[1], iu[0])] = dist[iu]
    np.fill_diagonal(dist, 0.0)
    log.debug("p-distance: %d sequences, %d unique, %d aligned pairs", n, len(uniq), ii.size)
    return np.asarray(dist[np.ix_(inv, inv)])
