"""Two species, one barcode: queries whose best key ties with another species' key, and what the engine names.

    python benchmarks/bench_ties.py --model REF --splits test      # REF: a bundle built from the dev file's train keys

For each query of the split with a known species: its candidate keys (``DiscoveryModel._hits``, as triage searches
them) and its result (``DiscoveryModel.triage``, the split decided as one collection, as ``biodiscover triage`` does).
A tie: another species' key at the best key's identity (``naming.TIE_TOLERANCE``). Prints the ties, how many were
named to species and how many of those right, split by how many bases the rival key shares with the query against
the best key (a shorter rival read is 100 % over fewer bases), and checks that every tie named to species says so in
its reason.

Why a benchmark and not a test: how often two species share a barcode, and which the first tied key names, is a fact
about the data (BOLD's shared BINs), not about the code (e32 review R24).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from biodiscover.discovery.engine import DiscoveryModel
from biodiscover.discovery.naming import TIE_TOLERANCE
from biodiscover.storage.bioscan import iter_specimens
from biodiscover.storage.distance import shared_identity
from biodiscover.storage.records import RANKS

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--splits", default="test")
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args(argv)
    m = DiscoveryModel.load(args.model)
    si = RANKS.index("species")
    lineages = m.naming_lineages_
    known = {lin[si] for lin in lineages if lin[si]}
    specimens = [s for s in iter_specimens(args.data, args.splits) if s.dna_barcode and s.species in known]
    results = m.triage(specimens)
    hits = m._hits([s.dna_barcode.upper() for s in specimens])
    rows = []
    for s, r, h in zip(specimens, results, hits):
        if r.modality != "dna" or not len(h.positions):
            continue
        top = lineages[h.top][si]
        best = float(h.identities[0])
        rival = next((int(j) for j, x in zip(h.positions, h.identities)
                      if x >= best - TIE_TOLERANCE and lineages[int(j)][si] not in (None, top)), None)
        if rival is None:
            continue
        mine = shared_identity(s.dna_barcode.upper(), m.reference_.sequences[h.top])[1]
        theirs = shared_identity(s.dna_barcode.upper(), m.reference_.sequences[rival])[1]
        rows.append((s.processid, s.species, r, best, mine, theirs, lineages[rival][si]))
    print(f"{len(specimens)} queries of known species ({args.splits}), {len(rows)} tie two species at the top")
    for name, keep in (("rival shares >= 95 % of the best key's bases", lambda t: t[5] >= 0.95 * t[4]),
                       ("rival shares fewer bases", lambda t: t[5] < 0.95 * t[4])):
        part = [t for t in rows if keep(t)]
        named = [t for t in part if t[2].deepest_rank == "species"]
        right = sum(t[2].deepest_label == t[1] for t in named)
        print(f"  {name}: {len(part)} ties, {len(named)} named to species, {right} right")
    said = [t for t in rows if t[2].deepest_rank == "species" and "tie:" in (t[2].reason or "")]
    named = [t for t in rows if t[2].deepest_rank == "species"]
    print(f"named ties whose reason says the tie: {len(said)} of {len(named)}")
    for pid, truth, r, best, mine, theirs, other in rows[:args.show]:
        p = r.confidence.get("species", 0.0)
        print(f"  {pid}: {truth} -> {r.deepest_rank} {r.deepest_label} (P(right) {p:.3f}); "
              f"{100 * best:.1f} % over {mine} bases, {other} over {theirs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
