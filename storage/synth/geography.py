"""Collection sites clustered by lineage.

Why: geography is evidence a taxonomist uses (a "new species" whose members
come from three continents is suspect) and a shortcut a model can learn. Real
BIOSCAN-5M is dominated by a few countries (Costa Rica, Canada, South Africa…)
and congeners tend to be caught in the same region, so here a family has a home
country, a genus mostly stays in it, and a species is caught at a handful of
sites (Malaise traps) whose coordinates repeat exactly, as in BOLD records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: country → (weight, [(province, lat, lon), …]).
COUNTRIES: dict[str, tuple[float, list[tuple[str, float, float]]]] = {
    "Costa Rica": (0.40, [("Guanacaste", 10.84, -85.61), ("Alajuela", 10.99, -85.42),
                          ("Puntarenas", 8.91, -83.47), ("Limon", 10.0, -83.3)]),
    "Canada": (0.22, [("Ontario", 43.54, -80.25), ("British Columbia", 49.25, -123.1),
                      ("Nova Scotia", 44.65, -63.57), ("Manitoba", 49.9, -97.1),
                      ("Yukon Territory", 60.72, -135.05)]),
    "South Africa": (0.08, [("Western Cape", -33.93, 18.42), ("KwaZulu-Natal", -29.6, 30.38)]),
    "United States": (0.06, [("California", 37.42, -122.08), ("Florida", 27.99, -81.76),
                             ("Alaska", 64.84, -147.72)]),
    "Pakistan": (0.04, [("Punjab", 31.52, 74.36), ("Khyber Pakhtunkhwa", 34.01, 71.58)]),
    "Thailand": (0.04, [("Chiang Mai", 18.79, 98.98), ("Nakhon Ratchasima", 14.97, 102.1)]),
    "Australia": (0.04, [("Australian Capital Territory", -35.26, 149.06), ("Queensland", -19.26, 146.82)]),
    "Germany": (0.04, [("Bavaria", 48.14, 11.58), ("Saxony", 51.05, 13.74)]),
    "Kenya": (0.03, [("Kakamega", 0.28, 34.75)]),
    "Finland": (0.02, [("Uusimaa", 60.17, 24.94)]),
    "Papua New Guinea": (0.02, [("Madang", -5.22, 145.79)]),
    "Argentina": (0.01, [("Misiones", -27.37, -55.9)]),
}


def assign_sites(taxa: pd.DataFrame, rng: np.random.Generator) -> list[list[tuple[str, str, float, float, float]]]:
    """For each species row of ``taxa`` (needs ``family_id``, ``genus_id``), its sites:
    ``(country, province, lat, lon, weight)``; weights of one species sum to 1."""
    names = list(COUNTRIES)
    w = np.array([COUNTRIES[c][0] for c in names])
    w = w / w.sum()
    fam_home: dict[int, int] = {}
    gen_home: dict[int, int] = {}
    out: list[list[tuple[str, str, float, float, float]]] = []
    for fam, gen in zip(taxa["family_id"].to_numpy(), taxa["genus_id"].to_numpy()):
        if fam not in fam_home:
            fam_home[fam] = int(rng.choice(len(names), p=w))
        if gen not in gen_home:
            gen_home[gen] = fam_home[fam] if rng.random() < 0.75 else int(rng.choice(len(names), p=w))
        n_sites = int(min(1 + rng.geometric(0.55) - 1, 4)) or 1
        sites = []
        for k in range(n_sites):
            ci = gen_home[gen] if (k == 0 or rng.random() < 0.7) else int(rng.choice(len(names), p=w))
            country = names[ci]
            provinces = COUNTRIES[country][1]
            prov, lat, lon = provinces[rng.integers(len(provinces))]
            # A trap within ~50 km of the province centre; coordinates kept to 3 decimals like BOLD.
            lat = round(float(np.clip(lat + rng.normal(0, 0.3), -89.9, 89.9)), 3)
            lon = round(float(((lon + rng.normal(0, 0.3)) + 180) % 360 - 180), 3)
            sites.append((country, prov, lat, lon))
        weights = rng.dirichlet(np.full(len(sites), 0.8))
        out.append([(c, p, la, lo, float(wt)) for (c, p, la, lo), wt in zip(sites, weights)])
    return out
