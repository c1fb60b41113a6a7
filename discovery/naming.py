"""Calibrated naming: per rank, P(label right) and P(taxon absent from the reference).

Why this model (PROTAX's idea: Somervuo et al. 2016; FinPROTAX 2022; PROTAX-GPU 2024):
a threshold fitted on whatever calibration split a dataset happens to have is a
fact about that dataset — on a new order it named half as many known species, and
an order absent from the reference was named anyway. So the naming model is
trained on queries **simulated from the reference itself**: reference specimens
searched with their own clade left out, at every rank (order included), drawn
across the whole reference, plus leave-one-barcode-out queries of present species
and, where the keys say where they were collected, the same species met from another
country (its keys from the query's own country left out), and left-out species met
without their relatives from their own country.
Calibration splits and other_heldout, when a user has them, are extra examples,
not the only ones. Whatever reference a user brings, the model is fitted to it.

Per query the search gives its candidate keys with exact identities (``Hits``).
At each rank the label is the best-identity key's taxon (consistent down the
ranks), and per rank two boosted-tree models (``RankModel``) give
P(absent: the true taxon is not in the reference at this rank) and P(right |
present), hence P(right), P(wrong: the true taxon is in the reference under
another name) and P(absent), from features that mean the same thing in any
reference (``FEATURES``):

* ``log_distance`` — log(1 − identity + ε) of the best key;
* ``log_margin`` — how much farther (log-distance ratio) the best key of another
  taxon at this rank is (``has_other`` = 0 when no candidate has another name);
* ``agreement`` — share of candidate species within 2 % identity of the best
  that carry the chosen name;
* ``vs_within`` — the distance against the chosen taxon's own internal distance
  (how far its members lie from their nearest relative in another child taxon,
  or for a species, another barcode): closer than that looks like a member;
* ``vs_siblings`` — the distance against the parent taxon's internal distance
  (how far sibling taxa lie from each other): farther than a typical sibling
  looks like a new sibling;
* ``single`` — the chosen taxon has no internal-distance estimate (one child in
  the reference): its own spread is unknown, ``vs_within`` uses the rank's mean;
* ``log_keys`` — log(1 + keys of the chosen taxon);
* ``overlap`` — informative bases shared with the best key / 600 (a 100 %
  identity over a 150-nt fragment is weak evidence).

Internal distances are learned from the same simulation (each left-out query's
distance to its nearest remaining relative), shrunk toward the rank's mean and
left out for the query that produced them.

How finely each rank's trees may cut (trees, learning rate, fewest examples a leaf holds) is chosen
per reference and rank, from ``NamingConfig.settings``, by the out-of-fold log-loss of the simulated
queries (two folds by left-out taxon): the reference decides, not a constant tuned on one dataset. On
the dev orders the old fixed setting (100 / 0.1 / 30) was too coarse: mid-range P(right) at genus and
family came out right far more often than it said, so absent species were rarely given their genus.

Priors: each rank's model is fitted with equal total weight on "present at this
rank" and "absent at this rank" examples (``absent_prior``). P(right) is thus a
posterior under even odds that a specimen's taxon is missing from the reference,
and a decision level L bounds over-classification: among specimens whose taxon is
absent, at most (1 − L)/L pass (Markov on the likelihood ratio; 2 % at L = 0.98).
The simulation, predicted out of fold, gives the expected TP / UC / MC / OC at any
level (``expected_``), which ``build-reference`` prints and ``evaluate`` checks.

A collection is then read at its own odds (``collection_prior``; Saerens et al. 2002):
the share of its specimens absent at each rank is estimated from their P(absent) by
EM, pulled toward even odds by ``collection_weight`` pseudo-specimens (one 96-well
plate), and each specimen's P(absent) is moved to it by Bayes' rule on the odds;
P(right | present) is kept. A plate of a well-known fauna has few absent families,
and at even odds its families read P(right) 0.9 where 0.99 is right; a collection
of mostly new species gets more caution, not less. Over a whole collection, never
chunk by chunk (``DiscoveryModel.adapt``). Queries a cut-off rank refuses (an order
the reference lacks) keep even odds and do not count (``NamingModel.placed``).

Decision (``deepest_confident``): walk from order to species; a blank label is
skipped (no evidence, no gate); a rank is named when P(right) ≥ level; a failing
rank stops the walk unless optional (subfamily: often blank or inconsistent in
BOLD). P(right) is made non-increasing down the walk by raising each rank to the
largest P(right) of the non-optional ranks below it (a right genus implies a right
family; ``_monotone`` says why not capping), and P(absent) non-decreasing (an absent
family has no genus in the reference; P(wrong) gives way, so nothing named moves).
Novelty = P(species absent), the largest P(absent) of the labelled ranks: a specimen
named to species at a level above 0.5 is never flagged novel.

A rank the reference cannot train — fewer than ``min_sim_taxa`` taxa can be left
out at it (one order only; a genus-less reference) — falls back to a published
conservative COI identity cut-off (BOLDigger3's 85/90/95/97 % for order / family /
genus / species; 92 % for subfamily, between its neighbours) where the near-best
candidates agree, and, where the reference holds at least two such taxa, only above
the identities its own simulated absent-at-that-rank queries reach (``fallback_right``:
with two orders, a third order's specimens lie as close to them as either lies to the
other). With a single taxon at the rank (a reference of one order) nothing can be left out
there, and the nearest rank below stands in: an order the reference lacks is taken to lie at
least as far from it as a left-out family does (the published 85 % alone gave "Coleoptera" to
64 % of the dev Diptera and Lepidoptera triaged against the dev Coleoptera). ``support_`` says
so; ``build-reference`` and ``info`` print it. Never a silent fixed cut.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

from biodiscover.discovery.jsonmodels import JsonBoosting
from biodiscover.storage.evidence import beyond_cutoff_words, cutoff_phrase
from biodiscover.storage.records import RANK_PLURALS, RANKS, plural

log = logging.getLogger(__name__)

Lineage = tuple[str | None, ...]  # one label per rank in RANKS order
#: what FeatureMaker.features returns for one query: (top lineage, per rank a feature vector or None)
FeatureRow = tuple[Lineage, list[np.ndarray | None]]
OUTCOMES: tuple[str, ...] = ("right", "wrong", "absent")
FEATURES: tuple[str, ...] = ("log_distance", "log_margin", "has_other", "agreement", "vs_within", "vs_siblings",
                             "single", "log_keys", "overlap")
AGREEMENT = FEATURES.index("agreement")
SPECIES = len(RANKS) - 1  # the species' index in a lineage
OVERLAP = FEATURES.index("overlap")
#: monotonic constraints per feature: P(absent) rises with the distance, and with the distance against the
#: taxon's own and its siblings' spread; P(right | present) falls with the distance, rises with the margin
#: and the agreement. The rest is learned free.
MONOTONIC_ABSENT: tuple[int, ...] = (1, 0, 0, 0, 1, 1, 0, 0, 0)
MONOTONIC_RIGHT: tuple[int, ...] = (-1, 1, 0, 1, 0, 0, 0, 0, 0)
#: conservative published COI identity cut-offs for ranks a reference cannot train (BOLDigger3 defaults;
#: subfamily between family and genus)
PUBLISHED_CUTOFFS: dict[str, float] = {"order": 0.85, "family": 0.90, "subfamily": 0.92, "genus": 0.95,
                                       "species": 0.97}
EPS = 0.002  # ≈ 1 nt in 500: identity 1.0 is not infinitely close
#: identities closer than this are one identity (the engine's ``_tie_note``, ``_session_ties``): the same bases
#: matched, floats apart
TIE_TOLERANCE = 1e-9
AGREEMENT_WINDOW = 0.02
#: a reason names another taxon as a rival when its best key comes this close to the best identity
RIVAL_WINDOW = 0.015
OVERLAP_FULL = 600
ROOT = "__root__"  # the parent of the orders
LEVEL_GRID: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)


def log_distance(identity: float | np.ndarray) -> float | np.ndarray:
    """log(1 − identity + ε): distances compare by ratio across clades."""
    return np.log(np.clip(1.0 - np.asarray(identity, dtype=np.float64), 0.0, 1.0) + EPS)



def fallback_right(rank: str, top_identity: np.ndarray, agreement: np.ndarray,
                   absent_identities: Sequence[float] | None = None,
                   support: np.ndarray | None = None) -> np.ndarray:
    """P(right) at a rank the reference cannot train: 0 below the published COI cut-off or where the
    near-best candidates disagree, else the share of the reference's own simulated absent-at-this-rank
    queries whose best identity lies below this one (1 where the reference has none to simulate).

    Why the agreement: every candidate species within ``AGREEMENT_WINDOW`` of the best must carry the
    same label (SINTAX's consistency, in one look). Why the simulated identities: a COI identity means
    different things in different clades; on a two-order reference the published 85 % order cut-off
    gave an order to 6–19 % of a third order's specimens (their identities to the wrong order: 85–88 %),
    while leaving either reference order out shows how close an absent order comes to the other one.
    With a level L, a rank is then named only above the L-quantile of those identities: at most 1 − L
    of absent taxa pass, the same bound the learned ranks give. Those simulated identities come from
    few pairs of taxa (two orders: two), so the name must also hold when the evidence is resampled:
    P(right) is at most the SINTAX-style bootstrap ``support`` of the label (``Hits.support``); on
    the leave-out-Coleoptera fold that took the third order's specimens given an order from 65 of
    1,500 to 14 without costing a known specimen its order."""
    top = np.asarray(top_identity, dtype=np.float64)
    ok = (top >= PUBLISHED_CUTOFFS[rank]) & (np.asarray(agreement) >= 1.0)
    conf = ok.astype(float)
    if absent_identities is not None and len(absent_identities):
        ref = np.sort(np.asarray(absent_identities, dtype=np.float64))
        conf = np.where(ok, np.searchsorted(ref, top, side="left") / len(ref), 0.0)
    if support is not None:
        conf = np.minimum(conf, np.asarray(support, dtype=np.float64))
    return conf


@dataclass(frozen=True)
class Hits:
    """One query's candidate keys (positions into the reference), best identity first."""

    positions: np.ndarray  # int64
    identities: np.ndarray  # float64
    query_length: int  # informative (non-N) bases of the query
    #: each candidate's share of SINTAX-style bootstrap wins (``Reference.bootstrap``); None: not computed
    #: (the engine computes it only where a rank decided by the published cut-off has rival labels)
    wins: np.ndarray | None = None
    #: informative bases the query shares with the best key (``storage.distance.shared_identity``); None:
    #: not measured, taken as the shorter of the two reads (hits built without the barcodes at hand)
    top_overlap: int | None = None

    @classmethod
    def empty(cls, query_length: int) -> "Hits":
        """No candidate at all, for a query of ``query_length`` informative bases (never unknown: every
        query's length is counted before it is searched)."""
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), query_length)

    @property
    def top(self) -> int:
        return int(self.positions[0]) if len(self.positions) else -1

    def overlap(self, key_lengths: np.ndarray) -> int:
        """Informative bases shared with the best key (0 without one): what the identity was measured on."""
        if self.top < 0:
            return 0
        if self.top_overlap is not None:
            return self.top_overlap
        return min(self.query_length, int(key_lengths[self.top]))

    def support(self, lineages: Sequence[Lineage], k: int) -> float:
        """Bootstrap support of the best key's label at rank index ``k``: the share of wins of the
        candidates carrying it (1 when not computed: every candidate agreed)."""
        if self.wins is None or not len(self.positions):
            return 1.0
        label = lineages[self.top][k]
        return float(sum(w for j, w in zip(self.positions, self.wins) if lineages[int(j)][k] == label))


def _session_ties(hits: Sequence[Hits], lineages: Sequence[Lineage], built: int,
                   probs: dict[str, dict[int, np.ndarray]], full: dict[int, dict[str, tuple[float, float, float]]]
                   ) -> None:
    """In place: at a rank where a key added for the session (position ``built`` on) and a reference key tie at a
    query's best identity (within ``TIE_TOLERANCE``) under different labels, P(right) is at most one over the
    labels tied there; what it gives up goes to P(wrong) (P(absent) is kept).

    Why: a barcode one reviewer's decision files under one taxon and the reference under another is evidence for
    neither over the other. A reviewer moved a fly candidate into Hemiptera and accepted it: the members' barcodes,
    session keys now, tie with the reference's fly keys, and the next triage named 26 of 40 such specimens "order
    Hemiptera" at 0.99 and 9 "Hemiptera gen. sp. BD-0001" at 0.98–0.99; two whose best key was the fly's were named
    the fly species at 0.999 (e34 attack R2, on the demo: ``benchmarks/bench_review_ties.py``). The rank models
    never met a tie across orders or families (a simulated query's rivals are other taxa's keys, never the same
    barcode), so margin 0 there reads like any small margin. Two reference keys tied under two species keep the
    rule they had ("Two species, one barcode", RESULTS-discovery.md): that is BOLD's shared BINs, not a reviewer's
    decision against the reference; so do a reviewer's key and a reference key of two species of one genus (a
    species named by its first key, the tie said). Where a genus or any rank above it disagrees, the rule here holds
    down to species."""
    for i, h in enumerate(hits):
        if not len(h.positions):
            continue
        tied = [int(j) for j in h.positions[h.identities >= h.identities[0] - TIE_TOLERANCE]]
        if not (any(j >= built for j in tied) and any(j < built for j in tied)):
            continue
        for k, rank in enumerate(RANKS):
            # keys disagree at a rank when some rank down to it, above species, names both and names them
            # differently (a session key of another order with its family blank disagrees with a reference key's
            # family too); two species of one genus keep the rule of two species, one barcode
            added = {lineages[j][:k + 1] for j in tied if j >= built}
            held = {lineages[j][:k + 1] for j in tied if j < built}
            if not any(_disagree(a[:SPECIES], b[:SPECIES]) for a in added for b in held):
                continue
            cap = 1.0 / len(added | held)
            p = probs[rank].get(i)
            if p is not None and p[0] > cap:
                probs[rank][i] = np.array([cap, float(p[1]) + float(p[0]) - cap, float(p[2])])
            q = full.get(i, {}).get(rank)
            if q is not None and q[0] > cap:
                full[i][rank] = (cap, q[1] + q[0] - cap, q[2])


