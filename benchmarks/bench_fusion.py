"""What the photograph adds to triage: DNA only vs DNA + image (fused) vs image only.

Takes a finished ``biodiscover demo`` work directory (synthetic dataset with
truth, trained bundle with the image classifier, the "new collection" in which
a share of barcodes failed) and triages the same collection twice through the
real pipeline (``workflows.triage.run_triage``), with and without photographs,
into two fresh SQLite files; both runs are scored against the synthetic truth
with the demo's own scorer (``workflows.demo.score_run``), separately for the
specimens that have a barcode and for those that have only a photograph.

    biodiscover demo --workdir /tmp/demo            # ≈4 min on 2 cores
    python benchmarks/bench_fusion.py --workdir /tmp/demo --out /tmp/fusion.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent

from biodiscover.storage.jsonable import jsonable  # noqa: E402
from biodiscover.storage.records import RANKS  # noqa: E402
from biodiscover.storage.synth.generator import load_truth  # noqa: E402
from biodiscover.workflows.demo import _split_specimens, score_run  # noqa: E402
from biodiscover.workflows.triage import run_triage  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True, help="a finished `biodiscover demo --workdir` folder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    w = args.workdir
    coll_csv, images, model = w / "new-collection" / "collection.csv", w / "new-collection" / "images", w / "model"
    coll = pd.read_csv(coll_csv)
    image_only = set(coll.loc[coll["dna_barcode"].isna(), "processid"])
    with_dna = [p for p in coll["processid"] if p not in image_only]
    truth = load_truth(w / "data")
    by_split = _split_specimens(w / "data")
    reference = by_split.get("train", []) + by_split.get("key_unseen", [])
    result: dict = {"workdir": str(w), "specimens": len(coll), "image_only": len(image_only), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, use_images in (("dna_only", False), ("dna_and_image", True)):
            db = Path(tmp) / f"{name}.sqlite"
            t = time.perf_counter()
            summary = run_triage(coll_csv, model, db, images=images, collection="fusion", use_images=use_images)
            wall = time.perf_counter() - t
            scores = {"with_barcode": score_run(db, summary.run_id, truth, with_dna, reference),
                      "photograph_only": score_run(db, summary.run_id, truth, sorted(image_only), reference)}
            result["runs"][name] = {"wall_s": round(wall, 2), "seconds": summary.seconds,
                                    "by_modality": summary.by_modality, "scores": scores}
    args.out.write_text(json.dumps(jsonable(result), indent=2))
    print("| specimens | run | rank | named right (TP) | named wrong (MC) | taxon unknown yet named (OC) |")
    print("|---|---|---|---|---|---|")
    for subset in ("with_barcode", "photograph_only"):
        for name in ("dna_only", "dna_and_image"):
            ranks = result["runs"][name]["scores"][subset]["ranks"]
            for rank in RANKS:
                e = ranks[rank]
                oc = "—" if e["oc_rate"] is None or e["oc_rate"] != e["oc_rate"] \
                    else f"{e['oc_rate']:.3f} (n={e['n_novel']})"
                print(f"| {subset} | {name} | {rank} | {e['tp_rate']:.3f} | {e['mc_rate']:.3f} | {oc} |")
    for name, run in result["runs"].items():
        print(f"{name}: wall {run['wall_s']} s, stages {run['seconds']}, evidence {run['by_modality']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
