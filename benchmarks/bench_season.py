"""A second lab's season on real barcodes: build-reference, five weekly plates through `run`, scored against truth.

    python benchmarks/bench_season.py --work W --out season.json

The lab's reference is every Diptera record of the dev file plus the Coleoptera of five families (Chrysomelidae,
Curculionidae, Coccinellidae, Cerambycidae, Dytiscidae), ``train`` as keys and ``val`` as calibration. Five weekly
plates (seed 36) hold 820 ``test`` specimens of the reference's species, specimens of up to 20 species absent from it
in its genera (``test_unseen``: 16 qualify), of 12 species of genera it lacks (``other_heldout``, Diptera and
Coleoptera), and in week 3 of 8 Lepidoptera species (an order it lacks); 10 % of reads are cut to 300-500 nt from one
end and 5 % carry a few N's. Each plate holds processid, sampleid, barcode and place only; the truth stays here.
The CLI runs in a child process (``build-reference``, ``run``, ``export -f csv``), so ``PYTHONPATH`` pointing at
another checkout measures that code. Figures are per specimen and per true species (each species weighing the same,
as build-reference's forecast does).

Why: the e36 season review cut such a season by hand and found what the dev folds had not shown: five GenBank keys
filed as *Phyllotreta cruciferae* 18 % from the rest of that species named every *P. striolata* (absent) *P.
cruciferae*, and a genus the reference lacked named *Sitona* from 84 % identity.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FAMILIES = ("Chrysomelidae", "Curculionidae", "Coccinellidae", "Cerambycidae", "Dytiscidae")
PLATE_COLUMNS = ["processid", "sampleid", "dna_barcode", "country", "province_state", "coord-lat", "coord-lon"]
WEEKS = 5


def cut(data: Path, work: Path) -> pd.DataFrame:
    """Write the reference (``ref.csv``) and the plates (``plates/weekN.csv``) under ``work``; return the truth."""
    rng = np.random.default_rng(36)
    d = pd.read_csv(data, dtype=str, keep_default_na=False)
    inref = (d.order == "Diptera") | ((d.order == "Coleoptera") & d.family.isin(FAMILIES))
    ref = d[inref & d.split.isin(["train", "val"])]
    ref.to_csv(work / "ref.csv", index=False)
    keys = ref[ref.split == "train"]
    genera, species = set(keys.genus), set(keys.species)
    known = d[inref & (d.split == "test") & d.species.isin(species)]
    unseen = d[inref & (d.split == "test_unseen") & d.genus.isin(genera) & ~d.species.isin(species)]
    heldout = d[d.order.isin(["Diptera", "Coleoptera"]) & (d.split == "other_heldout") & ~d.genus.isin(genera)]
    lep = d[(d.order == "Lepidoptera") & (d.split == "test")]

    def pick(pool: pd.DataFrame, n: int, per: int) -> pd.DataFrame:
        counts = pool.species.value_counts()
        enough = counts[counts >= 3].index.tolist()
        chosen = rng.choice(enough, size=min(n, len(enough)), replace=False)
        return pd.concat(pool[pool.species == s].sample(n=min(per, int((pool.species == s).sum())),
                                                        random_state=int(rng.integers(10**9))) for s in chosen)

    groups = [(known.sample(n=820, random_state=1), "known"), (pick(unseen, 20, 12), "absent species"),
              (pick(heldout, 12, 12), "absent genus")]
    lepidoptera = pick(lep, 8, 6)
    rows = pd.concat([g.assign(category=c) for g, c in groups])
    rows = pd.concat([rows.assign(week=rng.integers(0, WEEKS, size=len(rows)) + 1),
                      lepidoptera.assign(category="absent order", week=3)])
    (work / "plates").mkdir(exist_ok=True)
    for w in range(1, WEEKS + 1):
        p = rows[rows.week == w].sample(frac=1, random_state=w).copy()
        reads = []
        for s in p.dna_barcode:
            u = rng.random()
            if u < 0.10 and len(s) > 550:  # a partial read: 300-500 nt from one end
                n = int(rng.integers(300, 501))
                s = s[:n] if rng.random() < 0.5 else s[-n:]
            elif u < 0.15:  # a few N's
                bases = list(s)
                for j in rng.choice(len(bases), size=int(rng.integers(1, 6)), replace=False):
                    bases[j] = "N"
                s = "".join(bases)
            reads.append(s)
        p["dna_barcode"] = reads
        p[PLATE_COLUMNS].to_csv(work / "plates" / f"week{w}.csv", index=False)
    return rows[["processid", "category", "order", "family", "genus", "species"]]


def cli(*args: str) -> None:
    """``biodiscover ARGS`` in a child process of this interpreter (its ``PYTHONPATH`` is the code measured)."""
    proc = subprocess.run([sys.executable, "-c", "from biodiscover.cli.main import main; raise SystemExit(main())",
                           *args], capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: a plate with rows set aside
        raise SystemExit(f"biodiscover {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def score(truth: pd.DataFrame, sheet: Path) -> dict[str, Any]:
    """The season's figures from the export's assignments.csv against ``truth``."""
    with open(sheet, newline="", encoding="utf-8-sig") as fh:
        named = {r["processid"]: r for r in csv.DictReader(fh)}
    out: dict[str, Any] = {}

    def share(category: str, what: str, test: Any) -> None:
        per_species: dict[str, list[bool]] = defaultdict(list)
        for t in truth[truth.category == category].itertuples():
            if t.processid in named:
                per_species[t.species].append(bool(test(t, named[t.processid])))
        flat = [v for vs in per_species.values() for v in vs]
        out[f"{category}: {what}"] = {"specimens": f"{sum(flat)}/{len(flat)}",
                                      "per species": round(float(np.mean([np.mean(v) for v in per_species.values()])),
                                                           3)}

    share("known", "named right to species", lambda t, a: a["label_species"] == t.species)
    share("known", "named a wrong species", lambda t, a: a["label_species"] not in ("", t.species))
    share("absent species", "named to a species", lambda t, a: a["label_species"] != "")
    share("absent species", "named to the right genus", lambda t, a: a["label_genus"] == t.genus)
    share("absent species", "named to a wrong genus", lambda t, a: a["label_genus"] not in ("", t.genus))
    share("absent genus", "named to a genus", lambda t, a: a["label_genus"] != "")
    share("absent order", "given an order", lambda t, a: a["label_order"] != "")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    truth = cut(args.data, work)
    cli("build-reference", "--data", str(work / "ref.csv"), "--out", str(work / "ref"), "--keys", "train",
        "--calibration", "val", "--outliers", "", "--force")
    db = work / "lab.sqlite"
    for stale in work.glob("lab.sqlite*"):  # a season of its own each time: the database, its -wal, its backups
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    cli("run", "--collections", str(work / "plates"), "--model", str(work / "ref"), "--db", str(db))
    cli("export", "--db", str(db), "--run", "1", "-f", "csv", "-o", str(work / "export"), "--force")
    figures = score(truth, work / "export" / "assignments.csv")
    for k, v in figures.items():
        print(f"{k}: {v['specimens']} specimens, {v['per species']} per species", flush=True)
    args.out.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
