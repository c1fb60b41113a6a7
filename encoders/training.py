"""Lightning training: DNA masked-token pretraining, then CLIBD-style alignment, then a bundle.

``train_bundle`` is the pipeline behind ``biodiscover train``: read the dataset,
fingerprint it, pretrain the DNA encoder (50% masking, random k-mer offset) on
``pretrain`` + ``other_heldout``, align DNA/image/text on ``train`` (+ ``pretrain``),
evaluate, and write the model bundle. Accelerator is automatic; with CUDA it
trains in bf16 mixed precision and with DDP across all visible GPUs. Lightning
checkpoints (``last.ckpt`` per stage) live in a checkpoint directory beside the
bundle — never inside it, since checkpoints are pickles and bundles are not —
and ``resume=True`` continues from them.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from biodiscover.encoders.alignment import AlignmentModel
from biodiscover.encoders.config import ModelConfig
from biodiscover.encoders.data import DNADataset, SpecimenDataset, fingerprint_specimens
from biodiscover.encoders.dna import DNAEncoder
from biodiscover.encoders.embed import Encoders, save_encoders
from biodiscover.encoders.evaluation import evaluate_encoders
from biodiscover.encoders.text import TaxonomyVocab
from biodiscover.encoders.tokenizer import mask_tokens
from biodiscover.storage.bundle import Bundle
from biodiscover.storage.errors import InputError, ModelBundleError
from biodiscover.storage.progress import Progress
from biodiscover.storage.bioscan import load_specimens
from biodiscover.storage.records import SPLITS, Specimen

log = logging.getLogger(__name__)

#: Splits never used for training: they are evaluation queries.
HELD_OUT_SPLITS = ("val", "test", "val_unseen", "test_unseen")


def _warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                   warmup_fraction: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class PretrainModule(L.LightningModule):
    """Masked-token pretraining of :class:`DNAEncoder` (BarcodeBERT)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = DNAEncoder(config.dna)

    def mlm_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask = batch["dna_ids"], batch["dna_mask"]
        corrupted, labels = mask_tokens(ids, mask, self.config.train.mask_ratio)
        logits = self.encoder.mlm_logits(corrupted, mask)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.mlm_loss(batch)
        self.log("mlm_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch["dna_ids"].shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.config.train.pretrain_lr,
                                weight_decay=self.config.train.weight_decay)
        sched = _warmup_cosine(opt, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class AlignModule(L.LightningModule):
    """Contrastive alignment of the three towers (:class:`AlignmentModel`)."""

    def __init__(self, config: ModelConfig, vocab: TaxonomyVocab) -> None:
        super().__init__()
        self.config = config
        self.model = AlignmentModel(config, vocab)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        loss, parts = self.model.loss(batch)
        if not parts:  # no pair of modalities with two rows in this batch
            return None
        n = batch["dna_ids"].shape[0]
        self.log("align_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        for name, value in parts.items():
            self.log(f"loss_{name}", value, on_step=False, on_epoch=True, batch_size=n)
        self.log("temperature", 1.0 / self.model.scale().detach(), on_step=False, on_epoch=True, batch_size=n)
        return loss

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.config.train.align_lr,
                                weight_decay=self.config.train.weight_decay)
        sched = _warmup_cosine(opt, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class EpochStats(L.Callback):
    """Wall time, CPU time and mean training loss per epoch, stored in the bundle's metrics."""

    def __init__(self, loss_key: str) -> None:
        self.loss_key = loss_key
        self.epochs: list[dict[str, float]] = []
        self._start = 0.0
        self._cpu = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._cpu = time.process_time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(f"{self.loss_key}_epoch")
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                "seconds": round(time.perf_counter() - self._start, 3),
                # process CPU time: on a shared machine wall time measures the neighbours too
                "cpu_seconds": round(time.process_time() - self._cpu, 3),
                "loss": float(value) if value is not None else float("nan"),
            }
        )


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    bundle_path: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def _sample(items: list[Specimen], n: int | None, seed: int) -> list[Specimen]:
    if n is None or len(items) <= n:
        return items
    return random.Random(seed).sample(items, n)


