"""Benchmark of the review app on a large queue: how fast does a taxonomist get a page?

Builds a real database with N proposals through the storage API
(``Database.write_proposals``; members are synthetic processids), then drives
the real app headless at 80×24 with Textual's Pilot and times, wall clock:

* open → first page of the queue on screen;
* next page (cursor past the last row) → page on screen;
* change of sort (size, largest first) → page on screen;
* filter (size>=5 identity<=95) → page on screen;
* open a proposal's detail → detail on screen;
* a decision (reject) → next proposal on screen.

Usage::

    python benchmarks/bench_tui.py --proposals 100000 [--db /tmp/bench_tui.sqlite]

Writes a Markdown table on stdout; results go to benchmarks/RESULTS-tui.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from biodiscover.storage.db import Database
from biodiscover.tui.app import ReviewApp
from biodiscover.tui.widgets.proposal_table import ProposalTable

torch.set_num_threads(1)


def build(path: Path, n: int, seed: int = 0) -> float:
    rng = random.Random(seed)
    genera = [f"Genus{g:03d}" for g in range(200)]
    t0 = time.perf_counter()
    with Database.create(path) as db:
        run = db.start_run("bench", {"proposals": n}, model_fingerprint="bench", total=n, backup=False)
        batch = []
        for i in range(n):
            size = max(1, int(rng.paretovariate(1.3)))
            genus = rng.choice(genera)
            batch.append({
                "members": [f"B{i:06d}-{j}" for j in range(min(size, 20))],
                "parent_lineage": {"order": "Diptera", "family": f"Fam{genera.index(genus) // 20}", "genus": genus},
                "novelty": round(rng.random(), 3), "nearest_species": f"{genus} sp{rng.randrange(50)}",
                "nearest_identity": round(rng.uniform(0.8, 0.99), 4),
                "evidence": {"within_distances": [round(rng.uniform(0, 0.02), 4) for _ in range(5)],
                             "nearest_known_distances": [round(rng.uniform(0.03, 0.12), 4) for _ in range(5)]},
            })
            if len(batch) == 5000:
                db.write_proposals(run, batch)
                batch = []
        if batch:
            db.write_proposals(run, batch)
        db.finish_run(run, "completed")
    return time.perf_counter() - t0


async def settle(pilot) -> None:
    from textual.worker import WorkerCancelled

    for _ in range(2):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()


async def drive(path: Path, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in ("first page", "next page", "sort by size", "filter",
                                                     "open detail", "reject → next shown")}
    for _ in range(repeats):
        db = Database.open(path)
        app = ReviewApp(db, reviewer="bench", halfcell_images=True, poll_seconds=3600)
        t0 = time.perf_counter()
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            times["first page"].append(time.perf_counter() - t0)
            table = app.screen.query_one(ProposalTable)
            assert table.total > 0 and len(table.rows_shown) == min(100, table.total)
            table.move_cursor(row=len(table.rows_shown) - 1)
            t0 = time.perf_counter()
            await pilot.press("down")
            await settle(pilot)
            times["next page"].append(time.perf_counter() - t0)
            assert table.page_offset == 100
            t0 = time.perf_counter()
            await pilot.press("s", "s")  # id → size → novelty; time two sorts, report per sort
            await settle(pilot)
            times["sort by size"].append((time.perf_counter() - t0) / 2)
            t0 = time.perf_counter()
            from biodiscover.tui.screens.queue import parse_filter
            app.screen.set_query(parse_filter("size>=5 identity<=95", app.screen.query_state))
            await settle(pilot)
            times["filter"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await pilot.press("enter")
            await settle(pilot)
            times["open detail"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            first = app.screen.proposal_id
            await pilot.press("r")
            await settle(pilot)
            await settle(pilot)
            times["reject → next shown"].append(time.perf_counter() - t0)
            assert app.screen.proposal_id != first
        db.close()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proposals", type=int, default=100_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/bench_tui.sqlite"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="use an existing --db (skip building)")
    args = ap.parse_args()
    if not args.reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(str(args.db) + suffix).unlink(missing_ok=True)
        built = build(args.db, args.proposals)
        print(f"built {args.proposals:,} proposals in {built:.1f} s ({args.db.stat().st_size / 1e6:.0f} MB)")
    times = asyncio.run(drive(args.db, args.repeats))
    print(f"\n{platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"{args.proposals:,} proposals, {args.repeats} repeats, headless 80x24\n")
    print("| step | median s | max s |\n|---|---|---|")
    for step, values in times.items():
        print(f"| {step} | {statistics.median(values):.3f} | {max(values):.3f} |")


if __name__ == "__main__":
    main()
