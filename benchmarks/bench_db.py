"""Benchmark of the storage layer (issue 3): bulk ingest, proposal writes, review-queue latency.

Usage::

    python benchmarks/bench_db.py --specimens 1000000 --proposals 100000 --db /tmp/bench.sqlite

Specimens: a pool of ``--pool`` synthetic specimens from engineer B's generator
(``storage.synth.generate_frame``, metadata only, realistic 23 columns and
~660-nt barcodes) is replicated with unique processids (``<id>-r<k>``) up to
``--specimens``; generating 1M distinct synthetic specimens would cost more than
the ingest being measured. Proposals: ``--proposals`` candidates of 1–9 members
drawn from those specimens, with parent taxa, novelty and identity set.

Reports rows/s, database size, peak RSS of the process (``ru_maxrss``) and the
latency of queue queries (median / p95 of ``--repeats`` runs, each a sorted,
filtered page of 50 plus the total count). Writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np


from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen


def cpu_s() -> float:
    """User + system CPU seconds of this process: the load-independent cost on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pool_frame(n: int, seed: int) -> Any:
    from biodiscover.storage.synth.config import SynthConfig
    from biodiscover.storage.synth.generator import generate_frame

    frame, _ = generate_frame(SynthConfig(n_species=max(50, n // 60), n_specimens=n, images=False, seed=seed))
    return frame


def replicate(frame: Any, total: int) -> Iterator[Specimen]:
    """The pool's specimens, then copies with processid ``<id>-r<k>`` until ``total``."""
    import dataclasses

    rows = [Specimen.from_row(r) for r in frame.to_dict("records")]
    for k in range(total):
        base = rows[k % len(rows)]
        yield base if k < len(rows) else dataclasses.replace(base, processid=f"{base.processid}-r{k // len(rows)}")


def bench_ingest(db: Database, frame: Any, n: int, chunk: int) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), cpu_s()
    report = db.ingest(replicate(frame, n), collection="bench", chunk_size=chunk, backup=False)
    dt, dc = time.perf_counter() - t0, cpu_s() - c0
    assert report.new == n, report
    return {"specimens": n, "seconds": round(dt, 1), "rows_per_s": round(n / dt), "cpu_seconds": round(dc, 1),
            "rows_per_cpu_s": round(n / dc), "chunk_rows": chunk}


def make_proposals(db: Database, n: int, n_specimens: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    with db._read() as conn:
        genera = [r[0] for r in conn.exec_driver_sql("SELECT name FROM taxa WHERE rank = 'genus'")]
        pids = [r[0] for r in conn.exec_driver_sql(
            f"SELECT processid FROM specimens WHERE current = 1 ORDER BY id LIMIT {n_specimens}")]
    order = rng.permutation(len(pids))
    out = []
    pos = 0
    for i in range(n):
        size = int(rng.integers(1, 10))
        members = [(pids[order[(pos + j) % len(pids)]], float(rng.uniform(0.5, 1.0))) for j in range(size)]
        pos += size
        out.append({"members": members, "parent_rank": "genus", "parent_name": genera[i % len(genera)],
                    "novelty": float(rng.uniform()), "nearest_identity": float(rng.uniform(0.8, 0.99)),
                    "nearest_species": f"{genera[(i * 7) % len(genera)]} sp{i % 13}",
                    "evidence": {"within": float(rng.uniform(0, 0.02)), "between": float(rng.uniform(0.03, 0.2))}})
    return out


def bench_queue(db: Database, repeats: int) -> dict[str, Any]:
    with db._read() as conn:
        parent = conn.exec_driver_sql(
            "SELECT parent_name FROM proposals GROUP BY parent_name ORDER BY count(*) DESC LIMIT 1").scalar()
    cases = {
        "all live, sort size desc, page 1": dict(sort="size", descending=True),
        "pending, novelty>=0.8, sort identity": dict(status="pending", min_novelty=0.8, sort="identity"),
        f"parent={parent}, size>=3, sort novelty desc": dict(parent=parent, min_size=3, sort="novelty",
                                                           descending=True),
        "identity<=0.9, sort name, page at offset 20000": dict(max_identity=0.9, sort="name", offset=20000),
        "search 'sp1', sort id": dict(search="sp1"),
    }
    out = {}
    for name, kw in cases.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows, total = db.proposal_queue(limit=50, **kw)
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"median_ms": round(statistics.median(times), 1),
                     "p95_ms": round(sorted(times)[max(0, int(0.95 * len(times)) - 1)], 1),
                     "rows": len(rows), "total": total}
    t0 = time.perf_counter()
    db.queue_counts()
    out["queue_counts"] = {"median_ms": round((time.perf_counter() - t0) * 1000, 1)}
    first = db.proposal_queue(status="pending", limit=1)[0][0]
    t0 = time.perf_counter()
    db.proposal_detail(first.id)
    out["proposal_detail"] = {"median_ms": round((time.perf_counter() - t0) * 1000, 1)}
    t0 = time.perf_counter()
    db.accept(first.id, first.version, reviewer="bench")
    out["accept (one review transaction)"] = {"median_ms": round((time.perf_counter() - t0) * 1000, 1)}
    return out


def queue_only(args: argparse.Namespace) -> int:
    """Queue latency on an existing benchmark database (after `db upgrade` if its schema is older)."""
    result: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"}
    t0 = time.perf_counter()
    backup = Database.upgrade(args.db)
    result["upgrade"] = {"seconds": round(time.perf_counter() - t0, 1), "backup": str(backup) if backup else None}
    with Database.open(args.db) as db:
        with db._read() as conn:
            result["sizes"] = {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
                               for t in ("specimens", "proposals", "proposal_members")}
        result["queue"] = bench_queue(db, args.repeats)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specimens", type=int, default=100_000)
    ap.add_argument("--proposals", type=int, default=10_000)
    ap.add_argument("--pool", type=int, default=50_000, help="distinct synthetic specimens to replicate")
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", type=Path, default=Path("/tmp/biodiscover-bench.sqlite"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--queue-only", action="store_true",
                    help="reuse --db as it is (upgrading its schema first, timed) and measure only the queue")
    args = ap.parse_args()
    if args.queue_only:
        return queue_only(args)
    for suffix in ("", "-wal", "-shm"):
        Path(str(args.db) + suffix).unlink(missing_ok=True)
    result: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
                              "python": platform.python_version()}
    t0 = time.perf_counter()
    frame = pool_frame(min(args.pool, args.specimens), args.seed)
    result["pool"] = {"distinct": len(frame), "seconds": round(time.perf_counter() - t0, 1)}
    rss_before = rss_mib()
    with Database.create(args.db) as db:
        result["ingest"] = bench_ingest(db, frame, args.specimens, args.chunk)
        del frame
        result["ingest"]["peak_rss_mib"] = round(rss_mib())
        result["ingest"]["rss_before_ingest_mib"] = round(rss_before)
        with db._read() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        result["ingest"]["db_mib"] = round(args.db.stat().st_size / 2**20)
        print("ingest:", json.dumps(result["ingest"]), file=sys.stderr, flush=True)
        props = make_proposals(db, args.proposals, args.specimens, args.seed)
        run = db.start_run("bench", {"proposals": args.proposals}, "bench", backup=False)
        t0, c0 = time.perf_counter(), cpu_s()
        db.write_proposals(run, props)
        dt, dc = time.perf_counter() - t0, cpu_s() - c0
        db.finish_run(run)
        del props
        with db._read() as conn:
            n_members = conn.exec_driver_sql("SELECT count(*) FROM proposal_members").scalar()
        result["proposals"] = {"count": args.proposals, "members": n_members, "seconds": round(dt, 1),
                               "proposals_per_s": round(args.proposals / dt), "cpu_seconds": round(dc, 1)}
        print("proposals:", json.dumps(result["proposals"]), file=sys.stderr, flush=True)
        result["queue"] = bench_queue(db, args.repeats)
    result["db_mib_final"] = round(args.db.stat().st_size / 2**20)
    result["peak_rss_mib"] = round(rss_mib())
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
