"""How a naming claim is proven: every fold of DESIGN.md, with the peers, in one invocation.

Folds (real BOLD dev data, ../shared/data/bold-insects-dev.csv.gz, cleaned like bench_dev):

1. **per-order** — each order alone is a complete BIOSCAN-style dataset. Keys = its train;
   extra labelled queries for fitting = its val + val_unseen + half A of its other_heldout species;
   scored on its test (known species), test_unseen (absent species of known genera) and half B
   of its other_heldout species (absent genera).
2. **leave-one-order-out** — reference = every labelled record of two orders except test and
   test_unseen (no extra data); collection = a sample of the third order's records + the two
   orders' test and test_unseen. Scored with TAXXI classes against the deepest rank the
   reference holds for each specimen (its "should-be" rank; none for the left-out order).
   **one-order** (the mirror image, a specialist's library) — reference = every labelled record of
   one order except test and test_unseen; collection = a sample of the two other orders' records +
   the order's test and test_unseen; scored the same way.
   **region** (a collection from another country) — reference = every labelled record collected
   outside one country (Canada, Germany, Costa Rica, Australia); collection = that country's labelled
   records, as known species (their species has keys from elsewhere), absent species of known genera and
   absent genera; scored the same way. Canada and Germany hold almost only species known from elsewhere
   (their barcodes from another continent), Costa Rica and Australia half absent taxa.
3. **stability** — the pooled reference (train of all orders) split into two disjoint halves
   (every species' keys split in two); a model fitted on each half triages the same queries;
   the share whose deepest rank (and name) agree.

Peers in the same run, on the same keys and queries: BLAST top hit (blastn megablast; on the
leave-one-order-out, one-order and region folds, whose 37k–70k keys take BLAST hours on 2 cores,
``--loo-top-hit vsearch`` swaps in vsearch ``--usearch_global`` as the top-hit peer, with the same cut-offs,
max_target_seqs 50) with identity cut-offs (species 95–99.5 %, genus 85–95 %, and the
97/95/90/85 % ladder for all ranks), vsearch SINTAX at cut-offs 0.5–0.95 (one run, the
bootstrap supports read at each cut-off). BLAST/SINTAX outputs are cached under --work by the
hash of their inputs, so re-running after a change to our model only reruns ours.

Nothing here tunes on test, test_unseen or the held-out halves: our model sees only the
reference (and, in per-order folds, the val splits and other_heldout half A as extra data).

    python benchmarks/bench_folds.py --work /tmp/folds --out /tmp/folds/folds.json

Prints markdown tables (paste into benchmarks/RESULTS-discovery.md) and writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_dev import _sintax_header, load_clean, sintax_command, specimens, write_fasta  # noqa: E402

from biodiscover.discovery.metrics import novelty_auroc, novelty_scores, reliability, wilson_interval  # noqa: E402
from biodiscover.storage.records import RANKS  # noqa: E402

log = logging.getLogger("bench_folds")
ORDERS = ("Coleoptera", "Diptera", "Lepidoptera")
Lineage = dict[str, str | None]
BLANK: Lineage = {r: None for r in RANKS}
SPECIES_CUTS = (0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995, 0.998)
GENUS_CUTS = (0.85, 0.87, 0.90, 0.92, 0.95)
LADDER = {"order": 0.85, "family": 0.90, "genus": 0.95, "species": 0.97}  # the 97/95/90/85 % ladder
SINTAX_CUTS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: the countries a region fold leaves out, one at a time: the two largest collections of species known from
#: elsewhere (Canada, Germany) and the two largest of half-absent taxa (Costa Rica, Australia)
REGIONS = ("Canada", "Germany", "Costa Rica", "Australia")
LARGE_REFERENCE = ("loo", "one-order", "region")  # the folds where ``--loo-top-hit`` picks the top-hit peer
LEVELS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)


@dataclass
class Fold:
    """One fold: the reference keys, extra labelled fitting data and the scored query groups."""

    name: str
    kind: str  # per-order | loo | one-order | region | stability
    keys: pd.DataFrame
    extra: pd.DataFrame
    groups: dict[str, pd.DataFrame]  # query group name -> records
    info: dict = field(default_factory=dict)

    @property
    def queries(self) -> pd.DataFrame:
        return pd.concat(list(self.groups.values())).drop_duplicates("processid")


def _sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return df if len(df) <= n else df.sample(n=n, random_state=seed).sort_index()


def _halves_by_species(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    species = np.array(sorted(set(df.species)))
    rng = np.random.default_rng(seed)
    a = set(rng.choice(species, len(species) // 2, replace=False).tolist())
    return df[df.species.isin(a)], df[~df.species.isin(a)]


def _test_splits(d: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """Each of ``d``'s test and test_unseen, capped (sampled, seeded): the known specimens of an open-world fold."""
    return pd.concat([_sample(d[d.split == split], args.max_group, args.seed) for split in ("test", "test_unseen")])


