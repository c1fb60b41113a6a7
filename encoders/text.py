"""Taxonomy-string encoder ("order family genus species"), missing ranks allowed.

CLIBD feeds the taxonomy as a string to a language model; here a rank-aware
vocabulary (one token per rank and name, ``[MISSING]`` and ``[UNK]`` per rank)
is embedded, summed with a rank embedding, averaged over the ranks that are
present and passed through a small MLP. It trains on CPU in seconds and a
missing rank costs nothing but its own absence.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from biodiscover.encoders.config import TextConfig
from biodiscover.storage.records import RANKS

#: Ranks the text encoder reads, shallow to deep.
TEXT_RANKS: tuple[str, ...] = RANKS
#: Ranks of the plain string form "order family genus species".
STRING_RANKS: tuple[str, ...] = ("order", "family", "genus", "species")
_MISSING_WORDS = {"", "-", "?", "na", "none", "null", "not_classified"}

Lineage = Mapping[str, str | None]


def parse_taxonomy(text: str | Lineage) -> dict[str, str | None]:
    """Normalise a lineage mapping or a string ``"order family genus species"``.

    In the string form the species is the rest of the string after the genus
    (binomials contain a space); ``-``, ``?`` or ``NA`` mark a missing rank.
    """
    if isinstance(text, Mapping):
        return {r: (str(text[r]).strip() or None) if text.get(r) else None for r in TEXT_RANKS}
    words = text.split()
    out: dict[str, str | None] = {r: None for r in TEXT_RANKS}
    for rank, word in zip(STRING_RANKS[:3], words[:3]):
        out[rank] = None if word.lower() in _MISSING_WORDS else word
    rest = " ".join(words[3:])
    out["species"] = None if rest.lower() in _MISSING_WORDS else rest
    return out


class TaxonomyVocab:
    """Per-rank name → id table; 0 = ``[MISSING]``, 1 = ``[UNK]`` at every rank."""

    def __init__(self, names: Mapping[str, Sequence[str]]) -> None:
        self.names: dict[str, list[str]] = {r: sorted(set(names.get(r, ()))) for r in TEXT_RANKS}
        self._index = {r: {n: i + 2 for i, n in enumerate(v)} for r, v in self.names.items()}

    @classmethod
    def build(cls, lineages: Sequence[str | Lineage]) -> "TaxonomyVocab":
        seen: dict[str, set[str]] = {r: set() for r in TEXT_RANKS}
        for lineage in lineages:
            for rank, name in parse_taxonomy(lineage).items():
                if name:
                    seen[rank].add(name)
        return cls({r: sorted(v) for r, v in seen.items()})

    def size(self, rank: str) -> int:
        return len(self.names[rank]) + 2

    def encode(self, lineages: Sequence[str | Lineage]) -> torch.Tensor:
        """Ids [N, len(TEXT_RANKS)]."""
        rows = []
        for lineage in lineages:
            parsed = parse_taxonomy(lineage)
            rows.append([0 if (name := parsed[r]) is None else self._index[r].get(name, 1) for r in TEXT_RANKS])
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), len(TEXT_RANKS))

    def to_json(self) -> dict[str, list[str]]:
        return {r: list(v) for r, v in self.names.items()}


class TextEncoder(nn.Module):
    """Mean of (rank-name embedding + rank embedding) over present ranks → MLP."""

    def __init__(self, config: TextConfig, vocab: TaxonomyVocab) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        self.embeddings = nn.ModuleList(nn.Embedding(vocab.size(r), config.hidden) for r in TEXT_RANKS)
        self.rank_embedding = nn.Parameter(torch.zeros(len(TEXT_RANKS), config.hidden))
        self.mlp = nn.Sequential(
            nn.LayerNorm(config.hidden),
            nn.Linear(config.hidden, config.hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
        )

    @property
    def output_dim(self) -> int:
        return self.config.hidden

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        present = (ids != 0).unsqueeze(-1).float()  # [N, R, 1]
        tokens = torch.stack([emb(ids[:, i]) for i, emb in enumerate(self.embeddings)], dim=1)
        tokens = tokens + self.rank_embedding.unsqueeze(0)
        pooled = (tokens * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)
        return self.mlp(pooled)
