"""Fill a real biodiscover database with realistic proposals, through the storage API only.

Used by the TUI tests and for trying the app by hand::

    python -m tests.tui_fixtures /tmp/review.sqlite --species 60 --specimens 600

Specimens come from the synthetic BIOSCAN-like generator (``storage.synth``);
the "novel" species of its ground truth become candidate species under their
true genus, with evidence computed from the synthetic barcodes (consensus,
pyfamsa alignment, within-candidate and to-nearest-known p-distances
(``discovery.clustering``), nearest known species,
geography). Everything is deterministic for a given seed, so SVG snapshots are
stable. No widget ever receives hand-made data: the app reads what this wrote.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import pyfamsa

from biodiscover.storage.distance import cross_p_distance, pairwise_p_distance
from biodiscover.storage.db import Database
from biodiscover.storage.records import RANKS, Specimen
from biodiscover.storage.synth import SynthConfig, generate_frame


@dataclass(frozen=True)
class ReviewFixture:
    path: Path
    run_id: int
    proposal_ids: list[int]


def _align(seqs: dict[str, str]) -> dict[str, str]:
    """Multiple alignment of member barcodes (pyfamsa), so reads with offsets line up."""
    if len(seqs) == 1:
        return dict(seqs)
    msa = pyfamsa.Aligner(guide_tree="upgma", threads=1).align(
        [pyfamsa.Sequence(pid.encode(), s.encode()) for pid, s in seqs.items()])
    return {row.id.decode(): row.sequence.decode() for row in msa}


def _consensus(aligned: list[str]) -> str:
    """Majority symbol per alignment column (ties → alphabetical); gaps count, N does not."""
    out = []
    for i in range(max(len(s) for s in aligned)):
        counts = Counter(s[i] for s in aligned if i < len(s) and s[i] in "ACGT-")
        out.append(min(counts, key=lambda b: (-counts[b], b)) if counts else "N")
    return "".join(out)


def _image(path: Path, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.zeros((48, 64, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(40, 220, 64, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(200, 60, 48, dtype=np.uint8)[:, None]
    arr[..., 2] = int(rng.integers(0, 255))
    arr[16:32, 20:44] = (20, 20, 20)  # the "specimen"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def build_review_db(path: Path, *, n_species: int = 40, n_specimens: int = 400, seed: int = 3,
                    images_dir: Path | None = None, max_proposals: int | None = None) -> ReviewFixture:
    """Create ``path`` and fill it: specimens, one finished run, assignments, proposals with evidence."""
    meta, truth = generate_frame(SynthConfig(n_species=n_species, n_specimens=n_specimens, seed=seed, images=False))
    truth = truth.set_index("processid")
    novel_groups = (truth[truth["novel"]].groupby("species_id").groups)
    specimens: list[Specimen] = []
    image_of: dict[str, Path] = {}
    first_group = sorted(novel_groups)[0] if novel_groups else None
    for i, row in enumerate(meta.to_dict("records")):
        pid = row["processid"]
        if images_dir is not None and first_group is not None and truth.at[pid, "species_id"] == first_group:
            image_of[pid] = images_dir / f"{pid}.png"
            _image(image_of[pid], seed * 1000 + i)
            row = {**row, "image_path": str(image_of[pid])}
        specimens.append(Specimen.from_row(row))
    seqs = {s.processid: s.dna_barcode or "" for s in specimens}
    db = Database.create(path)
    try:
        db.ingest(specimens, collection="synthetic-plate", source=f"synth:seed={seed}")
        run = db.start_run("triage", {"fixture": "tui", "seed": seed}, model_fingerprint="fixture:tui",
                           total=len(specimens), backup=False)
        known = truth[~truth["novel"]]
        assignments = []
        for pid, t in truth.iterrows():
            if t["novel"]:
                assignments.append({"processid": pid, "deepest_rank": "genus", "deepest_taxon": t["genus"],
                                    "labels": {r: t[r] for r in RANKS[:4]},
                                    "confidences": {"order": 0.99, "family": 0.97, "subfamily": 0.93, "genus": 0.88}})
            else:
                assignments.append({"processid": pid, "deepest_rank": "species", "deepest_taxon": t["species"],
                                    "labels": {r: t[r] for r in RANKS},
                                    "confidences": {"order": 0.99, "family": 0.98, "subfamily": 0.97,
                                                    "genus": 0.96, "species": 0.94}, "novelty": 0.05})
        novelty_of: dict[str, float] = {}
        proposals = []
        for sid in sorted(novel_groups):
            members = sorted(novel_groups[sid])
            t0 = truth.loc[members[0]]
            with_dna = [m for m in members if seqs[m]]
            aligned = _align({m: seqs[m] for m in with_dna[:24]})  # the DNA panel shows a sample
            cons = _consensus(list(aligned.values()))
            # Nearest known species: same genus when the reference has one, else the same family.
            pool = known[known["genus"] == t0["genus"]]
            if pool.empty:
                pool = known[known["family"] == t0["family"]]
            if pool.empty:
                pool = known
            pool_ids = [p for p in pool.index if seqs[p]]
            to_pool = cross_p_distance([cons.replace("-", "")], [seqs[p] for p in pool_ids])[0]
            best = int(np.argmin(to_pool))
            nearest_species = str(pool.at[pool_ids[best], "species"])
            nearest_specimens = [p for p in pool_ids if pool.at[p, "species"] == nearest_species]
            nearest_d = cross_p_distance([seqs[m] for m in with_dna],
                                         [seqs[k] for k in nearest_specimens]).min(axis=1).tolist()
            pair = pairwise_p_distance([seqs[m] for m in with_dna[:30]])
            within = pair[np.triu_indices(len(pair), k=1)].tolist()
            d_best = float(to_pool[best])
            novelty = float(min(0.99, 0.5 + 8 * d_best))
            for m in members:
                novelty_of[m] = novelty
            countries = Counter(c if isinstance(c, str) and c else "unknown"
                                for c in meta.set_index("processid").loc[members, "country"])
            bin_counts = Counter(str(b) for b in truth.loc[members, "bin"])
            dominant = min(bin_counts, key=lambda b: (-bin_counts[b], b))
            proposals.append({
                "members": [(m, round(1.0 - 0.01 * (j % 7), 2)) for j, m in enumerate(members)],
                "parent_lineage": {r: t0[r] for r in RANKS[:4]},
                "novelty": novelty, "nearest_species": nearest_species,
                "nearest_identity": round(1.0 - d_best, 4),
                # Keys as discovery.proposals writes them (see its module docstring).
                "evidence": {"consensus_barcode": cons, "alignment": aligned, "within_distances": within,
                             "within_distance": {"mean": float(np.mean(within)) if within else 0.0,
                                                 "max": float(np.max(within)) if within else 0.0},
                             "nearest_known_distances": nearest_d,
                             "nearest_known": {"species": nearest_species, "identity": round(1.0 - d_best, 4)},
                             "geography": {"countries": dict(countries)},
                             "bin": {"counts": dict(bin_counts), "dominant": dominant,
                                     "agreement": round(bin_counts[dominant] / len(members), 3),
                                     "n_with_bin": len(members), "shared_with": []}},
            })
        for a in assignments:
            if a["processid"] in novelty_of:
                a["novelty"] = novelty_of[a["processid"]]
        db.write_assignments(run, assignments)
        if max_proposals is not None:
            proposals = proposals[:max_proposals]
        ids = db.write_proposals(run, proposals)
        db.heartbeat(run, done=len(specimens), total=len(specimens))
        db.finish_run(run, "completed")
    finally:
        db.close()
    return ReviewFixture(Path(path), run, list(ids))


def main() -> None:  # pragma: no cover - convenience for trying the app by hand
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--species", type=int, default=60)
    ap.add_argument("--specimens", type=int, default=600)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--images", type=Path, default=None)
    args = ap.parse_args()
    fx = build_review_db(args.db, n_species=args.species, n_specimens=args.specimens, seed=args.seed,
                         images_dir=args.images)
    print(f"{fx.path}: run {fx.run_id}, {len(fx.proposal_ids)} proposals")


if __name__ == "__main__":  # pragma: no cover
    main()
