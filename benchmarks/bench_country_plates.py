"""Leave-one-country-out plates: the product as a user meets a collection from a country its reference lacks.

For each country: the reference is every labelled dev record collected elsewhere, the plate is every labelled
record of that country with its identifications removed, and the product's own commands run on them at their
defaults (``biodiscover build-reference --keys all --calibration '' --outliers ''``, then ``biodiscover triage``).
The plate's species are scored against the removed labels: known species (the reference holds the species)
named right to species, any specimen named to a wrong species, known species named to the right genus, candidate
species proposed and known specimens put in one.

    python benchmarks/bench_country_plates.py --work W --out plates.json --countries Pakistan Kenya China

Why not a test: each country is a build of a 70k-key reference (about 80 s on 2 cores), and the figures are facts
about the data. Why these countries: the dev file's smaller countries hold species also collected elsewhere
(mosquitoes, hoverflies, pests), the case where a mislabelled batch in the reference decides the name.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from biodiscover.storage.validation import clean_barcode

HERE = Path(__file__).resolve().parent
CLEARED = ("taxon", "order", "family", "subfamily", "genus", "species", "dna_bin", "inferred_ranks", "split")


def prepare(df: pd.DataFrame, country: str, where: Path, fragment: slice | None = None) -> pd.DataFrame:
    """Write ``ref.csv`` and ``plate.csv`` for ``country`` under ``where``; return the plate's truth.

    ``fragment``: the plate's barcodes cut to that stretch of the COI-5P barcode (``clean_barcode``'s first 660 nt;
    the reference's are whole), as a lab sequencing a shorter amplicon submits them (a Leray 313-nt fragment:
    ``-313:``). Why of the cleaned barcode and not the record: a 1,500-nt full-length COI record's last 313 nt lie
    outside the barcode region the keys hold."""
    lab = df[df.split != "pretrain"]
    ref, plate = lab[lab.country != country], lab[lab.country == country].copy()
    species, genera = set(ref.species) - {""}, set(ref.genus) - {""}
    truth = plate[["processid", "order", "family", "subfamily", "genus", "species"]].copy()
    truth["kind"] = np.where(plate.species.isin(species), "known",
                             np.where(plate.genus.isin(genera), "absent_species", "absent_genus"))
    for col in CLEARED:
        plate[col] = ""
    if fragment is not None:  # a stretch of the COI-5P barcode the analysis reads (a longer read's first 660 nt)
        plate["dna_barcode"] = plate.dna_barcode.map(lambda s: clean_barcode(s)[fragment] if s else s)
    ref.to_csv(where / "ref.csv", index=False)
    plate.to_csv(where / "plate.csv", index=False)
    return truth


def score(truth: pd.DataFrame, results: pd.DataFrame) -> dict[str, float | int]:
    """The plate's figures against the removed labels (specimens set aside at ingest are not scored)."""
    m = results.merge(truth, on="processid")
    known = m[m.kind == "known"]
    to_species = m.deepest_rank == "species"
    return {"specimens": len(m), "known": len(known),
            "known_named_right": round(float(((known.deepest_rank == "species")
                                              & (known.deepest_taxon == known.species)).mean()), 4),
            "known_genus_right": round(float((known.deepest_rank.isin(["genus", "species"])
                                              & (known.label_genus == known.genus)).mean()), 4),
            "named_wrong_species": int((to_species & (m.deepest_taxon != m.species)).sum()),
            "candidates": int(m.loc[m.proposal_id != "", "proposal_id"].nunique()),
            "known_in_candidates": int(((m.kind == "known") & (m.proposal_id != "")).sum())}


def _slice(text: str) -> slice:
    """``START:END`` (either may be empty or negative) as a slice."""
    start, _, end = text.partition(":")
    return slice(int(start) if start else None, int(end) if end else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "bold-insects-dev.csv.gz")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--countries", nargs="+", required=True)
    ap.add_argument("--keep", action="store_true", help="keep each country's bundle (about 170 MB each)")
    ap.add_argument("--fragment", default=None, metavar="START:END",
                    help="cut the plate's barcodes to this Python slice of the barcode, e.g. -313: (a Leray "
                         "fragment) or 200:450; the reference keeps whole barcodes")
    args = ap.parse_args(argv)
    # the console script installed beside this interpreter: the tree under test, as a user runs it
    cli = [str(Path(sys.executable).with_name("biodiscover"))]
    df = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    out: dict[str, dict] = {}
    for country in args.countries:
        where = args.work / country.replace(" ", "_")
        if where.exists():
            shutil.rmtree(where)
        where.mkdir(parents=True)
        truth = prepare(df, country, where, _slice(args.fragment) if args.fragment else None)
        t = time.perf_counter()
        subprocess.run([*cli, "build-reference", "-d", "ref.csv", "-o", "ref.bundle", "--keys", "all",
                        "--calibration", "", "--outliers", ""], cwd=where, check=True, capture_output=True)
        built = time.perf_counter() - t
        subprocess.run([*cli, "triage", "-i", "plate.csv", "-m", "ref.bundle", "--db", "plate.sqlite",
                        "--results", "results.csv"], cwd=where, check=True, capture_output=True)
        results = pd.read_csv(where / "results.csv", dtype=str, keep_default_na=False)
        out[country] = {**score(truth, results), "build_seconds": round(built, 1)}
        print(country, out[country], flush=True)
        if not args.keep:
            shutil.rmtree(where / "ref.bundle")
    args.out.write_text(json.dumps({"countries": out, "argv": sys.argv}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
