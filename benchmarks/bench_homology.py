"""The homology check on real barcodes: the chance identity learned from shuffled keys, how real
queries compare with it, and what triage does with reversed and unrelated reads.

    python benchmarks/bench_homology.py                       # keys = train, queries = test
    python benchmarks/bench_homology.py --left-out Coleoptera # keys = train of the other orders

For each query set: the lowest identities of the real queries (as given) against the chance
identity at their length, then the same queries reverse-complemented (named as forward?) and
shuffled (base composition kept: marked unrelated, never named or proposed?).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from biodiscover.discovery.engine import DiscoveryModel, informative_length
from biodiscover.storage.distance import reverse_complement
from biodiscover.storage.bioscan import iter_specimens

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--left-out", default=None, help="an order: keys are the other orders' train, queries its test")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    keys, queries = [], []
    for s in iter_specimens(args.data, "train+test"):
        if s.split == "train" and s.order != args.left_out:
            keys.append(s)
        elif s.split == "test" and (args.left_out is None or s.order == args.left_out) and s.dna_barcode:
            queries.append(s)
    rng = np.random.default_rng(args.seed)
    queries = [queries[int(i)] for i in rng.choice(len(queries), min(args.queries, len(queries)), replace=False)]
    t = time.perf_counter()
    model = DiscoveryModel().fit(keys, progress=lambda m: None)
    print(f"{len(keys)} keys (left out: {args.left_out or 'none'}), fitted in {time.perf_counter() - t:.0f} s")
    print("chance identity by read length:", ", ".join(f"{n} nt {v:.3f}" for n, v in model.null_identity_ or ()))
    forward = model.triage(queries)
    margin = np.array([r.identity - (model.null_floor(informative_length(q.dna_barcode)) or 0.0)
                       for r, q in zip(forward, queries)])
    print(f"{len(queries)} real queries: identity above the chance identity at their length by "
          f"min {margin.min():.3f}, 1st percentile {np.percentile(margin, 1):.3f}, median {np.median(margin):.3f}; "
          f"marked unrelated: {sum(r.modality == 'none' for r in forward)}")
    backward = model.triage([dataclasses.replace(q, dna_barcode=reverse_complement(q.dna_barcode or ""))
                             for q in queries])
    same = sum((a.deepest_rank, a.deepest_label) == (b.deepest_rank, b.deepest_label)
               for a, b in zip(forward, backward))
    print(f"reverse-complemented: {same} of {len(queries)} named as the forward read "
          f"({sum('read reversed' in (b.reason or '') for b in backward)} said so)")
    shuffled = []
    for q in queries:
        bases = list(q.dna_barcode or "")
        rng.shuffle(bases)
        shuffled.append(dataclasses.replace(q, dna_barcode="".join(bases)))
    junk = model.triage(shuffled)
    print(f"shuffled (composition kept): {sum(r.modality == 'none' for r in junk)} of {len(queries)} marked unrelated; "
          f"named to any rank: {sum(r.deepest_rank is not None for r in junk)}; flagged novel: "
          f"{sum(r.is_novel for r in junk)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
