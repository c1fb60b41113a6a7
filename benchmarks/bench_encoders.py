"""Encoder benchmarks: alignment on a synthetic set, DNA probes on the real dev set, throughput.

Three commands (results as JSON + a markdown table on stdout):

    # synthetic set with images (from `biodiscover synth`), CPU, preset small
    python benchmarks/bench_encoders.py synth --data /tmp/synthD --out /tmp/bench_enc_synth --preset small

    # real dev barcodes (DNA only): 1-NN genus on test_unseen and species on test (keys = train),
    # next to BLAST's top hit on the same split in the same run
    python benchmarks/bench_encoders.py real --csv ../shared/data/bold-insects-dev.csv.gz --preset small

    # on a CUDA machine: brief bf16 training of `base` on a synthetic set made on the spot,
    # GPU embedding throughput (base, and a CPU-trained bundle's preset), and a CPU-trained
    # bundle loaded on the GPU and saved/loaded back on CPU
    python benchmarks/bench_encoders.py --threads 16 gpu --work /tmp/gpu --cpu-bundle .gpubench/small_cpu

Threads are capped at 2 (the machine is shared). Numbers on a busy machine are
wall-clock and include contention; each result records its command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from biodiscover.encoders.alignment import AlignmentModel  # noqa: E402
from biodiscover.encoders.config import load_preset  # noqa: E402
from biodiscover.encoders.data import SpecimenDataset  # noqa: E402
from biodiscover.storage.bioscan import load_specimens  # noqa: E402
from biodiscover.encoders.embed import Encoders, load_encoders, save_encoders  # noqa: E402
from biodiscover.encoders.evaluation import evaluate_encoders, linear_probe, top1_accuracy  # noqa: E402
from biodiscover.encoders.text import TaxonomyVocab  # noqa: E402
from biodiscover.encoders.training import split_for_training, train_bundle, train_encoders  # noqa: E402
from biodiscover.storage.bundle import Bundle  # noqa: E402
from biodiscover.storage.records import RANKS  # noqa: E402

log = logging.getLogger("bench_encoders")


def _modalities(enc: Encoders, specimens: list, n: int) -> list[tuple[str, Any, list]]:
    """(name, embed function, first ``n`` inputs) per modality."""
    dna = [s.dna_barcode for s in specimens if s.dna_barcode][:n]
    imgs = [s.image_path for s in specimens if s.image_path is not None][:n]
    lins = [s.lineage() for s in specimens][:n]
    return [("dna", enc.embed_dna, dna), ("image", enc.embed_images, imgs), ("text", enc.embed_text, lins)]


def _throughput(enc: Encoders, specimens: list, n: int = 1000) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, fn, items in _modalities(enc, specimens, n):
        if items:
            fn(items[:32])  # warm-up
            t = time.perf_counter()
            fn(items)
            out[f"{name}_per_s"] = round(len(items) / (time.perf_counter() - t), 1)
            out[f"{name}_n"] = len(items)
    return out


def _table(title: str, retrieval: dict[str, Any]) -> list[str]:
    lines = [f"**{title}**", "",
             "| direction | rank | seen micro | seen macro | unseen micro | unseen macro | HM micro | HM macro |",
             "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for direction, table in retrieval.items():
        for rank in RANKS:
            row = table.get(rank, {})
            if not row or ((row.get("seen") or {}).get("micro") is None
                           and (row.get("unseen") or {}).get("micro") is None):
                continue
            cells = [fmt((row.get(p) or {}).get(m)) for p in ("seen", "unseen", "hm") for m in ("micro", "macro")]
            lines.append(f"| {direction} | {rank} | " + " | ".join(cells) + " |")
    return lines + [""]


def _config(args: argparse.Namespace) -> Any:
    overrides = {k: v for k, v in {"pretrain_epochs": args.pretrain_epochs, "align_epochs": args.align_epochs,
                                   "max_pretrain_specimens": args.max_pretrain,
                                   "max_align_specimens": args.max_align}.items() if v is not None}
    config = load_preset(args.preset)
    return config.replace(train=overrides) if overrides else config


def run_synth(args: argparse.Namespace) -> dict[str, Any]:
    config = _config(args)
    out = Path(args.out)
    for p in (out, out.with_name(out.name + ".checkpoints")):
        shutil.rmtree(p, ignore_errors=True)
    t = time.perf_counter()
    result = train_bundle(Path(args.data), out, config, overwrite=True)
    total = time.perf_counter() - t
    specimens = load_specimens(Path(args.data))
    enc = load_encoders(out, device="cpu")
    torch.manual_seed(config.train.seed)
    vocab = TaxonomyVocab.build([s.lineage() for s in specimens])
    unaligned = evaluate_encoders(Encoders(AlignmentModel(config, vocab), device="cpu"), specimens,
                                  max_queries=config.train.eval_max_queries, with_clustering=False)
    stats = result.metrics["training"]
    return {
        "preset": args.preset,
        "config_train": config.to_dict()["train"],
        "train_seconds_total": round(total, 1),
        "training": stats,
        "aligned": result.metrics["evaluation"],
        "unaligned_random_init": unaligned,
        "throughput": _throughput(enc, specimens),
    }


def _blast_top_hits(keys: list, queries: list, work: Path, threads: int) -> tuple[dict[str, str], float]:
    for name, items in (("keys", keys), ("queries", queries)):
        with (work / f"{name}.fa").open("w") as fh:
            for s in items:
                fh.write(f">{s.processid}\n{s.dna_barcode}\n")
    t = time.perf_counter()
    subprocess.run(["makeblastdb", "-in", str(work / "keys.fa"), "-dbtype", "nucl", "-out", str(work / "keys")],
                   check=True, capture_output=True)
    subprocess.run(["blastn", "-query", str(work / "queries.fa"), "-db", str(work / "keys"), "-outfmt",
                    "6 qseqid sseqid",
                    "-max_target_seqs", "5", "-num_threads", str(threads), "-out", str(work / "hits.tsv")], check=True)
    seconds = time.perf_counter() - t
    top: dict[str, str] = {}
    for line in (work / "hits.tsv").read_text().splitlines():
        q, s = line.split("\t")[:2]
        top.setdefault(q, s)  # blastn lists hits best first
    return top, seconds


def _accuracy_from_hits(queries: list, keys_by_id: dict, top: dict[str, str], rank: str) -> float:
    ok = [bool(top.get(q.processid)) and keys_by_id[top[q.processid]].lineage()[rank] == q.lineage()[rank]
          for q in queries if q.lineage()[rank]]
    return float(np.mean(ok))


def run_real(args: argparse.Namespace) -> dict[str, Any]:
    from bench_dev import load_clean, specimens as to_specimens  # E1's cleaning protocol (README)

    df = load_clean(Path(args.csv))
    specimens = to_specimens(df)
    config = _config(args).replace(align={"modalities": ["dna", "text"]})
    by: dict[str, list] = {}
    for s in specimens:
        by.setdefault(s.split, []).append(s)
    keys, test, unseen = by["train"], by["test"], by["test_unseen"]
    if args.max_queries:  # the same seeded subsample for ours and BLAST, so both fit in one run
        rng = np.random.default_rng(0)
        test, unseen = ([items[i] for i in sorted(rng.choice(len(items), min(args.max_queries, len(items)),
                                                             replace=False))]
                        for items in (test, unseen))
    res: dict[str, Any] = {"preset": args.preset, "n_keys": len(keys), "n_test": len(test),
                           "n_test_unseen": len(unseen)}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        model, stats = train_encoders(specimens, config, Path(tmp) / "ck")
        res["train_seconds_total"] = round(time.perf_counter() - t, 1)
        res["training"] = stats
        enc = Encoders(model, device="cpu")
        t = time.perf_counter()
        cpu = time.process_time()
        feats = {name: enc.dna_features([s.dna_barcode for s in items]) for name, items in (("keys", keys),
                                                                                            ("test", test),
                                                                                            ("unseen", unseen))}
        n_embedded = sum(len(v) for v in feats.values())
        res["dna_embed_per_s_wall"] = round(n_embedded / (time.perf_counter() - t), 1)
        res["dna_embed_per_cpu_s"] = round(n_embedded / (time.process_time() - cpu), 1)
        res["ours_pretrained_features"] = {
            "genus_1nn_test_unseen": top1_accuracy(feats["unseen"],
                                                   [s.genus for s in unseen], feats["keys"], [s.genus for s in keys]),
            "species_1nn_test": top1_accuracy(feats["test"], [s.species for s in test],
                                              feats["keys"], [s.species for s in keys]),
        }
        if args.probe:
            t = time.perf_counter()
            res["ours_pretrained_features"]["species_linear_probe_test"] = linear_probe(
                feats["keys"], [s.species for s in keys], feats["test"], [s.species for s in test], max_iter=200)
            res["linear_probe_seconds"] = round(time.perf_counter() - t, 1)
        if not args.aligned:
            aligned = None
        else:
            aligned = {name: enc.embed_dna([s.dna_barcode for s in items]) for name, items in (("keys", keys),
                                                                                               ("test", test),
                                                                                               ("unseen", unseen))}
        if aligned is not None:
            res["ours_aligned_space"] = {
                "genus_1nn_test_unseen": top1_accuracy(aligned["unseen"], [s.genus for s in unseen],
                                                       aligned["keys"], [s.genus for s in keys]),
                "species_1nn_test": top1_accuracy(aligned["test"], [s.species for s in test],
                                                  aligned["keys"], [s.species for s in keys]),
            }
        if shutil.which("blastn") and not args.skip_blast:
            top, seconds = _blast_top_hits(keys, test + unseen, Path(tmp), threads=2)
            kid = {s.processid: s for s in keys}
            res["blast_top_hit"] = {
                "genus_1nn_test_unseen": _accuracy_from_hits(unseen, kid, top, "genus"),
                "species_1nn_test": _accuracy_from_hits(test, kid, top, "species"),
                "seconds": round(seconds, 1),
            }
    return res


# -- gpu: brief bf16 training of `base`, GPU throughput, CPU-trained bundle on GPU and back ---


class _PeakMemory(L.Callback):
    """Peak CUDA memory allocated per training phase (Lightning module class name → MiB)."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.cuda.reset_peak_memory_stats()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.peaks[type(pl_module).__name__] = round(torch.cuda.max_memory_allocated() / 2**20)


