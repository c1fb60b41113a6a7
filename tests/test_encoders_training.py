"""Real training loops on a toy dataset: CLI train/info, loss goes down, alignment helps, resume.

The shared training run costs about 30 s of CPU (marked slow; CI still runs it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from biodiscover.encoders.alignment import AlignmentModel
from biodiscover.encoders.config import load_preset
from biodiscover.encoders.data import fingerprint_specimens
from biodiscover.storage.bioscan import load_specimens
from biodiscover.encoders.embed import Encoders, load_encoders
from biodiscover.encoders.evaluation import (
    clustering_ami,
    evaluate_encoders,
    harmonic_mean,
    linear_probe,
    top1_accuracy,
)
from biodiscover.encoders.text import TaxonomyVocab
from biodiscover.encoders.training import train_encoders
from biodiscover.storage.bundle import Bundle
from test_encoders import make_toy_dataset
from biodiscover.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One CLI training run shared by the tests below (tiny preset, a few more epochs: at 10 alignment epochs
    one seed in twelve aligned image→DNA genus under the baseline + 0.2 line below; at 15, eight of eight
    seeds were at 0.71 or more)."""
    tmp = tmp_path_factory.mktemp("train")
    root = tmp / "data"
    make_toy_dataset(root)
    preset = load_preset("tiny").replace(train={"pretrain_epochs": 3, "align_epochs": 15})
    preset_path = tmp / "toy.json"
    preset_path.write_text(json.dumps(preset.to_dict()))
    out = tmp / "bundle"
    rc = main(["train", "--data", str(root), "--out", str(out), "--preset", str(preset_path), "--no-progress"])
    return {"rc": rc, "root": root, "out": out, "tmp": tmp, "config": preset}


