"""Candidate-species clustering vs vsearch --cluster_size, on the same records, one run.

Protocol (issue 5, "Must show"): barcodes cleaned as ../shared/data/README.md
says (storage.validation.clean_barcode: gaps removed, upper case, first 660 nt,
N runs trimmed; characters outside ACGTN → N; >= 200 nt kept). Our threshold
and linkage are learned on ``--learn-split`` (default val_unseen, grouped by
genus) — never on the evaluated split. Then every ``--eval-split`` record
(default test_unseen) is clustered WITHOUT labels and scored against species
(AMI, ARI, Hungarian accuracy, split / merge / exact rates) and against BINs.
vsearch runs ``--derep_fulllength --sizeout`` then ``--cluster_size --sizein
--id 0.97 / 0.98`` on the same records. Wall time of each includes all its steps.

Usage::

    python benchmarks/bench_clustering.py --data ../shared/data/bold-insects-dev.csv.gz \
        --out benchmarks/clustering-dev.json
    python benchmarks/bench_clustering.py --synthetic --out benchmarks/clustering-synth.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


from biodiscover.discovery.clustering import BarcodeDistances, BarcodeGapThreshold, ClusteringConfig
from biodiscover.discovery.clustering_methods.threshold_hdbscan import CandidateSpeciesClusterer
from biodiscover.discovery.metrics import bin_agreement, clustering_scores
from biodiscover.storage.records import MIN_BARCODE_LENGTH
from biodiscover.storage.validation import clean_barcode

log = logging.getLogger("bench_clustering")
_NOT_ACGTN = re.compile("[^ACGTN]")


def clean(seq: object) -> str | None:
    """The README protocol: clean_barcode, IUPAC → N, >= 200 nt."""
    if not isinstance(seq, str):
        return None
    s = _NOT_ACGTN.sub("N", clean_barcode(seq)).strip("N")
    return s if len(s) >= MIN_BARCODE_LENGTH else None


def load_real(path: Path) -> pd.DataFrame:
    cols = ["processid", "family", "genus", "species", "dna_bin", "dna_barcode", "split"]
    df = pd.read_csv(path, usecols=cols, dtype=str, keep_default_na=False)
    df["seq"] = df["dna_barcode"].map(clean)
    df = df[df["seq"].notna()].copy()
    df["dna_bin"] = df["dna_bin"].replace("", None)
    return df


def synthetic(seed: int = 0, n_species: int = 600, n_specimens: int = 12000) -> tuple[pd.DataFrame, str]:
    """The project's synthetic generator (storage.synth, metadata only). Truth
    (true species, genus, family, BIN of every record, including those whose
    metadata label stops above species) comes from its truth table."""
    from biodiscover.storage.synth import SynthConfig
    from biodiscover.storage.synth.generator import generate_frame

    cfg = SynthConfig(n_species=n_species, n_specimens=n_specimens, images=False, seed=seed)
    meta, truth = generate_frame(cfg)
    df = pd.DataFrame({"processid": meta["processid"], "split": meta["split"],
                       "family": truth["family"], "genus": truth["genus"], "species": truth["species"],
                       "dna_bin": truth["bin"].where(truth["bin"].notna(), None),
                       "seq": meta["dna_barcode"].map(clean)})
    df = df[df["seq"].notna()].copy()
    return df, (f"synthetic: storage.synth.generate_frame(SynthConfig(n_species={n_species}, "
                f"n_specimens={n_specimens}, images=False, seed={seed}))")


# ---------------------------------------------------------------------------------
def run_ours(learn: pd.DataFrame, ev: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    gap = BarcodeGapThreshold().fit(list(learn["seq"]), list(learn["species"]), groups=list(learn["genus"]))
    t_learn = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    cl = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances(list(ev["seq"])))
    t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
    return {
        "labels": cl.labels_, "hdbscan_labels": cl.hdbscan_labels_,
        "threshold": gap.threshold_, "linkage": gap.linkage_, "learn_ami": gap.score_,
        "wall_s_learn": t_learn, "wall_s": t_fit, "cpu_s": c_fit,
        "mean_membership_probability": float(np.mean(cl.probabilities_)),
        "candidates_hdbscan_agrees": float(np.mean([a >= 0.999 for a in cl.agreement_.values()])),
        "membership": membership_calibration(cl.labels_, cl.probabilities_, list(ev["species"])),
    }


def membership_calibration(labels: np.ndarray, probabilities: np.ndarray, species: list) -> dict:
    """How well each member's stored membership probability says whether it belongs with the others: over the
    members of candidates of two or more, the outcome is "its true species is its candidate's most common one";
    mean probability vs that share, Brier score, ECE (``discovery.metrics.reliability``), and how many members
    read below 0.5 though they belong."""
    from collections import Counter

    from biodiscover.discovery.metrics import reliability

    sizes = np.bincount(labels)
    idx = np.flatnonzero(sizes[labels] > 1)
    majority = {c: Counter(species[i] for i in np.flatnonzero(labels == c)).most_common(1)[0][0]
                for c in np.unique(labels[idx])}
    right = np.array([species[i] == majority[labels[i]] for i in idx], dtype=float)
    prob = probabilities[idx]
    return {"members": int(idx.size), "belong": float(right.mean()), "mean_p": float(prob.mean()),
            "brier": float(np.mean((prob - right) ** 2)), "ece": reliability(prob, right)["ece"],
            "belong_below_half": int(((prob < 0.5) & (right == 1)).sum()),
            "wrong_above_half": int(((prob >= 0.5) & (right == 0)).sum())}


def run_ours_grouped(learn: pd.DataFrame, ev: pd.DataFrame, keys: pd.DataFrame, rank: str) -> dict:
    """The product's path: group by the ``rank`` taxon of the nearest reference
    barcode (1-NN on ``keys``, no labels of the evaluated records), cluster
    within groups. A stand-in for the engine's deepest confident parent."""
    from biodiscover.discovery.proposals import nearest_known
    from biodiscover.storage.records import Specimen

    t0 = time.perf_counter()
    gap = BarcodeGapThreshold().fit(list(learn["seq"]), list(learn["species"]), groups=list(learn["genus"]))
    t_learn = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = {p: (f, g) for p, f, g in zip(keys["processid"], keys["family"], keys["genus"])}
    specimens = [Specimen(processid=p, genus=g, species=s, dna_barcode=q)
                 for p, g, s, q in zip(keys["processid"], keys["genus"], keys["species"], keys["seq"])]
    hits = nearest_known(list(ev["seq"]), specimens)
    parents = [ref[h.processid][0 if rank == "family" else 1] if h else None for h in hits]
    t_nn = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    cl = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances(list(ev["seq"])), groups=parents)
    t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    apart = CandidateSpeciesClusterer(ClusteringConfig(merge_across_groups=False), gap).fit(
        BarcodeDistances(list(ev["seq"])), groups=parents)
    t_apart, c_apart = time.perf_counter() - t0, time.process_time() - c0
    return {"labels": cl.labels_, "labels_no_merge": apart.labels_, "wall_s_no_merge": t_apart,
            "cpu_s_no_merge": c_apart, "threshold": gap.threshold_, "linkage": gap.linkage_,
            "parent_accuracy": float(np.mean(np.asarray(parents, dtype=object) == ev[rank].to_numpy())),
            "n_groups": len(set(parents)), "wall_s_learn": t_learn, "wall_s_1nn": t_nn, "wall_s": t_fit, "cpu_s": c_fit}


