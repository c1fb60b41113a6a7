"""Reading throughput and peak memory of the storage readers.

Each measurement runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is the
reader's alone; the baseline RSS after imports is reported next to it.

    # every reader on one file, results as JSON lines
    python benchmarks/bench_read.py run --path ../shared/data/bold-insects-dev.csv.gz
    # a 1M-row metadata file by resampling and perturbing the real dev rows
    python benchmarks/bench_read.py make-resampled --src ../shared/data/bold-insects-dev.csv.gz \
        --rows 1000000 --out /tmp/resampled-1M.csv.gz

Readers measured:
  pandas_read_csv   plain ``pd.read_csv(dtype=COLUMN_DTYPES)``: the official loader's core read
  iter_metadata     storage.bioscan.iter_metadata, 100k-row chunks, rows counted and dropped
  load_metadata     storage.bioscan.load_metadata: whole table, stable categories, index columns
  validate_stream   storage.collections.iter_collection: every rule of storage.validation, per row
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READERS = ("pandas_read_csv", "iter_metadata", "load_metadata", "validate_stream")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(reader: str, path: Path, chunksize: int) -> dict[str, object]:
    """Run one reader over ``path`` in this process; return rows, seconds and peak RSS."""
    import pandas as pd

    from biodiscover.storage.bioscan import iter_metadata, load_metadata
    from biodiscover.storage.collections import iter_collection
    from biodiscover.storage.records import COLUMN_DTYPES

    baseline = _rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    extra: dict[str, object] = {}
    if reader == "pandas_read_csv":
        rows = len(pd.read_csv(path, dtype=COLUMN_DTYPES))
    elif reader == "iter_metadata":
        rows = sum(len(c) for c in iter_metadata(path, chunksize=chunksize))
    elif reader == "load_metadata":
        rows = len(load_metadata(path, chunksize=chunksize))
    elif reader == "validate_stream":
        quarantined = [0]
        stream = iter_collection(path, on_quarantine=lambda _q: quarantined.__setitem__(0, quarantined[0] + 1))
        valid = sum(1 for _ in stream)
        rows = stream.summary.rows
        extra = {"valid": valid, "quarantined": quarantined[0], "problems": dict(stream.summary.problems)}
    else:
        raise SystemExit(f"unknown reader {reader!r}")
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "reader": reader,
        "file": str(path),
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        # CPU time of this process: steadier than wall time on a shared machine.
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_s": round(rows / cpu),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        **extra,
    }


def run(path: Path, readers: list[str], chunksize: int) -> list[dict[str, object]]:
    results = []
    for reader in readers:
        cmd = [sys.executable, __file__, "measure", "--reader", reader, "--path", str(path), "--chunksize",
               str(chunksize)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def make_resampled(src: Path, rows: int, out: Path, seed: int) -> None:
    """A ``rows``-row metadata file: real dev rows drawn with replacement, then perturbed.

    Perturbations so the file is not 10 copies of the same text: a fresh unique
    processid/sampleid per row (and the matching image chunk), 0–6 random point
    substitutions per barcode, coordinates jittered by up to ±0.5°. Columns and
    dtypes stay exactly those of the source.
    """
    import numpy as np
    import pandas as pd

    from biodiscover.storage.records import chunk_for

    rng = np.random.default_rng(seed)
    base = pd.read_csv(src, dtype=str, keep_default_na=False)
    idx = rng.integers(0, len(base), size=rows)
    df = base.iloc[idx].reset_index(drop=True)
    df["processid"] = [f"RSMP{i:07d}-26" for i in range(rows)]
    df["sampleid"] = [f"RS-{i:07d}" for i in range(rows)]
    df["chunk"] = [chunk_for(p, s) for p, s in zip(df["processid"], df["split"])]
    bases = np.array(list("ACGT"))
    n_subs = rng.integers(0, 7, size=rows)
    barcodes = df["dna_barcode"].tolist()
    for i in range(rows):
        k = n_subs[i]
        seq = barcodes[i]
        if k and seq:
            chars = list(seq)
            for pos, b in zip(rng.integers(0, len(chars), size=k), rng.choice(bases, size=k)):
                chars[pos] = b
            barcodes[i] = "".join(chars)
    df["dna_barcode"] = barcodes
    for col in ("coord-lat", "coord-lon"):
        vals = pd.to_numeric(df[col], errors="coerce")
        lim = 90.0 if col == "coord-lat" else 180.0
        jittered = (vals + rng.uniform(-0.5, 0.5, size=rows)).clip(-lim, lim).round(4)
        df[col] = jittered.map(lambda v: "" if pd.isna(v) else f"{v:g}")
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, compression="gzip" if out.suffix == ".gz" else None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--reader", choices=READERS, required=True)
    m.add_argument("--path", type=Path, required=True)
    m.add_argument("--chunksize", type=int, default=100_000)
    r = sub.add_parser("run")
    r.add_argument("--path", type=Path, required=True)
    r.add_argument("--readers", nargs="+", choices=READERS, default=list(READERS))
    r.add_argument("--chunksize", type=int, default=100_000)
    g = sub.add_parser("make-resampled")
    g.add_argument("--src", type=Path, required=True)
    g.add_argument("--rows", type=int, default=1_000_000)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == "measure":
        print(json.dumps(measure(args.reader, args.path, args.chunksize)))
    elif args.cmd == "run":
        print(f"# {platform.platform()}, python {platform.python_version()}", file=sys.stderr)
        run(args.path, args.readers, args.chunksize)
    else:
        make_resampled(args.src, args.rows, args.out, args.seed)


if __name__ == "__main__":
    main()
