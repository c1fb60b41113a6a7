"""Real-data benchmark: our discovery engine vs BLAST top hit and vsearch SINTAX.

One script, one run, the same cleaned split for every tool (../shared/data/README.md
protocol): barcodes upper-cased, gaps removed, non-ACGTN → N, first 660 nt, N runs
trimmed, >= 200 nt kept. Keys = train; queries = test (known species) and
test_unseen (new species of known genera). Our engine is calibrated on val,
val_unseen and a seeded sample of other_heldout (never on test).

Usage::

    bash benchmarks/install_peers.sh      # ncbi-blast+ and vsearch from Debian
    python benchmarks/bench_dev.py --data ../shared/data/bold-insects-dev.csv.gz \
        --work /tmp/bench_dev --out benchmarks/bench_dev.json

Prints a markdown table and writes every figure (and the wall time of each tool)
as JSON. ``--skip-blast`` / ``--skip-sintax`` leave a peer out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from discovery.engine import DiscoveryModel, EngineConfig  # noqa: E402
from discovery.metrics import novelty_scores, rank_errors  # noqa: E402
from storage.records import RANKS, Specimen  # noqa: E402
from storage.validation import clean_barcode  # noqa: E402

log = logging.getLogger("bench_dev")
_NON_ACGTN = re.compile("[^ACGTN]")


def load_clean(path: Path) -> pd.DataFrame:
    """The dev file with the README's cleaning protocol applied (column ``seq``)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df["seq"] = [clean_barcode(_NON_ACGTN.sub("N", clean_barcode(s, None)), 660) for s in df["dna_barcode"]]
    df = df[df["seq"].str.len() >= 200].reset_index(drop=True)
    df["dna_barcode"] = df["seq"]
    return df


def specimens(df: pd.DataFrame) -> list[Specimen]:
    cols = ["processid", "order", "family", "subfamily", "genus", "species", "dna_bin", "dna_barcode", "split"]
    return [Specimen.from_row(r) for r in df[cols].to_dict("records")]


def reference_taxa(df: pd.DataFrame) -> dict[str, set[str]]:
    return {r: set(v for v in df[r] if v) for r in RANKS}


def truth(df: pd.DataFrame) -> list[dict[str, str | None]]:
    return [{r: (row[r] or None) for r in RANKS} for row in df[list(RANKS)].to_dict("records")]


def summarise(name: str, test: pd.DataFrame, unseen: pd.DataFrame, keys: pd.DataFrame,
              pred_test: list[dict], pred_unseen: list[dict], top_test: list[dict], top_unseen: list[dict],
              novelty_test: np.ndarray | None, novelty_unseen: np.ndarray | None, seconds: float) -> dict:
    """Every benchmark figure for one tool.

    ``pred_*`` = named lineage (down to the deepest confident rank; deeper ranks
    None), ``top_*`` = the tool's full best-guess lineage (1-NN / top hit).
    """
    taxa = reference_taxa(keys)
    out: dict = {"tool": name, "seconds": round(seconds, 1)}
    out["seen_species_accuracy_top1"] = float(np.mean([p.get("species") == t for p, t in zip(top_test, test["species"])]))
    out["seen_named_species_correct"] = float(np.mean([p.get("species") == t for p, t in zip(pred_test, test["species"])]))
    out["seen_named_to_species"] = float(np.mean([bool(p.get("species")) for p in pred_test]))
    out["unseen_genus_accuracy_top1"] = float(np.mean([p.get("genus") == t for p, t in zip(top_unseen, unseen["genus"])]))
    out["unseen_named_to_species"] = float(np.mean([bool(p.get("species")) for p in pred_unseen]))
    out["unseen_named_correct_genus"] = float(np.mean([p.get("genus") == t for p, t in zip(pred_unseen, unseen["genus"])]))
    out["unseen_named_wrong_genus"] = float(np.mean([bool(p.get("genus")) and p.get("genus") != t
                                                      for p, t in zip(pred_unseen, unseen["genus"])]))
    if novelty_test is not None and novelty_unseen is not None:
        y = np.r_[np.zeros(len(novelty_test)), np.ones(len(novelty_unseen))]
        out["novelty"] = novelty_scores(y, np.r_[novelty_test, novelty_unseen])
    errs = rank_errors(truth(test) + truth(unseen), pred_test + pred_unseen, taxa)
    out["rank_errors"] = {r: e.as_dict() for r, e in errs.items()}
    return out


