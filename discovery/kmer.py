"""Alignment-free k-mer profile embedder: the built-in DNA embedding.

Why: a learned DNA encoder needs a GPU to train well, but an L2-normalised k-mer
count profile already retrieves the right neighbours of a COI barcode almost as
well as BLAST (see DESIGN.md, compatibility notes). It is the fallback whenever a
model bundle has no learned DNA encoder, and the candidate generator in front of
exact pairwise identity (``discovery.identity``).

k-mers containing any non-ACGT symbol (N, IUPAC ambiguity codes, gaps) are
skipped, so an ambiguous base costs at most ``k`` k-mers instead of corrupting
the profile. Several k can be concatenated (each block normalised separately,
then the whole vector); the dimension is ``sum(4**k)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from biodiscover.storage.records import Specimen

log = logging.getLogger(__name__)

_CODE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate("ACGT"):
    _CODE[ord(_c)] = _i
    _CODE[ord(_c.lower())] = _i
_CODE[ord("U")] = 3
_CODE[ord("u")] = 3


@dataclass(frozen=True)
class KmerConfig:
    """Which k-mer sizes to count and how to weight them.

    ``sqrt=True`` takes the square root of the counts before normalising (a
    Hellinger-style profile), which damps repeated k-mers in low-complexity
    stretches; ``max_length`` truncates like the BIOSCAN-5M loader (660 nt).
    """

    ks: tuple[int, ...] = (6,)
    sqrt: bool = False
    max_length: int | None = 660

    def __post_init__(self) -> None:
        if not self.ks or any(k < 1 or k > 10 for k in self.ks):
            raise ValueError(f"k-mer sizes must be in 1..10, got {self.ks}")

    @property
    def dim(self) -> int:
        return int(sum(4**k for k in self.ks))

    def to_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "sqrt": self.sqrt, "max_length": self.max_length}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KmerConfig":
        return cls(ks=tuple(int(k) for k in data["ks"]), sqrt=bool(data.get("sqrt", False)),
                   max_length=data.get("max_length"))


def kmer_codes(sequence: str, k: int) -> np.ndarray:
    """Integer codes (base-4) of every k-mer of ``sequence`` made only of A/C/G/T(U)."""
    raw = np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)
    codes = _CODE[raw]
    n = codes.size - k + 1
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    valid = codes != 255
    # a window is valid when all k of its symbols are valid: sliding sum of invalid marks
    bad = np.concatenate(([0], np.cumsum(~valid, dtype=np.int64)))
    ok = (bad[k:] - bad[:-k]) == 0
    c = codes.astype(np.int64)
    c[~valid] = 0
    out = np.zeros(n, dtype=np.int64)
    for j in range(k):
        out = out * 4 + c[j : j + n]
    return np.asarray(out[ok])


class KmerEmbedder:
    """Embed DNA barcodes as L2-normalised k-mer count profiles.

    Implements the ``Embedder`` shape discovery uses everywhere:
    ``embed_dna(sequences) -> float32 array (n, dim)``, rows of unit norm (all-zero
    for a sequence with no valid k-mer, which then matches nothing).
    """

    name = "kmer"

    def __init__(self, config: KmerConfig | None = None) -> None:
        self.config = config or KmerConfig()

    @property
    def dim(self) -> int:
        return self.config.dim

    def profile(self, sequence: str) -> np.ndarray:
        """One sequence's profile (float32, unit L2 norm or all zeros)."""
        seq = sequence if self.config.max_length is None else sequence[: self.config.max_length]
        blocks = []
        for k in self.config.ks:
            counts = np.bincount(kmer_codes(seq, k), minlength=4**k).astype(np.float32)
            if self.config.sqrt:
                np.sqrt(counts, out=counts)
            norm = float(np.linalg.norm(counts))
            blocks.append(counts / norm if norm > 0 else counts)
        vec = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec

    def present(self, sequence: str) -> np.ndarray:
        """Indices into ``profile`` of the k-mers ``sequence`` holds, each once (the bits its sketch sets)."""
        seq = sequence if self.config.max_length is None else sequence[: self.config.max_length]
        parts, offset = [], 0
        for k in self.config.ks:
            parts.append(np.unique(kmer_codes(seq, k)) + offset)
            offset += 4**k
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def embed_dna(self, sequences: Iterable[str | None]) -> np.ndarray:
        """Profiles of many sequences; ``None``/empty gives a zero row."""
        seqs = list(sequences)
        out = np.zeros((len(seqs), self.dim), dtype=np.float32)
        for i, s in enumerate(seqs):
            if s:
                out[i] = self.profile(s)
        return out

    def embed(self, specimens: Sequence[Specimen]) -> np.ndarray:
        """Profiles of specimens' barcodes (zero rows where a specimen has none)."""
        return self.embed_dna(s.dna_barcode for s in specimens)


def bootstrap_wins(present: np.ndarray, sketches: np.ndarray, *, draws: int = 32, reps: int = 100,
                   seed: int = 0) -> np.ndarray:
    """SINTAX's bootstrap (Edgar 2016) over given candidates: each candidate's share of ``reps`` draws.

    In each draw, ``draws`` of the query's k-mers (``present``: bit indices) are taken with
    replacement and the candidate(s) whose packed sketch (``sketches``, one row each) holds the
    most of them win, ties split. Why: how often the best key stays best when the evidence is
    resampled says whether its name rests on the whole barcode or on a few k-mers — a specimen of
    an order absent from the reference sits about as close to keys of two orders, and the winner
    flips between them.
    """
    n = len(sketches)
    if not len(present) or not n:
        return np.zeros(n)
    present = np.asarray(present, dtype=np.int64)
    bits = (np.asarray(sketches)[:, present >> 3] >> (7 - (present & 7)).astype(np.uint8)) & 1
    idx = np.random.default_rng(seed).integers(0, len(present), size=(reps, draws))
    counts = bits.T[idx].sum(axis=1)  # (reps, candidates)
    tie = counts == counts.max(axis=1, keepdims=True)
    return np.asarray((tie / tie.sum(axis=1, keepdims=True)).mean(axis=0))
