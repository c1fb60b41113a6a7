"""BarcodeBERT-style k-mer tokenizer for COI barcodes.

Rules (BarcodeBERT / BIOSCAN-5M): the barcode is upper-cased and truncated to
660 nt, cut into NON-overlapping k-mers starting at an offset (random in
``[0, k)`` during pretraining, 0 at inference); any k-mer holding N or another
non-ACGT character becomes ``[UNK]``. Vocabulary: ``[MASK]`` = 0, ``[UNK]`` = 1,
then the 4**k k-mers in ``itertools.product("ACGT", repeat=k)`` order. Padding is
expressed by the attention mask only (padded positions hold ``[UNK]`` and are
never attended to, pooled or scored).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch

from biodiscover.storage.records import MAX_NUCLEOTIDES

MASK_ID = 0
UNK_ID = 1
SPECIAL_TOKENS = ("[MASK]", "[UNK]")

_BASE_CODE = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate("ACGT"):
    _BASE_CODE[ord(_c)] = _i
    _BASE_CODE[ord(_c.lower())] = _i


class KmerTokenizer:
    """Maps barcodes to k-mer token ids with an attention mask.

    Vectorised with numpy (base-4 codes), so tokenising 10k barcodes is
    milliseconds rather than a Python loop per k-mer.
    """

    def __init__(self, k: int = 8, max_nucleotides: int = MAX_NUCLEOTIDES) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.max_nucleotides = max_nucleotides
        self.max_tokens = max_nucleotides // k
        self._powers = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + 4**self.k

    def vocab(self) -> list[str]:
        """Token strings in id order (only sensible to materialise for small k)."""
        return list(SPECIAL_TOKENS) + ["".join(p) for p in itertools.product("ACGT", repeat=self.k)]

    def encode(self, sequence: str, offset: int = 0) -> list[int]:
        """Token ids of one barcode (no padding)."""
        return self._encode_array(sequence, offset).tolist()

    def _encode_array(self, sequence: str, offset: int) -> np.ndarray:
        if not 0 <= offset < self.k:
            raise ValueError(f"offset must be in [0, {self.k}), got {offset}")
        seq = sequence[: self.max_nucleotides][offset:]
        n = len(seq) // self.k
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        raw = np.frombuffer(seq[: n * self.k].encode("ascii", errors="replace"), dtype=np.uint8)
        codes = _BASE_CODE[raw].reshape(n, self.k)
        bad = (codes < 0).any(axis=1)
        ids = (np.where(codes < 0, 0, codes) * self._powers).sum(axis=1) + len(SPECIAL_TOKENS)
        ids[bad] = UNK_ID
        return ids

    def batch(
        self, sequences: Sequence[str], offsets: Sequence[int] | None = None, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad a batch to ``length`` (default: this batch's longest) → ``(ids, attention_mask)``.

        A barcode shorter than one k-mer still gets one ``[UNK]`` token so mean
        pooling never divides by zero.
        """
        if offsets is None:
            offsets = [0] * len(sequences)
        arrays = [self._encode_array(s, o) for s, o in zip(sequences, offsets)]
        arrays = [a if len(a) else np.array([UNK_ID], dtype=np.int64) for a in arrays]
        width = length or max((len(a) for a in arrays), default=1)
        ids = np.full((len(arrays), width), UNK_ID, dtype=np.int64)
        mask = np.zeros((len(arrays), width), dtype=bool)
        for row, a in enumerate(arrays):
            a = a[:width]
            ids[row, : len(a)] = a
            mask[row, : len(a)] = True
        return torch.from_numpy(ids), torch.from_numpy(mask)


def mask_tokens(
    ids: torch.Tensor, attention_mask: torch.Tensor, ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked-token corruption for pretraining: ``ratio`` of real tokens → ``[MASK]``.

    Returns ``(corrupted_ids, labels)`` with labels = original id at masked
    positions and -100 elsewhere (ignored by cross-entropy). Padding is never
    masked; at least one token per sequence is masked so every row trains.
    """
    scores = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    scores = scores.masked_fill(~attention_mask, 2.0)
    n_real = attention_mask.sum(dim=1)
    n_mask = torch.clamp((n_real.float() * ratio).round().long(), min=1)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    chosen = (ranks < n_mask.unsqueeze(1)) & attention_mask
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    corrupted = torch.where(chosen, torch.full_like(ids, MASK_ID), ids)
    return corrupted, labels
