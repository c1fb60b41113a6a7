"""The image modality in discovery: image-only identification by cross-modal
retrieval, and fusion of DNA and image calls.

Why this module exists: the DNA engine (``discovery.engine.DiscoveryModel``)
gives specimens without a usable barcode no call. With a learned, aligned
encoder bundle (``encoders.embed``), a photograph can be searched both against
reference *images* and — cross-modally — against reference *barcodes*, since
all modalities live in one L2-normalised space (CLIBD-style alignment).

Method (``CrossModalClassifier``):

1. ``fit`` embeds the reference keys: every key with an image into an image
   index and, when cross-modal votes are on (``dna_weight > 0``, or
   automatically when the reference has no images), every key with a barcode
   into a DNA index (both ``discovery.index.ReferenceIndex``, cosine on unit
   vectors). Cross-modal votes are off by default because, measured with the
   ``small`` preset, image→DNA retrieval is weaker than image→image and mixing
   it in made the calibrated calls shallower (benchmarks/RESULTS-images.md).
2. A query image retrieves its ``k`` nearest keys in each index. Within one
   index the neighbours' weights are a softmax of similarity / ``temperature``
   (so they sum to 1 whatever the similarity scale of that modality pair —
   image→DNA similarities are systematically lower than image→image ones); the
   two indexes are mixed with ``image_weight`` / ``dna_weight``.
3. Labels are chosen top-down: at each rank the label with the largest vote
   among neighbours consistent with the labels already chosen above. A
   neighbour unlabelled at a rank (BIOSCAN keys often stop at genus) does not
   vote there.
4. Per rank, a logistic model (``jsonmodels.JsonLogistic``, JSON-serialisable)
   on (vote share, vote margin, best image similarity, best DNA similarity of
   the chosen label) gives P(label right), fitted on the calibration specimens
   (val + val_unseen) *including* those whose taxon is absent from the keys (for
   them the label is necessarily wrong). The deepest confident rank is the
   deepest rank of an unbroken run whose confidence passes a per-rank threshold
   set so that at most the target
   share of calibration specimens whose taxon is absent from the keys is named
   at that rank (over-classification). The DNA classifier's thresholds cannot be
   reused as they are: it thresholds sequence identity and forces thresholds to
   grow with depth, which is right for identity but not for vote shares.
5. These scores are not P(right) on the naming level's scale (on the demo's held-out photographs 0.80-0.90 at
   order was 99.7 % right, 0.50-0.70 at species 52 %), so per rank a map from score to P(right) is fitted on
   the same calibration scores (``jsonmodels.JsonIsotonic``: isotonic, each block its Beta posterior mean).
   ``predict`` keeps the scores and the thresholds' walk (what fusion with a barcode weighs); a photograph
   alone is named at the level by its calibrated P(right) (:func:`photo_only_call`). A bundle fitted before
   the map has none (``p_right_`` None): its photographs keep the thresholds, and their reason says so.

Fusion (``fuse``): naive-Bayes combination of the two modalities' per-rank
confidences (each confidence is read as P(that modality's label is right), the
rest of the mass spread over other taxa), and a deepest rank that descends
while the fused label is confidently named by at least one modality and is not
made doubtful (fused confidence < 0.5) by a contradicting confident call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np

from biodiscover.discovery.jsonmodels import JsonIsotonic, JsonLogistic
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.naming import printed_below, stopped_at
from biodiscover.storage.errors import InputError, ModelBundleError, NotFittedError
from biodiscover.storage.records import PHOTO_ONLY, PHOTO_SCORES, RANKS, Specimen

log = logging.getLogger(__name__)

MULTIMODAL_TABLE = "multimodal_classifier"
MULTIMODAL_REFERENCE_TABLE = "multimodal_reference"
IMAGE_INDEX_ARRAY = "multimodal_image_index"
DNA_INDEX_ARRAY = "multimodal_dna_index"
MULTIMODAL_FORMAT = 1
N_FEATURES = 4


class EmbeddingModel(Protocol):
    """What ``CrossModalClassifier`` needs from ``encoders.embed.Encoders``."""

    def embed_dna(self, seqs: Sequence[str], batch_size: int | None = None) -> np.ndarray: ...

    def embed_images(self, paths: Sequence[Path | str], batch_size: int | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class CrossModalConfig:
    """Settings of image-only identification (stored in the bundle)."""

    k: int = 20
    temperature: float = 0.05
    image_weight: float = 1.0
    #: weight of the cross-modal (image → DNA keys) votes. 0 by default: with the
    #: ``small`` preset image→DNA retrieval is weaker than image→image and mixing it
    #: in lowered the calibrated family/genus TP (benchmarks/RESULTS-images.md).
    #: When the reference has no image keys, DNA keys are used anyway (weight 1).
    dna_weight: float = 0.0
    #: share of calibration specimens of a species absent from the keys that may be named to species
    target_overclassification: float = 0.02
    #: the same share for genus and above
    target_overclassification_above_species: float = 0.05
    #: fewer absent calibration specimens than this at a rank → ``default_threshold`` on confidence
    min_absent: int = 10
    default_threshold: float = 0.5
    min_barcode_length: int = 50
    index: IndexConfig = field(default_factory=IndexConfig)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.image_weight < 0 or self.dna_weight < 0 or self.image_weight + self.dna_weight == 0:
            raise ValueError("image_weight and dna_weight must be >= 0 and not both 0")

    def target(self, rank: str) -> float:
        return self.target_overclassification if rank == "species" else self.target_overclassification_above_species

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["index"] = self.index.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CrossModalConfig":
        data = dict(data)
        data["index"] = IndexConfig.from_dict(data["index"])
        return cls(**data)


@dataclass(frozen=True)
class ModalityCall:
    """One modality's answer for one specimen (image-only, DNA, or fused)."""

    processid: str
    modality: str  # "image", "dna", "fused" or "none"
    labels: dict[str, str | None]
    confidence: dict[str, float]
    deepest_rank: str | None
    deepest_label: str | None
    support: dict[str, float] = field(default_factory=dict)  # vote share of the label per rank
    top_hit: str | None = None
    top_similarity: float = 0.0

    def named(self) -> dict[str, str | None]:
        """Labels down to the deepest confident rank, ``None`` below it (what is asserted)."""
        out: dict[str, str | None] = {}
        stop = RANKS.index(self.deepest_rank) if self.deepest_rank else -1
        for i, rank in enumerate(RANKS):
            out[rank] = self.labels.get(rank) if i <= stop else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def none(cls, processid: str) -> "ModalityCall":
        return cls(processid, "none", {r: None for r in RANKS}, {r: 0.0 for r in RANKS}, None, None,
                   {r: 0.0 for r in RANKS})

    @classmethod
    def from_call(cls, processid: str, call: Any, modality: str = "dna") -> "ModalityCall":
        """Wrap anything with ``labels``, ``confidence`` and ``deepest_rank`` (e.g. E1's
        ``TriageResult`` or ``RankCall``)."""
        deepest = getattr(call, "deepest_rank", None)
        labels = dict(call.labels)
        return cls(processid, modality if deepest is not None or any(labels.values()) else "none", labels,
                   {r: float(call.confidence.get(r, 0.0)) for r in RANKS}, deepest,
                   labels.get(deepest) if deepest else None, {},
                   getattr(call, "top_hit", None), float(getattr(call, "top_similarity", 0.0) or 0.0))


