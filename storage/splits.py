"""The BIOSCAN-5M split partitioner, for synthetic data and users' own records.

Why re-implemented: the official ``bioscan_split.py`` is a notebook-style script
over the full 5M-row file; the product needs the same rules as a function so the
synthetic generator and ``biodiscover split`` partition records exactly the way
BIOSCAN-5M was partitioned, and evaluation protocols (seen / unseen / heldout)
mean the same thing on every dataset. Rules (research notes §2):

1. Records with a scientific species name are *seen*; missing or placeholder
   species (:func:`is_placeholder_species`, BIOSCAN's ``find_novel_species``) start
   in ``pretrain``.
2. Placeholder species with ≥ 8 records whose genus is among the seen genera are
   *unseen*.
3. ``test`` (seed ``seed``) and ``test_unseen`` (seed ``seed + 4``) are drawn per
   species by whole N-stripped barcode: species with ≥ 8 records and ≥ 2 barcodes
   get ``min(25, floor(4 + (n - 8)/4))`` records, never more than
   ``floor(4 + (n - 8)/3)`` and from at most ``floor(1 + (n_barcodes - 2)/3)``
   barcodes. A barcode shared with another species is never used, so no
   barcode straddles the query and key sides.
4. ``val`` ≈ 5% of each seen species with ≥ 20 records, plus single-record
   barcodes of species with 7–19 records up to 5% of that long-tail mass; the
   rest of seen is ``train`` (species with one record go straight there).
5. ``val_unseen`` = 20% of each unseen species' remaining records (seed
   ``seed + 6``); the rest is ``key_unseen``.
6. Species-labelled records still in pretrain become ``other_heldout``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from biodiscover.storage.records import MAX_NUCLEOTIDES, chunk_for

if TYPE_CHECKING:
    from biodiscover.storage.collections import CollectionRead

log = logging.getLogger(__name__)

MIN_UNSEEN_SAMPLES = 8
_MALAISE = re.compile(r"m[ae]l[ae]i[sz]e", re.IGNORECASE)
_SPECIES_MARKS = re.compile(r"\d|[A-Z]{2}|_|\?|\.")
_SPECIES_WORDS = re.compile(r"\baff\b|n\.\s?sp|\bsp\.?\s?ex\b|\bgen\b|\bsp\.\s\w+|affinis\s[A-Z0-9]")


def is_placeholder_species(species: str | None, genus: str | None = None) -> bool:
    """True when ``species`` is a BOLD interim name rather than a Linnean binomial.

    Follows BIOSCAN-5M's ``find_novel_species``: a typo-tolerant ``malaise`` in the
    species or genus; a species starting in lower case; a genus starting in lower
    case (unless ``unclassified…``/``unassigned…``); a species containing a digit,
    two consecutive capitals, ``_``, ``?``, ``.``, or a capital after the first
    character; or the words ``aff``, ``n. sp``, ``sp ex``, ``gen``, ``sp. <word>``,
    ``affinis <CODE>``. A missing species is not a placeholder (it is unlabelled).
    """
    if species is None or (isinstance(species, float) and np.isnan(species)) or str(species).strip() == "":
        return False
    s = str(species).strip()
    g = "" if genus is None or (isinstance(genus, float) and np.isnan(genus)) else str(genus).strip()
    if _MALAISE.search(s) or (g and _MALAISE.search(g)):
        return True
    if s[0].islower():
        return True
    if g and g[0].islower() and not g.lower().startswith(("unclassified", "unassigned")):
        return True
    if _SPECIES_MARKS.search(s) or any(c.isupper() for c in s[1:]):
        return True
    return bool(_SPECIES_WORDS.search(s))


def species_test_quota(n: int) -> int:
    """BIOSCAN-5M's per-species test target: ``min(25, floor(4 + (n - 8)/4))`` (0 below 8)."""
    return 0 if n < MIN_UNSEEN_SAMPLES else int(min(25, np.floor(4 + (n - 8) / 4)))


def species_test_upper_bound(n: int) -> int:
    return 0 if n < MIN_UNSEEN_SAMPLES else int(np.floor(4 + (n - 8) / 3))


def barcode_cap(n_barcodes: int) -> int:
    return 0 if n_barcodes < 2 else int(np.floor(1 + (n_barcodes - 2) / 3))


def barcode_key(barcodes: pd.Series, fallback: pd.Series) -> pd.Series:
    """The identity used to keep barcodes whole: first 660 nt, upper case, N-stripped;
    a record without a barcode is its own group (keyed by ``fallback``)."""
    key = barcodes.fillna("").astype(str).str.upper().str[:MAX_NUCLEOTIDES].str.strip("N")
    empty = key == ""
    return key.where(~empty, "__none__:" + fallback.astype(str))


