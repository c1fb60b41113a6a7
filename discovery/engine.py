"""The discovery engine: reference index → identity → per-rank calls → novelty.

Why one object: triage, evaluate and the batch runner all need the same fitted
pieces (the k-mer embedder, the FAISS index over reference keys, their
sequences and taxonomy, the calibrated per-rank thresholds and the novelty
detector), saved to and loaded from one model bundle.

Pipeline for a query barcode:
1. k-mer profile → FAISS top ``n_search`` reference keys;
2. diversify: keep at most ``per_taxon`` keys per reference species (so a
   crowded species does not push every other candidate out) up to
   ``max_candidates``;
3. exact identity to each candidate (edlib);
4. per-rank label / identity / margin → calibrated deepest confident rank;
5. novelty probability from the evidence features.

Specimens without a usable barcode get no call (``modality='none'``): the
image path through a learned cross-modal encoder is not wired in yet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from discovery.hierarchy import HierarchicalClassifier, RankCall, RankEvidence, rank_evidence
from discovery.identity import candidate_identities
from discovery.index import IndexConfig, ReferenceIndex
from discovery.kmer import KmerConfig, KmerEmbedder
from discovery.novelty import FEATURES, NoveltyDetector
from storage.errors import InputError, ModelBundleError
from storage.records import RANKS, Specimen

log = logging.getLogger(__name__)

ENGINE_TABLE = "discovery_engine"
REFERENCE_TABLE = "discovery_reference"
INDEX_ARRAY = "discovery_index"
ENGINE_FORMAT = 1


@dataclass(frozen=True)
class EngineConfig:
    """Settings of the discovery engine (stored in the bundle)."""

    kmer: KmerConfig = field(default_factory=lambda: KmerConfig(ks=(6,), sqrt=True))
    index: IndexConfig = field(default_factory=IndexConfig)
    n_search: int = 300
    per_taxon: int = 2
    max_candidates: int = 60
    #: share of calibration specimens of a species absent from the keys that may be named to species
    target_overclassification: float = 0.02
    #: the same share for genus and above (specimens of genera/families absent from the keys)
    target_overclassification_above_species: float = 0.05
    min_barcode_length: int = 50
    batch_size: int = 2048

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kmer"] = self.kmer.to_dict()
        d["index"] = self.index.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "EngineConfig":
        data = dict(data)
        data["kmer"] = KmerConfig.from_dict(data["kmer"])
        data["index"] = IndexConfig.from_dict(data["index"])
        return cls(**data)


@dataclass(frozen=True)
class TriageResult:
    """The engine's answer for one specimen (what the database stores as an assignment)."""

    processid: str
    modality: str  # "dna" or "none"
    labels: dict[str, str | None]
    confidence: dict[str, float]
    identity: float
    deepest_rank: str | None
    deepest_label: str | None
    novelty: float
    is_novel: bool
    top_hit: str | None
    top_similarity: float

    def to_dict(self) -> dict:
        return asdict(self)


def _lineage(s: Specimen) -> tuple[str | None, ...]:
    return tuple(getattr(s, r) or None for r in RANKS)


def _usable(seq: str | None, min_len: int) -> bool:
    return bool(seq) and len(seq) >= min_len  # type: ignore[arg-type]


