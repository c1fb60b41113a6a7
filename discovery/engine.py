"""The discovery engine: reference index → identity → per-rank calls → novelty.

Why one object: triage, evaluate and the batch runner all need the same fitted
pieces (the k-mer embedder, the FAISS index over reference keys, their
sequences and taxonomy, the calibrated per-rank thresholds and the novelty
detector), saved to and loaded from one model bundle.

Pipeline for a query barcode:
1.–3. candidate search (``discovery.reference.Reference``): k-mer profile →
   FAISS top ``n_search`` reference keys → at most ``per_taxon`` keys per
   reference species up to ``max_candidates`` → exact identity to each (edlib);
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
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from biodiscover.discovery.hierarchy import HierarchicalClassifier, RankCall, RankEvidence, rank_evidence
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder
from biodiscover.discovery.novelty import FEATURES, NoveltyDetector
from biodiscover.discovery.reference import Reference
from biodiscover.storage.errors import InputError, ModelBundleError
from biodiscover.storage.records import RANKS, Specimen

log = logging.getLogger(__name__)

ENGINE_TABLE = "discovery_engine"
REFERENCE_TABLE = "discovery_reference"
INDEX_ARRAY = "discovery_index"  # format 2 only: the raw FAISS index (format 3 keeps it with the reference)
#: 2: confidence-calibrated ranks, clade exclusion, barcode gap in the bundle;
#: 3: reference keys as memory-mapped arrays (``discovery.reference``)
ENGINE_FORMAT = 3


@dataclass(frozen=True)
class EngineConfig:
    """Settings of the discovery engine (stored in the bundle)."""

    kmer: KmerConfig = field(default_factory=lambda: KmerConfig(ks=(6,), sqrt=True))
    #: the 6-mer profile projected to 256-d (uncentred SVD), searched exactly up to 20k keys and with
    #: IVF + 8-bit codes above; hits re-ranked by exact k-mer sketch cosine (discovery.reference;
    #: recall and naming per index kind: benchmarks/RESULTS-scale.md)
    index: IndexConfig = field(default_factory=lambda: IndexConfig(project_dim=256, exact_max=20_000))
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

    # -- the reference (keys and candidate search: discovery.reference) ----------------------
    def _build_reference(self, specimens: Sequence[Specimen], say: Callable[[str], None]) -> Reference:
        ids, seqs, lineages = self._set_reference(specimens)
        return Reference.build(ids, seqs, lineages, kmer=self.config.kmer, index=self.config.index,
                               batch_size=self.config.batch_size, progress=say)

    @property
    def ref_ids_(self) -> Sequence[str]:
        """Processids of the reference keys (read-only view of ``reference_``)."""
        return self.reference_.ids

    @property
    def ref_seqs_(self) -> Sequence[str]:
        """Barcodes of the reference keys (memory-mapped after ``load``)."""
        return self.reference_.sequences

    @property
    def ref_lineages_(self) -> list[tuple]:
        """Lineage tuples (over ``RANKS``) of the reference keys."""
        return self.reference_.lineages

    @property
    def index_(self) -> ReferenceIndex:
        return self.reference_.index_

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
        say(f"indexing {len(keys)} calibration keys")
        self.reference_ = self._build_reference(keys, say)
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
            say(f"indexing {len(reference)} reference keys")
            self.reference_ = self._build_reference(reference, say)
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
    def _evidence(self, sequences: Sequence[str], exclude: Sequence[tuple[int, str]] | None = None
                  ) -> tuple[list[RankEvidence], np.ndarray]:
        """Evidence per query; ``exclude[i] = (rank index, label)`` leaves that taxon out of query i's search."""
        cfg = self.config
        lineages = self.reference_.lineages
        evidence: list[RankEvidence] = []
        tops = np.zeros(len(sequences), dtype=np.float32)
        for i, c in enumerate(self.reference_.candidates(sequences, n_search=cfg.n_search, per_taxon=cfg.per_taxon,
                                                         max_candidates=cfg.max_candidates, exclude=exclude)):
            evidence.append(rank_evidence(c.positions.tolist(), c.identities, c.similarities, lineages))
            tops[i] = c.top_similarity
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
        return self.reference_.add([s.processid for s in new], [s.dna_barcode for s in new],  # type: ignore[misc]
                                   [_lineage(s) for s in new])

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
    def save(self, bundle_dir: Any, *, fingerprint: dict | None = None, overwrite: bool = False) -> Path:
        """Store into a model bundle (a path or an open ``Bundle``; creates a DNA-only bundle when none exists)."""
        from biodiscover.storage.bundle import MANIFEST, Bundle

        self._check_fitted()
        if isinstance(bundle_dir, Bundle):
            bundle = bundle_dir
        elif (Path(bundle_dir) / MANIFEST).exists() and not overwrite:
            bundle = Bundle.open(bundle_dir)
        else:
            bundle = Bundle.create(bundle_dir, config={"kind": "dna-kmer", "discovery": self.config.to_dict()},
                                   fingerprint=fingerprint, overwrite=overwrite)
        bundle.save_table(ENGINE_TABLE, {
            "format": ENGINE_FORMAT, "config": self.config.to_dict(), "classifier": self.classifier_.to_dict(),
            "novelty": self.novelty_.to_dict(), "calibration_summary": self.calibration_summary_,
            "index_kind": self.index_.kind_,
            "barcode_gap": self.barcode_gap_.to_dict() if getattr(self, "barcode_gap_", None) is not None else None,
        })
        self.reference_.save(bundle, REFERENCE_TABLE)
        bundle.remove("arrays", INDEX_ARRAY)  # a format-2 engine's index, replaced by the reference's
        gap = getattr(self, "barcode_gap_", None)
        bundle.set_section("discovery", {"engine_format": ENGINE_FORMAT, "reference_keys": len(self.reference_),
                                         "index_kind": self.index_.kind_,
                                         "thresholds": self.classifier_.thresholds_,
                                         "threshold_kind": self.classifier_.kind_,
                                         "barcode_gap": None if gap is None else
                                         {"threshold": gap.threshold_, "linkage": gap.linkage_, "ami": gap.score_}})
        return bundle.path

    @classmethod
    def load(cls, bundle_dir: Path | str) -> "DiscoveryModel":
        """Open the bundle at ``bundle_dir`` and load the engine from it (see :meth:`from_bundle`)."""
        from biodiscover.storage.bundle import Bundle

        return cls.from_bundle(Bundle.open(bundle_dir))

    @classmethod
    def from_bundle(cls, bundle: Any) -> "DiscoveryModel":
        """The engine stored in an open ``storage.bundle.Bundle``; a damaged bundle is a ``ModelBundleError``.

        Every table is type-checked, reference arrays are memory-mapped with
        their shapes checked against each other, and the loaded engine triages
        one reference key as a self-check, so a bundle whose numbers do not fit
        together fails here with one line instead of deep inside a triage.
        """
        where = f"{bundle.path}: discovery engine"
        if ENGINE_TABLE not in bundle.names("tables"):
            raise ModelBundleError(f"{bundle.path}: bundle has no discovery engine; build one with "
                                   "`biodiscover build-reference` (DNA k-mer) or fit DiscoveryModel")
        state = bundle.load_table(ENGINE_TABLE, expect=dict)
        try:
            fmt = int(state.get("format", 0))
            if fmt > ENGINE_FORMAT:
                raise ModelBundleError(f"{where} format {fmt} is newer than supported; upgrade biodiscover")
            self = cls(EngineConfig.from_dict(state["config"]))
            self.classifier_ = HierarchicalClassifier.from_dict(state["classifier"])
            self.novelty_ = NoveltyDetector.from_dict(state["novelty"])
            self.calibration_summary_ = dict(state["calibration_summary"])
            gap = state.get("barcode_gap")
            if gap is not None:
                from biodiscover.discovery.clustering import BarcodeGapThreshold

                self.barcode_gap_ = BarcodeGapThreshold.from_dict(gap)
            else:
                self.barcode_gap_ = None
            numbers = [*self.classifier_.thresholds_.values(), self.novelty_.threshold_]
            if not all(isinstance(v, float) and np.isfinite(v) for v in numbers):
                raise ValueError(f"non-finite thresholds {numbers}")
        except ModelBundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelBundleError(f"{where} table is malformed ({type(exc).__name__}: {exc})") from None
        if fmt >= 3:
            self.reference_ = Reference.load(bundle, REFERENCE_TABLE, batch_size=self.config.batch_size)
        else:
            self.reference_ = self._legacy_reference(bundle)
        self._self_check(where)
        return self

    def _legacy_reference(self, bundle: Any) -> Reference:
        """Keys of a format-2 bundle: one JSON table and the raw FAISS index (read into memory)."""
        where = f"{bundle.path}: discovery reference"
        ref = bundle.load_table(REFERENCE_TABLE, expect=dict)
        try:
            ids, seqs, lins = list(ref["processid"]), list(ref["sequence"]), [tuple(x) for x in ref["lineage"]]
            if list(ref["ranks"]) != list(RANKS) or not (len(ids) == len(seqs) == len(lins)) \
                    or not all(len(x) == len(RANKS) for x in lins):
                raise ValueError("columns of different lengths or ranks")
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelBundleError(f"{where} table is malformed ({exc})") from None
        index = ReferenceIndex.from_bytes(bundle.load_array(INDEX_ARRAY, mmap=True), self.config.index,
                                          where=f"{where} index", ntotal=len(ids), dim=self.config.kmer.dim)
        return Reference.from_legacy(ids, seqs, lins, index, self.config.kmer, self.config.index,
                                     self.config.batch_size)

    def _self_check(self, where: str) -> None:
        """Triage the first reference key: shapes that do not fit together fail here, not in a user's run."""
        probe = Specimen(processid="bundle-self-check", dna_barcode=self.reference_.sequences[0])
        try:
            (r,) = self.triage([probe])
            values = [r.novelty, r.identity, r.top_similarity, *r.confidence.values()]
            if not all(np.isfinite(v) for v in values):
                raise ValueError(f"non-finite output {values}")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelBundleError(f"{where} failed its self-check ({type(exc).__name__}: {exc})") from None
