"""Reference and triage at scale: recall of the candidate search, naming vs index kind, memory and time.

Modes (each prints a markdown table; paste it into benchmarks/RESULTS-scale.md with the command):

``recall``
    Real dev data. Keys = every labelled record outside test/test_unseen (by default), queries = a
    seeded sample of test + test_unseen. For each index setting, the share of the *exact* top
    ``n_search`` (same similarity, every key scanned) that the search returns (recall@n_search),
    the share of queries whose candidate set after the per-species cap yields the same best
    identity as exact search (and the mean identity lost where it does not), and search time.

``folds``
    The naming model's folds (benchmarks/bench_folds.py: per-order and leave-one-order-out, ours only,
    no peers): the engine fitted and run once per index setting (exact, ivfsq); every per-group figure,
    TAXXI class and novelty AUROC, and the largest change (points) against exact search.

``naming``
    bench_dev's protocol (keys = train; calibration val + val_unseen + other_heldout half A;
    scored on test, test_unseen and other_heldout half B): the engine fitted and run once per
    index setting; every naming figure and its change (in points) against exact search.

``build`` / ``triage``
    ``biodiscover build-reference`` / ``biodiscover triage`` as child processes under
    ``/usr/bin/time -v`` (peak RSS, wall), plus the bundle's size on disk.

``synth``
    A synthetic reference of N keys (default 1,000,000) made by mutating real dev barcodes
    (each real species spawns synthetic species 3-8 % apart, each with keys 0-1 % apart),
    written as a BIOSCAN-layout CSV; then ``build`` and ``triage`` as above.

``ray``
    One bundle, one query set: the engine in-process (local executor) against ``run --executor
    ray``'s path (a local Ray instance of ``--cpus`` CPUs, the reference index cut into
    ``--shards`` shard actors, queries mapped over workers); wall time, CPU seconds of this
    process, and whether every result is identical.

``sintax``
    The whole ``biodiscover triage`` process (start-up, model load, everything) against
    ``vsearch --sintax`` (its database build included) on the same keys and queries, in the
    same run: keys = a seeded sample of ``--n-keys`` train records, queries = ``--n-queries``
    of test + test_unseen.

Every mode records ``uptime``'s load average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

log = logging.getLogger("bench_scale")
SETTINGS = {
    # name: IndexConfig keyword arguments
    "before (flat over the raw 6-mer profile, hits in index order)":
        {"kind": "flat", "project_dim": None, "sketch_rerank": False},
    "exact (flat over k-mer presence = sketch cosine)": {"kind": "flat", "project_dim": None},
    "flat, 256-d projection": {"kind": "flat", "project_dim": 256},
    "ivfsq, 256-d projection, nprobe 64 (default above 20k keys)": {"kind": "ivfsq", "project_dim": 256,
                                                                     "ivf_nprobe": 64},
    "hnsw, 256-d projection": {"kind": "hnsw", "project_dim": 256},
}
#: the setting every other is compared with
EXACT = "exact (flat over k-mer presence = sketch cosine)"


def load_avg() -> str:
    return open("/proc/loadavg").read().split(" ")[0:3].__str__()


def _mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.0f} MB"


# -- recall ------------------------------------------------------------------------------------------------
def _same_evidence(a, b) -> bool:
    """Two naming feature sets (``FeatureMaker.features``: top lineage, per-rank vectors) equal to 1e-6."""
    (top_a, xa), (top_b, xb) = a, b
    return top_a == top_b and all((x is None and y is None) or (x is not None and y is not None and
                                                                  np.allclose(x, y, rtol=0, atol=1e-6))
                                  for x, y in zip(xa, xb))


def run_recall(args) -> str:
    from bench_dev import load_clean

    from biodiscover.discovery.engine import DiscoveryModel, EngineConfig, informative_length
    from biodiscover.discovery.index import IndexConfig
    from biodiscover.discovery.kmer import KmerConfig
    from biodiscover.discovery.naming import FeatureMaker, TaxonSpread
    from biodiscover.discovery.reference import Reference, sketch
    from biodiscover.storage.records import RANKS

    df = load_clean(args.data)
    keys = df[df.split.isin(args.key_splits.split("+"))].reset_index(drop=True)
    queries = df[df.split.isin(["test", "test_unseen"])].sample(min(args.queries, len(df)), random_state=0)
    qseq = list(queries.seq)
    ids, seqs = list(keys.processid), list(keys.seq)
    lins = [tuple((r or None) for r in row) for row in keys[list(RANKS)].itertuples(index=False)]
    kmer = KmerConfig(ks=(6,), sqrt=True)
    lengths = np.array([informative_length(x) for x in seqs], dtype=np.int64)
    # the taxon spread is the same for every setting (it depends on the label, not the hits): left empty
    features = FeatureMaker(lins, lengths, TaxonSpread(), 1.0).features
    rows, base = [], None
    for name in [EXACT, *(n for n in SETTINGS if n != EXACT)]:
        kw = SETTINGS[name]
        t = time.perf_counter()
        ref = Reference.build(ids, seqs, lins, kmer=kmer, index=IndexConfig(**kw))
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        got, pos = ref.search(qseq, args.n_search)
        search_s = time.perf_counter() - t
        if not kw.get("sketch_rerank", True):  # similarities of this setting's hits by sketch cosine
            got = ref._rerank(sketch(ref.embedder.embed_dna(qseq)), pos, args.n_search)[0]
        # the engine's own candidate step (per-species cap 2, 60 candidates, exact identities, best first)
        engine = DiscoveryModel(EngineConfig(n_search=args.n_search))
        engine.reference_ = ref
        hits = engine._hits(qseq)
        evidence = [features(h) for h in hits]
        best = np.array([h.identities[0] if len(h.identities) else 0.0 for h in hits])
        if base is None:
            base = {"kth": got[:, -1:], "best": best, "evidence": evidence}
        # keys tied with the exact k-th are interchangeable: a hit counts when it is at least as similar
        recall = float(np.mean(np.minimum((got >= base["kth"] - 1e-6).sum(axis=1), args.n_search)) / args.n_search)
        same = float(np.mean(np.abs(best - base["best"]) < 1e-6))
        lost = float(np.mean(np.maximum(base["best"] - best, 0.0)))
        ev_same = float(np.mean([_same_evidence(a, b) for a, b in zip(evidence, base["evidence"])]))
        size = len(ref.index_.to_bytes()) + np.asarray(ref.sketches_).nbytes
        rows.append((name, ref.index_.kind_, f"{recall:.4f}", f"{same:.4f}", f"{lost:.5f}", f"{ev_same:.4f}",
                     f"{search_s:.1f} s ({len(qseq) / search_s:,.0f}/s)", f"{build_s:.1f} s", _mb(size)))
        log.info("%s", rows[-1])
    head = (f"keys: {len(keys):,} ({args.key_splits}), queries: {len(qseq):,} (test + test_unseen sample), "
            f"n_search {args.n_search}. Every row against the first (exact top-{args.n_search} by sketch cosine): "
            f"recall@{args.n_search} = share of its top-{args.n_search} found (keys tied with the exact "
            f"{args.n_search}th count as found); best identity = the highest exact identity among the candidates "
            "(per-species cap 2, 60 candidates): share of queries with the same value and mean identity lost; "
            "same evidence = share of queries whose per-rank labels, identities, margins and agreement "
            "(what the naming model reads) are all equal.\n\n")
    table = ["| setting | kind | recall@n_search | same best identity | mean identity lost | same evidence | "
             "search | build | index + sketches |", "|---|---|---|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    return head + "\n".join(table)


# -- naming ------------------------------------------------------------------------------------------------
NAMING_FIGURES = ("seen_named_species_correct", "seen_named_to_species", "unseen_named_to_species",
                  "unseen_named_correct_genus", "unseen_named_wrong_genus", "unseen_named_correct_family",
                  "heldout_named_to_genus", "heldout_named_to_species")


def run_naming(args) -> str:
    from bench_dev import (absent_genus_figures, load_clean, named_lineages, specimens, split_outliers,
                           summarise)

    from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
    from biodiscover.discovery.index import IndexConfig

    df = load_clean(args.data)
    oh_calib, oh_eval = split_outliers(df, 3000, 2000, 0)
    keys = df[df.split == "train"]
    calib = df[df.split.isin(["val", "val_unseen"])]
    test, unseen = df[df.split == "test"], df[df.split == "test_unseen"]
    figures: dict[str, dict] = {}
    for name, kw in SETTINGS.items():
        if args.settings and not any(s in name for s in args.settings):
            continue
        model = DiscoveryModel(EngineConfig(index=IndexConfig(**kw)))
        t = time.perf_counter()
        model.fit(specimens(keys), specimens(calib), specimens(oh_calib))
        fit_s = time.perf_counter() - t
        res, secs = {}, 0.0
        for split, q in (("test", test), ("test_unseen", unseen), ("heldout", oh_eval)):
            t = time.perf_counter()
            res[split] = model.triage(specimens(q))
            secs += time.perf_counter() - t
        named = {s: named_lineages(res[s]) for s in res}
        top = {s: [dict(x.labels) for x in res[s]] for s in res}
        nov = {s: np.array([x.novelty for x in res[s]]) for s in res}
        out = summarise(name, test, unseen, keys, named["test"], named["test_unseen"], top["test"],
                        top["test_unseen"], nov["test"], nov["test_unseen"], secs)
        out.update(absent_genus_figures(oh_eval, named["heldout"], keys))
        out["fit_seconds"] = fit_s
        figures[name] = out
        log.info("%s: %s", name, {k: out.get(k) for k in NAMING_FIGURES})
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=float))
    cols = [*NAMING_FIGURES, "novelty AUROC", "TP species (share)", "TP genus (share)"]

    n_scored = len(test) + len(unseen)

    def values(f: dict) -> list[float]:
        return [*(f[k] for k in NAMING_FIGURES), f["novelty"]["auroc"],
                f["rank_errors"]["species"]["tp"] / n_scored, f["rank_errors"]["genus"]["tp"] / n_scored]

    ref_name = EXACT if EXACT in figures else next(iter(figures))
    table = ["| setting | " + " | ".join(cols) + " | fit s | triage s | largest change vs exact (points) |",
             "|---|" + "---|" * (len(cols) + 3)]
    for name, f in figures.items():
        v, b = values(f), values(figures[ref_name])
        worst = max(range(len(v)), key=lambda i: abs(v[i] - b[i]))
        table.append(f"| {name} | " + " | ".join(f"{x:.4f}" for x in v)
                     + f" | {f['fit_seconds']:.0f} | {f['seconds']:.0f} | {abs(v[worst] - b[worst]) * 100:.2f} "
                     f"({cols[worst]}) |")
    return (f"keys {len(keys):,} (train), test {len(test):,}, test_unseen {len(unseen):,}, heldout "
            f"{len(oh_eval):,}; TP = share of test + test_unseen named right at their deepest rank (TAXXI); "
            f"change = largest absolute difference from '{ref_name}', in points\n\n" + "\n".join(table))


# -- the naming model's folds per index setting ---------------------------------------------------------------
FOLD_SETTINGS = {
    # the two kinds the product uses (``auto``: exact up to 20k keys, ivfsq above), each forced on every fold
    "exact": {"project_dim": 256, "exact_max": 10**9, "ivf_nprobe": 64},
    "ivfsq": {"kind": "ivfsq", "project_dim": 256, "ivf_nprobe": 64},
}


def _fold_values(o: dict) -> dict[str, float]:
    """Every figure of one scored fold for 'ours' (bench_folds.score_fold), flat: group figures, TAXXI, AUROC."""
    t = o["tools"]["ours"]
    out = {f"{g}: {k}": v for g, figs in t.items() if g != "taxxi" for k, v in figs.items() if k != "n"}
    out.update({f"TAXXI {k}": v for k, v in t["taxxi"].items()})
    out["novelty AUROC"] = o["novelty"]["auroc"]
    return out


def run_folds(args) -> str:
    import bench_folds
    from bench_dev import load_clean, specimens

    from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
    from biodiscover.discovery.index import IndexConfig

    fargs = argparse.Namespace(max_group=args.max_group, max_heldout=600, max_extra_heldout=1500,
                               max_left_out=1500, seed=0, skip_peers=True, threads=2, work=args.work)
    folds = bench_folds.make_folds(load_clean(args.data), args.folds.split(","), fargs)
    scored: dict[str, list[dict]] = {}
    kinds: dict[str, list[str]] = {}
    for name in args.settings:
        kw = FOLD_SETTINGS[name]

        def run_ours(fold, _args, kw=kw, name=name) -> dict:
            """bench_folds.run_ours with this index setting (the rest of the engine at its defaults)."""
            t0 = time.perf_counter()
            model = DiscoveryModel(EngineConfig(index=IndexConfig(**kw))).fit(specimens(fold.keys),
                                                                              specimens(fold.extra), ())
            fit_s = time.perf_counter() - t0
            kinds.setdefault(name, []).append(model.index_.kind_)
            q = fold.queries
            t0 = time.perf_counter()
            res = model.triage(specimens(q))
            return {"model": model, "results": dict(zip(q.processid, res)), "fit_seconds": fit_s,
                    "triage_seconds": time.perf_counter() - t0}

        bench_folds.run_ours = run_ours
        # candidate species (clustering, with vsearch in the same run) are not naming: not compared here
        bench_folds.candidate_figures = lambda *_a: {}
        scored[name] = [bench_folds.score_fold(f, fargs) for f in folds]
        log.info("%s done (load %s)", name, load_avg())
    if args.json:
        Path(args.json).write_text(json.dumps({n: [{k: v for k, v in o.items() if not k.startswith("_")}
                                                   for o in out] for n, out in scored.items()},
                                              indent=1, default=float))
    return folds_table(args.folds, args.max_group, scored, list(args.settings), kinds)


def folds_table(which: str, max_group: int, scored: dict[str, list[dict]], settings: list[str],
                kinds: dict[str, list[str]] | None = None) -> str:
    """The folds table from scored folds (``run_folds``' own, or its ``--json`` file read back:
    ``folds --from-json``); a group a fold kind does not have (leave-one-order-out: no absent species) is "—"."""
    def cell(t: dict, group: str, figure: str) -> str:
        value = t.get(group, {}).get(figure)
        return "—" if value is None else f"{value:.4f}"

    base = settings[0]
    table = ["| fold | keys | auto picks | setting (kind) | known: species right | absent sp.: named to species | "
             "absent sp.: wrong genus | absent genera / left-out order named | TAXXI TP | novelty AUROC | "
             "fit s | triage s | largest change vs " + base + " (points) |", "|---|" + "---|" * 12]
    worst_all = (0.0, "")
    for i, first in enumerate(scored[base]):
        b = _fold_values(first)
        for name in settings:
            o = scored[name][i]
            v = _fold_values(o)
            t = o["tools"]["ours"]
            diffs = {k: abs(v[k] - b[k]) * 100 for k in b if k in v and np.isfinite(v[k]) and np.isfinite(b[k])}
            k_w = max(diffs, key=lambda k: diffs[k])
            if diffs[k_w] > worst_all[0]:
                worst_all = (diffs[k_w], f"{o['fold']}, {name}: {k_w}")
            absent = cell(t, "absent_genus", "named_genus") if "absent_genus" in t else cell(t, "left_out_order",
                                                                                              "named_order")
            auto = "flat" if o["keys"] <= 20_000 else "ivfsq"
            kind = f" ({kinds[name][i]})" if kinds else ""
            table.append(
                f"| {o['fold']} | {o['keys']:,} | {auto} | {name}{kind} | {cell(t, 'known', 'species_right')} | "
                f"{cell(t, 'absent_species', 'named_species')} | {cell(t, 'absent_species', 'genus_wrong')} | "
                f"{absent} | {t['taxxi']['TP']:.4f} | {o['novelty']['auroc']:.4f} | {o['ours_seconds']['fit']} | "
                f"{o['ours_seconds']['triage']} | " + ("—" if name == base else f"{diffs[k_w]:.2f} ({k_w})") + " |")
    return (f"folds: {which} (bench_folds.make_folds, max group {max_group}, seed 0, peers skipped); "
            f"every figure of 'ours' per group (bench_folds.group_figures), TAXXI classes and novelty AUROC "
            f"compared with '{base}'\n\n" + "\n".join(table)
            + f"\n\nlargest change anywhere: {worst_all[0]:.2f} points ({worst_all[1]})")


# -- child processes under /usr/bin/time -v -----------------------------------------------------------------
def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``: wall seconds, peak RSS, exit code, stderr tail."""
    t = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = [float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)]
    return {"cmd": " ".join(cmd), "rc": proc.returncode, "wall_s": round(wall, 1), "cpu_s": round(sum(cpu), 1),
            "peak_rss_mb": round(int(rss.group(1)) / 1024) if rss else None, "load": load_avg(),
            "stderr_tail": proc.stderr.strip().splitlines()[-25:] if proc.returncode else []}


