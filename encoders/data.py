"""Torch datasets and collation over :class:`biodiscover.storage.records.Specimen` lists.

Every modality is optional per specimen: the batch carries ``has_dna``,
``has_image`` and ``has_text`` flags so the alignment loss can mask pairs, and
the DNA pretraining dataset simply skips specimens without a barcode.
"""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import Dataset

from biodiscover.encoders.image import ImageTransform, load_image
from biodiscover.encoders.text import TaxonomyVocab
from biodiscover.encoders.tokenizer import KmerTokenizer
from biodiscover.storage.records import Specimen

log = logging.getLogger(__name__)


def has_taxonomy(specimen: Specimen) -> bool:
    return specimen.deepest_label is not None


def item_rng() -> random.Random:
    """The random draws of one training item (k-mer offset, image augmentation), seeded from torch's generator.

    Why torch's and not a generator the dataset keeps: in the main process torch's generator is what
    ``seed_everything`` set and what a checkpoint restores (``training.RngState``), so a resumed run draws
    what the uninterrupted one would have; in a loader worker it is seeded anew each epoch (the loader's base
    seed + the worker's id), so each epoch gets fresh augmentations. A dataset's own ``random.Random(seed)``
    restarted at the seed on resume, and in workers — which get a copy of the dataset each epoch — repeated
    the first epoch's draws in every epoch."""
    return random.Random(int(torch.randint(0, 2**62, (1,)).item()))


class DNADataset(Dataset):
    """Barcodes for masked-token pretraining; a random k-mer offset per draw when training."""

    def __init__(self, sequences: Sequence[str], tokenizer: KmerTokenizer, random_offset: bool = True) -> None:
        self.sequences = list(sequences)
        self.tokenizer = tokenizer
        self.random_offset = random_offset

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> tuple[str, int]:
        offset = item_rng().randrange(self.tokenizer.k) if self.random_offset else 0
        return self.sequences[i], offset

    def collate(self, items: list[tuple[str, int]]) -> dict[str, torch.Tensor]:
        seqs, offsets = zip(*items)
        ids, mask = self.tokenizer.batch(seqs, offsets, length=self.tokenizer.max_tokens)
        return {"dna_ids": ids, "dna_mask": mask}


class SpecimenDataset(Dataset):
    """Multimodal items for alignment: DNA tokens, image tensor, taxonomy ids, presence flags."""

    def __init__(
        self,
        specimens: Sequence[Specimen],
        tokenizer: KmerTokenizer,
        vocab: TaxonomyVocab,
        image_size: int,
        train: bool = True,
        use_text: bool = True,
    ) -> None:
        self.specimens = list(specimens)
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.image_size = image_size
        self.transform = ImageTransform(image_size, train=train)
        self.train = train
        self.use_text = use_text

    def __len__(self) -> int:
        return len(self.specimens)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.specimens[i]
        item: dict[str, Any] = {"barcode": s.dna_barcode or "", "offset": 0, "image": None, "lineage": s.lineage()}
        rng = item_rng() if self.train else None
        if s.dna_barcode and rng is not None:
            item["offset"] = rng.randrange(self.tokenizer.k)
        if s.image_path is not None:
            item["image"] = self.transform(load_image(s.image_path), rng)
        item["has_text"] = self.use_text and has_taxonomy(s)
        return item

    def collate(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids, mask = self.tokenizer.batch([it["barcode"] for it in items], [it["offset"] for it in items],
                                         length=self.tokenizer.max_tokens)
        blank = torch.zeros(3, self.image_size, self.image_size)
        return {
            "dna_ids": ids,
            "dna_mask": mask,
            "has_dna": torch.tensor([bool(it["barcode"]) for it in items]),
            "image": torch.stack([blank if it["image"] is None else it["image"] for it in items]),
            "has_image": torch.tensor([it["image"] is not None for it in items]),
            "text_ids": self.vocab.encode([it["lineage"] for it in items]),
            "has_text": torch.tensor([bool(it["has_text"]) for it in items]),
        }


def fingerprint_specimens(specimens: Iterable[Specimen]) -> dict[str, Any]:
    """Stable digest of the training data: ids, splits, barcodes, labels, image names and sizes.

    Stored in the bundle so a model can be traced to the exact data that made
    it; order-independent (records are sorted by processid first).
    """
    rows = []
    counts: dict[str, int] = {}
    n_images = n_dna = 0
    for s in specimens:
        counts[s.split or "unsplit"] = counts.get(s.split or "unsplit", 0) + 1
        img = ""
        if s.image_path is not None:
            n_images += 1
            try:
                img = f"{Path(s.image_path).name}:{Path(s.image_path).stat().st_size}"
            except OSError:
                img = Path(s.image_path).name
        n_dna += bool(s.dna_barcode)
        rows.append("\t".join([s.processid, s.split or "", s.dna_barcode or "",
                               "|".join(v or "" for v in s.lineage().values()), img]))
    digest = hashlib.sha256()
    for row in sorted(rows):
        digest.update(row.encode("utf-8"))
        digest.update(b"\n")
    return {"sha256": digest.hexdigest(), "specimens": len(rows), "with_dna": n_dna, "with_image": n_images,
            "splits": dict(sorted(counts.items()))}
