"""Keys a reviewer added as rivals: does a reference name gain confidence from them?

    python benchmarks/bench_session_rivals.py --work W --out session_rivals.json

A reference of the dev file's Diptera train keys (fitted once, saved under ``--work``); as a review would after
accepting two ground-beetle candidates with the order and family typed and the genus left blank, 12 keys of each of the
dev file's two largest Carabidae genera are added for the session (``DiscoveryModel.add_references``). Then 300
Lepidoptera and 300 Coleoptera other than Carabidae (train+test+test_unseen, seed 2) are triaged with and without
those keys, at the simulation's even odds and as one collection (its own share of absent taxa), and for every query
whose best key is the same fly key both times, each rank's P(right) is compared.

Why: the rank models learned the margin to the nearest other taxon from the reference's own taxa, and P(absent) is
free in it; a beetle key nearer than any other fly family made a beetle "family Muscidae" at 0.994 after such a
review (RESULTS-discovery.md, "A reviewer's keys as rivals"). Run it against the code before a change with
``PYTHONPATH`` pointing at that checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from biodiscover.discovery.engine import DiscoveryModel
from biodiscover.storage.bioscan import load_specimens
from biodiscover.storage.bundle import Bundle
from biodiscover.storage.records import RANKS
from biodiscover.workflows.reference import sample

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    read = [s for s in load_specimens(args.data, "train+test+test_unseen")
            if s.dna_barcode and len(s.dna_barcode.strip("N")) >= 200]
    path = args.work / "diptera.bundle"
    if not path.exists():
        DiscoveryModel().fit([s for s in read if s.order == "Diptera" and s.split == "train"]).save(path)
    bundle = Bundle.open(path)
    carabids = [s for s in read if s.order == "Coleoptera" and s.family == "Carabidae" and s.genus]
    genera = sorted(Counter(s.genus for s in carabids).items(), key=lambda g: (-g[1], g[0]))[:2]
    reviewed = [dataclasses.replace(s, processid=f"BD-{s.processid}", subfamily=None, genus=None,
                                    species=f"Carabidae sp. BD-{n}")
                for n, (g, _) in enumerate(genera) for s in [c for c in carabids if c.genus == g][:12]]
    pools = {"Lepidoptera": [s for s in read if s.order == "Lepidoptera"],
             "Coleoptera other than Carabidae": [s for s in read if s.order == "Coleoptera"
                                                 and s.family != "Carabidae"]}
    out: dict[str, Any] = {"reviewed_genera": [g for g, _ in genera], "session_keys": len(reviewed), "rows": []}
    for name, pool in pools.items():
        queries = sample(pool, 300, 2)
        for collection in (False, True):
            t = time.perf_counter()
            before = DiscoveryModel.from_bundle(bundle).triage(queries, collection=collection)
            engine = DiscoveryModel.from_bundle(bundle)
            engine.add_references(reviewed)
            after = engine.triage(queries, collection=collection)
            met = [(b, a) for b, a in zip(before, after) if a.top_hit == b.top_hit]
            rises = [a.confidence[r] - b.confidence[r] for b, a in met for r in RANKS
                     if a.confidence[r] > b.confidence[r] + 1e-9]
            row = {"queries": name, "odds": "collection's share" if collection else "even", "same best key": len(met),
                   "rank rows raised": len(rises), "raised by > 0.05": sum(d > 0.05 for d in rises),
                   "largest rise": round(max(rises, default=0.0), 3),
                   "named a fly taxon below order": sum(a.labels["order"] == "Diptera"
                                                        and a.deepest_rank not in (None, "order") for a in after),
                   "seconds": round(time.perf_counter() - t, 1)}
            print(json.dumps(row), flush=True)
            out["rows"].append(row)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
