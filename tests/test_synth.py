"""Synthetic generator: layout, determinism, genetic statistics, images and size columns."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biodiscover.storage.records import BIOSCAN_COLUMNS, MAX_NUCLEOTIDES, SPLITS, chunk_for, image_relpath
from biodiscover.storage.splits import is_placeholder_species
from biodiscover.storage.synth import METADATA_NAME, TRUTH_COLUMNS, SynthConfig, generate, generate_frame, load_truth
from biodiscover.storage.synth.stats import distance_profile

TINY = SynthConfig(n_species=30, n_specimens=600, seed=11)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synth")
    result = generate(TINY, root)
    meta = pd.read_csv(result.metadata_path, dtype=str, keep_default_na=False)
    return result, meta, load_truth(root)


@pytest.fixture(scope="module")
def medium_frame():
    return generate_frame(SynthConfig(n_species=300, n_specimens=6000, seed=5, images=False))


def test_layout_columns_and_image_paths(tiny_dataset) -> None:
    result, meta, truth = tiny_dataset
    assert result.metadata_path == result.root / "metadata" / METADATA_NAME
    assert tuple(meta.columns) == BIOSCAN_COLUMNS
    assert len(meta) == TINY.n_specimens == result.n_images
    assert meta["processid"].is_unique
    assert set(meta["split"]) == set(SPLITS)  # every split populated even at 30 species
    for pid, split, chunk in zip(meta["processid"], meta["split"], meta["chunk"]):
        assert chunk == chunk_for(pid, split)
        assert (result.root / image_relpath(pid, split)).is_file()
    # chunk directories: 2 hex chars for pretrain, 1 for train/other_heldout, none otherwise
    for split, width in (("pretrain", 2), ("train", 1), ("other_heldout", 1), ("test", 0)):
        sub = meta[meta["split"] == split]
        assert (sub["chunk"].str.len() == width).all()
        pid = sub["processid"].iloc[0]
        assert chunk_for(pid, split) == hashlib.md5(pid.encode()).hexdigest()[:width]
    assert tuple(truth.columns) == TRUTH_COLUMNS
    assert list(truth["processid"]) == list(meta["processid"])


def test_ids_and_names_look_like_bold(tiny_dataset) -> None:
    _, meta, truth = tiny_dataset
    assert meta["processid"].str.fullmatch(r"[A-Z]{4,5}\d+-\d{2}").all()
    assert meta["sampleid"].str.fullmatch(r"(BIOUG\d{5}|CBG-A\d{5})-[A-H]\d{2}").all()
    bins = meta["dna_bin"][meta["dna_bin"] != ""]
    assert bins.str.fullmatch(r"BOLD:A[A-Z]{2}\d{4}").all()
    # the generator's "novel" flag agrees with BIOSCAN's placeholder rules on every species name
    sp = truth.drop_duplicates("species_id")
    flags = [is_placeholder_species(s, g) for s, g in zip(sp["species"], sp["genus"])]
    assert flags == list(sp["novel"])
    assert 0 < sp["novel"].mean() < 1


def test_pretrain_has_no_labels_below_family_and_taxon_is_deepest(tiny_dataset) -> None:
    _, meta, _ = tiny_dataset
    pre = meta[meta["split"] == "pretrain"]
    assert (pre[["subfamily", "genus", "species"]] == "").all().all()
    labelled = meta[meta["species"] != ""]
    assert (labelled["taxon"] == labelled["species"]).all()
    assert (meta["phylum"] == "Arthropoda").all()


def test_determinism_by_seed() -> None:
    cfg = SynthConfig(n_species=20, n_specimens=200, seed=3, images=False)
    a_meta, a_truth = generate_frame(cfg)
    b_meta, b_truth = generate_frame(cfg)
    pd.testing.assert_frame_equal(a_meta, b_meta)
    pd.testing.assert_frame_equal(a_truth, b_truth)
    c_meta, _ = generate_frame(SynthConfig(n_species=20, n_specimens=200, seed=4, images=False))
    assert not a_meta["dna_barcode"].equals(c_meta["dna_barcode"])


def test_images_readable_and_size_columns_consistent(tiny_dataset) -> None:
    result, meta, truth = tiny_dataset
    value = meta["image_measurement_value"].astype(float)
    scale = meta["scale_factor"].astype(float)
    area = meta["area_fraction"].astype(float)
    assert (value > 0).all() and (scale > 0).all() and ((area > 0) & (area <= 1)).all()
    # area_fraction is the crop (4:3, shorter side 256·scale) over the 1024×768 original
    np.testing.assert_allclose(area, np.minimum(1, (256 * 4 / 3 * scale) * (256 * scale) / (1024 * 768)), rtol=1e-3)
    # scale follows the specimen's true body length
    assert np.corrcoef(np.log(scale), np.log(truth["body_length_mm"]))[0, 1] > 0.9
    measured = []
    for pid, split in list(zip(meta["processid"], meta["split"]))[:40]:
        img = Image.open(result.root / image_relpath(pid, split))
        img.load()
        assert img.mode == "RGB" and min(img.size) == 256 and img.size[0] == 341
        arr = np.asarray(img.convert("L"), dtype=float)
        measured.append(int((arr < np.median(arr) - 40).sum()))  # dark organism vs pale background
    drawn = (value / scale**2).to_numpy()[:40]
    # the pixel count in the column (rescaled to the 256 image) tracks what is visibly drawn
    assert np.corrcoef(measured, drawn)[0, 1] > 0.6
    assert np.all(np.asarray(measured) <= drawn * 1.1 + 50)


def test_congeners_look_alike_and_cryptic_species_look_identical() -> None:
    from biodiscover.storage.synth.images import species_traits
    from biodiscover.storage.synth.taxonomy import build_taxonomy

    tx = build_taxonomy(400, 0.6, np.random.default_rng(0))
    traits = species_traits(tx.species, np.random.default_rng(1), cryptic_fraction=0.1)
    lat = traits.latent
    genus = tx.species["genus_id"].to_numpy()
    family = tx.species["family_id"].to_numpy()
    rng = np.random.default_rng(2)
    same_g, diff_f = [], []
    for _ in range(3000):
        i, j = rng.integers(0, len(lat), 2)
        if i == j or traits.cryptic_of[i] >= 0 or traits.cryptic_of[j] >= 0:
            continue
        d = float(np.linalg.norm(lat[i] - lat[j]))
        if genus[i] == genus[j]:
            same_g.append(d)
        elif family[i] != family[j]:
            diff_f.append(d)
    assert np.median(same_g) < 0.5 * np.median(diff_f)
    cryptic = np.flatnonzero(traits.cryptic_of >= 0)
    assert len(cryptic) > 0
    for i in cryptic:
        j = traits.cryptic_of[i]
        assert genus[i] == genus[j] and np.array_equal(lat[i], lat[j])


def test_distance_hierarchy_and_calibration(medium_frame) -> None:
    meta, truth = medium_frame
    df = truth[["species", "genus", "family"]].copy()
    df["dna_barcode"] = meta["dna_barcode"].to_numpy()
    prof = distance_profile(df, max_groups=80, max_per_group=8)
    sp, ge, fa = (prof[r].median_of_group_means for r in ("species", "genus", "family"))
    assert sp < ge < fa
    cfg = SynthConfig()
    assert abs(sp - cfg.within_species) < 0.006
    assert abs(ge - cfg.within_genus) < 0.025
    assert abs(fa - cfg.within_family) < 0.035


def test_sequencing_realities(medium_frame) -> None:
    meta, truth = medium_frame
    bc = meta["dna_barcode"]
    lengths = bc.str.len()
    assert 0.5 < ((lengths >= 600) & (lengths <= 660)).mean() < 0.95
    assert (lengths > MAX_NUCLEOTIDES).any() and (lengths < 500).any() and lengths.min() >= 250
    assert 0.02 < bc.str.startswith("N").mean() < 0.06
    assert 0.02 < bc.str.endswith("N").mean() < 0.06
    assert bc.str.slice(30, -30).str.contains("N").mean() > 0.01
    assert bc.str.contains("[RYSWKM]").any()
    at = (bc.str.count("A") + bc.str.count("T")).sum() / bc.str.replace("N", "").str.len().sum()
    assert 0.62 < at < 0.74
    # haplotypes shared by many specimens: identical barcodes are common
    assert len(bc) / bc.nunique() > 1.3
    assert bc.value_counts().iloc[0] >= 10
    # a few species without a barcode gap: a congener closer than their own spread
    from biodiscover.storage.distance import divergence
    from biodiscover.storage.synth.stats import clean

    bcs = meta["dna_barcode"].map(clean)
    no_gap_hits = 0
    for sid in truth.loc[truth["no_gap"], "species_id"].unique():
        mine = bcs[truth["species_id"] == sid].unique()[:8]
        genus = truth.loc[truth["species_id"] == sid, "genus"].iloc[0]
        others = bcs[(truth["genus"] == genus) & (truth["species_id"] != sid)].unique()[:40]
        intra = max([divergence(a, b) for i, a in enumerate(mine) for b in mine[i + 1:]], default=0.0)
        inter = min([divergence(a, b) for a in mine for b in others], default=1.0)
        no_gap_hits += inter < intra
    assert no_gap_hits >= 2
    # rare mislabelled records
    labelled = meta["species"].notna()
    wrong = labelled & (meta["species"] != truth["species"])
    assert wrong.sum() == (truth["mislabelled"] & labelled).sum()
    assert 0 < wrong.mean() < 0.01


def test_taxonomy_long_tail_and_placeholders(medium_frame) -> None:
    meta, truth = medium_frame
    sp_per_genus = truth.drop_duplicates("species_id").groupby("genus").size()
    assert sp_per_genus.max() >= 5 * sp_per_genus.median()
    counts = truth["species_id"].value_counts()
    assert counts.iloc[0] > 20 * counts.median() / 2 and counts.min() >= 1
    assert truth.drop_duplicates("species_id")["order"].value_counts().index[0] == "Diptera"
    sub = meta["subfamily"].dropna()
    assert sub.str.startswith("unassigned ").any()
    assert meta.loc[meta["genus"].notna(), "subfamily"].isna().any()
    names = truth.loc[truth["novel"], "species"].unique()
    assert any(" sp. BIOUG" in n for n in names)
    # BINs roughly match species: most species have exactly one BIN
    per_species = truth.groupby("species_id")["bin"].nunique()
    assert (per_species == 1).mean() > 0.85


def test_geography_clustered_by_lineage(medium_frame) -> None:
    meta, truth = medium_frame
    df = pd.DataFrame({"country": meta["country"], "species": truth["species_id"], "genus": truth["genus"]})
    top_share_species = df.groupby("species")["country"].agg(lambda c: c.value_counts(normalize=True).iloc[0])
    overall_top = df["country"].value_counts(normalize=True).iloc[0]
    assert top_share_species.median() > overall_top + 0.2
    assert meta["coord-lat"].dropna().between(-90, 90).all()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_specimens"):
        SynthConfig(n_species=10, n_specimens=5)
    with pytest.raises(ValueError, match="within_species"):
        SynthConfig(within_species=0.2)
    cfg = SynthConfig(n_species=7, n_specimens=70, seed=9)
    assert SynthConfig.from_dict(__import__("json").loads(cfg.to_json())) == cfg


def test_written_tables_match_in_memory_frame(tiny_dataset) -> None:
    """generate() writes what generate_frame() builds, plus the measured image columns."""
    _, written, truth = tiny_dataset
    meta, mem_truth = generate_frame(TINY)
    image_cols = ["image_measurement_value", "area_fraction", "scale_factor"]
    assert meta[image_cols].isna().all().all()
    as_text = meta.drop(columns=image_cols).astype(object).where(meta.drop(columns=image_cols).notna(), "")
    as_text = as_text.map(lambda v: v if isinstance(v, str) else (str(int(v)) if float(v).is_integer() else str(v)))
    for col in ("processid", "species", "genus", "split", "chunk", "dna_barcode", "dna_bin", "country"):
        assert list(as_text[col]) == list(written[col]), col
    assert list(mem_truth["species_id"]) == list(truth["species_id"])