# -- our engine ------------------------------------------------------------------------------------
def run_ours(df: pd.DataFrame, outliers: int, seed: int, bundle: Path | None) -> tuple[dict, dict]:
    keys = df[df.split == "train"]
    calib = df[df.split.isin(["val", "val_unseen"])]
    oh = df[df.split == "other_heldout"]
    oh = oh.sample(n=min(outliers, len(oh)), random_state=seed)
    model = DiscoveryModel(EngineConfig())
    t0 = time.perf_counter()
    model.fit(specimens(keys), specimens(calib), specimens(oh))
    fit_s = time.perf_counter() - t0
    if bundle is not None:
        model.save(bundle, overwrite=True)
    res = {}
    times = {}
    for split in ("test", "test_unseen"):
        q = df[df.split == split]
        t0 = time.perf_counter()
        res[split] = model.triage(specimens(q))
        times[split] = time.perf_counter() - t0
    named = {s: [{r: (x.labels[r] if x.deepest_rank and RANKS.index(r) <= RANKS.index(x.deepest_rank) else None)
                  for r in RANKS} for x in res[s]] for s in res}
    top = {s: [dict(x.labels) for x in res[s]] for s in res}
    nov = {s: np.array([x.novelty for x in res[s]]) for s in res}
    out = summarise("biodiscover (6-mer FAISS + edlib identity, calibrated)", df[df.split == "test"],
                    df[df.split == "test_unseen"], keys, named["test"], named["test_unseen"], top["test"],
                    top["test_unseen"], nov["test"], nov["test_unseen"], sum(times.values()))
    out["fit_seconds"] = round(fit_s, 1)
    out["thresholds"] = model.classifier_.thresholds_
    # the plain -identity score too, for comparison with BLAST's
    ident = {s: np.array([x.identity for x in res[s]]) for s in res}
    y = np.r_[np.zeros(len(ident["test"])), np.ones(len(ident["test_unseen"]))]
    out["novelty_neg_identity"] = novelty_scores(y, -np.r_[ident["test"], ident["test_unseen"]])
    return out, {"model": model}


# -- BLAST -----------------------------------------------------------------------------------------
def write_fasta(path: Path, ids, seqs, headers=None) -> None:
    with path.open("w") as fh:
        for i, (pid, s) in enumerate(zip(ids, seqs)):
            fh.write(f">{headers[i] if headers is not None else pid}\n{s}\n")


def run_blast(df: pd.DataFrame, work: Path, threads: int) -> dict:
    keys = df[df.split == "train"]
    test = df[df.split == "test"]
    unseen = df[df.split == "test_unseen"]
    q = pd.concat([test, unseen])
    write_fasta(work / "keys.fa", keys.processid, keys.seq)
    write_fasta(work / "queries.fa", q.processid, q.seq)
    t0 = time.perf_counter()
    subprocess.run(["makeblastdb", "-in", str(work / "keys.fa"), "-dbtype", "nucl", "-out", str(work / "keys")],
                   check=True, capture_output=True)
    subprocess.run(["blastn", "-query", str(work / "queries.fa"), "-db", str(work / "keys"), "-outfmt",
                    "6 qseqid sseqid pident length bitscore", "-max_target_seqs", "5", "-num_threads", str(threads),
                    "-out", str(work / "blast.tsv")], check=True)
    seconds = time.perf_counter() - t0
    hits = pd.read_csv(work / "blast.tsv", sep="\t", header=None, names=["q", "s", "pident", "length", "bitscore"],
                       dtype={"q": str, "s": str})
    top = hits.groupby("q", sort=False).first()  # blastn lists hits best-first (by e-value / bitscore)
    lin = {row["processid"]: {r: row[r] or None for r in RANKS} for row in keys.to_dict("records")}
    def calls(frame):
        full = [lin[top.loc[p, "s"]] if p in top.index else {r: None for r in RANKS} for p in frame.processid]
        ident = np.array([top.loc[p, "pident"] / 100 if p in top.index else 0.0 for p in frame.processid])
        return full, ident
    ft, it = calls(test)
    fu, iu = calls(unseen)
    # the top hit names every rank: that is BLAST-top-hit's "deepest rank" by construction
    out = summarise("BLAST top hit (blastn 2.12, megablast default)", test, unseen, keys, ft, fu, ft, fu, -it, -iu,
                    seconds)
    return out


# -- SINTAX ----------------------------------------------------------------------------------------
def _sintax_header(row) -> str:
    parts = []
    for code, rank in (("o", "order"), ("f", "family"), ("g", "genus"), ("s", "species")):
        v = row[rank]
        if v:
            parts.append(f"{code}:{v.replace(',', '_').replace(' ', '_')}")
    return f"{row['processid']};tax={','.join(parts)};"