@pytest.mark.slow
def test_train_cli_writes_bundle_with_fingerprint(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert trained["rc"] == 0
    b = Bundle.open(trained["out"])
    expected = fingerprint_specimens(load_specimens(trained["root"]))
    assert b.data_fingerprint["sha256"] == expected["sha256"]
    assert b.data_fingerprint["splits"]["train"] == expected["splits"]["train"] > 0
    assert b.config["align"]["embed_dim"] == 32
    assert "torch" in b.packages and b.manifest["format_version"] == 1
    assert not list(trained["out"].rglob("*.ckpt")), "pickled checkpoints must stay outside the bundle"
    assert (trained["out"].with_name("bundle.checkpoints") / "align" / "last.ckpt").is_file()
    capsys.readouterr()
    assert main(["info", str(trained["out"])]) == 0
    shown = capsys.readouterr().out
    assert b.data_fingerprint["sha256"][:16] in shown and "image_to_dna" in shown and "k=4" in shown
    assert main(["info", str(trained["out"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == b.metrics
    # a second train over it is refused with the flag every other command uses to replace its output
    again = ["train", "--data", str(trained["root"]), "--out", str(trained["out"]), "--preset", "tiny"]
    assert main(again) == 2
    assert "a model bundle already exists (use --force to replace it, or --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_losses_decrease(trained: dict) -> None:
    stats = Bundle.open(trained["out"]).metrics["training"]
    mlm = [e["loss"] for e in stats["pretrain_epochs"]]
    align = [e["loss"] for e in stats["align_epochs"]]
    assert len(mlm) == trained["config"].train.pretrain_epochs and len(align) == trained["config"].train.align_epochs
    assert mlm[-1] < mlm[0]
    assert align[-1] < 0.8 * align[0]
    assert all(e["seconds"] > 0 for e in stats["align_epochs"])


@pytest.mark.slow
def test_alignment_beats_unaligned_baseline(trained: dict) -> None:
    specimens = load_specimens(trained["root"])
    aligned = Bundle.open(trained["out"]).metrics["evaluation"]["retrieval"]["image_to_dna"]
    torch.manual_seed(0)
    vocab = TaxonomyVocab.build([s.lineage() for s in specimens])
    baseline = evaluate_encoders(Encoders(AlignmentModel(trained["config"], vocab), device="cpu"), specimens,
                                 with_clustering=False)
    base = baseline["retrieval"]["image_to_dna"]
    for rank in ("genus", "species"):
        assert aligned[rank]["seen"]["micro"] >= base[rank]["seen"]["micro"] + 0.2, rank
    # image→DNA on seen species: 8 species among 16 test images; chance is ~1/8
    assert aligned["species"]["seen"]["micro"] >= 0.4


@pytest.mark.slow
def test_bundle_roundtrip_identical_embeddings(trained: dict) -> None:
    specimens = load_specimens(trained["root"])[:20]
    a, b = load_encoders(trained["out"], device="cpu"), load_encoders(trained["out"], device="cpu")
    seqs = [s.dna_barcode for s in specimens]
    ea, eb = a.embed_dna(seqs), b.embed_dna(seqs, batch_size=3)
    np.testing.assert_allclose(ea, eb, atol=1e-6)
    assert ea.shape == (20, 32) and np.allclose(np.linalg.norm(ea, axis=1), 1.0, atol=1e-5)
    imgs = a.embed_images([s.image_path for s in specimens])
    np.testing.assert_allclose(imgs, b.embed_images([s.image_path for s in specimens]), atol=1e-6)
    text = a.embed_text([s.lineage() for s in specimens] + ["Diptera Fam0 Genus0 Genus0 sp0"])
    np.testing.assert_allclose(text[0], text[-1], atol=1e-6) \
        if specimens[0].species == "Genus0 sp0" and specimens[0].subfamily is None else None
    assert np.allclose(np.linalg.norm(imgs, axis=1), 1.0, atol=1e-5)
    assert a.dna_features(seqs).shape == (20, trained["config"].dna.hidden)


@pytest.mark.slow
def test_resume_continues_from_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "data"
    specimens = make_toy_dataset(root, n_genera=2, per_species=6)
    config = load_preset("tiny").replace(train={"align_epochs": 1})
    _, first = train_encoders(specimens, config, tmp_path / "ck")
    assert [e["epoch"] for e in first["align_epochs"]] == [0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, second = train_encoders(specimens, config.replace(train={"align_epochs": 2}), tmp_path / "ck",
                                       resume=True)
    # a resume goes on in its own checkpoint folder: Lightning's "exists and is not empty" was printed to a user
    # re-running the demo after Ctrl-C as if something were wrong (e34 new-user check)
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    assert "pretrain_seconds" not in second, "pretraining must not rerun when alignment resumes"
    assert [e["epoch"] for e in second["align_epochs"]] == [1]
    assert isinstance(model, AlignmentModel)


@pytest.mark.slow
def test_a_run_interrupted_mid_alignment_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    """Ctrl-C at the start of the third alignment epoch, then ``--resume``: bit for bit the weights the same seed
    writes without a stop. Before, no alignment epoch was checkpointed until the phase ended (the resume started
    alignment over), and with that fixed the resumed run still drew other shuffles and augmentations (the
    generators' states were not in the checkpoint, and the datasets kept generators of their own)."""
    import lightning as L

    from biodiscover.encoders.training import AlignModule

    root = tmp_path / "data"
    specimens = make_toy_dataset(root, n_genera=2, per_species=6)
    assert any(s.image_path for s in specimens)  # the augmentations are drawn too
    config = load_preset("tiny").replace(train={"align_epochs": 3})
    whole, _ = train_encoders(specimens, config, tmp_path / "whole")

    class CtrlC(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if isinstance(pl_module, AlignModule) and trainer.current_epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_encoders(specimens, config, tmp_path / "cut", callbacks=[CtrlC()])
    assert torch.load(tmp_path / "cut" / "align" / "last.ckpt", weights_only=False)["epoch"] == 1
    resumed, stats = train_encoders(specimens, config, tmp_path / "cut", resume=True)
    assert [e["epoch"] for e in stats["align_epochs"]] == [2]
    theirs = resumed.state_dict()
    different = [k for k, v in whole.state_dict().items() if not torch.equal(v, theirs[k])]
    assert not different, different


@pytest.mark.slow
def test_train_force_over_a_bundle_holding_a_reference_says_the_reference_goes(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]
                                                                               ) -> None:
    """QA: ``train --force`` over a bundle that ``build-reference`` had filled wrote a bundle of encoders alone
    and said nothing: triage then refused it for want of a reference. --force replaces the whole bundle, as
    build-reference's does (its help: "its encoders too"); it now says so before the hours of training, while
    Ctrl-C still keeps the reference, and again at the end, with the command that rebuilds it."""
    root = tmp_path / "data"
    make_toy_dataset(root, n_genera=2, per_species=6)
    out = tmp_path / "bundle"
    assert main(["build-reference", "--data", str(root), "--out", str(out), "--keys", "train", "--quiet"]) == 0
    keys = Bundle.open(out).manifest["discovery"]["reference_keys"]
    preset = tmp_path / "toy.json"
    preset.write_text(json.dumps(load_preset("tiny").replace(train={"pretrain_epochs": 1, "align_epochs": 1})
                                 .to_dict()))
    capsys.readouterr()
    assert main(["train", "--data", str(root), "--out", str(out), "--preset", str(preset), "--force",
                 "--no-progress"]) == 0
    said = capsys.readouterr()
    rebuild = f"biodiscover build-reference --data {root.resolve()} --keys train --out {out}"
    first = said.err.splitlines()[0]
    assert first.startswith(f"warning: {out} holds a reference ({keys} keys, from build-reference): --force "
                            "replaces the whole bundle, the reference with it"), said.err
    assert rebuild in first
    assert f"the reference it held ({keys} keys) was replaced: run `{rebuild}` to fit one into the new bundle" \
        in said.out.splitlines()[0], said.out
    assert "discovery" not in Bundle.open(out).manifest  # what was said is what happened
    # and on disk: the old reference's files went with it (they stayed, listed nowhere, before)
    assert not list(out.glob("*/discovery_*")), sorted(p.name for p in out.glob("*/*"))


def test_loader_workers_draw_new_offsets_each_epoch_and_the_same_ones_for_the_same_seed() -> None:
    """A worker gets a copy of the dataset each epoch: a generator the dataset kept restarted there every epoch,
    so each epoch repeated the first one's k-mer offsets (and image augmentations)."""
    from torch.utils.data import DataLoader

    from biodiscover.encoders.data import DNADataset
    from biodiscover.encoders.tokenizer import KmerTokenizer

    tok = KmerTokenizer(k=4)
    ds = DNADataset(["ACGT" * 20] * 64, tok)

    def epochs(seed: int) -> list[list[int]]:
        torch.manual_seed(seed)
        loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=lambda items: [o for _, o in items])
        return [[o for batch in loader for o in batch] for _ in range(2)]

    first, second = epochs(0)
    assert first != second
    assert len(set(first)) > 1
    assert epochs(0) == [first, second]
    assert epochs(1) != [first, second]


def test_train_cli_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "b"), "--overwrite"]) == 2
    assert capsys.readouterr().err.strip() == "error: --overwrite is now --force (as in every other command)"
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "b"), "--preset", "tiny"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "b"), "--preset", "huge"]) == 2
    err = capsys.readouterr().err
    assert "huge" in err and "small" in err and "Traceback" not in err


