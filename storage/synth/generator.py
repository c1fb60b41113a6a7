"""Generate a synthetic BIOSCAN-5M-like collection: metadata, truth and images.

Why a generator at all: a user's checkout has no BIOSCAN-5M (4 GB of metadata,
tens of GB of images), yet the demo, every area's tests and the benchmarks need
data whose statistics resemble it and whose *true* species is known even for
records whose labels the split removed. :func:`generate_frame` builds the tables
in memory (no images) for tests; :func:`generate` writes the official layout::

    out_dir/metadata/BIOSCAN_5M_Insect_Dataset_metadata.csv   (23 columns)
    out_dir/metadata/truth.csv                                (true labels per processid)
    out_dir/metadata/synth_config.json
    out_dir/images/cropped_256/<split>/<chunk>/<processid>.jpg

Everything is vectorised per rank except drawing, and every random draw comes
from ``config.seed``, so the same config always yields byte-identical tables.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biodiscover.storage.progress import Progress
from biodiscover.storage.records import BIOSCAN_COLUMNS, DEFAULT_IMAGE_PACKAGE, image_relpath
from biodiscover.storage.splits import apply_splits
from biodiscover.storage.synth import dna, geography, images
from biodiscover.storage.synth.config import SynthConfig
from biodiscover.storage.synth.taxonomy import build_taxonomy, placeholder_species

log = logging.getLogger(__name__)

METADATA_NAME = "BIOSCAN_5M_Insect_Dataset_metadata.csv"
TRUTH_NAME = "truth.csv"
CONFIG_NAME = "synth_config.json"
TRUTH_COLUMNS: tuple[str, ...] = (
    "processid", "order", "family", "subfamily", "genus", "species", "species_id", "novel",
    "haplotype_id", "bin", "label_rank", "mislabelled", "no_gap", "cryptic_of", "body_length_mm",
)
#: Pairwise p-distance targets above genus (subfamily, family, order, root), as offsets
#: from the configured within-family figure; pairs within a family mostly straddle
#: subfamilies, so its median lands near ``within_family``.
_DEEP_P = {"subfamily": -0.02, "family": 0.01, "order": 0.06, "root": 0.10}
#: Calibration factors between the F81 approximation used to solve node heights and
#: the medians this process yields as measured by ``storage.synth.stats`` (species:
#: median over species of the mean pairwise distance; genus/family: between child
#: taxa), tuned on 1,000-species / 20,000-specimen runs (see benchmarks/RESULTS-synth.md).
_HEIGHT_FUDGE = {"species": 1.2, "genus": 1.03, "deep": 1.06}

#: Recurring read lengths of partial and poor reads.
_PARTIAL_STOPS = (564, 577, 601, 613, 627, 639, 651)
_POOR_STOPS = (487, 500, 519, 543, 570)


@dataclass(frozen=True)
class SynthResult:
    """What :func:`generate` wrote."""

    root: Path
    metadata_path: Path
    truth_path: Path
    n_specimens: int
    n_species: int
    n_images: int
    split_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _World:
    meta: pd.DataFrame
    truth: pd.DataFrame
    traits: images.Traits
    species_idx: np.ndarray  # per specimen, row of taxa
    individual_seed: np.ndarray  # per specimen


def _abundance(n_species: int, n_specimens: int, skew: float, rng: np.random.Generator) -> np.ndarray:
    """Long-tailed specimens per species (≥ 1 each), Zipf-like over a random ranking."""
    ranks = rng.permutation(n_species) + 1
    w = ranks.astype(float) ** (-skew) * rng.lognormal(0, 0.5, n_species)
    return 1 + rng.multinomial(n_specimens - n_species, w / w.sum())


def _bin_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    codes: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        c = "BOLD:A" + "".join(rng.choice(letters, 2)) + f"{int(rng.integers(0, 10000)):04d}"
        if c not in codes:
            codes.add(c)
            out.append(c)
    return np.array(out, dtype=object)


def _ids(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """BOLD-style processids (``GMEEO6589-21``) and sampleids (``BIOUG68174-B08``)."""
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    n_proj = max(3, n // 400)
    projects: list[str] = []
    seen: set[str] = set()
    while len(projects) < n_proj:
        p = "".join(rng.choice(letters, int(rng.integers(4, 6))))
        if p not in seen:
            seen.add(p)
            projects.append(p)
    proj = rng.integers(0, n_proj, size=n)
    years = rng.integers(19, 24, size=n_proj)
    start = rng.integers(1, 5000, size=n_proj)
    order = np.argsort(proj, kind="stable")
    serial = np.empty(n, dtype=np.int64)
    counts = np.bincount(proj, minlength=n_proj)
    pos = 0
    for k in range(n_proj):
        serial[order[pos:pos + counts[k]]] = start[k] + np.arange(counts[k])
        pos += counts[k]
    pids = np.array([f"{projects[p]}{s}-{years[p]}" for p, s in zip(proj, serial)], dtype=object)
    plate = 10000 + rng.permutation(max(1, n // 95 + 1))[np.arange(n) // 95] % 90000
    wells = np.arange(n) % 95
    well = ["ABCDEFGH"[w // 12] + f"{w % 12 + 1:02d}" for w in wells]
    cbg = rng.random(n) < 0.1
    sids = np.array([(f"CBG-A{p:05d}-{w}" if c else f"BIOUG{p}-{w}") for p, w, c in zip(plate, well, cbg)],
                    dtype=object)
    return pids, sids


def _sequence_reads(haps: list[str], hap_of: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-specimen barcode strings with sequencing realities: truncated reads,
    long reads past 660 nt, leading/trailing N runs, internal N and IUPAC codes.
    Most specimens keep their haplotype intact, so identical barcodes are common."""
    n = len(hap_of)
    out = np.empty(n, dtype=object)
    kind = rng.random(n)
    lead_n = rng.random(n) < 0.025
    trail_n = rng.random(n) < 0.03
    internal_n = rng.random(n) < 0.03
    iupac = rng.random(n) < 0.01
    ambiguity = {"A": "RMW", "C": "YMS", "G": "RKS", "T": "YKW"}
    for i in range(n):
        s = haps[hap_of[i]]
        k = kind[i]
        # Length mix matched to the real BOLD dev file (5%/25%/50% quantiles ≈ 528/591/658 nt).
        # Truncations mostly stop at a few recurring positions (primer/trace-quality
        # positions shared by a lab's protocol), so partial reads of one haplotype
        # are often identical strings, as in BOLD.
        if k < 0.55:
            pass
        elif k < 0.80:  # partial read: 560–657 nt, missing either end
            m = int(_PARTIAL_STOPS[rng.integers(len(_PARTIAL_STOPS))]) if rng.random() < 0.7 \
                else int(rng.integers(560, len(s)))
            s = s[:m] if rng.random() < 0.7 else s[len(s) - m:]
        elif k < 0.92:  # poor read
            m = int(_POOR_STOPS[rng.integers(len(_POOR_STOPS))]) if rng.random() < 0.6 \
                else int(rng.integers(480, 590))
            s = s[:m]
        elif k < 0.94:  # very poor read (still ≥ 250 nt)
            s = s[: int(rng.integers(250, 480))]
        else:  # read running past the barcode region (truncated to 660 by readers)
            long = rng.random() < 0.1
            tail = rng.choice(np.array(list("AATTTACG")), int(rng.integers(60, 300) if long else rng.integers(2, 40)))
            s = s + "".join(tail)
        if lead_n[i] or trail_n[i] or internal_n[i] or iupac[i]:
            b = list(s)
            if lead_n[i]:
                m = int(rng.integers(1, 25))
                b = ["N"] * m + list(s[m:])
            if trail_n[i]:
                m = int(rng.integers(1, 30))
                b = b[: len(b) - m] + ["N"] * m
            if internal_n[i]:
                for p in rng.integers(30, max(31, len(b) - 30), size=int(rng.integers(1, 4))):
                    b[p] = "N"
            if iupac[i]:
                p = int(rng.integers(30, max(31, len(b) - 30)))
                if b[p] in ambiguity:
                    b[p] = ambiguity[b[p]][int(rng.integers(3))]
            s = "".join(b)
        out[i] = s
    return out