def _phase_summary(epochs: list[dict[str, float]], n_items: int, batch_size: int) -> dict[str, Any]:
    """Samples per epoch (the loaders drop a last partial batch), seconds per epoch, samples/s.

    Epoch 0 includes CUDA/cuDNN warm-up; ``steady`` is the mean over the later epochs.
    """
    per_epoch = (n_items // batch_size) * batch_size if n_items > batch_size else n_items
    seconds = [e["seconds"] for e in epochs]
    later = seconds[1:] or seconds
    steady = sum(later) / len(later)
    return {"samples_per_epoch": per_epoch, "epoch_seconds": seconds, "steady_epoch_seconds": round(steady, 2),
            "steady_samples_per_s": round(per_epoch / steady, 1), "loss": [round(e["loss"], 3) for e in epochs]}


def _loader_rate(specimens: list, config: Any, enc: Encoders) -> dict[str, Any]:
    """Alignment input pipeline alone (decode + augment + collate, the training's workers): samples/s."""
    _, align = split_for_training(specimens, config)
    t = config.train
    ds = SpecimenDataset(align, enc.tokenizer, enc.vocab, config.image.image_size, train=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=t.batch_size, shuffle=True, collate_fn=ds.collate,
                                         num_workers=t.num_workers)
    start = time.perf_counter()
    n = sum(batch["dna_ids"].shape[0] for batch in loader)
    return {"num_workers": t.num_workers, "samples": n, "samples_per_s": round(n / (time.perf_counter() - start), 1)}


def _image_model_rate(enc: Encoders, batch_size: int = 256, batches: int = 20) -> dict[str, float]:
    """Image tower alone on random pre-decoded tensors (no JPEG decoding): images/s, fp32 and bf16 autocast."""
    size = enc.config.image.image_size
    x = torch.randn(batch_size, 3, size, size, device=enc.device)
    out: dict[str, float] = {}
    for name, autocast in (("fp32", contextlib.nullcontext),
                           ("bf16_autocast", lambda: torch.autocast("cuda", dtype=torch.bfloat16))):
        with torch.inference_mode(), autocast():
            enc.model.encode_image(x)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(batches):
                enc.model.encode_image(x)
            torch.cuda.synchronize()
        out[f"image_model_only_{name}_per_s"] = round(batch_size * batches / (time.perf_counter() - start), 1)
    return out


def _max_abs_diff(a: Encoders, b: Encoders, specimens: list, n: int) -> dict[str, float]:
    """Largest absolute difference between two encoders' embeddings of the same first ``n`` inputs per modality."""
    return {f"{name}_max_abs_diff": float(np.abs(fn(items) - fb(items)).max())
            for (name, fn, items), (_, fb, _) in zip(_modalities(a, specimens, n),
                                                     _modalities(b, specimens, n)) if items}


def _save_bundle(path: Path, model: AlignmentModel, metrics: dict[str, Any]) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    save_encoders(Bundle.create(path, config=model.config.to_dict(), metrics=metrics), model)
    return path


def run_gpu(args: argparse.Namespace) -> dict[str, Any]:
    import inspect

    if not torch.cuda.is_available():
        raise SystemExit("gpu: no CUDA device visible")
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    props = torch.cuda.get_device_properties(0)
    res: dict[str, Any] = {
        "machine": {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                    "torch": torch.__version__,
                    "cuda": torch.version.cuda, "lightning": L.__version__, "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                    "tf32_cudnn": torch.backends.cudnn.allow_tf32},
    }
    if args.data:
        data = Path(args.data)
    else:
        from biodiscover.storage.synth import SynthConfig, generate

        data = work / "synth"
        made = generate(SynthConfig(n_species=args.species,
                                    n_specimens=args.specimens, seed=0, image_size=args.image_size),
                        data, workers=max(1, (os.cpu_count() or 2) - 2))
        res["data"] = {"synth": {"species": args.species, "specimens": args.specimens,
                                 "image_size": args.image_size, "seed": 0},
                       "seconds": round(made.seconds, 1), "splits": made.split_counts}
    specimens = load_specimens(data)

    # 1. brief training of the preset (bf16-mixed on CUDA: encoders.training chooses it)
    config = _config(args)
    memory = _PeakMemory()
    kwargs = {"callbacks": [memory]} if "callbacks" in inspect.signature(train_encoders).parameters else {}
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    model, stats = train_encoders(specimens, config, work / "checkpoints", **kwargs)
    res["preset"] = args.preset
    res["config_train"] = config.to_dict()["train"]
    res["train_seconds_total"] = round(time.perf_counter() - start, 1)
    res["training"] = stats
    bs = config.train.batch_size
    res["training_summary"] = {
        "precision": "bf16-mixed",
        "pretrain": {**_phase_summary(stats["pretrain_epochs"], stats["pretrain_sequences"], bs),
                     "peak_gpu_mib": memory.peaks.get("PretrainModule")},
        "align": {**_phase_summary(stats["align_epochs"], stats["align_specimens"], bs),
                  "peak_gpu_mib": memory.peaks.get("AlignModule")},
        "peak_gpu_mib_both_phases": round(torch.cuda.max_memory_allocated() / 2**20),
        "parameters_million": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
    }
    shutil.rmtree(work / "checkpoints", ignore_errors=True)

    # 2. GPU embedding throughput of the trained preset; the same bundle on CPU gives the same vectors
    bundle = _save_bundle(work / f"{args.preset}_gpu_trained", model, {"training": stats})
    enc = load_encoders(bundle, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    res["throughput_gpu"] = {args.preset: {**_throughput(enc, specimens, args.n_embed), **_image_model_rate(enc),
                                           "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)}}
    res["input_pipeline_align"] = _loader_rate(specimens, config, enc)
    res[f"{args.preset}_gpu_trained_bundle_on_cpu"] = _max_abs_diff(enc, load_encoders(bundle, device="cpu"), specimens,
                                                                    args.n_compare)

    # 3. a CPU-trained bundle: loads on the GPU, embeds like on CPU, saved from the GPU and loaded back on CPU
    if args.cpu_bundle:
        cpu_bundle = Bundle.open(args.cpu_bundle)
        on_cpu = load_encoders(cpu_bundle, device="cpu")
        on_gpu = load_encoders(cpu_bundle, device="cuda")
        name = on_cpu.config.name
        res["throughput_gpu"][name] = _throughput(on_gpu, specimens, args.n_embed)
        res["throughput_device_cpu"] = {name: _throughput(on_cpu, specimens, args.n_embed)}
        back_path = _save_bundle(work / f"{name}_saved_from_gpu", on_gpu.model, cpu_bundle.metrics)
        back = load_encoders(back_path, device="cpu")
        gpu_vs_cpu = _max_abs_diff(on_gpu, on_cpu, specimens, args.n_compare)
        round_trip = _max_abs_diff(back, on_cpu, specimens, args.n_compare)
        res["cpu_trained_bundle"] = {
            "bundle": str(args.cpu_bundle), "preset": name, "trained_with": cpu_bundle.packages,
            "gpu_vs_cpu": gpu_vs_cpu, "saved_from_gpu_loaded_on_cpu_vs_cpu": round_trip,
            "tolerance": args.tolerance,
            "ok": max(gpu_vs_cpu.values()) <= args.tolerance and max(round_trip.values()) == 0.0,
        }
    return res


def _gpu_tables(res: dict[str, Any]) -> list[str]:
    m = res["machine"]
    s = res["training_summary"]
    lines = [f"**{m['gpu']}**, torch {m['torch']} (CUDA {m['cuda']}), lightning {m['lightning']}; "
             f"preset `{res['preset']}` ({s['parameters_million']} M parameters), {s['precision']}, "
             f"batch {res['config_train']['batch_size']}",
             "",
             "| phase | samples/epoch | s per epoch (each) | steady s/epoch | steady samples/s | peak GPU MiB |",
             "|---|---|---|---|---|---|"]
    for phase in ("pretrain", "align"):
        p = s[phase]
        lines.append(f"| {phase} | {p['samples_per_epoch']} | {', '.join(f'{x:.1f}' for x in p['epoch_seconds'])} | "
                     f"{p['steady_epoch_seconds']} | {p['steady_samples_per_s']} | {p['peak_gpu_mib']} |")
    lines += ["", f"Alignment input pipeline alone ({res['input_pipeline_align']['num_workers']} workers): "
              f"{res['input_pipeline_align']['samples_per_s']} samples/s", "",
              "| model | where | DNA /s | image /s | text /s |", "|---|---|---|---|---|"]
    rows = [(k, "GPU", v) for k, v in res["throughput_gpu"].items()] \
        + [(k, "device CPU", v) for k, v in res.get("throughput_device_cpu", {}).items()]
    for name, where, t in rows:
        lines.append(f"| {name} | {where} | {t.get('dna_per_s')} | {t.get('image_per_s')} | {t.get('text_per_s')} |")
    t = res["throughput_gpu"][res["preset"]]
    lines += ["",
              f"Image tower alone ({res['preset']}, pre-decoded batch of 256): "
              f"{t['image_model_only_fp32_per_s']} images/s fp32, "
              f"{t['image_model_only_bf16_autocast_per_s']} bf16 autocast", ""]
    if "cpu_trained_bundle" in res:
        c = res["cpu_trained_bundle"]
        lines += [f"CPU-trained `{c['preset']}` bundle: GPU vs CPU max |diff| {c['gpu_vs_cpu']}; saved from GPU, "
                  f"loaded on CPU vs CPU {c['saved_from_gpu_loaded_on_cpu_vs_cpu']}; ok={c['ok']}", ""]
    lines.append(f"`{res['preset']}` trained on GPU, loaded on CPU vs GPU: max |diff| "
                 f"{res[res['preset'] + '_gpu_trained_bundle_on_cpu']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--preset", default="small")
    r = sub.add_parser("real")
    r.add_argument("--csv", required=True)
    r.add_argument("--preset", default="small")
    r.add_argument("--probe", action="store_true", help="also fit the species linear probe (minutes on CPU)")
    r.add_argument("--aligned", action="store_true", help="also score the aligned (projected) DNA space")
    r.add_argument("--skip-blast", action="store_true")
    r.add_argument("--max-queries", type=int, default=0,
                   help="score ours and BLAST on a seeded subsample of at most this many test and test_unseen queries")
    g = sub.add_parser("gpu", help="CUDA: brief bf16 training, GPU throughput, CPU-trained bundle on GPU and back")
    g.add_argument("--work", required=True, help="scratch directory (synthetic data, bundles; emptied first)")
    g.add_argument("--data", default=None, help="dataset root; default: generate a synthetic one under --work")
    g.add_argument("--species", type=int, default=400)
    g.add_argument("--specimens", type=int, default=12000)
    g.add_argument("--image-size", type=int, default=256)
    g.add_argument("--preset", default="base")
    g.add_argument("--cpu-bundle", default=None, help="a CPU-trained bundle to load on the GPU and back")
    g.add_argument("--n-embed", type=int, default=4000, help="inputs per modality for throughput")
    g.add_argument("--n-compare", type=int, default=512, help="inputs per modality for GPU-vs-CPU differences")
    g.add_argument("--tolerance", type=float, default=1e-3, help="max |GPU - CPU| allowed per embedding coordinate")
    for p in (s, r, g):
        p.add_argument("--pretrain-epochs", type=int, default=None)
        p.add_argument("--align-epochs", type=int, default=None)
        p.add_argument("--max-pretrain", type=int, default=None)
        p.add_argument("--max-align", type=int, default=None)
    g.set_defaults(pretrain_epochs=3, align_epochs=3)  # brief: a throughput measurement, not a trained model
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids OpenMP spin on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    res = {"synth": run_synth, "real": run_real, "gpu": run_gpu}[args.cmd](args)
    res["command"] = "python benchmarks/bench_encoders.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = json.dumps(res, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text)
    print(text)
    if args.cmd == "synth":
        print("\n".join(_table("aligned (small preset)", res["aligned"]["retrieval"])))
        print("\n".join(_table("unaligned (random-init towers)", res["unaligned_random_init"]["retrieval"])))
    if args.cmd == "gpu":
        print("\n".join(_gpu_tables(res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