class DiscoveryModel:
    """Fit on labelled reference specimens; triage new specimens.

    ``fit(reference, calibration, outliers, calibration_keys=None)``:
    ``reference`` are the keys searched at triage (e.g. train + key_unseen);
    ``calibration`` are labelled specimens not in the keys (val + val_unseen):
    those whose species is among the keys are inliers, the others novel;
    ``outliers`` (other_heldout) are extra novel examples of unknown genera.
    When the reference already contains the calibration species (the default
    train + key_unseen keys hold val_unseen's species), pass
    ``calibration_keys`` (e.g. train only): calibration then queries an index of
    those keys, so novel species are really novel during calibration.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.embedder = KmerEmbedder(self.config.kmer)

    # -- fitting -----------------------------------------------------------------------
    def _set_reference(self, reference: Sequence[Specimen]) -> tuple[list[str], list[str], list[tuple]]:
        keep = [s for s in reference if _usable(s.dna_barcode, self.config.min_barcode_length) and s.deepest_label]
        dropped = len(reference) - len(keep)
        if dropped:
            log.warning("%d reference specimens without a usable barcode or any label were left out", dropped)
        if not keep:
            raise InputError("no reference specimen has both a usable DNA barcode and a taxonomy label")
        return [s.processid for s in keep], [s.dna_barcode for s in keep], [_lineage(s) for s in keep]  # type: ignore[misc]

    def fit(self, reference: Sequence[Specimen], calibration: Sequence[Specimen],
            outliers: Sequence[Specimen] = (), calibration_keys: Sequence[Specimen] | None = None,
            progress: Callable[[str], None] | None = None) -> "DiscoveryModel":
        say = progress or (lambda msg: log.info(msg))
        t0 = time.perf_counter()
        # calibration pass against calibration keys (or the reference itself)
        keys = calibration_keys if calibration_keys is not None else reference
        self.ref_ids_, self.ref_seqs_, self.ref_lineages_ = self._set_reference(keys)
        say(f"indexing {len(self.ref_ids_)} calibration keys")
        self.index_ = ReferenceIndex(self.config.index).fit(self.embedder.embed_dna(self.ref_seqs_))
        calib = [s for s in calibration if _usable(s.dna_barcode, self.config.min_barcode_length) and s.species]
        outl = [s for s in outliers if _usable(s.dna_barcode, self.config.min_barcode_length)]
        if not calib:
            raise InputError("calibration needs labelled specimens (to species) with usable barcodes")
        say(f"scoring {len(calib)} calibration and {len(outl)} outlier specimens")
        evidence, sims = self._evidence([s.dna_barcode for s in calib + outl])  # type: ignore[misc]
        taxa = {r: {lin[i] for lin in self.ref_lineages_ if lin[i]} for i, r in enumerate(RANKS)}
        truths = [s.lineage() for s in calib + outl]
        looser = {r: self.config.target_overclassification_above_species for r in RANKS if r != "species"}
        self.classifier_ = HierarchicalClassifier(self.config.target_overclassification,
                                                  rank_targets=looser).fit(evidence, truths, taxa)
        conf = self.classifier_.confidences(evidence)
        X = self._features(evidence, sims, conf["species"])
        y = np.array([int(s.species not in taxa["species"]) for s in calib] + [1] * len(outl))
        self.novelty_ = NoveltyDetector().fit(X, y)
        self.calibration_summary_ = {
            "n_calibration": len(calib), "n_outliers": len(outl), "n_novel": int(y.sum()),
            "thresholds": self.classifier_.thresholds_, "novelty_brier": self.novelty_.brier_,
        }
        if calibration_keys is not None:
            self.ref_ids_, self.ref_seqs_, self.ref_lineages_ = self._set_reference(reference)
            say(f"indexing {len(self.ref_ids_)} reference keys")
            self.index_ = ReferenceIndex(self.config.index).fit(self.embedder.embed_dna(self.ref_seqs_))
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    # -- evidence ----------------------------------------------------------------------
    def _candidates(self, sims: np.ndarray, pos: np.ndarray) -> list[list[int]]:
        out = []
        for row in pos:
            seen: dict[object, int] = {}
            cand: list[int] = []
            for j in row:
                if j < 0:
                    break
                lin = self.ref_lineages_[j]
                key = lin[-1] or (lin[-2], j)  # species, else a unique key per unnamed record
                c = seen.get(key, 0)
                if c < self.config.per_taxon:
                    seen[key] = c + 1
                    cand.append(int(j))
                    if len(cand) >= self.config.max_candidates:
                        break
            out.append(cand)
        return out

    def _evidence(self, sequences: Sequence[str]) -> tuple[list[RankEvidence], np.ndarray]:
        evidence: list[RankEvidence] = []
        tops = np.zeros(len(sequences), dtype=np.float32)
        bs = self.config.batch_size
        for start in range(0, len(sequences), bs):
            chunk = sequences[start : start + bs]
            sims, pos = self.index_.search(self.embedder.embed_dna(chunk), self.config.n_search)
            cands = self._candidates(sims, pos)
            ids = candidate_identities(chunk, cands, self.ref_seqs_)
            for i, (cand, idv) in enumerate(zip(cands, ids)):
                sim_of = dict(zip(pos[i].tolist(), sims[i].tolist()))
                retr = np.array([sim_of[j] for j in cand])
                evidence.append(rank_evidence(cand, idv, retr, self.ref_lineages_))
                tops[start + i] = float(sims[i, 0]) if len(cand) else 0.0
        return evidence, tops

    @staticmethod
    def _features(evidence: Sequence[RankEvidence], sims: np.ndarray, species_conf: np.ndarray,
                  agreement: np.ndarray | None = None) -> np.ndarray:
        agree = agreement if agreement is not None else np.full(len(evidence), 0.5)
        return np.array([[ev.identity["species"], ev.margin["species"], ev.margin["genus"], sims[i],
                          species_conf[i], agree[i]] for i, ev in enumerate(evidence)],
                        dtype=np.float64).reshape(-1, len(FEATURES))

    # -- triage ------------------------------------------------------------------------
    def triage(self, specimens: Sequence[Specimen]) -> list[TriageResult]:
        """Per-specimen deepest confident rank, labels, confidences and novelty."""
        self._check_fitted()
        usable = [i for i, s in enumerate(specimens) if _usable(s.dna_barcode, self.config.min_barcode_length)]
        results: list[TriageResult | None] = [None] * len(specimens)
        if usable:
            evidence, sims = self._evidence([specimens[i].dna_barcode for i in usable])  # type: ignore[misc]
            calls = self.classifier_.predict(evidence)
            conf = self.classifier_.confidences(evidence)["species"]
            nov = self.novelty_.predict_proba(self._features(evidence, sims, conf))
            for k, i in enumerate(usable):
                results[i] = self._result(specimens[i].processid, calls[k], evidence[k], float(sims[k]), float(nov[k]))
        for i, s in enumerate(specimens):
            if results[i] is None:
                results[i] = TriageResult(s.processid, "none", {r: None for r in RANKS}, {r: 0.0 for r in RANKS},
                                          0.0, None, None, float("nan"), False, None, 0.0)
        return results  # type: ignore[return-value]

    def _result(self, pid: str, call: RankCall, ev: RankEvidence, sim: float, nov: float) -> TriageResult:
        return TriageResult(
            processid=pid, modality="dna", labels=call.labels, confidence=call.confidence,
            identity=call.identity["species"], deepest_rank=call.deepest_rank, deepest_label=call.deepest_label,
            novelty=nov, is_novel=bool(nov >= self.novelty_.threshold_),
            top_hit=self.ref_ids_[ev.top_position] if ev.top_position >= 0 else None, top_similarity=sim)

    def _check_fitted(self) -> None:
        if not hasattr(self, "novelty_"):
            raise RuntimeError("DiscoveryModel is not fitted; call fit() or load()")

    # -- persistence -------------------------------------------------------------------
    def save(self, bundle_dir: Path | str, *, fingerprint: dict | None = None, overwrite: bool = False) -> Path:
        """Store into a model bundle (creates a DNA-only bundle when none exists)."""
        from storage.bundle import MANIFEST, Bundle

        self._check_fitted()
        path = Path(bundle_dir)
        if (path / MANIFEST).exists() and not overwrite:
            bundle = Bundle.open(path)
        else:
            bundle = Bundle.create(path, config={"kind": "dna-kmer", "discovery": self.config.to_dict()},
                                   fingerprint=fingerprint, overwrite=overwrite)
        bundle.save_table(ENGINE_TABLE, {
            "format": ENGINE_FORMAT, "config": self.config.to_dict(), "classifier": self.classifier_.to_dict(),
            "novelty": self.novelty_.to_dict(), "calibration_summary": self.calibration_summary_,
            "index_kind": self.index_.kind_,
        })
        bundle.save_table(REFERENCE_TABLE, {"processid": self.ref_ids_, "sequence": self.ref_seqs_,
                                            "ranks": list(RANKS), "lineage": [list(x) for x in self.ref_lineages_]})
        bundle.save_array(INDEX_ARRAY, self.index_.to_bytes())
        bundle.set_section("discovery", {"engine_format": ENGINE_FORMAT, "reference_keys": len(self.ref_ids_),
                                         "thresholds": self.classifier_.thresholds_})
        return path

    @classmethod
    def load(cls, bundle_dir: Path | str) -> "DiscoveryModel":
        from storage.bundle import Bundle

        bundle = Bundle.open(bundle_dir)
        if ENGINE_TABLE not in bundle.names("tables"):
            raise ModelBundleError(f"{bundle_dir}: bundle has no discovery engine; build one with "
                                   "`biodiscover build-reference` (DNA k-mer) or fit DiscoveryModel")
        state = bundle.load_table(ENGINE_TABLE)
        if int(state.get("format", 0)) > ENGINE_FORMAT:
            raise ModelBundleError(f"{bundle_dir}: discovery engine format {state.get('format')} is newer than supported")
        self = cls(EngineConfig.from_dict(state["config"]))
        self.classifier_ = HierarchicalClassifier.from_dict(state["classifier"])
        self.novelty_ = NoveltyDetector.from_dict(state["novelty"])
        self.calibration_summary_ = state["calibration_summary"]
        ref = bundle.load_table(REFERENCE_TABLE)
        self.ref_ids_ = list(ref["processid"])
        self.ref_seqs_ = list(ref["sequence"])
        self.ref_lineages_ = [tuple(x) for x in ref["lineage"]]
        self.index_ = ReferenceIndex.from_bytes(bundle.load_array(INDEX_ARRAY), self.config.index)
        return self
