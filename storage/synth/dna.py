"""COI-like barcodes evolved down the synthetic tree.

Why a per-site HKY process rather than random strings: every downstream method
(k-mer profiles, alignment identity, BIN-like clustering, BarcodeBERT tokens)
sees structure only if distances grow with taxonomic depth the way real COI does:
third codon positions change fastest and are ≈90% A+T, first and second
positions are conserved (many invariant), transitions outnumber transversions
(κ), and deep distances saturate. Node heights are solved from the target median
p-distances (within species / genus / family) with the expected-p curve of this
very site-rate profile, so the calibration holds whatever the knobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
#: Length of the full COI-5P barcode region.
CORE_LENGTH = 658
_TRANSITION = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)


@dataclass(frozen=True)
class SiteModel:
    """Per-site rates and codon-class base frequencies of the barcode region."""

    rates: np.ndarray  # (L,) relative rate, mean 1 over sites
    site_class: np.ndarray  # (L,) 0, 1, 2 = codon position
    freqs: np.ndarray  # (3, 4) stationary A, C, G, T per codon position
    jump_cdf: np.ndarray  # (3, 4, 4) cumulative P(new base | class, old base) per event
    event_rates: np.ndarray  # (L,) event rate per site (uniformisation), ≥ rates

    @property
    def length(self) -> int:
        return int(self.rates.shape[0])

    def expected_p(self, d: float | np.ndarray) -> np.ndarray:
        """Expected p-distance between two sequences ``d`` substitutions/site apart (F81 approx.)."""
        d = np.atleast_1d(np.asarray(d, dtype=float))
        b = 1.0 - (self.freqs ** 2).sum(axis=1)[self.site_class]  # (L,)
        return np.asarray((b[None, :] * (1.0 - np.exp(-self.rates[None, :] * d[:, None] / b[None, :]))).mean(axis=1))

    def depth_for_p(self, p: float) -> float:
        """Invert :meth:`expected_p`: the pairwise substitution depth giving p-distance ``p``."""
        lo, hi = 0.0, 10.0
        if self.expected_p(hi)[0] <= p:
            raise ValueError(f"p-distance {p} is beyond saturation of this site model")
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.expected_p(mid)[0] < p:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


def make_site_model(rng: np.random.Generator, kappa: float, at_fraction: float,
                    length: int = CORE_LENGTH) -> SiteModel:
    """Codon-position rate variation (1st 0.5, 2nd 0.15, 3rd 2.35 before gamma) with
    Γ(0.6) among-site heterogeneity and 45% invariant first/second positions."""
    site_class = np.arange(length) % 3
    class_rate = np.array([0.5, 0.15, 2.35])[site_class]
    gamma = rng.gamma(0.6, 1 / 0.6, size=length)
    invariant = (site_class < 2) & (rng.random(length) < 0.45)
    rates = class_rate * gamma * (~invariant)
    rates = rates / rates.mean()
    at3 = min(0.93, at_fraction + 0.24)
    at12 = (3 * at_fraction - at3) / 2
    freqs = np.empty((3, 4))
    for c, at in ((0, at12), (1, at12), (2, at3)):
        gc = 1 - at
        # A, C, G, T; T slightly above A as in insect COI; G above C at 1st positions.
        freqs[c] = [at * 0.46, gc * (0.45 if c == 0 else 0.55), gc * (0.55 if c == 0 else 0.45), at * 0.54]
    # Uniformised HKY: events hit a site at a constant rate μ and move base i to j
    # with probability q_ij / μ (staying put otherwise), which keeps the stationary
    # composition at ``freqs``. Event rates are scaled by 1 / (expected fraction of
    # events that substitute) so one branch unit is one substitution per site.
    jump = np.empty((3, 4, 4))
    subst_per_event = np.empty(3)
    for c in range(3):
        q = freqs[c][None, :] * np.where(_TRANSITION, kappa, 1.0)
        np.fill_diagonal(q, 0.0)
        out = q.sum(axis=1)
        mu = out.max()
        prob = q / mu
        prob[np.arange(4), np.arange(4)] = 1.0 - out / mu
        jump[c] = np.cumsum(prob, axis=1)
        subst_per_event[c] = float((freqs[c] * out / mu).sum())
    event_rates = rates / subst_per_event[site_class]
    return SiteModel(rates=rates, site_class=site_class, freqs=freqs, jump_cdf=jump,
                     event_rates=event_rates)


def random_root(model: SiteModel, rng: np.random.Generator) -> np.ndarray:
    """An ancestral sequence (codes 0–3) drawn from the stationary frequencies."""
    cdf = np.cumsum(model.freqs, axis=1)[model.site_class]  # (L, 4)
    u = rng.random(model.length)
    return np.asarray((u[:, None] > cdf).sum(axis=1).astype(np.uint8))


def evolve(parents: np.ndarray, branch: np.ndarray, model: SiteModel,
           rng: np.random.Generator) -> np.ndarray:
    """Children of ``parents`` (n, L codes) after ``branch`` (n,) substitutions/site each.

    Events are drawn per row (Poisson with mean branch × Σrates), placed on sites
    with probability ∝ rate, and applied in rounds small enough that double hits
    within a round are rare, so long branches saturate as they should.
    """
    seqs = parents.copy()
    n, length = seqs.shape
    if n == 0:
        return seqs
    site_cdf = np.cumsum(model.event_rates)
    max_rate = float(model.event_rates.max())
    rounds = max(1, int(np.ceil(float(np.max(branch)) * max_rate / 0.15)))
    per_round = np.asarray(branch, dtype=float) * site_cdf[-1] / rounds
    for _ in range(rounds):
        counts = rng.poisson(per_round)
        total = int(counts.sum())
        if total == 0:
            continue
        rows = np.repeat(np.arange(n), counts)
        pos = np.searchsorted(site_cdf, rng.random(total) * site_cdf[-1], side="right")
        pos = np.minimum(pos, length - 1)
        cur = seqs[rows, pos]
        cdf = model.jump_cdf[model.site_class[pos], cur]  # (total, 4)
        new = (rng.random(total)[:, None] > cdf).sum(axis=1).astype(np.uint8)
        seqs[rows, pos] = np.minimum(new, 3)
    return seqs


def to_strings(codes: np.ndarray) -> list[str]:
    """Code matrix (n, L) → list of ACGT strings."""
    letters = BASES[codes]
    return [row.tobytes().decode("ascii") for row in letters]