def _ensure_unseen(taxa: pd.DataFrame, counts: np.ndarray, config: SynthConfig,
                   rng: np.random.Generator) -> None:
    """Make sure even a tiny collection has *unseen* species (placeholder names in
    genera that also hold named species, with enough specimens to be split), by
    renaming a few named congeners and swapping abundances; edits in place.

    Without this a 30-species draw often has no unseen split at all, and every
    open-world test downstream would silently test nothing."""
    if config.named_fraction <= 0 or config.named_fraction >= 1 or len(taxa) < 4:
        return
    want = max(2, int(round(0.1 * len(taxa))))
    min_count = 24
    genus = taxa["genus"].to_numpy()
    named = taxa["named"].to_numpy().copy()
    has_named = pd.Series(named).groupby(genus).transform("any").to_numpy()
    cand = ~named & has_named
    if cand.sum() < want:
        n_named = pd.Series(named).groupby(genus).transform("sum").to_numpy()
        convertible = np.flatnonzero(named & (n_named >= 2))
        used = set(taxa["species"])
        for i in rng.permutation(convertible)[: want - int(cand.sum())]:
            if pd.Series(named[genus == genus[i]]).sum() < 2:
                continue
            taxa.loc[i, "species"] = placeholder_species(rng, genus[i], taxa["order"].iloc[i], used)
            taxa.loc[i, "named"] = False
            named[i] = False
        cand = ~named & has_named
    idx = np.flatnonzero(cand)
    chosen = idx[np.argsort(-counts[idx], kind="stable")][:want]
    if config.n_specimens < min_count * len(chosen) * 3:
        return
    for i in chosen:
        if counts[i] >= min_count:
            continue
        donors = np.flatnonzero(~np.isin(np.arange(len(counts)), chosen) & (counts >= min_count))
        if not len(donors):
            break
        j = int(rng.choice(donors))
        counts[i], counts[j] = counts[j], counts[i]