@dataclass(frozen=True)
class SplitSummary:
    """Counts per split (records and species), for logs and the CLI summary."""

    records: dict[str, int]
    species: dict[str, int]


def _draw_by_barcode(groups: pd.DataFrame, quota: int, upper: int, cap: int,
                     rng: np.random.Generator) -> list[str]:
    """Pick whole barcode groups (``key``, ``size``) until ``quota`` records are reached,
    never exceeding ``upper`` records or ``cap`` barcodes."""
    order = rng.permutation(len(groups))
    chosen: list[str] = []
    total = 0
    keys = groups["key"].to_numpy()
    sizes = groups["size"].to_numpy()
    for i in order:
        if total >= quota or len(chosen) >= cap:
            break
        if total + sizes[i] > upper:
            continue
        chosen.append(keys[i])
        total += int(sizes[i])
    return chosen


def _allocate_test(frame: pd.DataFrame, exclusive: pd.Series, rng: np.random.Generator) -> pd.Index:
    """Rows of ``frame`` (columns ``species``, ``key``) drawn as test by the BIOSCAN rule.
    ``exclusive`` says per barcode key whether only one species carries it."""
    picked: list[pd.Index] = []
    for _, rows in frame.groupby("species", sort=True, observed=True):
        n = len(rows)
        sizes = rows.groupby("key", sort=True).size()
        if n < MIN_UNSEEN_SAMPLES or len(sizes) < 2:
            continue
        groups = pd.DataFrame({"key": sizes.index, "size": sizes.to_numpy()})
        groups = groups[exclusive.reindex(groups["key"]).fillna(False).to_numpy()]
        # Keep at least one barcode for the key side.
        cap = min(barcode_cap(len(sizes)), len(sizes) - 1)
        keys = _draw_by_barcode(groups, species_test_quota(n), species_test_upper_bound(n), cap, rng)
        if keys:
            picked.append(rows.index[rows["key"].isin(keys)])
    return picked[0].append(picked[1:]) if picked else pd.Index([])


