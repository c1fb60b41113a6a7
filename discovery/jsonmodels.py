"""Probability models whose fitted state is plain numbers (JSON in a bundle, never a pickle).

Why not keep the scikit-learn objects: bundles never unpickle, so the fitted state
is stored as JSON and prediction is a few NumPy lines. scikit-learn does the fitting.

* ``JsonLogistic`` — standardised binary logistic regression (the image classifier's
  per-rank confidence).
* ``JsonIsotonic`` — a non-decreasing map from one score to P(y = 1), isotonic regression whose blocks read a
  Beta posterior mean: the image classifier's score → P(right) per rank, so a photograph is named at the level.
* ``JsonBoosting`` — gradient-boosted trees (scikit-learn's HistGradientBoosting) with
  optional monotonic constraints: the naming model's P(absent) and P(right | present),
  where identity interacts with how crowded a taxon's neighbourhood is in ways a
  linear logit cannot follow (measured on the per-order folds: benchmarks/RESULTS-discovery.md).
  Its features are binned here (``weighted_bins``), not by scikit-learn: the same bins, 40× faster.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
    scale = X.std(axis=0) if len(X) else np.ones(X.shape[1])
    scale[scale == 0] = 1.0
    return mean, scale


#: non-missing bins of a boosted model's feature (scikit-learn's ``max_bins`` default)
MAX_BINS = 255
#: rows above which scikit-learn bins a subsample, drawn at random: left to it (``weighted_bins`` gives None)
BIN_SUBSAMPLE = 200_000
#: scikit-learn's ceiling on a bin threshold (``_hist_gradient_boosting.common.ALMOST_INF``)
ALMOST_INF = 1e300


def weighted_bins(column: np.ndarray, weight: np.ndarray, max_bins: int = MAX_BINS) -> np.ndarray | None:
    """The bin thresholds HistGradientBoosting gives a weighted feature, computed in one pass; None where it
    bins the feature itself as fast (no more than ``max_bins`` distinct values) or at random (a subsample).

    Why here: with sample weights, scikit-learn (≥ 1.8) finds each of the 254 thresholds of a feature by its own
    sort of the whole column: a fit of 100 trees on 1,000 weighted rows took 0.66 s of CPU, 0.12 s binned here,
    and a reference's whole fit 10–25 % less (benchmarks/RESULTS-scale.md, "Binning the naming model's
    features"). The thresholds are its
    weighted "averaged inverted CDF" percentiles at ``linspace(0, 100, max_bins + 1)[1:-1]``, taken over the
    rows that are not missing and weigh more than nothing, made unique and capped at ``ALMOST_INF``: the same
    arithmetic, vectorised over the percentiles, so the thresholds — and the trees fitted on the bins — are
    scikit-learn's to the bit (tests/test_metrics_models.py compares both fits; the naming model of the dev
    data's Diptera reference was byte-identical). Tied values may sit in another order than in its sort, which
    can move a running sum of their weights by a rounding error: a threshold could differ only where a
    percentile falls within that error of where a row's weight ends."""
    keep = ~np.isnan(column) & (weight != 0)
    values, w = column[keep], weight[keep]
    if len(values) > BIN_SUBSAMPLE or len(np.unique(values)) <= max_bins:
        return None
    order = np.argsort(values)
    values, w = values[order], w[order]
    cdf = np.cumsum(w)
    rank = np.linspace(0, 100, num=max_bins + 1)[1:-1] / 100 * cdf[-1]
    at = np.clip(np.searchsorted(cdf, rank), 0, len(values) - 1)
    on_point = cdf[at] - rank <= np.finfo(np.float64).eps  # the rank lies on a row: average it with the next
    thresholds = np.where(on_point, (values[at] + values[np.minimum(at + 1, len(values) - 1)]) / 2, values[at])
    return np.asarray(np.minimum(np.unique(thresholds), ALMOST_INF))


