"""Configuration of the synthetic BIOSCAN-like generator.

Why a frozen dataclass: a synthetic dataset is reproducible only if every knob
that shaped it is recorded; ``SynthConfig`` is hashable, printable and written
next to the data (``metadata/synth_config.json``) so a benchmark can say exactly
which collection it ran on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of one synthetic collection.

    Defaults give a small but complete dataset (every split populated) that
    generates in a few seconds with images; tests shrink it further.

    The genetic targets are medians of mean pairwise p-distance between unique
    barcodes within a species / genus / family (BIOSCAN-5M: ≈1.2% / 8% / 14%).
    """

    n_species: int = 60
    n_specimens: int = 1200
    seed: int = 0
    images: bool = True
    #: Shorter image side in pixels (BIOSCAN ``cropped_256``: 256, 341×256 landscape).
    image_size: int = 256
    #: JPEG quality of written images.
    jpeg_quality: int = 85
    #: Fraction of species with a scientific (Linnean) name; the rest get BOLD placeholders.
    named_fraction: float = 0.6
    #: Fraction of specimens whose identification reaches species (the rest stop higher).
    species_label_fraction: float = 0.55
    #: Of the specimens not identified to species, fraction identified to genus.
    genus_label_fraction: float = 0.3
    #: Fraction of species-labelled records whose label is wrong (a congener's name).
    mislabel_rate: float = 0.003
    #: Fraction of species whose true barcode has no gap with a sister species.
    no_gap_fraction: float = 0.04
    #: Fraction of species drawn to look identical to a congener (cryptic).
    cryptic_fraction: float = 0.05
    #: Target median within-species / within-genus / within-family p-distance.
    within_species: float = 0.012
    within_genus: float = 0.08
    within_family: float = 0.14
    #: Transition/transversion rate ratio (κ) of the HKY substitution model.
    kappa: float = 8.0
    #: A+T fraction of the process' equilibrium (gives ≈ 0.68 measured, like the real dev file).
    at_fraction: float = 0.655
    #: Zipf-like exponent of species abundance (larger = longer tail).
    abundance_skew: float = 1.1
    #: Seed of the split partitioner (BIOSCAN-5M uses 1, 5 and 7 for its three draws).
    split_seed: int = 1

    def __post_init__(self) -> None:
        if self.n_species < 1:
            raise ValueError(f"n_species must be >= 1, got {self.n_species}")
        if self.n_specimens < self.n_species:
            raise ValueError(
                f"n_specimens ({self.n_specimens}) must be >= n_species ({self.n_species}):"
                " every species needs at least one specimen"
            )
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 px, got {self.image_size}")
        for name in ("named_fraction", "species_label_fraction", "genus_label_fraction",
                     "mislabel_rate", "no_gap_fraction", "cryptic_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if not 0 < self.within_species < self.within_genus < self.within_family < 0.5:
            raise ValueError("need 0 < within_species < within_genus < within_family < 0.5")
        if not 0.4 <= self.at_fraction <= 0.8:
            raise ValueError(f"at_fraction must be within [0.4, 0.8], got {self.at_fraction}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SynthConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown SynthConfig keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> "SynthConfig":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