def _cli() -> list[str]:
    return [sys.executable, "-m", "biodiscover.cli"]


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def run_build(args) -> dict:
    out = Path(args.bundle)
    if out.exists():
        shutil.rmtree(out)
    r = timed([*_cli(), "build-reference", "--data", str(args.data), "--out", str(out), "--keys", args.keys, "-q"])
    r["bundle_mb"] = round(dir_size(out) / 2**20) if out.exists() else None
    return r


def run_triage(args) -> dict:
    results = Path(args.results)
    cmd = [*_cli(), "triage", "--input", str(args.input), "--model", str(args.bundle), "--results", str(results),
           "-q", "--json"]
    if args.db:
        cmd += ["--db", str(args.db)]
    r = timed(cmd)
    r["specimens"] = sum(1 for _ in results.open()) if results.exists() else None
    return r


# -- synthetic reference -----------------------------------------------------------------------------------
def make_synthetic(data: Path, n_keys: int, out_csv: Path, n_queries: int, seed: int = 0) -> Path:
    """A BIOSCAN-layout CSV of about ``n_keys`` synthetic keys (``train``), calibration rows (``val``: one
    specimen of every 10th species; ``val_unseen``: every 500th species, absent from the keys) and
    ``n_queries`` queries (``test``).

    Species are made from real dev barcodes: each real species seeds synthetic species
    (3-8 % of sites mutated from one of its barcodes), each synthetic species gets keys
    0-1 % from its own centre, so the reference has the crowded, structured neighbourhoods
    of real COI data at any size. Rows are streamed to the file in blocks.
    """
    from bench_dev import load_clean

    rng = np.random.default_rng(seed)
    df = load_clean(data)
    df = df[df.species != ""]
    seeds = df.groupby("species").head(1).reset_index(drop=True)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    cols = ["processid", "order", "family", "subfamily", "genus", "species", "dna_barcode", "split"]
    per_species = 40
    n_species = int(np.ceil((n_keys + n_queries) / per_species))
    written = 0
    with out_csv.open("w") as fh:
        fh.write(",".join(cols) + "\n")
        for s in range(n_species):
            src = seeds.iloc[s % len(seeds)]
            centre = np.frombuffer(src.seq.encode(), dtype=np.uint8).copy()
            hit = rng.random(centre.size) < rng.uniform(0.03, 0.08)
            centre[hit] = rng.choice(bases, int(hit.sum()))
            name = f"{src.genus} syn{s}"
            rows = []
            novel = s % 500 == 499  # a species only the calibration sees (absent from the keys)
            for j in range(per_species):
                seq = centre.copy()
                hit = rng.random(seq.size) < rng.uniform(0.0, 0.01)
                seq[hit] = rng.choice(bases, int(hit.sum()))
                if written >= n_keys:
                    split = "test"
                elif novel:
                    split = "val_unseen"
                else:
                    split = "val" if j == 0 and s % 10 == 0 else "train"
                rows.append(f"S{written:08d},{src.order},{src.family},{src['subfamily']},{src.genus},{name},"
                            f"{seq.tobytes().decode()},{split}")
                written += 1
                if written >= n_keys + n_queries:
                    break
            fh.write("\n".join(rows) + "\n")
            if written >= n_keys + n_queries:
                break
    return out_csv


