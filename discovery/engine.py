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
4. per-rank label, identity, margin and top-hit agreement → per-rank confidence
   → deepest confident rank (``discovery.hierarchy``: thresholds calibrated on
   the calibration specimens absent at each rank, or on reference specimens with
   their own clade left out where those are lacking);
5. novelty probability from the evidence features.

At fit time the engine also learns, from the reference, the barcode-gap
distance threshold (``discovery.clustering.BarcodeGapThreshold``) that triage
uses to cluster novel specimens into candidate species, and stores it in the
bundle with everything else (JSON, no pickle).

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

from biodiscover.discovery.hierarchy import HierarchicalClassifier, RankCall, RankEvidence, rank_evidence
from biodiscover.discovery.identity import candidate_identities
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder
from biodiscover.discovery.novelty import FEATURES, NoveltyDetector
from biodiscover.storage.errors import InputError, ModelBundleError
from biodiscover.storage.records import RANKS, Specimen

log = logging.getLogger(__name__)

ENGINE_TABLE = "discovery_engine"
REFERENCE_TABLE = "discovery_reference"
INDEX_ARRAY = "discovery_index"
ENGINE_FORMAT = 2  # 2: confidence-calibrated ranks, clade exclusion, barcode gap in the bundle


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
    #: a rank needs this many calibration specimens of this many absent taxa to be calibrated
    min_absent: int = 20
    min_absent_taxa: int = 5
    #: where the calibration data lack absent taxa at a rank, query reference specimens with
    #: their own taxon at that rank left out of the search (TAXXI-style clade exclusion)
    clade_exclusion: bool = True
    exclusion_per_taxon: int = 5
    max_exclusion_queries: int = 1500
    #: learn the candidate-species distance threshold from the reference's barcode gap
    learn_barcode_gap: bool = True
    gap_per_species: int = 8
    gap_max_specimens: int = 6000
    min_barcode_length: int = 50
    batch_size: int = 2048

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kmer"] = self.kmer.to_dict()
        d["index"] = self.index.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "EngineConfig":
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
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
    """At least ``min_len`` informative (non-N) bases."""
    return bool(seq) and len(seq) - seq.upper().count("N") >= min_len  # type: ignore[union-attr]


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
        extra = self._clade_exclusion(truths, taxa, say) if self.config.clade_exclusion else {}
        looser = {r: self.config.target_overclassification_above_species for r in RANKS if r != "species"}
        self.classifier_ = HierarchicalClassifier(self.config.target_overclassification, self.config.min_absent,
                                                  rank_targets=looser, min_absent_taxa=self.config.min_absent_taxa
                                                  ).fit(evidence, truths, taxa, extra=extra)
        conf = self.classifier_.confidences(evidence)
        X = self._features(evidence, sims, conf["species"])
        y = np.array([int(s.species not in taxa["species"]) for s in calib] + [1] * len(outl))
        self.novelty_ = NoveltyDetector().fit(X, y)
        self.calibration_summary_ = {
            "n_calibration": len(calib), "n_outliers": len(outl), "n_novel": int(y.sum()),
            "thresholds": self.classifier_.thresholds_, "threshold_kind": self.classifier_.kind_,
            "calibration": self.classifier_.calibration_, "novelty_brier": self.novelty_.brier_,
        }
        if calibration_keys is not None:
            self.ref_ids_, self.ref_seqs_, self.ref_lineages_ = self._set_reference(reference)
            say(f"indexing {len(self.ref_ids_)} reference keys")
            self.index_ = ReferenceIndex(self.config.index).fit(self.embedder.embed_dna(self.ref_seqs_))
        self.barcode_gap_ = self._learn_gap(say) if self.config.learn_barcode_gap else None
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _clade_exclusion(self, truths: Sequence[dict], taxa: dict[str, set[str]],
                         say: Callable[[str], None]) -> dict[str, tuple[list[RankEvidence], list[dict]]]:
        """Absent-taxon examples for ranks the calibration data cannot calibrate.

        For such a rank (fewer than ``min_absent_taxa`` taxa absent from the keys
        among the calibration specimens), up to ``exclusion_per_taxon`` key
        specimens of each taxon at that rank are searched with their whole taxon
        left out of the keys: specimens of a taxon the reference lacks, at that
        rank, with the rest of the reference as it is.
        """
        cfg = self.config
        rng = np.random.default_rng(0)
        out: dict[str, tuple[list[RankEvidence], list[dict]]] = {}
        for r, rank in enumerate(RANKS):
            absent = {t.get(rank) for t in truths if t.get(rank) and t[rank] not in taxa[rank]}
            if len(absent) >= cfg.min_absent_taxa or len(taxa[rank]) < 2 * cfg.min_absent_taxa:
                continue
            members: dict[str, list[int]] = {}
            for j, lin in enumerate(self.ref_lineages_):
                if lin[r]:
                    members.setdefault(lin[r], []).append(j)
            per = max(1, min(cfg.exclusion_per_taxon, cfg.max_exclusion_queries // max(1, len(members))))
            picks = sorted(int(j) for idx in members.values()
                           for j in rng.choice(idx, min(per, len(idx)), replace=False))
            say(f"{rank}: {len(absent)} absent taxa in the calibration data; "
                f"{len(picks)} key specimens searched with their own {rank} left out")
            exclude = [(r, self.ref_lineages_[j][r]) for j in picks]
            ev, _ = self._evidence([self.ref_seqs_[j] for j in picks], exclude=exclude)
            out[rank] = (ev, [dict(zip(RANKS, self.ref_lineages_[j])) for j in picks])
        return out

    def _learn_gap(self, say: Callable[[str], None]):
        """The reference's barcode gap: the species distance cut candidate clustering uses."""
        from biodiscover.discovery.clustering import BarcodeGapThreshold

        cfg = self.config
        rng = np.random.default_rng(0)
        by_species: dict[str, list[int]] = {}
        for j, lin in enumerate(self.ref_lineages_):
            if lin[-1] and lin[-2]:
                by_species.setdefault(lin[-1], []).append(j)
        if len(by_species) < 2:
            log.warning("fewer than 2 reference species: no barcode gap learned (clustering uses its default)")
            return None
        picks = [int(j) for idx in by_species.values()
                 for j in rng.choice(idx, min(cfg.gap_per_species, len(idx)), replace=False)]
        if len(picks) > cfg.gap_max_specimens:
            picks = rng.choice(picks, cfg.gap_max_specimens, replace=False).tolist()
        picks.sort()
        t = time.perf_counter()
        gap = BarcodeGapThreshold().fit([self.ref_seqs_[j] for j in picks],
                                        [self.ref_lineages_[j][-1] for j in picks],
                                        groups=[self.ref_lineages_[j][-2] for j in picks])
        say(f"barcode gap learned on {len(picks)} reference specimens: {gap.linkage_} linkage at "
            f"{gap.threshold_:.4f} p-distance (AMI {gap.score_:.3f}; {time.perf_counter() - t:.1f}s)")
        return gap

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

    def _evidence(self, sequences: Sequence[str], exclude: Sequence[tuple[int, str]] | None = None
                  ) -> tuple[list[RankEvidence], np.ndarray]:
        """Evidence per query; ``exclude[i] = (rank index, label)`` leaves that taxon out of query i's search."""
        evidence: list[RankEvidence] = []
        tops = np.zeros(len(sequences), dtype=np.float32)
        bs = self.config.batch_size
        size: dict[tuple[int, str], int] = {}
        if exclude is not None:
            for lin in self.ref_lineages_:
                for r, lab in enumerate(lin):
                    size[(r, lab)] = size.get((r, lab), 0) + 1  # type: ignore[index]
        for start in range(0, len(sequences), bs):
            chunk = sequences[start : start + bs]
            k = self.config.n_search
            if exclude is not None:
                k += max(size.get(tuple(e), 0) for e in exclude[start : start + bs])  # type: ignore[arg-type]
            sims, pos = self.index_.search(self.embedder.embed_dna(chunk), k)
            if exclude is not None:
                sims, pos = self._drop_excluded(sims, pos, exclude[start : start + bs])
            cands = self._candidates(sims, pos)
            ids = candidate_identities(chunk, cands, self.ref_seqs_)
            for i, (cand, idv) in enumerate(zip(cands, ids)):
                sim_of = dict(zip(pos[i].tolist(), sims[i].tolist()))
                retr = np.array([sim_of[j] for j in cand])
                evidence.append(rank_evidence(cand, idv, retr, self.ref_lineages_))
                tops[start + i] = float(sims[i, 0]) if len(cand) else 0.0
        return evidence, tops

    def _drop_excluded(self, sims: np.ndarray, pos: np.ndarray, exclude: Sequence[tuple[int, str]]
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Search results without the excluded taxon, padded with -1 to ``n_search`` columns."""
        n = self.config.n_search
        out_s = np.zeros((len(pos), n), dtype=np.float32)
        out_p = np.full((len(pos), n), -1, dtype=np.int64)
        for i, (r, lab) in enumerate(exclude):
            keep = [c for c, j in enumerate(pos[i]) if j >= 0 and self.ref_lineages_[j][r] != lab][:n]
            out_s[i, : len(keep)] = sims[i, keep]
            out_p[i, : len(keep)] = pos[i, keep]
        return out_s, out_p

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

    def add_references(self, specimens: Sequence[Specimen]) -> int:
        """Add keys for this session (e.g. members of accepted provisional species); returns how many.

        Why not refit: the per-rank thresholds and the novelty detector were
        calibrated on the bundle's data and stay valid for new keys of the same
        kind; a specimen close to an accepted candidate is then named as that
        provisional species instead of being proposed again. Keys already in the
        reference (same processid) are skipped; nothing is saved to the bundle.
        """
        self._check_fitted()
        have = set(self.ref_ids_)
        new = [s for s in specimens if s.processid not in have
               and _usable(s.dna_barcode, self.config.min_barcode_length) and s.deepest_label]
        if not new:
            return 0
        self.index_.add(self.embedder.embed_dna([s.dna_barcode for s in new]))  # type: ignore[misc]
        self.ref_ids_ += [s.processid for s in new]
        self.ref_seqs_ += [s.dna_barcode for s in new]  # type: ignore[misc]
        self.ref_lineages_ += [_lineage(s) for s in new]
        return len(new)

    def _result(self, pid: str, call: RankCall, ev: RankEvidence, sim: float, nov: float) -> TriageResult:
        return TriageResult(
            processid=pid, modality="dna", labels=call.labels, confidence=call.confidence,
            identity=call.identity["species"], deepest_rank=call.deepest_rank, deepest_label=call.deepest_label,
            novelty=nov, is_novel=bool(nov >= self.novelty_.threshold_),
            top_hit=self.ref_ids_[ev.top_position] if ev.top_position >= 0 else None, top_similarity=sim)

    @property
    def novelty_threshold(self) -> float:
        """The novelty probability at or above which a specimen is flagged novel (recorded with each run)."""
        return float(self.novelty_.threshold_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "novelty_"):
            raise RuntimeError("DiscoveryModel is not fitted; call fit() or load()")

    # -- persistence -------------------------------------------------------------------
    def save(self, bundle_dir: Path | str, *, fingerprint: dict | None = None, overwrite: bool = False) -> Path:
        """Store into a model bundle (creates a DNA-only bundle when none exists)."""
        from biodiscover.storage.bundle import MANIFEST, Bundle

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
            "barcode_gap": self.barcode_gap_.to_dict() if getattr(self, "barcode_gap_", None) is not None else None,
        })
        bundle.save_table(REFERENCE_TABLE, {"processid": self.ref_ids_, "sequence": self.ref_seqs_,
                                            "ranks": list(RANKS), "lineage": [list(x) for x in self.ref_lineages_]})
        bundle.save_array(INDEX_ARRAY, self.index_.to_bytes())
        gap = getattr(self, "barcode_gap_", None)
        bundle.set_section("discovery", {"engine_format": ENGINE_FORMAT, "reference_keys": len(self.ref_ids_),
                                         "thresholds": self.classifier_.thresholds_,
                                         "threshold_kind": self.classifier_.kind_,
                                         "barcode_gap": None if gap is None else
                                         {"threshold": gap.threshold_, "linkage": gap.linkage_, "ami": gap.score_}})
        return path

    @classmethod
    def load(cls, bundle_dir: Path | str) -> "DiscoveryModel":
        from biodiscover.storage.bundle import Bundle

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
        gap = state.get("barcode_gap")
        if gap is not None:
            from biodiscover.discovery.clustering import BarcodeGapThreshold

            self.barcode_gap_ = BarcodeGapThreshold.from_dict(gap)
        else:
            self.barcode_gap_ = None
        ref = bundle.load_table(REFERENCE_TABLE)
        self.ref_ids_ = list(ref["processid"])
        self.ref_seqs_ = list(ref["sequence"])
        self.ref_lineages_ = [tuple(x) for x in ref["lineage"]]
        self.index_ = ReferenceIndex.from_bytes(bundle.load_array(INDEX_ARRAY), self.config.index)
        return self