class JsonLogistic:
    """Standardised binary logistic regression: ``fit(X, y)``, ``predict_proba(X)`` = P(y = 1)."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X: np.ndarray, y: np.ndarray) -> "JsonLogistic":
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        self.mean_, self.scale_ = _standardise(X)
        if len(X) == 0:  # nothing to learn from: confidence 0.5 everywhere
            self.coef_ = np.zeros(X.shape[1])
            self.intercept_ = 0.0
            return self
        if len(np.unique(y)) < 2:  # degenerate: constant probability
            self.coef_ = np.zeros(X.shape[1])
            p = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
            self.intercept_ = float(np.log(p / (1 - p)))
            return self
        model = LogisticRegression(C=self.C, max_iter=1000)
        model.fit((X - self.mean_) / self.scale_, y)
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row (1-D)."""
        z = ((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))

    def to_dict(self) -> dict[str, Any]:
        return {"C": self.C, "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "coef": self.coef_.tolist(), "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JsonLogistic":
        self = cls(C=float(data["C"]))
        self.mean_ = np.asarray(data["mean"], dtype=np.float64)
        self.scale_ = np.asarray(data["scale"], dtype=np.float64)
        self.coef_ = np.asarray(data["coef"], dtype=np.float64)
        self.intercept_ = float(data["intercept"])
        return self


class JsonIsotonic:
    """P(y = 1) as a non-decreasing step function of one score: ``fit(score, y)``, ``predict_proba(score)``.

    Isotonic regression (pool adjacent violators) whose blocks each read the posterior mean of a Beta(``prior``)
    on their examples, (right + a) / (n + a + b), and are pooled while that mean does not rise from one block to
    the next. A score reads the block of the highest lowest-score at or under it (below every example: the first
    block). Fitted: ``edges_`` (the lowest score of each block but the first), ``p_`` (each block's value), ``n_``
    and ``right_`` (its examples, and how many were right).

    Why a posterior mean, not the share right (plain isotonic regression): calibration sets are small, and the
    top block is the one that names — the image classifier's species block on the demo's calibration was 3 of 3
    right, which the share reads as P(right) 1.000. Under the uniform prior (1, 1) the mean is the probability
    that the next example scoring so is right (Laplace's rule of succession): a P(right) like the barcode's, which
    the level is compared with; 50 of 50 read 0.981, 3 of 3 read 0.80. A lower bound (Wilson's, a Beta quantile)
    would be another quantity: 50 of 50 read 0.93 at 95 %, and no block under 188 examples could reach the level
    0.98. Blocks are pooled while either the share or the mean does not rise: shrinking the blocks of plain
    isotonic regression afterwards could fall (a small top block, shrunk more, under the larger block below it),
    and pooling on the means alone would leave 2 of 2 wrong (0.25) above 0 of 8 (0.10) as two blocks."""

    def __init__(self, prior: tuple[float, float] = (1.0, 1.0)) -> None:
        self.prior = (float(prior[0]), float(prior[1]))

    def fit(self, score: np.ndarray, y: np.ndarray) -> "JsonIsotonic":
        a, b = self.prior
        score = np.asarray(score, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(score) != len(y):
            raise ValueError(f"{len(score)} scores but {len(y)} outcomes")
        values, where = np.unique(score, return_inverse=True)  # equal scores are one block from the start
        right, n = np.bincount(where, y, len(values)), np.bincount(where, minlength=len(values)).astype(float)
        blocks: list[list[float]] = []  # [lowest score, right, n]
        for v, k, m in zip(values, right, n):
            blocks.append([float(v), float(k), float(m)])
            # pooled while the share right or its posterior mean does not rise: both rise block to block
            while len(blocks) > 1 and (blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]
                                       or (blocks[-2][1] + a) / (blocks[-2][2] + a + b)
                                       >= (blocks[-1][1] + a) / (blocks[-1][2] + a + b)):
                _, k2, m2 = blocks.pop()
                blocks[-1][1] += k2
                blocks[-1][2] += m2
        if not blocks:  # nothing to learn from: the prior's mean everywhere
            blocks = [[0.0, 0.0, 0.0]]
        self.edges_ = np.array([x[0] for x in blocks[1:]], dtype=np.float64)
        self.right_ = np.array([x[1] for x in blocks], dtype=np.float64)
        self.n_ = np.array([x[2] for x in blocks], dtype=np.float64)
        self.p_ = (self.right_ + a) / (self.n_ + a + b)
        return self

    def predict_proba(self, score: np.ndarray | float) -> np.ndarray:
        """P(y = 1) per score (1-D)."""
        at = np.searchsorted(self.edges_, np.atleast_1d(np.asarray(score, dtype=np.float64)), side="right")
        return np.asarray(self.p_[at])

    def to_dict(self) -> dict[str, Any]:
        return {"prior": list(self.prior), "edges": self.edges_.tolist(), "p": self.p_.tolist(),
                "n": self.n_.tolist(), "right": self.right_.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JsonIsotonic":
        self = cls(prior=(float(data["prior"][0]), float(data["prior"][1])))
        self.edges_ = np.asarray(data["edges"], dtype=np.float64)
        self.p_ = np.asarray(data["p"], dtype=np.float64)
        self.n_ = np.asarray(data["n"], dtype=np.float64)
        self.right_ = np.asarray(data["right"], dtype=np.float64)
        if (self.p_.ndim != 1 or len(self.p_) != len(self.edges_) + 1 or len(self.n_) != len(self.p_)
                or not np.all(np.isfinite(self.p_)) or np.any((self.p_ < 0) | (self.p_ > 1))
                or np.any(np.diff(self.edges_) <= 0)):
            raise ValueError("an isotonic map needs one value in [0, 1] per block and rising edges")
        return self


class JsonBoosting:
    """Binary gradient-boosted trees: ``fit(X, y, sample_weight)``, ``predict_proba(X)`` = P(y = 1).

    ``monotonic``: per feature +1 (P rises with it), −1 (falls) or 0, so the model cannot
    learn, e.g., that a closer best key makes absence *more* likely where data are thin.
    Fitted: ``baseline_`` (log-odds) and ``trees_`` (per tree the node arrays ``feature``,
    ``threshold``, ``left``, ``right``, ``leaf``, ``value``, ``missing_left``).
    """

    FIELDS = ("feature", "threshold", "left", "right", "leaf", "value", "missing_left")

    def __init__(self, monotonic: Sequence[int] | None = None, max_iter: int = 200, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 30, l2_regularization: float = 1.0,
                 seed: int = 0) -> None:
        self.monotonic = None if monotonic is None else [int(m) for m in monotonic]
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "JsonBoosting":
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        self.n_features_ = X.shape[1]
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if len(np.unique(y)) < 2:  # nothing to separate (no rows, or one class): a constant probability
            p = float(np.clip(np.average(y, weights=w) if len(y) else 0.5, 1e-3, 1 - 1e-3))
            self.baseline_ = float(np.log(p / (1 - p)))
            self.trees_: list[dict[str, list[Any]]] = []
            self._arrays()
            return self
        model = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            monotonic_cst=self.monotonic, early_stopping=False, random_state=self.seed)
        # the features binned here, where scikit-learn's weighted binning is slow: each row's bin number, which
        # scikit-learn then bins to itself (a feature holding every bin) and splits the same way
        edges = {f: e for f in range(X.shape[1]) if (e := weighted_bins(X[:, f], w)) is not None}
        binned = X.copy()
        for f, e in list(edges.items()):
            seen = ~np.isnan(X[:, f])
            binned[seen, f] = np.searchsorted(e, X[seen, f], side="left")
            if len(np.unique(binned[seen & (w != 0), f])) != len(e) + 1:  # a bin no weighed row holds
                binned[:, f] = X[:, f]
                del edges[f]
        # one OpenMP thread: these models are small (thousands of rows), and spinning OpenMP threads cost
        # 5-10x the fit itself on a busy 2-core machine (measured: 1.0 s vs 7.8 s for 1,000 rows)
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(binned, y, sample_weight=w)
        if list(model.classes_) != [0, 1]:
            raise ValueError(f"expected classes 0 and 1, got {model.classes_}")
        self.baseline_ = float(np.ravel(model._baseline_prediction)[0])
        self.trees_ = []
        for (predictor,) in model._predictors:
            n = predictor.nodes
            threshold = n["num_threshold"].astype(float)
            for f, e in edges.items():  # a split after bin b of a binned feature: at its threshold b
                split = (n["feature_idx"] == f) & ~n["is_leaf"].astype(bool) & np.isfinite(threshold)
                threshold[split] = e[n["bin_threshold"][split].astype(int)]
            self.trees_.append({"feature": n["feature_idx"].astype(int).tolist(),
                                "threshold": threshold.tolist(),
                                "left": n["left"].astype(int).tolist(), "right": n["right"].astype(int).tolist(),
                                "leaf": n["is_leaf"].astype(bool).tolist(), "value": n["value"].astype(float).tolist(),
                                "missing_left": n["missing_go_to_left"].astype(bool).tolist()})
        self._arrays()
        return self

    def _arrays(self) -> None:
        self._nodes = [tuple(np.asarray(t[f]) for f in self.FIELDS) for t in self.trees_]

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-odds per row."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.n_features_)
        raw = np.full(len(X), self.baseline_)
        rows = np.arange(len(X))
        for feature, threshold, left, right, leaf, value, missing_left in self._nodes:
            node = np.zeros(len(X), dtype=np.int64)
            active = ~leaf[node]
            while active.any():
                a = np.nonzero(active)[0]
                nd = node[a]
                x = X[rows[a], feature[nd]]
                go_left = np.where(np.isnan(x), missing_left[nd], x <= threshold[nd])
                node[a] = np.where(go_left, left[nd], right[nd])
                active[a] = ~leaf[node[a]]
            raw += value[node]
        return raw

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row (1-D)."""
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -50, 50))))

    def to_dict(self) -> dict[str, Any]:
        return {"params": {"monotonic": self.monotonic, "max_iter": self.max_iter,
                           "learning_rate": self.learning_rate, "max_leaf_nodes": self.max_leaf_nodes,
                           "min_samples_leaf": self.min_samples_leaf, "l2_regularization": self.l2_regularization,
                           "seed": self.seed},
                "n_features": self.n_features_, "baseline": self.baseline_, "trees": self.trees_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JsonBoosting":
        self = cls(**data["params"])
        self.n_features_ = int(data["n_features"])
        self.baseline_ = float(data["baseline"])
        self.trees_ = [dict(t) for t in data["trees"]]
        for t in self.trees_:
            n = len(t["value"])
            if set(t) != set(cls.FIELDS) or any(len(t[f]) != n for f in cls.FIELDS):
                raise ValueError("boosted tree state is malformed")
            nodes = np.asarray(t["feature"])
            kids = np.r_[t["left"], t["right"]]
            if n == 0 or nodes.min(initial=0) < 0 or nodes.max(initial=0) >= self.n_features_ or \
                    kids.min(initial=0) < 0 or kids.max(initial=0) >= n:
                raise ValueError("boosted tree state points outside its arrays")
            if not np.all(np.isfinite(np.asarray(t["value"], dtype=np.float64))):
                raise ValueError("boosted tree state holds non-finite values")
        self._arrays()
        return self
