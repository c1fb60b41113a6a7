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

With ``--twins``, the twin lookup (``Database.twins`` / ``closest_elsewhere``) instead, on a weekly-batch database:
``--runs`` weekly runs of ``--proposals`` candidates in all (``build_twins``), each with evidence the size of a real
one (a 658-nt consensus, the aligned members, one key's barcode: about 5 KB of JSON) whose closest candidate is the
same-numbered candidate of the week before, within the species threshold for four in five (twins) and beyond it for
the rest; timed through the storage API, wall clock: a queue page's marks (``proposal_marks`` of 100 ids, which asks
``twins``), ``twins`` of that page alone, ``closest_elsewhere`` of one candidate (the detail header), the first page
of ``twin=yes`` and of ``sort=twin``, and the page's marks again after each of ``--repeats`` decisions (the queue
reloads after each); the first marks after opening the database are timed on their own. Why: the queue asks for
the twins of every page it shows and the detail for its candidate's; the lookup was measured at ~335 candidates
only.

Usage::

    python benchmarks/bench_tui.py --proposals 100000 [--db /tmp/bench_tui.sqlite]
    python benchmarks/bench_tui.py --twins --proposals 100000 --runs 5 --db /tmp/bench_twins.sqlite [--reuse]

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
from typing import Any, Callable, Iterable, Iterator

import torch

from biodiscover.storage.db import Database
from biodiscover.tui.app import ReviewApp
from biodiscover.tui.widgets.proposal_table import ProposalTable

torch.set_num_threads(1)


def build(path: Path, n: int, seed: int = 0) -> float:
    rng = random.Random(seed)
    genera = [f"Genus{g:03d}" for g in range(200)]
    t0 = time.perf_counter()

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(n):
            size = max(1, int(rng.paretovariate(1.3)))
            genus = rng.choice(genera)
            yield {
                "members": [f"B{i:06d}-{j}" for j in range(min(size, 20))],
                "parent_lineage": {"order": "Diptera", "family": f"Fam{genera.index(genus) // 20}", "genus": genus},
                "novelty": round(rng.random(), 3), "nearest_species": f"{genus} sp{rng.randrange(50)}",
                "nearest_identity": round(rng.uniform(0.8, 0.99), 4),
                "evidence": {"within_distances": [round(rng.uniform(0, 0.02), 4) for _ in range(5)],
                             "nearest_known_distances": [round(rng.uniform(0.03, 0.12), 4) for _ in range(5)]},
            }

    with Database.create(path) as db:
        run = db.start_run("bench", {"proposals": n}, model_fingerprint="bench", total=n, backup=False)
        _write_run(db, run, rows())
    return time.perf_counter() - t0


def _write_run(db: Database, run: int, rows: Iterable[dict[str, Any]], chunk: int = 5000) -> None:
    """Store ``rows`` as run ``run``'s proposals ``chunk`` at a time, then finish the run."""
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == chunk:
            db.write_proposals(run, batch)
            batch = []
    if batch:
        db.write_proposals(run, batch)
    db.finish_run(run, "completed")


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


BASES = "ACGT"


def _barcode(rng: random.Random) -> str:
    return "".join(rng.choice(BASES) for _ in range(658))


