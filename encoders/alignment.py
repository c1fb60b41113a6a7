"""CLIBD-style alignment: three towers projected into one L2-normalised space.

Loss: symmetric InfoNCE for every pair of modalities present in the config
(image–DNA, image–text, DNA–text) with one learnable temperature (CLIP's
``logit_scale``). A specimen missing a modality is dropped only from the pairs
that need it, so DNA-only or image-only specimens still train what they can.

Why not pytorch-metric-learning's ``NTXentLoss`` here: its temperature is a
fixed float, while CLIBD learns it; the loss itself is two cross-entropies. PML
is used for retrieval metrics (``encoders.evaluation``), where it fits.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from biodiscover.encoders.config import ModelConfig
from biodiscover.encoders.dna import DNAEncoder
from biodiscover.encoders.image import build_image_encoder
from biodiscover.encoders.text import TaxonomyVocab, TextEncoder

MODALITIES: tuple[str, ...] = ("dna", "image", "text")


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP loss between row-aligned L2-normalised batches ``a`` and ``b``."""
    logits = logit_scale * a @ b.t()
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


class AlignmentModel(nn.Module):
    """DNA, image and text towers plus linear projections to ``align.embed_dim``."""

    def __init__(self, config: ModelConfig, vocab: TaxonomyVocab, load_timm_weights: bool = True) -> None:
        super().__init__()
        self.config = config
        self.modalities = tuple(m for m in MODALITIES if m in config.align.modalities)
        self.dna = DNAEncoder(config.dna)
        self.image = build_image_encoder(config.image, load_weights=load_timm_weights)
        self.text = TextEncoder(config.text, vocab)
        dim = config.align.embed_dim
        self.proj = nn.ModuleDict(
            {
                "dna": nn.Linear(self.dna.output_dim, dim),
                "image": nn.Linear(self.image.output_dim, dim),
                "text": nn.Linear(self.text.output_dim, dim),
            }
        )
        init = math.log(1.0 / config.align.temperature)
        self.logit_scale = nn.Parameter(torch.tensor(init), requires_grad=config.align.learn_temperature)

    def encode_dna(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj["dna"](self.dna.embed(ids, mask)), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj["image"](self.image(images)), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj["text"](self.text(ids)), dim=-1)

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) clamped at 100 as in CLIP, so the temperature cannot collapse."""
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Sum of pairwise symmetric InfoNCE losses over the modalities each row has.

        Only rows having a modality are encoded for it; a pair is scored over
        rows having both (at least 2, else it is skipped).
        """
        emb: dict[str, torch.Tensor] = {}
        rows: dict[str, torch.Tensor] = {}
        for m in self.modalities:
            has = batch[f"has_{m}"]
            if has.sum() < 2:
                continue
            idx = has.nonzero(as_tuple=True)[0]
            rows[m] = has
            if m == "dna":
                emb[m] = self.encode_dna(batch["dna_ids"][idx], batch["dna_mask"][idx])
            elif m == "image":
                emb[m] = self.encode_image(batch["image"][idx])
            else:
                emb[m] = self.encode_text(batch["text_ids"][idx])
        scale = self.scale()
        total = torch.zeros((), device=scale.device)
        parts: dict[str, float] = {}
        for a, b in itertools.combinations(emb, 2):
            both = rows[a] & rows[b]
            if both.sum() < 2:
                continue
            # position of each shared row inside each modality's encoded subset
            pos_a = (torch.cumsum(rows[a].long(), 0) - 1)[both]
            pos_b = (torch.cumsum(rows[b].long(), 0) - 1)[both]
            pair = symmetric_info_nce(emb[a][pos_a], emb[b][pos_b], scale)
            total = total + pair
            parts[f"{a}_{b}"] = float(pair.detach())
        return total, parts
