"""What keys a reviewer added cost a triage: wall and CPU time with 0 … N session keys.

    python benchmarks/bench_session_time.py --work W --out session_time.json [--keys 0,250,1000,4000]

A reference of the dev file's Diptera train keys (fitted once, saved under ``--work``; the same bundle
``bench_session_rivals.py`` builds). As weeks of review would, members of accepted candidates are added for the
session (``DiscoveryModel.add_references``): records of the dev file's Diptera ``key_unseen`` species (new species of
known genera), each species named as a provisional one (``<genus> sp. BD-n``), the first N keys in species order.
Then one plate of 1,000 Diptera (``test`` + ``test_unseen``, seed 3: known species, and the new species those keys
are of) is triaged as one collection, each setting twice (the faster kept). Per setting: wall seconds, this process's
CPU seconds, how many queries met a session key among their candidates and were searched again without them
(``DiscoveryModel._without_session``, R3), and that second search's own seconds.

Why: a query whose candidates hold a key the session added is searched a second time without those keys, so that a
reviewer's keys can lower a reference name and never raise it (RESULTS-discovery.md, "A reviewer's keys as
rivals"); how much that costs as reviews accumulate was not measured. Run it against the code before a change with
``PYTHONPATH`` pointing at that checkout (code without the second search reports its count as null).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from biodiscover.discovery.engine import DiscoveryModel
from biodiscover.storage.bioscan import load_specimens
from biodiscover.storage.bundle import Bundle
from biodiscover.workflows.reference import sample

HERE = Path(__file__).resolve().parent


def reviewed_keys(records: list[Any], n: int) -> list[Any]:
    """The first ``n`` of ``records`` (``key_unseen`` Diptera, species order) as members of accepted candidates:
    each species a provisional one under its genus, processids marked so no query is its own key."""
    species = sorted({s.species for s in records if s.species and s.genus})
    number = {sp: i for i, sp in enumerate(species, 1)}
    ordered = sorted((s for s in records if s.species in number), key=lambda s: (number[s.species], s.processid))
    return [dataclasses.replace(s, processid=f"BD-{s.processid}", species=f"{s.genus} sp. BD-{number[s.species]:04d}")
            for s in ordered[:n]]


def timed(bundle: Bundle, keys: list[Any], queries: list[Any]) -> dict[str, Any]:
    """One triage of ``queries`` with ``keys`` added for the session: seconds, CPU seconds, second searches."""
    engine = DiscoveryModel.from_bundle(bundle)
    added = engine.add_references(keys) if keys else 0
    again: list[tuple[int, float]] = []
    first = getattr(engine, "_without_session", None)
    if first is not None:
        def counted(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            out = first(*args, **kwargs)
            again.append((len(out), time.perf_counter() - t))
            return out
        engine._without_session = counted  # type: ignore[method-assign]
    wall, cpu = time.perf_counter(), time.process_time()
    results = engine.triage(queries, collection=True)
    return {"session keys": added, "seconds": round(time.perf_counter() - wall, 2),
            "cpu seconds": round(time.process_time() - cpu, 2),
            "searched again": sum(n for n, _ in again) if first is not None else None,
            "second search seconds": round(sum(s for _, s in again), 2) if first is not None else None,
            "named to species": sum(r.deepest_rank == "species" for r in results)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--keys", default="0,250,1000,4000", help="session key counts, comma separated")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    read = [s for s in load_specimens(args.data, "train+key_unseen+test+test_unseen")
            if s.order == "Diptera" and s.dna_barcode and len(s.dna_barcode.strip("N")) >= 200]
    path = args.work / "diptera.bundle"
    if not path.exists():
        DiscoveryModel().fit([s for s in read if s.split == "train"]).save(path)
    bundle = Bundle.open(path)
    pool = [s for s in read if s.split == "key_unseen"]
    queries = sample([s for s in read if s.split in ("test", "test_unseen")], 1000, 3)
    out: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "queries": len(queries),
                           "key_unseen records": len(pool), "rows": []}
    for n in [int(k) for k in args.keys.split(",")]:
        keys = reviewed_keys(pool, n)
        runs = [timed(bundle, keys, queries) for _ in range(2)]
        row = min(runs, key=lambda r: r["seconds"])
        row["load average"] = round(os.getloadavg()[0], 1)
        print(json.dumps(row), flush=True)
        out["rows"].append(row)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