def _disagree(a: Lineage, b: Lineage) -> bool:
    """Whether two lineages name some rank both label differently."""
    return any(x and y and x != y for x, y in zip(a, b))


def deepest_confident(labels: Mapping[str, str | None], confidence: Mapping[str, float], level: float,
                      optional_ranks: Sequence[str] = ("subfamily",)) -> str | None:
    """The deepest rank of the top-down walk whose P(right) passes ``level`` (see module docstring)."""
    deepest = None
    for rank in RANKS:
        if not labels.get(rank):
            continue
        if confidence.get(rank, 0.0) >= level:
            deepest = rank
        elif rank not in optional_ranks:
            break
    return deepest


def stopped_at(labels: Mapping[str, str | None], confidence: Mapping[str, float], level: float,
               optional_ranks: Sequence[str] = ("subfamily",)) -> str | None:
    """The rank that ended :func:`deepest_confident`'s walk: the first labelled rank, not optional, whose P(right)
    is under ``level`` (None: none did). The rank a reason names (``NamingModel.explain``), and the one whose
    stored value a photograph may have moved (``multimodal.combine_results`` says so: e35 week-2 review F8)."""
    return next((r for r in RANKS if labels.get(r) and r not in optional_ranks and confidence.get(r, 0.0) < level),
                None)


def shift_prior(p_absent: np.ndarray, old: float, new: float) -> np.ndarray:
    """P(absent) under a prior share ``new`` of absent taxa, from P(absent) under ``old``: Bayes' rule
    changes only the prior odds, so the posterior odds scale by (new / (1 − new)) / (old / (1 − old))."""
    p = np.clip(np.asarray(p_absent, dtype=np.float64), 0.0, 1.0)
    shifted: np.ndarray = _shifted(p, _odds_ratio(old, new))
    return shifted


def _odds_ratio(old: float, new: float) -> float:
    return (new / (1.0 - new)) / (old / (1.0 - old))


def _shifted(p: Any, ratio: float) -> Any:
    """``shift_prior``'s Bayes step on an array or one float (``decide`` reads one value per specimen)."""
    return ratio * p / np.maximum(ratio * p + 1.0 - p, 1e-300)


def collection_prior(p_absent: np.ndarray, prior: float, weight: float, tol: float = 1e-9,
                     max_iter: int = 1000, toward: float | None = None) -> float:
    """The share of a collection's specimens whose taxon is absent at a rank, estimated from the
    collection itself: the EM of Saerens, Latinne & Decaestecker (2002, Neural Computation 14:21),
    which re-weighs each specimen's P(absent) (given under ``prior``) to the current estimate and
    averages, with ``weight`` pseudo-specimens at ``prior`` added (a MAP estimate under a Beta prior).

    Why: each rank's model is fitted at even odds that a taxon is absent (``absent_prior``), but a
    collection's mix is what it is — a plate of a well-barcoded fauna holds few absent families, a
    tropical Malaise trap many absent species. At even odds, P(right) of the families of a plate
    where none is absent reads 0.9 where 0.99 is right, and absent species are kept from genera
    they plainly belong to. The pseudo-specimens keep a small batch (one specimen: the
    simulation's odds, moved by 1 %) from deciding its own prior.

    ``toward``: the share the pseudo-specimens hold (default ``prior``, the simulation's odds): the share of
    earlier plates of the same series (``pooled_share``) when the collection is one week of a season. Why:
    at even odds the pseudo-specimens pull a small plate's estimate further from the truth than a big one's
    (a Norwegian season, 6 % of its specimens in a new genus: each week of 200–380 read a species share of
    18–20 %, the four weeks as one plate 11 %), so the same barcode at the same identity was named to species
    in one week and to its genus in the next (RESULTS-tui.md, "A taxonomist's season", F7).
    """
    a = np.clip(np.asarray(p_absent, dtype=np.float64), 0.0, 1.0)
    centre = prior if toward is None else min(max(float(toward), 1e-4), 1.0 - 1e-4)
    if not len(a):
        return centre
    pi = centre
    for _ in range(max_iter):
        new = (float(shift_prior(a, prior, pi).sum()) + weight * centre) / (len(a) + weight)
        new = min(max(new, 1e-4), 1.0 - 1e-4)  # odds stay finite: a shift is never to certainty
        if abs(new - pi) < tol:
            return new
        pi = new
    return pi


def pooled_share(bases: Iterable[Mapping[str, Sequence[float]]], prior: float, weight: float) -> dict[str, float]:
    """Per rank, the share of absent taxa over several collections, from each one's ``collection_basis`` (rank →
    [its own share, estimated without pseudo-specimens; the specimens it rests on]), as ``collection_prior``
    would estimate it over all of them at once (a MAP with ``weight`` pseudo-specimens at ``prior``), to the
    first order: the specimens' own shares are averaged by count. What the next plate of a season is pulled
    toward instead of even odds (``collection_prior``'s ``toward``); empty: no basis at any rank."""
    total: dict[str, float] = {}
    count: dict[str, float] = {}
    for basis in bases:
        for r, (share, n) in basis.items():
            total[r] = total.get(r, 0.0) + float(share) * float(n)
            count[r] = count.get(r, 0.0) + float(n)
    return {r: round((total[r] + weight * prior) / (count[r] + weight), 6) for r in total if count[r] + weight > 0}


@dataclass(frozen=True)
class NamingConfig:
    """Settings of the naming model (stored in the bundle)."""

    #: P(right) a rank needs to be named (the user's level; must exceed 0.5 so naming and novelty agree)
    level: float = 0.98
    optional_ranks: tuple[str, ...] = ("subfamily",)
    #: prior weight of "absent at this rank" in each rank's model (0.5 = even odds)
    absent_prior: float = 0.5
    #: share of the absent weight on specimens absent exactly at the rank (the rest: absent higher up)
    exact_share: float = 0.8
    sim_present_per_species: int = 2
    #: each present query of a species that has keys from another country is searched a second time with
    #: every key of its species from its own country left out (``plan_simulation``): a collection meets a
    #: known species from another part of its range, where its own population is not among the keys (off: no
    #: query of either side is met from elsewhere, ``sim_absent_elsewhere_ranks`` included)
    sim_present_elsewhere: bool = True
    #: ranks whose left-out taxa are, with ``sim_present_elsewhere``, also searched without their parent's keys
    #: from the query's own country (``_country_kin``): absent taxa met from elsewhere
    sim_absent_elsewhere_ranks: tuple[str, ...] = ("species",)
    sim_max_present: int = 3000
    sim_queries_per_rank: int = 900
    sim_per_taxon: int = 3
    #: a rank needs left-out examples of at least this many taxa to be learned (else published cut-off):
    #: leaving one of two orders out leaves a single order, so every simulated absent-order query
    #: meets hits of one order only and the model never sees the choice a real absent order makes
    #: between two (on the leave-one-order-out folds a 2-order model named 35 % of the third order)
    min_sim_taxa: int = 3
    #: pseudo-count pulling a taxon's internal distance toward its rank's mean
    shrink: float = 1.0
    #: boosted trees per model, their learning rate, and the fewest examples a leaf may hold
    trees: int = 100
    learning_rate: float = 0.1
    min_leaf: int = 30
    #: other (trees, learning_rate, min_leaf) settings tried per rank; the one with the lowest out-of-fold
    #: log-loss on the simulated queries (``folds`` by group) is kept (``NamingModel.tuning_``). None by
    #: default: on every dev order that loss chose the default setting at every rank (RESULTS-discovery.md)
    alternatives: tuple[tuple[int, float, int], ...] = ()
    #: folds (by group) of the out-of-fold predictions that choose the setting and forecast ``expected_``
    folds: int = 2
    #: boosted-tree pairs per rank, each on a bootstrap of the simulated groups, averaged (``RankModel``)
    bags: int = 1
    seed: int = 0
    #: the collection's own share of absent taxa (``collection_prior``) replaces the simulation's even odds,
    #: weighed against this many pseudo-specimens at those odds: one 96-well plate (95 specimens and a
    #: control) must be triaged before a collection's own mix counts as much as the simulation's. None:
    #: P(absent) stays at the simulation's odds (bundles written before)
    collection_weight: float | None = 96.0

    def __post_init__(self) -> None:
        if not 0.5 < self.level <= 1.0:
            raise ValueError(f"level must be in (0.5, 1], got {self.level}")
        if not 0.0 < self.absent_prior < 1.0:
            raise ValueError(f"absent_prior must be in (0, 1), got {self.absent_prior}")
        if self.collection_weight is not None and not (math.isfinite(self.collection_weight)
                                                       and self.collection_weight >= 0):
            raise ValueError(f"collection_weight must be a finite number >= 0 or None, got {self.collection_weight}")

    @property
    def settings(self) -> tuple[tuple[int, float, int], ...]:
        """Every (trees, learning_rate, min_leaf) tried per rank, the configured one first."""
        first = (self.trees, self.learning_rate, self.min_leaf)
        return (first, *(a for a in self.alternatives if tuple(a) != first))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optional_ranks"] = list(self.optional_ranks)
        d["sim_absent_elsewhere_ranks"] = list(self.sim_absent_elsewhere_ranks)
        d["alternatives"] = [list(a) for a in self.alternatives]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NamingConfig":
        d = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("optional_ranks", "sim_absent_elsewhere_ranks"):
            if key in d:
                d[key] = tuple(d[key])
        # a bundle before the alternatives was fitted with its one setting
        d["alternatives"] = tuple((int(t), float(lr), int(m)) for t, lr, m in d.get("alternatives", ()))
        d.setdefault("collection_weight", None)  # a bundle before: P(absent) at the simulation's odds
        return cls(**d)


@dataclass
class SimQuery:
    """A reference specimen searched as if it were a query (see ``plan_simulation``)."""

    position: int  # the key used as query (-1 for extra, non-key specimens)
    #: what its search leaves out: ``(rank index, taxon)`` (a clade) or key positions (its own barcode)
    exclude: tuple[int, str] | np.ndarray | None
    truth: Lineage
    scenario: str  # "present" or "absent:<rank>" (the shallowest rank whose taxon was left out)
    group: str  # unit of cross-validation: the left-out taxon or the query's species
    present: tuple[bool, ...] = ()  # per rank: truth taxon still has keys (filled by plan_simulation)
    sequence: str | None = None  # extra specimens carry their own barcode
    #: searched as if met from another country: its own country's keys of its species (present) or of its
    #: left-out taxon's parent (absent) left out too (``plan_simulation``)
    elsewhere: bool = False


@dataclass
class SimulatedCalls:
    """Per query the naming model was fitted on (simulated and extra labelled), what deciding it again at another
    share of absent taxa needs (``NamingModel.expected_at``): its scenario, group and truth (``SimQuery``), the
    labels of its best key, its best identity (``NamingModel.placed`` reads it), and per rank (P(right), P(wrong),
    P(absent)) at the simulation's odds, out of fold where it was a training example (NaN: no label there).

    Why kept: ``expected_`` is at even odds that a taxon is absent, but triage decides each collection at its own
    estimated share, so the same test_unseen specimens measured 0.496 of absent species named to the right genus in
    one collection and 0.634 in another, against one forecast of 0.351 (ML review M2): the figure a user can check
    is the forecast at the collection's shares, and it needs each query's three probabilities, not only P(right)."""

    scenarios: list[str]
    groups: list[str]
    truths: list[Lineage]
    tops: list[Lineage]
    identities: np.ndarray  # (n,)
    probs: np.ndarray  # (n, len(RANKS), len(OUTCOMES))

    def __len__(self) -> int:
        return len(self.scenarios)

    def queries(self) -> list[SimQuery]:
        """The queries as ``_outcomes`` counts them (scenario, group, truth; what their search left out is gone)."""
        return [SimQuery(-1, None, t, sc, g) for sc, g, t in zip(self.scenarios, self.groups, self.truths)]

    def outcomes(self, i: int) -> dict[str, tuple[float, float, float] | None]:
        """Query ``i``'s per-rank outcomes as ``NamingModel.outcomes`` gives a triaged specimen's."""
        row = self.probs[i]
        return {r: None if np.isnan(row[k, 0]) else (float(row[k, 0]), float(row[k, 1]), float(row[k, 2]))
                for k, r in enumerate(RANKS)}

    def save(self, bundle: Any, prefix: str) -> None:
        """Write into ``bundle`` under ``prefix``: codes and probabilities as arrays, the names as one small table
        (a bundle never unpickles)."""
        from biodiscover.discovery.reference import encode_lineages

        codes, vocab = encode_lineages([*self.truths, *self.tops])
        n = len(self)
        scen, grp = sorted(set(self.scenarios)), sorted(set(self.groups))
        si, gi = {x: i for i, x in enumerate(scen)}, {x: i for i, x in enumerate(grp)}
        head = np.array([[si[a], gi[b]] for a, b in zip(self.scenarios, self.groups)], dtype=np.int32).reshape(n, 2)
        bundle.save_array(f"{prefix}_codes", np.hstack([head, codes[:n], codes[n:]]).astype(np.int32))
        bundle.save_array(f"{prefix}_values", np.hstack([self.identities.reshape(n, 1),
                                                         self.probs.reshape(n, -1)]).astype(np.float64))
        bundle.save_table(prefix, {"format": 1, "n": n, "ranks": list(RANKS), "outcomes": list(OUTCOMES),
                                   "vocab": vocab, "scenarios": scen, "groups": grp})

    @classmethod
    def load(cls, bundle: Any, prefix: str) -> "SimulatedCalls | None":
        """The calls saved under ``prefix``; None where the bundle has none (built before they were kept). A table
        that does not fit its arrays raises ``ValueError`` (the engine's loader makes it a ``ModelBundleError``)."""
        from biodiscover.discovery.reference import decode_lineages

        if prefix not in bundle.names("tables"):
            return None
        meta = bundle.load_table(prefix, expect=dict)
        n, R = meta["n"], len(RANKS)
        if not isinstance(n, int) or n < 0 or list(meta["ranks"]) != list(RANKS) \
                or list(meta["outcomes"]) != list(OUTCOMES):
            raise ValueError(f"simulated calls: {n!r} queries over ranks {meta['ranks']}")
        vocab = {r: [str(x) for x in meta["vocab"][r]] for r in RANKS}
        scen, grp = [str(x) for x in meta["scenarios"]], [str(x) for x in meta["groups"]]
        codes = np.asarray(bundle.load_array(f"{prefix}_codes", dtype=np.int32, shape=(n, 2 + 2 * R)))
        values = np.asarray(bundle.load_array(f"{prefix}_values", dtype=np.float64, shape=(n, 1 + R * len(OUTCOMES))))
        limits = [len(scen), len(grp), *(len(vocab[r]) for r in RANKS), *(len(vocab[r]) for r in RANKS)]
        if n and ((codes.min(axis=0) < [0, 0, *[-1] * 2 * R]).any() or (codes.max(axis=0) >= limits).any()):
            raise ValueError("simulated calls: codes outside their vocabularies")
        probs = values[:, 1:].reshape(n, R, len(OUTCOMES))
        if not np.isfinite(values[:, 0]).all() or ((probs < 0) | (probs > 1)).any():
            raise ValueError("simulated calls: identities or probabilities out of range")
        lins = decode_lineages(np.vstack([codes[:, 2:2 + R], codes[:, 2 + R:]]), vocab)
        return cls([scen[i] for i in codes[:, 0]], [grp[i] for i in codes[:, 1]], lins[:n], lins[n:],
                   values[:, 0].copy(), probs.copy())


