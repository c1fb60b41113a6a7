"""Novelty detector: P(a specimen lies outside every known species).

Why outlier exposure: a threshold on the top-hit identity alone (BLAST's score)
already separates known from novel species well, but the right cut depends on
how crowded the neighbourhood is. We learn it: inliers are calibration
specimens of species present in the reference (val), outliers are specimens of
species absent from it (val_unseen: new species in known genera; other_heldout:
species of unknown genera). A logistic model over a few evidence features gives
a probability that is calibrated on that mix (checked by the Brier score and
the calibration table in ``calibration_``).

Features (``FEATURES``): top-hit identity, species margin (identity gap to the
best reference of another species), genus margin, top retrieval similarity,
species-rank confidence, and modality agreement (1 when DNA and image agree on
the species, 0 when they disagree, 0.5 when only one modality is present).
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from biodiscover.discovery.hierarchy import JsonLogistic

log = logging.getLogger(__name__)

FEATURES: tuple[str, ...] = ("top_identity", "species_margin", "genus_margin", "top_similarity",
                             "species_confidence", "modality_agreement")


class NoveltyDetector:
    """sklearn-style estimator: ``fit(X, y)`` with y = 1 for novel, ``predict_proba(X)``.

    Fitted attributes: ``model_`` (a JSON-serialisable logistic model),
    ``threshold_`` (decision threshold on the probability, default 0.5),
    ``calibration_`` (observed novel rate per predicted-probability bin).
    """

    def __init__(self, C: float = 1.0, threshold: float = 0.5) -> None:
        self.C = C
        self.threshold = threshold

    def fit(self, X: np.ndarray, y: np.ndarray) -> "NoveltyDetector":
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        if X.ndim != 2 or X.shape[1] != len(FEATURES):
            raise ValueError(f"novelty features must have {len(FEATURES)} columns ({', '.join(FEATURES)})")
        if len(np.unique(y)) < 2:
            raise ValueError("novelty detector needs both known (inlier) and novel (outlier) examples")
        self.model_ = JsonLogistic(C=self.C).fit(X, y)
        self.threshold_ = float(self.threshold)
        p = self.model_.predict_proba(X)
        bins = np.linspace(0, 1, 11)
        which = np.clip(np.digitize(p, bins) - 1, 0, 9)
        self.calibration_ = [
            {"bin": f"{bins[b]:.1f}-{bins[b + 1]:.1f}", "n": int((which == b).sum()),
             "observed_novel": float(y[which == b].mean()) if (which == b).any() else None}
            for b in range(10)
        ]
        self.brier_ = float(np.mean((p - y) ** 2))
        self.n_inliers_ = int((y == 0).sum())
        self.n_outliers_ = int((y == 1).sum())
        log.info("novelty detector fitted on %d inliers / %d outliers, Brier %.4f",
                 self.n_inliers_, self.n_outliers_, self.brier_)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability of a novel species per row (1-D)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, len(FEATURES))
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 = novel, 0 = known."""
        return (self.predict_proba(X) >= self.threshold_).astype(int)

    def to_dict(self) -> dict:
        return {"C": self.C, "threshold": self.threshold_, "features": list(FEATURES),
                "model": self.model_.to_dict(), "calibration": self.calibration_, "brier": self.brier_,
                "n_inliers": self.n_inliers_, "n_outliers": self.n_outliers_}

    @classmethod
    def from_dict(cls, data: Mapping) -> "NoveltyDetector":
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"novelty model was trained on features {data.get('features')}, expected {FEATURES}")
        self = cls(C=float(data["C"]), threshold=float(data["threshold"]))
        self.model_ = JsonLogistic.from_dict(data["model"])
        self.threshold_ = float(data["threshold"])
        self.calibration_ = list(data["calibration"])
        self.brier_ = float(data["brier"])
        self.n_inliers_ = int(data["n_inliers"])
        self.n_outliers_ = int(data["n_outliers"])
        return self
