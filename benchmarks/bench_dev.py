"""Real-data benchmark: our discovery engine vs BLAST top hit, vsearch SINTAX and
vsearch --cluster_size, all in one invocation on the same cleaned split.

Protocol (../shared/data/README.md): barcodes upper-cased, gaps removed,
non-ACGTN → N, first 660 nt, N runs trimmed, >= 200 nt kept. Keys = train;
queries = test (known species) and test_unseen (new species of known genera).
other_heldout (species of genera absent from every split) is split by species,
seeded: half A calibrates our engine (with val and val_unseen; never test),
half B is held out to measure over-classification of *absent genera* (SINTAX is
run on it too; BLAST's top hit names every specimen to a genus by construction).

Every tool's wall time is measured in the same run: our fit (index,
calibration, barcode gap) and triage, makeblastdb and blastn, vsearch --sintax,
vsearch --derep_fulllength + --cluster_size at 97% and 98% on test_unseen.
Candidate species: our product pipeline (test + test_unseen triaged, the
novel-flagged specimens clustered under their parent taxon with the barcode
gap learned from the keys) vs vsearch's clusters, both scored on the
test_unseen specimens we flag novel, and vsearch also on all test_unseen.

BLAST settings: ``blastn`` 2.12 default task (megablast), ``-max_target_seqs 50``
(the best hit is the maximum bitscore among them: with 5, 1 in 100 queries got a
worse top hit in a check), ``-num_threads`` = ``--threads``, database built
once. Megablast costs ~0.25 s CPU per COI query here: most of it is gapped
extension against the thousands of near-identical keys that share seeds
(``-ungapped`` is 4x faster, ``-word_size 48`` 10x, but both change its answers).

Usage::

    bash benchmarks/install_peers.sh      # ncbi-blast+ and vsearch from Debian
    python benchmarks/bench_dev.py --data ../shared/data/bold-insects-dev.csv.gz \
        --work /tmp/bench_dev --out /tmp/bench_dev/bench_dev.json

Prints markdown tables and writes every figure as JSON. ``--skip-blast`` /
``--skip-sintax`` / ``--skip-cluster`` / ``--skip-curve`` leave parts out.
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
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig  # noqa: E402
from biodiscover.discovery.naming import deepest_confident  # noqa: E402
from biodiscover.discovery.metrics import clustering_scores, novelty_scores, rank_errors  # noqa: E402
from biodiscover.storage.records import RANKS, Specimen  # noqa: E402
from biodiscover.storage.validation import clean_barcode  # noqa: E402

log = logging.getLogger("bench_dev")
_NON_ACGTN = re.compile("[^ACGTN]")
#: naming levels of the trade-off curve (P(right) a rank needs)
CURVE_LEVELS = (0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)


def load_clean(path: Path) -> pd.DataFrame:
    """The dev file with the README's cleaning protocol applied (column ``seq``)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df["seq"] = [clean_barcode(_NON_ACGTN.sub("N", clean_barcode(s, None)), 660) for s in df["dna_barcode"]]
    df = df[df["seq"].str.len() >= 200].reset_index(drop=True)
    df["dna_barcode"] = df["seq"]
    return df