# -- internal distances ------------------------------------------------------------------------------
@dataclass
class TaxonSpread:
    """Internal log-distance of taxa, rank by rank (sums and counts; JSON state)."""

    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, rank: str, taxon: str, value: float) -> None:
        self.sums.setdefault(rank, {})
        self.counts.setdefault(rank, {})
        self.sums[rank][taxon] = self.sums[rank].get(taxon, 0.0) + value
        self.counts[rank][taxon] = self.counts[rank].get(taxon, 0) + 1

    def rank_mean(self, rank: str) -> float:
        n = sum(self.counts.get(rank, {}).values())
        return self.sums_total(rank) / n if n else float(log_distance(0.9))

    def sums_total(self, rank: str) -> float:
        return float(sum(self.sums.get(rank, {}).values()))

    def value(self, rank: str, taxon: str | None, shrink: float, own: float | None = None) -> tuple[float, bool]:
        """(shrunk mean log-distance, whether the taxon had its own estimate), leaving ``own`` out."""
        s = self.sums.get(rank, {}).get(taxon or "", 0.0)
        n = self.counts.get(rank, {}).get(taxon or "", 0)
        if own is not None and n:
            s, n = s - own, n - 1
        prior = self.rank_mean(rank)
        if n <= 0:
            return prior, False
        return (s + shrink * prior) / (n + shrink), True

    def to_dict(self) -> dict[str, Any]:
        return {"sums": self.sums, "counts": self.counts}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaxonSpread":
        return cls({r: {t: float(v) for t, v in d.items()} for r, d in data["sums"].items()},
                   {r: {t: int(v) for t, v in d.items()} for r, d in data["counts"].items()})


def _parent(lineage: Lineage, k: int) -> tuple[str, str]:
    """(rank, taxon) of the nearest non-blank rank above index ``k`` (the root above the orders)."""
    for j in range(k - 1, -1, -1):
        taxon = lineage[j]
        if taxon:
            return RANKS[j], taxon
    return ROOT, ROOT


# -- features ----------------------------------------------------------------------------------------
def taxon_sizes(lineages: Sequence[Lineage], session: int = 0) -> list[Counter[str]]:
    """Per rank, taxon → its keys, the size feature's count; the last ``session`` keys (added for the session:
    members of candidates a reviewer accepted or assigned) count once per distinct lineage among them.

    Why: the size feature reads how widely the reference samples a taxon, and a reviewed candidate is one
    sampling event however many members it had. On a real 5,300-specimen US batch, 43 accepted members of a new
    *Cisthene* species took the genus from 60 keys to 103, and another *Cisthene* candidate the reviewer had left
    pending (71 specimens, 92.9 % from every key, no other feature changed) fell from genus to order in the next
    triage: P(genus right) 0.88 -> 0.43 (benchmarks/RESULTS-tui.md, "The US batch's second week")."""
    built = len(lineages) - max(0, min(int(session), len(lineages)))
    sizes: list[Counter[str]] = [Counter(t for lin in lineages[:built] if (t := lin[k])) for k in range(len(RANKS))]
    for lin in set(map(tuple, lineages[built:])):
        for k in range(len(RANKS)):
            if taxon := lin[k]:
                sizes[k][taxon] += 1
    return sizes


class FeatureMaker:
    """Per-rank features of a query's hits against one reference (lineages, key lengths, taxon sizes)."""

    def __init__(self, lineages: Sequence[Lineage], key_lengths: np.ndarray, spread: TaxonSpread,
                 shrink: float, session: int = 0) -> None:
        self.lineages = lineages
        self.key_lengths = key_lengths
        self.spread = spread
        self.shrink = shrink
        self.sizes = taxon_sizes(lineages, session)
        #: (rank, taxon) → TaxonSpread.value without a left-out query (the same for every query; the
        #: rank's prior is a sum over all its taxa, so computing it once per maker saves most of ``features``)
        self._spread: dict[tuple[str, str | None], tuple[float, bool]] = {}

    def _spread_value(self, rank: str, taxon: str | None, own: float | None) -> tuple[float, bool]:
        if own is not None:
            return self.spread.value(rank, taxon, self.shrink, own)
        key = (rank, taxon)
        v = self._spread.get(key)
        if v is None:
            v = self._spread[key] = self.spread.value(rank, taxon, self.shrink)
        return v

    def features(self, hits: Hits, own: tuple[str, str, float] | None = None
                 ) -> tuple[Lineage, list[np.ndarray | None]]:
        """(top lineage, per rank a feature vector or None where the label is blank / there is no hit)."""
        if not len(hits.positions):
            return tuple([None] * len(RANKS)), [None] * len(RANKS)
        lins = [self.lineages[int(j)] for j in hits.positions]
        ids = hits.identities
        top = lins[0]
        x0 = float(ids[0])
        ld0 = float(log_distance(x0))
        floor = float(ids.min())
        # one vote per candidate species within the window (unnamed records vote alone)
        near: dict[object, Lineage] = {}
        for i, lin in enumerate(lins):
            if ids[i] < x0 - AGREEMENT_WINDOW - 1e-12:
                continue
            key = lin[-1] or ("#", i)
            near.setdefault(key, lin)
        overlap = min(1.0, hits.overlap(self.key_lengths) / OVERLAP_FULL)
        idl = ids.tolist()  # the same values as float(ids[i]), converted once
        out: list[np.ndarray | None] = []
        for k, rank in enumerate(RANKS):
            label = top[k]
            if not label:
                out.append(None)
                continue
            other = [x for x, lin in zip(idl, lins) if lin[k] and lin[k] != label]
            has_other = bool(other)
            out_id = max(other) if other else floor - 0.01
            votes = [lin[k] for lin in near.values() if lin[k]]
            # the share of agreeing votes: count / n, the same float np.mean gives for 0/1 values
            agree = sum(v == label for v in votes) / len(votes) if votes else 1.0
            own_w = own[2] if own is not None and own[0] == rank and own[1] == label else None
            within, has_within = self._spread_value(rank, label, own_w)
            prank, ptaxon = _parent(top, k)
            own_p = own[2] if own is not None and own[0] == prank and own[1] == ptaxon else None
            sibling, _ = self._spread_value(prank, ptaxon, own_p)
            out.append(np.array([ld0, float(log_distance(out_id)) - ld0, float(has_other), agree, ld0 - within,
                                 ld0 - sibling, float(not has_within), math.log1p(self.sizes[k].get(label, 0)),
                                 overlap]))
        return top, out