def run_sintax(df: pd.DataFrame, work: Path, threads: int, cutoff: float) -> dict:
    keys = df[df.split == "train"]
    test = df[df.split == "test"]
    unseen = df[df.split == "test_unseen"]
    q = pd.concat([test, unseen])
    write_fasta(work / "sintax_keys.fa", keys.processid, keys.seq, [_sintax_header(r) for r in keys.to_dict("records")])
    write_fasta(work / "queries.fa", q.processid, q.seq)
    t0 = time.perf_counter()
    subprocess.run(["vsearch", "--sintax", str(work / "queries.fa"), "--db", str(work / "sintax_keys.fa"),
                    "--tabbedout", str(work / "sintax.tsv"), "--sintax_cutoff", str(cutoff), "--threads",
                    str(threads), "--randseed", "1"], check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    code = {"o": "order", "f": "family", "g": "genus", "s": "species"}
    back = {r: {v.replace(",", "_").replace(" ", "_"): v for v in keys[r] if v} for r in code.values()}
    named: dict[str, dict] = {}
    full: dict[str, dict] = {}
    for line in (work / "sintax.tsv").read_text().splitlines():
        f = line.split("\t")
        pid = f[0]
        def parse(field: str) -> dict:
            d = {r: None for r in RANKS}
            for part in filter(None, field.split(",")):
                c, _, rest = part.partition(":")
                name = rest.split("(")[0]
                if c in code:
                    d[code[c]] = back[code[c]].get(name, name)
            return d
        full[pid] = parse(f[1] if len(f) > 1 else "")
        named[pid] = parse(f[3] if len(f) > 3 else "")
    blank = {r: None for r in RANKS}
    pt = [named.get(p, blank) for p in test.processid]
    pu = [named.get(p, blank) for p in unseen.processid]
    ft = [full.get(p, blank) for p in test.processid]
    fu = [full.get(p, blank) for p in unseen.processid]
    # SINTAX has no subfamily: compare only ranks it names
    out = summarise(f"vsearch SINTAX, cutoff {cutoff}", test, unseen, keys, pt, pu, ft, fu, None, None, seconds)
    out["rank_errors"].pop("subfamily", None)
    return out


def markdown(results: list[dict]) -> str:
    rows = [
        ("seen species accuracy on test (top-1 / 1-NN)", "seen_species_accuracy_top1"),
        ("test named to the correct species (deepest confident rank)", "seen_named_species_correct"),
        ("genus accuracy on test_unseen (top-1 / 1-NN)", "unseen_genus_accuracy_top1"),
        ("test_unseen named to a (necessarily wrong) species", "unseen_named_to_species"),
        ("test_unseen named to the correct genus", "unseen_named_correct_genus"),
        ("test_unseen named to a wrong genus", "unseen_named_wrong_genus"),
        ("novelty AUROC, test vs test_unseen", ("novelty", "auroc")),
        ("novelty FPR95, test vs test_unseen", ("novelty", "fpr95")),
        ("wall time of test + test_unseen queries, s", "seconds"),
    ]
    head = "| figure | " + " | ".join(r["tool"] for r in results) + " |\n|---|" + "---|" * len(results) + "\n"
    body = ""
    for label, key in rows:
        vals = []
        for r in results:
            v = r.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else r.get(key)
            vals.append("—" if v is None else (f"{v:.3f}" if isinstance(v, float) and key != "seconds" else f"{v}"))
        body += f"| {label} | " + " | ".join(vals) + " |\n"
    return head + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_dev"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "bench_dev.json")
    ap.add_argument("--outliers", type=int, default=3000, help="other_heldout specimens sampled for calibration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sintax-cutoff", type=float, default=0.8)
    ap.add_argument("--skip-blast", action="store_true")
    ap.add_argument("--skip-sintax", action="store_true")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--bundle", type=Path, default=None, help="also save our fitted model bundle here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import faiss
    faiss.omp_set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    df = load_clean(args.data)
    log.info("cleaned records per split: %s", df.split.value_counts().to_dict())
    results = []
    if not args.skip_ours:
        ours, _ = run_ours(df, args.outliers, args.seed, args.bundle)
        results.append(ours)
        log.info("ours: %s", json.dumps({k: v for k, v in ours.items() if k != "rank_errors"}))
    if not args.skip_blast:
        if shutil.which("blastn") is None:
            raise SystemExit("blastn not found: run benchmarks/install_peers.sh")
        results.append(run_blast(df, args.work, args.threads))
    if not args.skip_sintax:
        if shutil.which("vsearch") is None:
            raise SystemExit("vsearch not found: run benchmarks/install_peers.sh")
        results.append(run_sintax(df, args.work, args.threads, args.sintax_cutoff))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, no GPU used"
    payload = {"data": str(args.data), "machine": machine, "counts": df.split.value_counts().to_dict(),
               "results": results}
    args.out.write_text(json.dumps(payload, indent=2, default=float))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