def split_outliers(df: pd.DataFrame, n_calib: int, n_eval: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """other_heldout split by species (seeded): (calibration sample, held-out evaluation sample)."""
    oh = df[df.split == "other_heldout"]
    species = np.array(sorted(set(oh.species)))
    rng = np.random.default_rng(seed)
    half = set(rng.choice(species, len(species) // 2, replace=False).tolist())
    a, b = oh[oh.species.isin(half)], oh[~oh.species.isin(half)]
    return (a.sample(n=min(n_calib, len(a)), random_state=seed).sort_index(),
            b.sample(n=min(n_eval, len(b)), random_state=seed).sort_index())


def specimens(df: pd.DataFrame) -> list[Specimen]:
    cols = ["processid", "order", "family", "subfamily", "genus", "species", "dna_bin", "dna_barcode", "split"]
    cols += [c for c in ("country",) if c in df.columns]
    return [Specimen.from_row(r) for r in df[cols].to_dict("records")]


def reference_taxa(df: pd.DataFrame) -> dict[str, set[str]]:
    return {r: set(v for v in df[r] if v) for r in RANKS}


def truth(df: pd.DataFrame) -> list[dict[str, str | None]]:
    return [{r: (row[r] or None) for r in RANKS} for row in df[list(RANKS)].to_dict("records")]


def absent_genus_figures(heldout: pd.DataFrame, named: list[dict], keys: pd.DataFrame) -> dict:
    """Over-classification of held-out absent genera: named to genus / to an absent family's family."""
    fam_absent = ~heldout["family"].isin(reference_taxa(keys)["family"]).to_numpy()
    out = {"heldout_n": len(named), "heldout_named_to_genus": float(np.mean([bool(p.get("genus")) for p in named])),
           "heldout_named_to_species": float(np.mean([bool(p.get("species")) for p in named])),
           "heldout_absent_family_n": int(fam_absent.sum())}
    if fam_absent.any():
        out["heldout_absent_family_named_to_family"] = float(np.mean(
            [bool(p.get("family")) for p, a in zip(named, fam_absent) if a]))
    return out


def summarise(name: str, test: pd.DataFrame, unseen: pd.DataFrame, keys: pd.DataFrame,
              pred_test: list[dict], pred_unseen: list[dict], top_test: list[dict], top_unseen: list[dict],
              novelty_test: np.ndarray | None, novelty_unseen: np.ndarray | None, seconds: float) -> dict:
    """Every benchmark figure for one tool.

    ``pred_*`` = named lineage (down to the deepest confident rank; deeper ranks
    None), ``top_*`` = the tool's full best-guess lineage (1-NN / top hit).
    """
    taxa = reference_taxa(keys)
    out: dict = {"tool": name, "seconds": round(seconds, 1)}
    out["seen_species_accuracy_top1"] = float(np.mean([p.get("species") == t
                                                      for p, t in zip(top_test, test["species"])]))
    out["seen_named_species_correct"] = float(np.mean([p.get("species") == t
                                                      for p, t in zip(pred_test, test["species"])]))
    out["seen_named_to_species"] = float(np.mean([bool(p.get("species")) for p in pred_test]))
    out["unseen_genus_accuracy_top1"] = float(np.mean([p.get("genus") == t
                                                      for p, t in zip(top_unseen, unseen["genus"])]))
    out["unseen_named_to_species"] = float(np.mean([bool(p.get("species")) for p in pred_unseen]))
    out["unseen_named_correct_genus"] = float(np.mean([p.get("genus") == t
                                                      for p, t in zip(pred_unseen, unseen["genus"])]))
    out["unseen_named_wrong_genus"] = float(np.mean([bool(p.get("genus")) and p.get("genus") != t
                                                      for p, t in zip(pred_unseen, unseen["genus"])]))
    out["unseen_named_correct_family"] = float(np.mean([p.get("family") == t
                                                         for p, t in zip(pred_unseen, unseen["family"])]))
    if novelty_test is not None and novelty_unseen is not None:
        y = np.r_[np.zeros(len(novelty_test)), np.ones(len(novelty_unseen))]
        out["novelty"] = novelty_scores(y, np.r_[novelty_test, novelty_unseen])
    errs = rank_errors(truth(test) + truth(unseen), pred_test + pred_unseen, taxa)
    out["rank_errors"] = {r: e.as_dict() for r, e in errs.items()}
    return out


def named_lineages(results) -> list[dict]:
    return [{r: (x.labels[r] if x.deepest_rank and RANKS.index(r) <= RANKS.index(x.deepest_rank) else None)
             for r in RANKS} for x in results]


# -- our engine ------------------------------------------------------------------------------------
def run_ours(df: pd.DataFrame, oh_calib: pd.DataFrame, oh_eval: pd.DataFrame, bundle: Path | None,
             curve: bool, cluster: bool) -> tuple[dict, dict]:
    from biodiscover.discovery.proposals import candidate_species

    keys = df[df.split == "train"]
    calib = df[df.split.isin(["val", "val_unseen"])]
    test, unseen = df[df.split == "test"], df[df.split == "test_unseen"]
    model = DiscoveryModel(EngineConfig())
    t0 = time.perf_counter()
    model.fit(specimens(keys), specimens(calib), specimens(oh_calib))
    fit_s = time.perf_counter() - t0
    if bundle is not None:
        model.save(bundle, overwrite=True)
    res, times = {}, {}
    for split, q in (("test", test), ("test_unseen", unseen), ("heldout", oh_eval)):
        t0 = time.perf_counter()
        res[split] = model.triage(specimens(q))
        times[split] = time.perf_counter() - t0
    named = {s: named_lineages(res[s]) for s in res}
    top = {s: [dict(x.labels) for x in res[s]] for s in res}
    nov = {s: np.array([x.novelty for x in res[s]]) for s in res}
    out = summarise("biodiscover (6-mer FAISS + edlib identity, calibrated ranks)", test, unseen, keys,
                    named["test"], named["test_unseen"], top["test"], top["test_unseen"], nov["test"],
                    nov["test_unseen"], times["test"] + times["test_unseen"])
    out.update(absent_genus_figures(oh_eval, named["heldout"], keys))
    out["heldout_seconds"] = round(times["heldout"], 1)
    out["fit_seconds"] = round(fit_s, 1)
    out["naming_support"] = model.naming_.support_
    out["naming_expected"] = model.naming_.expected_.get(f"{model.config.naming.level}")
    gap = model.barcode_gap_
    out["barcode_gap"] = None if gap is None else {"threshold": gap.threshold_, "linkage": gap.linkage_,
                                                   "ami_on_keys": gap.score_}
    ident = {s: np.array([x.identity for x in res[s]]) for s in res}
    y = np.r_[np.zeros(len(ident["test"])), np.ones(len(ident["test_unseen"]))]
    out["novelty_neg_identity"] = novelty_scores(y, -np.r_[ident["test"], ident["test_unseen"]])
    extra: dict = {"model": model, "flagged": [s.processid for s, r in zip(unseen.itertuples(), res["test_unseen"])
                                               if r.is_novel]}
    if cluster:
        t0 = time.perf_counter()
        props = candidate_species(specimens(test) + specimens(unseen), res["test"] + res["test_unseen"],
                                  threshold=gap)
        out["candidates_seconds"] = round(time.perf_counter() - t0, 1)
        cand = {m.processid: i for i, p in enumerate(props) for m in p.members}
        sp = dict(zip(unseen.processid, unseen.species))
        pids = [p for p in extra["flagged"] if p in cand]
        out["candidate_species"] = {**clustering_scores([sp[p] for p in pids], [cand[p] for p in pids]),
                                    "scope": "test_unseen specimens flagged novel", "n_proposals": len(props)}
        extra["flagged"] = pids
    if curve:
        out["curve"] = tradeoff_curve(model, res, test, unseen, oh_eval, keys)
    return out, extra


def tradeoff_curve(model: DiscoveryModel, res: dict, test: pd.DataFrame, unseen: pd.DataFrame,
                   oh_eval: pd.DataFrame, keys: pd.DataFrame) -> list[dict]:
    """The same triage re-decided at several naming levels (P(right) a rank needs)."""
    rows = []
    for level in CURVE_LEVELS:
        named: dict[str, list] = {}
        for split, results in res.items():
            named[split] = []
            for x in results:
                d = deepest_confident(x.labels, x.confidence, level, model.naming_.walk_optional)
                named[split].append({r: (x.labels[r] if d and RANKS.index(r) <= RANKS.index(d) else None)
                                     for r in RANKS})
        row = {"level": level}
        s = summarise("curve", test, unseen, keys, named["test"], named["test_unseen"], named["test"],
                      named["test_unseen"], None, None, 0.0)
        for k in ("seen_named_species_correct", "unseen_named_to_species", "unseen_named_correct_genus",
                  "unseen_named_wrong_genus", "unseen_named_correct_family"):
            row[k] = s[k]
        row.update(absent_genus_figures(oh_eval, named["heldout"], keys))
        rows.append(row)
        log.info("curve: %s", row)
    return rows


# -- BLAST -----------------------------------------------------------------------------------------
def write_fasta(path: Path, ids, seqs, headers=None) -> None:
    with path.open("w") as fh:
        for i, (pid, s) in enumerate(zip(ids, seqs)):
            fh.write(f">{headers[i] if headers is not None else pid}\n{s}\n")


def run_blast(df: pd.DataFrame, work: Path, threads: int, max_target_seqs: int = 50) -> dict:
    keys = df[df.split == "train"]
    test = df[df.split == "test"]
    unseen = df[df.split == "test_unseen"]
    q = pd.concat([test, unseen])
    write_fasta(work / "keys.fa", keys.processid, keys.seq)
    write_fasta(work / "queries.fa", q.processid, q.seq)
    t0 = time.perf_counter()
    subprocess.run(["makeblastdb", "-in", str(work / "keys.fa"), "-dbtype", "nucl", "-out", str(work / "keys")],
                   check=True, capture_output=True)
    db_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    subprocess.run(["blastn", "-task", "megablast", "-query", str(work / "queries.fa"), "-db", str(work / "keys"),
                    "-outfmt", "6 qseqid sseqid pident length bitscore", "-max_target_seqs", str(max_target_seqs),
                    "-num_threads", str(threads), "-out", str(work / "blast.tsv")], check=True)
    search_s = time.perf_counter() - t1
    hits = pd.read_csv(work / "blast.tsv", sep="\t", header=None, names=["q", "s", "pident", "length", "bitscore"],
                       dtype={"q": str, "s": str})
    # the top hit = highest bitscore (first listed among ties)
    top = hits.loc[hits.groupby("q", sort=False)["bitscore"].idxmax()].set_index("q")
    lin = {row["processid"]: {r: row[r] or None for r in RANKS} for row in keys.to_dict("records")}

    def calls(frame):
        full = [lin[top.loc[p, "s"]] if p in top.index else {r: None for r in RANKS} for p in frame.processid]
        ident = np.array([top.loc[p, "pident"] / 100 if p in top.index else 0.0 for p in frame.processid])
        return full, ident

    ft, it = calls(test)
    fu, iu = calls(unseen)
    # the top hit names every rank: that is BLAST-top-hit's "deepest rank" by construction
    out = summarise(f"BLAST top hit (blastn 2.12 megablast, max_target_seqs {max_target_seqs})", test, unseen,
                    keys, ft, fu, ft, fu, -it, -iu, db_s + search_s)
    out["makeblastdb_seconds"] = round(db_s, 1)
    out["blastn_seconds"] = round(search_s, 1)
    out["queries_without_hit"] = int(sum(p not in top.index for p in q.processid))
    return out


# -- SINTAX ----------------------------------------------------------------------------------------
def _sintax_header(row) -> str:
    parts = []
    for code, rank in (("o", "order"), ("f", "family"), ("g", "genus"), ("s", "species")):
        v = row[rank]
        if v:
            parts.append(f"{code}:{v.replace(',', '_').replace(' ', '_')}")
    return f"{row['processid']};tax={','.join(parts)};"


def sintax_command(query: Path, db: Path, out: Path, cutoff: float) -> list[str]:
    """vsearch ``--sintax`` on one thread, seeded. Why one: its bootstrap draws random k-mer subsamples, and
    with more threads the seed does not make them reproducible — on the per-order Coleoptera fold (3 Dec,
    vsearch v2.22.1), two runs at ``--threads 2 --randseed 1`` gave different calls on the same inputs, two at
    ``--threads 1`` the same. A peer's figure must be a fact about the peer, not about the machine's load."""
    return ["vsearch", "--sintax", str(query), "--db", str(db), "--tabbedout", str(out), "--sintax_cutoff",
            str(cutoff), "--threads", "1", "--randseed", "1"]


def run_sintax(df: pd.DataFrame, oh_eval: pd.DataFrame, work: Path, cutoff: float) -> dict:
    keys = df[df.split == "train"]
    test = df[df.split == "test"]
    unseen = df[df.split == "test_unseen"]
    q = pd.concat([test, unseen])
    write_fasta(work / "sintax_keys.fa", keys.processid, keys.seq, [_sintax_header(r) for r in keys.to_dict("records")])
    write_fasta(work / "sintax_queries.fa", q.processid, q.seq)
    write_fasta(work / "sintax_heldout.fa", oh_eval.processid, oh_eval.seq)

    def sintax(query: Path, out: Path) -> float:
        t0 = time.perf_counter()
        subprocess.run(sintax_command(query, work / "sintax_keys.fa", out, cutoff), check=True, capture_output=True)
        return time.perf_counter() - t0

    seconds = sintax(work / "sintax_queries.fa", work / "sintax.tsv")
    heldout_s = sintax(work / "sintax_heldout.fa", work / "sintax_heldout.tsv")
    code = {"o": "order", "f": "family", "g": "genus", "s": "species"}
    back = {r: {v.replace(",", "_").replace(" ", "_"): v for v in keys[r] if v} for r in code.values()}

    def parse(field: str) -> dict:
        d = {r: None for r in RANKS}
        for part in filter(None, field.split(",")):
            c, _, rest = part.partition(":")
            name = rest.split("(")[0]
            if c in code:
                d[code[c]] = back[code[c]].get(name, name)
        return d

    def read(path: Path) -> tuple[dict, dict]:
        named: dict[str, dict] = {}
        full: dict[str, dict] = {}
        for line in path.read_text().splitlines():
            f = line.split("\t")
            full[f[0]] = parse(f[1] if len(f) > 1 else "")
            named[f[0]] = parse(f[3] if len(f) > 3 else "")
        return named, full

    named, full = read(work / "sintax.tsv")
    named_h, _ = read(work / "sintax_heldout.tsv")
    blank = {r: None for r in RANKS}
    pt = [named.get(p, blank) for p in test.processid]
    pu = [named.get(p, blank) for p in unseen.processid]
    ft = [full.get(p, blank) for p in test.processid]
    fu = [full.get(p, blank) for p in unseen.processid]
    # SINTAX has no subfamily: compare only ranks it names
    out = summarise(f"vsearch SINTAX, cutoff {cutoff}", test, unseen, keys, pt, pu, ft, fu, None, None, seconds)
    out["rank_errors"].pop("subfamily", None)
    out.update(absent_genus_figures(oh_eval, [named_h.get(p, blank) for p in oh_eval.processid], keys))
    out["heldout_seconds"] = round(heldout_s, 1)
    return out


# -- vsearch clustering ----------------------------------------------------------------------------
def run_cluster_size(df: pd.DataFrame, identity: float, threads: int, flagged: list[str] | None) -> dict:
    from bench_clustering import run_vsearch

    unseen = df[df.split == "test_unseen"].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        v = run_vsearch(unseen, identity, Path(tmp), threads)
    lab = dict(zip(unseen.processid, v["labels"]))
    sp = dict(zip(unseen.processid, unseen.species))
    out = {"tool": f"vsearch --cluster_size --id {identity}", "seconds": round(v["wall_s"], 1),
           "version": v["version"], "all_test_unseen": clustering_scores(list(unseen.species), v["labels"])}
    if flagged:
        out["candidate_species"] = {**clustering_scores([sp[p] for p in flagged], [lab[p] for p in flagged]),
                                    "scope": "test_unseen specimens biodiscover flags novel"}
    return out


# -- report ----------------------------------------------------------------------------------------
def _fmt(v) -> str:
    return "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else f"{v}")


def markdown(results: list[dict], clusters: list[dict], ours: dict | None) -> str:
    rows = [
        ("seen species accuracy on test (top-1 / 1-NN)", "seen_species_accuracy_top1"),
        ("test named to the correct species (deepest confident rank)", "seen_named_species_correct"),
        ("genus accuracy on test_unseen (top-1 / 1-NN)", "unseen_genus_accuracy_top1"),
        ("test_unseen named to a (necessarily wrong) species", "unseen_named_to_species"),
        ("test_unseen named to the correct genus", "unseen_named_correct_genus"),
        ("test_unseen named to a wrong genus", "unseen_named_wrong_genus"),
        ("test_unseen named to the correct family", "unseen_named_correct_family"),
        ("held-out absent genera named to a genus", "heldout_named_to_genus"),
        ("held-out absent families named to a family", "heldout_absent_family_named_to_family"),
        ("novelty AUROC, test vs test_unseen", ("novelty", "auroc")),
        ("novelty FPR95, test vs test_unseen", ("novelty", "fpr95")),
        ("candidate-species AMI, test_unseen flagged novel", ("candidate_species", "ami")),
        ("wall time of test + test_unseen queries, s", "seconds"),
    ]
    cols = results + clusters
    head = "| figure | " + " | ".join(r["tool"] for r in cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    body = ""
    for label, key in rows:
        vals = []
        for r in cols:
            v = r.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else r.get(key)
            vals.append(f"{v}" if key == "seconds" else _fmt(v))
        body += f"| {label} | " + " | ".join(vals) + " |\n"
    text = head + body
    if clusters:
        text += "\n| clustering AMI on all test_unseen | " + " | ".join(
            f"{c['tool']}: {c['all_test_unseen']['ami']:.4f}" for c in clusters) + " |\n"
    if ours and ours.get("curve"):
        text += "\nTrade-off (ours; the naming level varied):\n\n"
        text += ("| level | test named correct species | test_unseen named to species | "
                 "test_unseen correct genus | test_unseen wrong genus | held-out absent genera named to genus |\n"
                 "|---|---|---|---|---|---|\n")
        for r in ours["curve"]:
            text += (f"| {r['level']:.3f} | {r['seen_named_species_correct']:.3f} | "
                     f"{r['unseen_named_to_species']:.3f} | {r['unseen_named_correct_genus']:.3f} | "
                     f"{r['unseen_named_wrong_genus']:.3f} | {r['heldout_named_to_genus']:.3f} |\n")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_dev"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_dev/bench_dev.json"))
    ap.add_argument("--outliers", type=int, default=3000, help="other_heldout specimens (half A) for calibration")
    ap.add_argument("--heldout", type=int, default=2000, help="other_heldout specimens (half B) held out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sintax-cutoff", type=float, default=0.8)
    ap.add_argument("--skip-blast", action="store_true")
    ap.add_argument("--skip-sintax", action="store_true")
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--skip-curve", action="store_true")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--bundle", type=Path, default=None, help="also save our fitted model bundle here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import faiss
    faiss.omp_set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    df = load_clean(args.data)
    oh_calib, oh_eval = split_outliers(df, args.outliers, args.heldout, args.seed)
    log.info("cleaned records per split: %s; other_heldout: %d calibration, %d held out",
             df.split.value_counts().to_dict(), len(oh_calib), len(oh_eval))
    results, clusters, ours = [], [], None
    flagged = None
    if not args.skip_ours:
        ours, extra = run_ours(df, oh_calib, oh_eval, args.bundle, not args.skip_curve, not args.skip_cluster)
        flagged = extra["flagged"]
        results.append(ours)
        log.info("ours: %s", json.dumps({k: v for k, v in ours.items() if k not in ("rank_errors", "curve")},
                                        default=float))
    if not args.skip_sintax:
        if shutil.which("vsearch") is None:
            raise SystemExit("vsearch not found: run benchmarks/install_peers.sh")
        results.append(run_sintax(df, oh_eval, args.work, args.sintax_cutoff))
        log.info("sintax done in %.1f s", results[-1]["seconds"])
    if not args.skip_cluster:
        if shutil.which("vsearch") is None:
            raise SystemExit("vsearch not found: run benchmarks/install_peers.sh")
        for ident in (0.97, 0.98):
            clusters.append(run_cluster_size(df, ident, args.threads, flagged))
            log.info("%s: AMI %.4f", clusters[-1]["tool"], clusters[-1]["all_test_unseen"]["ami"])
    if not args.skip_blast:
        if shutil.which("blastn") is None:
            raise SystemExit("blastn not found: run benchmarks/install_peers.sh")
        results.append(run_blast(df, args.work, args.threads))
        log.info("blast done in %.1f s", results[-1]["seconds"])
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, no GPU used"
    payload = {"data": str(args.data), "commit": commit, "machine": machine, "argv": sys.argv,
               "counts": df.split.value_counts().to_dict(), "heldout_counts": [len(oh_calib), len(oh_eval)],
               "total_seconds": round(time.perf_counter() - t_all, 1), "results": results, "clusters": clusters}
    args.out.write_text(json.dumps(payload, indent=2, default=float))
    print(markdown(results, clusters, ours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