def assign_splits(df: pd.DataFrame, seed: int = 1) -> pd.Series:
    """The BIOSCAN-5M split of each row of ``df`` (needs ``species``, ``genus``,
    ``dna_barcode`` and ``processid``); returns a string Series aligned to ``df``.

    Deterministic for a given ``seed`` and row order.
    """
    for col in ("processid", "species", "genus", "dna_barcode"):
        if col not in df.columns:
            raise ValueError(f"assign_splits needs a {col!r} column")
    species = df["species"].astype("object").where(df["species"].notna(), None)
    genus = df["genus"].astype("object").where(df["genus"].notna(), None)
    uniq = pd.DataFrame({"species": species, "genus": genus}).drop_duplicates()
    flags = {(s, g): is_placeholder_species(s, g) for s, g in uniq.itertuples(index=False)}
    placeholder = pd.Series([flags[(s, g)] for s, g in zip(species, genus)], index=df.index)
    has_species = species.notna()
    seen = has_species & ~placeholder
    split = pd.Series("pretrain", index=df.index, dtype=object)

    seen_genera = set(genus[seen].dropna())
    cand = has_species & placeholder & genus.isin(seen_genera)
    cand_counts = species[cand].value_counts()
    unseen_species = set(cand_counts.index[cand_counts >= MIN_UNSEEN_SAMPLES])
    unseen = cand & species.isin(unseen_species)

    key = barcode_key(df["dna_barcode"], df["processid"])
    frame = pd.DataFrame({"species": species, "key": key})

    # --- seen: test, val, train ---------------------------------------------------
    seen_frame = frame[seen]
    excl_seen = seen_frame.groupby("key")["species"].nunique() == 1
    test_idx = _allocate_test(seen_frame, excl_seen, np.random.default_rng(seed))
    split[seen] = "train"
    split[test_idx] = "test"
    rng_val = np.random.default_rng(seed + 1)
    remaining = seen_frame.drop(index=test_idx)
    val_parts: list[pd.Index] = []
    tail_single: list[pd.Index] = []
    tail_mass = 0
    seen_counts = seen_frame["species"].value_counts()
    for name, rows in remaining.groupby("species", sort=True):
        n_total = int(seen_counts[name])
        sizes = rows.groupby("key", sort=True).size()
        groups = pd.DataFrame({"key": sizes.index, "size": sizes.to_numpy()})
        groups = groups[excl_seen.reindex(groups["key"]).fillna(False).to_numpy()]
        if n_total >= 20:
            target = max(1, int(round(0.05 * n_total)))
            keys = _draw_by_barcode(groups, target, target + max(1, target // 2), len(sizes) - 1, rng_val)
            val_parts.append(rows.index[rows["key"].isin(keys)])
        elif 7 <= n_total < 20:
            tail_mass += n_total
            singles = groups[groups["size"] == 1]
            if len(singles) and len(sizes) > 1:
                tail_single.append(rows.index[rows["key"].isin(singles["key"])][:1])
    if tail_single:
        pool = tail_single[0].append(tail_single[1:])
        take = int(round(0.05 * tail_mass))
        if take:
            val_parts.append(pd.Index(rng_val.permutation(pool.to_numpy())[:take]))
    if val_parts:
        split[val_parts[0].append(val_parts[1:])] = "val"

    # --- unseen: test_unseen, val_unseen, key_unseen ------------------------------
    unseen_frame = frame[unseen]
    excl_unseen = unseen_frame.groupby("key")["species"].nunique() == 1
    split[unseen] = "key_unseen"
    test_u = _allocate_test(unseen_frame, excl_unseen, np.random.default_rng(seed + 4))
    split[test_u] = "test_unseen"
    rng_vu = np.random.default_rng(seed + 6)
    rest = unseen_frame.drop(index=test_u)
    for _, rows in rest.groupby("species", sort=True):
        k = int(np.floor(0.2 * len(rows)))
        if k and len(rows) > 1:
            split[rng_vu.choice(rows.index.to_numpy(), size=min(k, len(rows) - 1), replace=False)] = "val_unseen"

    # --- heldout --------------------------------------------------------------------
    split[has_species & (split == "pretrain")] = "other_heldout"
    return split


def apply_splits(df: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """A copy of ``df`` with ``split`` and ``chunk`` filled and pretrain labels below
    family removed (``taxon`` updated), as in BIOSCAN-5M."""
    out = df.copy()
    out["split"] = assign_splits(out, seed=seed)
    out["chunk"] = [chunk_for(pid, s) or None for pid, s in zip(out["processid"].astype(str), out["split"])]
    pre = out["split"] == "pretrain"
    for col in ("subfamily", "genus", "species"):
        if col in out.columns:
            out.loc[pre, col] = None
    if "taxon" in out.columns:
        out["taxon"] = deepest_taxon(out)
    return out


def deepest_taxon(df: pd.DataFrame) -> pd.Series:
    """The label at the most specific rank present (BIOSCAN's ``taxon`` column)."""
    taxon = pd.Series(None, index=df.index, dtype=object)
    for col in ("phylum", "class", "order", "family", "subfamily", "genus", "species"):
        if col in df.columns:
            vals = df[col]
            ok = vals.notna() & (vals.astype(str).str.len() > 0)
            if col == "subfamily":
                ok &= ~vals.astype(str).str.startswith("unassigned")
            taxon = taxon.where(~ok, vals)
    return taxon


def summarise(df: pd.DataFrame) -> SplitSummary:
    """Records and distinct species per split."""
    rec = df["split"].value_counts().to_dict()
    spp = df.dropna(subset=["species"]).groupby("split")["species"].nunique().to_dict()
    return SplitSummary(records={k: int(v) for k, v in rec.items()}, species={k: int(v) for k, v in spp.items()})


def split_collection(source: Path, output: Path, *, seed: int = 1) -> tuple[SplitSummary, CollectionRead]:
    """Read a user's labelled records (CSV/TSV/FASTA via ``storage.collections``), partition
    them and write ``output`` with the 23 BIOSCAN columns, ``split`` and ``chunk`` filled.

    Invalid rows are not partitioned: they are returned in the read's quarantine
    (the caller writes it), never silently dropped. Returns ``(SplitSummary, CollectionRead)``.
    """
    from biodiscover.storage.collections import read_collection
    from biodiscover.storage.errors import InputError
    from biodiscover.storage.records import BIOSCAN_COLUMNS

    read = read_collection(Path(source), check_images=False)
    if not read.specimens:
        raise InputError(f"{source}: no valid records to split ({len(read.quarantine)} quarantined)")
    df = pd.DataFrame([s.to_row() for s in read.specimens], columns=list(BIOSCAN_COLUMNS))
    if df["species"].isna().all():
        raise InputError(f"{source}: no record has a species label; nothing to partition")
    out = apply_splits(df, seed=seed)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output, index=False, na_rep="")
    return summarise(out), read
