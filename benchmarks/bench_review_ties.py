"""A reviewer's key against the reference: a tie across orders, and a key placed where the reference disagrees.

    biodiscover demo --workdir DEMO
    python benchmarks/bench_review_ties.py --workdir DEMO --out review_ties.json

On the demo's bundle and new collection, triaged at even odds:

* ties: 40 specimens named to species at > 99.5 % identity, each given one key for the session (as a reviewer's move
  of a candidate into another order leaves it), labelled "<another order> gen. sp. BD-0001", family and genus blank,
  with the barcode of its best reference key, then (a second pass) with its own. Counts what each is named then
  (RESULTS-discovery.md, "A reviewer's keys as rivals", R2).
* placed: 10 specimens named to species at 97–99.9 %, each given a key of its own barcode in another order: counts
  how many are named from it and how many reasons say where the reference's nearest key lies (``_review_note``).

Run it against the code before a change with ``PYTHONPATH`` pointing at that checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from pathlib import Path

from biodiscover.discovery.engine import DiscoveryModel
from biodiscover.storage.collections import read_collection


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="a `biodiscover demo --workdir` folder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    bundle = args.workdir / "model"
    specimens = [s for s in read_collection(args.workdir / "new-collection" / "collection.csv").specimens
                 if s.dna_barcode]
    model = DiscoveryModel.load(bundle)
    calls = model.triage(specimens, collection=False)
    orders = sorted({lin[0] for lin in model.ref_lineages_ if lin[0]})
    keys = dict(zip(model.ref_ids_, model.reference_.sequences))
    out: dict[str, dict[str, int]] = {}

    tied = [(s, r) for s, r in zip(specimens, calls) if r.deepest_rank == "species" and r.identity > 0.995][:40]
    # the key's barcode: the best reference key's (the two keys tie whatever the specimen's identity to them), or the
    # specimen's own (a tie where that reference key is 100 % too; the reviewer's key comes first on k-mers)
    for variant in ("reference key's barcode", "specimen's own barcode"):
        seen: Counter[str] = Counter()
        for s, r in tied:  # one engine per specimen: each key is the only one added
            other = next(o for o in orders if o != r.labels["order"])
            barcode = keys[r.top_hit] if variant.startswith("reference") else s.dna_barcode
            engine = DiscoveryModel.load(bundle)
            engine.add_references([dataclasses.replace(s, processid=f"BD-{s.processid}", dna_barcode=barcode,
                                                       order=other, family=None, subfamily=None, genus=None,
                                                       species=f"{other} gen. sp. BD-0001")])
            a = engine.triage([dataclasses.replace(s, processid=f"Q-{s.processid}")], collection=False)[0]
            named = "unnamed" if a.deepest_rank is None else \
                f"{a.deepest_rank} ({'the reviewer' if a.labels['order'] == other else 'the reference'}'s order)"
            seen[named] += 1
            seen["reason says a tie"] += "a tie" in (a.reason or "")
        out[f"ties, {variant}"] = {"specimens": len(tied), **seen}

    placed = [(s, r) for s, r in zip(specimens, calls)
              if r.deepest_rank == "species" and 0.97 < r.identity < 0.999][:10]
    engine = DiscoveryModel.load(bundle)
    engine.add_references([dataclasses.replace(s, processid=f"BD-{s.processid}",
                                               order=next(o for o in orders if o != r.labels["order"]), family=None,
                                               subfamily=None, genus=None, species="X gen. sp. BD-0001")
                           for s, r in placed])
    again = engine.triage([dataclasses.replace(s, processid=f"Q-{s.processid}") for s, _ in placed], collection=False)
    out["placed"] = {"specimens": len(placed),
                     "named from the reviewer's key": sum(a.top_hit == f"BD-{s.processid}"
                                                          and a.deepest_rank is not None
                                                          for (s, _), a in zip(placed, again)),
                     "reason says where the reference's key lies": sum("is one a review placed" in (a.reason or "")
                                                                       for a in again)}
    print(json.dumps(out, indent=1))
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