def _parse_uc(path: Path) -> dict[str, str]:
    """query label -> centroid label from a vsearch .uc file (sizes stripped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if f[0] == "S":
            q = f[8].split(";")[0]
            out[q] = q
        elif f[0] == "H":
            out[f[8].split(";")[0]] = f[9].split(";")[0]
    return out


def run_vsearch(ev: pd.DataFrame, identity: float, workdir: Path, threads: int) -> dict:
    exe = shutil.which("vsearch")
    if exe is None:
        raise SystemExit("vsearch not found: run benchmarks/install_peers.sh")
    fasta = workdir / "in.fa"
    fasta.write_text("".join(f">{pid}\n{seq}\n" for pid, seq in zip(ev["processid"], ev["seq"])))
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([exe, "--derep_fulllength", str(fasta), "--output", str(workdir / "derep.fa"),
                    "--sizeout", "--uc", str(workdir / "derep.uc"), "--quiet"],
                   check=True)
    subprocess.run([exe, "--cluster_size", str(workdir / "derep.fa"), "--id", str(identity), "--sizein",
                    "--uc", str(workdir / "clu.uc"), "--threads", str(threads), "--quiet"], check=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    derep, clu = _parse_uc(workdir / "derep.uc"), _parse_uc(workdir / "clu.uc")
    labels = [clu[derep[pid]] for pid in ev["processid"]]
    return {"labels": labels, "wall_s": wall, "cpu_s": cpu, "version": subprocess.run(
        [exe, "--version"], capture_output=True, text=True).stderr.splitlines()[0]}


def score(ev: pd.DataFrame, labels, old: set | None = None) -> dict:
    out = clustering_scores(list(ev["species"]), list(labels), old_classes=old)
    if not old:
        out.pop("hungarian_old", None)  # every evaluated species is new; All == New
    out["bin"] = bin_agreement(list(ev["dna_bin"]), list(labels))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="BIOSCAN-layout CSV(.gz)")
    ap.add_argument("--synthetic", action="store_true", help="use this script's small synthetic set")
    ap.add_argument("--learn-split", default="val_unseen")
    ap.add_argument("--eval-split", default="test_unseen")
    ap.add_argument("--keys-split", default="train",
                    help="reference for the grouped run ('' to skip), e.g. train or train+key_unseen")
    ap.add_argument("--mixed", type=int, default=0,
                    help="add this many known-species records from 'test' (GCD-style All/Old/New)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.synthetic:
        df, source = synthetic()
    elif args.data:
        df, source = load_real(args.data), str(args.data)
    else:
        ap.error("give --data or --synthetic")
    learn = df[df["split"] == args.learn_split]
    ev = df[df["split"] == args.eval_split]
    old: set | None = None
    if args.mixed:
        known = df[df["split"] == "test"]
        known = known.sample(min(args.mixed, len(known)), random_state=0)
        ev = pd.concat([known, ev])
        old = set(df.loc[df["split"] == "train", "species"])
        args.eval_split = f"{args.eval_split} + {len(known)} test records (seed 0)"
    ev = ev.reset_index(drop=True)
    log.info("learn on %s: %d records, %d species; evaluate %s: %d records, %d species",
             args.learn_split, len(learn), learn["species"].nunique(), args.eval_split, len(ev),
             ev["species"].nunique())
    results: dict = {"data": source, "learn_split": args.learn_split, "eval_split": args.eval_split,
                     "n_eval": len(ev), "n_species": int(ev["species"].nunique()),
                     "n_unique_barcodes": int(ev["seq"].nunique()),
                     "machine": f"{platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}",
                     "methods": {}}
    ours = run_ours(learn, ev)
    res = score(ev, ours.pop("labels"), old)
    hdb = ours.pop("hdbscan_labels")
    res.update(ours)
    results["methods"]["biodiscover (agglomerative, learned gap) + HDBSCAN"] = res
    hres = score(ev, np.where(hdb >= 0, hdb, -1 - np.arange(len(hdb))), old)  # noise = singletons
    results["methods"]["HDBSCAN alone (diagnostic)"] = {k: hres[k] for k in ("ami", "ari", "hungarian_all")}
    if old:
        results["methods"]["HDBSCAN alone (diagnostic)"].update(
            hungarian_old=hres["hungarian_old"], hungarian_new=hres["hungarian_new"])
    log.info("ours: AMI %.4f (threshold %.4f %s) in %.1f s", res["ami"], res["threshold"], res["linkage"],
             res["wall_s"])
    keys = df[df["split"].isin(args.keys_split.split("+"))] if args.keys_split else df.iloc[:0]
    if len(keys):
        for rank in ("family", "genus"):
            g = run_ours_grouped(learn, ev, keys, rank)
            apart = score(ev, g.pop("labels_no_merge"), old)
            apart.update(wall_s=g.pop("wall_s_no_merge"), cpu_s=g.pop("cpu_s_no_merge"))
            gres = score(ev, g.pop("labels"), old)
            gres.update(g)
            results["methods"][f"biodiscover grouped by 1-NN {rank} ({args.keys_split} keys)"] = gres
            results["methods"][f"biodiscover grouped by 1-NN {rank}, no cross-group merge"] = apart
        log.info("ours grouped: AMI %.4f in %.1f s (+%.1f s 1-NN)", gres["ami"], gres["wall_s"], gres["wall_s_1nn"])
    with tempfile.TemporaryDirectory() as tmp:
        for ident in (0.97, 0.98):
            v = run_vsearch(ev, ident, Path(tmp), args.threads)
            vres = score(ev, v.pop("labels"), old)
            vres.update(v)
            results["methods"][f"vsearch --cluster_size --id {ident}"] = vres
            log.info("vsearch %.2f: AMI %.4f in %.1f s", ident, vres["ami"], vres["wall_s"])
    args.out.write_text(json.dumps(results, indent=2, default=float))
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = [f"data: {results['data']} — {results['eval_split']}: {results['n_eval']} records, "
             f"{results['n_species']} species, {results['n_unique_barcodes']} unique barcodes; "
             f"threshold learned on {results['learn_split']}", "",
             "| method | AMI | ARI | Hungarian acc | split rate | merge rate | exact | clusters | AMI vs BIN | wall s "
             "| CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["methods"].items():
        if "split_rate" not in r:
            lines.append(f"| {name} | {r['ami']:.4f} | {r['ari']:.4f} | {r['hungarian_all']:.4f} | | | | | | | |")
            continue
        b = r["bin"].get("ami")
        lines.append(
            f"| {name} | {r['ami']:.4f} | {r['ari']:.4f} | {r['hungarian_all']:.4f} | {r['split_rate']:.3f} | "
            f"{r['merge_rate']:.3f} | {r['exact_rate']:.3f} | {r['n_clusters']} | "
            f"{'' if b is None else f'{b:.4f}'} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} |")
    if any("hungarian_old" in r for r in results["methods"].values()):
        lines += ["", "| method | Hungarian All | Old | New |", "|---|---|---|---|"]
        lines += [f"| {name} | {r['hungarian_all']:.4f} | {r['hungarian_old']:.4f} | {r['hungarian_new']:.4f} |"
                  for name, r in results["methods"].items() if "hungarian_old" in r]
    for name, r in results["methods"].items():
        m = r.get("membership")
        if m:
            lines += ["", f"membership ({name}): {m['members']} members of candidates of two or more, "
                      f"{m['belong']:.3f} of them of their candidate's most common species; mean probability "
                      f"{m['mean_p']:.3f}, Brier {m['brier']:.4f}, ECE {m['ece']:.4f}; below 0.5 though they belong: "
                      f"{m['belong_below_half']}; 0.5 or above though they do not: {m['wrong_above_half']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
