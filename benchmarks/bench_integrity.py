"""What the integrity checks cost: Database.open with and without its quick check, a verified backup.

Why measure: every writing verb now runs page-count sanity + ``PRAGMA quick_check``
before it writes, and every backup runs ``integrity_check`` on its copy. Both
read the whole file, so their cost grows with the database; this says how much.

    python benchmarks/bench_integrity.py --specimens 300000 --workdir /tmp/bench_integrity
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from biodiscover.storage.db import Database
from biodiscover.storage.db.backup import backup_database
from biodiscover.storage.records import Specimen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specimens", type=int, default=300_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_integrity"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    db = args.workdir / "bd.sqlite"
    rng = random.Random(0)
    pool = "".join(rng.choice("ACGT") for _ in range(4000))
    t0 = time.perf_counter()
    with Database.create(db) as handle:
        handle.ingest((Specimen(processid=f"P{i:07d}", dna_barcode=pool[i % 3000:i % 3000 + 658], order="Diptera",
                                family="Phoridae", genus="Megaselia", species=f"sp{i % 500}", country="Canada")
                       for i in range(args.specimens)), collection="bench", backup=False)
    ingest_s = time.perf_counter() - t0
    size_mb = os.path.getsize(db) / 2**20

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    open_plain = best(lambda: Database.open(db, verify=False).close())
    open_checked = best(lambda: Database.open(db).close())
    backups = []
    backup_s = best(lambda: backups.append(backup_database(db, reason="bench")))
    result = {"specimens": args.specimens, "db_mib": round(size_mb, 1), "ingest_s": round(ingest_s, 1),
              "open_without_check_s": round(open_plain, 3), "open_with_quick_check_s": round(open_checked, 3),
              "verified_backup_s": round(backup_s, 2), "load": os.getloadavg()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
