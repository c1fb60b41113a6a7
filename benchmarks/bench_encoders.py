"""Encoder benchmarks: alignment on a synthetic set, DNA probes on the real dev set, throughput.

Two commands (results as JSON + a markdown table on stdout):

    # synthetic set with images (from `biodiscover synth`), CPU, preset small
    python benchmarks/bench_encoders.py synth --data /tmp/synthD --out /tmp/bench_enc_synth --preset small

    # real dev barcodes (DNA only): 1-NN genus on test_unseen and species on test (keys = train),
    # next to BLAST's top hit on the same split in the same run
    python benchmarks/bench_encoders.py real --csv ../shared/data/bold-insects-dev.csv.gz --preset small

Threads are capped at 2 (the machine is shared). Numbers on a busy machine are
wall-clock and include contention; each result records its command.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from encoders.alignment import AlignmentModel  # noqa: E402
from encoders.config import load_preset  # noqa: E402
from encoders.data import load_specimens  # noqa: E402
from encoders.embed import Encoders, load_encoders  # noqa: E402
from encoders.evaluation import evaluate_encoders, linear_probe, top1_accuracy  # noqa: E402
from encoders.text import TaxonomyVocab  # noqa: E402
from encoders.training import train_bundle, train_encoders  # noqa: E402
from storage.records import RANKS  # noqa: E402

log = logging.getLogger("bench_encoders")


def _throughput(enc: Encoders, specimens: list, n: int = 1000) -> dict[str, float]:
    out: dict[str, float] = {}
    dna = [s.dna_barcode for s in specimens if s.dna_barcode][:n]
    imgs = [s.image_path for s in specimens if s.image_path is not None][:n]
    lins = [s.lineage() for s in specimens][:n]
    for name, fn, items in (("dna", enc.embed_dna, dna), ("image", enc.embed_images, imgs), ("text", enc.embed_text, lins)):
        if items:
            fn(items[:32])  # warm-up
            t = time.perf_counter()
            fn(items)
            out[f"{name}_per_s"] = round(len(items) / (time.perf_counter() - t), 1)
            out[f"{name}_n"] = len(items)
    return out


def _table(title: str, retrieval: dict[str, Any]) -> list[str]:
    lines = [f"**{title}**", "", "| direction | rank | seen micro | seen macro | unseen micro | unseen macro | HM micro | HM macro |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
    for direction, table in retrieval.items():
        for rank in RANKS:
            row = table.get(rank, {})
            if not row or (row.get("seen") or {}).get("micro") is None and (row.get("unseen") or {}).get("micro") is None:
                continue
            cells = [fmt((row.get(p) or {}).get(m)) for p in ("seen", "unseen", "hm") for m in ("micro", "macro")]
            lines.append(f"| {direction} | {rank} | " + " | ".join(cells) + " |")
    return lines + [""]


def _config(args: argparse.Namespace) -> Any:
    overrides = {k: v for k, v in {"pretrain_epochs": args.pretrain_epochs, "align_epochs": args.align_epochs,
                                   "max_pretrain_specimens": args.max_pretrain, "max_align_specimens": args.max_align}.items() if v is not None}
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
    subprocess.run(["makeblastdb", "-in", str(work / "keys.fa"), "-dbtype", "nucl", "-out", str(work / "keys")], check=True, capture_output=True)
    subprocess.run(["blastn", "-query", str(work / "queries.fa"), "-db", str(work / "keys"), "-outfmt", "6 qseqid sseqid",
                    "-max_target_seqs", "5", "-num_threads", str(threads), "-out", str(work / "hits.tsv")], check=True)
    seconds = time.perf_counter() - t
    top: dict[str, str] = {}
    for line in (work / "hits.tsv").read_text().splitlines():
        q, s = line.split("\t")[:2]
        top.setdefault(q, s)  # blastn lists hits best first
    return top, seconds


def _accuracy_from_hits(queries: list, keys_by_id: dict, top: dict[str, str], rank: str) -> float:
    ok = [bool(top.get(q.processid)) and keys_by_id[top[q.processid]].lineage()[rank] == q.lineage()[rank] for q in queries if q.lineage()[rank]]
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
    res: dict[str, Any] = {"preset": args.preset, "n_keys": len(keys), "n_test": len(test), "n_test_unseen": len(unseen)}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        model, stats = train_encoders(specimens, config, Path(tmp) / "ck")
        res["train_seconds_total"] = round(time.perf_counter() - t, 1)
        res["training"] = stats
        enc = Encoders(model, device="cpu")
        t = time.perf_counter()
        cpu = time.process_time()
        feats = {name: enc.dna_features([s.dna_barcode for s in items]) for name, items in (("keys", keys), ("test", test), ("unseen", unseen))}
        n_embedded = sum(len(v) for v in feats.values())
        res["dna_embed_per_s_wall"] = round(n_embedded / (time.perf_counter() - t), 1)
        res["dna_embed_per_cpu_s"] = round(n_embedded / (time.process_time() - cpu), 1)
        res["ours_pretrained_features"] = {
            "genus_1nn_test_unseen": top1_accuracy(feats["unseen"], [s.genus for s in unseen], feats["keys"], [s.genus for s in keys]),
            "species_1nn_test": top1_accuracy(feats["test"], [s.species for s in test], feats["keys"], [s.species for s in keys]),
        }
        if args.probe:
            t = time.perf_counter()
            res["ours_pretrained_features"]["species_linear_probe_test"] = linear_probe(
                feats["keys"], [s.species for s in keys], feats["test"], [s.species for s in test], max_iter=200)
            res["linear_probe_seconds"] = round(time.perf_counter() - t, 1)
        if not args.aligned:
            aligned = None
        else:
            aligned = {name: enc.embed_dna([s.dna_barcode for s in items]) for name, items in (("keys", keys), ("test", test), ("unseen", unseen))}
        if aligned is not None:
            res["ours_aligned_space"] = {
                "genus_1nn_test_unseen": top1_accuracy(aligned["unseen"], [s.genus for s in unseen], aligned["keys"], [s.genus for s in keys]),
                "species_1nn_test": top1_accuracy(aligned["test"], [s.species for s in test], aligned["keys"], [s.species for s in keys]),
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
    for p in (s, r):
        p.add_argument("--pretrain-epochs", type=int, default=None)
        p.add_argument("--align-epochs", type=int, default=None)
        p.add_argument("--max-pretrain", type=int, default=None)
        p.add_argument("--max-align", type=int, default=None)
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids OpenMP spin on a busy machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    res = run_synth(args) if args.cmd == "synth" else run_real(args)
    res["command"] = "python benchmarks/bench_encoders.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = json.dumps(res, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text)
    print(text)
    if args.cmd == "synth":
        print("\n".join(_table("aligned (small preset)", res["aligned"]["retrieval"])))
        print("\n".join(_table("unaligned (random-init towers)", res["unaligned_random_init"]["retrieval"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
