"""Benchmark the synthetic generator: `synth` with images (seconds, disk size) and
metadata-only generation of a large table (seconds, rows/s, CSV size).

Usage:
    python benchmarks/bench_synth.py --specimens 50000 --species 2000 --workers 2 --out /tmp/bench_synth50k
    python benchmarks/bench_synth.py --specimens 1000000 --species 20000 --no-images --out /tmp/bench_synth1m
    python benchmarks/bench_synth.py --calibrate ../shared/data/bold-insects-dev.csv.gz --species 1000 --specimens 20000
Prints one JSON line per run. ``cpu_seconds`` (this process + image workers) is
reported beside wall ``seconds`` because the benchmark machine is shared: wall time
under load overstates the cost, CPU time does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import torch

from biodiscover.storage.synth import SynthConfig, generate


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def calibrate(args: argparse.Namespace) -> None:
    """Distance profile and sequence statistics of the real file and of a synthetic run,
    measured identically (storage.synth.stats)."""
    import pandas as pd

    from biodiscover.storage.synth import generate_frame
    from biodiscover.storage.synth.stats import distance_profile

    real = pd.read_csv(args.calibrate, dtype=str, usecols=["species", "genus", "family", "dna_barcode"])
    meta, truth = generate_frame(SynthConfig(n_species=args.species, n_specimens=args.specimens,
                                             seed=args.seed, images=False))
    synth = truth[["species", "genus", "family"]].copy()
    synth["dna_barcode"] = meta["dna_barcode"].to_numpy()
    for name, df in (("real", real), ("synthetic", synth)):
        for between in (True, False):
            prof = distance_profile(df, between_children=between)
            for rank, r in prof.items():
                print(json.dumps({"data": name, "metric": "between-child" if between else "all-pairs",
                                  "rank": rank, "median_group_mean": round(r.median_of_group_means, 4),
                                  "median_pair": round(r.median_of_pairs, 4), "q10": round(r.q10, 4),
                                  "q90": round(r.q90, 4), "groups": r.groups, "pairs": r.pairs}))
        bc = df["dna_barcode"].dropna()
        lengths = bc.str.len()
        print(json.dumps({
            "data": name, "records": len(bc),
            "at_fraction": round(float((bc.str.count("A") + bc.str.count("T")).sum() / bc.str.len().sum()), 3),
            "with_N": round(float(bc.str.contains("N").mean()), 3),
            "length_q05_q25_q50_q95": [int(lengths.quantile(q)) for q in (0.05, 0.25, 0.5, 0.95)],
            "records_per_unique_barcode": round(len(bc) / bc.nunique(), 2),
        }))


def main() -> None:
    torch.set_num_threads(2)
    ap = argparse.ArgumentParser()
    ap.add_argument("--specimens", type=int, default=50_000)
    ap.add_argument("--species", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-images", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--calibrate", type=Path, help="real metadata CSV: compare distance profiles instead")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.calibrate:
        calibrate(args)
        return
    if args.out is None:
        ap.error("--out is required")
    if args.out.exists():
        shutil.rmtree(args.out)
    cfg = SynthConfig(n_species=args.species, n_specimens=args.specimens, seed=args.seed, images=not args.no_images)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    c0 = time.process_time()
    res = generate(cfg, args.out, workers=args.workers)
    secs = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + children.ru_utime + children.ru_stime
    out = {
        "specimens": res.n_specimens, "species": res.n_species, "images": res.n_images, "workers": args.workers,
        "seconds": round(secs, 1), "cpu_seconds": round(cpu, 1), "rows_per_s": round(res.n_specimens / secs),
        "load_avg_before": round(load_before, 1), "load_avg_after": round(os.getloadavg()[0], 1),
        "disk_bytes": du(args.out), "metadata_bytes": res.metadata_path.stat().st_size,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))
    if not args.keep:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()
