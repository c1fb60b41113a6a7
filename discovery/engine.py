"""The discovery engine: reference index → candidate keys with exact identity → calibrated naming.

Why one object: triage, evaluate and the batch runner all need the same fitted
pieces (the k-mer embedder, the FAISS index over reference keys, their
sequences and taxonomy, the naming model and the barcode gap), saved to and
loaded from one model bundle.

Pipeline for a query barcode (``_hits``):
1.–3. candidate search (``discovery.reference.Reference``): k-mer profile →
   FAISS top ``n_search`` reference keys (optionally with keys left out: the
   simulation's leave-clade-out and leave-one-barcode-out searches) → at most
   ``per_taxon`` keys per reference species (the first by k-mer containment,
   the rest by the search's order) up to ``max_candidates`` → exact identity to
   each (edlib), best first → ``naming.Hits``.
Then ``naming.NamingModel`` gives per rank the label, P(right) and P(absent);
the deepest rank whose P(right) passes the level is named, and novelty is
P(species absent) from the same model (``discovery.naming``).

``fit`` simulates queries from the reference itself (leave-one-barcode-out, again
without the query's own country where the keys carry one, and leave-clade-out at
every rank), searches them with their clade left out, adds
any extra labelled specimens (calibration splits, other_heldout) searched as
they are, and fits the naming model on all of them. It also learns, from the
reference, the barcode-gap distance threshold (``discovery.clustering``) triage
uses to cluster novel specimens into candidate species. Everything is stored
in the bundle as JSON and arrays (no pickle).

Specimens without a usable barcode get no DNA call (``modality='none'``); the
image path (``discovery.multimodal``) names them from a photograph.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from biodiscover.discovery.audit import (AUDIT_IDENTITY, RefusedKey, SuspectKey, audit_reference, confirm_groups,
                                         describe_audit, nearest_other_species)
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder
from biodiscover.discovery.naming import (PUBLISHED_CUTOFFS, TIE_TOLERANCE, Hits, Lineage, NamingConfig,
                                          NamingModel, SimQuery, SimulatedCalls, cutoff_words, deepest_confident,
                                          plan_simulation)
from biodiscover.discovery.reference import Exclusion, KeyColumns, Reference
from biodiscover.storage.distance import reverse_complement, shared_identity
from biodiscover.storage.errors import InputError, ModelBundleError, NotFittedError
from biodiscover.storage.records import RANKS, Specimen

log = logging.getLogger(__name__)

ENGINE_TABLE = "discovery_engine"
#: the naming model's simulated queries, each with its out-of-fold probabilities (``naming.SimulatedCalls``)
SIMULATION_TABLE = "naming_simulation"
REFERENCE_TABLE = "discovery_reference"
AUDIT_TABLE = "reference_audit"
#: rows build-reference refused that hold a barcode (``discovery.audit.RefusedKey``); absent in bundles before
REFUSED_TABLE = "reference_refused"
INDEX_ARRAY = "discovery_index"  # format 2 only: the raw FAISS index (later formats keep it with the reference)
#: 2: confidence-calibrated ranks, clade exclusion, barcode gap in the bundle;
#: 3: reference keys as memory-mapped arrays (``discovery.reference``);
#: 4: the naming model trained on queries simulated from the reference (P(right), P(absent) per rank)
ENGINE_FORMAT = 4


@dataclass(frozen=True)
class EngineConfig:
    """Settings of the discovery engine (stored in the bundle)."""

    kmer: KmerConfig = field(default_factory=lambda: KmerConfig(ks=(6,), sqrt=True))
    #: 6-mer presence vectors searched exactly up to 20k keys; above, projected to 256-d (uncentred SVD)
    #: in IVF cells of 8-bit codes; hits re-ranked by exact k-mer sketch cosine (discovery.reference;
    #: recall and naming per index kind: benchmarks/RESULTS-scale.md)
    index: IndexConfig = field(default_factory=lambda: IndexConfig(project_dim=256, exact_max=20_000,
                                                                   ivf_nprobe=64))
    n_search: int = 300
    per_taxon: int = 2
    max_candidates: int = 60
    #: a species' first candidate key is its search hit of highest k-mer containment, not of highest cosine:
    #: the identity the naming model reads is over the overlap, and cosine also falls with a length
    #: difference (``Reference.diversify``); False in bundles written before, whose models saw the other
    containment_first: bool = True
    naming: NamingConfig = field(default_factory=NamingConfig)
    #: the naming model's simulated queries score every key exactly (packed k-mer sketches) up to this many
    #: keys, whatever the index kind; above, they go through the index as triage does (the scan costs
    #: ≈ 0.25 s of CPU per 1k keys for the ~7,500 simulated queries: ≈ 1 min at 250k keys)
    sim_exact_max: int = 250_000
    #: P(species absent) at or above which a specimen is flagged novel (a candidate for a new species)
    novelty_threshold: float = 0.5
    #: learn the candidate-species distance threshold from the reference's barcode gap
    learn_barcode_gap: bool = True
    gap_per_species: int = 8
    gap_max_specimens: int = 6000
    #: reference keys shuffled (base composition kept) to learn the identity unrelated sequences reach,
    #: spread over ``NULL_LENGTHS``
    null_queries: int = 500
    #: look for a chimera of two reference genera in barcodes far from every key, or whose best key covers part of
    #: them
    #: (``DiscoveryModel._check_chimeras``); False: not looked for (an ablation)
    chimera_check: bool = True
    min_barcode_length: int = 50
    batch_size: int = 2048

    def __post_init__(self) -> None:
        # a specimen named to species has P(species absent) <= 1 - level: above that, never also novel
        if not 1.0 - self.naming.level < self.novelty_threshold < 1.0:
            raise ValueError(f"novelty_threshold must be in (1 - level, 1), got {self.novelty_threshold}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kmer"] = self.kmer.to_dict()
        d["index"] = self.index.to_dict()
        d["naming"] = self.naming.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineConfig":
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data.setdefault("containment_first", False)  # a bundle from before: its model saw cosine's choice
        data["kmer"] = KmerConfig.from_dict(data["kmer"])
        data["index"] = IndexConfig.from_dict(data["index"])
        data["naming"] = NamingConfig.from_dict(data.get("naming", {}))
        return cls(**data)


def _table_rows(bundle: Any, name: str, read: Callable[[Any], Any], what: str) -> list[Any] | None:
    """Each row of the optional list table ``name`` read by ``read``; None where the bundle has none (built before
    it); a malformed table is a ``ModelBundleError`` naming ``what``."""
    if name not in bundle.names("tables"):
        return None
    try:
        return [read(row) for row in bundle.load_table(name, expect=list)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelBundleError(f"{bundle.path}: {what} table is malformed ({type(exc).__name__}: {exc})") from None


def audit_rows(bundle: Any) -> list[SuspectKey] | None:
    """Every key the reference audit flagged, as the bundle stores it (table ``reference_audit``); None where the
    bundle was built before the audit. The engine sets them aside from it, ``info --audit`` lists them."""
    return _table_rows(bundle, AUDIT_TABLE, SuspectKey.from_dict, "reference audit")


@dataclass(frozen=True)
class TriageResult:
    """The engine's answer for one specimen (what the database stores as an assignment).

    ``confidence[rank]`` = P(the label at that rank is right); ``p_absent[rank]`` =
    P(the specimen's taxon at that rank is absent from the reference); ``novelty`` =
    P(species absent). ``deepest_rank`` is the deepest rank named at the engine's level.
    """

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
    p_absent: dict[str, float | None] = field(default_factory=dict)
    #: a reviewer's sentence: why the naming stopped above species although a species was at hand, and/or
    #: that the best reference key is one the reference audit lists (``discovery.audit``)
    reason: str | None = None
    #: per rank, the rank model's (P(right), P(wrong), P(absent)) at the simulation's even odds: what
    #: ``DiscoveryModel.adapt`` re-reads under a collection's own share of absent taxa
    outcomes: dict[str, list[float] | None] = field(default_factory=dict)
    #: per learned rank, the share of absent taxa ``confidence`` and ``p_absent`` assume (empty: the
    #: simulation's even odds; ``naming.collection_prior``)
    priors: dict[str, float] = field(default_factory=dict)
    #: per rank, the closest other label among the candidate keys and its identity (for ``reason``)
    rivals: dict[str, list[Any] | None] = field(default_factory=dict)
    #: informative bases shared with the best key
    overlap: int = 0
    #: what ``reason`` says besides the naming: "reversed" (the barcode was read reverse-complemented),
    #: "audit" (the best key is one the reference audit lists), "tie" (another species' key as identical), "review"
    #: (the best key is a reviewer's, placed where the reference's nearest key disagrees: ``_review_note``)
    notes: dict[str, str] = field(default_factory=dict)
    #: per learned rank, ``outcomes`` had the query shared a full-length barcode with its best key (empty: it
    #: did, or no rank is learned): what ``reason`` weighs a short overlap by (``NamingModel.explain``)
    full_overlap: dict[str, list[float]] = field(default_factory=dict)
    #: the nearest known species among the aligned candidate keys, best first, up to ``NEAR_SPECIES``: each
    #: ``[species, genus, key processid, identity]`` of its best key (keys without a species name left out)
    near: list[list[Any]] = field(default_factory=list)

    def labelled_confidence(self) -> dict[str, float]:
        """``confidence`` at the ranks the best key's lineage has: what ``--results`` and the database keep. Why: a
        family without subfamilies printed confidence_subfamily 0.0 beside a genus at 0.9998, read as a refusal (e33
        review F3, five Sciaridae rows); a rank that does not exist has no P(right), an empty cell."""
        return {r: v for r, v in self.confidence.items() if self.labels.get(r)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: A chimera (a PCR artefact, or two templates in one well: the 5' end of one specimen's barcode on the 3' end of
#: another's) is looked for in barcodes whose best identity is under ``CHIMERA_BELOW``, or whose best key covers
#: under ``CHIMERA_COVER`` of them: their first and last third (at least ``CHIMERA_MIN_END`` informative bases
#: each) are aligned to the read's own candidate keys, and the read is a chimera when each end matches a key at
#: ``CHIMERA_FLOOR`` or more, both ``CHIMERA_MARGIN`` closer than the whole read comes to any key (any key
#: covering ``CHIMERA_COVER`` of it), and the two keys are of different genera (``CHIMERA_RANK``; a rank either
#: key leaves blank is read at the ranks above it). Measured on the dev data (benchmarks/RESULTS-discovery.md,
#: "Chimeric barcodes" and "Chimeras within a family"). Why not name what the ends agree on: which end is the
#: specimen is unknown; such a read is sequenced again, not named.
CHIMERA_BELOW = 0.98
#: the share of a read its best key must cover for its identity to speak for the whole read. Why: a chimera whose
#: first 296 bases came from a Harpalus key matched a 307-base Harpalus key at 99.3 %, passed as a match and was
#: named to genus; the other 350 bases (a Philonthus) were never looked at (e31 review F8). On the dev data 0 of
#: 3,740 real barcodes checked were flagged (none within a point), and 26 of 28 chimeras whose best key is such a
#: part were caught (0 before); 0.9 caught no more and checked 271 more reads.
CHIMERA_COVER = 0.8
CHIMERA_MIN_END = 120
CHIMERA_FLOOR = 0.97
CHIMERA_MARGIN = 0.03
#: the deepest rank at which the two ends' keys must differ. Why genus and not family: on the dev data 0 of 10,849
#: real barcodes were flagged either way (none within a point of it at genus), and genus caught 141 of 200 chimeras
#: of two genera of one family that family caught none of (a mixed well of one family's beetles is the common case).
#: Why not species: a chimera of two congeners is as close to both as a new species of their genus would be.
CHIMERA_RANK = "genus"
#: how the reason of a barcode set apart from naming begins (``_check_homology``, ``_check_chimeras``), and what
#: each is called in a count (``set_apart_kind``)
SET_APART_REASONS = (("chimeric barcode", "chimeric"), ("barcode unrelated to every reference key", "unrelated"))


def set_apart_kind(reason: str | None) -> str | None:
    """``chimeric`` or ``unrelated`` for a barcode triaged and named nothing because of what it is (its
    ``TriageResult.reason`` says why), else None. Why: counted with the specimens that have no barcode, 6 such
    reads made a plate's summary say "892 of 900 specimens triaged (… 6 without a usable barcode)" beside ranks
    summing to 898 (e32 review R3): they have barcodes, were triaged, and their reason is the finding."""
    return next((kind for head, kind in SET_APART_REASONS if reason and reason.startswith(head)), None)
#: known species a result keeps beside its best key (``TriageResult.near``). Why: a candidate's evidence lists
#: the nearest few species over its members (``discovery.proposals``): on a real plate one known species sat
#: tied at 0.0 % with the species shown, and a reviewer saw only the one the best key named.
NEAR_SPECIES = 5
#: keys of each species compared in ``species_apart`` (evenly spread over a species with more), the k-mer length of
#: their estimate and how many pairs closest by it are aligned
APART_KEYS = 20
APART_K = 8
APART_ALIGNED = 5
#: k-mer length and the share of a dropped record's k-mers a query must hold before it is aligned to it
#: (``dropped_matches``): at the 97 % it looks for, about 0.97^8 ≈ 78 % of a record's 8-mers are found
DROPPED_K = 8
DROPPED_PREFILTER = 0.5


def informative_length(seq: str | None) -> int:
    """Bases that carry information (not N)."""
    return 0 if not seq else len(seq) - seq.upper().count("N")


def _usable(seq: str | None, min_len: int) -> bool:
    """At least ``min_len`` informative (non-N) bases."""
    return informative_length(seq) >= min_len


#: read lengths at which the chance identity of an unrelated sequence is learned (and the longest key's)
NULL_LENGTHS = (200, 300, 400, 500)
def _barcode(s: Specimen) -> str:
    """The barcode of a specimen :func:`_usable` passed (typed ``str``: it is never None there)."""
    return s.dna_barcode or ""


def gap_sample(lineages: Sequence[Lineage], per_species: int, cap: int, seed: int = 0) -> list[int]:
    """The reference keys the barcode gap is learned on (sorted positions; empty under two species): up to
    ``per_species`` distinct keys of each species named with its genus, then at most ``cap`` of those.

    Why distinct: a key drawn twice is a within-species pair at distance 0 that no two specimens make, and
    it pulls the learned species cut towards the copies (the gap is fitted on pairs of the drawn keys).
    Why a cap per species: the crowded species would otherwise decide the within-species spread alone."""
    rng = np.random.default_rng(seed)
    by_species: dict[str, list[int]] = {}
    for j, lin in enumerate(lineages):
        if lin[-1] and lin[-2]:
            by_species.setdefault(lin[-1], []).append(j)
    if len(by_species) < 2:
        return []
    picks = [int(j) for idx in by_species.values()
             for j in rng.choice(idx, min(per_species, len(idx)), replace=False)]
    if len(picks) > cap:
        picks = rng.choice(picks, cap, replace=False).tolist()
    return sorted(picks)


class DiscoveryModel:
    """Fit on labelled reference specimens; triage new specimens.

    ``fit(reference, calibration=(), outliers=())``: ``reference`` are the keys
    searched at triage (e.g. train + key_unseen); the naming model is trained on
    queries simulated from them. ``calibration`` (e.g. val + val_unseen) and
    ``outliers`` (other_heldout) are extra labelled specimens, searched against
    the keys as they are: their truth — present or absent at each rank — adds
    real examples to the simulated ones. Fitted: ``ref_ids_``, ``ref_seqs_``,
    ``ref_lineages_``, ``index_``, ``naming_``, ``barcode_gap_``, ``fit_seconds_``.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.embedder = KmerEmbedder(self.config.kmer)
        #: rows build-reference refused that hold a barcode (``workflows.reference.refused_keys``; in the bundle)
        self.refused_: list[RefusedKey] = []

    # -- the reference (keys and candidate search: discovery.reference) ----------------------
    def _build_reference(self, keys: KeyColumns, say: Callable[[str], None]) -> Reference:
        t = time.perf_counter()
        ids, seqs, lineages = keys.columns()
        # the audit runs before indexing: a key it finds stored reversed is indexed the right way round
        suspects, checked, groups = audit_reference(ids, seqs, lineages)
        flip = {s.processid for s in suspects if s.reversed_identity >= AUDIT_IDENTITY}
        if flip:
            keys.reverse_complement(j for j, pid in enumerate(ids) if pid in flip)
            ids, seqs, lineages = keys.columns()
        seconds = time.perf_counter() - t
        ref = Reference.build(ids, seqs, lineages, kmer=self.config.kmer, index=self.config.index,
                              batch_size=self.config.batch_size, progress=say)
        ref.countries = keys.countries()  # where each key was collected: the review's nearest species say it
        if groups:  # a group far from its species' bulk is listed when it carries another species' barcode
            t = time.perf_counter()
            where = {pid: j for j, pid in enumerate(ids)}
            suspects = sorted(suspects + confirm_groups(groups, where, seqs, lineages, self._search(ref)),
                              key=lambda s: (s.own_identity, s.processid))
            seconds += time.perf_counter() - t
        self._audit_found = (suspects, checked, seconds)
        return ref

    def _search(self, ref: Reference) -> Callable[[Sequence[str]], list[tuple[np.ndarray, np.ndarray]]]:
        """The engine's candidate search over ``ref`` as (positions, identities) per query: what a query with
        that barcode would be shown (the audit's nearest other species)."""
        cfg = self.config

        def candidates(queries: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
            found = ref.candidates(queries, n_search=cfg.n_search, per_taxon=cfg.per_taxon,
                                   max_candidates=cfg.max_candidates, containment_first=cfg.containment_first)
            return [(c.positions, c.identities) for c in found]

        return candidates

    @property
    def ref_ids_(self) -> Sequence[str]:
        """Processids of the reference keys (read-only view of ``reference_``)."""
        return self.reference_.ids

    @property
    def ref_seqs_(self) -> Sequence[str]:
        """Barcodes of the reference keys (memory-mapped after ``load``)."""
        return self.reference_.sequences

    @property
    def ref_lineages_(self) -> list[tuple[str | None, ...]]:
        """Lineage tuples (over ``RANKS``) of the reference keys."""
        return self.reference_.lineages

    def _set_aside(self) -> tuple[np.ndarray, list[tuple[str | None, ...]]] | None:
        """(which reference positions ``set_aside_`` holds, the lineages with those keys unlabelled), or None
        when none is set aside; computed once per set and reference size (a refit sets a new set;
        ``add_references`` grows the reference)."""
        ids = getattr(self, "set_aside_", None)
        if not ids:
            return None
        n = len(self.reference_)
        cached = getattr(self, "_set_aside_cache", None)
        if cached is None or cached[0] is not ids or len(cached[1]) != n:
            mask = np.fromiter((pid in ids for pid in self.reference_.ids), dtype=bool, count=n)
            blank: tuple[str | None, ...] = (None,) * len(RANKS)
            cached = (ids, mask, [blank if m else lin for lin, m in zip(self.ref_lineages_, mask)])
            self._set_aside_cache = cached
        return cached[1], cached[2]

    def _set_aside_mask(self) -> np.ndarray | None:
        """Which reference positions ``set_aside_`` holds (None: none)."""
        aside = self._set_aside()
        return None if aside is None else aside[0]

    @property
    def naming_lineages_(self) -> list[tuple[str | None, ...]]:
        """The lineages the naming model reads: ``ref_lineages_`` with the keys set aside unlabelled.

        Why a key is set aside (``set_aside_``): the reference audit found it farther than the published
        family cut-off from every other key of its species — a misidentified, contaminated or mislabelled
        record, most likely. Such a key names whatever matches it with its species at full confidence: in
        the pooled dev reference one "Amara bifrons" key 86 % from the rest of its species sat 98 % from
        specimens of the absent Amara quenseli and named twelve of them A. bifrons at P(right) 0.98–1.0.
        Set aside, it is neither searched (``_hits`` drops it) nor simulated from, so a query is named
        from the keys that agree with their species; it stays in the reference, the audit and the evidence.
        """
        aside = self._set_aside()
        return self.ref_lineages_ if aside is None else aside[1]

    @property
    def index_(self) -> ReferenceIndex:
        return self.reference_.index_

    @property
    def ref_lengths_(self) -> np.ndarray:
        """Informative (non-N) bases of each key (the naming model's overlap feature)."""
        cached = getattr(self, "_ref_lengths", None)
        if cached is None or len(cached) != len(self.reference_):
            cached = np.fromiter((informative_length(s) for s in self.reference_.sequences), dtype=np.int64,
                                 count=len(self.reference_))
            self._ref_lengths = cached
        return cached

    # -- fitting -----------------------------------------------------------------------
    def add_key(self, keys: KeyColumns, specimen: Specimen) -> bool:
        """Append ``specimen`` to ``keys`` when it can be a key (a barcode of ``min_barcode_length``
        informative bases and a label); whether it was. ``build-reference`` streams the validating
        reader through this, so a million keys never exist as ``Specimen`` objects at once."""
        if not (_usable(specimen.dna_barcode, self.config.min_barcode_length) and specimen.deepest_label):
            return False
        keys.append(specimen.processid, _barcode(specimen), specimen.ranks(), specimen.country)
        return True

    def key_columns(self, specimens: Iterable[Specimen]) -> KeyColumns:
        """The usable keys of ``specimens`` (:meth:`add_key`) in compact columns: what :meth:`fit` indexes."""
        keys, seen = KeyColumns(), 0
        for s in specimens:
            seen += 1
            self.add_key(keys, s)
        if seen > len(keys):
            log.warning("%d reference specimens without a usable barcode or any label were left out",
                        seen - len(keys))
        return keys

    def fit(self, reference: Sequence[Specimen] | KeyColumns, calibration: Sequence[Specimen] = (),
            outliers: Sequence[Specimen] = (), progress: Callable[[str], None] | None = None) -> "DiscoveryModel":
        """``reference``: specimens, or keys already in columns (:meth:`key_columns`, the streaming build)."""
        say = progress or (lambda msg: log.info(msg))
        t0 = time.perf_counter()
        keys = reference if isinstance(reference, KeyColumns) else self.key_columns(reference)
        if not len(keys):
            raise InputError("no reference specimen has both a usable DNA barcode and a taxonomy label")
        say(f"indexing {len(keys)} reference keys")
        self.reference_ = self._build_reference(keys, say)
        self._session_keys = 0  # a new reference holds no session keys (``add_references``)
        suspects = self._audit_found[0]
        self.set_aside_ = frozenset(s.processid for s in suspects if s.reversed_identity < AUDIT_IDENTITY)
        countries = keys.countries()
        queries, support = plan_simulation(self.ref_lineages_, self.ref_seqs_, self.config.naming, countries)
        aside = self._set_aside_mask()
        if aside is not None:  # drawn as from every key, then the keys set aside dropped: the same draw otherwise
            queries = [q for q in queries if not aside[q.position]]
        elsewhere = sum(q.elsewhere and q.scenario == "present" for q in queries)
        away = sum(q.elsewhere and q.scenario != "present" for q in queries)
        # kept with the species rank's support, so `info` says it too (None: the keys gave no country)
        support.setdefault("species", {})["met_elsewhere"] = elsewhere if countries is not None else None
        support["species"]["absent_met_elsewhere"] = away if countries is not None else None
        say(f"simulating {len(queries)} queries from the reference (leave-one-barcode-out, "
            + (f"{elsewhere} of them again from another country, " if countries is not None else
               "the keys give no country: no species is met from another part of its range, ")
            + "and leave-clade-out at every rank"
            + (f", {away} left-out species again without their relatives' keys from their own country)"
               if countries is not None else ")"))
        cutoff = [k for k, r in enumerate(RANKS) if not support.get(r, {}).get("learned")]
        # the simulation searches every key exactly whatever the index kind (up to ``sim_exact_max`` keys):
        # the model must not hinge on an approximate index's recall (fitted on IVF-SQ candidates instead, the
        # leave-one-order-out figures moved by up to 4 points; triage's own search through it moves them <= 0.08)
        exact = len(keys) <= self.config.sim_exact_max
        hits = self._hits([self.ref_seqs_[q.position] for q in queries], [q.exclude for q in queries], cutoff,
                          exact=exact)
        extra = [s for s in list(calibration) + list(outliers)
                 if _usable(s.dna_barcode, self.config.min_barcode_length) and s.deepest_label]
        if extra:
            say(f"searching {len(extra)} extra labelled specimens (calibration splits, outliers)")
            queries += self._extra_queries(extra)
            hits += self._hits([_barcode(s) for s in extra], bootstrap_ranks=cutoff, exact=exact)
        self.naming_ = NamingModel(self.config.naming).fit(self.naming_lineages_, self.ref_lengths_, queries, hits,
                                                           support, progress=say)
        self.barcode_gap_ = self._learn_gap(say) if self.config.learn_barcode_gap else None
        self._learn_null(say)
        self._audit(say)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _extra_queries(self, extra: Sequence[Specimen]) -> list[SimQuery]:
        sizes = [{lin[k] for lin in self.naming_lineages_ if lin[k]} for k in range(len(RANKS))]
        out = []
        for s in extra:
            truth = s.ranks()
            present = tuple(bool(truth[k]) and truth[k] in sizes[k] for k in range(len(RANKS)))
            first = next((RANKS[k] for k in range(len(RANKS)) if truth[k] and not present[k]), None)
            scenario = "present" if first is None else f"absent:{first}"
            out.append(SimQuery(-1, None, truth, scenario, f"extra:{s.species or s.deepest_label}", present))
        return out

    def _learn_null(self, say: Callable[[str], None]) -> None:
        """The identity a barcode unrelated to every key reaches, by query length: windows of keys
        shuffled (their base composition kept) and searched like queries. Chance identity rises as a
        read gets shorter (it is aligned inside a longer key), hence one value per length. A query
        no closer than that is not homologous to the reference (another gene region, a reversed
        read, a contaminant): naming it — or proposing it as a new species — would rest on chance
        matches. Fitted: ``null_identity_``, [(length, the highest identity reached)] by length."""
        rng = np.random.default_rng(self.config.naming.seed)
        n = len(self.reference_)
        per = max(1, self.config.null_queries // (len(NULL_LENGTHS) + 1))
        longest = max(len(self.ref_seqs_[j]) for j in range(min(n, 1000)))
        table: list[tuple[int, float]] = []
        for length in [x for x in NULL_LENGTHS if x < longest] + [longest]:
            shuffled = []
            for j in rng.choice(n, min(per, n), replace=False):
                # its called bases only: the table is looked up by a read's called bases (``null_floor``), and
                # a window of a key's N run, shuffled, was a read of Ns that matched anything
                seq = self.ref_seqs_[int(j)].replace("N", "")
                start = int(rng.integers(0, max(1, len(seq) - length + 1)))
                bases = np.frombuffer(seq[start:start + length].encode("ascii"), dtype=np.uint8).copy()
                rng.shuffle(bases)
                shuffled.append(bases.tobytes().decode("ascii"))
            best = [float(h.identities[0]) if len(h.identities) else 0.0 for h in self._hits(shuffled)]
            table.append((length, max(best)))
        self.null_identity_: list[tuple[int, float]] | None = table or None
        if table:
            say("unrelated sequences (shuffled keys) reach at most " + ", ".join(
                f"{100 * v:.1f} % at {length} nt" for length, v in table) + ": a query no closer is not named "
                "from DNA; its reverse complement is tried first")

    def null_floor(self, length: int) -> float | None:
        """The chance identity a read of ``length`` informative bases reaches (None: not learned)."""
        table = getattr(self, "null_identity_", None)
        if not table:
            return None
        return float(np.interp(length, [t[0] for t in table], [t[1] for t in table]))

    def _audit(self, say: Callable[[str], None]) -> None:
        """List the reference keys far from the rest of their species (``discovery.audit``)."""
        t = time.perf_counter()
        suspects, checked, seconds = self._audit_found
        # the rest now match their species (turned round), or were found matching another (a group)
        far = [s for s in suspects if s.reversed_identity < AUDIT_IDENTITY and not s.group_keys]
        if far:
            flagged = {s.processid for s in far}
            where = {pid: j for j, pid in enumerate(self.ref_ids_) if pid in flagged}
            found = {s.processid: s for s in nearest_other_species(far, where, self.ref_seqs_, self.ref_lineages_,
                                                                    self._search(self.reference_))}
            suspects = [found.get(s.processid, s) for s in suspects]
        self.audit_: list[SuspectKey] | None = suspects
        alone = [s for s in suspects if not s.group_keys]
        # one row per group (its species and the species whose barcode it carries): its keys are one batch
        batches: dict[tuple[str, str | None], list[SuspectKey]] = {}
        for s in suspects:
            if s.group_keys:
                batches.setdefault((s.species, s.nearest_other), []).append(s)
        self.audit_summary_ = {"species_checked": checked, "suspects": len(suspects), "min_identity": AUDIT_IDENTITY,
                               "set_aside": len(getattr(self, "set_aside_", None) or ()),
                               "grouped": len(suspects) - len(alone),
                               "worst": [s.to_dict() for s in alone[:20]]
                               + [{**b[0].to_dict(), "listed": len(b)} for b in list(batches.values())[:20]]}
        for line in describe_audit(self.audit_summary_):
            say(line)
        log.info("reference audit in %.1fs", seconds + time.perf_counter() - t)

    def _learn_gap(self, say: Callable[[str], None]) -> Any:
        """The reference's barcode gap: the species distance cut candidate clustering uses."""
        from biodiscover.discovery.clustering import BarcodeGapThreshold

        cfg = self.config
        picks = gap_sample(self.ref_lineages_, cfg.gap_per_species, cfg.gap_max_specimens)
        if not picks:
            log.warning("fewer than 2 reference species: no barcode gap learned (clustering uses its default)")
            return None
        t = time.perf_counter()
        gap = BarcodeGapThreshold().fit([self.ref_seqs_[j] for j in picks],
                                        [self.ref_lineages_[j][-1] for j in picks],
                                        groups=[self.ref_lineages_[j][-2] for j in picks])
        say(f"barcode gap learned on {len(picks)} reference specimens: {gap.linkage_} linkage at "
            f"{gap.threshold_:.4f} p-distance (AMI {gap.score_:.3f}; {time.perf_counter() - t:.1f}s)")
        return gap

    # -- evidence ----------------------------------------------------------------------
    def _hits(self, sequences: Sequence[str], exclude: Sequence[Exclusion | None] | None = None,
              bootstrap_ranks: Sequence[int] = (), exact: bool = False,
              closer_set_aside: dict[int, tuple[int, float]] | None = None) -> list[Hits]:
        """Candidate keys with exact identities, best first, per query (``exclude[i]`` left out of query i).

        ``bootstrap_ranks`` (indices into RANKS): the ranks decided by the published cut-off; where a
        query's candidates carry more than one label at one of them, its bootstrap wins are computed
        (``Hits.wins``; elsewhere the support is 1 and costs nothing). ``exact``: every key scored, whatever
        the index kind (``Reference.search``). Keys set aside by the audit (``naming_lineages_``) are
        dropped; ``closer_set_aside``, when given, gets query i → (position, identity) of one that was
        closer than every key kept (what the reviewer is told).
        """
        cfg = self.config
        out: list[Hits] = []
        found = self.reference_.candidates(sequences, n_search=cfg.n_search, per_taxon=cfg.per_taxon,
                                           max_candidates=cfg.max_candidates, exclude=exclude, exact=exact,
                                           containment_first=cfg.containment_first)
        lineages = self.ref_lineages_
        aside = self._set_aside_mask()
        for i, (seq, c) in enumerate(zip(sequences, found)):
            idv = np.asarray(c.identities, dtype=np.float64)
            order = np.lexsort((-np.asarray(c.similarities, dtype=np.float64), -idv))
            pos = np.asarray(c.positions, dtype=np.int64)[order]
            idv = idv[order]
            if aside is not None and len(pos) and aside[pos].any():
                keep = ~aside[pos]
                if closer_set_aside is not None and not keep[0]:
                    closer_set_aside[i] = (int(pos[0]), float(idv[0]))
                pos, idv = pos[keep], idv[keep]
            if not len(pos):
                out.append(Hits.empty(informative_length(seq)))
                continue
            rivals = any(len({lineages[int(j)][k] for j in pos} - {None}) > 1 for k in bootstrap_ranks)
            wins = self.reference_.bootstrap(seq, pos) if rivals else None
            # what the best key's identity was measured on: less than the shorter read where reads from
            # other primers overhang each other (one more alignment a query: the candidates' values are
            # identities only, aligned in bulk and often in another process)
            shared = shared_identity(seq, self.reference_.sequences[int(pos[0])])[1]
            out.append(Hits(pos, idv, informative_length(seq), wins, shared))
        return out

    def _own_keys(self, processids: Sequence[str]) -> list[Exclusion | None] | None:
        """Per query, the positions of keys that are its own record (same processid), to leave out of its search;
        None where no query has one (the search then takes its fast path).

        Why: a specimen is no evidence for itself. Members of a candidate a reviewer accepted are keys in the next
        triage of the same collection, and a re-triaged week-1 batch was published as "COI barcode 100.0 %
        identical to reference CHEIK003-13" for CHEIK003-13 (and named from it at P(right) 1.0). Without its own
        key a specimen is named from the other keys: its reviewed siblings, or the reference."""
        wanted = set(processids)
        where: dict[str, list[int]] = {}
        for j, pid in enumerate(self.ref_ids_):
            if pid in wanted:
                where.setdefault(pid, []).append(j)
        if not where:
            return None
        return [np.asarray(where[p], dtype=np.int64) if p in where else None for p in processids]

    def _without_session(self, sequences: Sequence[str], hits: Sequence[Hits],
                         own: Sequence[Exclusion | None] | None) -> dict[int, Hits]:
        """Query index → its hits searched without the keys added for the session (``add_references``), for every
        query whose candidates hold a session key: where its best key is the reference's own, what
        ``NamingModel.outcomes`` also reads it by (which says why); where it is a
        session key, what ``_review_note`` compares it with. Searched again, not filtered: the session's keys took
        places among the candidates that the reference's next-nearest keys then lack."""
        session = int(getattr(self, "_session_keys", 0))
        if not session:
            return {}
        n = len(self.naming_lineages_)
        built = n - session
        idx = [i for i, h in enumerate(hits) if len(h.positions) and bool((h.positions >= built).any())]
        if not idx:
            return {}
        added = np.arange(built, n, dtype=np.int64)
        exclude: list[Exclusion | None] = []
        for i in idx:
            mine = own[i] if own is not None else None
            exclude.append(np.union1d(added, mine) if isinstance(mine, np.ndarray) else added)
        again = self._hits([sequences[i] for i in idx], exclude, bootstrap_ranks=self._cutoff_ranks())
        return dict(zip(idx, again))

    def _review_note(self, h: Hits, reference: Hits, built: int) -> str | None:
        """``notes["review"]``: for a query named from a key added for the session (``h.top`` from ``built`` on),
        where that key's lineage and the reference's nearest key's (``reference``: the query searched without the
        session's keys) disagree above species and that key lies above the published cut-off of the first rank they
        disagree at, a reviewer's sentence saying so; else None.

        Why: the review placed a candidate, and its members are keys the next triage names from (README); a
        candidate moved into the wrong order on purpose (a fly placed in Hemiptera) had next week's flies named
        that provisional species, order Hemiptera at 0.99, with no word that the reference's nearest key was a fly
        at 91.8 % (e35 week-2 review, finding 2). The name still follows the review (what a reviewer decided is not
        overruled by the machine), and the sentence shows where the barcodes disagree with it."""
        if not len(reference.positions) or h.top < built:
            return None
        mine, theirs = self.ref_lineages_[h.top], self.ref_lineages_[reference.top]
        x = float(reference.identities[0])
        for m, rank in enumerate(RANKS[:-1]):
            a, b = mine[m], theirs[m]
            if not (a and b and a != b):
                continue
            if x < PUBLISHED_CUTOFFS[rank]:
                return None
            return (f"its best key, {self.ref_ids_[h.top]} ({mine[-1] or a}), is one a review placed in {rank} {a}; "
                    f"the reference's nearest key, {self.ref_ids_[reference.top]} "
                    f"({theirs[-1] or b}), is {rank} {b} at {100 * x:.1f} % identity, above the published {rank} "
                    f"cut-off {100 * PUBLISHED_CUTOFFS[rank]:.0f} %")
        return None

    def _cutoff_ranks(self) -> list[int]:
        """Indices of the ranks the fitted naming model decides by the published cut-off."""
        return [k for k, r in enumerate(RANKS) if r not in self.naming_.models_]

    # -- triage ------------------------------------------------------------------------
    def triage(self, specimens: Sequence[Specimen], level: float | None = None, collection: bool | None = True
               ) -> list[TriageResult]:
        """Per-specimen labels, P(right) and P(absent) per rank, deepest named rank and novelty.

        ``level`` overrides the bundle's naming level (P(right) a rank needs to be named).
        ``collection``: True, the specimens are one collection, decided under its own share of absent
        taxa (``adapt``); False, each at the simulation's even odds; None, one chunk of a bigger
        collection whose caller decides the whole with ``adapt``: the results carry their ``outcomes``
        and are not decided yet (no confidence, deepest rank or novelty), so nothing is decided twice.
        """
        self._check_fitted()
        level = self.config.naming.level if level is None else float(level)
        if not 0.5 < level <= 1.0:
            raise InputError(f"level must be in (0.5, 1], got {level}")
        usable = [i for i, s in enumerate(specimens) if _usable(s.dna_barcode, self.config.min_barcode_length)]
        results: list[TriageResult | None] = [None] * len(specimens)
        if usable:
            seqs = [_barcode(specimens[i]) for i in usable]
            closer: dict[int, tuple[int, float]] = {}
            own = self._own_keys([specimens[i].processid for i in usable])
            hits = self._hits(seqs, own, bootstrap_ranks=self._cutoff_ranks(), closer_set_aside=closer)
            reversed_, unrelated = self._check_homology(seqs, hits)
            if self.config.chimera_check:
                unrelated.update(self._check_chimeras(seqs, hits, set(unrelated)))
            session = int(getattr(self, "_session_keys", 0))
            built = len(self.naming_lineages_) - session
            alone = self._without_session(seqs, hits, own)
            calls = self.naming_.outcomes(self.naming_lineages_, self.ref_lengths_, hits, session,
                                          {i: a for i, a in alone.items() if hits[i].top < built})
            reviewed = {i: note for i, a in alone.items() if (note := self._review_note(hits[i], a, built))}
            sims = self._top_similarity(seqs, hits)
            suspect = {a.processid: a for a in (getattr(self, "audit_", None) or ())}
            for k, i in enumerate(usable):
                if k in unrelated:  # no homology to any key: nothing to name, not a new species either
                    results[i] = TriageResult(specimens[i].processid, "none", {r: None for r in RANKS},
                                              {r: 0.0 for r in RANKS}, float(hits[k].identities[0])
                                              if len(hits[k].identities) else 0.0, None, None, float("nan"), False,
                                              None, 0.0, {r: None for r in RANKS}, reason=unrelated[k])
                    continue
                labels, outcomes, full = calls[k]
                h = hits[k]
                top_hit = self.ref_ids_[h.top] if h.top >= 0 else None
                notes = {}
                if k in reversed_:
                    notes["reversed"] = reversed_[k]
                tie = self._tie_note(seqs[k], h)
                if tie:
                    notes["tie"] = tie
                if k in reviewed:
                    notes["review"] = reviewed[k]
                if top_hit in suspect:  # the name rests on a key the reference audit lists
                    notes["audit"] = (f"its best reference key is flagged by the reference audit: "
                                      f"{suspect[top_hit].describe()}")
                elif k in closer and k not in reversed_:
                    aside = self.ref_ids_[closer[k][0]]
                    described = suspect[aside].describe() if aside in suspect else aside
                    notes["audit"] = (f"a closer reference key, at {100 * closer[k][1]:.1f} % identity, was set "
                                      f"aside, not named from: the reference audit flags it: {described}")
                results[i] = TriageResult(  # decided below, once the collection's priors are known
                    processid=specimens[i].processid, modality="dna", labels=labels, confidence={},
                    identity=float(h.identities[0]) if len(h.identities) else 0.0, deepest_rank=None,
                    deepest_label=None, novelty=float("nan"), is_novel=False, top_hit=top_hit,
                    top_similarity=float(sims[k]), outcomes={r: (list(o) if o is not None else None)
                                                             for r, o in outcomes.items()},
                    rivals={r: (list(v) if v is not None else None)
                            for r, v in self.naming_.rivals(self.naming_lineages_, h).items()},
                    overlap=h.overlap(self.ref_lengths_),
                    notes=notes, full_overlap={r: list(o) for r, o in full.items()}, near=self._near_species(h))
        for i, s in enumerate(specimens):
            if results[i] is None:
                results[i] = TriageResult(s.processid, "none", {r: None for r in RANKS}, {r: 0.0 for r in RANKS},
                                          0.0, None, None, float("nan"), False, None, 0.0,
                                          {r: None for r in RANKS})
        done = [r for r in results if r is not None]  # every slot is filled above
        return done if collection is None else self.adapt(done, level, collection=collection)[0]

    def _tie_note(self, seq: str, h: Hits) -> str | None:
        """``notes["tie"]``: another species' key as identical as the best key, in a reviewer's words; None: none.

        Why: a barcode the reference holds under two species carries little to choose between them, and the best
        key is the first of the tied keys only by its k-mer profile. On the dev data's test split 35 of 7,180
        known-species queries tied two species at the top, 31 were named, 30 of them right (the model learned
        that the first tied key is usually right: the rival is often a shorter read); one, 100 % identical to
        keys of *Erebia ligea* and *E. euryale*, was named *E. ligea* at P(right) 0.997 and said nothing of the
        other (e32 review R24). Unnaming every tie would cost 30 right names for one wrong, so the name stays
        and the reason says the tie (RESULTS-discovery.md, "Two species, one barcode"), and why the one named wins
        (``_hits`` orders equal identities by k-mer similarity): *Diamesa chorea* named over a tied *D. bertrami*
        with no word of why read as arbitrary (e33 review F12)."""
        if not len(h.positions):
            return None
        si = RANKS.index("species")
        lineages = self.naming_lineages_
        top = lineages[h.top][si]
        best = float(h.identities[0])
        if not top:
            return None
        for j, x in zip(h.positions.tolist(), h.identities.tolist()):
            if x < best - TIE_TOLERANCE:
                break
            other = lineages[j][si]
            if other and other != top:
                shared = shared_identity(seq, self.reference_.sequences[j])[1]
                return (f"tie: {other}'s key {self.ref_ids_[j]} is as identical ({100 * x:.1f} % over {shared} "
                        f"bases): the reference holds this barcode under {top} and {other}; {top} is named: its key "
                        f"shares more k-mers with this barcode; the barcode itself cannot tell the two apart")
        return None

    def _near_species(self, h: Hits) -> list[list[Any]]:
        """``TriageResult.near`` from one query's hits (best identity first): each species' best key."""
        lineages, ids = self.ref_lineages_, self.ref_ids_
        si, gi = RANKS.index("species"), RANKS.index("genus")
        out: list[list[Any]] = []
        seen: set[str] = set()
        for j, identity in zip(h.positions.tolist(), h.identities.tolist()):
            species = lineages[j][si]
            if species and species not in seen:
                seen.add(species)
                out.append([species, lineages[j][gi], ids[j], float(identity)])
                if len(out) == NEAR_SPECIES:
                    break
        return out

    def key_countries(self) -> set[str] | None:
        """The countries the reference's keys were collected in; None where the reference records none (built
        before countries were kept, or from keys without one). What a triage compares its collection with: known
        species of a country the reference holds no key from are met from another part of their range, and may
        read as new (the region folds of RESULTS-discovery.md; the review's ⚑).

        Keys added for the session (``add_references``) are left out: they are members of a collection's own
        accepted candidates, and one accepted Indonesian specimen hid "Indonesia 465" from a later triage of a real
        plate whose reference held no Indonesian key of any other species."""
        countries = self.reference_.countries
        if countries is None:
            return None
        built = len(countries) - getattr(self, "_session_keys", 0)
        return {c for c in countries[:built] if c}

    def species_keys(self) -> dict[str, tuple[int, dict[str, int] | None]]:
        """Species → (its keys in the reference, {country: keys}; None where the reference records no country).

        What a candidate's nearest species are shown with: a species whose every key was collected in
        another country than the candidate's members may be a known species met from another part of its
        range (``storage.evidence.known_elsewhere``). Counted once per reference size."""
        cached: tuple[int, dict[str, tuple[int, dict[str, int] | None]]] | None = getattr(self, "_species_keys", None)
        if cached is not None and cached[0] == len(self.reference_):
            return cached[1]
        si = RANKS.index("species")
        countries = self.reference_.countries
        counts: dict[str, int] = {}
        places: dict[str, dict[str, int]] = {}
        for j, lineage in enumerate(self.ref_lineages_):
            species = lineage[si]
            if not species:
                continue
            counts[species] = counts.get(species, 0) + 1
            where = countries[j] if countries is not None else None
            if where:
                here = places.setdefault(species, {})
                here[where] = here.get(where, 0) + 1
        out = {sp: (n, (places.get(sp, {}) if countries is not None else None)) for sp, n in counts.items()}
        self._species_keys = (len(self.reference_), out)
        return out

    def _species_positions(self) -> dict[str, list[int]]:
        """Species → the positions of its keys (once per reference size)."""
        cached: tuple[int, dict[str, list[int]]] | None = getattr(self, "_species_pos", None)
        if cached is not None and cached[0] == len(self.reference_):
            return cached[1]
        si = RANKS.index("species")
        out: dict[str, list[int]] = {}
        for j, lineage in enumerate(self.ref_lineages_):
            if lineage[si]:
                out.setdefault(str(lineage[si]), []).append(j)
        self._species_pos = (len(self.reference_), out)
        return out

    def species_apart(self, a: str, b: str, limit: float) -> float | None:
        """The p-distance between the closest keys of species ``a`` and ``b``, or None when none lies within
        ``limit`` (or either has no key). What tells the review that two congeners lie nearer each other than a
        candidate lies to them (``storage.evidence.indistinct_congeners``): the reference's own distance between
        them, not a margin chosen for a plate.

        Up to ``APART_KEYS`` keys of each (evenly spread) are compared by their k-mer estimate, and the
        ``APART_ALIGNED`` closest pairs by it aligned, each species' k-mer sets made once: aligning every pair of 50
        keys each added 6 s to a real plate's 30-s triage (156 pairs of congeners over 50 candidates); this adds
        0.7 s and finds the same closest pair there (*Amara ovata* / *A. similata*, 0.68 %)."""
        from biodiscover.storage.distance import kmer_presence, mash_distance, p_distance

        where = self._species_positions()
        pa, pb = where.get(a), where.get(b)
        if not pa or not pb or limit <= 0:
            return None

        held: tuple[int, dict[str, tuple[list[str], Any]]] | None = getattr(self, "_apart_keys", None)
        if held is None or held[0] != len(self.reference_):  # keys added for the session: measured anew
            held = (len(self.reference_), {})
            self._apart_keys = held
        cache = held[1]

        def spread(species: str, pos: list[int]) -> tuple[list[str], Any]:
            """The species' compared keys and their k-mer sets (once a species: one congener meets several)."""
            if species not in cache:
                picks = pos if len(pos) <= APART_KEYS else \
                    [pos[int(i)] for i in np.linspace(0, len(pos) - 1, APART_KEYS)]
                seqs = [self.ref_seqs_[j].upper() for j in picks]
                cache[species] = (seqs, kmer_presence(seqs, APART_K))
            return cache[species]

        (sa, ka), (sb, kb) = spread(a, pa), spread(b, pb)
        est = mash_distance(ka, kb, APART_K)
        closest = np.argsort(est, axis=None, kind="stable")[:APART_ALIGNED]
        d = min(p_distance(sa[i], sb[j], limit) for i, j in zip(*np.unravel_index(closest, est.shape)))
        return float(d) if d <= limit + 1e-9 else None

    def dropped_records(self) -> list[tuple[str, str | None, str, str]]:
        """(processid, species, why, barcode) of every record the reference has but never names from: the rows
        build-reference refused (``refused_``, kept in the bundle) and the keys the reference audit set aside."""
        out = [(r.processid, r.species, f"quarantined at build-reference: {r.why}", r.barcode)
               for r in getattr(self, "refused_", None) or ()]
        mask = self._set_aside_mask()
        if mask is not None:
            suspect = {s.processid: s for s in getattr(self, "audit_", None) or ()}
            si = RANKS.index("species")
            for j in np.nonzero(mask)[0].tolist():
                pid = self.ref_ids_[j]
                said = suspect[pid].describe().split("): ", 1)[-1] if pid in suspect else "far from its species"
                out.append((pid, self.ref_lineages_[j][si], f"set aside by the reference audit: {said}",
                            self.ref_seqs_[j]))
        return out

    def dropped_matches(self, queries: Sequence[tuple[str, str, float]]
                        ) -> dict[str, list[tuple[str, str | None, str, float, int]]]:
        """query processid → (record, its species, why it was dropped, identity, bases shared) for every dropped
        record (:meth:`dropped_records`) it matches at the published species cut-off or closer over the bases they
        share, and closer than its best key kept (``queries``: (processid, barcode, that identity)); best first.

        Why closer than its best key: a dropped key of a species the query is named from anyway says nothing; one
        closer than anything kept says the reference knew what it did not use (``storage.evidence.DroppedKey``).
        A k-mer prefilter (8-mers of the record found in the query) keeps the alignments to a handful a query."""
        from biodiscover.storage.distance import kmer_presence

        records = self.dropped_records()
        if not records or not queries:
            return {}
        cut = PUBLISHED_CUTOFFS["species"]
        q = kmer_presence([s.upper() for _, s, _ in queries], DROPPED_K)
        r = kmer_presence([b.upper() for *_, b in records], DROPPED_K)
        shared = np.asarray((q @ r.T).todense(), dtype=np.float64)
        own = np.maximum(np.asarray(r.sum(axis=1)).reshape(1, -1), 1.0)
        out: dict[str, list[tuple[str, str | None, str, float, int]]] = {}
        for i, j in zip(*np.nonzero(shared / own >= DROPPED_PREFILTER)):
            pid, seq, best = queries[int(i)]
            rec = records[int(j)]
            if rec[0] == pid:  # its own record, refused or set aside: a specimen is never its own evidence
                continue
            ident, overlap = shared_identity(seq, rec[3])
            if ident >= cut and ident > best:
                out.setdefault(pid, []).append((rec[0], rec[1], rec[2], float(ident), int(overlap)))
        return {pid: sorted(v, key=lambda m: (-m[3], m[0])) for pid, v in out.items()}

    @staticmethod
    def collection_shares(results: Sequence[TriageResult]) -> dict[str, float]:
        """The share of absent taxa per rank that ``results`` were decided under (``adapt``; empty: even odds)."""
        return next((dict(r.priors) for r in results if r.priors), {})

    @staticmethod
    def _barcode_calls(results: Sequence[TriageResult]) -> list[TriageResult]:
        """The results a collection's share of absent taxa is estimated over: those with a barcode's ``outcomes``
        (a call fused with a photograph keeps its barcode's: ``multimodal.combine_results``)."""
        return [r for r in results if r.modality in ("dna", "dna+image") and r.outcomes]

    def _collection_priors(self, results: Sequence[TriageResult], level: float,
                           toward: Mapping[str, float] | None = None) -> dict[str, float]:
        dna = self._barcode_calls(results)
        return self.naming_.collection_priors([r.outcomes for r in dna], level, [r.identity for r in dna], toward)

    def collection_basis(self, results: Sequence[TriageResult], level: float | None = None) -> dict[str, list[float]]:
        """Per learned rank, [``results``' own share of absent taxa without pseudo-specimens, the specimens it
        rests on] (``NamingModel.collection_basis``): what a triage run records for a season's later plates."""
        self._check_fitted()
        level = self.config.naming.level if level is None else float(level)
        dna = self._barcode_calls(results)
        return self.naming_.collection_basis([r.outcomes for r in dna], level, [r.identity for r in dna])

    def unplaced(self, results: Sequence[TriageResult], level: float) -> tuple[int, str | None, str | None]:
        """How many of ``results`` were named nothing because the shallowest rank decided by a published cut-off
        gave them none (not ``NamingModel.placed``), that rank and its cut-off in words (``cutoff_words``; None:
        every rank learned). Why: on a moth-and-fly reference 461 of 1,496 specimens, nearly all beetles, were named
        nothing and the triage summary said nothing of them (e33 review F5)."""
        naming = self.naming_
        rank = next((r for r in RANKS if r not in naming.models_ and r not in naming.config.optional_ranks), None)
        if rank is None:
            return 0, None, None
        n = sum(1 for r in self._barcode_calls(results)
                if r.deepest_rank is None and not naming.placed(r.outcomes, level, r.identity))
        return n, rank, cutoff_words(rank, naming.support_.get(rank, {}), level)

    def placed_count(self, results: Sequence[TriageResult], level: float) -> int:
        """How many of ``results`` a collection's share of absent taxa is estimated over (``_collection_priors``:
        the DNA-read ones a learned rank placed; ``NamingModel.placed``)."""
        return sum(1 for r in self._barcode_calls(results) if self.naming_.placed(r.outcomes, level, r.identity))

    def _decide_all(self, results: Sequence[TriageResult], priors: Mapping[str, float], level: float
                    ) -> list[TriageResult]:
        return [self._decided(r, priors, level) if r.modality == "dna" and r.outcomes else r for r in results]

    def _decided(self, r: TriageResult, priors: Mapping[str, float], level: float) -> TriageResult:
        """``r`` decided from its ``outcomes`` under ``priors`` (``NamingModel.decide``): P(right), P(absent),
        the deepest rank named at ``level``, novelty and the reviewer's reason."""
        priors = self.naming_.priors_for(r.outcomes, level, r.identity, priors)  # beyond a cut-off: even odds
        conf, absent = self.naming_.decide(r.labels, r.outcomes, priors)
        deepest = deepest_confident(r.labels, conf, level, self.naming_.walk_optional)
        nov = self.naming_.novelty(absent)
        full = self.naming_.decide(r.labels, {**r.outcomes, **r.full_overlap}, priors)[0] if r.full_overlap else None
        other = next(([n[0], n[3]] for n in r.near if n[0] != r.labels.get("species")), None)
        why = self.naming_.explain(r.labels, conf, absent, level, r.identity, r.rivals, r.overlap, full, other)
        tie = r.notes.get("tie") if deepest == "species" else None  # unnamed: ``explain`` names the rival
        reason = "; ".join(x for x in (r.notes.get("reversed"), why, tie, r.notes.get("review"), r.notes.get("audit"))
                           if x) or None
        return replace(r, confidence=conf, p_absent=absent, deepest_rank=deepest,
                       deepest_label=r.labels[deepest] if deepest else None, novelty=nov,
                       is_novel=bool(nov >= self.config.novelty_threshold), reason=reason,
                       priors={k: v for k, v in priors.items() if k in self.naming_.models_})

    def adapt(self, results: Sequence[TriageResult], level: float | None = None, collection: bool = True,
              toward: Mapping[str, float] | None = None) -> tuple[list[TriageResult], dict[str, float]]:
        """The results of one collection decided (again) under its own share of absent taxa per rank
        (``NamingModel.collection_priors``, estimated from every result's ``outcomes``; its pseudo-specimens at
        ``toward``'s share per rank, a season's earlier plates' (``naming.pooled_share``), else at even odds),
        and those shares; with ``collection`` False, each at the simulation's even odds.

        Why over the whole collection and not per call: a batch runner triages a collection in chunks
        (and Ray in batches), and a specimen's call must not depend on which chunk it fell in. Exact and
        idempotent: the shares are re-estimated from the simulation-odds ``outcomes`` each result
        keeps, whatever priors it was decided under before. Results without outcomes (no barcode,
        unrelated sequence, read back from a file) are returned as they are and do not count; nor do
        those a cut-off rank does not accept (``NamingModel.placed``), which keep the simulation's odds.
        """
        self._check_fitted()
        level = self.config.naming.level if level is None else float(level)
        if not 0.5 < level <= 1.0:
            raise InputError(f"level must be in (0.5, 1], got {level}")
        priors = self._collection_priors(results, level, toward) if collection else {}
        return self._decide_all(results, priors, level), priors

    def _check_homology(self, seqs: list[str], hits: list[Hits]) -> tuple[dict[int, str], dict[int, str]]:
        """Queries no closer to any key than shuffled keys come (``null_identity_``): their reverse
        complement is searched and used when it is closer (``seqs``/``hits`` updated in place: a
        barcode submitted reversed is named as read the right way); the rest are unrelated. Returns
        (query index → note) for the reversed and for the unrelated."""
        if not getattr(self, "null_identity_", None):
            return {}, {}

        def best(h: Hits) -> float:
            return float(h.identities[0]) if len(h.identities) else 0.0

        floors = {k: self.null_floor(informative_length(seq)) or 0.0 for k, seq in enumerate(seqs)}
        low = [k for k, h in enumerate(hits) if best(h) <= floors[k]]
        if not low:
            return {}, {}
        flipped = [reverse_complement(seqs[k]) for k in low]
        again = self._hits(flipped, bootstrap_ranks=self._cutoff_ranks())
        reversed_, unrelated = {}, {}
        for k, seq, h in zip(low, flipped, again):
            floor = floors[k]
            if best(h) > floor:
                reversed_[k] = (f"barcode read reversed: its reverse complement matches the reference at "
                                f"{100 * best(h):.1f} % identity (as given: {100 * best(hits[k]):.1f} %), so it is "
                                "named as reverse-complemented")
                seqs[k], hits[k] = seq, h
            else:
                unrelated[k] = (f"barcode unrelated to every reference key: {100 * best(hits[k]):.1f} % identity at "
                                f"best (either strand), no closer than shuffled reference barcodes come "
                                f"({100 * floor:.1f} %): another gene region, a contaminant or a failed read; "
                                "not named from DNA and not a candidate species")
        return reversed_, unrelated

    def _check_chimeras(self, seqs: Sequence[str], hits: Sequence[Hits], skip: set[int]) -> dict[int, str]:
        """Query index → why it is not named: barcodes whose first and last third come from keys of two
        different genera (``CHIMERA_BELOW``, ``CHIMERA_COVER``, ``CHIMERA_RANK`` and the constants beside them).
        The ends are aligned to the read's own candidate keys, not searched again: a chimera shares k-mers with
        both its parents, so both are among them, and a second search of every end cost a third of the triage's
        time on a plate of many new species. Why: a chimera read as one barcode was named to the order of one end
        and proposed as a new species ("Lepidoptera gen. sp.", a weevil's 5' end on a moth's 3' end: an ML
        engineer's review, M5). Where the best key covers only part of the read, the whole read's identity is its
        best key's that covers ``CHIMERA_COVER`` of it: a close match over part of a read is none for the rest."""
        from biodiscover.storage.distance import shared_identity

        apart = range(RANKS.index(CHIMERA_RANK) + 1)  # the ranks the two keys may differ at
        lineages, keys = self.ref_lineages_, self.ref_seqs_
        out: dict[int, str] = {}
        for k, (seq, h) in enumerate(zip(seqs, hits)):
            whole = float(h.identities[0]) if len(h.identities) else 1.0
            part = h.top >= 0 and h.overlap(self.ref_lengths_) < CHIMERA_COVER * h.query_length
            if k in skip or (whole >= CHIMERA_BELOW and not part):
                continue
            if part:  # the best key is a part: the whole read is as close as a key covering it comes
                covering = (shared_identity(seq, keys[p]) for p in h.positions.tolist())
                whole = max((i for i, n in covering if n >= CHIMERA_COVER * h.query_length), default=0.0)
            n = len(seq) // 3
            best: list[tuple[float, int]] = []
            for end in (seq[:n], seq[len(seq) - n:]):
                if informative_length(end) < CHIMERA_MIN_END:
                    break
                found = [(shared_identity(end, keys[p])[0], int(p)) for p in h.positions.tolist()]
                best.append(max(found, key=lambda x: (x[0], -x[1])))
            if len(best) < 2:
                continue
            (i5, p5), (i3, p3) = best
            differ = any(a and b and a != b for a, b in ((lineages[p5][r], lineages[p3][r]) for r in apart))
            if min(i5, i3) >= max(whole + CHIMERA_MARGIN, CHIMERA_FLOOR) and differ:
                said = f"no key closer than {100 * whole:.1f} %" if whole > 0 else "no key covering it"
                if part:
                    said += (f" ({self._key_name(h.top)} matches {100 * float(h.identities[0]):.1f} % over only "
                             f"{h.overlap(self.ref_lengths_)} of its {h.query_length} bases)")
                out[k] = (f"chimeric barcode: its first third matches {self._key_name(p5)} at {100 * i5:.1f} % "
                          f"identity, its last third {self._key_name(p3)} at {100 * i3:.1f} %, the whole read "
                          f"{said}: two specimens' DNA in one read (a PCR chimera or a mixed well); not named from "
                          "DNA and not a candidate species — sequence it again")
        return out

    def _key_name(self, position: int) -> str:
        """A key as a reviewer reads it: its deepest name, its family and its processid."""
        lin = self.ref_lineages_[position]
        family = lin[RANKS.index("family")]
        return f"{next((x for x in reversed(lin) if x), '?')} ({family}, {self.ref_ids_[position]})"

    def set_level(self, level: float) -> None:
        """Name at ``level`` from now on (P(right) a rank needs; recorded with every run)."""
        import dataclasses

        if not 0.5 < float(level) <= 1.0:
            raise InputError(f"level must be in (0.5, 1], got {level}")
        naming = dataclasses.replace(self.config.naming, level=float(level))
        self.config = dataclasses.replace(self.config, naming=naming)

    def _top_similarity(self, seqs: Sequence[str], hits: Sequence[Hits]) -> np.ndarray:
        """k-mer profile cosine of each query to its best-identity key (the retrieval score, for the record)."""
        out = np.zeros(len(seqs), dtype=np.float32)
        have = [i for i, h in enumerate(hits) if h.top >= 0]
        if have:
            # each distinct barcode (query or key) is embedded once: a collection repeats barcodes and
            # many queries share a best key; the rows multiplied are the same ones, so the same values
            pairs = [(seqs[i], self.ref_seqs_[hits[i].top]) for i in have]
            row: dict[str, int] = {}
            for query_seq, key_seq in pairs:
                row.setdefault(query_seq, len(row))
                row.setdefault(key_seq, len(row))
            prof = self.reference_.embedder.embed_dna(list(row))
            q = prof[[row[a] for a, _ in pairs]]
            k = prof[[row[b] for _, b in pairs]]
            out[have] = (q * k).sum(axis=1)
        return out

    def add_references(self, specimens: Sequence[Specimen]) -> int:
        """Add keys for this session (e.g. members of accepted provisional species); returns how many.

        Why not refit: the naming model's features are relative to the reference
        (identities, the taxon's size, internal distances with a rank prior for new
        taxa), so it stays valid for new keys of the same kind; a specimen close to an
        accepted candidate is then named as that provisional species instead of
        being proposed again. Keys already in the reference (same processid) are
        skipped; nothing is saved to the bundle.
        """
        self._check_fitted()
        have = set(self.ref_ids_)
        new = [s for s in specimens if s.processid not in have
               and _usable(s.dna_barcode, self.config.min_barcode_length) and s.deepest_label]
        if not new:
            return 0
        added = self.reference_.add([s.processid for s in new], [_barcode(s) for s in new],
                                    [s.ranks() for s in new], [s.country for s in new])
        self._session_keys = getattr(self, "_session_keys", 0) + added  # the last keys: not the reference's coverage
        return added

    @property
    def novelty_threshold(self) -> float:
        """P(species absent) at or above which a specimen is flagged novel (recorded with each run)."""
        return float(self.config.novelty_threshold)

    def _check_fitted(self) -> None:
        if not hasattr(self, "naming_"):
            raise NotFittedError("DiscoveryModel is not fitted; call fit() or load()")

    # -- persistence -------------------------------------------------------------------
    def save(self, bundle_dir: Any, *, fingerprint: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
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
        if fingerprint is not None and bundle.config.get("kind") == "dna-kmer":
            # a DNA-only bundle's data record is its reference's: an engine refitted in place (no --force) showed
            # the first build's keys, seed and count beside the new engine's (a trained bundle's record is the
            # encoders' training data, and stays)
            bundle.set_section("data_fingerprint", fingerprint)
        gap = self.barcode_gap_
        bundle.save_table(ENGINE_TABLE, {
            "format": ENGINE_FORMAT, "config": self.config.to_dict(), "naming": self.naming_.to_dict(),
            "index_kind": self.index_.kind_, "barcode_gap": gap.to_dict() if gap is not None else None,
            "null_identity": getattr(self, "null_identity_", None),
            "set_aside": sorted(getattr(self, "set_aside_", None) or ()),
        })
        self.reference_.save(bundle, REFERENCE_TABLE)
        sim = getattr(self.naming_, "simulated_", None)
        if sim is not None:
            sim.save(bundle, SIMULATION_TABLE)
        else:  # a model loaded from a bundle built before: no stale calls of another fit left beside it
            for kind, name in (("tables", SIMULATION_TABLE), ("arrays", f"{SIMULATION_TABLE}_codes"),
                               ("arrays", f"{SIMULATION_TABLE}_values")):
                bundle.remove(kind, name)
        audit = getattr(self, "audit_", None)
        if audit is not None:
            bundle.save_table(AUDIT_TABLE, [s.to_dict() for s in audit])
        refused = getattr(self, "refused_", None)
        if refused:
            bundle.save_table(REFUSED_TABLE, [r.to_dict() for r in refused])
        else:
            bundle.remove("tables", REFUSED_TABLE)
        bundle.remove("arrays", INDEX_ARRAY)  # a format-2 engine's index, replaced by the reference's
        naming = self.naming_
        bundle.set_section("discovery", {
            "reference": fingerprint,  # what this engine's keys were, whatever bundle it was written into
            "engine_format": ENGINE_FORMAT, "reference_keys": len(self.reference_), "index_kind": self.index_.kind_,
            "level": self.config.naming.level, "support": naming.support_,
            "first_key": "containment" if self.config.containment_first else "cosine",
            "collection_weight": self.config.naming.collection_weight,
            "expected": naming.expected_.get(f"{self.config.naming.level}"),
            "barcode_gap": None if gap is None else {"threshold": gap.threshold_, "linkage": gap.linkage_,
                                                     "ami": gap.score_},
            "audit": getattr(self, "audit_summary_", None)})
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
            fmt = int(state["format"])
            if fmt > ENGINE_FORMAT:
                raise ModelBundleError(f"{where} format {fmt} is newer than supported; upgrade biodiscover")
            if fmt < ENGINE_FORMAT:
                raise ModelBundleError(f"{where} format {fmt} predates the naming model learned from the "
                                       "reference; rebuild it with `biodiscover build-reference`")
            self = cls(EngineConfig.from_dict(state["config"]))
            self.naming_ = NamingModel.from_dict(state["naming"])
            # none: a bundle built before they were kept (its forecast at a collection's own shares is not available)
            self.naming_.simulated_ = SimulatedCalls.load(bundle, SIMULATION_TABLE)
            gap = state.get("barcode_gap")
            if gap is not None:
                from biodiscover.discovery.clustering import BarcodeGapThreshold

                self.barcode_gap_ = BarcodeGapThreshold.from_dict(gap)
            else:
                self.barcode_gap_ = None
            # absent: a bundle built before keys were set aside (its naming model was fitted on every key)
            aside = state.get("set_aside", [])
            if not isinstance(aside, list) or not all(isinstance(p, str) for p in aside):
                raise TypeError(f"set_aside must be a list of processids, got {type(aside).__name__}")
            self.set_aside_ = frozenset(aside)
            null = state.get("null_identity")  # None: a bundle built before it (no homology check)
            self.null_identity_ = None if null is None else [(int(a), float(b)) for a, b in null]
            numbers = [self.config.naming.level, self.config.novelty_threshold,
                       *(b for _, b in self.null_identity_ or ()),
                       *(b.baseline_ for m in self.naming_.models_.values() for pair in m.members_ for b in pair)]
            if not all(isinstance(v, float) and np.isfinite(v) for v in numbers):
                raise ValueError(f"non-finite settings {numbers}")
        except ModelBundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelBundleError(f"{where} table is malformed ({type(exc).__name__}: {exc})") from None
        self.reference_ = Reference.load(bundle, REFERENCE_TABLE, batch_size=self.config.batch_size)
        # None: a bundle built before the audit, not audited (``info`` says so)
        self.audit_ = audit_rows(bundle)
        # none: a bundle built before refused rows were kept, so triage cannot say a candidate met one
        self.refused_ = _table_rows(bundle, REFUSED_TABLE, RefusedKey.from_dict, "refused reference rows") or []
        self._self_check(where)
        return self

    def _self_check(self, where: str) -> None:
        """Triage the first reference key: shapes that do not fit together fail here, not in a user's run."""
        probe = Specimen(processid="bundle-self-check", dna_barcode=self.reference_.sequences[0])
        try:
            (r,) = self.triage([probe])
            values = [r.novelty, r.identity, r.top_similarity, *r.confidence.values(),
                      *(v for v in r.p_absent.values() if v is not None)]
            if not all(np.isfinite(v) for v in values):
                raise ValueError(f"non-finite output {values}")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelBundleError(f"{where} failed its self-check ({type(exc).__name__}: {exc})") from None
