"""Batch embedding API for discovery: every modality into one L2-normalised space.

``load_encoders(bundle)`` rebuilds the towers from the bundle's config and
safetensors weights (CPU- or GPU-trained, loaded onto any device). All
``embed_*`` methods return float32 numpy arrays, one L2-normalised row per input,
computed in batches under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from biodiscover.encoders.alignment import AlignmentModel
from biodiscover.encoders.config import ModelConfig
from biodiscover.encoders.image import ImageTransform, load_image
from biodiscover.encoders.text import Lineage, TaxonomyVocab
from biodiscover.storage.bundle import Bundle
from biodiscover.storage.errors import InputError, ModelBundleError

log = logging.getLogger(__name__)

WEIGHTS_NAME = "encoders"
VOCAB_TABLE = "text_vocab"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Encoders:
    """Inference wrapper around a trained :class:`AlignmentModel`."""

    def __init__(self, model: AlignmentModel, device: torch.device | str | None = None, batch_size: int = 256) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device).eval()
        self.config: ModelConfig = model.config
        self.batch_size = batch_size
        self.tokenizer = model.dna.tokenizer
        self.transform = ImageTransform(self.config.image.image_size, train=False)

    @property
    def dim(self) -> int:
        """Dimension of the shared space."""
        return self.config.align.embed_dim

    @property
    def vocab(self) -> TaxonomyVocab:
        return self.model.text.vocab

    def _batches(self, n: int, batch_size: int | None) -> Iterable[slice]:
        size = batch_size or self.batch_size
        for start in range(0, n, size):
            yield slice(start, min(n, start + size))

    def _dna_tensors(self, seqs: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        for i, s in enumerate(seqs):
            if not s:
                raise InputError(f"embed_dna: sequence {i} is empty (pass only specimens with a barcode)")
        ids, mask = self.tokenizer.batch(list(seqs))
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def embed_dna(self, seqs: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Barcodes → [N, dim] in the shared space."""
        out = np.zeros((len(seqs), self.dim), dtype=np.float32)
        for sl in self._batches(len(seqs), batch_size):
            ids, mask = self._dna_tensors(seqs[sl])
            out[sl] = self.model.encode_dna(ids, mask).float().cpu().numpy()
        return out

    @torch.inference_mode()
    def dna_features(self, seqs: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Mean-pooled DNA encoder output before projection (BarcodeBERT's probe features), L2-normalised."""
        out = np.zeros((len(seqs), self.model.dna.output_dim), dtype=np.float32)
        for sl in self._batches(len(seqs), batch_size):
            ids, mask = self._dna_tensors(seqs[sl])
            out[sl] = torch.nn.functional.normalize(self.model.dna.embed(ids, mask), dim=-1).float().cpu().numpy()
        return out

    @torch.inference_mode()
    def embed_images(self, paths: Sequence[Path | str], batch_size: int | None = None) -> np.ndarray:
        """Image files → [N, dim]; an unreadable file raises :class:`InputError` naming it."""
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for sl in self._batches(len(paths), batch_size):
            batch = torch.stack([self.transform(load_image(p)) for p in paths[sl]]).to(self.device)
            out[sl] = self.model.encode_image(batch).float().cpu().numpy()
        return out

    @torch.inference_mode()
    def embed_text(self, lineages: Sequence[str | Lineage], batch_size: int | None = None) -> np.ndarray:
        """Taxonomy strings ("order family genus species") or rank→name mappings → [N, dim]."""
        out = np.zeros((len(lineages), self.dim), dtype=np.float32)
        for sl in self._batches(len(lineages), batch_size):
            ids = self.vocab.encode(lineages[sl]).to(self.device)
            out[sl] = self.model.encode_text(ids).float().cpu().numpy()
        return out


def save_encoders(bundle: Bundle, model: AlignmentModel) -> None:
    """Write the towers' weights and the text vocabulary into ``bundle``."""
    bundle.save_weights(WEIGHTS_NAME, model.state_dict())
    bundle.save_table(VOCAB_TABLE, model.text.vocab.to_json())


def load_encoders(bundle: Bundle | Path | str, device: torch.device | str | None = None,
                  batch_size: int = 256) -> Encoders:
    """Rebuild the encoders stored in a bundle, on ``device`` (default: CUDA when present)."""
    if not isinstance(bundle, Bundle):
        bundle = Bundle.open(bundle)
    try:
        config = ModelConfig.from_dict(bundle.config)
    except (TypeError, ValueError) as exc:
        raise ModelBundleError(f"{bundle.path}: invalid encoder config in bundle.json ({exc})") from exc
    vocab = TaxonomyVocab(bundle.load_table(VOCAB_TABLE))
    model = AlignmentModel(config, vocab, load_timm_weights=False)
    state = bundle.load_weights(WEIGHTS_NAME, device="cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelBundleError(f"{bundle.path}: weights do not match the bundle's config ({exc})") from exc
    return Encoders(model, device=device, batch_size=batch_size)