def build_twins(path: Path, n: int, runs: int, seed: int = 0) -> float:
    """``--twins``: ``runs`` weekly runs of ``n`` candidates in all, evidence the size of a real one (see the module
    docstring)."""
    rng = random.Random(seed)
    per_run = n // runs
    genera = [f"Genus{g:03d}" for g in range(200)]
    t0 = time.perf_counter()

    def rows(week: int) -> Iterator[dict[str, Any]]:
        for i in range(per_run):
            members = [f"W{week}-{i:06d}-{j}" for j in range(1 + i % 4)]
            genus = genera[i % len(genera)]
            consensus = _barcode(rng)
            evidence: dict[str, Any] = {
                "size": len(members), "threshold": 0.02, "consensus_barcode": consensus, "consensus_length": 658,
                "within_distances": [round(rng.uniform(0, 0.02), 4) for _ in range(5)],
                "nearest_known_distances": [round(rng.uniform(0.03, 0.12), 4) for _ in range(5)],
                "alignment": {m: consensus for m in members}, "hit_barcodes": {f"KEY{i % 5000:05d}": _barcode(rng)},
            }
            if week:  # the same-numbered candidate of the week before: a twin for four in five
                evidence["between_distance"] = {"nearest_candidate": i, "member": f"W{week - 1}-{i:06d}-0",
                                                "distance": 0.002 if i % 5 else 0.08}
            yield {"members": members, "parent_lineage": {"order": "Diptera", "family": f"Fam{i % 10}", "genus": genus},
                   "novelty": round(rng.random(), 3), "nearest_species": f"{genus} sp{rng.randrange(50)}",
                   "nearest_identity": round(rng.uniform(0.8, 0.99), 4), "evidence": evidence}

    with Database.create(path) as db:
        for week in range(runs):
            run = db.start_run("bench", {"proposals": per_run, "week": week}, model_fingerprint="bench",
                               total=per_run, backup=False)
            _write_run(db, run, rows(week), chunk=2000)
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def measure_twins(path: Path, repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with Database.open(path) as db:
        total = db.proposal_queue(status="pending", limit=1)[1]
        page, _ = db.proposal_queue(status="pending", sort="id", offset=total // 2, limit=100)  # a week-3 page
        ids = [p.id for p in page]
        out["page marks, the first after opening"], _ = timed(lambda: db.proposal_marks(ids), 1)
        out["page marks (proposal_marks, 100 ids)"], marks = timed(lambda: db.proposal_marks(ids), repeats)
        out["twins of the page"], twins = timed(lambda: db.twins(ids), repeats)
        out["closest_elsewhere of one (detail header)"], _ = timed(lambda: db.closest_elsewhere([ids[5]]), repeats)
        out["first page of twin=yes"], _ = timed(
            lambda: db.proposal_queue(status="pending", twins=True, limit=100), repeats)
        out["first page of sort=twin"], _ = timed(
            lambda: db.proposal_queue(status="pending", sort="twin", limit=100), repeats)
        after: list[float] = []
        for pid in [i for i in ids if db.proposal(i).status == "pending"][:repeats]:  # --reuse: not those decided
            p = db.proposal(pid)
            db.reject(p.id, expected_version=p.version, reviewer="bench")
            t, _ = timed(lambda: db.proposal_marks(ids), 1)
            after += t
        out["page marks after a decision"] = after
        print(f"{total:,} pending; the page holds {len(twins)} candidates with a twin, "
              f"{sum(any(m.kind == 'twin' for m in v) for v in marks.values())} marked")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proposals", type=int, default=100_000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/bench_tui.sqlite"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="use an existing --db (skip building)")
    ap.add_argument("--twins", action="store_true", help="time the twin lookup on a weekly-batch database")
    ap.add_argument("--runs", type=int, default=5, help="--twins: weekly runs the candidates are spread over")
    args = ap.parse_args()
    if not args.reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(str(args.db) + suffix).unlink(missing_ok=True)
        built = build_twins(args.db, args.proposals, args.runs) if args.twins else build(args.db, args.proposals)
        print(f"built {args.proposals:,} proposals in {built:.1f} s ({args.db.stat().st_size / 1e6:.0f} MB)")
    times = measure_twins(args.db, args.repeats) if args.twins else asyncio.run(drive(args.db, args.repeats))
    print(f"\n{platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"{args.proposals:,} proposals, {args.repeats} repeats"
          f"{f', {args.runs} runs' if args.twins else ', headless 80x24'}\n")
    print("| step | median s | max s |\n|---|---|---|")
    for step, values in times.items():
        print(f"| {step} | {statistics.median(values):.3f} | {max(values):.3f} |")


if __name__ == "__main__":
    main()
