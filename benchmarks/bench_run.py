"""Benchmarks for batch discovery (``biodiscover run``) and its scale-out parts.

Two modes:

``python benchmarks/bench_run.py components``
    Throughput of the parts a 5M-specimen run is made of, on this machine:
    k-mer embedding (``discovery.kmer``), exact FAISS search per reference size
    and dimension, the overhead of searching the reference index in shards and merging, and the
    per-call overhead of the Ray executor against the local one. These figures feed docs/scale-out.md.

``python benchmarks/bench_run.py run --sizes 10000 30000 100000``
    ``biodiscover run`` end to end on synthetic collections (storage.synth):
    wall time, peak memory (RSS high-water mark of a fresh process) and the
    per-stage breakdown the batch log reports, for each size.

Both print a markdown table; paste it into benchmarks/RESULTS-run.md with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _threads(n: int) -> None:
    import faiss
    import torch

    faiss.omp_set_num_threads(n)
    torch.set_num_threads(n)


def _random_barcodes(n: int, seed: int = 0, length: int = 658) -> list[str]:
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.frombuffer(b"ACGT", dtype=np.uint8), size=(n, length), p=[0.31, 0.17, 0.16, 0.36])
    return [row.tobytes().decode() for row in codes]


def bench_components(threads: int) -> list[tuple[str, str, str]]:
    import faiss

    from biodiscover.discovery.index import IndexConfig, ReferenceIndex
    from biodiscover.workflows.executors import ShardSearcher, make_executor, merge_topk, ray_available

    _threads(threads)
    rows: list[tuple[str, str, str]] = []
    # k-mer embedding throughput.
    try:
        from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder

        seqs = _random_barcodes(5000)
        for ks in ((6,), (8,)):
            emb = KmerEmbedder(KmerConfig(ks=ks))
            emb.embed_dna(seqs[:200])
            t = time.perf_counter()
            emb.embed_dna(seqs)
            dt = time.perf_counter() - t
            rows.append((f"k-mer profile embedding, k={ks[0]} (dim {emb.dim})", f"{len(seqs) / dt:,.0f} barcodes/s",
                         "5,000 random 658-nt barcodes"))
    except ImportError as exc:
        rows.append(("k-mer profile embedding", "n/a", f"discovery.kmer not importable: {exc}"))
    # Pairwise identity of a query to its top hits (edlib, global alignment, full distance).
    import edlib

    seqs = _random_barcodes(400, seed=1)
    rng0 = np.random.default_rng(1)
    near = ["".join(c if rng0.random() > 0.03 else "ACGT"[int(rng0.integers(4))] for c in s) for s in seqs]
    t = time.perf_counter()
    for a, b in zip(seqs, near):
        edlib.align(a, b, mode="NW", task="distance")
    dt = time.perf_counter() - t
    rows.append(("edlib global alignment distance, 658 nt, ~3% divergent pairs", f"{len(seqs) / dt:,.0f} pairs/s",
                 "1 core, no band limit"))
    t = time.perf_counter()
    for a, b in zip(seqs, near):
        edlib.align(a, b, mode="NW", task="distance", k=66)
    dt = time.perf_counter() - t
    rows.append(("edlib global alignment distance, band k=66 (10%)", f"{len(seqs) / dt:,.0f} pairs/s", "1 core"))
    # JPEG decode + resize, the CPU side of image embedding: the real BIOSCAN crops when present.
    import io as _io

    from PIL import Image

    shared = Path(os.environ.get("BIODISCOVER_SHARED_DATA", REPO.parent / "shared" / "data")) / "bioscan-images"
    blobs = [p.read_bytes() for p in sorted(shared.glob("*.jpg")) if p.stat().st_size < 100_000] \
        if shared.is_dir() else []
    what = f"{len(blobs)} real BIOSCAN-1M 341x256 crops (~11 KiB)"
    if not blobs:
        arr = (np.random.default_rng(2).random((256, 341, 3)) * 255).astype(np.uint8)
        buf = _io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        blobs, what = [buf.getvalue()], "a 341x256 noise JPEG (worst case)"
    n_img = 0
    t = time.perf_counter()
    while n_img < 500:
        for blob in blobs:
            Image.open(_io.BytesIO(blob)).convert("RGB").resize((224, 224))
            n_img += 1
    dt = time.perf_counter() - t
    rows.append(("JPEG decode + resize to 224 px", f"{n_img / dt:,.0f} images/s", f"1 core, {what}"))
    # Exact FAISS search throughput.
    rng = np.random.default_rng(0)
    for d, n_ref in ((256, 100_000), (768, 100_000), (4096, 20_000)):
        ref = rng.standard_normal((n_ref, d), dtype=np.float32)
        faiss.normalize_L2(ref)
        q = rng.standard_normal((2000, d), dtype=np.float32)
        faiss.normalize_L2(q)
        index = faiss.IndexFlatIP(d)
        index.add(ref)
        index.search(q[:100], 10)
        t = time.perf_counter()
        index.search(q, 10)
        dt = time.perf_counter() - t
        rate = len(q) / dt
        rows.append((f"exact FAISS IP search, d={d}, {n_ref:,} keys, k=10",
                     f"{rate:,.0f} queries/s ({2 * d * n_ref * rate / 1e9:.1f} GFLOP/s)",
                     f"2,000 queries, {threads} threads"))
    # Sharded search overhead (in-process): the product's shards (ReferenceIndex.shards, each searched as
    # a Ray shard actor does, ShardSearcher) and the top-k merge, 8 shards vs 1.
    ref = rng.standard_normal((100_000, 256), dtype=np.float32)
    faiss.normalize_L2(ref)
    q = rng.standard_normal((2000, 256), dtype=np.float32)
    faiss.normalize_L2(q)
    whole = ReferenceIndex(IndexConfig(kind="flat")).fit(ref)
    for n_shards in (1, 8):
        searchers = [ShardSearcher(shard.to_bytes(), offset) for shard, offset in whole.shards(n_shards)]
        merge_topk([s.search(q[:50], 10) for s in searchers], 10)
        t = time.perf_counter()
        merge_topk([s.search(q, 10) for s in searchers], 10)
        dt = time.perf_counter() - t
        rows.append((f"ReferenceIndex.shards({n_shards}) searched + merge_topk, flat d=256, 100,000 keys, k=10",
                     f"{len(q) / dt:,.0f} queries/s", "in-process; includes top-k merge"))
    # Executor overhead for map_batches.
    cols = {"x": rng.standard_normal((20_000, 64)).astype(np.float32)}

    def fn(b: dict) -> dict:
        return {"n": np.linalg.norm(b["x"], axis=1)}

    for kind in ("local", "ray"):
        if kind == "ray" and not ray_available():
            rows.append(("RayExecutor.map_batches", "n/a", "ray extra not installed"))
            continue
        t0 = time.perf_counter()
        ex = make_executor({"local": "local", "ray": None}[kind] or _ray_config())
        start = time.perf_counter() - t0
        ex.map_batches(fn, cols, batch_size=1000)
        t = time.perf_counter()
        ex.map_batches(fn, cols, batch_size=1000)
        dt = time.perf_counter() - t
        ex.close()
        rows.append((f"{type(ex).__name__}.map_batches, 20,000 rows in 20 batches (trivial fn)",
                     f"{dt * 1000:,.0f} ms per call ({dt / 20 * 1000:.1f} ms per batch)",
                     f"executor start {start:.1f}s"))
    return rows


def _ray_config():
    from biodiscover.workflows.executors import ExecutorConfig

    return ExecutorConfig(kind="ray", num_cpus=2)


def _peak_rss_mb_children() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def bench_run(sizes: list[int], species: int, collections: int, workdir: Path, model: Path | None) -> list[dict]:
    """Full ``biodiscover run`` per size, each in a fresh process (RSS high-water mark = that run)."""
    results = []
    for n in sizes:
        cmd = [sys.executable, str(Path(__file__).resolve()), "_one", "--size", str(n),
               "--species", str(species or max(100, n // 40)),
               "--collections", str(collections), "--workdir", str(workdir / f"n{n}")]
        if model:
            cmd += ["--model", str(model)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"size {n} failed with exit {proc.returncode}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        data["wall_s_process"] = wall
        results.append(data)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("components")
    c.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("run")
    r.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    r.add_argument("--species", type=int, default=0, help="default: size // 40")
    r.add_argument("--collections", type=int, default=4)
    r.add_argument("--workdir", type=Path, default=None)
    r.add_argument("--model", type=Path, default=None)
    o = sub.add_parser("_one")
    o.add_argument("--size", type=int, required=True)
    o.add_argument("--species", type=int, required=True)
    o.add_argument("--collections", type=int, required=True)
    o.add_argument("--workdir", type=Path, required=True)
    o.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    if args.mode == "components":
        rows = bench_components(args.threads)
        print("| component | throughput | notes |\n|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    elif args.mode == "run":
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_run_"))
        res = bench_run(args.sizes, args.species, args.collections, workdir, args.model)
        print("| specimens | species / reference keys | collections | wall s | CPU s | peak RSS MB | specimens/s | "
              "novel / candidates | DB MB | stages, summed over collections (s) "
              "|\n|---|---|---|---|---|---|---|---|---|---|")
        for d in res:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in d["stages"].items())
            print(f"| {d['size']:,} | {d['species']} / {d['reference_keys']:,} | {d['collections']} | "
                  f"{d['run_s']:.1f} | {d.get('run_cpu_s', float('nan')):.1f} | "
                  f"{d['peak_rss_mb']:.0f} | {d['size'] / d['run_s']:,.0f} | {d['novel']:,} / {d['proposals']:,} | "
                  f"{d['db_mb']:.0f} | {stages} |")
        print(json.dumps(res))
    else:
        _one(args)


def _one(args: argparse.Namespace) -> None:
    """One size: synth → fit a DNA k-mer bundle → write collections → `biodiscover run` in a child process.

    Prints one JSON line: size, collections, the run's wall time and peak RSS
    (the child's high-water mark: the run alone, not the setup), and the
    per-stage seconds summed over collections from the run's own summary.
    """
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.batch import write_collections

    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.records import Specimen
    from biodiscover.storage.synth import SynthConfig, generate_frame

    _threads(2)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    n_total = int(args.size / 0.45) + 2000  # query splits (test, test_unseen, pretrain) are ≈half the rows
    meta, _ = generate_frame(SynthConfig(n_species=args.species, n_specimens=n_total, images=False, seed=7))
    queries = meta[meta["split"].isin(["test", "test_unseen", "pretrain"])]
    if len(queries) < args.size:
        raise SystemExit(f"synth gave {len(queries)} query rows < {args.size}")
    bundle = args.model
    if bundle is None:
        def sp(*splits: str) -> list:
            return [Specimen.from_row(r) for r in meta[meta["split"].isin(splits)].to_dict("records")]

        bundle = work / "bundle"
        DiscoveryModel().fit(sp("train", "key_unseen"), sp("val", "val_unseen"),
                             sp("other_heldout")).save(bundle, overwrite=True)
    setup_s = time.perf_counter() - t
    cols = work / "collections"
    write_collections(meta, cols, args.collections, rows_per_collection=args.size // args.collections)
    db = work / "run.sqlite"
    cmd = [sys.executable, "-m", "biodiscover.cli", "run", "--collections", str(cols), "--model", str(bundle),
           "--db", str(db), "--json"]
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    run_s = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the run alone (its worker processes included once they are waited for): on a shared
    # machine the wall time says how busy the machine was, this says what the run cost
    run_cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"biodiscover run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    stages: dict[str, float] = {}
    for c in summary["collections"]:
        for k, v in c["stages"].items():
            stages[k] = stages.get(k, 0.0) + float(v)
    print(json.dumps({
        "size": sum(c["specimens"] for c in summary["collections"]), "collections": len(summary["collections"]),
        "species": args.species, "reference_keys": int(meta["split"].isin(["train", "key_unseen"]).sum()),
        "run_s": run_s, "run_cpu_s": run_cpu_s, "load": os.getloadavg(), "peak_rss_mb": _peak_rss_mb_children(),
        "setup_s": setup_s, "stages": stages,
        "novel": sum(c["novel"] for c in summary["collections"]),
        "proposals": sum(c["proposals"] for c in summary["collections"]), "exit_code": proc.returncode,
        "db_mb": db.stat().st_size / 1e6}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