def make_folds(df: pd.DataFrame, which: list[str], args: argparse.Namespace) -> list[Fold]:
    folds: list[Fold] = []
    labelled = df[df.split != "pretrain"]
    if "per-order" in which:
        for order in ORDERS:
            d = df[df.order == order]
            oh_a, oh_b = _halves_by_species(d[d.split == "other_heldout"], args.seed)
            extra = pd.concat([d[d.split.isin(["val", "val_unseen"])],
                               _sample(oh_a, args.max_extra_heldout, args.seed)])
            folds.append(Fold(f"per-order {order}", "per-order", d[d.split == "train"], extra, {
                "known": _sample(d[d.split == "test"], args.max_group, args.seed),
                "absent_species": _sample(d[d.split == "test_unseen"], args.max_group, args.seed),
                "absent_genus": _sample(oh_b, args.max_heldout, args.seed)}, {"order": order}))
    if "loo" in which:
        for order in ORDERS:
            ref = labelled[(labelled.order != order) & ~labelled.split.isin(["test", "test_unseen"])]
            others = labelled[labelled.order != order]
            # test_unseen species have their keys in key_unseen, which this reference holds: both are known
            folds.append(Fold(f"leave-out {order}", "loo", ref, ref.iloc[:0], {
                "left_out_order": _sample(df[df.order == order], args.max_left_out, args.seed),
                "known": _test_splits(others, args)},
                {"order": order}))
    if "one-order" in which:
        for order in ORDERS:
            mine = labelled[labelled.order == order]
            ref = mine[~mine.split.isin(["test", "test_unseen"])]
            folds.append(Fold(f"one-order {order}", "one-order", ref, ref.iloc[:0], {
                "left_out_order": _sample(df[df.order != order], args.max_left_out, args.seed),
                "known": _test_splits(mine, args)},
                {"order": order}))
    if "region" in which:
        for country in REGIONS:
            inside = labelled.country == country
            if not inside.any():  # another data file: a country it lacks is no fold
                continue
            ref, col = labelled[~inside], labelled[inside & (labelled.species != "")]
            known = col.species.isin(set(ref.species))
            genus_known = col.genus.isin(set(ref.genus) - {""})
            folds.append(Fold(f"region {country}", "region", ref, ref.iloc[:0], {
                "known": _sample(col[known], args.max_group, args.seed),
                "absent_species": _sample(col[~known & genus_known], args.max_group, args.seed),
                "absent_genus": _sample(col[~known & ~genus_known], args.max_heldout, args.seed)},
                {"region": country}))
    if "stability" in which:
        train = df[df.split == "train"]
        rng = np.random.default_rng(args.seed)
        half = np.zeros(len(train), dtype=bool)
        for _, idx in train.groupby("species").indices.items():
            pick = rng.permutation(idx)[: len(idx) // 2]
            half[pick] = True
        queries = {"known": _sample(df[df.split == "test"], args.max_group, args.seed),
                   "absent_species": _sample(df[df.split == "test_unseen"], args.max_group, args.seed)}
        for h, mask in (("A", half), ("B", ~half)):
            folds.append(Fold(f"stability half {h}", "stability", train[mask], train.iloc[:0], queries))
    return folds


# -- scoring ----------------------------------------------------------------------------------------
BOOTSTRAP = 2000


def species_interval(species: Sequence[object], stat: Callable[[np.ndarray], float], seed: int = 0
                     ) -> tuple[float, float, float]:
    """(``stat`` on every specimen, and its 95 % interval with whole species resampled).

    ``stat`` takes the indices of a sample of specimens. Why species and not specimens: specimens of one
    species share their barcodes' fate (a species named wrong is named wrong for every specimen), so a
    fold with ten absent species holds ten chances, not 338; an interval over specimens would be far too
    narrow. Percentile bootstrap, ``BOOTSTRAP`` draws, seeded."""
    sp = np.asarray([str(x) for x in species])
    names, inv = np.unique(sp, return_inverse=True)
    members = [np.nonzero(inv == i)[0] for i in range(len(names))]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(names), len(names))
        draws.append(stat(np.concatenate([members[i] for i in pick])))
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])  # nan: a draw the statistic is undefined on
    return float(stat(np.arange(len(sp)))), float(lo), float(hi)


def should_be(truth: Lineage, taxa: dict[str, set[str]]) -> str | None:
    """The deepest rank at which the specimen's true taxon is in the reference (TAXXI)."""
    deepest = None
    for r in RANKS:
        t = truth.get(r)
        if not t:
            continue
        if t in taxa[r]:
            deepest = r
        else:
            break
    return deepest


def taxxi(truths: list[Lineage], named: list[Lineage], taxa: dict[str, set[str]],
          ranks: tuple[str, ...] = RANKS) -> dict[str, float]:
    """TAXXI outcome classes of each prediction at the deepest rank the reference supports.

    TP: every supported rank named, correctly; UC: named correctly but stops short; MC: a wrong
    name at a rank whose true taxon is in the reference; OC: a name at a rank whose true taxon
    is absent (or below the deepest blank-free supported rank). Ranks a tool cannot name (SINTAX:
    no subfamily) are left out of ``ranks``.
    """
    out = {"TP": 0, "UC": 0, "MC": 0, "OC": 0}
    for t, p in zip(truths, named):
        sb = should_be({r: t.get(r) for r in ranks}, {r: taxa[r] for r in ranks})
        sb_i = -1 if sb is None else ranks.index(sb)
        cls = None
        deepest_named = -1
        for i, r in enumerate(ranks):
            if not p.get(r):
                continue
            deepest_named = i
            if i > sb_i:
                cls = "OC" if cls is None else cls
            elif t.get(r) and p[r] != t[r]:
                cls = "MC"
        if cls is None:
            cls = "TP" if deepest_named >= sb_i else "UC"
            if sb_i < 0:
                cls = "TP"  # nothing named, nothing could be: a true negative counts as right
        out[cls] += 1
    n = max(1, len(truths))
    return {k: v / n for k, v in out.items()}


def group_figures(group: str, truths: list[Lineage], named: list[Lineage]) -> dict[str, float]:
    """The per-group figures the issue names (known / absent species / absent genus / left-out order)."""
    n = max(1, len(truths))
    f: dict[str, float] = {"n": len(truths)}
    sp = [bool(p.get("species")) for p in named]
    if group == "known":
        f["species_right"] = sum(p.get("species") == t["species"] for p, t in zip(named, truths)) / n
        f["species_wrong"] = sum(bool(p.get("species")) and p.get("species") != t["species"]
                                 for p, t in zip(named, truths)) / n
        f["genus_right"] = sum(p.get("genus") == t["genus"] for p, t in zip(named, truths)) / n
    elif group == "absent_species":
        f["named_species"] = sum(sp) / n
        f["genus_right"] = sum(p.get("genus") == t["genus"] for p, t in zip(named, truths)) / n
        f["genus_wrong"] = sum(bool(p.get("genus")) and p.get("genus") != t["genus"]
                               for p, t in zip(named, truths)) / n
    elif group == "absent_genus":
        f["named_genus"] = sum(bool(p.get("genus")) for p in named) / n
        f["named_species"] = sum(sp) / n
    elif group == "left_out_order":
        f["named_order"] = sum(bool(p.get("order")) for p in named) / n
    return f


def truths_of(df: pd.DataFrame) -> list[Lineage]:
    return [{r: (row[r] or None) for r in RANKS} for row in df[list(RANKS)].to_dict("records")]


def taxa_of(df: pd.DataFrame) -> dict[str, set[str]]:
    return {r: set(v for v in df[r] if v) for r in RANKS}