# -- simulation --------------------------------------------------------------------------------------
def plan_simulation(lineages: Sequence[Lineage], sequences: Sequence[str], config: NamingConfig,
                    countries: Sequence[str | None] | None = None
                    ) -> tuple[list[SimQuery], dict[str, dict[str, Any]]]:
    """Queries simulated from the reference: leave-one-barcode-out (present) and leave-clade-out at
    every rank. Returns the queries and, per rank, whether the reference supports learning it.

    With ``countries`` (where each key was collected) and ``config.sim_present_elsewhere``, a present query
    of a species with keys from another country is also searched with its species' keys from its own
    country left out: "met elsewhere" (same species group, so each species still weighs the same). Why: a
    leave-one-barcode-out query still meets its own population, so the model only ever saw known species
    within their own spread; a collection from another country meets them from elsewhere. Without it,
    known species of collections from four countries not in the reference were named to species 0.904 /
    0.950 / 0.716 / 0.447 (Canada / Germany / Costa Rica / Australia; with it 0.942 / 0.962 / 0.711 / 0.761,
    no absent species named to a species either way: RESULTS-discovery.md, "Met elsewhere").
    A twin is made only where another country holds a barcode other than the query's own (its copies are
    left out with it, so a twin there would be a species with no key, not one met elsewhere).
    The absent side too (``sim_absent_elsewhere_ranks``): a species left out whole is searched a second time
    without its genus's keys from its own country (``_country_kin``), in the same group. Without it the
    simulation's absent species met their sisters at home, and Australia's and Costa Rica's known species,
    1–3 % from their keys collected elsewhere, read as new (named to species 0.761 / 0.711; with it 0.803 /
    0.738, no absent species named to a species either way: RESULTS-discovery.md, "Absent species met from
    elsewhere")."""
    rng = np.random.default_rng(config.seed)
    n = len(lineages)
    sizes = [Counter(lin[k] for lin in lineages if lin[k]) for k in range(len(RANKS))]
    members: list[dict[str, list[int]]] = [defaultdict(list) for _ in RANKS]
    for j, lin in enumerate(lineages):
        for k, label in enumerate(lin):
            if label:
                members[k][label].append(j)
    queries: list[SimQuery] = []
    # present: leave-one-barcode-out, a few keys of each deepest-labelled taxon
    groups: dict[tuple[int, str | None], list[int]] = defaultdict(list)
    for j, lin in enumerate(lineages):
        deepest = max((k for k in range(len(RANKS)) if lin[k]), default=-1)
        if deepest >= 0:
            groups[(deepest, lin[deepest])].append(j)
    keys = list(groups)
    rng.shuffle(keys)
    # a few per taxon, more where the reference has few taxa (the budget spread over all of them)
    per = max(config.sim_present_per_species, config.sim_max_present // max(1, len(keys)))
    budget = config.sim_max_present
    present: list[tuple[int, str]] = []
    for key in keys:
        if budget <= 0:
            break
        idx = groups[key]
        for j in rng.choice(idx, min(per, len(idx)), replace=False):
            present.append((int(j), f"present:{key[1]}"))
            budget -= 1
    # each present query leaves out its barcode's identical copies: found in one pass over the keys for
    # the picked barcodes only (a dict of every barcode would hold a million strings at 1M keys)
    copies: dict[str, list[int]] = {sequences[j]: [] for j, _ in present}
    for j, seq in enumerate(sequences):
        if seq in copies:
            copies[seq].append(j)
    species = SPECIES
    elsewhere = countries is not None and config.sim_present_elsewhere
    for j, label in present:
        queries.append(SimQuery(j, np.asarray(copies[sequences[j]], dtype=np.int64), lineages[j], "present", label))
        if not elsewhere or countries is None or not countries[j]:
            continue
        here = countries[j]
        kin = members[species].get(lineages[j][species] or "", [])  # a key named to genus only: no species to meet
        if any(countries[i] and countries[i] != here and sequences[i] != sequences[j] for i in kin):
            out = sorted({i for i in kin if countries[i] == here} | set(copies[sequences[j]]))
            queries.append(SimQuery(j, np.asarray(out, dtype=np.int64), lineages[j], "present", label,
                                    elsewhere=True))
    # absent at each rank: a taxon left out whole, its parent kept
    support: dict[str, dict[str, Any]] = {}
    for k, rank in enumerate(RANKS):
        eligible = []
        for taxon, idx in members[k].items():
            prank, ptaxon = _parent(lineages[idx[0]], k)
            if prank == ROOT:
                others = len(sizes[0]) - 1  # other orders
            else:
                others = sizes[RANKS.index(prank)][ptaxon] - len(idx)
            if others > 0:
                eligible.append(taxon)
        support[rank] = {"taxa": len(members[k]), "leave_out_taxa": len(eligible),
                         "learned": len(eligible) >= config.min_sim_taxa}
        if not eligible:
            continue
        rng.shuffle(eligible)
        per_taxon = max(config.sim_per_taxon, config.sim_queries_per_rank // len(eligible))
        budget = config.sim_queries_per_rank
        for taxon in eligible:
            if budget <= 0:
                break
            idx = members[k][taxon]
            excl = (k, taxon)
            # prefer different species of the left-out taxon
            by_sp: dict[object, list[int]] = defaultdict(list)
            for j in idx:
                by_sp[lineages[j][-1] or ("#", j)].append(j)
            sp_keys = list(by_sp)
            rng.shuffle(sp_keys)
            picks = [int(rng.choice(by_sp[s])) for s in sp_keys[:per_taxon]]
            if len(picks) < per_taxon:
                rest = [j for j in idx if j not in set(picks)]
                picks += [int(j) for j in rng.choice(rest, min(len(rest), per_taxon - len(picks)), replace=False)]
            near = _country_kin(k, taxon, idx, picks[:budget], lineages, members, countries) \
                if elsewhere and rank in config.sim_absent_elsewhere_ranks else {}
            for j in picks[:budget]:
                queries.append(SimQuery(j, excl, lineages[j], f"absent:{rank}", f"absent:{rank}:{taxon}"))
                if j in near:  # the same left-out taxon, its relatives from the query's own country left out too
                    queries.append(SimQuery(j, near[j], lineages[j], f"absent:{rank}", f"absent:{rank}:{taxon}",
                                            elsewhere=True))
            budget -= len(picks)
    # which ranks of each query's truth keep keys after its exclusion
    for q in queries:
        if isinstance(q.exclude, tuple):  # a whole clade: its own rank and below go, an ancestor stays if wider
            k, taxon = q.exclude
            gone = Counter({(j, q.truth[j]): sizes[k][taxon] for j in range(k)})
            gone.update({(j, q.truth[j]): sizes[j].get(q.truth[j] or "", 0) for j in range(k, len(RANKS))})
        else:
            kept_out = q.exclude if q.exclude is not None else np.empty(0, dtype=np.int64)
            gone = Counter((k, lineages[int(j)][k]) for j in kept_out for k in range(len(RANKS))
                           if lineages[int(j)][k])
        q.present = tuple(bool(q.truth[k]) and sizes[k].get(q.truth[k], 0) - gone.get((k, q.truth[k]), 0) > 0
                          for k in range(len(RANKS)))
        first_absent = next((RANKS[k] for k in range(len(RANKS)) if q.truth[k] and not q.present[k]), None)
        q.scenario = "present" if first_absent is None else f"absent:{first_absent}"
    log.info("simulation: %d queries (%s); n=%d keys", len(queries),
             dict(Counter(q.scenario for q in queries)), n)
    return queries, support


def _country_kin(k: int, taxon: str, idx: Sequence[int], picks: Sequence[int], lineages: Sequence[Lineage],
                 members: Sequence[Mapping[str, list[int]]], countries: Sequence[str | None] | None
                 ) -> dict[int, np.ndarray]:
    """Per picked query of a taxon left out at rank ``k``: the keys to leave out to meet it from elsewhere —
    the taxon's own (``idx``) and its parent's keys from the query's own country — where the parent keeps keys
    from another country (else the twin would be absent higher up, not met elsewhere; a key without a country
    is from nowhere in particular, as for the present twins). Why: a left-out species of a well-sampled fauna
    meets a sister from its own country, often within 2 %, so the simulation taught that a specimen 1.5 % from
    a known species is often a new one; a collection from a country the reference lacks meets its relatives'
    populations from elsewhere, where a known species' own specimens lie as far from its keys."""
    prank, ptaxon = _parent(lineages[idx[0]], k)
    if countries is None or prank == ROOT:
        return {}
    kin = members[RANKS.index(prank)].get(ptaxon, [])
    gone = set(idx)
    out: dict[int, np.ndarray] = {}
    for j in picks:
        here = countries[j]
        if not here:
            continue
        local = {i for i in kin if countries[i] == here and i not in gone}
        if local and any(countries[i] and countries[i] != here and i not in gone for i in kin):
            out[j] = np.asarray(sorted(gone | local), dtype=np.int64)
    return out


def spread_contribution(q: SimQuery, hits: Hits, lineages: Sequence[Lineage]) -> tuple[str, str, float] | None:
    """The internal-distance sample a simulated query gives: its distance to the nearest remaining key of
    its deepest present taxon (the parent of what was left out; its own species for a present query). None
    for an absent query met from elsewhere: its parent's nearest keys from its own country were left out, so
    its distance is not how far that parent's members lie from one another."""
    if q.position < 0 or not len(hits.positions):
        return None
    first_absent = next((k for k in range(len(RANKS)) if q.truth[k] and not q.present[k]), None)
    if q.elsewhere and first_absent is not None:
        return None
    if first_absent is None:  # present: a conspecific with another barcode
        k = max((k for k in range(len(RANKS)) if q.truth[k]), default=-1)
        deepest = q.truth[k] if k >= 0 else None
        if not deepest:
            return None
        rank, taxon = RANKS[k], deepest
    else:
        rank, taxon = _parent(q.truth, first_absent)
    if rank == ROOT:
        return ROOT, ROOT, float(log_distance(float(hits.identities[0])))
    k = RANKS.index(rank)
    same = [float(x) for j, x in zip(hits.positions, hits.identities) if lineages[int(j)][k] == taxon]
    if not same:
        return None
    return rank, taxon, float(log_distance(max(same)))


# -- the model ---------------------------------------------------------------------------------------
class RankModel:
    """One rank's outcome model: P(absent) and P(right | present), hence P(right), P(wrong), P(absent).

    Two binary boosted-tree models (``JsonBoosting``) rather than one multinomial, so each can carry
    the monotonic constraints that keep it sane where examples are thin (``MONOTONIC_*``).

    Bagged (``bags`` > 1): each member pair is fitted on a bootstrap of the *groups* (left-out taxa,
    species: the units the simulation draws), and the members' probabilities are averaged. Why: a rank
    learns from a few hundred left-out taxa, so which taxa a reference happens to offer moves one fit's
    boundary; two disjoint halves of the same reference gave boosters that disagreed on 9 % of deepest
    ranks with the evidence held fixed (benchmarks/RESULTS-discovery.md, "Stability").
    """

    def __init__(self, trees: int = NamingConfig.trees, learning_rate: float = NamingConfig.learning_rate,
                 min_leaf: int = NamingConfig.min_leaf, seed: int = NamingConfig.seed,
                 bags: int = NamingConfig.bags) -> None:
        # the defaults are the product's (``NamingConfig``): one place says what a rank model is by default
        self.trees = trees
        self.learning_rate = learning_rate
        self.min_leaf = min_leaf
        self.seed = seed
        self.bags = bags

    def fit(self, X: np.ndarray, y: Sequence[str], w: np.ndarray, groups: Sequence[str] | None = None
            ) -> "RankModel":
        y_arr = np.asarray(list(y), dtype=object)
        w = np.asarray(w, dtype=np.float64)
        self.members_: list[tuple[JsonBoosting, JsonBoosting]] = []
        if self.bags <= 1 or groups is None:
            self.members_.append(self._fit_pair(X, y_arr, w, self.seed))
            return self
        names, inverse = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)
        rng = np.random.default_rng(self.seed)
        for b in range(self.bags):
            times = np.bincount(rng.integers(0, len(names), len(names)), minlength=len(names))[inverse]
            keep = times > 0
            self.members_.append(self._fit_pair(X[keep], y_arr[keep], w[keep] * times[keep], self.seed + b))
        return self

    def _fit_pair(self, X: np.ndarray, y_arr: np.ndarray, w: np.ndarray, seed: int
                  ) -> tuple[JsonBoosting, JsonBoosting]:
        absent = y_arr == "absent"
        opts: dict[str, Any] = {"max_iter": self.trees, "learning_rate": self.learning_rate,
                                "min_samples_leaf": self.min_leaf, "seed": seed}
        a = JsonBoosting(MONOTONIC_ABSENT, **opts).fit(X, absent.astype(int), w)
        present = ~absent
        wp = w[present] * (len(w[present]) / max(float(w[present].sum()), 1e-12))
        r = JsonBoosting(MONOTONIC_RIGHT, **opts).fit(X[present], (y_arr[present] == "right").astype(int), wp)
        return a, r

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, 3): P(right), P(wrong), P(absent) (``OUTCOMES`` order), the members' mean."""
        out = np.zeros((len(X), len(OUTCOMES)))
        for absent, right in self.members_:
            a = absent.predict_proba(X)
            r = right.predict_proba(X)
            out += np.column_stack([(1 - a) * r, (1 - a) * (1 - r), a])
        return out / len(self.members_)

    def to_dict(self) -> dict[str, Any]:
        return {"trees": self.trees, "learning_rate": self.learning_rate, "min_leaf": self.min_leaf, "seed": self.seed,
                "bags": self.bags, "members": [{"absent": a.to_dict(), "right_if_present": r.to_dict()}
                                               for a, r in self.members_]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RankModel":
        self = cls(int(data["trees"]), float(data["learning_rate"]), int(data["min_leaf"]), int(data["seed"]),
                   int(data.get("bags", 1)))
        members = data["members"] if "members" in data else [data]  # a bundle before bagging: one pair
        if not members:
            raise ValueError("rank model without members")
        self.members_ = [(JsonBoosting.from_dict(m["absent"]), JsonBoosting.from_dict(m["right_if_present"]))
                         for m in members]
        return self


class NamingModel:
    """Per-rank P(right) / P(wrong) / P(absent) from simulated and extra labelled queries.

    ``fit(lineages, key_lengths, sim_queries, sim_hits, support, extra=(extra_truths, extra_hits))``;
    ``predict(hits) -> (labels, confidence, p_absent)`` per query. Fitted state (JSON):
    ``models_`` (rank → ``RankModel``), ``spread_`` (internal distances), ``support_`` (per rank:
    learned or the published cut-off used, and why), ``expected_`` (out-of-fold outcomes of the
    simulation at ``LEVEL_GRID``), ``n_examples_``, ``tuning_`` (per rank: the boosting setting chosen
    and every setting's out-of-fold log-loss), ``simulated_`` (each simulated query's out-of-fold outcomes, from
    which ``expected_at`` forecasts at a collection's own shares; stored beside the JSON as arrays, None when a
    bundle from before has none).
    """

    def __init__(self, config: NamingConfig | None = None) -> None:
        self.config = config or NamingConfig()

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, lineages: Sequence[Lineage], key_lengths: np.ndarray, queries: Sequence[SimQuery],
            hits: Sequence[Hits], support: Mapping[str, Mapping[str, Any]],
            progress: Callable[[str], None] | None = None) -> "NamingModel":
        say = progress or log.info
        if len(queries) != len(hits):
            raise ValueError("queries and hits differ in length")
        cfg = self.config
        self.spread_ = TaxonSpread()
        own: list[tuple[str, str, float] | None] = []
        for q, h in zip(queries, hits):
            c = spread_contribution(q, h, lineages)
            own.append(c)
            if c is not None:
                self.spread_.add(*c)
        maker = FeatureMaker(lineages, key_lengths, self.spread_, cfg.shrink)
        rows = [maker.features(h, o) for h, o in zip(hits, own)]
        self.support_ = {}
        for rank in RANKS:
            s = dict(support.get(rank, {}))
            if not s.get("learned"):
                self._fallback_support(rank, s, queries, hits)
            self.support_[rank] = s
        X, y, w, grp = self._training_sets(queries, rows)
        learn = [rank for rank in RANKS if self.support_[rank].get("learned") and len(X[rank])]
        oof = self._tune(learn, X, y, w, grp)
        self.models_ = {rank: self._fit_rank(X[rank], y[rank], w[rank], grp[rank], self.tuning_[rank]["chosen"])
                        for rank in learn}
        for rank in RANKS:
            if self.support_[rank].get("learned") and rank not in self.models_:
                self.support_[rank]["learned"] = False
                self._fallback_support(rank, self.support_[rank], queries, hits)
        self.n_examples_ = {r: int(len(X[r])) for r in RANKS}
        self.expected_ = self._expected(lineages, queries, rows, hits, oof)
        at = self.expected_.get(f"{cfg.level}", {})
        say(f"naming model: {len(queries)} simulated queries; " + ", ".join(
            f"{r} learned" if self.support_[r].get("learned")
            else f"{r} by {cutoff_words(r, self.support_[r], cfg.level)}" for r in RANKS))
        if self.tuning_:
            say("boosted trees per rank (trees/learning rate/min leaf, lowest out-of-fold log-loss on the "
                "simulation): " + ", ".join(f"{r} {'/'.join(f'{v:g}' for v in t['chosen'])}"
                                           for r, t in self.tuning_.items()))
        if at:
            say(f"expected at level {cfg.level}: " + _describe_expected(at))
        return self

    def _fallback_support(self, rank: str, s: dict[str, Any], queries: Sequence[SimQuery],
                          hits: Sequence[Hits]) -> None:
        """Fill ``s`` for a rank decided by the published cut-off: the best identities of the simulated
        queries whose taxon was left out exactly at this rank (``fallback_right``), and the reason.

        Where no taxon can be left out at this rank (a reference of one order), the identities of the
        nearest rank below that has simulated absent queries stand in (``absent_from``): an order the
        reference lacks lies at least as far from it as its own families lie from one another. Why: the
        published 85 % order cut-off alone gave the order "Coleoptera" to 64 % of 1,000 Diptera and
        Lepidoptera specimens triaged against the dev Coleoptera (median identity 85.4 %: COI saturates
        between orders), and "Lepidoptera" to 33 % of the others against the dev Lepidoptera."""
        absent, source = self._absent_identities(rank, queries, hits), rank
        if not absent:
            for deeper in RANKS[RANKS.index(rank) + 1:]:
                absent = self._absent_identities(deeper, queries, hits)
                if absent:
                    source = deeper
                    break
        s["fallback"] = PUBLISHED_CUTOFFS[rank]
        s["absent_identities"] = absent
        s["absent_from"] = source
        cfg = self.config
        if s.get("learned") is False and s.get("leave_out_taxa", 0) >= cfg.min_sim_taxa:
            head = f"{rank}: no simulated examples to learn from"
        else:
            head = (f"the reference holds {plural(s.get('taxa', 0), rank + ' taxon', rank + ' taxa')} of which "
                    f"{s.get('leave_out_taxa', 0)} "
                    f"can be left out (need {cfg.min_sim_taxa})")
        why = (f"{head}: {rank} uses the published COI identity cut-off {PUBLISHED_CUTOFFS[rank]:.2f} where the "
               f"near-best candidates agree")
        if absent:
            q = float(np.quantile(absent, cfg.level))
            why += (f", and names only above the identities of the reference's own {len(absent)} simulated "
                    f"absent-{source} queries at the level ({cfg.level:g} of them lie below {q:.1%})")
            if source != rank:
                why += (f": with no {rank} to leave out, a missing {rank} is taken to lie at least as far from the "
                        f"reference as a left-out {source} does")
        s["why"] = why

    @staticmethod
    def _absent_identities(rank: str, queries: Sequence[SimQuery], hits: Sequence[Hits]) -> list[float]:
        """The best identities, sorted, of the simulated queries whose taxon was left out exactly at ``rank``."""
        return sorted(round(float(h.identities[0]), 5) for q, h in zip(queries, hits)
                      if q.scenario == f"absent:{rank}" and len(h.identities))

    def _training_sets(self, queries: Sequence[SimQuery], rows: Sequence[FeatureRow]
                       ) -> tuple[dict[str, np.ndarray], dict[str, list[str]], dict[str, np.ndarray],
                                  dict[str, list[str]]]:
        cfg = self.config
        feats_of: dict[str, list[np.ndarray]] = {r: [] for r in RANKS}
        y: dict[str, list[str]] = {r: [] for r in RANKS}
        g: dict[str, list[str]] = {r: [] for r in RANKS}
        grp: dict[str, list[str]] = {r: [] for r in RANKS}
        for q, (top, feats) in zip(queries, rows):
            first_absent = next((k for k in range(len(RANKS)) if q.truth[k] and not q.present[k]), len(RANKS))
            for k, rank in enumerate(RANKS):
                f = feats[k]
                if f is None or not q.truth[k]:
                    continue
                if not q.present[k]:
                    outcome = "absent"
                    kind = "absent-exact" if first_absent == k else "absent-above"
                else:
                    outcome = "right" if top[k] == q.truth[k] else "wrong"
                    kind = f"present-{q.scenario}"
                feats_of[rank].append(f)
                y[rank].append(outcome)
                g[rank].append(kind)
                grp[rank].append(q.group)
        w: dict[str, np.ndarray] = {}
        X: dict[str, np.ndarray] = {}
        for rank in RANKS:
            kinds = Counter(g[rank])
            present_kinds = [kd for kd in kinds if kd.startswith("present")]
            absent_mass = {"absent-exact": cfg.exact_share, "absent-above": 1.0 - cfg.exact_share}
            if "absent-exact" not in kinds:
                absent_mass = {"absent-above": 1.0}
            elif "absent-above" not in kinds:
                absent_mass = {"absent-exact": 1.0}
            # each group (a left-out taxon, a species) weighs the same within its kind, whatever its size:
            # a dozen calibration species with hundreds of specimens must not decide a rank
            per_group = Counter(zip(g[rank], grp[rank]))
            groups_in_kind = Counter(kd for kd, _ in per_group)
            ww = []
            for kd, gq in zip(g[rank], grp[rank]):
                mass = (1 - cfg.absent_prior) / len(present_kinds) if kd.startswith("present") else \
                    cfg.absent_prior * absent_mass[kd]
                ww.append(mass / groups_in_kind[kd] / per_group[(kd, gq)])
            w[rank] = np.asarray(ww) * max(1, len(ww))  # mean weight ≈ 1 keeps C's meaning
            X[rank] = np.asarray(feats_of[rank], dtype=np.float64).reshape(-1, len(FEATURES))
        return X, y, w, grp

    def _fit_rank(self, X: np.ndarray, y: Sequence[str], w: np.ndarray, groups: Sequence[str],
                  setting: Sequence[float]) -> "RankModel":
        cfg = self.config
        trees, rate, leaf = setting
        return RankModel(int(trees), float(rate), int(leaf), cfg.seed, cfg.bags).fit(X, y, w, groups)

    def _tune(self, learn: Sequence[str], X: dict[str, np.ndarray], y: dict[str, list[str]],
              w: dict[str, np.ndarray], grp: dict[str, list[str]]) -> dict[str, np.ndarray]:
        """Per rank, the (trees, learning rate, min leaf) of ``NamingConfig.settings`` with the lowest
        out-of-fold log-loss on the simulated queries (two folds by group: a left-out taxon is never on
        both sides), weighted as the model is trained. Returns each rank's out-of-fold P(right) under
        the chosen setting, with P(wrong) and P(absent) beside it (``_expected`` forecasts from them); sets
        ``tuning_``.

        Why tune per reference: how finely the trees may cut depends on how many taxa a reference offers
        to leave out, and the reference is all a user brings; one fixed setting was too coarse on the dev
        orders (mid-range P(right) at genus came out right far more often than it said)."""
        self.tuning_: dict[str, dict[str, Any]] = {}
        oof: dict[str, np.ndarray] = {}
        for rank in learn:
            fold = np.array([zlib.crc32(str(gq).encode()) % self.config.folds for gq in grp[rank]])
            truth = np.array([OUTCOMES.index(o) for o in y[rank]])
            losses, preds = [], []
            for setting in self.config.settings:
                p = np.zeros((len(X[rank]), len(OUTCOMES)))
                for f in range(self.config.folds):
                    tr, te = fold != f, fold == f
                    if te.any():
                        idx = np.nonzero(tr)[0]
                        m = self._fit_rank(X[rank][tr], [y[rank][i] for i in idx], w[rank][tr],
                                           [grp[rank][i] for i in idx], setting)
                        p[te] = m.predict_proba(X[rank][te])
                picked = np.clip(p[np.arange(len(p)), truth], 1e-6, 1.0)
                losses.append(float(-np.average(np.log(picked), weights=w[rank])))
                preds.append(p)
            best = int(np.argmin(losses))
            self.tuning_[rank] = {"chosen": list(self.config.settings[best]),
                                  "log_loss": {f"{t}/{r:g}/{m}": round(v, 5)
                                               for (t, r, m), v in zip(self.config.settings, losses)}}
            oof[rank] = preds[best]
        return oof

    def _expected(self, lineages: Sequence[Lineage], queries: Sequence[SimQuery], rows: Sequence[FeatureRow],
                  hits: Sequence[Hits], oof: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        """Out-of-fold outcomes of the simulated queries at each level of ``LEVEL_GRID``, at even odds (``oof``: per
        rank, (P(right), P(wrong), P(absent)) of each training example from the fold that did not see its group;
        ``_tune``). Keeps each query's probabilities in ``simulated_``, from which ``expected_at`` decides them at
        another share of absent taxa."""
        # map back to queries: per rank, the i-th example belongs to the i-th query with features there
        probs = np.full((len(queries), len(RANKS), len(OUTCOMES)), np.nan)
        counter = {r: 0 for r in RANKS}
        for qi, (q, (_top, feats)) in enumerate(zip(queries, rows)):
            for k, rank in enumerate(RANKS):
                fv = feats[k]
                if fv is None:
                    continue
                if q.truth[k] and rank in oof:
                    probs[qi, k] = oof[rank][counter[rank]]
                else:  # not a training example, or a cut-off rank: the full model (or the cut-off) gives it
                    probs[qi, k] = self._rank_probs(rank, fv[None, :], hits[qi], lineages)[0]
                counter[rank] += bool(q.truth[k])
        sim = SimulatedCalls([q.scenario for q in queries], [q.group for q in queries], [q.truth for q in queries],
                             [r[0] for r in rows],
                             np.array([float(h.identities[0]) if len(h.identities) else 0.0 for h in hits]), probs)
        self.simulated_: SimulatedCalls | None = sim
        conf = self._simulated_confidence(sim, None, LEVEL_GRID[0])  # at even odds the level moves no prior
        return {f"{level}": _outcomes(sim.queries(), sim.tops, conf, level, self.walk_optional) for level in LEVEL_GRID}

    def _simulated_confidence(self, sim: SimulatedCalls, priors: Mapping[str, float] | None, level: float
                              ) -> list[dict[str, float]]:
        """Each simulated query's P(right) down the walk (``decide``) under ``priors`` where it is ``placed``."""
        out = []
        for i in range(len(sim)):
            o = sim.outcomes(i)
            labels = dict(zip(RANKS, sim.tops[i]))
            out.append(self.decide(labels, o, self.priors_for(o, level, float(sim.identities[i]), priors))[0])
        return out

    def expected_at(self, priors: Mapping[str, float], level: float) -> dict[str, Any] | None:
        """The forecast's figures (``expected_``'s, by ``outcome_rates``) at ``level`` with each learned rank's
        simulated queries decided at the share of absent taxa ``priors`` gives it (a collection's estimate,
        ``collection_priors``) instead of even odds, by ``decide`` as triage decides the collection; None where the
        model keeps no simulated calls (a bundle built before them). At 0.5 everywhere it is ``expected_``'s.

        Why: a collection is decided at its own share, so its measured figures are this forecast's, not the
        even-odds one's (absent species named to the right genus: forecast 0.351 at even odds, measured 0.496
        on a collection that read 14 % of its genera absent; ML review M2)."""
        sim = getattr(self, "simulated_", None)
        if sim is None:
            return None
        return _outcomes(sim.queries(), sim.tops, self._simulated_confidence(sim, priors, level), level,
                         self.walk_optional)

    # -- prediction ----------------------------------------------------------------------------------
    def _rank_probs(self, rank: str, X: np.ndarray, hits: Hits, lineages: Sequence[Lineage]) -> np.ndarray:
        """(P(right), P(wrong), P(absent)) per row of ``X`` at ``rank``: the rank's model, or the published cut-off's
        (P(right), 0, 1 − P(right)) as ``outcomes`` gives it."""
        if rank in self.models_:
            return self.models_[rank].predict_proba(X)
        top_id = np.array([hits.identities[0] if len(hits.identities) else 0.0])
        right = fallback_right(rank, top_id, X[:, AGREEMENT], self.support_[rank].get("absent_identities"),
                               np.array([hits.support(lineages, RANKS.index(rank))]))
        return np.column_stack([right, np.zeros(len(right)), 1.0 - right])

    def _rank_confidence(self, rank: str, X: np.ndarray, hits: Hits, lineages: Sequence[Lineage]) -> np.ndarray:
        return self._rank_probs(rank, X, hits, lineages)[:, 0]

    def outcomes(self, lineages: Sequence[Lineage], key_lengths: np.ndarray, hits: Sequence[Hits], session: int = 0,
                 alone: Mapping[int, Hits] | None = None
                 ) -> list[tuple[dict[str, str | None], dict[str, tuple[float, float, float] | None],
                                 dict[str, tuple[float, float, float]]]]:
        """Per query: its labels; per rank, (P(right), P(wrong), P(absent)) as the rank's model gives them at
        the simulation's odds (None where the label is blank); and, where the query shares fewer than
        ``OVERLAP_FULL`` bases with its best key, the same for each learned rank had it shared a full-length
        barcode (empty otherwise; what ``explain`` weighs a short overlap by). A rank decided by the published
        cut-off gives (P(right), 0, 1 − P(right)): its "absent" is no probability and no prior moves it.
        ``session``: how many of the last keys were added for the session (``taxon_sizes``). ``alone``: query
        index → its hits searched without the session's keys, for queries whose best key is the reference's own; at each
        rank the outcomes are those of ``alone`` where they name the label less surely: keys a reviewer added can
        take confidence from a reference key's name, never give it (a query named from the session's own keys is
        not touched: those are what a provisional species is named from).

        Why: the rank models learned the margin to the nearest other taxon from the reference's own taxa, and
        P(absent) is free in it (held non-increasing, it cost known species on every fold: RESULTS-discovery.md,
        "P(absent) held non-increasing in the margin"). The keys of an order the reference lacks come nearer a
        beetle than any other fly family: on a Diptera-only reference, after a reviewer accepted two beetle
        candidates, a beetle 90.9 % from its best fly key went from unnamed to "family Muscidae" at 0.994
        (RESULTS-discovery.md, "A reviewer's keys as rivals")."""
        maker = FeatureMaker(lineages, key_lengths, self.spread_, self.config.shrink, session)
        probs, full = self._probabilities([maker.features(h) for h in hits], hits, lineages)
        if alone:
            order = list(alone)
            kept = [alone[i] for i in order]
            alone_probs, alone_full = self._probabilities([maker.features(h) for h in kept], kept, lineages)
            for n, i in enumerate(order):
                for rank in RANKS:
                    p, q = alone_probs[rank].get(n), alone_full.get(n, {}).get(rank)
                    if p is not None and i in probs[rank] and p[0] < probs[rank][i][0]:
                        probs[rank][i] = p
                    if q is not None and rank in full.get(i, {}) and q[0] < full[i][rank][0]:
                        full[i][rank] = q
        if session:
            _session_ties(hits, lineages, len(lineages) - max(0, min(int(session), len(lineages))), probs, full)
        return [({r: lineages[h.top][k] if h.top >= 0 else None for k, r in enumerate(RANKS)},
                 {r: (float(probs[r][i][0]), float(probs[r][i][1]), float(probs[r][i][2])) if i in probs[r] else None
                  for r in RANKS}, full.get(i, {}))
                for i, h in enumerate(hits)]

    def _probabilities(self, rows: Sequence[FeatureRow], hits: Sequence[Hits], lineages: Sequence[Lineage]
                       ) -> tuple[dict[str, dict[int, np.ndarray]], dict[int, dict[str, tuple[float, float, float]]]]:
        """Per rank, row index → (P(right), P(wrong), P(absent)) of ``rows`` (``outcomes``); and per row sharing
        fewer than ``OVERLAP_FULL`` bases with its best key, the same at a full-length overlap."""
        full: dict[int, dict[str, tuple[float, float, float]]] = defaultdict(dict)
        for k, rank in enumerate(RANKS):
            if rank not in self.models_:  # a cut-off rank does not read the overlap
                continue
            short = [i for i, (_, f) in enumerate(rows) if (x := f[k]) is not None and x[OVERLAP] < 1.0]
            if short:
                X = np.vstack([f for i in short if (f := rows[i][1][k]) is not None])
                X[:, OVERLAP] = 1.0
                for i, p in zip(short, self.models_[rank].predict_proba(X)):
                    full[i][rank] = (float(p[0]), float(p[1]), float(p[2]))
        probs: dict[str, dict[int, np.ndarray]] = {r: {} for r in RANKS}
        for k, rank in enumerate(RANKS):  # batched per rank for speed
            idx = [i for i, (_, f) in enumerate(rows) if f[k] is not None]
            if not idx:
                continue
            X = np.vstack([f for i in idx if (f := rows[i][1][k]) is not None])
            if rank in self.models_:
                P = self.models_[rank].predict_proba(X)
            else:
                top_id = np.array([hits[i].identities[0] for i in idx])
                support = np.array([hits[i].support(lineages, k) for i in idx])
                right = fallback_right(rank, top_id, X[:, AGREEMENT], self.support_[rank].get("absent_identities"),
                                       support)
                P = np.column_stack([right, np.zeros(len(idx)), 1.0 - right])
            for i, p in zip(idx, P):
                probs[rank][i] = p
        return probs, full

    def decide(self, labels: Mapping[str, str | None], outcomes: Mapping[str, Sequence[float] | None],
               priors: Mapping[str, float] | None = None) -> tuple[dict[str, float], dict[str, float | None]]:
        """(P(right) made non-increasing down the ranks, P(absent) made non-decreasing, a cut-off rank's too
        (``_implied``); None where the label is blank) from a query's ``outcomes``, with each learned rank's P(absent)
        moved from the simulation's odds to the collection's share of absent taxa in ``priors`` (``collection_prior``;
        a rank not in it keeps the simulation's). P(right | present) is what it was: the prior says how often a taxon
        is missing, not which present taxon a specimen belongs to."""
        pi0 = self.config.absent_prior
        conf: dict[str, float] = {}
        absent: dict[str, float | None] = {}
        for r in RANKS:
            o = outcomes.get(r)
            if o is None:
                conf[r], absent[r] = 0.0, None
                continue
            right, wrong, a = (float(v) for v in o)
            # a share equal to the simulation's odds moves nothing (``expected_at`` at even odds is ``expected_``)
            if priors and r in priors and r in self.models_ and float(priors[r]) != pi0:
                a = float(_shifted(a, _odds_ratio(pi0, float(priors[r]))))
                right = (1.0 - a) * (right / (right + wrong) if right + wrong > 0 else 0.0)
            conf[r], absent[r] = right, a
        raised = _monotone(conf, labels, self.walk_optional, self.models_)
        # where P(right) was raised, P(absent) is no more than what it leaves: the two read as one distribution
        absent = {r: a if a is None or raised[r] <= conf[r] else min(a, 1.0 - raised[r]) for r, a in absent.items()}
        # a taxon absent at a rank is absent below it: P(absent) never falls down the learned ranks. P(right)
        # (what names) is kept and P(wrong) gives way; coherent, since P(right) never rises down the walk
        floor = 0.0
        for r in RANKS:
            pa = absent[r]
            if pa is None or r not in self.models_:
                continue
            pa = absent[r] = max(pa, floor)
            if r not in self.walk_optional:
                floor = pa
        _implied(raised, absent, labels, self.models_, self.config.optional_ranks)
        return raised, absent

    def predict(self, lineages: Sequence[Lineage], key_lengths: np.ndarray, hits: Sequence[Hits],
                priors: Mapping[str, float] | None = None
                ) -> list[tuple[dict[str, str | None], dict[str, float], dict[str, float | None]]]:
        """Per query: (labels, P(right) made non-increasing down the ranks, P(absent); None where the
        label is blank) at every rank (``outcomes`` then ``decide``)."""
        calls = self.outcomes(lineages, key_lengths, hits)
        return [(labels, *self.decide(labels, o, priors)) for labels, o, _ in calls]

    def priors_for(self, outcomes: Mapping[str, Sequence[float] | None], level: float, identity: float | None,
                   priors: Mapping[str, float] | None) -> Mapping[str, float]:
        """The shares a query is decided under: the collection's ``priors`` where it is ``placed``, else none (the
        simulation's odds; a specimen beyond a cut-off rank is no evidence of the collection's share nor moved by
        it). One owner for triage (``DiscoveryModel._decided``) and the forecast (``expected_at``)."""
        return priors if priors and self.placed(outcomes, level, identity) else {}

    def placed(self, outcomes: Mapping[str, Sequence[float] | None], level: float,
               identity: float | None = None) -> bool:
        """Whether every labelled rank decided by the published cut-off (no model: e.g. order on a
        reference of one or two orders) accepts the query at ``level``; a rank whose floor stands in from
        the rank below (one order, ``absent_from``) accepts it at the published cut-off (its best
        ``identity``; with one taxon at the rank the candidates always agree).

        Why it matters: no simulated query was ever absent at such a rank, so for a query beyond it
        (a specimen of an order the reference lacks) the learned ranks below extrapolate, and their
        P(absent) is no calibrated probability (leaving Diptera out, its specimens read a median P(family
        absent) of 0.74 where 1 is right). Saerens' EM needs calibrated posteriors: such queries
        neither inform a collection's share of absent taxa nor are moved by it. Why not the stand-in floor
        here: it decides what is named, not where the learned ranks hold; refusing every specimen below
        the reference's own absent families (new genera of known families among them) moved the per-order
        folds' estimates (Coleoptera: absent genera named to a genus 0.002 -> 0.055), and placing those
        below the published cut-off too moved them the other way (known species named 0.952 -> 0.938)."""
        support = getattr(self, "support_", {})
        for r, o in outcomes.items():
            if o is None or r in self.models_:
                continue
            if support.get(r, {}).get("absent_from", r) != r and identity is not None:
                if identity < PUBLISHED_CUTOFFS[r]:
                    return False
            elif o[0] < level:
                return False
        return True

    def _placed_absent(self, outcomes: Sequence[Mapping[str, Sequence[float] | None]], level: float,
                       identities: Sequence[float] | None) -> dict[str, np.ndarray]:
        """Per learned rank, P(absent) at the simulation's odds of the ``placed`` queries that have one."""
        ids: Sequence[float | None] = [None] * len(outcomes) if identities is None else identities
        inside = [o for o, x in zip(outcomes, ids, strict=True) if self.placed(o, level, x)]
        out: dict[str, np.ndarray] = {}
        for r in self.models_:
            a = np.array([float(o[r][2]) for o in inside if o.get(r) is not None])  # type: ignore[index]
            if len(a):
                out[r] = a
        return out

    def collection_priors(self, outcomes: Sequence[Mapping[str, Sequence[float] | None]], level: float,
                          identities: Sequence[float] | None = None, toward: Mapping[str, float] | None = None
                          ) -> dict[str, float]:
        """Per learned rank, the share of absent taxa in the collection whose ``outcomes`` these are
        (``collection_prior``, over the ``placed`` queries; ``identities``: each one's best identity), its
        pseudo-specimens at ``toward``'s share where it gives one (``pooled_share``), else at even odds; empty
        when ``collection_weight`` is None (a bundle from before)."""
        weight = self.config.collection_weight
        if weight is None:
            return {}
        return {r: round(collection_prior(a, self.config.absent_prior, float(weight),
                                          toward=(toward or {}).get(r)), 6)
                for r, a in self._placed_absent(outcomes, level, identities).items()}

    def collection_basis(self, outcomes: Sequence[Mapping[str, Sequence[float] | None]], level: float,
                         identities: Sequence[float] | None = None) -> dict[str, list[float]]:
        """Per learned rank, [the collection's own share of absent taxa, estimated without pseudo-specimens; the
        specimens it rests on]: what a run records so that later plates of a season can be pulled toward the
        season's share (``pooled_share``); empty when ``collection_weight`` is None."""
        if self.config.collection_weight is None:
            return {}
        return {r: [round(collection_prior(a, self.config.absent_prior, 0.0), 6), int(len(a))]
                for r, a in self._placed_absent(outcomes, level, identities).items()}

    @staticmethod
    def rivals(lineages: Sequence[Lineage], hits: Hits) -> dict[str, tuple[str, float] | None]:
        """Per rank, the closest other (non-blank) label than the best key's among the candidate keys within
        ``RIVAL_WINDOW`` of the best identity, and its identity (None: none that close): what ``explain``
        cites as "… lies within"."""
        out: dict[str, tuple[str, float] | None] = {r: None for r in RANKS}
        if not len(hits.positions):
            return out
        top = lineages[hits.top]
        open_ranks = [k for k in range(len(RANKS)) if top[k]]
        # best identity first (``Hits``): the first other label met at a rank is its closest
        floor = float(hits.identities[0]) - RIVAL_WINDOW
        for j, i in zip(hits.positions.tolist(), hits.identities.tolist()):
            if not open_ranks or i <= floor:
                break
            lin = lineages[j]
            for k in list(open_ranks):
                if lin[k] and lin[k] != top[k]:
                    out[RANKS[k]] = (str(lin[k]), float(i))
                    open_ranks.remove(k)
        return out

    def why_not_named(self, lineages: Sequence[Lineage], key_lengths: np.ndarray, hits: Hits,
                      labels: Mapping[str, str | None], conf: Mapping[str, float],
                      p_absent: Mapping[str, float | None], level: float) -> str | None:
        """Why the walk stopped where it did, in a reviewer's words (None when it named the species);
        ``explain`` from the query's hits."""
        if not len(hits.positions):
            return None
        return self.explain(labels, conf, p_absent, level, float(hits.identities[0]), self.rivals(lineages, hits),
                            hits.overlap(key_lengths))

    def explain(self, labels: Mapping[str, str | None], conf: Mapping[str, float],
                p_absent: Mapping[str, float | None], level: float, identity: float,
                rivals: Mapping[str, Sequence[Any] | None], overlap: int,
                full: Mapping[str, float] | None = None, next_species: Sequence[Any] | None = None) -> str | None:
        """Why the walk stopped where it did (None when it named the species), from what a stored result
        keeps: the best identity, each rank's closest rival label (``rivals``) and the overlap with the
        best key. Names the rank that failed, its P(right) against the level and P(absent), and what
        made it doubtful: another taxon almost as close, a distance beyond the taxon's own spread, a
        short overlap — said whenever the query shares under ``OVERLAP_FULL`` bases with the best key and
        ``full`` (P(right) per rank had it shared a full-length barcode: ``outcomes``) passes the level
        where the call failed, or under 80 % of that whatever ``full`` says. Why the counterfactual: on the
        per-order Diptera fold, known species at 99.4–100 % over 495–537 shared bases stopped at their
        genus (P(right) 0.93–0.98; over a full barcode 0.999), and the sentence blamed their species'
        spread instead. ``next_species`` (the closest other species and its identity: ``TriageResult.near``) is
        said where a species failed with no rival within ``RIVAL_WINDOW``: *Scathophaga furcata* at 100 % over
        555 bases was refused at P(right) 0.97 with only the numbers, its one visible cause *S. stercoraria* at
        97.3 % (e33 review F12)."""
        failed = stopped_at(labels, conf, level, self.walk_optional)
        if failed is None:
            return None
        label = labels[failed]
        x = identity
        pa = p_absent.get(failed)
        why = [f"{failed} {label} at {x:.1%} identity: P(right) {printed_below(conf[failed], level)} below the level "
               f"{level:g}" + (f", P(absent from the reference) {pa:.2f}" if pa is not None else "")]
        rival = rivals.get(failed)
        if rival is not None and x - float(rival[1]) < RIVAL_WINDOW:
            # its identity and the gap in points ("Coleoptera lies within 1.4%" read as a beetle 1.4 % away), the gap
            # between the two figures as printed ("91.2%, 0.5 points less" after 91.6 % read as a slip; e33 review
            # F11), and a tie where they print alike ("100.0%, 0.0 points less" was one)
            at, near = (round(100 * v, 1) for v in (x, float(rival[1])))
            why.append(f"{rival[0]} is as close ({near:.1f}%: a tie)" if at == near else
                       f"{rival[0]} is nearly as close ({near:.1f}%, {at - near:.1f} points less)")
        elif failed == "species" and next_species is not None:
            at, near = (round(100 * v, 1) for v in (x, float(next_species[1])))
            why.append(f"the nearest other species, {next_species[0]}, is {at - near:.1f} points farther "
                       f"({near:.1f}%)")
        within, has = self.spread_.value(failed, label, self.config.shrink)
        spread_id = 1.0 - float(np.exp(within)) + EPS
        if has and x < spread_id:
            # the spread is how far a key lies from its nearest other key of the taxon (the simulation's samples),
            # not how far its members span: "members lie from each other (≈0.0%)" read as the species' range to a
            # taxonomist, for Aedes aegypti, whose members span 4 % (a real tropical plate's review); where the keys
            # are all but identical, "(≈0.0%)" beside 98.7 % identity read as nonsense (an ML engineer's review)
            if 1 - spread_id < 0.0005:
                why.append(f"{label}'s keys are nearly identical to each other (under 0.05% apart), and this one "
                           f"is {1 - x:.1%} from the best")
            else:
                why.append(f"farther than {label}'s keys usually lie from their nearest neighbour within it "
                           f"(≈{1 - spread_id:.1%})")
        whole = (full or {}).get(failed)
        if overlap < OVERLAP_FULL and whole is not None and whole >= level:
            why.append(f"only {overlap} informative bases shared with the best key (over a full-length barcode the "
                       f"same identity gives P(right) {whole:.3f})")
        elif overlap < 0.8 * OVERLAP_FULL:
            why.append(f"only {overlap} informative bases shared with the best key")
        if deepest_confident(labels, conf, level, self.walk_optional) is None:
            # nothing named: a cut-off rank (walk-optional, so never the failed one above) that refused says why,
            # first: "no order of the reference within 87.4%" is what a specimen of an order the reference lacks
            # is about, not the moth family its learned ranks extrapolate to (e33 review F2)
            why[:0] = [self._refusal(r, str(labels[r]), x, level, rivals.get(r)) for r in RANKS if labels.get(r)
                       and r not in self.models_ and r not in self.config.optional_ranks and conf.get(r, 0.0) < level]
        return "; ".join(why)

    def _refusal(self, rank: str, label: str, identity: float, level: float,
                 rival: Sequence[Any] | None = None) -> str:
        """Why a rank decided by the published cut-off did not name ``label`` (``fallback_right``), the fact first
        and with the one identity that acts (``cutoff_words``; the published cut-off, 85 % at order, only where the
        reference's own simulated absent queries raise nothing). Below it, no taxon of the rank lies near enough;
        above it, the near-best candidates named another (``rival``: the closest other label) or the bootstrap
        draws too rarely named this one. Why one sentence: three wordings of one refusal, two a taxonomist could
        not parse ("no closer than 0.98 of the reference's own simulated absent-order queries come (87.4%)"), and
        the cut-off given as 85 % in one and 87.4 % in another (e33 review F2)."""
        cut = PUBLISHED_CUTOFFS[rank]
        s = getattr(self, "support_", {}).get(rank, {})
        absent = s.get("absent_identities") or []
        # the floor, as it decided
        if identity < cut or fallback_right(rank, np.array([identity]), np.ones(1), absent)[0] < level:
            # two decimals where one would print it at the cut-off it falls short of (87.36 % as 87.4 %)
            near = f"{identity:.{1 if round(identity, 3) < round(fallback_bar(rank, s, level), 3) else 2}%}"
            return (f"no {rank} of the reference within {cutoff_words(rank, s, level)} (nearest: {label} at "
                    f"{near}): {beyond_cutoff_words(rank)}")
        head = f"{rank} {label} at {identity:.1%} not given though within {cutoff_words(rank, s, level)}: "
        if rival is not None:
            return head + f"{rival[0]} is nearly as close ({float(rival[1]):.1%})"
        return head + (f"too few bootstrap draws of its k-mers name it, or another {rank} lies within "
                       f"{100 * AGREEMENT_WINDOW:g} points")

    @property
    def walk_optional(self) -> tuple[str, ...]:
        """Ranks whose failure does not stop the walk: the optional ones (subfamily) and those decided
        by a published cut-off (a confident family implies its order even where the reference cannot
        learn order absence)."""
        key = (tuple(self.models_), self.config.optional_ranks)  # read per specimen: computed once per model
        cached = getattr(self, "_walk_optional", None)
        if cached is None or cached[0] != key:
            cached = (key, tuple(r for r in RANKS if r in self.config.optional_ranks or r not in self.models_))
            self._walk_optional = cached
        return cached[1]

    def novelty(self, p_absent: Mapping[str, float | None]) -> float:
        """P(species absent): the largest P(absent) among the labelled, learned, non-optional ranks
        (1 with no hit at all)."""
        vals = [v for r, v in p_absent.items() if r not in self.walk_optional and v is not None]
        return max(vals) if vals else 1.0

    # -- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "features": list(FEATURES), "outcomes": list(OUTCOMES),
                "models": {r: m.to_dict() for r, m in self.models_.items()}, "spread": self.spread_.to_dict(),
                "support": self.support_, "expected": self.expected_, "n_examples": self.n_examples_,
                "tuning": self.tuning_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NamingModel":
        if list(data.get("features", [])) != list(FEATURES) or list(data.get("outcomes", [])) != list(OUTCOMES):
            raise ValueError(f"naming model was trained on features {data.get('features')}, expected {FEATURES}")
        self = cls(NamingConfig.from_dict(data["config"]))
        self.models_ = {r: RankModel.from_dict(m) for r, m in data["models"].items()}
        for r, m in self.models_.items():
            if r not in RANKS or any(a.n_features_ != len(FEATURES) or b.n_features_ != len(FEATURES)
                                     for a, b in m.members_):
                raise ValueError(f"naming model for {r!r} has the wrong shape")
        self.spread_ = TaxonSpread.from_dict(data["spread"])
        self.support_ = {r: dict(v) for r, v in data["support"].items()}
        self.expected_ = dict(data["expected"])
        self.n_examples_ = {r: int(v) for r, v in data["n_examples"].items()}
        self.tuning_ = {r: dict(v) for r, v in data.get("tuning", {}).items()}  # none before tuning
        self.simulated_ = None  # kept beside, as arrays (``SimulatedCalls.save``): the engine's loader reads them
        return self


def printed_below(value: float, bound: float) -> str:
    """``value`` with the fewest decimals (two at least, six at most, then truncated) that print it below
    ``bound``. Why: a reviewer read "P(right) 0.98 below the level 0.98" for a P(right) of 0.978; the
    sentence must read as the comparison it states."""
    for d in range(2, 7):
        if round(value, d) < bound:
            return f"{value:.{d}f}"
    return f"{math.floor(value * 1e6) / 1e6:.6f}"


def _monotone(conf: Mapping[str, float], labels: Mapping[str, str | None], optional: Sequence[str],
              learned: Collection[str]) -> dict[str, float]:
    """P(right) non-increasing down the labelled, learned ranks: each is raised to the largest P(right) of
    the non-optional ranks below it (a right genus implies a right family, so P(family right) is at least
    P(genus right), and each deeper rank's model, trained on absent-above queries too, is evidence for
    it); an optional rank (subfamily) is raised so but raises nothing, and is capped by the rank above.

    Why raised and not capped from above (which the walk did before): each rank's model is fitted on
    its own simulated left-out taxa, fewer at the shallow ranks, so its P(right) is the noisier;
    capping took the lower of two noisy figures and stopped the walk at a family whenever that model
    dipped under the level (two disjoint halves of one reference disagreed on the deepest rank 1.2
    points more, and absent species were named to their right genus 0.4–6 points less often, at the
    same wrong-genus share). Why the subfamily raises nothing: its labels are often blank or
    inconsistent in BOLD, and its model alone was sure of a wrong family (an absent notodontid genus at
    92 % to a noctuid, subfamily P(right) 1.0, family 0.48). Blank ranks neither raise nor get raised;
    a rank decided by a published cut-off (its value is a share of simulated absent queries, not a
    model's probability) is left as it is.
    """
    out = dict(conf)
    ranks = [r for r in RANKS if r in out and labels.get(r) and r in learned]
    best = 0.0
    for r in reversed(ranks):
        out[r] = max(out[r], best)
        if r not in optional:
            best = out[r]
    cap = 1.0
    for r in ranks:
        out[r] = min(out[r], cap)
        if r not in optional:
            cap = out[r]
    return out


def _implied(conf: dict[str, float], absent: dict[str, float | None], labels: Mapping[str, str | None],
             learned: Collection[str], optional: Sequence[str]) -> None:
    """Each rank decided by a published cut-off made to agree with the ranks below it, in place: P(right) at
    least that of the nearest labelled non-optional rank below, P(absent) at most its P(absent) (and at most
    1 − P(right)). Why: the walk lets a confident family imply its order (``walk_optional``), so a row that
    printed order P(right) 0.85 beside family Syrphidae named at 0.99, or P(order absent) 1.0 over P(family
    absent) 0.51 for a beetle on a moth-and-fly reference, contradicted itself (e33 review F3: 403 of 450
    beetles). Why the cut-off rank gives way and not the learned ones: its figure is a share of simulated absent
    queries, no probability (``outcomes``); moving the learned ranks from it would move novelty and the
    collection's share, which it must not (``placed``). Nothing named changes: a cut-off rank is walk-optional,
    and it reaches the level only where a rank below it does (e33's 1,496 specimens re-triaged: every deepest rank,
    novelty and candidate as before; only order P(right)/P(absent) moved, in 419 rows)."""
    right, gone = 0.0, None
    for r in reversed(RANKS):
        a = absent.get(r)
        if not labels.get(r) or a is None:
            continue
        if r not in learned:
            conf[r] = max(conf[r], right)
            absent[r] = min(a, 1.0 - conf[r], 1.0 if gone is None else gone)
        if r not in optional:
            right, gone = conf[r], absent[r]


def _outcomes(queries: Sequence[SimQuery], tops: Sequence[Lineage], conf: Sequence[Mapping[str, float]],
              level: float, optional: Sequence[str]) -> dict[str, Any]:
    """What the walk at ``level`` does with each scenario of simulated queries (``outcome_rates``)."""
    cases = []
    for q, top, c in zip(queries, tops, conf, strict=True):
        labels = {r: top[k] for k, r in enumerate(RANKS)}
        deepest = deepest_confident(labels, c, level, optional)
        cases.append((q.scenario, q.group, q.truth, RANKS.index(deepest) if deepest else -1, labels))
    return outcome_rates(cases)


def scenario_of(truth: Lineage, ref_taxa: Mapping[str, Collection[str]]) -> tuple[str, str] | None:
    """A labelled specimen's scenario and group as the simulation gives its queries (``SimQuery``):
    ``absent:<rank>`` for the shallowest labelled rank whose taxon has no key (the group: that taxon), else
    ``present`` (the group: its species); None for a specimen without a species and nothing absent."""
    for k, r in enumerate(RANKS):
        if truth[k] and truth[k] not in ref_taxa[r]:
            return f"absent:{r}", str(truth[k])
    return ("present", str(truth[-1])) if truth[-1] else None


def outcome_rates(cases: Iterable[tuple[str, str, Lineage, int, Mapping[str, str | None]]]) -> dict[str, Any]:
    """The forecast's figures (``NamingModel.expected_``) over ``cases`` — (scenario, group, truth lineage, index
    of the deepest rank named or -1, labels) — the one owner of what each figure counts: ``build-reference``
    tallies its simulated queries with it and ``evaluate`` the specimens it measured, so a forecast and its
    measurement mean the same.

    Rates weigh every group (a left-out taxon, a species) equally, as the model was trained: a
    dozen calibration species with hundreds of specimens each must not decide the forecast.

    ``taxa`` counts the distinct taxa a figure rests on, which its interval is drawn over (``_interval``): a
    species the simulation left a barcode out of (group ``present:<species>``) and also met as a calibration
    specimen (``extra:<species>``) is two groups but one taxon, and "7686 queries of 1089 taxa" of a reference
    of 574 species made the interval narrower than the species support (ML review L1).
    """
    per: dict[str, list[tuple[str, float, str]]] = defaultdict(list)
    for scenario, group, truth, d, labels in cases:
        named = {r: labels[r] if k <= d else None for k, r in enumerate(RANKS)}
        if scenario == "present":
            if truth[-1]:
                per["known_species_right"].append((group, float(named["species"] == truth[-1]), truth[-1]))
                per["known_species_wrong"].append((group, float(bool(named["species"])
                                                                and named["species"] != truth[-1]), truth[-1]))
        else:
            rank = scenario.split(":", 1)[1]
            over = float(d >= RANKS.index(rank))
            taxon = str(truth[RANKS.index(rank)])
            per[f"absent_{rank}_named"].append((group, over, taxon))
            if rank in ("species", "genus"):  # by order: the pooled figure hid one order's risk (_BY_ORDER)
                per[f"absent_{rank}_named@{truth[0] or '?'}"].append((group, over, taxon))
            if rank == "species":
                if truth[3]:
                    per["absent_species_genus_right"].append((group, float(named["genus"] == truth[3]), taxon))
                    per["absent_species_genus_wrong"].append((group, float(bool(named["genus"])
                                                                           and named["genus"] != truth[3]), taxon))
    out: dict[str, Any] = {}
    by_order: dict[str, dict[str, Any]] = {f"{key}_by_order": {} for key, _ in _BY_ORDER}
    for key, vals in per.items():
        size = Counter(g for g, _, _ in vals)
        rate = sum(v / size[g] for g, v, _ in vals) / len(size)
        entry = {"rate": float(rate), "n": len(vals), "groups": len(size), "taxa": len({t for _, _, t in vals})}
        if "@" in key:
            figure, order = key.split("@", 1)
            by_order[f"{figure}_by_order"][order] = entry
        else:
            out[key] = entry
    return {**out, **by_order}  # the figures first, the breakdowns after them (as a bundle's JSON has always had)


_EXPECTED_NAMES = (("known_species_right", "known species named to the right species"),
                   ("known_species_wrong", "known species named to a wrong species"),
                   ("absent_species_named", "absent species named to a species (over-classification)"),
                   ("absent_species_genus_right", "absent species named to the right genus"),
                   ("absent_species_genus_wrong", "absent species named to a wrong genus"),
                   ("absent_subfamily_named", "absent subfamilies named to a subfamily"),
                   ("absent_genus_named", "absent genera named to a genus"),
                   ("absent_family_named", "absent families named to a family"),
                   ("absent_order_named", "absent orders named to an order"))


#: the over-classification figures also given order by order, and how a line says one order's figure. Why genera
#: too: on the dev train reference the pooled forecast of absent genera named to a genus read 0.015, mostly
#: Coleoptera's; Lepidoptera's own was 0.052 and a Lepidoptera plate measured 0.064 per genus (e29 ML review)
_BY_ORDER = (("absent_species_named", "absent {}species named to a species"),
             ("absent_genus_named", "absent {}genera named to a genus"))

#: ``expected_`` keys that count absent taxa named anyway (over-classification): what the level bounds
_OVER_CLASSIFICATION = ("absent_species_named", "absent_subfamily_named", "absent_genus_named",
                        "absent_family_named", "absent_order_named")


def level_bound(level: float) -> float:
    """The over-classification a level promises at even odds: at most (1 − L)/L of absent taxa named (0.020 at
    0.98; the module docstring's Markov bound). The forecast is held to it, rank by rank and order by order."""
    return (1.0 - level) / level


def expected_mix_note(level: float | str | None) -> str:
    """The forecast's header: what the figures are and what they assume (a plate with another share of absent
    taxa is decided at that share, so its figures differ: a reviewer's Coleoptera-only reference forecast 0.953
    of known beetles named right and a plate of 79 % other orders got 0.895)."""
    return (f"expected at level {level}, from queries simulated from this reference by leaving barcodes and taxa "
            "out (each figure over its own kind of query, at even odds that a specimen's taxon is absent; triage "
            "decides each collection at its own estimated share, so a collection's figures can differ):")


def _taxa(e: Mapping[str, Any]) -> int:
    """The distinct taxa a figure rests on (``outcome_rates``); a bundle from before counted groups only."""
    return int(e.get("taxa", e["groups"]))


def _counted(e: Mapping[str, Any]) -> str:
    """What a figure's interval is drawn over, as printed: "571 taxa", or "1089 groups" for a bundle from before
    taxa were counted. Why: such a bundle printed its groups as taxa ("7686 queries of 1089 taxa" for a reference
    of 571 species, the same data rebuilt: "of 571 taxa"), and its narrower interval read as the taxa's (e31 F24)."""
    return plural(_taxa(e), "taxon", "taxa") if "taxa" in e else plural(int(e["groups"]), "group")


def _interval(e: Mapping[str, Any]) -> tuple[float, float]:
    """A figure's 95 % interval over its distinct taxa (Wilson), the same for a pooled and a by-order figure."""
    # imported here: discovery.metrics brings scikit-learn and SciPy, which a DNA-only triage never loads
    # (tests/test_triage_process.py); only build-reference, info and evaluate describe a forecast
    from biodiscover.discovery.metrics import wilson_interval

    return wilson_interval(e["rate"] * _taxa(e), _taxa(e))


def _said_by_order(e: Mapping[str, Any]) -> str:
    """One order's forecast figure: "0.080 (23 taxa; 95 %: 0.021–0.254)". Why the count and interval: a
    by-order figure rests on a few dozen left-out taxa, and "Diptera 0.000" read as a firm zero missed by 4.6
    points on a real collection (ML review M3)."""
    lo, hi = _interval(e)
    return f"{e['rate']:.3f} ({_counted(e)}; 95 %: {lo:.3f}–{hi:.3f})"


def describe_expected(at: Mapping[str, Any], level: float | None = None) -> list[str]:
    """Human lines for one level's expected outcomes (see ``NamingModel.expected_``), each with its 95 %
    interval over the simulated taxa (Wilson). Why: a forecast from 46 left-out species moves 2 points with
    each one, and a user deciding whether a reference is big enough to trust at a level must see that.

    With ``level``, a last line names every over-classification figure (rank by rank; species and genera order by
    order) above what the level promises (:func:`level_bound`): the bound holds pooled, and a reviewer found Diptera's
    absent species forecast at 0.049 under a 0.020 promise, printed as a plain fact."""
    def said(e: Mapping[str, Any]) -> str:
        lo, hi = _interval(e)
        return f"{e['rate']:.3f} ({e['n']} queries of {_counted(e)}; 95 %: {lo:.3f}–{hi:.3f})"

    lines = [f"{label}: {said(at[k])}" for k, label in _EXPECTED_NAMES if k in at]
    orders = {key: at.get(f"{key}_by_order") or {} for key, _ in _BY_ORDER}  # a bundle from before: species only
    for key, words in _BY_ORDER:
        if len(orders[key]) > 1:
            lines.append(words.format("") + ", by order: " + ", ".join(
                f"{o} {_said_by_order(v)}" for o, v in sorted(orders[key].items())))
    if level is not None:
        bound = level_bound(level)
        over = [f"{label.split(' (')[0]} {at[k]['rate']:.3f}" for k, label in _EXPECTED_NAMES
                if k in _OVER_CLASSIFICATION and k in at and at[k]["rate"] > bound]
        for key, words in _BY_ORDER:
            if len(orders[key]) > 1:
                over += [f"{words.format(o + ' ')} {v['rate']:.3f}" for o, v in sorted(orders[key].items())
                         if v["rate"] > bound]
        if over:
            lines.append(f"above the {bound:.3f} the level {level:g} promises: {'; '.join(over)} — a higher "
                         "--level names fewer of them (and fewer known taxa)")
    return lines


#: the rank whose taxon must have keys for a specimen to count in an absent-``rank`` figure (``scenario_of``)
_PARENT = {"species": "genus", "subfamily": "family", "genus": "family", "family": "order"}


def forecast_vs_measured(expected: Mapping[str, Any], measured: Mapping[str, Any],
                         at_share: Mapping[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(key, label, text) per forecast figure: the forecast with its taxa and 95 % interval beside the same
    figure measured (``outcome_rates`` over labelled specimens) with its own 95 % interval over its taxa, marked
    where the measurement falls outside the forecast's interval, or "—" and why where no specimen could measure
    it; under each over-classification figure given order by order (``_BY_ORDER``), one row per order measured
    (key ``<key>_by_order:<order>``) where the forecast or the specimens span two orders or more.
    Why: the forecast is the promise ``build-reference`` made; whether it held on the user's own specimens is
    the one comparison they need, and a figure left unmeasured must not read as a 0. The measurement's own
    interval says whether a mark means anything: one absent genus measured is one draw, not a rate. Why by
    order: the pooled row read "forecast 0.014, measured 0.009" while Coleoptera measured 0.032 against 0.006
    and Diptera 0.000 against 0.080 (ML review M8).

    With ``at_share`` (``NamingModel.expected_at`` at the specimens' own estimated shares, as they were triaged),
    the forecast given first, with its interval and the verdict, is that one, and the even-odds one follows it in
    brackets. Why: the specimens were decided at their shares, so the even-odds forecast was the wrong yardstick
    (absent species named to the right genus: 0.351 at even odds, 0.634 measured on a collection that read 1.6 %
    of its genera absent, "outside the interval" for a gap that was the prior's; ML review M2)."""
    rows: list[tuple[str, str, str]] = []
    by_order = dict(_BY_ORDER)
    for key, label in _EXPECTED_NAMES:
        if key not in expected:
            continue
        m = measured.get(key)
        f, even = (at_share.get(key), expected[key]) if at_share else (expected[key], None)
        if m:
            rows.append((key, label, _beside(f, m, even)))
        elif key.startswith("known"):
            rows.append((key, label, _beside(f, None, even)
                         + "— (no evaluated specimen's species is among the reference keys)"))
        else:
            rank = key.split("_")[1]
            among = f", its {_PARENT[rank]} among them" if rank in _PARENT else ""
            rows.append((key, label, _beside(f, None, even)
                         + f"— (no evaluated specimen's {rank} is absent from the reference keys{among})"))
        if m and key in by_order:
            forecast = (at_share or expected).get(f"{key}_by_order") or {}
            evens = (expected.get(f"{key}_by_order") or {}) if at_share else {}
            mine = measured.get(f"{key}_by_order") or {}
            if len({*forecast, *mine}) < 2:  # one order on both sides: the pooled row is that order's
                continue
            for order, mo in sorted(mine.items()):
                rows.append((f"{key}_by_order:{order}", by_order[key].format(order + " "),
                             _beside(forecast.get(order), mo, evens.get(order))))
    return rows


def _beside(f: Mapping[str, Any] | None, m: Mapping[str, Any] | None, even: Mapping[str, Any] | None = None) -> str:
    """One forecast figure beside its measurement (``forecast_vs_measured``), the text after the label; without a
    measurement it ends at "measured " for the caller to say why. With ``even`` (the even-odds forecast), ``f`` is the
    forecast at the specimens' own shares and is said so, the even-odds figure in brackets after it."""
    where = "forecast at the specimens' estimated shares" if even is not None else "forecast"
    then = f" (at even odds {even['rate']:.3f})" if even is not None else ""
    if f is None:
        text = f"{where} — (the reference left out no taxon of it){then}, measured "
        lo, hi = 0.0, 1.0
    else:
        lo, hi = _interval(f)
        text = (f"{where} {f['rate']:.3f} ({_counted(f)}; 95 %: {lo:.3f}–{hi:.3f}){then}, "
                "measured ")
    if m is None:
        return text
    m_lo, m_hi = _interval(m)
    text += (f"{m['rate']:.3f} ({plural(m['n'], 'specimen')} of {_counted(m)}; "
             f"95 %: {m_lo:.3f}–{m_hi:.3f})")
    # as printed: a measured 0.000 is not "below" an interval printed from 0.000
    if f is not None and not round(lo, 3) <= round(m["rate"], 3) <= round(hi, 3):
        text += f"; outside the forecast's 95 % interval ({'above' if m['rate'] > hi else 'below'})"
        if m_lo <= hi and m_hi >= lo:
            text += ", but the two intervals overlap: too few taxa to tell"
    return text


def _describe_expected(at: Mapping[str, Any]) -> str:
    return "; ".join(describe_expected(at)[:5])


def fallback_bar(rank: str, support: Mapping[str, Any], level: float) -> float:
    """The best identity a rank decided by the published cut-off needs at ``level`` (``fallback_right``): the
    cut-off, raised to the ``level`` quantile of the reference's own simulated absent identities."""
    absent = support.get("absent_identities") or []
    cut = PUBLISHED_CUTOFFS[rank]
    return max(cut, float(np.quantile(absent, level))) if absent else cut


def cutoff_words(rank: str, support: Mapping[str, Any], level: float) -> str:
    """A rank decided by the published cut-off's one identity, as every output words it ("the order cut-off
    87.4%": ``fallback_bar``). Why one owner: build-reference said "order cut-off 0.85", ``info`` 87.4 % and a
    specimen's reason 85 % for the same reference (e33 review F2)."""
    return cutoff_phrase(rank, fallback_bar(rank, support, level))


def naming_limits(naming: "NamingModel") -> dict[str, Any]:
    """What a run's record keeps of its naming model for the export's method text: each rank decided by the
    published cut-off with the identity it needs (:func:`fallback_bar`), and the forecast's headline figures at
    the level. Why: the report said every rank was learned on a reference of one order, whose order was not.

    The figures are kept as the forecast holds them, not rounded: rounded to 0.0325, a rate build-reference printed
    as 0.032 read 0.033 in the report's methods, printed to three places in turn (e36 season review F10)."""
    level = naming.config.level
    expected = naming.expected_.get(f"{level}", {}) if isinstance(getattr(naming, "expected_", None), dict) else {}
    return {"fallback": {r: round(fallback_bar(r, s, level), 4) for r in RANKS
                         if (s := naming.support_.get(r, {})) and not s.get("learned") and "fallback" in s},
            "expected": {k: float(expected[k]["rate"]) for k in ("known_species_right", "absent_species_named")
                         if isinstance(expected.get(k), Mapping)}}


def _fallback_words(rank: str, s: Mapping[str, Any], level: float) -> str:
    """A rank the reference cannot train, in the words a taxonomist asked for: what it takes to be named (the
    one identity that acts), why, and what can go wrong (a fly at 89.5 % to a beetle was given Coleoptera by a
    Coleoptera-only reference whose stored sentence gave two thresholds in 380 characters). Why not learned is said
    as "too few to learn from by leaving each out in turn": "2 orders in the reference, 2 can be left out" read as
    jargon, and as if 2 were enough (e33 review F14)."""
    taxa = int(s.get("taxa", 0))
    bar, cut = fallback_bar(rank, s, level), PUBLISHED_CUTOFFS[rank]
    absent, source = s.get("absent_identities") or [], str(s.get("absent_from") or rank)
    held = plural(taxa, rank, RANK_PLURALS[rank])
    line = (f"{rank}: not learned ({held} in the reference: too few to learn from by leaving each out in turn): "
            f"named only at "
            f"≥ {bar:.1%} identity with the near-best candidates agreeing (the published COI cut-off {cut:.0%}"
            + (f", raised to where {level:g} of the reference's own {len(absent)} simulated absent-{source} "
               "queries lie below" if absent and bar > cut else "") + ")")
    if source != rank:
        line += (f". With no {rank} to leave out, a missing {rank} is taken to lie as far from the reference as a "
                 f"missing {source}; barcodes of different {RANK_PLURALS[rank]} can come closer than that, so a "
                 f"specimen of {'an' if rank[0] in 'aeiou' else 'a'} {rank} the reference lacks may be given one "
                 f"of its {RANK_PLURALS[rank]}")
    return line


def describe_support(support: Mapping[str, Mapping[str, Any]], level: float | None = None) -> Iterable[str]:
    """Human lines: which ranks were learned from the reference and which use a published cut-off (with
    ``level``, the identity such a rank needs and its risk, from the bundle's own figures; without, the
    sentence stored at fit).

    Why these words: "learned from 38 left-out taxa" and "1675 present queries met their species from another
    country, 646 left-out species met their relatives …" read as jargon to a taxonomist (e33 review F14), and the
    second count is of queries, not species: each line says what was left out and what was searched without what."""
    for r in RANKS:
        s = support.get(r, {})
        if s.get("learned"):
            taxa = plural(int(s.get("leave_out_taxa") or 0), r, RANK_PLURALS[r])
            line = f"{r}: learned by leaving each of {taxa} out of the reference in turn"
        elif level is not None and "fallback" in s:
            line = _fallback_words(r, s, level)
        else:
            line = s.get("why") or f"{r}: published cut-off {PUBLISHED_CUTOFFS[r]:.2f}"
        if "met_elsewhere" in s:  # a bundle before it has no such key and says nothing
            n = s["met_elsewhere"]
            line += ("; the keys give no country: no known species was met from another part of its range"
                     if n is None else f"; {n} queries of known species were also searched without their species' "
                     "keys from their own country (a species met from another part of its range)")
            if n is not None and s.get("absent_met_elsewhere"):
                line += (f", {s['absent_met_elsewhere']} queries of left-out species without their relatives' keys "
                         "from their own country")
        yield line
