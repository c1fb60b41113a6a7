"""``biodiscover evaluate``: every DESIGN.md metric of a bundle on a labelled dataset.

Why here and not in the benchmark script: the benchmark compares tools; this is
what a model builder runs on their own data to see, for one bundle, closed-world
accuracy, the BIOSCAN-5M 1-NN genus protocol, open-world novelty, the per-rank
TP / misclassification / under- / over-classification of the deepest confident
rank, and the candidate-species clustering scores. All metric definitions are
E2's (``discovery.metrics``), shared with the benchmarks.

"Known" is relative to the bundle's own reference keys: a query whose species
is among them is known, otherwise novel. With the default keys (train +
key_unseen) test_unseen is known; evaluate a bundle built with ``--keys train``
for the open-world protocol (test = known, test_unseen = novel).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from biodiscover.discovery.clustering import ClusteringConfig, run_record
from biodiscover.discovery.engine import DiscoveryModel
from biodiscover.discovery.metrics import (clustering_scores, novelty_scores, rank_errors, reliability,
                                          wilson_interval)
from biodiscover.discovery.proposals import candidate_species
from biodiscover.storage.bioscan import load_specimens
from biodiscover.storage.progress import Progress, log_progress, messages
from biodiscover.storage.records import RANKS
from biodiscover.workflows.reference import REFERENCE_COLUMNS

log = logging.getLogger(__name__)


def _acc(pairs: list[tuple[Any, Any]]) -> float | None:
    return float(np.mean([a == b for a, b in pairs])) if pairs else None


def _macro(pairs: list[tuple[Any, Any]]) -> float | None:
    by: dict[Any, list[bool]] = {}
    for pred, true in pairs:
        by.setdefault(true, []).append(pred == true)
    return float(np.mean([np.mean(v) for v in by.values()])) if by else None


def evaluate(data: Path, model_path: Path, *, known_split: str = "test", novel_split: str = "test_unseen",
             cluster: bool = True, progress: Progress | None = None) -> dict[str, Any]:
    """All metrics as one JSON-able dict."""
    say = messages(progress or log_progress(log), "evaluate")
    model = DiscoveryModel.load(model_path)
    ref_taxa = {r: {label for lin in model.ref_lineages_ if (label := lin[i])} for i, r in enumerate(RANKS)}
    say(f"reading {known_split} and {novel_split}")
    queries = load_specimens(data, f"{known_split}+{novel_split}", require=REFERENCE_COLUMNS)
    known = [s for s in queries if s.split == known_split]
    novel = [s for s in queries if s.split == novel_split]
    t = time.perf_counter()
    say(f"triaging {len(queries)} specimens")
    res = model.triage(known + novel)
    triage_s = time.perf_counter() - t
    rk, rn = res[: len(known)], res[len(known):]
    report: dict[str, Any] = {"data": str(data), "model": str(model_path), "n_keys": len(model.ref_ids_),
                              "n_known_split": len(known), "n_novel_split": len(novel),
                              "triage_seconds": round(triage_s, 2),
                              "specimens_per_second": round(len(queries) / triage_s, 1) if triage_s else None}
    sp = [(r.labels["species"], s.species) for r, s in zip(rk, known) if s.species]
    report["closed_world"] = {"species_accuracy_micro": _acc(sp), "species_accuracy_macro": _macro(sp)}
    gp = [(r.labels["genus"], s.genus) for r, s in zip(rn, novel) if s.genus]
    report["bioscan_1nn"] = {"genus_accuracy_on_novel_split_micro": _acc(gp),
                             "genus_accuracy_on_novel_split_macro": _macro(gp)}
    is_novel = [int(bool(s.species) and s.species not in ref_taxa["species"]) for s in known + novel]
    scores = [r.novelty for r in res]
    ok = [i for i, v in enumerate(scores) if not math.isnan(v)]
    if 0 < sum(is_novel[i] for i in ok) < len(ok):
        report["novelty"] = novelty_scores([is_novel[i] for i in ok], [scores[i] for i in ok])
    else:
        report["novelty"] = {"note": "queries are all known or all novel relative to the bundle's keys"}
    named = [{r: (x.labels[r] if x.deepest_rank and RANKS.index(r) <= RANKS.index(x.deepest_rank) else None)
              for r in RANKS} for x in res]
    errs = rank_errors([s.lineage() for s in known + novel], named, ref_taxa)
    report["rank_errors"] = {r: e.as_dict() for r, e in errs.items()}
    # reliability of P(right) per rank: the label against the truth (a taxon absent from the keys is wrong);
    # ranks decided by a published cut-off carry no probability and are left out
    learned = set(model.naming_.models_)
    report["reliability"] = {}
    for r in RANKS:
        pairs = [(x.confidence[r], float(x.labels[r] == s.lineage()[r])) for x, s in zip(res, known + novel)
                 if r in learned and x.labels.get(r) and s.lineage().get(r)]
        report["reliability"][r] = reliability([a for a, _ in pairs], [b for _, b in pairs]) if pairs else \
            {"note": "published identity cut-off (no probability)" if r not in learned else "no labelled queries"}
    report["naming"] = {"level": model.config.naming.level, "support": model.naming_.support_,
                        "expected": model.naming_.expected_.get(f"{model.config.naming.level}"),
                        # what the evaluated specimens' P(absent) assume (the forecast above is at even odds):
                        # their own estimate, weighed against ``collection_weight`` pseudo-specimens at even odds
                        "absent_share": model.collection_shares(res),
                        "collection_weight": model.config.naming.collection_weight}
    report["named_to_species"] = {
        known_split: float(np.mean([bool(n["species"]) for n in named[: len(known)]])) if known else None,
        novel_split: float(np.mean([bool(n["species"]) for n in named[len(known):]])) if novel else None}
    if cluster:
        say("clustering novel-flagged specimens")
        specs = known + novel
        gap = getattr(model, "barcode_gap_", None)
        props = candidate_species(specs, res, threshold=gap)
        report["clustering"] = run_record(ClusteringConfig(), gap)
        cand = {m.processid: i for i, p in enumerate(props) for m in p.members}
        truth_of = {s.processid: s.species for s in specs}
        pids = [s.processid for s in novel if s.processid in cand and s.species]
        if pids:
            c = clustering_scores([truth_of[p] for p in pids], [cand[p] for p in pids],
                                  old_classes=ref_taxa["species"])
            report["candidate_species"] = {**c, "scope": f"{novel_split} specimens flagged novel",
                                           "n_flagged": len(pids), "n_proposals": len(props)}
        else:
            report["candidate_species"] = {"note": f"no {novel_split} specimen was flagged novel"}
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table (one row per figure)."""
    rows: list[tuple[str, Any]] = [
        ("keys in bundle", report["n_keys"]),
        ("species accuracy (micro / macro)", (report["closed_world"]["species_accuracy_micro"],
                                              report["closed_world"]["species_accuracy_macro"])),
        ("1-NN genus accuracy on novel split (micro / macro)",
         (report["bioscan_1nn"]["genus_accuracy_on_novel_split_micro"],
          report["bioscan_1nn"]["genus_accuracy_on_novel_split_macro"])),
    ]
    nov = report.get("novelty", {})
    if "auroc" in nov:
        rows += [("novelty AUROC", nov["auroc"]), ("novelty FPR95", nov["fpr95"])]
    for split, v in report["named_to_species"].items():
        rows.append((f"{split} named to species", v))
    for r, e in report["rank_errors"].items():
        rows.append((f"{r}: TP / MC / UC / OC rate", (e["tp_rate"], e["mc_rate"], e["uc_rate"], e["oc_rate"])))
    for r, rel in report.get("reliability", {}).items():
        rows.append((f"{r}: P(right) expected calibration error", rel.get("ece", rel.get("note"))))
    weight = report.get("naming", {}).get("collection_weight")
    pseudo = f" (weighed against {weight:g} at even odds)" if weight else ""
    for r, v in report.get("naming", {}).get("absent_share", {}).items():
        rows.append((f"{r}: share absent from the reference, estimated from the specimens{pseudo}", v))
    cs = report.get("candidate_species", {})
    if "ami" in cs:
        rows += [("candidate species AMI / ARI", (cs["ami"], cs["ari"])),
                 ("Hungarian accuracy All / Old / New",
                  (cs["hungarian_all"], cs["hungarian_old"], cs["hungarian_new"])),
                 ("split / merge rate", (cs.get("split_rate"), cs.get("merge_rate")))]
    rows.append(("triage throughput, specimens/s", report["specimens_per_second"]))

    def fmt(v: Any) -> str:
        if isinstance(v, tuple):
            return " / ".join(fmt(x) for x in v)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "—"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    return "| figure | value |\n|---|---|\n" + "".join(f"| {k} | {fmt(v)} |\n" for k, v in rows)


