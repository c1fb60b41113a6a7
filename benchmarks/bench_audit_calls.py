"""Which specimens an audit change names otherwise, and whether their best key before was a key it sets aside.

    python benchmarks/bench_audit_calls.py calls --order Coleoptera --split test_unseen --out new.json
    PYTHONPATH=OLD python benchmarks/bench_audit_calls.py calls --order Coleoptera --split test_unseen --out old.json
    python benchmarks/bench_audit_calls.py compare old.json new.json

``calls``: a reference of the dev file's ``train`` keys of one order (``DiscoveryModel().fit``, no extra queries),
its ``--split`` specimens of that order triaged at even odds; writes each one's deepest rank, the labels at genus and
species, its best key, its true genus and species, and the keys the audit set aside. ``compare``: the specimens
whose deepest rank or name changed, counted by whether the old best key is one the new audit sets aside, with how
often the old and new name were right.

Why: a fold figure that moves with the audit says nothing of why; an audit that sets aside a batch filed under the
wrong name loses the names that batch gave, right by its own label or not (RESULTS-discovery.md, "A batch farther
from its species than two orders").
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def calls(data: Path, order: str, split: str) -> dict[str, Any]:
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.bioscan import load_specimens

    read = [s for s in load_specimens(data, f"train+{split}") if s.order == order]
    model = DiscoveryModel().fit([s for s in read if s.split == "train"])
    queries = [s for s in read if s.split == split]
    out = {s.processid: {"deepest": r.deepest_rank, "genus": r.labels.get("genus") if r.deepest_rank in
                         ("genus", "species") else None,
                         "species": r.labels.get("species") if r.deepest_rank == "species" else None,
                         "top_hit": r.top_hit, "true_genus": s.genus, "true_species": s.species}
           for s, r in zip(queries, model.triage(queries, collection=False))}
    return {"order": order, "split": split, "set_aside": sorted(model.set_aside_), "calls": out}


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    aside = set(new["set_aside"]) - set(old["set_aside"])
    changed = [(p, o, new["calls"][p]) for p, o in old["calls"].items()
               if (o["deepest"], o["genus"], o["species"]) != (new["calls"][p]["deepest"], new["calls"][p]["genus"],
                                                             new["calls"][p]["species"])]
    rows: dict[str, Counter[str]] = {}
    for _, o, n in changed:
        key = "old best key now set aside" if o["top_hit"] in aside else "other"
        c = rows.setdefault(key, Counter())
        c["specimens"] += 1
        for rank in ("genus", "species"):
            c[f"right {rank} before"] += o[rank] == o[f"true_{rank}"]
            c[f"right {rank} after"] += n[rank] == n[f"true_{rank}"]
    return {"keys newly set aside": len(aside), "changed": len(changed), **{k: dict(v) for k, v in rows.items()},
            "true species of the set-aside rows": dict(Counter(o["true_species"] for _, o, _ in changed
                                                            if o["top_hit"] in aside).most_common(5))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("calls")
    c.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    c.add_argument("--order", required=True)
    c.add_argument("--split", default="test")
    c.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("compare")
    m.add_argument("old", type=Path)
    m.add_argument("new", type=Path)
    args = ap.parse_args(argv)
    if args.what == "calls":
        args.out.write_text(json.dumps(calls(args.data, args.order, args.split)) + "\n")
    else:
        print(json.dumps(compare(json.loads(args.old.read_text()), json.loads(args.new.read_text())), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
