"""The naming model's boosted trees, binned by scikit-learn or by ``jsonmodels.weighted_bins``: time and identity.

    python benchmarks/bench_binning.py --orders Diptera,all    # the dev file's Diptera train keys; every order's

For each order (``all``: every order's keys together): ``DiscoveryModel().fit`` on the order's train keys
(barcodes of 200+ called bases, as tests/test_discovery_real.py builds its reference), once as the engine
fits (its own binning) and once with ``weighted_bins`` answering None for every feature (scikit-learn bins the
weighted features itself: the code path before the change); CPU and wall seconds of each fit, and whether the
two naming models' JSON states are identical. Then ``JsonBoosting.fit`` alone on generated weighted data of
1,000-10,000 rows, both ways.

Why a benchmark: the seconds are a fact about this machine and scikit-learn's version; that the trees are
scikit-learn's to the bit is tests/test_metrics_models.py's.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from biodiscover.discovery import jsonmodels
from biodiscover.discovery.engine import DiscoveryModel
from biodiscover.storage.bioscan import load_specimens

HERE = Path(__file__).resolve().parent


def timed(work: Callable[[], Any], scikit_bins: bool) -> tuple[Any, float, float]:
    """``work()`` with the engine's binning, or with scikit-learn's (``weighted_bins`` answering None)."""
    own = jsonmodels.weighted_bins
    if scikit_bins:
        jsonmodels.weighted_bins = lambda column, weight, max_bins=jsonmodels.MAX_BINS: None
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        out = work()
        return out, time.process_time() - cpu, time.perf_counter() - wall
    finally:
        jsonmodels.weighted_bins = own


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--orders", default="Diptera")
    args = ap.parse_args(argv)
    train = load_specimens(args.data, "train")
    # one fit first, untimed: the first in a process pays for imports and warm-up that neither way should
    DiscoveryModel().fit([s for s in train if s.dna_barcode][:300])
    for order in args.orders.split(","):
        keys = [s for s in train
                if order in ("all", s.order) and s.dna_barcode and len(s.dna_barcode.strip("N")) >= 200]
        states = {}
        for scikit_bins in (True, False):
            model, cpu, wall = timed(partial(DiscoveryModel().fit, keys), scikit_bins)
            states[scikit_bins] = json.dumps(model.naming_.to_dict(), sort_keys=True)
            who = "scikit-learn bins" if scikit_bins else "weighted_bins   "
            print(f"{order} ({len(keys)} keys) fit, {who}: {cpu:6.1f} s CPU {wall:6.1f} s wall", flush=True)
        print(f"{order}: naming models identical: {states[True] == states[False]}", flush=True)
    rng = np.random.default_rng(0)
    for n in (1_000, 3_000, 10_000):
        X = rng.random((n, 9))
        X[rng.random(n) < 0.05, 2] = np.nan
        y = (X[:, 0] + 0.3 * rng.standard_normal(n) > 0.5).astype(int)
        w = rng.exponential(size=n)
        fits = {b: timed(partial(jsonmodels.JsonBoosting(max_iter=100, learning_rate=0.1).fit, X, y, w), b)
                for b in (True, False)}
        same = fits[True][0].to_dict() == fits[False][0].to_dict()
        print(f"JsonBoosting.fit, {n:6d} rows x 9 features: scikit-learn bins {fits[True][1]:5.2f} s CPU, "
              f"weighted_bins {fits[False][1]:5.2f} s CPU; identical: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