def reliability_rows(report: dict[str, Any]) -> list[tuple[str, float, float, int, float, float, float, float]]:
    """Per rank and probability bin: (rank, bin from, bin to, specimens, mean predicted P(right), observed share
    right, and that share's 95 % Wilson interval). What the reliability plot draws, as numbers: a bin of three
    specimens and one of three hundred look alike as points, and only the interval says which one can
    contradict the diagonal."""
    out = []
    for r, rel in report.get("reliability", {}).items():
        for b in rel.get("bins") or []:
            lo, hi = wilson_interval(b["observed"] * b["n"], b["n"])
            out.append((r, b["lo"], b["hi"], b["n"], b["mean_p"], b["observed"], lo, hi))
    return out


def reliability_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: the figure table, the reliability plot (predicted P(right) vs observed share
    right per rank, each point sized by its specimens with its 95 % interval, the diagonal = perfect
    calibration, and below it how many specimens fall in each bin) and the same numbers as a table."""
    import base64
    import html
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = reliability_rows(report)
    fig, (ax, count) = plt.subplots(2, 1, figsize=(6, 7), dpi=110, sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="perfect calibration")
    ranks = list(report.get("reliability", {}))
    width = 0.1 / max(1, len(ranks))
    for i, r in enumerate(ranks):
        rel = report["reliability"][r]
        mine = [row for row in rows if row[0] == r]
        if not mine:
            continue
        x = np.array([row[4] for row in mine])
        y = np.array([row[5] for row in mine])
        err = np.clip(np.array([[row[5] - row[6] for row in mine], [row[7] - row[5] for row in mine]]), 0, 1)
        line = ax.errorbar(x, y, yerr=err, marker="o", ms=0, lw=1, capsize=2,
                           label=f"{r} (ECE {rel['ece']:.3f}, n={rel['n']})")
        colour = line[0].get_color()
        ax.scatter(x, y, s=[8 + 60 * math.sqrt(row[3] / max(1, rel["n"])) for row in mine], color=colour, zorder=3)
        count.bar([row[1] + i * width for row in mine], [row[3] for row in mine], width=width, align="edge",
                  color=colour)
    ax.set_ylabel("observed share right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Reliability of the naming probabilities (points sized by specimens, 95 % intervals)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="best")
    count.set_yscale("log")
    count.set_ylabel("specimens")
    count.set_xlabel("predicted P(name right), bins of 0.1")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode()
    figures = "".join(f"<tr><td>{html.escape(line.split(' | ')[0].strip('| '))}</td><td>"
                      f"{html.escape(line.split(' | ')[1].strip(' |'))}</td></tr>"
                      for line in markdown(report).splitlines()[2:])
    bins = "".join(f"<tr><td>{html.escape(r)}</td><td>{lo:.1f}–{hi:.1f}</td><td>{n}</td><td>{p:.3f}</td>"
                   f"<td>{obs:.3f}</td><td>{a:.3f}–{b:.3f}</td></tr>" for r, lo, hi, n, p, obs, a, b in rows)
    return (f"<!doctype html><meta charset='utf-8'><title>biodiscover evaluate</title>"
            f"<h1>Evaluation of {html.escape(str(report.get('model')))}</h1>"
            f"<p>data: {html.escape(str(report.get('data')))}</p><table border=1 cellpadding=4>{figures}</table>"
            f"<h2>Reliability per rank</h2><img alt='reliability plot' src='data:image/png;base64,{png}'>"
            f"<table border=1 cellpadding=4><tr><th>rank</th><th>P(right) bin</th><th>specimens</th>"
            f"<th>mean predicted</th><th>observed right</th><th>95 % interval</th></tr>{bins}</table>")


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """JSON at ``out`` (NaN → null), the markdown table (``.md``) and an HTML page with the
    reliability plot (``.html``) beside it."""
    def clean(o: Any) -> Any:
        if isinstance(o, float) and math.isnan(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(clean(report), indent=2))
    md = out.with_suffix(".md")
    md.write_text(markdown(report))
    out.with_suffix(".html").write_text(reliability_html(report))
    return out, md