def cut(full: list[Lineage], ident: np.ndarray, cuts: dict[str, float]) -> list[Lineage]:
    """A top hit named down to the deepest rank whose identity cut-off it passes (ranks in order)."""
    out = []
    for lin, x in zip(full, ident):
        d: Lineage = dict(BLANK)
        for r in RANKS:
            if r == "subfamily":
                continue
            if r in cuts and x >= cuts[r] and lin.get(r):
                d[r] = lin[r]
            elif r in cuts:
                break
        if d.get("genus") and lin.get("subfamily"):
            d["subfamily"] = lin["subfamily"]
        out.append(d)
    return out


# -- peers ------------------------------------------------------------------------------------------
def _digest(*parts: pd.DataFrame) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update("\n".join(p.processid + ":" + p.seq).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


def _cached(work: Path, prefix: str, keys: pd.DataFrame, queries: pd.DataFrame, what: str,
            run: Callable[[Path], dict]) -> tuple[dict, float]:
    """A peer's result on (keys, queries), cached under ``work/<prefix>-<input hash>/<what>.json``: a rerun
    after a change to our model reruns only ours. ``run(folder)`` computes it there; returns (result, seconds)."""
    d = work / f"{prefix}-{_digest(keys, queries)}"
    d.mkdir(parents=True, exist_ok=True)
    done = d / ("top.json" if what == "hits" else f"{what}.json")
    if done.exists():
        saved = json.loads(done.read_text())
        return saved[what], saved["seconds"]
    t0 = time.perf_counter()
    out = run(d)
    seconds = time.perf_counter() - t0
    done.write_text(json.dumps({what: out, "seconds": seconds}))
    return out, seconds


def blast_top(keys: pd.DataFrame, queries: pd.DataFrame, work: Path, threads: int) -> tuple[dict, float]:
    """processid -> (top-hit key processid, identity); cached by input hash. Returns (hits, seconds)."""
    def run(d: Path) -> dict:
        write_fasta(d / "keys.fa", keys.processid, keys.seq)
        write_fasta(d / "q.fa", queries.processid, queries.seq)
        subprocess.run(["makeblastdb", "-in", str(d / "keys.fa"), "-dbtype", "nucl", "-out", str(d / "keys")],
                       check=True, capture_output=True)
        subprocess.run(["blastn", "-task", "megablast", "-query", str(d / "q.fa"), "-db", str(d / "keys"),
                        "-outfmt", "6 qseqid sseqid pident length bitscore", "-max_target_seqs", "50",
                        "-num_threads", str(threads), "-out", str(d / "hits.tsv")], check=True)
        hits = pd.read_csv(d / "hits.tsv", sep="\t", header=None, names=["q", "s", "pident", "length", "bitscore"],
                           dtype={"q": str, "s": str})
        top = hits.loc[hits.groupby("q", sort=False)["bitscore"].idxmax()]
        return {q: (s, p / 100.0) for q, s, p in zip(top.q, top.s, top.pident)}

    return _cached(work, "blast", keys, queries, "hits", run)


def vsearch_top(keys: pd.DataFrame, queries: pd.DataFrame, work: Path, threads: int) -> tuple[dict, float]:
    """processid -> (top-hit key processid, identity) by vsearch ``--usearch_global`` (exhaustive over the
    k-mer-ranked keys, global alignment, identity = matches / alignment columns less terminal gaps);
    cached like :func:`blast_top`."""
    def run(d: Path) -> dict:
        write_fasta(d / "keys.fa", keys.processid, keys.seq)
        write_fasta(d / "q.fa", queries.processid, queries.seq)
        subprocess.run(["vsearch", "--usearch_global", str(d / "q.fa"), "--db", str(d / "keys.fa"), "--id", "0.6",
                        "--maxaccepts", "8", "--maxrejects", "64", "--userout", str(d / "hits.tsv"),
                        "--userfields", "query+target+id", "--threads", str(threads)], check=True,
                       capture_output=True)
        out: dict[str, tuple[str, float]] = {}
        for line in (d / "hits.tsv").read_text().splitlines():
            qid, sid, ident = line.split("\t")
            if qid not in out or float(ident) / 100.0 > out[qid][1]:
                out[qid] = (sid, float(ident) / 100.0)
        return out

    return _cached(work, "vsearch-top", keys, queries, "hits", run)


def sintax_calls(keys: pd.DataFrame, queries: pd.DataFrame, work: Path, threads: int) -> tuple[dict, float]:
    """processid -> {rank: (name, bootstrap support)}; one run, read at any cut-off; cached."""
    def run(d: Path) -> dict:
        write_fasta(d / "keys.fa", keys.processid, keys.seq, [_sintax_header(r) for r in keys.to_dict("records")])
        write_fasta(d / "q.fa", queries.processid, queries.seq)
        subprocess.run(sintax_command(d / "q.fa", d / "keys.fa", d / "out.tsv", 0.5), check=True, capture_output=True)
        code = {"o": "order", "f": "family", "g": "genus", "s": "species"}
        back = {r: {v.replace(",", "_").replace(" ", "_"): v for v in keys[r] if v} for r in code.values()}
        calls: dict[str, dict] = {}
        for line in (d / "out.tsv").read_text().splitlines():
            f = line.split("\t")
            c: dict[str, tuple[str, float]] = {}
            for part in filter(None, (f[1] if len(f) > 1 else "").split(",")):
                k, _, rest = part.partition(":")
                if k in code and "(" in rest:
                    name, sup = rest.rsplit("(", 1)
                    c[code[k]] = (back[code[k]].get(name, name), float(sup.rstrip(")")))
            calls[f[0]] = c
        return calls

    return _cached(work, "sintax1", keys, queries, "calls", run)  # "1": one thread (a cache of two is not reused)


def sintax_named(calls: dict, pids: list[str], cutoff: float) -> list[Lineage]:
    out = []
    for p in pids:
        d: Lineage = dict(BLANK)
        for r in ("order", "family", "genus", "species"):
            name_sup = calls.get(p, {}).get(r)
            if name_sup is None or name_sup[1] < cutoff:
                break
            d[r] = name_sup[0]
        out.append(d)
    return out


# -- ours -------------------------------------------------------------------------------------------
def engine_config(args: argparse.Namespace) -> Any:
    """The engine's defaults, with ``--naming KEY=VALUE`` settings of its naming model (an experiment's
    variant; the run's JSON records them)."""
    import dataclasses

    from biodiscover.discovery.engine import EngineConfig
    from biodiscover.discovery.naming import NamingConfig

    changes: dict[str, Any] = {}
    for item in getattr(args, "naming", None) or ():
        key, _, text = item.partition("=")
        default = getattr(NamingConfig(), key)  # AttributeError: not a setting
        if text.lower() in ("null", "none"):  # an optional setting switched off: collection_weight=null
            changes[key] = None
        elif isinstance(default, bool):
            changes[key] = text.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):  # JSON: alternatives=[[150,0.3,5]], optional_ranks=["subfamily"]
            changes[key] = tuple(tuple(v) if isinstance(v, list) else v for v in json.loads(text))
        else:
            changes[key] = type(default)(text)
    return EngineConfig(naming=dataclasses.replace(NamingConfig(), **changes))


