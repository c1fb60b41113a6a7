"""A long-tailed synthetic taxonomy: order → family → subfamily → genus → species.

Why preferential attachment: real insect taxonomies are dominated by a few huge
genera and families (Megaselia alone has thousands of BINs) with a long tail of
monotypic ones. Growing the tree species by species, where a new species joins an
existing genus with probability proportional to its size (or founds a new genus),
reproduces that heavy tail at every rank with three interpretable knobs.

Names are Latin-ish and unique. Unnamed species get BOLD interim names
(``Megaselia sp. BIOUG12345-A01``, ``Idaea BioLep88``, ``Eudorylas sp. CR10``)
that ``storage.splits.is_placeholder_species`` — BIOSCAN-5M's ``find_novel_species``
rules — flags, so the split partitioner sees them as the real pipeline would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np
import pandas as pd

#: Insect orders and their share of BIOSCAN-5M-like catches (Diptera ≈ 50%).
ORDER_WEIGHTS: dict[str, float] = {
    "Diptera": 0.50,
    "Hymenoptera": 0.15,
    "Hemiptera": 0.09,
    "Lepidoptera": 0.08,
    "Coleoptera": 0.08,
    "Psocodea": 0.03,
    "Thysanoptera": 0.02,
    "Trichoptera": 0.015,
    "Orthoptera": 0.01,
    "Blattodea": 0.005,
    "Ephemeroptera": 0.004,
    "Neuroptera": 0.004,
    "Plecoptera": 0.003,
    "Odonata": 0.002,
    "Mantodea": 0.002,
}

# Probability that a new species / genus / subfamily founds a new parent taxon
# instead of joining an existing one (∝ size). Tuned for ≈3 species per genus,
# ≈2.5 genera per subfamily, ≈2 subfamilies per family, as in BIOSCAN-5M's counts.
P_NEW_GENUS = 0.33
P_NEW_SUBFAMILY = 0.40
P_NEW_FAMILY = 0.50

_ONSETS = ["b", "c", "d", "g", "l", "m", "n", "p", "r", "s", "t", "v", "ch", "ph", "th",
           "tr", "pl", "cr", "st", "gl", "br", "dr", "x", "z", "h"]
_VOWELS = ["a", "e", "i", "o", "u", "y", "ae", "io", "eu", "ia"]
_GENUS_SUFFIX = ["a", "ia", "us", "um", "ella", "ina", "omyia", "myia", "ops", "ocera",
                 "oides", "ites", "ura", "opsis", "ax", "eria", "ona", "odes", "ius", "ix"]
_EPITHET_SUFFIX = ["a", "us", "um", "ensis", "ata", "alis", "ii", "ae", "oides", "ella",
                   "ica", "ina", "ipes", "ulata", "ana", "ops", "ifera", "osa", "ella", "iata"]
_PROVINCE_CODES = ["CR", "GMK", "ES", "ON", "BC", "NS", "PK", "SA", "ZA", "MY"]


def _stem(rng: np.random.Generator, n_syllables: int) -> str:
    parts = []
    for _ in range(n_syllables):
        parts.append(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))])
    return "".join(parts)


def _unique(rng: np.random.Generator, used: set[str], make: Callable[[], str]) -> str:
    for _ in range(1000):
        name = make()
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("could not draw a unique name")  # pragma: no cover


def _suffixed(rng: np.random.Generator, used: set[str], stem: str, suffix: str) -> str:
    """``Stem`` + suffix (a family "-idae", a subfamily "-inae"), or a fresh stem when that is taken."""
    name = stem.capitalize() + suffix
    return name if name not in used else (_stem(rng, 2) + suffix).capitalize()


def latin_genus(rng: np.random.Generator, used: set[str]) -> str:
    """A capitalised, pronounceable genus name (``Thaerochella``)."""
    return _unique(rng, used, lambda: (_stem(rng, int(rng.integers(1, 3)))
                                       + _GENUS_SUFFIX[rng.integers(len(_GENUS_SUFFIX))]).capitalize())


def latin_epithet(rng: np.random.Generator, used: set[str]) -> str:
    """A lower-case specific epithet (``plorensis``)."""
    return _unique(rng, used, lambda: _stem(rng, int(rng.integers(1, 3)))
                   + _EPITHET_SUFFIX[rng.integers(len(_EPITHET_SUFFIX))])


def placeholder_species(rng: np.random.Generator, genus: str, order: str, used: set[str]) -> str:
    """A BOLD interim name in one of the styles seen in BIOSCAN (research §1)."""

    def make() -> str:
        style = rng.choice(6, p=[0.35, 0.15, 0.15, 0.12, 0.13, 0.10])
        if style == 0:
            plate = int(rng.integers(10000, 99999))
            well = "ABCDEFGH"[rng.integers(8)] + f"{int(rng.integers(1, 13)):02d}"
            return f"{genus} sp. BIOUG{plate}-{well}"
        if style == 1:
            tag = "BioLep" if order == "Lepidoptera" else "Janzen"
            return f"{genus} {tag}{int(rng.integers(1, 999))}"
        if style == 2:
            return f"{genus} sp. {_PROVINCE_CODES[rng.integers(len(_PROVINCE_CODES))]}{int(rng.integers(1, 99))}"
        if style == 3:
            return f"{genus} Malaise{int(rng.integers(100, 9999))}"
        if style == 4:
            letters = "".join("ABCDEFGHJKLMNPRSTWXYZ"[i] for i in rng.integers(0, 21, size=3))
            return f"{genus} sp. {int(rng.integers(1, 30))}{letters}"
        return f"{genus} GS-sp{'ABCDEFGHJK'[rng.integers(10)]}"

    return _unique(rng, used, make)


def _grow(rng: np.random.Generator, n_items: int, p_new: float) -> np.ndarray:
    """Assign ``n_items`` to groups by preferential attachment; returns group index per item."""
    groups = np.empty(n_items, dtype=np.int64)
    sizes: list[int] = []
    for i in range(n_items):
        if not sizes or rng.random() < p_new:
            sizes.append(1)
            groups[i] = len(sizes) - 1
        else:
            probs = np.asarray(sizes, dtype=float)
            g = int(rng.choice(len(sizes), p=probs / probs.sum()))
            sizes[g] += 1
            groups[i] = g
    return groups


@dataclass(frozen=True)
class Taxonomy:
    """The generated tree.

    ``species`` has one row per species: ``species_id`` (0…n-1), ``order``,
    ``family``, ``subfamily`` (the *displayed* label: may be ``unassigned <Family>``
    or missing), ``genus``, ``species`` (scientific or placeholder name), ``named``,
    integer node ids ``order_id``, ``family_id``, ``subfamily_id``, ``genus_id``
    (global, unique across ranks), and ``true_subfamily`` (always set, used for
    the tree shape). ``nodes`` has one row per internal node (``node_id``, ``rank``,
    ``name``, ``parent_id``).
    """

    species: pd.DataFrame
    nodes: pd.DataFrame


def build_taxonomy(n_species: int, named_fraction: float, rng: np.random.Generator) -> Taxonomy:
    """Grow a taxonomy of ``n_species`` species (see module docstring)."""
    # Small collections hold few orders (a 30-species plate is mostly flies and
    # wasps); the number of orders grows with the logarithm of the species count.
    n_orders = int(np.clip(round(np.log2(max(n_species, 2))) - 2, 1, len(ORDER_WEIGHTS)))
    orders = list(ORDER_WEIGHTS)[:n_orders]
    weights = np.array([ORDER_WEIGHTS[o] for o in orders])
    order_of_species = rng.choice(len(orders), size=n_species, p=weights / weights.sum())

    used_genera: set[str] = set()
    used_higher: set[str] = set()
    used_epithets: dict[str, set[str]] = {}
    used_species: set[str] = set()
    node_rows: list[tuple[int, str, str, int]] = []
    rows: list[dict[str, Any]] = []
    next_id = 0

    def new_node(rank: str, name: str, parent: int) -> int:
        nonlocal next_id
        node_rows.append((next_id, rank, name, parent))
        next_id += 1
        return next_id - 1

    for oi in np.unique(order_of_species):
        order = orders[oi]
        order_id = new_node("order", order, -1)
        n = int((order_of_species == oi).sum())
        genus_of = _grow(rng, n, P_NEW_GENUS)
        n_genera = int(genus_of.max()) + 1
        subfam_of_genus = _grow(rng, n_genera, P_NEW_SUBFAMILY)
        n_subfam = int(subfam_of_genus.max()) + 1
        family_of_subfam = _grow(rng, n_subfam, P_NEW_FAMILY)
        n_fam = int(family_of_subfam.max()) + 1

        genus_names = [latin_genus(rng, used_genera) for _ in range(n_genera)]
        # Family and subfamily names are built from a member genus' stem, as in zoology.
        fam_ids, fam_names, fam_label_mode = [], [], []
        for f in range(n_fam):
            member_genera = [g for g in range(n_genera) if family_of_subfam[subfam_of_genus[g]] == f]
            stem = genus_names[member_genera[0]].rstrip("aeiouy") if member_genera else _stem(rng, 2)
            name = _unique(rng, used_higher, partial(_suffixed, rng, used_higher, stem, "idae"))
            fam_names.append(name)
            fam_ids.append(new_node("family", name, order_id))
            # How this family's subfamilies are shown: 0 named, 1 missing, 2 "unassigned <Family>".
            fam_label_mode.append(int(rng.choice(3, p=[0.6, 0.3, 0.1])))
        sub_ids, sub_names = [], []
        for s in range(n_subfam):
            member_genera = [g for g in range(n_genera) if subfam_of_genus[g] == s]
            stem = genus_names[member_genera[0]].rstrip("aeiouy")
            name = _unique(rng, used_higher, partial(_suffixed, rng, used_higher, stem, "inae"))
            sub_names.append(name)
            sub_ids.append(new_node("subfamily", name, fam_ids[family_of_subfam[s]]))
        gen_ids = [new_node("genus", genus_names[g], sub_ids[subfam_of_genus[g]]) for g in range(n_genera)]

        named = rng.random(n) < named_fraction
        # A genus whose species are all unnamed sometimes carries a placeholder genus
        # name too (``gelBioLep01``): BIOSCAN-5M sends those to other_heldout.
        genus_display = list(genus_names)
        for g in range(n_genera):
            members = np.flatnonzero(genus_of == g)
            if not named[members].any() and rng.random() < 0.3:
                tag = "BioLep" if order == "Lepidoptera" else "Malaise"
                genus_display[g] = f"{genus_names[g][:4].lower()}{tag}{int(rng.integers(1, 99)):02d}"
        for i in range(n):
            g = int(genus_of[i])
            s = int(subfam_of_genus[g])
            f = int(family_of_subfam[s])
            genus = genus_display[g]
            if named[i] and genus == genus_names[g]:
                ep = latin_epithet(rng, used_epithets.setdefault(genus, set()))
                species = f"{genus} {ep}"
                used_species.add(species)
                is_named = True
            else:
                species = placeholder_species(rng, genus, order, used_species)
                is_named = False
            mode = fam_label_mode[f]
            subfamily = sub_names[s] if mode == 0 else (None if mode == 1 else f"unassigned {fam_names[f]}")
            rows.append({
                "order": order, "family": fam_names[f], "subfamily": subfamily, "genus": genus,
                "species": species, "named": is_named, "true_subfamily": sub_names[s],
                "order_id": order_id, "family_id": fam_ids[f], "subfamily_id": sub_ids[s],
                "genus_id": gen_ids[g],
            })
    species = pd.DataFrame(rows)
    # Shuffle so species ids are not grouped by order, then number them.
    species = species.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    species.insert(0, "species_id", np.arange(len(species), dtype=np.int64))
    nodes = pd.DataFrame(node_rows, columns=["node_id", "rank", "name", "parent_id"])
    return Taxonomy(species=species, nodes=nodes)
