"""Helpers for batch tests (no tests here): a real DNA-only model bundle and collection files.

The bundle is fitted by ``discovery.engine.DiscoveryModel`` on a small synthetic
BIOSCAN-like set from ``storage.synth``; the collections are that set's test,
test_unseen and (unlabelled) pretrain rows written as collection CSVs with a
subset of the 23 columns, as a lab would send them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLLECTION_COLUMNS = ["processid", "sampleid", "dna_barcode", "country", "province_state", "coord-lat", "coord-lon"]


def build_bundle_and_frame(root: Path, *, n_species: int = 30, n_specimens: int = 700, seed: int = 5
                           ) -> tuple[Path, pd.DataFrame]:
    """Fit and save a DNA-only bundle at ``root/bundle``; return it and the full metadata frame."""
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.records import Specimen
    from biodiscover.storage.synth import SynthConfig, generate_frame

    meta, _ = generate_frame(SynthConfig(n_species=n_species, n_specimens=n_specimens, images=False, seed=seed))

    def sp(*splits: str) -> list[Specimen]:
        return [Specimen.from_row(r) for r in meta[meta["split"].isin(splits)].to_dict("records")]

    model = DiscoveryModel().fit(sp("train", "key_unseen"), sp("val", "val_unseen"), sp("other_heldout"),
                                 calibration_keys=sp("train"))
    bundle = root / "bundle"
    model.save(bundle, overwrite=True)
    return bundle, meta


def write_collections(meta: pd.DataFrame, folder: Path, n: int, *, splits: tuple[str, ...] = (
        "test", "test_unseen", "pretrain"), rows_per_collection: int | None = None) -> list[Path]:
    """Split the query rows over ``n`` collection CSVs ``plate-XX.csv`` (columns a lab would send)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = meta[meta["split"].isin(splits)].reset_index(drop=True)
    if rows_per_collection is not None:
        rows = rows.head(n * rows_per_collection)
    paths = []
    for i in range(n):
        part = rows.iloc[i::n][COLLECTION_COLUMNS]
        path = folder / f"plate-{i:02d}.csv"
        part.to_csv(path, index=False)
        paths.append(path)
    return paths