def run_ours(fold: Fold, args: argparse.Namespace) -> dict:
    from biodiscover.discovery.engine import DiscoveryModel

    t0 = time.perf_counter()
    extra = fold.extra
    model = DiscoveryModel(engine_config(args)).fit(specimens(fold.keys), specimens(extra), ())
    fit_s = time.perf_counter() - t0
    q = fold.queries
    t0 = time.perf_counter()
    res = model.triage(specimens(q))
    triage_s = time.perf_counter() - t0
    return {"model": model, "results": dict(zip(q.processid, res)), "fit_seconds": fit_s, "triage_seconds": triage_s}


def named_at(result, level: float | None, optional: tuple[str, ...] = ("subfamily",)) -> Lineage:
    """Our named lineage: the product's own decision (level None) or re-decided at ``level``."""
    if level is None:
        deepest = result.deepest_rank
    else:
        from biodiscover.discovery.naming import deepest_confident

        deepest = deepest_confident(result.labels, result.confidence, level, optional)
    return {r: (result.labels[r] if deepest and RANKS.index(r) <= RANKS.index(deepest) else None) for r in RANKS}


def _has_levels() -> bool:
    try:
        from biodiscover.discovery.naming import deepest_confident  # noqa: F401
    except ImportError:  # an engine before the naming model: its own decisions only
        return False
    return True


# -- one fold ---------------------------------------------------------------------------------------
def score_fold(fold: Fold, args: argparse.Namespace) -> dict:
    log.info("%s: %d keys, %d extra, queries %s", fold.name, len(fold.keys), len(fold.extra),
             {g: len(d) for g, d in fold.groups.items()})
    taxa = taxa_of(fold.keys)
    q = fold.queries
    lin_of = {row["processid"]: {r: row[r] or None for r in RANKS} for row in fold.keys.to_dict("records")}
    out: dict = {"fold": fold.name, "kind": fold.kind, "keys": len(fold.keys), "extra": len(fold.extra),
                 "groups": {g: len(d) for g, d in fold.groups.items()}, "tools": {}}
    tools: dict[str, dict[str, Lineage]] = {}
    peers = not args.skip_peers  # on the stability halves too: is agreement across halves within any tool's reach?
    ours = run_ours(fold, args)
    res = ours["results"]
    model = ours["model"]
    optional = getattr(getattr(model, "naming_", None), "walk_optional", ("subfamily",))
    tools["ours"] = {p: named_at(r, None) for p, r in res.items()}
    if _has_levels():
        for lv in LEVELS:
            tools[f"ours@{lv}"] = {p: named_at(r, lv, optional) for p, r in res.items()}
    out["ours_seconds"] = {"fit": round(ours["fit_seconds"], 1), "triage": round(ours["triage_seconds"], 1)}
    out["ours_priors"] = next((dict(r.priors) for r in res.values() if getattr(r, "priors", None)), {})
    naming = getattr(model, "naming_", None)
    if naming is not None:
        out["predicted"] = naming.expected_.get(f"{model.config.naming.level}")
        out["predicted_by_level"] = naming.expected_
        # the same forecast with the simulated queries decided at the fold's own estimated shares (``ours_priors``),
        # as its queries were: what the measurement is held to (None: even odds, or an engine before ``expected_at``)
        at_share = getattr(naming, "expected_at", None)
        out["predicted_at_share"] = at_share(out["ours_priors"], model.config.naming.level) \
            if at_share is not None and out["ours_priors"] else None
        out["support"] = naming.support_
    learned = {r for r in RANKS if naming is None or naming.support_.get(r, {}).get("learned")}
    if peers:
        top = "vsearch" if fold.kind in LARGE_REFERENCE and args.loo_top_hit == "vsearch" else "BLAST"
        out["top_hit_tool"] = top
        hits, bs = (vsearch_top if top == "vsearch" else blast_top)(fold.keys, q, args.work, args.threads)
        full = [lin_of[hits[p][0]] if p in hits else dict(BLANK) for p in q.processid]
        ident = np.array([hits[p][1] if p in hits else 0.0 for p in q.processid])
        out["top_hit_seconds"] = round(bs, 1)
        tools[f"{top} top hit"] = dict(zip(q.processid, full))
        tools[f"{top} 97/95/90/85"] = dict(zip(q.processid, cut(full, ident, LADDER)))
        for c in SPECIES_CUTS:
            tools[f"{top} species {c}"] = dict(zip(q.processid, cut(full, ident, {**LADDER, "species": c})))
        for c in GENUS_CUTS:
            tools[f"{top} genus {c}"] = dict(zip(q.processid, cut(
                full, ident, {"order": min(0.85, c), "family": min(0.90, c), "genus": c, "species": 2.0})))
        calls, ss = sintax_calls(fold.keys, q, args.work, args.threads)
        out["sintax_seconds"] = round(ss, 1)
        for c in SINTAX_CUTS:
            tools[f"SINTAX {c}"] = dict(zip(q.processid, sintax_named(calls, list(q.processid), c)))
    for name, named in tools.items():
        t_out: dict = {}
        for g, d in fold.groups.items():
            t_out[g] = group_figures(g, truths_of(d), [named[p] for p in d.processid])
        ranks = RANKS if name.startswith("ours") else \
            tuple(r for r in RANKS if r != "subfamily")
        t_out["taxxi"] = taxxi(truths_of(q), [named[p] for p in q.processid], taxa, ranks)
        out["tools"][name] = t_out
    # novelty: P(species absent) — known vs absent species (and absent genera where present)
    known = [res[p].novelty for p in fold.groups["known"].processid]
    absent_groups = ("absent_species", "absent_genus", "left_out_order")
    novel = [res[p].novelty for g in absent_groups if g in fold.groups for p in fold.groups[g].processid]
    y = np.r_[np.zeros(len(known)), np.ones(len(novel))]
    s = np.nan_to_num(np.r_[known, novel], nan=1.0)
    species = [*fold.groups["known"].species, *(x for g in absent_groups if g in fold.groups
                                                  for x in fold.groups[g].species)]
    out["novelty_auroc_interval"] = species_interval(species, _auroc_of(y, s))
    out["novelty"] = {**novelty_scores(y, s), "known_flagged_novel": float(np.mean(np.array(known) >= 0.5)),
                      "named_species_and_novel": float(np.mean([
                          bool(named_at(res[p], None)["species"]) and res[p].is_novel for p in q.processid]))}
    if fold.kind == "per-order":
        out["candidates"] = candidate_figures(fold, ours, args)
    if peers:
        ident_known = [hits[p][1] if p in hits else 0.0 for p in fold.groups["known"].processid]
        ident_novel = [hits[p][1] if p in hits else 0.0 for g in absent_groups
                       if g in fold.groups for p in fold.groups[g].processid]
        out["novelty_blast"] = novelty_scores(y, -np.r_[ident_known, ident_novel])
    # calibration of P(right) per rank: the label at each rank against the truth (absent = wrong)
    truths = dict(zip(q.processid, truths_of(q)))
    out["ece"], out["ece_interval"] = {}, {}
    for r in RANKS:
        if r not in learned:  # a published cut-off decides there: its 1/0 is no probability
            out["ece"][r] = None
            continue
        ps, ys, sp = [], [], []
        for p, x in res.items():
            if x.labels.get(r) and truths[p].get(r):
                ps.append(x.confidence[r])
                ys.append(float(x.labels[r] == truths[p][r]))
                sp.append(truths[p].get("species") or p)
        out["ece"][r] = reliability(ps, ys)["ece"] if ps else None
        if ps:  # species resampled; ECE's bias is upward at small n, so the interval is a little high too
            out["ece_interval"][r] = species_interval(sp, _ece_of(np.asarray(ps), np.asarray(ys)))
    # over-classification per order inside this fold (for the "holds per clade" target)
    # and beside it what the simulation forecast for the order, each with Wilson's interval over its species
    out["oc_by_order"], out["oc_by_order_sure"] = {}, {}
    if "absent_species" in fold.groups:
        forecast = ((out.get("predicted") or {}).get("absent_species_named_by_order") or {})
        for o, sub in fold.groups["absent_species"].groupby("order"):
            rate = float(np.mean([bool(tools["ours"][p]["species"]) for p in sub.processid]))
            n, f = int(sub.species.nunique()), forecast.get(o)
            out["oc_by_order"][o] = rate
            out["oc_by_order_sure"][o] = {
                "measured": _wilson_rate(rate, n), "species": n,
                "forecast": _wilson_rate(f["rate"], int(f["groups"])) if f else None,
                "forecast_species": int(f["groups"]) if f else None}
    if peers and fold.kind == "per-order":
        out["sure"] = how_sure(fold, out, tools)
    out["_named"] = dict(tools)
    return out


