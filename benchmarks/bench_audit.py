"""The reference audit (``discovery.audit``) on a real file: how many keys it lists, which, and its CPU.

    python benchmarks/bench_audit.py --splits train            # the dev file's train keys
    python benchmarks/bench_audit.py --splits all --show 20

Why a benchmark and not a test: the count is a fact about the data (BOLD records of another gene
region, contaminants, misidentifications), and the time a fact about the machine.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from biodiscover.discovery.audit import audit_reference
from biodiscover.storage.bioscan import iter_specimens

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--splits", default="train")
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args(argv)
    ids, seqs, lineages = [], [], []
    for s in iter_specimens(args.data, args.splits):
        if s.dna_barcode and s.deepest_label:
            ids.append(s.processid)
            seqs.append(s.dna_barcode.upper())
            lineages.append((s.order, s.family, s.subfamily, s.genus, s.species))
    t = time.process_time()
    suspects, checked, groups = audit_reference(ids, seqs, lineages)
    cpu = time.process_time() - t
    flagged = {s.processid for s in suspects}
    # a group is listed only where it carries another species' barcode, which takes the index (build-reference)
    print(f"{len(ids)} keys, {checked} species with 2+ keys, {len(suspects)} listed alone, {len(groups)} in small "
          f"groups far from their species' bulk (listed by build-reference where they carry another species' "
          f"barcode), {cpu:.1f} s CPU")
    print("listed by order:", dict(Counter(lin[0] for pid, lin in zip(ids, lineages) if pid in flagged)))
    for s in suspects[: args.show]:
        print(" ", s.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