def _build(config: SynthConfig) -> _World:
    rng = np.random.default_rng(config.seed)
    tx = build_taxonomy(config.n_species, config.named_fraction, np.random.default_rng([config.seed, 1]))
    taxa = tx.species
    n_sp = len(taxa)
    counts = _abundance(n_sp, config.n_specimens, config.abundance_skew, rng)
    _ensure_unseen(taxa, counts, config, np.random.default_rng([config.seed, 9]))

    # ---- DNA: evolve root → order → family → subfamily → genus → species → haplotypes.
    drng = np.random.default_rng([config.seed, 2])
    model = dna.make_site_model(drng, config.kappa, config.at_fraction)
    half = {
        "species": dna.SiteModel.depth_for_p(model, config.within_species) / 2 * _HEIGHT_FUDGE["species"],
        "genus": model.depth_for_p(config.within_genus) / 2 * _HEIGHT_FUDGE["genus"],
    }
    for rank, off in _DEEP_P.items():
        half[rank] = model.depth_for_p(min(config.within_family + off, 0.45)) / 2 * _HEIGHT_FUDGE["deep"]
    root = dna.random_root(model, drng)
    node_seq: dict[int, np.ndarray] = {}
    chain = [("order_id", "order"), ("family_id", "family"), ("subfamily_id", "subfamily"), ("genus_id", "genus")]
    parent_of = {"order_id": None, "family_id": "order_id", "subfamily_id": "family_id", "genus_id": "subfamily_id"}
    parent_h = {"order": half["root"], "family": half["order"], "subfamily": half["family"],
                "genus": half["subfamily"]}
    for col, rank in chain:
        nodes = taxa.drop_duplicates(col)
        ids = nodes[col].to_numpy()
        if parent_of[col] is None:
            parents = np.repeat(root[None, :], len(ids), axis=0)
        else:
            parents = np.stack([node_seq[p] for p in nodes[parent_of[col]].to_numpy()])
        branch = max(parent_h[rank] - half[rank], 1e-4) * drng.lognormal(0, 0.4, len(ids))
        kids = dna.evolve(parents, branch, model, drng)
        node_seq.update({int(i): k for i, k in zip(ids, kids)})
    genus_ids = taxa["genus_id"].to_numpy()
    sp_parent = np.stack([node_seq[int(g)] for g in genus_ids])
    sp_branch = max(half["genus"] - half["species"], 1e-4) * drng.lognormal(0, 0.45, n_sp)
    sp_seq = dna.evolve(sp_parent, sp_branch, model, drng)
    spread = np.minimum(drng.lognormal(0, 0.8, n_sp), 6.0)  # per-species intraspecific spread (long tail)
    no_gap = np.zeros(n_sp, dtype=bool)
    for i in np.flatnonzero(drng.random(n_sp) < config.no_gap_fraction):
        cong = np.flatnonzero((genus_ids == genus_ids[i]) & (np.arange(n_sp) != i) & ~no_gap)
        if len(cong):
            j = int(drng.choice(cong))
            # Sister species split so recently that its ancestor sits inside the
            # congener's haplotype cloud: between-species < within-species distance.
            sp_seq[i] = dna.evolve(sp_seq[j][None], np.array([half["species"] * 0.25]), model, drng)[0]
            spread[i] = max(spread[i], 2.5)
            spread[j] = max(spread[j], 2.5)
            no_gap[i] = True
    # Haplotypes: ~n^0.65 per species, star-like around the species ancestor.
    n_hap = np.maximum(1, np.round(counts ** 0.65 * drng.uniform(0.2, 0.8, n_sp))).astype(np.int64)
    n_hap = np.minimum(np.maximum(n_hap, np.where(counts >= 2, 2, 1)), counts)
    n_hap[no_gap] = np.minimum(np.maximum(n_hap[no_gap], 4), counts[no_gap])
    hap_species = np.repeat(np.arange(n_sp), n_hap)
    hap_branch = half["species"] * spread[hap_species] * drng.lognormal(0, 0.3, len(hap_species))
    hap_codes = np.empty((len(hap_species), model.length), dtype=np.uint8)
    for start in range(0, len(hap_species), 20000):
        sl = slice(start, start + 20000)
        hap_codes[sl] = dna.evolve(sp_seq[hap_species[sl]], hap_branch[sl], model, drng)
    hap_strings = dna.to_strings(hap_codes)
    hap_offset = np.concatenate([[0], np.cumsum(n_hap)[:-1]])

    # ---- specimens: species, haplotype (dominant one common), shuffled order.
    srng = np.random.default_rng([config.seed, 3])
    species_idx = np.repeat(np.arange(n_sp), counts)
    srng.shuffle(species_idx)
    n = len(species_idx)
    zipf_u = srng.random(n)
    nh = n_hap[species_idx]
    # P(haplotype k) ∝ (k+1)^-1.5: the first haplotype dominates, a tail of singletons.
    local = np.minimum((nh * zipf_u ** 2.2).astype(np.int64), nh - 1)
    hap_of = hap_offset[species_idx] + local
    barcodes = _sequence_reads(hap_strings, hap_of, srng)

    # ---- BINs: usually one per species, sometimes split or shared with a sister.
    brng = np.random.default_rng([config.seed, 4])
    sp_bin = np.arange(n_sp)
    for i in np.flatnonzero(no_gap):
        cong = np.flatnonzero((genus_ids == genus_ids[i]) & (np.arange(n_sp) != i))
        if len(cong):
            sp_bin[i] = sp_bin[int(cong[0])]
    codes = _bin_codes(2 * n_sp, brng)
    hap_bin = codes[sp_bin[hap_species]]
    split_bin = (brng.random(n_sp) < 0.05) & (n_hap >= 4)
    for i in np.flatnonzero(split_bin):
        hs = np.arange(hap_offset[i], hap_offset[i] + n_hap[i])
        hap_bin[hs[len(hs) // 2:]] = codes[n_sp + i]
    dna_bin = hap_bin[hap_of]
    dna_bin[brng.random(n) < 0.003] = None  # BIN missing, like 0.3% of BIOSCAN

    # ---- identification depth and mislabelling.
    lrng = np.random.default_rng([config.seed, 5])
    m = config.species_label_fraction
    conc = 3.0
    sp_label_p = lrng.beta(max(m * conc, 1e-3), max((1 - m) * conc, 1e-3), n_sp) if 0 < m < 1 else np.full(n_sp, m)
    u = lrng.random(n)
    to_species = u < sp_label_p[species_idx]
    to_genus = ~to_species & (lrng.random(n) < config.genus_label_fraction)
    to_order_only = ~to_species & ~to_genus & (lrng.random(n) < 0.04)
    label_rank = np.where(to_species, "species", np.where(to_genus, "genus",
                          np.where(to_order_only, "order", "family")))
    shown_species = taxa["species"].to_numpy(dtype=object)[species_idx].copy()
    mislabel = to_species & (lrng.random(n) < config.mislabel_rate)
    for i in np.flatnonzero(mislabel):
        s = species_idx[i]
        cong = np.flatnonzero((genus_ids == genus_ids[s]) & (np.arange(n_sp) != s))
        if len(cong) == 0:
            cong = np.flatnonzero((taxa["family_id"].to_numpy() == taxa["family_id"].iloc[s]) & (np.arange(n_sp) != s))
        if len(cong) == 0:
            mislabel[i] = False
            continue
        shown_species[i] = taxa["species"].iloc[int(lrng.choice(cong))]
    # A mislabelled record carries its wrong species' genus too (names are binomials).
    name_to_genus = dict(zip(taxa["species"], taxa["genus"]))
    name_to_sub = dict(zip(taxa["species"], taxa["subfamily"]))

    t_order = taxa["order"].to_numpy(dtype=object)[species_idx]
    t_family = taxa["family"].to_numpy(dtype=object)[species_idx]
    t_genus = taxa["genus"].to_numpy(dtype=object)[species_idx]
    shown_genus = np.array([name_to_genus[s] for s in shown_species], dtype=object)
    shown_sub = np.array([name_to_sub[s] for s in shown_species], dtype=object)
    meta = pd.DataFrame({col: pd.Series([None] * n, dtype=object) for col in BIOSCAN_COLUMNS})
    meta["phylum"] = "Arthropoda"
    meta["class"] = "Insecta"
    meta["order"] = t_order
    missing = np.array(None)  # np.where's "no label" (an object scalar)
    meta["family"] = np.where(label_rank == "order", missing, t_family)
    meta["subfamily"] = np.where(np.isin(label_rank, ["species", "genus"]), shown_sub, missing)
    meta["genus"] = np.where(np.isin(label_rank, ["species", "genus"]), shown_genus, missing)
    meta["species"] = np.where(to_species, shown_species, missing)
    meta["dna_bin"] = dna_bin
    meta["dna_barcode"] = barcodes

    # ---- ids, geography.
    pids, sids = _ids(n, np.random.default_rng([config.seed, 6]))
    meta["processid"] = pids
    meta["sampleid"] = sids
    grng = np.random.default_rng([config.seed, 7])
    sites = geography.assign_sites(taxa, grng)
    # Flatten every species' sites; a specimen picks one of its species' sites by weight.
    flat = [(sp_i, *site) for sp_i in range(n_sp) for site in sites[sp_i]]
    f_sp = np.array([x[0] for x in flat])
    f_w = np.array([x[5] for x in flat])
    f_start = np.searchsorted(f_sp, np.arange(n_sp))
    f_end = np.append(f_start[1:], len(flat))
    f_cum = np.empty(len(flat))
    for sp_i in range(n_sp):
        f_cum[f_start[sp_i]:f_end[sp_i]] = np.cumsum(f_w[f_start[sp_i]:f_end[sp_i]])
    site_u = grng.random(n)
    starts = f_start[species_idx]
    ends = f_end[species_idx]
    pick = starts.copy()
    for step in range(1, int((f_end - f_start).max())):
        nxt = starts + step
        ok = (nxt < ends) & (site_u > f_cum[np.minimum(nxt - 1, len(flat) - 1)])
        pick = np.where(ok, nxt, pick)
    country = np.array([x[1] for x in flat], dtype=object)[pick]
    province = np.array([x[2] for x in flat], dtype=object)[pick]
    lat = np.array([x[3] for x in flat])[pick]
    lon = np.array([x[4] for x in flat])[pick]
    no_coords = grng.random(n) < 0.02
    meta["country"] = country
    meta["province_state"] = np.where(grng.random(n) < 0.05, np.array(None), province)
    meta["coord-lat"] = np.where(no_coords, np.nan, lat)
    meta["coord-lon"] = np.where(no_coords, np.nan, lon)
    meta["inferred_ranks"] = 0
    idx_1m = grng.permutation(1_128_313)[:n] if n <= 1_128_313 else grng.integers(0, 1_128_313, n)
    meta["index_bioscan_1M_insect"] = pd.array(np.where(grng.random(n) < 0.2, idx_1m, -1), dtype="Int64")
    meta.loc[meta["index_bioscan_1M_insect"] == -1, "index_bioscan_1M_insect"] = pd.NA

    meta = apply_splits(meta, seed=config.split_seed)

    # ---- truth.
    irng = np.random.default_rng([config.seed, 8])
    traits = images.species_traits(taxa, irng, config.cryptic_fraction)
    length_sp = images.body_length_mm(traits.latent)
    body_len = length_sp[species_idx] * irng.lognormal(0, 0.08, n)
    truth = pd.DataFrame({
        "processid": pids,
        "order": t_order,
        "family": t_family,
        "subfamily": taxa["true_subfamily"].to_numpy(dtype=object)[species_idx],
        "genus": t_genus,
        "species": taxa["species"].to_numpy(dtype=object)[species_idx],
        "species_id": species_idx,
        "novel": ~taxa["named"].to_numpy()[species_idx],
        "haplotype_id": hap_of,
        "bin": hap_bin[hap_of],
        "label_rank": label_rank,
        "mislabelled": mislabel,
        "no_gap": no_gap[species_idx],
        "cryptic_of": traits.cryptic_of[species_idx],
        "body_length_mm": np.round(body_len, 3),
    })
    return _World(meta=meta, truth=truth, traits=traits, species_idx=species_idx,
                  individual_seed=irng.integers(0, 2**63 - 1, size=n, dtype=np.int64))


def generate_frame(config: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metadata with the 23 BIOSCAN columns, truth) in memory, without images.

    Image size columns are empty (there is no drawing to measure)."""
    world = _build(config)
    return world.meta, world.truth


def _render_one(args: tuple[Any, ...]) -> tuple[int, float, float, float]:
    (i, path, latent, wings, style, ant, pattern, seed, size, quality, length_mm) = args
    rng = np.random.default_rng(seed)
    ind = latent + rng.normal(0, 0.08, size=latent.shape)
    r = images.render(ind, wings, style, ant, pattern, rng, size=size)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    r.image.save(path, format="JPEG", quality=quality)
    frac = 0.71  # mean organism-length fraction of the shorter side used by render()
    value, area, scale = images.size_columns(length_mm, r.organism_pixels, frac, size)
    return i, value, area, scale


def generate(config: SynthConfig, out_dir: Path, *, progress: Progress | None = None,
             workers: int = 1) -> SynthResult:
    """Write the dataset under ``out_dir`` (created if needed) and return what was written.

    ``progress(stage, done, total)`` (``storage.progress``) is called as work advances; ``workers`` > 1
    draws images in that many processes (the output does not depend on it).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / "metadata").mkdir(parents=True, exist_ok=True)
    if progress:
        progress("tables", 0, 1)
    world = _build(config)
    meta, truth = world.meta, world.truth
    if progress:
        progress("tables", 1, 1)
    n_images = 0
    if config.images:
        n = len(meta)
        tr = world.traits
        sp = world.species_idx
        tasks = []
        for i, (pid, split) in enumerate(zip(meta["processid"], meta["split"])):
            s = int(sp[i])
            path = out_dir / image_relpath(pid, split, DEFAULT_IMAGE_PACKAGE)
            tasks.append((i, str(path), tr.latent[s], int(tr.n_wing_pairs[s]), str(tr.wing_style[s]),
                          float(tr.antenna_scale[s]), int(tr.pattern[s]), int(world.individual_seed[i]),
                          config.image_size, config.jpeg_quality, float(truth["body_length_mm"].iat[i])))
        value = np.empty(n)
        area = np.empty(n)
        scale = np.empty(n)
        step = max(1, n // 100)
        if workers > 1 and n >= 2000:  # process start-up costs more than it saves below that
            with ProcessPoolExecutor(max_workers=workers) as ex:
                for k, (i, v, a, sc) in enumerate(ex.map(_render_one, tasks, chunksize=64)):
                    value[i], area[i], scale[i] = v, a, sc
                    if progress and (k % step == 0 or k == n - 1):
                        progress("images", k + 1, n)
        else:
            for k, task in enumerate(tasks):
                i, v, a, sc = _render_one(task)
                value[i], area[i], scale[i] = v, a, sc
                if progress and (k % step == 0 or k == n - 1):
                    progress("images", k + 1, n)
        meta["image_measurement_value"] = np.round(value, 1)
        meta["area_fraction"] = np.round(area, 6)
        meta["scale_factor"] = np.round(scale, 6)
        n_images = n
    if progress:
        progress("writing", 0, 1)
    meta_path = out_dir / "metadata" / METADATA_NAME
    truth_path = out_dir / "metadata" / TRUTH_NAME
    meta.loc[:, list(BIOSCAN_COLUMNS)].to_csv(meta_path, index=False, na_rep="")
    truth.to_csv(truth_path, index=False)
    (out_dir / "metadata" / CONFIG_NAME).write_text(config.to_json(), encoding="utf-8")
    if progress:
        progress("writing", 1, 1)
    counts = meta["split"].value_counts().to_dict()
    return SynthResult(root=out_dir, metadata_path=meta_path, truth_path=truth_path,
                       n_specimens=len(meta), n_species=int(truth["species_id"].nunique()),
                       n_images=n_images, split_counts={k: int(v) for k, v in counts.items()},
                       seconds=time.perf_counter() - t0)


def load_truth(root: Path) -> pd.DataFrame:
    """Read ``root/metadata/truth.csv`` written by :func:`generate` (processid as index column)."""
    path = Path(root) / "metadata" / TRUTH_NAME
    if not path.exists():
        from biodiscover.storage.errors import InputError

        raise InputError(f"{path}: no truth file (not a synthetic dataset written by `biodiscover synth`)")
    return pd.read_csv(path, dtype={"processid": str, "subfamily": str, "bin": str},
                       keep_default_na=True)
