"""What the image modality adds: DNA-only vs image-only vs fused, per rank.

Usage (a synthetic set with images and an encoder bundle trained on it)::

    biodiscover synth --out DATA --species 120 --specimens 3000
    biodiscover train --data DATA --out BUNDLE --preset small
    python benchmarks/bench_images.py --data DATA --bundle BUNDLE --out results.json

Protocols: A, keys = train + key_unseen; B, keys = train (test_unseen species
novel). Calibration = val + val_unseen + other_heldout
with calibration keys = train (so val_unseen species are really absent while
calibrating), as ``DiscoveryModel.fit`` does. Queries: test (seen species) and
test_unseen (species absent from train but present in key_unseen: "known" at
every rank in protocol A, novel species in B); other_heldout is not queried (it
calibrates).
Reported per rank: label accuracy (top label, whatever the confidence) and the
deepest-confident-rank TP / MC / UC / OC rates of ``discovery.metrics.rank_errors``
with reference taxa = the keys' taxa. (The novelty-with-image-agreement experiment
recorded in RESULTS-images.md used the retired logistic novelty detector; novelty is
now P(species absent) from the DNA naming model, ``discovery.naming``.)
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch


from biodiscover.discovery.engine import DiscoveryModel
from biodiscover.discovery.metrics import rank_errors
from biodiscover.discovery.multimodal import CrossModalClassifier, CrossModalConfig, ModalityCall, fuse
from biodiscover.storage.bioscan import load_specimens
from biodiscover.encoders.embed import load_encoders
from biodiscover.storage.records import RANKS


def score(specimens: list, calls: list, taxa: dict) -> dict:
    truth = [s.lineage() for s in specimens]
    acc = {}
    for rank in RANKS:
        rows = [(c.labels.get(rank), t[rank]) for c, t in zip(calls, truth) if t[rank]]
        acc[rank] = float(np.mean([p == t for p, t in rows])) if rows else float("nan")
    named = [c.named() if isinstance(c, ModalityCall) else ModalityCall.from_call(s.processid, c).named()
             for c, s in zip(calls, specimens)]
    errs = rank_errors(truth, named, taxa)
    return {"n": len(specimens), "label_accuracy": acc,
            "deepest": {r: {k: v for k, v in e.as_dict().items() if k.endswith("rate") or k.startswith("n_")}
                        for r, e in errs.items()},
            "deepest_rank_counts": dict(collections.Counter(str(c.deepest_rank) for c in calls))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, required=True, help="encoder bundle trained on --data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    by: dict[str, list] = collections.defaultdict(list)
    for s in load_specimens(args.data):
        by[s.split].append(s)
    enc = load_encoders(args.bundle, device="cpu")
    calib = by["val"] + by["val_unseen"] + by["other_heldout"]
    out: dict = {"data": str(args.data), "bundle": str(args.bundle), "machine": platform.machine(),
                 "splits": {k: len(v) for k, v in by.items()}, "protocols": {}}
    # A: keys = train + key_unseen (every test_unseen species known); B: keys = train (test_unseen novel)
    for protocol, keys in (("keys_train+key_unseen", by["train"] + by["key_unseen"]), ("keys_train", by["train"])):
        out["protocols"][protocol] = run_protocol(args, by, enc, keys, calib)
    args.out.write_text(json.dumps(out, indent=2))
    for protocol, res in out["protocols"].items():
        print(f"#### {protocol}")
        report(res, by)


def run_protocol(args: argparse.Namespace, by: dict, enc: object, keys: list, calib: list) -> dict:
    taxa = {r: {getattr(s, r) for s in keys if getattr(s, r)} for r in RANKS}
    timings = {}
    t = time.perf_counter()
    dna = DiscoveryModel().fit(keys, by["val"] + by["val_unseen"], by["other_heldout"])
    timings["dna_fit_s"] = time.perf_counter() - t
    out: dict = {"results": {}}
    variants = {"image_only": CrossModalConfig(k=args.k),  # default: image keys only
                "image_only_dna_keys": CrossModalConfig(k=args.k, image_weight=0.0, dna_weight=1.0),
                "image_only_mixed_w1": CrossModalConfig(k=args.k, dna_weight=1.0),
                "image_only_mixed_w0.25": CrossModalConfig(k=args.k, dna_weight=0.25)}
    models = {}
    for name, cfg in variants.items():
        t = time.perf_counter()
        models[name] = CrossModalClassifier(cfg).fit(enc, keys, calib, calibration_keys=by["train"])
        timings[f"{name}_fit_s"] = time.perf_counter() - t
        out.setdefault("thresholds", {})[name] = models[name].thresholds_
    for split in ("test", "test_unseen"):
        queries = by[split]
        t = time.perf_counter()
        dcalls = dna.triage(queries)
        timings[f"dna_triage_{split}_s"] = time.perf_counter() - t
        res = {"dna_only": score(queries, dcalls, taxa)}
        for name, model in models.items():
            t = time.perf_counter()
            icalls = model.predict(queries, enc)
            timings[f"{name}_predict_{split}_s"] = time.perf_counter() - t
            res[name] = score(queries, icalls, taxa)
            if name == "image_only":
                fused = [fuse(d, i) for d, i in zip(dcalls, icalls)]
                res["fused"] = score(queries, fused, taxa)
        out["results"][split] = res
    out["timings"] = timings
    return out


def report(out: dict, by: dict) -> None:
    timings = out["timings"]
    for split, res in out["results"].items():
        print(f"== {split} (n={len(by[split])})")
        for name, r in res.items():
            acc = " ".join(f"{k[:3]} {v:.3f}" for k, v in r["label_accuracy"].items())
            d = r["deepest"]
            deep = " ".join(f"{k[:3]} tp {v['tp_rate']:.3f} oc {v['oc_rate']:.3f}" for k, v in d.items())
            print(f"  {name:22s} acc: {acc}\n  {'':22s} deepest: {deep}")
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