def _wilson_rate(rate: float, species: int) -> tuple[float, float, float]:
    """A rate over ``species`` groups and Wilson's 95 % interval, the rate read as that share of the species."""
    return (float(rate), *wilson_interval(rate * species, species))


def _auroc_of(y: np.ndarray, s: np.ndarray) -> Callable[[np.ndarray], float]:
    return lambda i: novelty_auroc(y[i], s[i]) if 0 < y[i].sum() < len(i) else float("nan")


def _ece_of(p: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], float]:
    return lambda i: float(reliability(p[i], y[i])["ece"])


def how_sure(fold: Fold, out: dict, tools: dict[str, dict[str, Lineage]]) -> dict:
    """95 % intervals for the per-order targets: known named right minus the best species cut-off's and absent
    species to the right genus minus the best genus cut-off's (whole species resampled, ``species_interval``);
    the over-classification measured and what ``build-reference`` forecast, each with Wilson's interval over
    its species (the fold's absent species; the simulation's left-out ones). Which misses are beyond the
    sampling error of a fold with a few dozen absent species, and which are not, is what these say."""
    v = versus_identity(out)
    top = out.get("top_hit_tool", "BLAST")
    ours = tools["ours"]
    known, absent = fold.groups["known"], fold.groups["absent_species"]

    def right(tool: dict[str, Lineage], d: pd.DataFrame, rank: str) -> np.ndarray:
        return np.array([tool[p][rank] == t for p, t in zip(d.processid, d[rank])], dtype=float)

    sure: dict[str, Any] = {"known_species": int(known.species.nunique()),
                            "absent_species": int(absent.species.nunique())}
    if v["species"]["identity_cut"] is not None:
        a, b = right(ours, known, "species"), right(tools[f"{top} species {v['species']['identity_cut']}"], known,
                                                   "species")
        sure["known_right_minus_cut"] = species_interval(known.species, lambda i: float(a[i].mean() - b[i].mean()))
    if v["genus"]["identity_cut"] is not None:
        a, b = right(ours, absent, "genus"), right(tools[f"{top} genus {v['genus']['identity_cut']}"], absent, "genus")
        sure["genus_right_minus_cut"] = species_interval(absent.species, lambda i: float(a[i].mean() - b[i].mean()))
    # a rate of zero has no spread to resample: both OCs get Wilson's interval over their species instead
    sure["oc_measured"] = _wilson_rate(out["tools"]["ours"]["absent_species"]["named_species"], sure["absent_species"])
    pr = (out.get("predicted") or {}).get("absent_species_named")
    if pr:
        sure["oc_predicted"] = _wilson_rate(pr["rate"], int(pr["groups"]))
        sure["oc_predicted_groups"] = int(pr["groups"])
    return sure