def _image_paths(specimens: Iterable[Specimen]) -> list[Path]:
    """The image paths of specimens already filtered to have one (typed ``Path``: never None there)."""
    return [s.image_path for s in specimens if s.image_path is not None]


def _softmax_weights(sims: np.ndarray, valid: np.ndarray, temperature: float) -> np.ndarray:
    z = np.where(valid, sims / temperature, -np.inf)
    z = z - np.max(np.where(valid, z, -np.inf), axis=1, keepdims=True, initial=-np.inf)
    w = np.where(valid, np.exp(np.where(valid, z, 0.0)), 0.0)
    total = w.sum(axis=1, keepdims=True)
    out: np.ndarray = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    return out


def _threshold(absent_scores: np.ndarray, target: float) -> float:
    """Smallest threshold with share(score >= t) <= target among absent-taxon specimens."""
    allowed = int(np.floor(target * len(absent_scores)))
    ordered = np.sort(absent_scores)[::-1]
    if allowed < len(ordered):
        return float(np.nextafter(ordered[allowed], np.inf))
    return float(ordered[-1])


class CrossModalClassifier:
    """sklearn-style image-only classifier over an aligned encoder space.

    ``fit(encoders, reference, calibration, calibration_keys=None)``;
    ``predict(specimens)`` → one :class:`ModalityCall` per specimen (``modality
    'none'`` for specimens without an image). Fitted attributes: ``image_index_``,
    ``dna_index_`` (``None`` when that key set is empty), ``image_keys_`` /
    ``dna_keys_`` (positions into ``ref_ids_`` / ``ref_lineages_``), ``weights_``
    (effective image / DNA vote weights),
    ``confidence_`` (per-rank ``JsonLogistic``), ``thresholds_``, ``calibration_``, ``p_right_`` (per rank,
    the ``JsonIsotonic`` map from a score to P(right) a photograph alone is named by; None in a bundle fitted
    before it).
    """

    def __init__(self, config: CrossModalConfig | None = None) -> None:
        self.config = config or CrossModalConfig()

    # -- fitting -----------------------------------------------------------------------
    def _set_reference(self, encoders: EmbeddingModel, reference: Sequence[Specimen]) -> None:
        keep = [s for s in reference if s.deepest_label is not None
                and (s.image_path is not None or self._usable_dna(s))]
        if not keep:
            raise InputError("no reference specimen has a taxonomy label and an image or a usable barcode")
        self.ref_ids_ = [s.processid for s in keep]
        self.ref_lineages_ = [s.ranks() for s in keep]
        img = [i for i, s in enumerate(keep) if s.image_path is not None]
        dna = [i for i, s in enumerate(keep) if self._usable_dna(s)]
        wi, wd = self.config.image_weight, self.config.dna_weight
        if (wi == 0 or not img) and wd == 0 and dna:
            log.warning("reference has no image keys to search; falling back to cross-modal image → DNA retrieval")
            wd = 1.0
        self.weights_ = (float(wi if img else 0.0), float(wd if dna else 0.0))
        if self.weights_[0] > 0:
            self.image_keys_ = np.asarray(img, dtype=np.int64)
            emb = encoders.embed_images(_image_paths(keep[i] for i in img))
            self.image_index_: ReferenceIndex | None = ReferenceIndex(self.config.index).fit(emb)
        else:
            self.image_keys_, self.image_index_ = np.zeros(0, np.int64), None
        if self.weights_[1] > 0:
            self.dna_keys_ = np.asarray(dna, dtype=np.int64)
            emb = encoders.embed_dna([keep[i].dna_barcode or "" for i in dna])  # all usable: never empty
            self.dna_index_: ReferenceIndex | None = ReferenceIndex(self.config.index).fit(emb)
        else:
            self.dna_keys_, self.dna_index_ = np.zeros(0, np.int64), None
        if self.image_index_ is None and self.dna_index_ is None:
            raise InputError("the reference has no key usable with the configured weights (no image or barcode keys)")
        log.info("cross-modal reference: %d image keys, %d DNA keys", len(self.image_keys_), len(self.dna_keys_))

    def _usable_dna(self, s: Specimen) -> bool:
        seq = s.dna_barcode or ""
        return bool(seq) and len(seq) >= self.config.min_barcode_length

    def fit(self, encoders: EmbeddingModel, reference: Sequence[Specimen], calibration: Sequence[Specimen],
            calibration_keys: Sequence[Specimen] | None = None) -> "CrossModalClassifier":
        """Index the keys and calibrate per-rank confidences and thresholds.

        ``calibration`` (val + val_unseen) must be labelled and have images. As in
        ``DiscoveryModel.fit``, pass ``calibration_keys`` (e.g. train only) when
        ``reference`` already holds the calibration species, so that unseen
        species are really absent while calibrating; the final index is then
        rebuilt over ``reference``.
        """
        t0 = time.perf_counter()
        self._encoders = encoders  # kept for predict(); never saved (the weights live in the bundle)
        self._set_reference(encoders, calibration_keys if calibration_keys is not None else reference)
        calib = [s for s in calibration if s.image_path is not None and s.deepest_label is not None]
        if not calib:
            raise InputError("calibration needs labelled specimens with images")
        emb = encoders.embed_images(_image_paths(calib))
        labels, feats, _ = self._evidence(emb)
        known = {r: {lin[i] for lin in self.ref_lineages_ if lin[i]} for i, r in enumerate(RANKS)}
        self.confidence_: dict[str, JsonLogistic] = {}
        self.thresholds_: dict[str, float] = {}
        self.calibration_: dict[str, dict[str, Any]] = {}
        maps: dict[str, JsonIsotonic] = {}
        for r, rank in enumerate(RANKS):
            rows = [i for i, s in enumerate(calib) if getattr(s, rank) and labels[i][r] is not None]
            X = feats[rows, r, :] if rows else np.zeros((0, N_FEATURES))
            y = np.array([int(labels[i][r] == getattr(calib[i], rank)) for i in rows], dtype=int)
            model = JsonLogistic().fit(X, y)
            self.confidence_[rank] = model
            # the scores of the rows the thresholds are set on, read as P(right) (absent taxa among them: the
            # label is wrong there, as it would be in a collection)
            maps[rank] = JsonIsotonic().fit(model.predict_proba(X) if rows else np.zeros(0), y)
            absent = [k for k, i in enumerate(rows) if getattr(calib[i], rank) not in known[rank]]
            if len(absent) >= self.config.min_absent:
                t = _threshold(model.predict_proba(X[absent]), self.config.target(rank))
                source = "calibrated"
            else:
                t, source = self.config.default_threshold, "default"
            self.thresholds_[rank] = t
            self.calibration_[rank] = {"threshold": t, "source": source, "n": len(rows), "n_absent": len(absent),
                                       "label_accuracy_known": float(np.mean([y[k] for k in range(len(rows))
                                                                              if k not in set(absent)]))
                                       if len(rows) > len(absent) else None}
        self.p_right_: dict[str, JsonIsotonic] | None = maps
        if calibration_keys is not None:
            self._set_reference(encoders, reference)
        self.fit_seconds_ = time.perf_counter() - t0
        log.info("cross-modal thresholds: %s", self.thresholds_)
        return self

    # -- evidence ----------------------------------------------------------------------
    def _neighbours(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per query: key positions, weights, similarities, and 0=image / 1=DNA source, all [n, m]."""
        parts = []
        for index, keys, weight, src in ((self.image_index_, self.image_keys_, self.weights_[0], 0),
                                         (self.dna_index_, self.dna_keys_, self.weights_[1], 1)):
            if index is None or weight == 0:
                continue
            sims, pos = index.search(queries, self.config.k)
            valid = pos >= 0
            w = _softmax_weights(sims, valid, self.config.temperature) * weight
            parts.append((np.where(valid, keys[np.clip(pos, 0, None)], -1), w, sims, np.full(pos.shape, src)))
        pos = np.concatenate([p[0] for p in parts], axis=1)
        w = np.concatenate([p[1] for p in parts], axis=1)
        total = w.sum(axis=1, keepdims=True)
        w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
        return pos, w, np.concatenate([p[2] for p in parts], axis=1), np.concatenate([p[3] for p in parts], axis=1)

    def _evidence(self, queries: np.ndarray) -> tuple[list[list[str | None]], np.ndarray, list[tuple[int, float]]]:
        """Top-down labels per rank, features [n, ranks, N_FEATURES] (vote share, share
        margin to the runner-up, best image sim, best DNA sim of the label) and the
        heaviest neighbour (reference position, similarity) per query."""
        pos, w, sims, src = self._neighbours(queries)
        n = len(queries)
        feats = np.zeros((n, len(RANKS), N_FEATURES))
        labels: list[list[str | None]] = []
        tops: list[tuple[int, float]] = []
        for q in range(n):
            valid = pos[q] >= 0
            lins = [self.ref_lineages_[j] if ok else (None,) * len(RANKS) for j, ok in zip(pos[q], valid)]
            floor = float(sims[q][valid].min()) if valid.any() else 0.0
            consistent = valid.copy()
            chosen: list[str | None] = []
            for r in range(len(RANKS)):
                votes: dict[str, float] = {}
                labelled_w = 0.0
                for m, lin in enumerate(lins):
                    label = lin[r]
                    if valid[m] and label:
                        labelled_w += w[q, m]
                        if consistent[m]:
                            votes[label] = votes.get(label, 0.0) + w[q, m]
                if not votes:
                    chosen.append(None)
                    continue
                ranked = sorted(votes.items(), key=lambda kv: -kv[1])
                label, top = ranked[0]
                second = ranked[1][1] if len(ranked) > 1 else 0.0
                chosen.append(label)
                mine = np.array([lin[r] == label for lin in lins]) & valid
                consistent &= mine
                best = [float(sims[q][mine & (src[q] == s)].max()) if (mine & (src[q] == s)).any() else floor
                        for s in (0, 1)]
                feats[q, r] = (top / labelled_w, (top - second) / labelled_w, best[0], best[1])
            labels.append(chosen)
            order = np.argsort(-np.where(valid, w[q], -1.0))
            tops.append((int(pos[q][order[0]]) if valid.any() else -1,
                                   float(sims[q][order[0]]) if valid.any() else 0.0))
        return labels, feats, tops

    # -- prediction --------------------------------------------------------------------
    def predict_embeddings(self, queries: np.ndarray, processids: Sequence[str]) -> list[ModalityCall]:
        """Calls for image embeddings already computed with the same encoders."""
        self._check_fitted()
        labels, feats, tops = self._evidence(np.asarray(queries, dtype=np.float32).reshape(len(processids), -1))
        conf = {rank: self.confidence_[rank].predict_proba(feats[:, r, :]) if len(feats) else np.zeros(0)
                for r, rank in enumerate(RANKS)}
        calls = []
        for q, pid in enumerate(processids):
            deepest = image_walk(dict(zip(RANKS, labels[q])), {rank: float(conf[rank][q]) for rank in RANKS},
                                 self.thresholds_)[0]
            top_pos, top_sim = tops[q]
            calls.append(ModalityCall(
                processid=pid, modality="image", labels=dict(zip(RANKS, labels[q])),
                confidence={rank: float(conf[rank][q]) if labels[q][r] is not None else 0.0
                            for r, rank in enumerate(RANKS)},
                deepest_rank=deepest, deepest_label=labels[q][RANKS.index(deepest)] if deepest else None,
                support={rank: float(feats[q, r, 0]) for r, rank in enumerate(RANKS)},
                top_hit=self.ref_ids_[top_pos] if top_pos >= 0 else None, top_similarity=top_sim))
        return calls

    def predict(self, specimens: Sequence[Specimen], encoders: EmbeddingModel | None = None) -> list[ModalityCall]:
        """One call per specimen; specimens without an image get ``modality='none'``.

        ``encoders`` defaults to the ones given to ``fit``; after ``load`` pass
        ``encoders.embed.load_encoders(bundle)`` (the same bundle's weights)."""
        self._check_fitted()
        encoders = encoders if encoders is not None else getattr(self, "_encoders", None)
        if encoders is None:
            raise RuntimeError("CrossModalClassifier.predict needs the encoders: pass "
                               "encoders=load_encoders(bundle) after load()")
        have = [i for i, s in enumerate(specimens) if s.image_path is not None]
        out: list[ModalityCall] = [ModalityCall.none(s.processid) for s in specimens]
        if have:
            emb = encoders.embed_images(_image_paths(specimens[i] for i in have))
            for i, call in zip(have, self.predict_embeddings(emb, [specimens[i].processid for i in have])):
                out[i] = call
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("CrossModalClassifier is not fitted; call fit() or load()")

    # -- persistence -------------------------------------------------------------------
    def save(self, bundle_dir: Path | str) -> Path:
        """Store into an existing model bundle (the one holding the encoders): JSON + arrays, no pickle."""
        from biodiscover.storage.bundle import Bundle

        self._check_fitted()
        bundle = Bundle.open(bundle_dir)
        bundle.save_table(MULTIMODAL_TABLE, {
            "format": MULTIMODAL_FORMAT, "config": self.config.to_dict(), "thresholds": self.thresholds_,
            "calibration": self.calibration_, "confidence": {r: m.to_dict() for r, m in self.confidence_.items()},
            **({"p_right": {r: m.to_dict() for r, m in self.p_right_.items()}} if self.p_right_ is not None else {}),
            "has_image_index": self.image_index_ is not None, "has_dna_index": self.dna_index_ is not None,
            "weights": list(self.weights_)})
        bundle.save_table(MULTIMODAL_REFERENCE_TABLE, {
            "processid": self.ref_ids_, "ranks": list(RANKS), "lineage": [list(x) for x in self.ref_lineages_],
            "image_keys": self.image_keys_.tolist(), "dna_keys": self.dna_keys_.tolist()})
        if self.image_index_ is not None:
            bundle.save_array(IMAGE_INDEX_ARRAY, self.image_index_.to_bytes())
        if self.dna_index_ is not None:
            bundle.save_array(DNA_INDEX_ARRAY, self.dna_index_.to_bytes())
        bundle.set_section("multimodal", {"format": MULTIMODAL_FORMAT, "thresholds": self.thresholds_,
                                          "p_right": self.p_right_ is not None,
                                          "image_keys": len(self.image_keys_), "dna_keys": len(self.dna_keys_)})
        return Path(bundle_dir)

    @classmethod
    def load(cls, bundle_dir: Path | str) -> "CrossModalClassifier":
        from biodiscover.storage.bundle import Bundle

        return cls.from_bundle(Bundle.open(bundle_dir))

    @classmethod
    def from_bundle(cls, bundle: Any) -> "CrossModalClassifier":
        """The classifier stored in an open ``storage.bundle.Bundle``."""
        bundle_dir = bundle.path
        if MULTIMODAL_TABLE not in bundle.names("tables"):
            raise ModelBundleError(f"{bundle_dir}: bundle has no image (cross-modal) classifier; fit "
                                   "CrossModalClassifier and save it into the bundle")
        state = bundle.load_table(MULTIMODAL_TABLE, expect=dict)
        ref = bundle.load_table(MULTIMODAL_REFERENCE_TABLE, expect=dict)
        try:
            if int(state.get("format", 0)) > MULTIMODAL_FORMAT:
                raise ModelBundleError(f"{bundle_dir}: cross-modal classifier format {state.get('format')} is newer "
                                       "than supported")
            self = cls(CrossModalConfig.from_dict(state["config"]))
            self.thresholds_ = {r: float(v) for r, v in state["thresholds"].items()}
            self.weights_ = (float(state["weights"][0]), float(state["weights"][1]))
            self.calibration_ = dict(state["calibration"])
            self.confidence_ = {r: JsonLogistic.from_dict(m) for r, m in state["confidence"].items()}
            # a bundle fitted before the map has none: its photographs alone keep the thresholds (and say so)
            self.p_right_ = ({r: JsonIsotonic.from_dict(state["p_right"][r]) for r in RANKS}
                             if "p_right" in state else None)
            if list(ref["ranks"]) != list(RANKS):
                raise ModelBundleError(f"{bundle_dir}: cross-modal reference ranks {ref['ranks']} differ from {RANKS}")
            self.ref_ids_ = [str(x) for x in ref["processid"]]
            self.ref_lineages_ = [tuple(x) for x in ref["lineage"]]
            self.image_keys_ = np.asarray(ref["image_keys"], dtype=np.int64)
            self.dna_keys_ = np.asarray(ref["dna_keys"], dtype=np.int64)
            n = len(self.ref_ids_)
            for keys in (self.image_keys_, self.dna_keys_):
                if keys.ndim != 1 or (keys.size and (keys.min() < 0 or keys.max() >= n)):
                    raise ValueError(f"key positions outside the {n} reference keys")
            if len(self.ref_lineages_) != n or not all(np.isfinite(v) for v in self.thresholds_.values()):
                raise ValueError("lineages or thresholds do not fit the reference")
        except ModelBundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelBundleError(f"{bundle_dir}: cross-modal classifier tables are malformed "
                                   f"({type(exc).__name__}: {exc})") from None
        where = f"{bundle_dir}: cross-modal"
        self.image_index_ = (ReferenceIndex.from_bytes(bundle.load_array(IMAGE_INDEX_ARRAY), self.config.index,
                                                       where=f"{where} image index", ntotal=len(self.image_keys_))
                             if state.get("has_image_index") else None)
        self.dna_index_ = (ReferenceIndex.from_bytes(bundle.load_array(DNA_INDEX_ARRAY), self.config.index,
                                                     where=f"{where} DNA index", ntotal=len(self.dna_keys_))
                           if state.get("has_dna_index") else None)
        return self


def image_walk(labels: Mapping[str, str | None], scores: Mapping[str, float], thresholds: Mapping[str, float]
               ) -> tuple[str | None, str | None]:
    """The image call's top-down walk: (the deepest rank of the unbroken run whose score passes its rank's
    threshold, the labelled rank whose score under its threshold ended the walk, None where none did). A blank
    subfamily does not stop it (keys often leave subfamily blank), another blank rank does."""
    deepest: str | None = None
    for rank in RANKS:
        if labels.get(rank) is None:
            if rank == "subfamily":
                continue
            return deepest, None
        if scores.get(rank, 0.0) < thresholds[rank]:
            return deepest, rank
        deepest = rank
    return deepest, None


def photo_only_call(call: ModalityCall, p_right: Mapping[str, JsonIsotonic], level: float) -> ModalityCall:
    """A photograph-only call named at the level: per labelled rank its score read as P(right) through the rank's
    calibrated map (``CrossModalClassifier.p_right_``), and the deepest rank of the walk (:func:`image_walk`) whose
    P(right) passes ``level``. Scores, labels and support are otherwise the call's.

    Why: the product names each specimen to the deepest rank whose P(right) passes the user's level; a photograph
    alone was named at the classifier's own thresholds instead (0.50-0.54 in the demo's bundle), 26 of its 122
    held-out species names wrong and 15 of 137 photographs of species the keys lack named to a species (10.9 %
    against a 2 % target; benchmarks/bench_photo_only.py). The confidence columns then hold that P(right)."""
    conf = {rank: float(p_right[rank].predict_proba(call.confidence.get(rank, 0.0))[0]) if call.labels.get(rank)
            else 0.0 for rank in RANKS}
    deepest = image_walk(call.labels, conf, {rank: level for rank in RANKS})[0]
    return replace(call, confidence=conf, deepest_rank=deepest, deepest_label=call.labels[deepest] if deepest else None)


def photo_only_reason(call: ModalityCall, thresholds: Mapping[str, float], level: float,
                      p_right: Mapping[str, JsonIsotonic] | None = None) -> str:
    """Why a photograph-only call is named where it is, in a reviewer's words. With the classifier's calibrated
    maps (``p_right``): the rank named and its P(right) against the level, each with the image score it was
    calibrated from, and the rank whose P(right) under the level stopped the walk (:func:`photo_only_call`).

    Without them (a bundle fitted before the maps): the rank named at the image classifier's own threshold, not
    the level, and the rank whose score under its threshold stopped it, and that the bundle predates the
    calibration. Why: its scores are not P(right) on the level's scale (measured on the demo's 468 held-out
    photographs: no score reaches 0.95 at any rank, while 435 of the 442 order names at the thresholds are right;
    0.50-0.70 at species: 52 % right), so the level is not applied to them. A reviewer read "species Vaecaea
    glabroii, confidence 0.657" with an empty reason as a species named below the level 0.98 (e35 week-2 review
    F5: wrong at family)."""
    if p_right is not None:
        named = photo_only_call(call, p_right, level)
        deepest, stop = image_walk(named.labels, named.confidence, {rank: level for rank in RANKS})

        def said(rank: str) -> str:
            p = named.confidence[rank]
            shown = printed_below(p, level) if p < level else f"{p:.3f}"
            return (f"{rank} {call.labels[rank]} P(right) {shown} (calibrated from the image score "
                    f"{call.confidence[rank]:.2f})")

        below = f"{said(stop)} below the level {level:g}" if stop is not None else ""
        if deepest is None:
            return f"{PHOTO_ONLY}: not named" + (f": {below}" if below else "")
        return (f"{PHOTO_ONLY}: {said(deepest)} passes the level {level:g}"
                + (f"; {below}" if below else ""))
    deepest, stop = image_walk(call.labels, call.confidence, thresholds)
    if deepest != call.deepest_rank:  # a call not walked at these thresholds: what it named, and no stop
        deepest, stop = call.deepest_rank, None
    scores = f"{PHOTO_SCORES} in a bundle built before they were calibrated (build-reference names at the level)"
    under = (f"{stop} {call.labels[stop]} scored {printed_below(call.confidence[stop], thresholds[stop])}, under "
             if stop is not None else "")
    if deepest is None:
        return (f"{PHOTO_ONLY}: not named" + (f": {under}the image classifier's threshold {thresholds[stop]:.2f}"
                                              if stop is not None else "")
                + f" (the level {level:g} does not apply: {scores})")
    return (f"{PHOTO_ONLY}: {deepest} {call.labels[deepest]} named at the image classifier's threshold "
            f"{thresholds[deepest]:.2f} (score {call.confidence[deepest]:.2f}), not at the level {level:g}: {scores}"
            + (f"; {under}its threshold {thresholds[stop]:.2f}" if stop is not None else ""))


def fused_note(dna: Any, fused: ModalityCall, image: ModalityCall, level: float,
               optional_ranks: Sequence[str] = ("subfamily",)) -> str | None:
    """What the photograph did to a barcode's call, where the reason would otherwise be read against the wrong
    number: at the rank the barcode's reason names (``naming.stopped_at``), the rank where a contradicting
    photograph stopped the fused call above the barcode's, or the barcode's deepest rank named while the stored
    (fused) P(right) there is under the level. None where the stored value reads as the barcode's did.

    Why: the reason said "P(right) 0.36 below the level" from the barcode alone, while confidence_species held
    0.189, the value fused with the photograph (e35 week-2 review F8); in the demo's plate triaged again, 75 of the
    120 barcode-and-photograph reasons that give a P(right) gave another one than the value stored."""
    depth = {r: i for i, r in enumerate(RANKS)}
    named, fused_at = depth.get(dna.deepest_rank or "", -1), depth.get(fused.deepest_rank or "", -1)
    if fused_at < named:  # a contradicting photograph stopped it: the first rank it did not name
        rank = next((r for r in RANKS[fused_at + 1 : named + 1] if fused.labels.get(r) and r not in optional_ranks),
                    None)
    else:
        rank = stopped_at(dna.labels, dna.confidence, level, optional_ranks)
        if rank is None and dna.deepest_rank and fused.confidence.get(dna.deepest_rank, 0.0) < level:
            rank = dna.deepest_rank
    if rank is None or not fused.labels.get(rank):
        return None

    def shown(p: float) -> str:
        return printed_below(p, level) if p < level else f"{p:.3f}"

    before, after = float(dna.confidence.get(rank, 0.0)), float(fused.confidence.get(rank, 0.0))
    mine, theirs = dna.labels.get(rank), fused.labels[rank]
    if mine == theirs and shown(before) == shown(after):
        return None
    photo = image.labels.get(rank)
    score = f"{image.confidence.get(rank, 0.0):.2f}"
    said = ("the photograph" if not photo else f"the photograph, scoring the same {rank} {score}," if photo == mine
            else f"the photograph, scoring {rank} {photo} {score},")
    if mine == theirs:
        said += f" moved P(right) of {rank} {mine} from {shown(before)} to {shown(after)} (the value stored)"
    else:
        said += (f" outweighed the barcode's {rank} {mine} (P(right) {shown(before)}): stored is {theirs} at "
                 f"{shown(after)}")
    if fused_at < named:
        said += f", so it is named to {fused.deepest_rank} only" if fused.deepest_rank else ", so it is not named"
    elif after >= level and depth[rank] > fused_at:
        said += "; a photograph names no rank below the barcode's own"
    elif depth[rank] <= fused_at:
        said += "; named from the barcode, whose P(right) alone passes the level"
    return said


# -- fusion -----------------------------------------------------------------------------
def _clip(p: float) -> float:
    return min(max(float(p), 1e-6), 1 - 1e-6)


def fuse_rank(label_a: str | None, p_a: float, label_b: str | None, p_b: float) -> tuple[str | None, float]:
    """Naive-Bayes fusion of two modalities' label + P(label right) at one rank.

    Each modality's confidence p puts mass p on its label and spreads 1 - p over
    every other taxon; with conditionally independent evidence and a flat prior
    the posterior of a label is proportional to the product of the two
    modalities' masses on it. Agreement therefore sharpens the confidence
    (0.8 and 0.8 → 0.94); disagreement keeps the stronger label with a lowered one.
    """
    if label_a is None and label_b is None:
        return None, 0.0
    if label_b is None:
        return label_a, float(p_a)
    if label_a is None:
        return label_b, float(p_b)
    a, b = _clip(p_a), _clip(p_b)
    if label_a == label_b:
        return label_a, a * b / (a * b + (1 - a) * (1 - b))
    # disagreement: masses on label_a, label_b and "a third taxon"
    ma, mb, other = a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)
    total = ma + mb + other
    return (label_a, ma / total) if ma >= mb else (label_b, mb / total)


def fuse(dna_call: Any, image_call: Any, processid: str | None = None, min_confidence: float = 0.5,
         extend_dna: bool = False) -> ModalityCall:
    """Combine a DNA call (``TriageResult``, ``RankCall`` or ``ModalityCall``) with an image call.

    Per rank the label and confidence come from :func:`fuse_rank`. The deepest
    rank descends while the fused label is named (inside its deepest confident
    rank) by at least one modality and, where the other modality names a
    different label there, the fused confidence still reaches ``min_confidence``:
    a contradiction stops naming only when it makes the fused label doubtful (a
    weak image call does not veto a near-certain DNA call), a silent modality
    never does. With ``extend_dna=False`` (default) the fused call never names a
    rank below the DNA call's deepest rank when there is a DNA call: on the
    ``small``-preset benchmark, letting an agreeing image call extend DNA calls
    raised species over-classification of unseen species from 7.5 % to 10.4 %
    and gained nothing on seen ones (benchmarks/RESULTS-images.md). Either input may be ``None`` or have
    ``modality='none'``; the other is then returned unchanged (as a ``ModalityCall``).
    """
    pid = processid or getattr(dna_call, "processid", None) or getattr(image_call, "processid", None) or ""
    d = ModalityCall.from_call(pid, dna_call, "dna") if dna_call is not None else ModalityCall.none(pid)
    i = ModalityCall.from_call(pid, image_call, "image") if image_call is not None else ModalityCall.none(pid)
    if i.modality == "none":
        return d
    if d.modality == "none":
        return i
    dn, im = d.named(), i.named()
    labels: dict[str, str | None] = {}
    confidence: dict[str, float] = {}
    deepest: str | None = None
    descending = True
    # a modality whose label lost at a rank says nothing below it: its deeper labels lie in another taxon
    # (fused rank by rank, a genus from the photograph sat above a species from the barcode of another genus,
    # and the export's label_species contradicted its label_genus)
    # and one left alone is no surer than the fused rank above, which weighed the other's doubt
    in_dna = in_image = True
    above = 1.0
    # a rank the barcode's lineage lacks and its walk passed over (``naming.deepest_confident`` skips a blank label:
    # a species a reviewer placed in an order the reference lacks has no family) is passed over here too; a
    # photograph's label there lies in another lineage, its deeper labels with it (e34 attack R1: such a species
    # named from the barcode alone was named only to its order with the photograph)
    dna_depth = RANKS.index(d.deepest_rank) if d.deepest_rank in RANKS else -1
    for depth, rank in enumerate(RANKS):
        if in_dna and not d.labels.get(rank) and depth < dna_depth:
            labels[rank], confidence[rank] = None, 0.0
            in_image = in_image and not i.labels.get(rank)
            continue
        a, b = d.labels.get(rank) if in_dna else None, i.labels.get(rank) if in_image else None
        label, p = fuse_rank(a, d.confidence.get(rank, 0.0) if a else 0.0, b,
                             i.confidence.get(rank, 0.0) if b else 0.0)
        if not (in_dna and in_image):
            p = min(p, above)
        labels[rank], confidence[rank] = label, float(p)
        in_dna = in_dna and a in (None, label)
        in_image = in_image and b in (None, label)
        above = float(p) if label is not None else above
        if not descending:
            continue
        if label is None:
            if rank == "subfamily":
                continue
            descending = False
            continue
        supported = label == dn[rank] or (extend_dna and label == im[rank])
        contradicted = any(x is not None and x != label for x in (dn[rank], im[rank]))
        if supported and (not contradicted or p >= min_confidence):
            deepest = rank
        else:
            descending = False
    return ModalityCall(pid, "fused", labels, confidence, deepest, labels[deepest] if deepest else None,
                        {}, d.top_hit, d.top_similarity)


def has_image_classifier(bundle: Any) -> bool:
    """Whether a bundle (an open ``Bundle`` or its path) carries a fitted image (cross-modal) classifier."""
    from biodiscover.storage.bundle import Bundle

    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    return MULTIMODAL_TABLE in bundle.names("tables")


def combine_results(dna_results: Sequence[Any], image_calls: Sequence[ModalityCall], *,
                    thresholds: Mapping[str, float], level: float,
                    optional_ranks: Sequence[str] = ("subfamily",),
                    p_right: Mapping[str, JsonIsotonic] | None = None) -> list[Any]:
    """Per specimen, the engine's DNA result with the image call folded in.

    * DNA and image: ranks, labels and confidences of :func:`fuse` (which never
      names deeper than the DNA call; a confident contradicting image call can
      stop it higher); novelty, identity and top hit stay the DNA engine's.
      ``modality = "dna+image"``. Where the photograph moved the stored P(right)
      of the rank the reason speaks of, the reason says so (:func:`fused_note`).
    * image only (no usable barcode): the image call, ``modality = "image"``.
      Its novelty is NaN and it is never flagged novel: the novelty detector is
      trained on DNA evidence, and a candidate species needs barcodes. With the
      classifier's calibrated maps (``p_right``: ``CrossModalClassifier.p_right_``)
      it is named at the ``level`` by its P(right), which the confidences hold
      (:func:`photo_only_call`); without (a bundle fitted before them) at the image
      classifier's ``thresholds``, as its reason says (:func:`photo_only_reason`).
    * otherwise the DNA result unchanged.

    ``dna_results`` are ``discovery.engine.TriageResult`` (frozen dataclasses); ``level`` the one they were named
    at, ``optional_ranks`` the ranks their walk passes over (``NamingModel.walk_optional``).
    """
    import dataclasses

    if len(dna_results) != len(image_calls):
        raise ValueError(f"{len(dna_results)} DNA results but {len(image_calls)} image calls")
    out: list[Any] = []
    for r, c in zip(dna_results, image_calls):
        if c.modality == "none":
            out.append(r)
        elif r.modality == "none":
            why = "; ".join(x for x in (r.reason, photo_only_reason(c, thresholds, level, p_right)) if x)
            named = photo_only_call(c, p_right, level) if p_right is not None else c
            out.append(dataclasses.replace(
                r, modality="image", labels=dict(named.labels), confidence=dict(named.confidence),
                deepest_rank=named.deepest_rank, deepest_label=named.deepest_label, novelty=float("nan"),
                is_novel=False,
                top_hit=c.top_hit, top_similarity=float(c.top_similarity), reason=why))
        else:
            f = fuse(r, c, processid=r.processid)
            note = fused_note(r, f, c, level, optional_ranks)
            out.append(dataclasses.replace(r, modality="dna+image", labels=dict(f.labels),
                                           confidence=dict(f.confidence), deepest_rank=f.deepest_rank,
                                           deepest_label=f.deepest_label,
                                           reason="; ".join(x for x in (r.reason, note) if x) or None))
    return out
