"""Encoders: tokenizer rules, masking, shapes, training loops, alignment, evaluation.

The toy dataset below is built here (not from a shipped file) so the tests run
in any checkout: genera and species with nested barcode divergence, and
photos whose colour encodes the species and shape the genus.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from biodiscover.encoders.alignment import AlignmentModel, symmetric_info_nce
from biodiscover.encoders.config import ModelConfig, load_preset
from biodiscover.encoders.dna import DNAEncoder, mean_pool
from biodiscover.encoders.image import ImageTransform, SmallCNN, SmallViT, load_image, to_tensor
from biodiscover.encoders.text import TaxonomyVocab, TextEncoder, parse_taxonomy
from biodiscover.encoders.tokenizer import MASK_ID, UNK_ID, KmerTokenizer, mask_tokens
from biodiscover.storage.errors import InputError
from biodiscover.storage.records import BIOSCAN_COLUMNS, RGB_MEAN, Specimen, image_relpath

BASES = np.array(list("ACGT"))


def _mutate(seq: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    out = seq.copy()
    hit = rng.random(len(seq)) < rate
    out[hit] = rng.choice(BASES, hit.sum())
    return out


def make_toy_dataset(root: Path, *, n_genera: int = 4, species_per_genus: int = 3, per_species: int = 12, seed: int = 0,
                     length: int = 330) -> list[Specimen]:
    """Write a BIOSCAN-5M-layout dataset (metadata CSV + 32px images) and return its specimens.

    Seen species (the first ``species_per_genus - 1`` of each genus) go to
    train/test, the last species of each genus to key_unseen/test_unseen, and
    an extra unlabelled batch to pretrain.
    """
    rng = np.random.default_rng(seed)
    rows = []
    specimens = []
    shapes = ["ellipse", "rectangle", "triangle", "cross"]
    for g in range(n_genera):
        g_root = rng.choice(BASES, length)
        for sp in range(species_per_genus):
            s_root = _mutate(g_root, 0.12, rng)
            colour = tuple(int(c) for c in rng.integers(0, 200, 3))
            unseen = sp == species_per_genus - 1
            for i in range(per_species):
                pid = f"G{g}S{sp}N{i:03d}"
                if unseen:
                    split = "key_unseen" if i < per_species // 2 else "test_unseen"
                else:
                    split = "train" if i < per_species * 2 // 3 else "test"
                if i % 5 == 4 and not unseen:
                    split = "pretrain"
                seq = "".join(_mutate(s_root, 0.01, rng))
                row = {c: "" for c in BIOSCAN_COLUMNS}
                row.update(processid=pid, order="Diptera", family=f"Fam{g % 2}", genus=f"Genus{g}",
                           species=f"Genus{g} sp{sp}", dna_barcode=seq, split=split)
                if split == "pretrain":
                    row.update(genus="", species="")
                rows.append(row)
                path = root / image_relpath(pid, split)
                path.parent.mkdir(parents=True, exist_ok=True)
                img = Image.new("RGB", (40, 40), tuple(int(255 * m) for m in RGB_MEAN))
                d = ImageDraw.Draw(img)
                jitter = rng.integers(-3, 4, 2)
                box = [8 + jitter[0], 8 + jitter[1], 32 + jitter[0], 32 + jitter[1]]
                shape = shapes[g % 4]
                if shape == "ellipse":
                    d.ellipse(box, fill=colour)
                elif shape == "rectangle":
                    d.rectangle(box, fill=colour)
                elif shape == "triangle":
                    d.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=colour)
                else:
                    d.rectangle([box[0], 17, box[2], 23], fill=colour)
                    d.rectangle([17, box[1], 23, box[3]], fill=colour)
                img.save(path, quality=95)
                s = Specimen.from_row(row)
                s.image_path = path
                specimens.append(s)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    metadata = root / "metadata" / "BIOSCAN_5M_Insect_Dataset_metadata.csv"
    pd.DataFrame(rows, columns=list(BIOSCAN_COLUMNS)).to_csv(metadata, index=False)
    return specimens


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Specimen]]:
    root = tmp_path_factory.mktemp("toy")
    return root, make_toy_dataset(root)


# -- tokenizer --------------------------------------------------------------------------


def test_vocab_order_and_specials() -> None:
    tok = KmerTokenizer(k=2)
    vocab = tok.vocab()
    assert vocab[:2] == ["[MASK]", "[UNK]"] and MASK_ID == 0 and UNK_ID == 1
    assert vocab[2:] == ["".join(p) for p in itertools.product("ACGT", repeat=2)]
    assert tok.vocab_size == 2 + 16
    assert KmerTokenizer(k=8).vocab_size == 2 + 65536


def test_nonoverlapping_kmers_unk_and_offset() -> None:
    tok = KmerTokenizer(k=3)
    vocab = tok.vocab()
    ids = tok.encode("ACGTNAGGTAC")  # ACG TNA GGT (AC dropped: incomplete)
    assert [vocab[i] for i in ids] == ["ACG", "[UNK]", "GGT"]
    assert [vocab[i] for i in tok.encode("ACGTRAGGTA", offset=1)] == ["CGT", "[UNK]", "GTA"]
    shifted = [vocab[i] for i in tok.encode("ACGTTAGGT", offset=1)]
    assert shifted == ["CGT", "TAG"]
    assert tok.encode("acg") == tok.encode("ACG")
    with pytest.raises(ValueError):
        tok.encode("ACGT", offset=3)


def test_truncates_to_660_and_pads_with_mask() -> None:
    tok = KmerTokenizer(k=4)
    assert tok.max_tokens == 165
    assert len(tok.encode("A" * 1000)) == 165
    ids, mask = tok.batch(["ACGTACGT", "ACGT"])
    assert ids.shape == (2, 2) and mask.tolist() == [[True, True], [True, False]]
    ids, mask = tok.batch(["AC"], length=5)  # shorter than one k-mer: one UNK token
    assert ids[0, 0].item() == UNK_ID and mask[0].tolist() == [True, False, False, False, False]


def test_mask_tokens_ratio_and_padding_untouched() -> None:
    torch.manual_seed(0)
    tok = KmerTokenizer(k=4)
    ids, mask = tok.batch(["ACGT" * 100, "ACGT" * 20], length=165)
    corrupted, labels = mask_tokens(ids, mask, 0.5)
    masked = labels != -100
    assert masked[0].sum().item() == 50 and masked[1].sum().item() == 10
    assert not masked[~mask].any()
    assert (corrupted[masked] == MASK_ID).all()
    assert (labels[masked] == ids[masked]).all()
    assert (corrupted[~masked] == ids[~masked]).all()


# -- towers -----------------------------------------------------------------------------


def test_dna_encoder_shapes_and_padding_invariance() -> None:
    cfg = load_preset("tiny").dna
    enc = DNAEncoder(cfg).eval()
    tok = enc.tokenizer
    seq = "ACGTTGCA" * 30
    ids1, m1 = tok.batch([seq])
    ids2, m2 = tok.batch([seq, seq + "ACGT" * 40])
    with torch.no_grad():
        e1 = enc.embed(ids1, m1)
        e2 = enc.embed(ids2, m2)
        assert enc.mlm_logits(ids1, m1).shape == (1, ids1.shape[1], tok.vocab_size)
    assert e1.shape == (1, cfg.hidden)
    torch.testing.assert_close(e1[0], e2[0], atol=1e-5, rtol=1e-4)  # padding does not leak into pooling


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert mean_pool(hidden, torch.tensor([[True, True, False]])).item() == pytest.approx(2.0)


def test_image_preprocessing(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    Image.new("RGB", (80, 50), (255, 0, 0)).save(path)
    img = load_image(path)
    t = ImageTransform(32, train=False)(img)
    assert t.shape == (3, 32, 32)
    assert t[0].mean().item() == pytest.approx((1.0 - RGB_MEAN[0]) / 0.1421, abs=0.05)
    aug = ImageTransform(32, train=True, seed=1)
    assert aug(img).shape == (3, 32, 32)
    with pytest.raises(InputError, match=r"x.txt"):
        (tmp_path / "x.txt").write_text("not an image")
        load_image(tmp_path / "x.txt")
    with pytest.raises(InputError, match=r"missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    assert to_tensor(Image.new("RGB", (4, 4), (0, 0, 0))).shape == (3, 4, 4)


def test_image_models_shapes() -> None:
    cfg = load_preset("tiny").image
    x = torch.randn(2, 3, 32, 32)
    assert SmallCNN(cfg)(x).shape == (2, cfg.channels[-1])
    vit = ModelConfig.from_dict({"image": {"arch": "vit", "image_size": 32, "patch": 8, "hidden": 32, "layers": 1,
                                           "heads": 2}}).image
    assert SmallViT(vit)(x).shape == (2, 32)


def test_text_parsing_and_missing_ranks() -> None:
    assert parse_taxonomy("Diptera Culicidae Aedes Aedes aegypti") == {
        "order": "Diptera", "family": "Culicidae", "subfamily": None, "genus": "Aedes", "species": "Aedes aegypti"}
    assert parse_taxonomy("Diptera - NA")["family"] is None
    vocab = TaxonomyVocab.build(["Diptera Culicidae Aedes Aedes aegypti", {"order": "Coleoptera"}])
    ids = vocab.encode([{"order": "Diptera"}, "Hymenoptera Apidae", {"order": None}])
    assert ids[0, 0].item() >= 2 and (ids[0, 1:] == 0).all()
    assert ids[1, 0].item() == 1  # unknown name → [UNK]
    assert (ids[2] == 0).all()
    enc = TextEncoder(load_preset("tiny").text, vocab)
    assert enc(ids).shape == (3, 32)


def test_info_nce_is_low_for_matching_pairs() -> None:
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    good = symmetric_info_nce(a, a, torch.tensor(20.0))
    bad = symmetric_info_nce(a, a.roll(1, 0), torch.tensor(20.0))
    assert good < 0.1 < math.log(8) < bad


def test_alignment_loss_masks_missing_modalities() -> None:
    cfg = load_preset("tiny")
    model = AlignmentModel(cfg, TaxonomyVocab.build(["A B C D d"]))
    tok = model.dna.tokenizer
    ids, mask = tok.batch(["ACGT" * 50] * 4, length=tok.max_tokens)
    batch = {
        "dna_ids": ids, "dna_mask": mask, "has_dna": torch.tensor([True, True, False, False]),
        "image": torch.randn(4, 3, 32, 32), "has_image": torch.tensor([True, True, True, True]),
        "text_ids": torch.zeros(4, 5, dtype=torch.long), "has_text": torch.tensor([False] * 4),
    }
    loss, parts = model.loss(batch)
    assert set(parts) == {"dna_image"}
    loss.backward()
    assert model.proj["image"].weight.grad is not None
    assert model.proj["text"].weight.grad is None
    batch["has_dna"] = torch.tensor([True, False, False, False])
    _, parts = model.loss(batch)
    assert parts == {}


# -- config and optional backbones -------------------------------------------------------


def test_presets_load_and_validate(tmp_path: Path) -> None:
    tiny, small, base = (load_preset(n) for n in ("tiny", "small", "base"))
    assert (base.dna.k, base.dna.layers, base.dna.heads, base.dna.hidden) == (8, 4, 4, 768)
    assert base.image.arch == "vit" and base.image.hidden == 768
    assert tiny.train.mask_ratio == small.train.mask_ratio == 0.5
    assert ModelConfig.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.dna.k = 5  # type: ignore[misc]  # assigning to the frozen field is the point
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_dict({"dna": {"kmer": 4}})
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig.from_dict({"dna": {"hidden": 30, "heads": 4}})
    bad = tmp_path / "bad.json"
    bad.write_text('{"dna": {"k": 4,}}')
    with pytest.raises(ValueError, match="line 1"):
        load_preset(bad)
    with pytest.raises(FileNotFoundError, match="available: base, small, tiny"):
        load_preset("huge")


def test_timm_backbone_is_optional() -> None:
    from biodiscover.encoders.image import build_image_encoder
    from biodiscover.storage.errors import ModelBundleError

    cfg = ModelConfig.from_dict({"image": {"arch": "timm", "timm_name": "resnet18"}}).image
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ModelBundleError, match=r"biodiscover\[timm\]"):
            build_image_encoder(cfg)
    else:  # pragma: no cover - only where the extra is installed
        assert build_image_encoder(cfg, load_weights=False).output_dim > 0