def candidate_figures(fold: Fold, ours: dict, args: argparse.Namespace) -> dict:
    """Candidate species from the fold's known + absent-species queries, against vsearch 97 % in the same run.

    AMI against the true species over the absent-species specimens our model flags novel (both tools
    scored on the same specimens), vsearch ``--cluster_size`` 97 % also over all of them, and the known
    (test) specimens our proposals hold: known species proposed as new.
    """
    from bench_clustering import run_vsearch

    from biodiscover.discovery.metrics import clustering_scores
    from biodiscover.discovery.proposals import candidate_species

    q = pd.concat([fold.groups["known"], fold.groups["absent_species"]]).drop_duplicates("processid")
    res = ours["results"]
    t0 = time.perf_counter()
    props = candidate_species(specimens(q), [res[p] for p in q.processid], threshold=ours["model"].barcode_gap_)
    seconds = time.perf_counter() - t0
    cand = {m.processid: i for i, p in enumerate(props) for m in p.members}
    unseen = fold.groups["absent_species"].reset_index(drop=True)
    known = set(fold.groups["known"].processid)
    flagged = [p for p in unseen.processid if p in cand]
    sp = dict(zip(unseen.processid, unseen.species))
    d = args.work / f"cluster-{_digest(unseen)}"
    d.mkdir(parents=True, exist_ok=True)
    v = run_vsearch(unseen, 0.97, d, args.threads)
    lab = dict(zip(unseen.processid, v["labels"]))
    truth = [sp[p] for p in flagged]
    ours_l, theirs = [cand[p] for p in flagged], [lab[p] for p in flagged]

    def ami_gap(i: np.ndarray) -> float:  # a species drawn twice: its specimens twice, as one species
        return float(clustering_scores([truth[j] for j in i], [ours_l[j] for j in i])["ami"]
                     - clustering_scores([truth[j] for j in i], [theirs[j] for j in i])["ami"])

    return {"n_proposals": len(props), "seconds": round(seconds, 1),
            "ami_minus_vsearch": species_interval(truth, ami_gap) if flagged else None,
            "absent_in_candidates": len(flagged) / max(1, len(unseen)),
            "known_in_candidates": sum(p in known for p in cand) / max(1, len(known)),
            "ours_ami": clustering_scores([sp[p] for p in flagged], [cand[p] for p in flagged])["ami"]
            if flagged else None,
            "vsearch97_ami_same": clustering_scores([sp[p] for p in flagged], [lab[p] for p in flagged])["ami"]
            if flagged else None,
            "vsearch97_ami_all": clustering_scores(list(unseen.species), v["labels"])["ami"]}


def versus_identity(o: dict) -> dict:
    """Ours against the best single identity cut-off with no more over-classification, on this fold.

    Species: known named right vs absent species named to a species (OC). Genus: absent species
    named to the right genus vs to a wrong genus. Where no cut-off is as strict as ours, the
    strictest one is given with its own error rate (``identity_err``), so the row says so.
    """
    t = o["tools"]
    ours = t["ours"]

    def best(cuts: tuple[float, ...], tool: str, good, bad, ours_bad: float) -> dict:
        rows = [(good(t[f"{tool} {c}"]), bad(t[f"{tool} {c}"]), c) for c in cuts if f"{tool} {c}" in t]
        if not rows:
            return {"identity_right": None, "identity_err": None, "identity_cut": None}
        ok = [r for r in rows if r[1] <= ours_bad + 1e-9]
        g, b, c = max(ok) if ok else min(rows, key=lambda r: (r[1], -r[0]))
        return {"identity_right": g, "identity_err": b, "identity_cut": c}

    oc = ours["absent_species"]["named_species"]
    wrong = ours["absent_species"]["genus_wrong"]
    return {"species": {"ours_right": ours["known"]["species_right"], "ours_oc": oc,
                        **best(SPECIES_CUTS, f"{o.get('top_hit_tool', 'BLAST')} species",
                               lambda x: x["known"]["species_right"],
                               lambda x: x["absent_species"]["named_species"], oc)},
            "genus": {"ours_right": ours["absent_species"]["genus_right"], "ours_wrong": wrong,
                      **best(GENUS_CUTS, f"{o.get('top_hit_tool', 'BLAST')} genus",
                             lambda x: x["absent_species"]["genus_right"],
                             lambda x: x["absent_species"]["genus_wrong"], wrong)}}


def stability(results: list[dict]) -> dict:
    """Agreement of the two halves' calls on the same queries: ours, and each peer run on both halves."""
    a, b = results

    def deepest(d: Lineage) -> str | None:
        return max((r for r in RANKS if d.get(r)), key=RANKS.index, default=None)

    def agree(tool: str) -> dict:
        na, nb = a["_named"][tool], b["_named"][tool]
        pids = sorted(set(na) & set(nb))
        return {"n": len(pids), "same_deepest_rank": float(np.mean([deepest(na[p]) == deepest(nb[p]) for p in pids])),
                "same_named_lineage": float(np.mean([na[p] == nb[p] for p in pids]))}

    out = agree("ours")
    out["by_tool"] = {t: agree(t) for t in a["_named"] if t in b["_named"] and t != "ours"}
    return out


# -- report -----------------------------------------------------------------------------------------
def _f(v) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def _ci(v: Sequence[float] | None) -> str:
    """A figure and its interval: ``+0.012 [−0.004, +0.031]`` style, signed where it can be negative."""
    if v is None:
        return "—"
    x, lo, hi = v
    fmt = "{:+.3f}" if lo < 0 or x < 0 else "{:.3f}"
    return f"{fmt.format(x)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def forecast_row(o: dict) -> str:
    """One fold's row of the predicted-vs-measured table: each figure predicted at even odds, predicted at the
    fold's own estimated shares (``predicted_at_share``), and measured. Why both: the fold's queries are decided at
    its shares, so the even-odds forecast is not what the measurement can be held to (ML review M2)."""
    pr, at, t = o.get("predicted") or {}, o.get("predicted_at_share") or {}, o["tools"]["ours"]

    def pm(key: str, measured: float | None) -> str:
        return f"{_f((pr.get(key) or {}).get('rate'))} / {_f((at.get(key) or {}).get('rate'))} / {_f(measured)}"

    by = ", ".join(f"{k} {_f(v)}" for k, v in sorted(o.get("oc_by_order", {}).items()))
    return (f"| {o['fold']} | {pm('known_species_right', t.get('known', {}).get('species_right'))} | "
            f"{pm('absent_species_named', t.get('absent_species', {}).get('named_species'))} | "
            f"{pm('absent_species_genus_right', t.get('absent_species', {}).get('genus_right'))} | "
            f"{pm('absent_order_named', t.get('left_out_order', {}).get('named_order'))} | {by} |")


