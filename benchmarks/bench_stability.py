"""Where the two stability halves disagree: the naming model's fit, its internal distances, or the evidence.

The stability fold of ``bench_folds.py`` (the pooled train keys of the dev orders split into two halves,
every species' keys in two; the same 4,170 test + test_unseen queries triaged against each) gives the share
of queries whose deepest named rank is the same. This script fits the two halves once (with optional
``--naming KEY=VALUE`` settings, as ``bench_folds.py`` takes them) and then swaps parts of half A's naming
model into half B's engine, so that one thing changes at a time:

* **B's reference, A's boosted trees** (B's internal distances): how much of the disagreement goes when
  the rank models are the same;
* **B's reference and trees, A's internal distances**;
* **B's reference, A's whole naming model**: what is left is the evidence itself (each half holds other
  barcodes of the same species).

    python benchmarks/bench_stability.py --out stab.json [--naming min_leaf=5 learning_rate=0.3 trees=150]

Nothing here tunes on the queries: they are only triaged.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_folds  # noqa: E402
from bench_dev import load_clean, specimens  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from biodiscover.discovery.engine import DiscoveryModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--naming", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--max-group", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    df = load_clean(args.data)
    folds = bench_folds.make_folds(df, ["stability"], args)
    config = bench_folds.engine_config(args)
    queries = specimens(folds[0].queries)
    models, fit_s = {}, {}
    for fold in folds:
        half = fold.name.split()[-1]
        t = time.process_time()
        models[half] = DiscoveryModel(config).fit(specimens(fold.keys), (), ())
        fit_s[half] = round(time.process_time() - t, 1)

    def deepest(model: DiscoveryModel) -> list[str | None]:
        return [r.deepest_rank for r in model.triage(queries)]

    def agree(x: list[str | None], y: list[str | None]) -> float:
        return round(float(np.mean([i == j for i, j in zip(x, y)])), 4)

    a, b = models["A"], models["B"]
    calls = {"A": deepest(a), "B": deepest(b)}

    def swapped(**parts: object) -> list[str | None]:
        m = copy.copy(b)
        m.naming_ = copy.copy(b.naming_)
        for name, value in parts.items():
            setattr(m.naming_, name, value)
        return deepest(m)

    rows = {"A vs B": {"vs A": agree(calls["A"], calls["B"])}}
    for label, parts in (("B reference, A trees", {"models_": a.naming_.models_}),
                         ("B reference and trees, A internal distances", {"spread_": a.naming_.spread_}),
                         ("B reference, A naming model", {"models_": a.naming_.models_, "spread_": a.naming_.spread_,
                                                          "support_": a.naming_.support_})):
        c = swapped(**parts)
        rows[label] = {"vs A": agree(c, calls["A"]), "vs B": agree(c, calls["B"])}
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    out = {"commit": commit, "naming": args.naming, "queries": len(queries),
           "keys": {h: len(f.keys) for h, f in zip("AB", folds)}, "fit_cpu_seconds_main_process": fit_s,
           "load": os.getloadavg(), "same_deepest_rank": rows}
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