class RngState(L.Callback):
    """Keeps the random generators' states in every checkpoint and restores them on resume.

    Why: a run resumed from a checkpoint started its next epoch from whatever state the generators had after
    ``seed_everything``, not where the interrupted run stood, so the loader shuffled and augmented differently
    and the model differed from the one an uninterrupted run of the same seed writes (the tiny preset on the
    demo's data, interrupted at its second alignment epoch: other weights). With the states restored (and the
    items' draws taken from torch's generator, ``data.item_rng``) the resumed run writes the same weights.
    Plain lists and tensors only, so the checkpoint loads without unpickling arbitrary objects; numpy's global
    generator is left out: training never draws from it."""

    def state_dict(self) -> dict[str, Any]:
        version, state, gauss = random.getstate()
        out: dict[str, Any] = {"python": [version, list(state), gauss], "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            out["cuda"] = torch.cuda.get_rng_state_all()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        version, state, gauss = state_dict["python"]
        random.setstate((version, tuple(state), gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def _trainer(config: ModelConfig, epochs: int, ckpt_dir: Path, callbacks: list[L.Callback],
             progress: bool) -> L.Trainer:
    if log.getEffectiveLevel() > logging.INFO:  # Lightning's banners only in --verbose runs
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    cuda = torch.cuda.is_available()
    n_gpu = torch.cuda.device_count() if cuda else 0
    # every epoch: the newest epoch's file (save_top_k=1 without a monitor keeps the latest) and a copy as
    # last.ckpt, what a resume reads. save_top_k=0 wrote last.ckpt only when the phase ended (Lightning 2.6
    # saves "last" only beside a top-k save), so an interrupted alignment restarted from its first epoch
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=str(ckpt_dir), save_last=True, save_top_k=1,
                                                     every_n_epochs=1)
    return L.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices="auto",
        strategy="ddp" if n_gpu > 1 else "auto",
        precision="bf16-mixed" if cuda else "32-true",
        callbacks=[checkpoint, RngState(), *callbacks],
        enable_progress_bar=progress,
        enable_model_summary=False,
        logger=False,
        log_every_n_steps=10,
        deterministic=False,
        num_sanity_val_steps=0,
    )


def _fit(trainer: L.Trainer, module: L.LightningModule, loader: DataLoader, ckpt_path: str | None) -> None:
    """``trainer.fit`` that lets Ctrl-C reach the caller as ``KeyboardInterrupt``.

    Lightning answers Ctrl-C by saving nothing more, tearing down and calling
    ``sys.exit(1)`` with SIGINT ignored from then on; the CLI would report a
    plain failure and a library caller could not tell an interrupt from an
    error. The last epoch checkpoint is on disk, so ``--resume`` continues.
    """
    import signal

    try:
        trainer.fit(module, loader, ckpt_path=ckpt_path)
    except SystemExit as exc:
        if trainer.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt("training interrupted") from exc
        raise


def _resume_path(ckpt_dir: Path, resume: bool) -> str | None:
    last = ckpt_dir / "last.ckpt"
    return str(last) if resume and last.is_file() else None


def split_for_training(specimens: Sequence[Specimen], config: ModelConfig) -> tuple[list[str], list[Specimen]]:
    """Barcodes for pretraining and specimens for alignment, per the config's splits.

    When the pretraining splits are absent (a small dataset), every barcode of a
    non-evaluation split is used instead, with a warning — never val/test ones.
    """
    t = config.train
    pre = [s for s in specimens if s.split in t.pretrain_splits and s.dna_barcode]
    if not pre:
        log.warning("no barcodes in %s; pretraining on all non-evaluation splits", "+".join(t.pretrain_splits))
        pre = [s for s in specimens if s.split not in HELD_OUT_SPLITS and s.dna_barcode]
    pre = _sample(pre, t.max_pretrain_specimens, t.seed)
    align = [s for s in specimens if s.split in t.align_splits and (s.dna_barcode or s.image_path is not None)]
    align = _sample(align, t.max_align_specimens, t.seed + 1)
    return [s.dna_barcode or "" for s in pre], align


def train_encoders(
    specimens: Sequence[Specimen],
    config: ModelConfig,
    checkpoint_dir: Path,
    *,
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> tuple[AlignmentModel, dict[str, Any]]:
    """Pretrain then align on in-memory specimens; returns the model and training statistics."""
    t = config.train
    L.seed_everything(t.seed, workers=True, verbose=False)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*small compared to the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
    if resume:  # going on in its own checkpoint folder is what a resume is: Lightning's warning read as a fault
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    barcodes, align = split_for_training(specimens, config)
    if not barcodes:
        raise InputError("no DNA barcodes to pretrain on (need specimens with dna_barcode outside val/test splits)")
    if len(align) < 2:
        raise InputError(f"need at least 2 specimens in splits {'+'.join(t.align_splits)} to align, found {len(align)}")
    vocab = TaxonomyVocab.build([s.lineage() for s in align])
    pre_dir, align_dir = Path(checkpoint_dir) / "pretrain", Path(checkpoint_dir) / "align"
    stats: dict[str, Any] = {"pretrain_sequences": len(barcodes), "align_specimens": len(align)}

    align_module = AlignModule(config, vocab)
    align_resume = _resume_path(align_dir, resume)
    if align_resume is None:
        pretrain = PretrainModule(config)
        pre_stats = EpochStats("mlm_loss")
        dna_ds = DNADataset(barcodes, pretrain.encoder.tokenizer, random_offset=True)
        loader = DataLoader(dna_ds, batch_size=t.batch_size, shuffle=True, collate_fn=dna_ds.collate,
                            num_workers=t.num_workers, drop_last=len(dna_ds) > t.batch_size)
        start = time.perf_counter()
        _fit(_trainer(config, t.pretrain_epochs, pre_dir, [pre_stats, *callbacks], progress), pretrain, loader,
             _resume_path(pre_dir, resume))
        stats["pretrain_seconds"] = round(time.perf_counter() - start, 2)
        stats["pretrain_epochs"] = pre_stats.epochs
        align_module.model.dna.load_state_dict(pretrain.encoder.state_dict())
    else:
        log.info("resuming alignment from %s (pretraining already finished)", align_resume)

    ds = SpecimenDataset(align, align_module.model.dna.tokenizer, vocab, config.image.image_size, train=True,
                         use_text="text" in config.align.modalities)
    loader = DataLoader(ds, batch_size=t.batch_size, shuffle=True, collate_fn=ds.collate, num_workers=t.num_workers,
                        drop_last=len(ds) > t.batch_size)
    align_stats = EpochStats("align_loss")
    start = time.perf_counter()
    _fit(_trainer(config, t.align_epochs, align_dir, [align_stats, *callbacks], progress), align_module, loader,
         align_resume)
    stats["align_seconds"] = round(time.perf_counter() - start, 2)
    stats["align_epochs"] = align_stats.epochs
    stats["temperature"] = float(1.0 / align_module.model.scale().detach())
    model = align_module.model.cpu().eval()
    return model, stats


class StageProgress(L.Callback):
    """Reports training as one fraction over both phases (pretraining, then alignment).

    Why: callers that draw their own progress (the demo's stage bars, a TUI)
    cannot use Lightning's tqdm bar; they get ``report("train", fraction, 1.0,
    message)`` (``storage.progress.Progress``) after every training batch instead.
    """

    def __init__(self, report: Progress) -> None:
        self.report = report

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        phase = 0 if isinstance(pl_module, PretrainModule) else 1
        epochs = max(1, int(trainer.max_epochs or 1))
        batches = max(1, int(trainer.num_training_batches or 1))
        within = (trainer.current_epoch + (batch_idx + 1) / batches) / epochs
        name = "pretraining the DNA encoder" if phase == 0 else "aligning image, DNA and text"
        self.report("train", 0.5 * (phase + min(1.0, within)), 1.0,
                    f"{name}: epoch {trainer.current_epoch + 1}/{epochs}")


def default_checkpoint_dir(out: Path) -> Path:
    """``<out>.checkpoints`` beside the bundle (pickled Lightning checkpoints stay out of it)."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoints")


def train_bundle(
    data_dir: Path,
    out: Path,
    config: ModelConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    checkpoint_dir: Path | None = None,
    evaluate: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    """``biodiscover train``: dataset directory → trained, evaluated model bundle at ``out``."""
    out = Path(out)
    if (out / "bundle.json").exists() and not (overwrite or resume):
        raise ModelBundleError(f"{out}: a model bundle already exists (use --force to replace it, or --resume to "
                               "continue)")
    specimens = load_specimens(Path(data_dir), SPLITS)  # the project's one loader, every named split
    if not specimens:
        raise InputError(f"{data_dir}: no specimens in splits {', '.join(SPLITS)}")
    fingerprint = fingerprint_specimens(specimens)
    fingerprint["source"] = str(Path(data_dir).resolve())
    ckpt = checkpoint_dir or default_checkpoint_dir(out)
    model, stats = train_encoders(specimens, config, ckpt, resume=resume, progress=progress, callbacks=callbacks)
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:  # DDP: only rank 0 evaluates and writes the bundle
        return TrainResult(bundle_path=out, metrics={"training": stats})
    metrics: dict[str, Any] = {"training": stats}
    if evaluate:
        start = time.perf_counter()
        enc = Encoders(model, device="cpu")
        metrics["evaluation"] = evaluate_encoders(enc, specimens, max_queries=config.train.eval_max_queries,
                                                  seed=config.train.seed)
        metrics["evaluation_seconds"] = round(time.perf_counter() - start, 2)
    bundle = Bundle.create(out, config=config.to_dict(), fingerprint=fingerprint, metrics=metrics, overwrite=True)
    save_encoders(bundle, model)
    log.info("wrote model bundle %s", out)
    return TrainResult(bundle_path=out, metrics=metrics)