def markdown(all_out: list[dict], stab: dict | None) -> str:
    lines = []
    per = [o for o in all_out if o["kind"] == "per-order"]
    if per:
        lines += ["### Per-order folds (keys = the order's train)", "",
                  "| fold | tool | known: species right | known: wrong species | absent sp.: named to species | "
                  "absent sp.: right genus | absent sp.: wrong genus | absent genera: named to genus |",
                  "|---|---|---|---|---|---|---|---|"]
        for o in per:
            for name in _shown_tools(o):
                t = o["tools"][name]
                lines.append(f"| {o['fold'].split()[-1]} | {name} | {_f(t['known']['species_right'])} | "
                             f"{_f(t['known']['species_wrong'])} | {_f(t['absent_species']['named_species'])} | "
                             f"{_f(t['absent_species']['genus_right'])} | {_f(t['absent_species']['genus_wrong'])} | "
                             f"{_f(t['absent_genus']['named_genus'])} |")
        lines.append("")
        lines += ["Ours against the best single identity cut-off (BLAST top hit) with no more over-classification on "
                  "the same fold (where none is as strict, the strictest, with its own error):", "",
                  "| fold | known species right: ours / identity | OC (absent sp. named to species): ours / identity "
                  "(cut) | absent sp. right genus: ours / identity | wrong genus: ours / identity (cut) |",
                  "|---|---|---|---|---|"]
        for o in per:
            if "top_hit_tool" not in o:
                continue
            v = versus_identity(o)
            s_, g_ = v["species"], v["genus"]
            lines.append(f"| {o['fold'].split()[-1]} | {_f(s_['ours_right'])} / {_f(s_['identity_right'])} | "
                         f"{_f(s_['ours_oc'])} / {_f(s_['identity_err'])} ({s_['identity_cut']}) | "
                         f"{_f(g_['ours_right'])} / {_f(g_['identity_right'])} | {_f(g_['ours_wrong'])} / "
                         f"{_f(g_['identity_err'])} ({g_['identity_cut']}) |")
        lines += ["", "Candidate species (known + absent-species queries of the fold; AMI against the true species):",
                  "",
                  "| fold | proposals | absent sp. in candidates | known in candidates | AMI ours | AMI vsearch 97 % "
                  "(same specimens) | AMI vsearch 97 % (all absent sp.) |", "|---|---|---|---|---|---|---|"]
        for o in per:
            c = o.get("candidates")
            if c:
                lines.append(f"| {o['fold'].split()[-1]} | {c['n_proposals']} | {_f(c['absent_in_candidates'])} | "
                             f"{_f(c['known_in_candidates'])} | {_f(c['ours_ami'])} | {_f(c['vsearch97_ami_same'])} | "
                             f"{_f(c['vsearch97_ami_all'])} |")
        lines.append("")
        sure = [o for o in per if o.get("sure")]
        if sure:
            lines += ["How sure: 95 % intervals, differences with whole species resampled (a fold's absent species "
                      "are a few dozen chances, not hundreds of specimens), over-classification by Wilson over the "
                      "species (the simulation's left-out species for the forecast):",
                      "", "| fold | known species right: ours − best cut | absent sp. right genus: ours − best genus "
                      "cut | OC forecast by `build-reference` | OC measured | AMI: ours − vsearch 97 % |",
                      "|---|---|---|---|---|---|"]
            for o in sure:
                u = o["sure"]
                c = (o.get("candidates") or {}).get("ami_minus_vsearch")
                lines.append(f"| {o['fold'].split()[-1]} | {_ci(u.get('known_right_minus_cut'))} | "
                             f"{_ci(u.get('genus_right_minus_cut'))} | {_ci(u.get('oc_predicted'))} "
                             f"({u.get('oc_predicted_groups', '—')} species) | {_ci(u.get('oc_measured'))} "
                             f"({u['absent_species']} species) | {_ci(c)} |")
            lines.append("")
    for kind, head, col, other in (
            ("loo", "Leave-one-order-out", "left out", "left-out order given an order"),
            ("one-order", "One order as the reference, the two others in the collection", "reference",
             "other orders given an order")):
        folds = [o for o in all_out if o["kind"] == kind]
        if not folds:
            continue
        lines += [f"### {head} (TAXXI classes at the deepest rank the reference holds)", "",
                  f"| {col} | tool | TP | UC | MC | OC | {other} |", "|---|---|---|---|---|---|---|"]
        for o in folds:
            for name in _shown_tools(o):
                t = o["tools"][name]
                x = t["taxxi"]
                lines.append(f"| {o['fold'].split()[-1]} | {name} | {_f(x['TP'])} | {_f(x['UC'])} | {_f(x['MC'])} | "
                             f"{_f(x['OC'])} | {_f(t['left_out_order']['named_order'])} |")
        lines.append("")
    regions = [o for o in all_out if o["kind"] == "region"]
    if regions:
        lines += ["### A collection from another country (reference = every labelled record from elsewhere; TAXXI "
                  "classes at the deepest rank the reference holds)", "",
                  "| country | tool | TP | UC | MC | OC | known: species right | known: wrong species | "
                  "absent sp.: named to species | absent sp.: right genus | absent sp.: wrong genus | "
                  "absent genera: named to genus |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for o in regions:
            for name in _shown_tools(o):
                t = o["tools"][name]
                x, k, a, g = t["taxxi"], t["known"], t["absent_species"], t["absent_genus"]
                lines.append(f"| {o['fold'].split(maxsplit=1)[-1]} ({o['groups']['known']} / "
                             f"{o['groups']['absent_species']} / {o['groups']['absent_genus']}) | {name} | "
                             f"{_f(x['TP'])} | {_f(x['UC'])} | {_f(x['MC'])} | {_f(x['OC'])} | "
                             f"{_f(k.get('species_right'))} | {_f(k.get('species_wrong'))} | "
                             f"{_f(a.get('named_species'))} | {_f(a.get('genus_right'))} | "
                             f"{_f(a.get('genus_wrong'))} | {_f(g.get('named_genus'))} |")
        lines.append("")
    lines += ["### Predicted by `build-reference` (simulation on the reference) vs measured on the fold "
              "(ours, default level)",
              "",
              "Each cell: predicted at even odds / predicted at the fold's own estimated shares of absent taxa (as "
              "its queries were decided; — for a run before it was kept) / measured.", "",
              "| fold | known species right | absent sp. named to species | absent sp. right genus "
              "| absent order named to an order | measured OC by order |", "|---|---|---|---|---|---|"]
    lines += [forecast_row(o) for o in all_out]
    lines.append("")
    by_order = [o for o in all_out if o.get("oc_by_order_sure")]
    if by_order:
        lines += ["Over-classification by order (absent species named to a species), forecast by `build-reference` "
                  "and measured, each with Wilson's 95 % interval over its species:", "",
                  "| fold | order | forecast (left-out species) | measured (absent species) |", "|---|---|---|---|"]
        for o in by_order:
            for order, u in sorted(o["oc_by_order_sure"].items()):
                lines.append(f"| {o['fold']} | {order} | {_ci(u['forecast'])} ({u['forecast_species'] or '—'}) | "
                             f"{_ci(u['measured'])} ({u['species']}) |")
        lines.append("")
    lines += ["### Novelty, calibration and timing (ours)", "",
              "| fold | AUROC P(species absent) | AUROC top hit −identity | known flagged novel | named to species and "
              "novel | ECE order / family / subfamily / genus / species | fit s | triage s |",
              "|---|---|---|---|---|---|---|---|"]
    for o in all_out:
        n = o["novelty"]
        e = " / ".join(_f(o["ece"][r]) for r in RANKS)
        lines.append(f"| {o['fold']} | {_f(n['auroc'])} | {_f(o.get('novelty_blast', {}).get('auroc'))} | "
                     f"{_f(n['known_flagged_novel'])} | {_f(n['named_species_and_novel'])} | {e} | "
                     f"{o['ours_seconds']['fit']} | {o['ours_seconds']['triage']} |")
    with_ci = [o for o in all_out if o.get("ece_interval")]
    if with_ci:
        lines += ["", "Novelty AUROC and ECE with their 95 % intervals, whole species resampled (ECE reads high at "
                  "small n: so does its interval):", "",
                  "| fold | AUROC P(species absent) | ECE order | family | subfamily | genus | species |",
                  "|---|---|---|---|---|---|---|"]
        for o in with_ci:
            lines.append(f"| {o['fold']} | {_ci(o.get('novelty_auroc_interval'))} | "
                         + " | ".join(_ci(o["ece_interval"].get(r)) for r in RANKS) + " |")
    if stab:
        lines += ["", f"Stability (two disjoint halves of the pooled train keys, {stab['n']} queries): same deepest "
                  f"rank {stab['same_deepest_rank']:.3f}, same named lineage {stab['same_named_lineage']:.3f}."]
        if stab.get("by_tool"):
            lines += ["", "| tool (each run on both halves) | same deepest rank | same named lineage |",
                      "|---|---|---|"]
            lines += [f"| {t} | {v['same_deepest_rank']:.3f} | {v['same_named_lineage']:.3f} |"
                      for t, v in sorted(stab["by_tool"].items(), key=lambda kv: -kv[1]["same_deepest_rank"])]
    return "\n".join(lines) + "\n"


def _shown_tools(o: dict) -> list[str]:
    top = o.get("top_hit_tool", "BLAST")
    keep = ["ours", "ours@0.9", "ours@0.95", "ours@0.99", f"{top} top hit", f"{top} 97/95/90/85", f"{top} species 0.99",
            f"{top} species 0.998", f"{top} genus 0.9", "SINTAX 0.8", "SINTAX 0.95"]
    return [k for k in keep if k in o["tools"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_folds"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_folds/folds.json"))
    ap.add_argument("--folds", default="per-order,loo,stability")
    ap.add_argument("--only", default=None, help="run only folds whose name contains this text")
    ap.add_argument("--max-group", type=int, default=2500, help="cap per query group (sampled, seeded)")
    ap.add_argument("--max-heldout", type=int, default=600, help="cap on other_heldout half B per order")
    ap.add_argument("--max-extra-heldout", type=int, default=1500, help="cap on other_heldout half A per order")
    ap.add_argument("--max-left-out", type=int, default=1500, help="cap on the left-out order's records")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--naming", nargs="*", default=[], metavar="KEY=VALUE",
                    help="naming-model settings for an experiment (NamingConfig fields; recorded in the JSON)")
    ap.add_argument("--loo-top-hit", choices=("blast", "vsearch"), default="blast",
                    help="top-hit peer on the leave-one-order-out, one-order and region folds (37k-70k keys: BLAST "
                         "takes hours on 2 cores; vsearch --usearch_global is the same top-hit-and-identity peer, "
                         "exhaustive)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    df = load_clean(args.data)
    folds = make_folds(df, args.folds.split(","), args)
    if args.only:
        folds = [f for f in folds if args.only in f.name]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    results: list[dict] = []
    stab = None

    def write() -> None:  # after every fold: a long run interrupted keeps what it measured
        payload = {"data": str(args.data), "commit": commit, "argv": sys.argv,
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, no GPU",
                   "load": os.getloadavg(), "total_seconds": round(time.perf_counter() - t_all, 1),
                   "folds": [{k: v for k, v in o.items() if not k.startswith("_")} for o in results],
                   "stability": stab}
        args.out.write_text(json.dumps(payload, indent=1, default=float))
        try:
            args.out.with_suffix(".md").write_text(markdown(results, stab))
        except Exception:  # a report bug must not cost the measurements: the JSON is already written
            log.exception("markdown report failed; figures are in %s", args.out)

    for f in folds:
        results.append(score_fold(f, args))
        write()
    st = [o for o in results if o["kind"] == "stability"]
    stab = stability(st) if len(st) == 2 else None
    write()
    print(markdown(results, stab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