# -- evaluation functions on hand-checked numbers ------------------------------------------


def test_top1_micro_macro_hand_checked() -> None:
    keys = np.array([[1, 0], [0, 1]], dtype=np.float32)
    key_labels = ["a", "b"]
    # 3 queries of class a (2 right), 1 of class b (right), 1 unlabelled (ignored)
    query = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [1, 0]], dtype=np.float32)
    labels = ["a", "a", "a", "b", None]
    r = top1_accuracy(query, labels, keys, key_labels)
    assert r["n"] == 4
    assert r["micro"] == pytest.approx(3 / 4)
    assert r["macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert top1_accuracy(query[:1], ["zzz"], keys, key_labels)["micro"] == 0.0  # class absent from keys
    assert harmonic_mean(0.5, 1.0) == pytest.approx(2 / 3) and harmonic_mean(0.0, 0.0) == 0.0


def test_linear_probe_and_clustering_ami() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 5
    y = np.repeat(["x", "y", "z"], 20)
    x = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 8)) * 0.1
    assert linear_probe(x[::2], list(y[::2]), x[1::2], list(y[1::2]))["micro"] == 1.0
    ami = clustering_ami(x, [{"species": v, "genus": "g"} for v in y])
    assert ami["species"] == pytest.approx(1.0) and ami["genus"] is None
    shuffled = clustering_ami(x, [{"species": v} for v in rng.permutation(y)])
    assert shuffled["species"] < 0.2
