"""A tiny labelled barcode world with known truth, for discovery tests.

Why generated here: tests must run without ../shared, and the discovery engine
needs a taxonomy with a barcode gap (species within ~1%, congeneric species
~8–10% apart, genera ~18% apart) to have something to calibrate.
"""

from __future__ import annotations

import numpy as np

from biodiscover.storage.records import Specimen

BASES = np.array(list("ACGT"))


def mutate(rng: np.random.Generator, seq: np.ndarray, rate: float) -> np.ndarray:
    out = seq.copy()
    hit = rng.random(out.size) < rate
    out[hit] = rng.choice(BASES, size=int(hit.sum()))
    return out


def make_world(seed: int = 0, length: int = 400, n_genera: int = 6, species_per_genus: int = 5,
               per_species: int = 8) -> dict[str, list[Specimen]]:
    """Splits like BIOSCAN-5M: train/val/test (seen species), unseen species of known
    genera (key_unseen-like 'unseen'), and 'heldout' genera absent from every split."""
    rng = np.random.default_rng(seed)
    root = rng.choice(BASES, size=length)
    out: dict[str, list[Specimen]] = {k: [] for k in ("train", "val", "test", "val_unseen", "test_unseen",
                                                       "other_heldout")}
    n = 0
    for g in range(n_genera + 2):
        heldout_genus = g >= n_genera
        family = f"Fam{g % 2}"
        genus_seq = mutate(rng, root, 0.25)
        for s in range(species_per_genus):
            sp_seq = mutate(rng, genus_seq, 0.10)
            unseen = (not heldout_genus) and s >= species_per_genus - 2  # last two species of a genus: unseen
            for i in range(per_species):
                seq = "".join(mutate(rng, sp_seq, 0.006))
                if heldout_genus:
                    split = "other_heldout"
                elif unseen:
                    split = "val_unseen" if s == species_per_genus - 2 else "test_unseen"
                else:
                    split = "train" if i < per_species - 3 else ("val" if i == per_species - 3 else "test")
                n += 1
                out[split].append(Specimen(processid=f"P{n:05d}", order="Ord", family=family,
                                           genus=f"Gen{g}", species=f"Gen{g} sp{s}", dna_barcode=seq,
                                           split=split))
    return out