# -- Ray ---------------------------------------------------------------------------------------------------
def run_ray(args) -> str:
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.bundle import Bundle
    from biodiscover.storage.collections import read_collection
    from biodiscover.workflows.executors import ExecutorConfig, ExecutorModel, make_executor

    specimens = read_collection(args.input).specimens[: args.n]
    t, c = time.perf_counter(), time.process_time()
    model = DiscoveryModel.from_bundle(Bundle.open(args.bundle))
    load = (time.perf_counter() - t, time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    local = model.triage(specimens)
    rows = [("local (in-process; identities in forked workers)", time.perf_counter() - t, time.process_time() - c)]
    model.reference_.close()
    t = time.perf_counter()
    ex = make_executor(ExecutorConfig(kind="ray", num_cpus=args.cpus, shards=args.shards))
    start = time.perf_counter() - t
    try:
        t, c = time.perf_counter(), time.process_time()
        wrapped = ExecutorModel(model, ex, batch_size=args.batch)
        shard_s = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        remote = wrapped.triage(specimens)
        rows.append((f"Ray, {args.cpus} CPUs, {args.shards} index shards (sharding {shard_s:.1f} s not included)",
                     time.perf_counter() - t, time.process_time() - c))
    finally:
        ex.close()
    same = sum(a.to_dict() == b.to_dict() for a, b in zip(local, remote))
    table = ["| path | wall s | driver CPU s | specimens/s |", "|---|---|---|---|"]
    table += [f"| {n} | {w:.1f} | {cpu:.1f} | {len(specimens) / w:,.0f} |" for n, w, cpu in rows]
    return (f"bundle {args.bundle} ({len(model.reference_):,} keys, {model.index_.kind_}), {len(specimens):,} "
            f"specimens; model load {load[0]:.1f} s wall / {load[1]:.1f} s CPU; Ray start {start:.1f} s\n\n"
            + "\n".join(table) + f"\n\nidentical results: {same} of {len(local)}")


# -- vsearch SINTAX ----------------------------------------------------------------------------------------
def run_sintax(args) -> str:
    from bench_dev import _sintax_header, load_clean, write_fasta

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    df = load_clean(args.data)
    keys = df[df.split == "train"].sample(args.n_keys, random_state=0)
    queries = df[df.split.isin(["test", "test_unseen"])].sample(args.n_queries, random_state=0)
    # our inputs: a BIOSCAN-layout CSV (keys as train; val/val_unseen/other_heldout samples to calibrate)
    calib = df[df.split.isin(["val", "val_unseen"])].sample(min(600, args.n_keys // 4), random_state=0)
    outl = df[df.split == "other_heldout"].sample(300, random_state=0)
    pd.concat([keys, calib, outl]).drop(columns=["seq"]).to_csv(work / "keys.csv", index=False)
    queries[["processid", "dna_barcode"]].to_csv(work / "queries.csv", index=False)
    write_fasta(work / "keys.fa", keys.processid, keys.seq, [_sintax_header(r) for r in keys.to_dict("records")])
    write_fasta(work / "queries.fa", queries.processid, queries.seq)
    bundle = work / "bundle"
    rows = []
    if bundle.exists() and args.keep_bundle:
        log.info("reusing %s (--keep-bundle)", bundle)
    else:
        if bundle.exists():
            shutil.rmtree(bundle)
        build = timed([*_cli(), "build-reference", "--data", str(work / "keys.csv"), "--out", str(bundle),
                       "--calibration-keys", "", "-q"])
        rows.append(("biodiscover build-reference", build))
    def ours(name: str, env: dict | None, rep: int) -> tuple[str, dict]:
        return name, timed([*_cli(), "triage", "--input", str(work / "queries.csv"), "--model", str(bundle),
                            "--results", str(work / f"{name}{rep}.jsonl"), "-q", "--force"], env=env)

    baseline_env = None
    if args.baseline:  # the code before a change, run from its own tree (PYTHONPATH wins over the editable install)
        baseline_env = {**os.environ, "PYTHONPATH": str(args.baseline)}
    for rep in range(args.repeats):
        order = [("ours", None), ("baseline", baseline_env)] if baseline_env else [("ours", None)]
        if rep % 2:  # alternate which code runs first
            order.reverse()
        for name, r in (ours(name, env, rep) for name, env in order):
            label = "biodiscover triage (whole process)" if name == "ours" else "baseline triage (--baseline code)"
            rows.append((f"{label} #{rep + 1}", r))
        sintax = timed(["vsearch", "--sintax", str(work / "queries.fa"), "--db", str(work / "keys.fa"),
                        "--tabbedout", str(work / f"sintax{rep}.tsv"), "--sintax_cutoff", "0.8",
                        "--threads", str(args.threads), "--quiet"])
        rows.append((f"vsearch --sintax (database built in the run) #{rep + 1}", sintax))
    table = ["| step | wall s | CPU s (user + sys) | peak RSS MB | load (1, 5, 15 min) | exit |",
             "|---|---|---|---|---|---|"]
    table += [f"| {n} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']} | {r['load']} | {r['rc']} |"
              for n, r in rows]
    ours_r = [r for n, r in rows if n.startswith("biodiscover triage")]
    sin_r = [r for n, r in rows if n.startswith("vsearch")]
    base_r = [r for n, r in rows if n.startswith("baseline triage")]
    # every results file against the first one (byte for byte): a speed change must not change a result
    outputs = [work / f"{name}{rep}.jsonl" for rep in range(args.repeats) for name in ("ours", "baseline")
               if name == "ours" or base_r]
    first = (work / "ours0.jsonl").read_bytes() if (work / "ours0.jsonl").exists() else None
    same = sum(1 for f in outputs if f.exists() and f.read_bytes() == first)
    baseline_line = ""
    if base_r:
        bm = {key: float(np.median([r[key] for r in base_r])) for key in ("wall_s", "cpu_s")}
        bs = {key: float(np.median([r[key] for r in sin_r])) for key in ("wall_s", "cpu_s")}
        baseline_line = (f"\n\nbaseline code (median of {len(base_r)}): wall {bm['wall_s']:.1f} s (ratio "
                         f"{bm['wall_s'] / bs['wall_s']:.2f}×), CPU {bm['cpu_s']:.1f} s "
                         f"(ratio {bm['cpu_s'] / bs['cpu_s']:.2f}×)")
    best = {key: (min(r[key] for r in ours_r), min(r[key] for r in sin_r)) for key in ("wall_s", "cpu_s")}
    # the runs alternate (ours, SINTAX, ours, ...) under the same load: the medians are the figure to quote
    med = {key: (float(np.median([r[key] for r in ours_r])), float(np.median([r[key] for r in sin_r])))
           for key in ("wall_s", "cpu_s")}
    return (f"keys {len(keys):,} (train sample), queries {len(queries):,} (test + test_unseen sample)\n\n"
            + "\n".join(table) + f"\n\nmedian of {args.repeats} alternating pairs: wall ours {med['wall_s'][0]:.1f} s, "
            f"SINTAX {med['wall_s'][1]:.1f} s, ratio {med['wall_s'][0] / med['wall_s'][1]:.2f}×; CPU ours "
            f"{med['cpu_s'][0]:.1f} s, SINTAX {med['cpu_s'][1]:.1f} s, ratio {med['cpu_s'][0] / med['cpu_s'][1]:.2f}×"
            + f"\n\nbest of {args.repeats}: wall ours {best['wall_s'][0]} s, SINTAX "
            f"{best['wall_s'][1]} s, ratio {best['wall_s'][0] / best['wall_s'][1]:.2f}×; CPU ours "
            f"{best['cpu_s'][0]} s, SINTAX {best['cpu_s'][1]} s, ratio {best['cpu_s'][0] / best['cpu_s'][1]:.2f}×"
            + baseline_line + f"\n\nresults files byte-identical to ours0.jsonl: {same} of {len(outputs)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    data_default = REPO.parent / "shared" / "data" / "bold-insects-dev.csv.gz"
    r = sub.add_parser("recall")
    r.add_argument("--data", type=Path, default=data_default)
    r.add_argument("--key-splits", default="train+key_unseen+val+val_unseen+other_heldout")
    r.add_argument("--queries", type=int, default=2000)
    r.add_argument("--n-search", type=int, default=300)
    n = sub.add_parser("naming")
    n.add_argument("--data", type=Path, default=data_default)
    n.add_argument("--settings", nargs="*", default=None, help="substrings of the setting names to run")
    n.add_argument("--json", default=None)
    f = sub.add_parser("folds")
    f.add_argument("--data", type=Path, default=data_default)
    f.add_argument("--folds", default="per-order,loo")
    f.add_argument("--settings", nargs="+", default=list(FOLD_SETTINGS), choices=list(FOLD_SETTINGS))
    f.add_argument("--max-group", type=int, default=2500)
    f.add_argument("--work", type=Path, default=Path("/tmp/bench_scale_folds"))
    f.add_argument("--json", default=None)
    f.add_argument("--from-json", type=Path, default=None,
                   help="print the table of an earlier run's --json file instead of running the folds")
    b = sub.add_parser("build")
    b.add_argument("--data", type=Path, default=data_default)
    b.add_argument("--bundle", type=Path, required=True)
    b.add_argument("--keys", default="all")
    t = sub.add_parser("triage")
    t.add_argument("--input", type=Path, required=True)
    t.add_argument("--bundle", type=Path, required=True)
    t.add_argument("--results", type=Path, default=Path(tempfile.gettempdir()) / "bench_scale_results.jsonl")
    t.add_argument("--db", type=Path, default=None)
    s = sub.add_parser("synth")
    s.add_argument("--data", type=Path, default=data_default)
    s.add_argument("--keys", type=int, default=1_000_000)
    s.add_argument("--queries", type=int, default=5000)
    s.add_argument("--work", type=Path, default=Path("/tmp/bench_scale_synth"))
    s.add_argument("--only-data", action="store_true", help="write the synthetic CSV and stop")
    y = sub.add_parser("ray")
    y.add_argument("--bundle", type=Path, required=True)
    y.add_argument("--input", type=Path, required=True)
    y.add_argument("--n", type=int, default=4000)
    y.add_argument("--cpus", type=int, default=2)
    y.add_argument("--shards", type=int, default=2)
    y.add_argument("--batch", type=int, default=512)
    x = sub.add_parser("sintax")
    x.add_argument("--data", type=Path, default=data_default)
    x.add_argument("--work", type=Path, default=Path("/tmp/bench_scale_sintax"))
    x.add_argument("--n-keys", type=int, default=3706)
    x.add_argument("--n-queries", type=int, default=1666)
    x.add_argument("--threads", type=int, default=2)
    x.add_argument("--repeats", type=int, default=3)
    x.add_argument("--baseline", type=Path, default=None,
                   help="a folder holding biodiscover/<area> of the code before a change: each pair then also runs "
                        "that code's triage (alternating which goes first) and its ratio is printed")
    x.add_argument("--keep-bundle", action="store_true",
                   help="reuse --work's bundle when there is one (e.g. one built by an earlier commit whose "
                        "build is unchanged) instead of building it in the run")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    before = load_avg()
    t0 = time.perf_counter()
    if args.mode == "recall":
        text = run_recall(args)
    elif args.mode == "naming":
        text = run_naming(args)
    elif args.mode == "folds" and args.from_json:
        scored = json.loads(args.from_json.read_text())
        text = folds_table(args.folds, args.max_group, scored, [n for n in args.settings if n in scored])
    elif args.mode == "folds":
        text = run_folds(args)
    elif args.mode == "build":
        text = json.dumps(run_build(args), indent=1)
    elif args.mode == "triage":
        text = json.dumps(run_triage(args), indent=1)
    elif args.mode == "synth":
        args.work.mkdir(parents=True, exist_ok=True)
        csv = args.work / f"synthetic-{args.keys}.csv"
        if not csv.exists():
            t = time.perf_counter()
            make_synthetic(args.data, args.keys, csv, args.queries)
            log.info("wrote %s in %.0f s", csv, time.perf_counter() - t)
        if args.only_data:
            print(f"wrote {csv}")
            return 0
        queries = args.work / "queries.csv"
        # the test rows, read in chunks (the whole 1M-row table in pandas would take GBs in this process)
        parts = [c[c.split == "test"][["processid", "dna_barcode"]]
                 for c in pd.read_csv(csv, dtype=str, keep_default_na=False, chunksize=100_000,
                                      usecols=["processid", "dna_barcode", "split"])]
        pd.concat(parts).to_csv(queries, index=False)
        bundle = args.work / "bundle"
        if bundle.exists():
            shutil.rmtree(bundle)
        build = timed([*_cli(), "build-reference", "--data", str(csv), "--out", str(bundle), "--keys", "train",
                       "--calibration", "val+val_unseen", "--calibration-keys", "", "--outliers", "", "-q"])
        build["bundle_mb"] = round(dir_size(bundle) / 2**20) if bundle.exists() else None
        tri = timed([*_cli(), "triage", "--input", str(queries), "--model", str(bundle), "--results",
                     str(args.work / "results.jsonl"), "-q"])
        text = json.dumps({"build": build, "triage": tri}, indent=1)
    elif args.mode == "ray":
        text = run_ray(args)
    else:
        text = run_sintax(args)
    print(text)
    print(f"\nload average before {before}, after {load_avg()}; {time.perf_counter() - t0:.0f} s; "
          f"{os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
