"""What discovery hands the database about a candidate species: the proposal and its evidence.

Why one typed, versioned record here, in ``storage``: discovery produces it, the
database stores it (JSON in ``proposals.evidence``), the review TUI draws it,
exports flatten it and a review that splits or merges a candidate recomputes it.
All of them import ``storage``, and none may import each other; with a frozen
dataclass they share field names checked by the type checker instead of dict
keys each reader guesses. ``format`` grows when a field changes meaning, so an
old reader refuses a newer record instead of misreading it.

:class:`Evidence` ``to_dict()`` keeps the JSON layout the database has always held
(flat keys such as ``within_distances`` and ``nearest_known``) plus ``format``;
``from_dict`` reads that layout, including records written before the format
existed (format 0: the same keys). Top-level keys this version does not know are
kept in ``extra`` and written back, so nothing stored is lost; no reader
interprets them.

:class:`CandidateProposal` is the one proposal record: discovery builds it and
``Database.write_proposals`` stores it (``storage.db.proposals.ProposalIn`` is the
same class), so the two are never kept in step by hand.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable, Mapping, Sequence

from biodiscover.storage.jsonable import jsonable
from biodiscover.storage.records import RANK_PLURALS, RANKS, country_key

__all__ = [
    "EVIDENCE_FORMAT",
    "FULL_READ",
    "SPECIES_SPAN",
    "BinEvidence",
    "CandidateProposal",
    "DroppedKey",
    "Evidence",
    "Geography",
    "Member",
    "MemberHit",
    "NearSpecies",
    "NearestCandidate",
    "NearestKnown",
    "RepresentativeImage",
    "SizeStats",
    "SizeSummary",
    "Spread",
    "best_identity",
    "chance_note",
    "congeners_note",
    "data_mark",
    "indistinct_congeners",
    "known_elsewhere",
    "member_quality",
    "short_reads",
    "span_note",
    "species_spread",
    "third_species",
    "tied_species",
    "uncompared",
    "unusable_reads",
]

#: 1: the first versioned layout (the keys discovery wrote before, plus ``format``).
#: 2: ``member_hits`` (each member's best reference hit) and the nearest known species' ``barcode`` and
#:    ``image``; records of format 0 and 1 read as before (those fields empty).
#: 3: ``hit_barcodes`` (the barcode of each member hit's key), ``between_distance.member`` (a specimen of the
#:    closest candidate) and ``bin.shared_members``; records before read with them empty.
#: 4: ``near_species`` (the known species nearest the members, with their reference keys' count and countries);
#:    records before read with it empty.
#: 5: ``MemberHit.chance`` (the identity unrelated sequences reach over the bases the member shares with its key),
#:    ``NearSpecies.apart`` (how far apart the listed congeners' keys lie) and ``dropped_keys`` (records the
#:    reference refused or set aside that members match closely); records before read with them empty, and say
#:    nothing of them.
#: 6: ``mean_probability`` is the members' mean calibrated P(same species as the others) alone
#:    (``discovery.clustering_methods.threshold_hdbscan``); before, each member's figure was averaged with HDBSCAN's
#:    soft membership, which reads ≈0 for most members of a tight candidate. Records before keep that figure as
#:    ``extra["clustering_score"]`` and read ``mean_probability`` empty, so it is never shown as a membership.
EVIDENCE_FORMAT = 6


def _float(value: Any) -> float | None:
    """A finite float, or None (JSON null, NaN)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in (values or ()) if v is not None)


def _pair(values: Any) -> tuple[float, float] | None:
    if values is None:
        return None
    lo, hi = (float(v) for v in values)
    return lo, hi


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` restricted to ``cls``'s fields; a key it does not have is a malformed record."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has unknown field(s) {', '.join(map(repr, unknown))}")
    return dict(data)


def _counts(data: Any) -> dict[str, int]:
    if data is not None and not isinstance(data, Mapping):
        raise ValueError(f"counts must be a JSON object (name → count), got {type(data).__name__}")
    return {str(k): int(v) for k, v in (data or {}).items()}


#: What a malformed part raises besides ValueError: a missing key, a list where an object belongs, ``Infinity``
#: where a count belongs (Python's json reads it).
_MALFORMED = (TypeError, KeyError, AttributeError, OverflowError)


def _part(kind: Any, value: Any) -> Any:
    """``kind.from_dict(value)``, a malformed ``value`` as a ValueError naming ``kind``. Why: every reader of a
    stored record (the review's detail, the report, the queue filter) catches ValueError, the one error this
    module promises; a KeyError or AttributeError from one hand-edited record went past them (the HTML export
    stopped with a traceback)."""
    try:
        return kind.from_dict(value)
    except ValueError as err:
        if str(err).startswith(kind.__name__):
            raise
        raise ValueError(f"{kind.__name__}: {err}") from err
    except _MALFORMED as err:
        raise ValueError(f"{kind.__name__} is malformed ({type(err).__name__}: {err})") from err


# ---------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """Pairwise p-distances among a candidate's members: mean and max (fractions)."""

    mean: float | None = None
    max: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Spread":
        d = _known(cls, data)
        return cls(_float(d.get("mean")), _float(d.get("max")))


@dataclass(frozen=True)
class NearestKnown:
    """The best reference barcode for the candidate: identity = 1 - p-distance;
    ``top_distances``: p-distances of the aligned top hits, ascending."""

    species: str | None = None
    genus: str | None = None
    processid: str | None = None
    identity: float | None = None
    top_distances: tuple[float, ...] = ()
    #: the reference barcode of ``processid`` (the review's DNA tab aligns the members to it)
    barcode: str | None = None
    #: its photograph, where the reference dataset has one (shown beside the members' photos)
    image: str | None = None
    #: the naming model's reason for not naming the closest member that species (discovery.naming)
    not_named_because: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NearestKnown":
        d = _known(cls, data)
        return cls(d.get("species"), d.get("genus"), d.get("processid"), _float(d.get("identity")),
                   _floats(d.get("top_distances")), d.get("barcode") or None, d.get("image") or None,
                   d.get("not_named_because"))


@dataclass(frozen=True)
class MemberHit:
    """One member's best reference hit (what the engine aligned it to): kept per member so a review that
    splits or merges candidates can say which known species is nearest to the new member set."""

    species: str | None = None
    genus: str | None = None
    processid: str | None = None
    identity: float | None = None
    #: informative bases the member shares with that key (None: not recorded, records before this field)
    overlap: int | None = None
    #: the identity unrelated sequences reach over that many bases (the reference's shuffled-key curve,
    #: ``DiscoveryModel.null_floor``; format 5): what :func:`unusable_reads` reads; None: not known to the run
    chance: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MemberHit":
        d = _known(cls, data)
        overlap = d.get("overlap")
        return cls(d.get("species"), d.get("genus"), d.get("processid"), _float(d.get("identity")),
                   None if overlap is None else int(overlap), _float(d.get("chance")))


#: a read with fewer called bases than this is partial (BOLD's barcode standard asks for 500 of COI-5P's 658): it does
#: not speak for the candidate's identity to a known species where a full-length member does (``best_identity``), and
#: the report's "partial reads" flag counts the members under it
FULL_READ = 500


def short_reads(hits: Mapping[str, MemberHit]) -> frozenset[str]:
    """The members whose read shares fewer than ``FULL_READ`` informative bases with their best key
    (``best_identity``); members whose overlap was not recorded are not counted short."""
    return frozenset(pid for pid, h in hits.items() if h.overlap is not None and h.overlap < FULL_READ)


def unusable_reads(hits: Mapping[str, MemberHit]) -> dict[str, MemberHit]:
    """The members whose best identity to any reference key is nearer chance than identity: below the midpoint
    between the identity unrelated sequences reach over the bases it shares with its key (``MemberHit.chance``)
    and 100 %. Members whose chance level was not recorded (records before format 5, a bundle without the curve)
    are never counted.

    Why: such a read cannot be a new species' COI, only a sequence that is not this gene of this specimen — a
    contaminant, a pseudogene, a misread or another gene region. Triage already withholds a name from a read no
    closer than chance (``DiscoveryModel._check_homology``), but one a few points above it went on to be proposed:
    on the real US plate (5,289 specimens) ``Unplaced sp. cand31`` (BETN14393-22, 60.5 % to a *Simulium* key over
    618 bases; unrelated sequences reach 56.7 % there) read "barcode gap: single specimen, nearest known 39.5 %
    away" and novelty 0.99 — the most distinct "new species" of the plate; its specimen is an *Amara*.

    Why the midpoint, from the reference's own curve (the bundle's ``null_identity``, learned at build-reference
    from shuffled keys): a read's identity above chance is what it shares by descent; one that shares less than half
    of what an identical read would is closer to an unrelated sequence than to any key. A real COI read of an
    insect lies well above it even where its whole order is absent: 600 keys of that reference searched with
    every key of their own order left out reached 85.6 % (median), 80.7 % at the 1 % quantile and 78.4 % at the
    lowest, none under the midpoint (78.4 % at 658 bases), though that lowest came within 0.1 point of it — so a
    read of a lineage far outside the reference (another class) may be marked too, and the mark says so. On that
    plate it marks 2 of 5,289 specimens and 2 of 50 candidates — cand31 and ``Unplaced sp. cand32``
    (BETN15850-23, 75.4 % to an *Idaea* key over 305 bases, the midpoint 79.0 %; also an *Amara*) — and none of
    the 13 holding the plate's new species; the lowest real barcode there, of a genus the reference lacks, reads
    82.2 %."""
    return {pid: h for pid, h in hits.items() if h.identity is not None and h.chance is not None
            and h.identity < (1.0 + h.chance) / 2}


def chance_note(evidence: "Evidence") -> str | None:
    """``not usable as COI: 60.5% to its nearest key over 618 bases, nearer the 56.7% unrelated sequences reach than
    identity — possible contaminant, pseudogene or misread`` where every member is such a read
    (:func:`unusable_reads`), ``2 of 9 members …`` where some are; None where none is (or none was recorded).
    The one sentence the review header, the Evidence tab, proposals.csv, the report and the archive's remarks give."""
    bad = unusable_reads(evidence.member_hits)
    if not bad:
        return None
    worst = min(bad.values(), key=lambda h: h.identity or 0.0)
    n = len(evidence.member_hits)
    who = "" if len(bad) == n else f"{len(bad)} of {n} members: "
    shared = f" over {worst.overlap} bases" if worst.overlap else ""
    return (f"not usable as COI: {who}{100 * (worst.identity or 0.0):.1f}% to {'its' if n == 1 else 'the'} nearest "
            f"key{shared}, nearer the {100 * (worst.chance or 0.0):.1f}% unrelated sequences reach than identity — "
            "possible contaminant, pseudogene or misread (or a lineage far outside the reference)")


def data_mark(evidence: "Evidence") -> str | None:
    """A few words for a queue's marks column on what is wrong with a candidate's data, not its species: ``not COI``
    (every member's read is as near its key as chance: :func:`unusable_reads`), ``1/9 not COI`` (some are),
    ``dropped key: Pyrausta pseudonythesalis`` (members match a record the reference refused or set aside:
    ``DroppedKey``), joined by ``; ``; None where there is nothing to say. Why: a candidate whose reads are junk
    looked in the queue like the most distinct new species of a real plate (novelty 0.99, 39.5 % from anything)."""
    parts = []
    bad, n = len(unusable_reads(evidence.member_hits)), len(evidence.member_hits)
    if bad:
        parts.append("not COI" if bad == n else f"{bad}/{n} not COI")
    if evidence.dropped_keys:
        parts.append(f"dropped key: {evidence.dropped_keys[0].species or evidence.dropped_keys[0].processid}")
    return "; ".join(parts) or None


def uncompared(evidence: "Evidence") -> bool:
    """Two or more members were read (each has a best reference hit) yet the evidence holds no distance between
    any two of them: their barcodes share too little of the region to be aligned (``discovery.proposals._within``
    leaves such pairs out). Why say it: a reviewer merged two Norwegian beetles, 518 and 652 nt and ≈33 % apart by
    k-mers, and the merged candidate's empty within distance read as no problem everywhere it was shown."""
    return (len(evidence.member_hits) >= 2 and evidence.within_distance is None
            and not evidence.within_distances)


def member_quality(evidence: "Evidence", processid: str) -> list[str]:
    """What the evidence says of one member's data (the Darwin Core archive's remarks for it): that its read is not
    usable as COI (:func:`unusable_reads`), and each dropped reference record it matches (``DroppedKey``)."""
    out = []
    h = unusable_reads(evidence.member_hits).get(processid)
    if h is not None:
        shared = f" over {h.overlap} bases" if h.overlap else ""
        out.append(f"barcode not usable as COI: {100 * (h.identity or 0.0):.1f}% to its nearest reference key{shared}, "
                   f"nearer the {100 * (h.chance or 0.0):.1f}% unrelated sequences reach than identity (possible "
                   "contaminant, pseudogene or misread)")
    for k in evidence.dropped_keys:
        if processid in k.members:
            out.append(f"matches {k.processid} ({k.species or 'no species'}) at {100 * k.members[processid]:.1f}%, a "
                       f"reference record {k.why}")
    return out


def congeners_note(evidence: "Evidence", s: "NearSpecies | None") -> str | None:
    """``2 Amara species within 0.7% of each other (Amara ovata / Amara similata), nearer each other than the members
    are to them (2.9%): DNA cannot pick among them`` where ``s`` (the species the ⚑ names) has such congeners
    (:func:`indistinct_congeners`); the review's ⚑ lines and the exports' flag say it."""
    group = indistinct_congeners(evidence, s) if s is not None else []
    if not group or s is None or s.identity is None:
        return None
    return (f"{len(group)} {_genus_of(s)} species within {100 * species_spread(group):.1f}% of each other "
            f"({' / '.join(t.species for t in group)}), nearer each other than the members are to them "
            f"({100 * (1.0 - s.identity):.1f}%): DNA cannot pick among them")


def best_identity(identities: Mapping[str, float], short: Collection[str]) -> float | None:
    """The best identity over the members read at full length (not in ``short``), over every member where none
    is; None for no identity.

    Why: a short read shares only a conserved stretch with its key, so its identity runs high. On a real
    Australian plate 8 of 47 candidates took their headline identity (the queue's, the header's, the barcode gap's
    and the ⚑'s distance) from one 214–307-base read, 1.0–3.6 points above their best full-length member
    (*Spodoptera* #2: 96.9 % over 257 bases, 95.4 % at full length): the closest-first order and the ⚑'s "within
    3 %" read the worst read of each candidate."""
    full = [v for pid, v in identities.items() if pid not in short and v == v]
    values = full or [v for v in identities.values() if v == v]
    return max(values) if values else None


def cutoff_phrase(rank: str, identity: float) -> str:
    """``the order cut-off 87.4%``: a rank decided by a published cut-off's one identity, in the words every output
    uses (``naming.cutoff_words`` words a model's bar so; the review and the exports a run's recorded one)."""
    return f"the {rank} cut-off {identity:.1%}"


def run_order_cutoff(parameters: Any) -> float | None:
    """The identity a run's order needed (``parameters.naming_limits.fallback.order``, recorded at triage by
    ``naming.naming_limits``); None where the reference learned its orders, or for a run from before."""
    limits = parameters.get("naming_limits") if isinstance(parameters, Mapping) else None
    fallback = limits.get("fallback") if isinstance(limits, Mapping) else None
    cut = fallback.get("order") if isinstance(fallback, Mapping) else None
    return float(cut) if isinstance(cut, (int, float)) else None


def below_order_cutoff(identity: float | None, cutoff: float | None) -> bool | None:
    """Whether the nearest known species at ``identity`` lies below the run's order cut-off (:func:`run_order_cutoff`):
    None where either is unknown (no identity; a reference that learned its orders, or a run from before). The one
    comparison :func:`below_order_words`, the review's marks and the exports' ``nearest_below_order_cutoff`` make."""
    if identity is None or cutoff is None or identity != identity:
        return None
    return identity < cutoff


def beyond_cutoff_words(rank: str, many: bool = False) -> str:
    """``an order the reference lacks, or a distant family or genus of its own orders`` (``many``: ``orders the
    reference lacks, or distant families or genera of its own orders``): what a specimen no ``rank`` of the reference
    lies within the cut-off of may be, in the words triage's refusal (naming ``_refusal``), its summary line and the
    review's and report's nearest-species marks share.

    Why both: a key below the order cut-off is no proof the order is absent. A season on a fly-and-beetle reference
    read "perhaps orders the reference lacks" every week, of weeks that held no other order: three quarters of the
    186 specimens so worded were absent genera and species of its own orders (Ilybius at 88.4 %, Bradysia,
    Phyllobius at 84 %), their nearest keys as far as another order's (e36 season review F4)."""
    below = [r for r in ("family", "genus", "species") if RANKS.index(r) > RANKS.index(rank)][:2]
    if many:
        kin = " or ".join(RANK_PLURALS[r] for r in below)
        return (f"{RANK_PLURALS[rank]} the reference lacks, or distant {kin} of its own {RANK_PLURALS[rank]}" if kin
                else f"perhaps {RANK_PLURALS[rank]} the reference lacks")
    a = "an" if rank[0] in "aeiou" else "a"
    if not below:  # a species: nothing deeper to name instead, and a far key still proves no absence
        return f"perhaps {a} {rank} the reference lacks"
    return f"{a} {rank} the reference lacks, or a distant {' or '.join(below)} of its own {RANK_PLURALS[rank]}"


def below_order_words(identity: float | None, cutoff: float | None, placed: bool = False,
                      sep: str = ": ") -> str | None:
    """``far from every key, under the order cut-off 87.4%: an order the reference lacks, or a distant family or
    genus of its own orders`` (:func:`beyond_cutoff_words`, after ``sep``) where the nearest known species lies below
    the run's order cut-off (:func:`below_order_cutoff`), else None; of a candidate ``placed`` in a taxon, only how
    far its nearest key is.

    Why: 198 beetle candidates of a reference holding moths and flies showed a moth or fly as "nearest known
    species" at 78-89 % with no word that so far a species says nothing of the order (e33 review F4). Why not of a
    placed one: the review showed "Coleoptera › Curculionidae › Entiminae › Sitona (genus)" and under it "perhaps
    an order the reference lacks" (e36 season review F4): the machine (or a reviewer) has said which order."""
    if cutoff is None or not below_order_cutoff(identity, cutoff):
        return None
    far = f"far from every key, under {cutoff_phrase('order', cutoff)}"
    return far if placed else f"{far}{sep}{beyond_cutoff_words('order')}"


def nearest_first(near: Sequence["NearSpecies"], short: Collection[str]) -> tuple["NearSpecies", ...]:
    """The nearest known species in the one order the review and the exports name them: those a member read at
    full length met (``short``: the others, :func:`short_reads`), by identity, then those only short reads met.
    The first is the candidate's nearest known species, the one the queue and the header name (their identity is
    :func:`best_identity`'s, over the full-length members).

    Why: a species only a 250-base read met took its identity from that read, which runs high, and headed the
    Evidence tab (e33 review F7: #82's "Palpita margaritacea 88.8 %" below a header "nearest known Scathophaga
    furcata (83.9%)"; #43's Hemiceras, met by three 233-base reads, below "Proteuxoa tibiata")."""
    def only_short(s: "NearSpecies") -> bool:
        return bool(s.members) and all(pid in short for pid in s.members)

    return tuple(sorted(near, key=lambda s: (only_short(s), -(s.identity or 0.0), s.species)))


@dataclass(frozen=True)
class NearSpecies:
    """One of the known species nearest a candidate's members (format 4), from what the engine aligned them to.

    Why beside ``nearest_known``: the best key names one species, and a reviewer of a real plate could not
    see a second species tied with it (0.0 % apart, the true one), nor that every key of the species shown
    came from another country (10 of 115 candidates were known species met from another part of their range).
    ``identity``: the best identity of any member to one of its keys; ``n_keys``: its keys in the reference
    (None: not known to the run that made this); ``countries``: where those keys were collected, country →
    keys (keys beyond their sum carry no country; None: the reference records no country at all);
    ``members``: member processid → its identity to the species (what a split or merge recomputes from);
    ``apart`` (format 5): listed congener → the p-distance between the two species' nearest keys in the reference,
    where it is within the members' distance to either (:func:`indistinct_congeners`; empty: farther, or not
    measured by the run that made this)."""

    species: str
    genus: str | None = None
    identity: float | None = None
    n_keys: int | None = None
    countries: dict[str, int] | None = None
    members: dict[str, float] = field(default_factory=dict)
    apart: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NearSpecies":
        """Read a stored entry; ``ValueError`` naming NearSpecies for any malformed one (the queue filter reads
        entries one by one, outside :meth:`Evidence.from_dict`)."""
        d = _known(cls, data)
        species, genus = d.get("species"), d.get("genus")
        if not isinstance(species, str) or not species:
            raise ValueError(f"NearSpecies needs a species name, got {species!r}")
        if genus is not None and not isinstance(genus, str):
            raise ValueError(f"NearSpecies {species!r}: genus must be a name, got {genus!r}")
        countries, members = d.get("countries"), d.get("members") or {}
        try:
            return cls(species, genus, _float(d.get("identity")),
                       None if d.get("n_keys") is None else int(d["n_keys"]),
                       None if countries is None else _counts(countries),
                       {str(k): float(v) for k, v in members.items()},
                       {str(k): float(v) for k, v in (d.get("apart") or {}).items()})
        except (*_MALFORMED, ValueError) as err:
            raise ValueError(f"NearSpecies {species!r} is malformed ({type(err).__name__}: {err})") from err

    @property
    def no_country(self) -> int:
        """Keys of the species with no country recorded."""
        return max(0, (self.n_keys or 0) - sum((self.countries or {}).values()))

    def keys_text(self, most: int = 4) -> str:
        """``5 keys: Panama 4, Mexico 1`` / ``1 key, no country`` / ``2 keys (countries not recorded)``; the ``most``
        countries with the most keys, then how many more (a Holarctic species' 13 countries filled three lines
        at 80 columns)."""
        if self.n_keys is None:
            return "keys not counted"
        head = f"{self.n_keys} key{'' if self.n_keys == 1 else 's'}"
        if self.countries is None:
            return f"{head} (countries not recorded)"
        if not self.countries:
            return f"{head}, no country"
        places = [f"{c} {n}" for c, n in sorted(self.countries.items(), key=lambda cn: (-cn[1], cn[0]))]
        if len(places) > most:
            more = len(places) - most
            places = [*places[:most], f"{more} more countr{'y' if more == 1 else 'ies'}"]
        if self.no_country:
            places.append(f"no country {self.no_country}")
        return f"{head}: {', '.join(places)}"


#: identities at most this far below the nearest species' are a tie (the header names every tied species)
TIE = 0.001
#: a listed species this close to the members (p-distance) may be their own species met elsewhere, whatever
#: genus the candidate sits in (``known_elsewhere``)
ELSEWHERE_DISTANCE = 0.05


def tied_species(near: Sequence["NearSpecies"]) -> list["NearSpecies"]:
    """The species tied with the nearest (within ``TIE`` of its identity) in its genus, nearest first; [] for an
    empty list. Why congeners only: two species of different genera or families equally far (91.4 % to a
    *Halysidota* and a *Gonodonta*, 18 such "ties" on a real plate, all at 89-93 %) say that nothing known is close,
    not which species a candidate may be."""
    if not near or near[0].identity is None:
        return list(near[:1])
    top, genus = near[0].identity, _genus_of(near[0])
    return [s for s in near if s.identity is not None and top - s.identity <= TIE + 1e-12 and _genus_of(s) == genus]


def _genus_of(s: "NearSpecies") -> str:
    return s.genus or s.species.split()[0]


def indistinct_congeners(evidence: "Evidence", s: "NearSpecies") -> list["NearSpecies"]:
    """``s`` and the listed species of its genus whose keys lie closer to ``s``'s keys in the reference
    (``NearSpecies.apart``) than the members lie to ``s`` — species nearer each other than the candidate is to any
    of them, which its barcode cannot tell apart — nearest first; [] where there is no such congener.

    Why: the ⚑ line named one species. On the real US plate #34 read "⚑ Amara ovata (97.1%) … within the 3%", and
    a reviewer following it with ``i`` would have named the specimen *A. ovata*; it is *A. aenea*. The measure is
    the reference's own: the distance between the two species' closest keys (there *A. ovata* and *A. similata*
    lie 0.7 % apart; *A. aenea* lies 4.1 % from *A. ovata*, 4.9 % from *A. similata*), against the candidate's
    own distance to the flagged species (2.9 %): a specimen 2.9 % from *A. ovata* is as near a species 0.7 % from
    it. A 0.1 % tie (``TIE``) or a margin tuned on a plate would say nothing of that. It does not say which
    species the specimen is (*A. aenea*, 95.9 %, is not grouped: its keys lie farther from *A. ovata*'s than the
    specimen does); it says that the species named is not picked by DNA.

    Only congeners within ``SPECIES_SPAN`` of ``s`` count: two species whose keys lie farther apart than one species
    usually spans are told apart by DNA. On the e33 review's plate #15 (*Cydia*, a species the reference lacks) read
    "2 Cydia species 7.1% apart … DNA cannot pick among them" beside members 7.2 % from both: what the figures say
    there is a third species, not two DNA cannot tell apart.
    """
    if s.identity is None:
        return []
    reach = min(1.0 - s.identity, SPECIES_SPAN)
    genus = _genus_of(s)
    group = [s] + [t for t in evidence.near_species if t.species != s.species and _genus_of(t) == genus
                   and _apart(s, t) <= reach + 1e-12]
    return sorted(group, key=lambda t: (-(t.identity or 0.0), t.species)) if len(group) > 1 else []


def _apart(a: "NearSpecies", b: "NearSpecies") -> float:
    """The distance between two listed species' nearest keys the reference measured (``NearSpecies.apart``), inf
    where it did not (farther than the members lie to either)."""
    return min(a.apart.get(b.species, math.inf), b.apart.get(a.species, math.inf))


def species_spread(group: Sequence["NearSpecies"]) -> float:
    """The widest distance between two species of ``group`` (:func:`indistinct_congeners`) the reference measured."""
    measured = [_apart(a, b) for i, a in enumerate(group) for b in group[i + 1:]]
    return max((d for d in measured if math.isfinite(d)), default=0.0)


#: how far apart (p-distance) one species' barcodes usually lie at most: the published COI species cut-off
#: (97 %: Hebert et al. 2003; BOLDigger3), the one ``discovery.naming.PUBLISHED_CUTOFFS`` falls back to (a test keeps
#: the two equal). What the ⚑ line grades its gap by (``span_note``): on two real plates the flagged candidates within
#: it were 4 of 4 known species, those beyond it 7 of 36 (Costa Rica 5 of 28, Australia 2 of 8).
SPECIES_SPAN = 0.03


def twin_threshold(evidence_threshold: float | None) -> float:
    """The distance within which two candidates' consensus barcodes are one species: the threshold the run's
    clustering cut at (``Evidence.threshold``, the barcode gap it learned: ``clustering.learned_gap.threshold``
    in the run's parameters), else the span one species usually has (``storage.evidence.SPECIES_SPAN``). The one
    rule for the queue's twin mark, the evidence's "same as" and the warning at accept."""
    return float(evidence_threshold) if evidence_threshold is not None and evidence_threshold > 0 else SPECIES_SPAN


def span_note(s: "NearSpecies", *, short: bool = False) -> str:
    """How the gap to a flagged species reads against ``SPECIES_SPAN``: ``0.9% apart, within the 3% one species
    usually spans`` / ``7.4% apart, more than the 3% one species usually spans, as a species known only from far
    away can be`` (``short``, the review header: ``7.4% apart (one species usually spans ≤ 3%)``); empty without an
    identity.

    Why: the ⚑ sentence read the same at 0.9 % to one key as at 7.4 % to twelve keys that lie within 0.3 % of
    each other (second review of the real Costa Rican plate, S1). The species' own spread across its countries was
    measured as the yardstick first and does not tell them apart there: the known species met elsewhere sat 0.5–16
    times it away, the new ones 0.9–32 times. Beyond 3 % the line says a known species can still be there: on an
    Australian plate two of the eight flagged beyond it were known (*Bactrocera kraussi*, its 29 keys all from
    Papua New Guinea, at 6.4 %), and "more than 3 %" alone read as "new" to the reviewer."""
    if s.identity is None:
        return ""
    gap = max(0.0, 1.0 - s.identity)
    if short:  # the review header's two lines at 80 columns: the figures, no verdict
        return f"{100 * gap:.1f}% apart (one species usually spans ≤ {100 * SPECIES_SPAN:g}%)"
    if gap <= SPECIES_SPAN + 1e-12:
        return f"{100 * gap:.1f}% apart, within the {100 * SPECIES_SPAN:g}% one species usually spans"
    return (f"{100 * gap:.1f}% apart, more than the {100 * SPECIES_SPAN:g}% one species usually spans, as a species "
            "known only from far away can be")


def known_elsewhere(evidence: "Evidence", genus: str | None, shown: int = 5,
                    met_here: Mapping[str, Mapping[str, int]] | None = None) -> "NearSpecies | None":
    """The nearest listed species that may be the candidate's OWN species, met from another part of its range;
    None when no listed species is one, or when it cannot be told (no member's country is recorded, or the
    reference records no country).

    Why: a known species whose reference keys all come from other countries looks exactly like a new one — on a
    real Costa Rican plate 10 of 115 candidates were known species whose keys came from French Guiana, Panama,
    Trinidad, Mexico, Brazil or no country, proposed at P(absent) up to 0.99 with a clean barcode gap. Distance
    alone cannot tell them from new species (their keys lay 1–7 % away, as congeners do); where the keys were
    collected can say that nothing rules the known species out. The rule, kept simple so a reviewer can
    predict it: among the first ``shown`` listed species, the first that

    * is close enough to be the candidate's species: the nearest listed species in the candidate's ``genus``
      (the genus it is placed in; None when placed above genus), or any listed species within
      ``ELSEWHERE_DISTANCE`` (5 %) of the members, and
    * has no key from any country the candidate's members were collected in (keys with no country recorded
      vouch for no country), and
    * is not a species beside which the reference holds a separate one (:func:`third_species`): beyond the
      ``SPECIES_SPAN`` a congener's keys lying nearer it than the members lie to either says the candidate is as
      far from both as two species of the genus are from each other, and from every species listed after them.

    It says "cannot be ruled out", not "is known": a new species next to a congener known only from elsewhere
    is flagged as well (benchmarks/RESULTS-tui.md measures both on that plate).

    ``met_here``: species → {country: specimens} of the candidates reviewers assigned to it
    (``Database.assigned_countries``): such a candidate is a key from its members' countries now. Why: once a
    reviewer assigned #24 (ten Costa Rican specimens) to *Hemiceras losa*, six other candidates 4.9 % from it still
    read "H. losa … none from Costa Rica" (second review of the real plate, S2): the species is known from here
    now, and a conspecific from here would have clustered with #24."""
    near = evidence.near_species[:shown]
    here = {country_key(c) for c in evidence.geography.countries} if evidence.geography is not None else set()
    if not near or not here:
        return None
    for i, s in enumerate(near):
        close = (i == 0 and genus is not None and s.genus == genus) or \
            (s.identity is not None and 1.0 - s.identity <= ELSEWHERE_DISTANCE + 1e-12)
        known_from = {country_key(c) for c in [*(s.countries or ()), *(met_here or {}).get(s.species, {})]}
        if close and third_species(evidence, s) is not None:
            return None  # the species listed after it lie farther still
        if close and s.countries is not None and not here & known_from:
            return s
    return None


#: two distances closer than this are one (identities are stored as 32-bit floats): "nearer" means nearer by more
SAME_DISTANCE = 1e-6


def third_species(evidence: "Evidence", s: "NearSpecies") -> "NearSpecies | None":
    """A listed congener of ``s`` whose keys lie more than ``SPECIES_SPAN`` from ``s``'s (two species DNA tells
    apart) yet nearer them than the members lie to either ``s`` or it, where the members lie beyond the span from
    ``s``; None where there is none (or within the span, where a known species may still be the candidate's own).

    Why: the ⚑ said "may be a known species met elsewhere: 7.2% apart" on the e33 review's #15 (*Cydia pomonella*,
    absent from the reference), whose nearest species *C. populana* and *C. caryana* lie 7.1 % from each other and
    7.2 % / 7.7 % from the members: by the reference's own measure of its species the candidate is a third one. The
    flag beyond the span stays where nothing says so (a known species known only from far away, *Bactrocera
    kraussi* at 6.4 % on an Australian plate, has no such congener listed). On that review's run it took the ⚑
    from 3 of 20 candidates (#15, #57, #144), each a species the reference lacks, and "DNA cannot pick among them"
    from 5 of the 7 that said it (with :func:`indistinct_congeners`'s span); both known species proposed as new
    that carried the ⚑ (#272 at 0.8 %, #275 at 4.7 %) keep it."""
    if s.identity is None or 1.0 - s.identity <= SPECIES_SPAN + 1e-12:
        return None
    for t in evidence.near_species:
        if t.species == s.species or _genus_of(t) != _genus_of(s) or t.identity is None:
            continue
        d = _apart(s, t)
        if SPECIES_SPAN < d < min(1.0 - s.identity, 1.0 - t.identity) - SAME_DISTANCE:
            return t
    return None


@dataclass(frozen=True)
class NearestCandidate:
    """The closest other candidate of the same parent group, by consensus p-distance.

    ``nearest_candidate`` is a number of the run that made it (the clustering's candidate, or the proposal a
    split part came from), not always a proposal id; ``member`` (format 3) is one of that candidate's specimens,
    which says which proposal holds it now (``Database.proposal_detail``), after any split or merge too."""

    nearest_candidate: int
    distance: float
    member: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NearestCandidate":
        d = _known(cls, data)
        member = d.get("member")
        return cls(int(d["nearest_candidate"]), float(d["distance"]), str(member) if member else None)


@dataclass(frozen=True)
class BinEvidence:
    """BOLD BINs of the members. ``agreement``: share of members with a BIN that carry the
    dominant one; ``shared_with``: other candidates holding it (a hint of over-splitting), by the numbers of
    the run's clustering, not proposal ids; ``shared_members`` (format 3): one of their specimens with that
    BIN each, which says which proposals hold them now (``Database.proposal_detail``)."""

    counts: dict[str, int] = field(default_factory=dict)
    dominant: str | None = None
    agreement: float | None = None
    n_with_bin: int = 0
    shared_with: tuple[int, ...] = ()
    shared_members: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BinEvidence":
        d = _known(cls, data)
        return cls(_counts(d.get("counts")), d.get("dominant"), _float(d.get("agreement")),
                   int(d.get("n_with_bin") or 0), tuple(int(x) for x in d.get("shared_with") or ()),
                   tuple(str(x) for x in d.get("shared_members") or ()))


@dataclass(frozen=True)
class Geography:
    """Where the members were caught; ``bbox`` = (lat min, lat max, lon min, lon max)."""

    countries: dict[str, int] = field(default_factory=dict)
    provinces: dict[str, int] = field(default_factory=dict)
    n_with_coordinates: int = 0
    lat_range: tuple[float, float] | None = None
    lon_range: tuple[float, float] | None = None
    centroid: tuple[float, float] | None = None
    bbox: tuple[float, float, float, float] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Geography":
        d = _known(cls, data)
        box = d.get("bbox")
        bbox = None
        if box is not None:
            a, b, c, e = (float(v) for v in box)
            bbox = (a, b, c, e)
        return cls(_counts(d.get("countries")), _counts(d.get("provinces")), int(d.get("n_with_coordinates") or 0),
                   _pair(d.get("lat_range")), _pair(d.get("lon_range")), _pair(d.get("centroid")), bbox)


@dataclass(frozen=True)
class SizeStats:
    """Median / min / max of one size measurement over the members that have it."""

    n: int
    median: float
    min: float
    max: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SizeStats":
        d = _known(cls, data)
        return cls(int(d["n"]), float(d["median"]), float(d["min"]), float(d["max"]))


@dataclass(frozen=True)
class SizeSummary:
    """Body size of the members, per BIOSCAN-5M measurement column (None = not measured)."""

    image_measurement_value: SizeStats | None = None
    area_fraction: SizeStats | None = None
    scale_factor: SizeStats | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SizeSummary":
        d = _known(cls, data)
        return cls(*(SizeStats.from_dict(d[f.name]) if d.get(f.name) else None for f in dataclasses.fields(cls)))


@dataclass(frozen=True)
class RepresentativeImage:
    processid: str
    path: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RepresentativeImage":
        d = _known(cls, data)
        return cls(str(d["processid"]), str(d["path"]))


@dataclass(frozen=True)
class DroppedKey:
    """A reference record that never named anything — refused at build-reference (quarantined: too short, bad
    characters) or set aside by the reference audit — that members match closely (format 5).

    Why: the reference can know a species only through such a record. On the real US plate *Pyrausta
    pseudonythesalis*'s only key (ZYPAN924-10, 146 nt) was quarantined for length, and its 20 specimens came back
    as a candidate whose nearest known species was *Palpita venatalis* at 91.8 %, nothing saying the reference had
    held the species; they match the refused key at 99.3–100 % over its 146 bases. ``why``: where and why it was
    dropped, in words; ``identity`` / ``overlap``: the best member's identity to it and the bases they share;
    ``members``: member processid → its identity to it (what a split or merge keeps)."""

    processid: str
    species: str | None = None
    why: str = ""
    identity: float | None = None
    overlap: int | None = None
    members: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DroppedKey":
        d = _known(cls, data)
        overlap = d.get("overlap")
        return cls(str(d["processid"]), d.get("species"), str(d.get("why") or ""), _float(d.get("identity")),
                   None if overlap is None else int(overlap),
                   {str(k): float(v) for k, v in (d.get("members") or {}).items()})

    def sentence(self, size: int) -> str:
        """``19 of 20 members match ZYPAN924-10 (Pyrausta pseudonythesalis) at 100.0% over 146 bases, a reference
        record quarantined at build-reference: barcode is 146 nt …`` (``its member matches …`` for one)."""
        who = f"{len(self.members)} of {size} members match" if size > 1 else "its member matches"
        shared = f" over {self.overlap} bases" if self.overlap else ""
        identity = "–" if self.identity is None else f"{100 * self.identity:.1f}%"
        return (f"{who} {self.processid} ({self.species or 'no species'}) at {identity}{shared}, a reference record "
                f"{self.why}")


# ---------------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """Why these specimens were proposed as one candidate species (see the module docstring).

    ``candidate``: the clusterer's candidate id within its run; ``threshold`` /
    ``linkage``: the cut the candidate was made with; ``hdbscan_agreement``: share
    of members HDBSCAN puts in the candidate's dominant cluster;
    ``consensus_barcode``: majority-rule consensus of a pyfamsa alignment of up to
    ``max_msa`` members, whose rows are ``alignment`` (processid → aligned
    sequence; empty for one member); ``within_distances``: a sample of the
    members' pairwise p-distances (for histograms), summarised by
    ``within_distance``; ``nearest_known_distances``: the nearest known
    species' aligned top-hit distances (= ``nearest_known.top_distances``).
    """

    size: int = 0
    candidate: int | None = None
    mean_probability: float | None = None
    hdbscan_agreement: float | None = None
    threshold: float | None = None
    linkage: str | None = None
    consensus_barcode: str | None = None
    consensus_length: int = 0
    within_distance: Spread | None = None
    within_distances: tuple[float, ...] = ()
    nearest_known_distances: tuple[float, ...] = ()
    alignment: dict[str, str] = field(default_factory=dict)
    between_distance: NearestCandidate | None = None
    nearest_known: NearestKnown | None = None
    bin: BinEvidence | None = None
    geography: Geography | None = None
    size_summary: SizeSummary | None = None
    representative_images: tuple[RepresentativeImage, ...] = ()
    #: member processid → its best reference hit (empty when the producer had no engine results)
    member_hits: dict[str, MemberHit] = field(default_factory=dict)
    #: key processid → its barcode, for every key among ``member_hits``: after a split or merge the nearest
    #: known species may be another member's hit, and the DNA tab aligns the members against its barcode
    hit_barcodes: dict[str, str] = field(default_factory=dict)
    #: the known species nearest the members (format 4), nearest first (:class:`NearSpecies`); empty before
    near_species: tuple[NearSpecies, ...] = ()
    #: records the reference refused or set aside that members match closely (format 5), closest first
    dropped_keys: tuple[DroppedKey, ...] = ()
    #: top-level keys of a stored record this version does not know (kept, never read)
    extra: dict[str, Any] = field(default_factory=dict)
    format: int = EVIDENCE_FORMAT

    def identity_to(self, species: str | None) -> float | None:
        """The best identity of any member to the keys of ``species``, from the nearest species list, the
        members' best hits and the records of it the reference dropped (``dropped_keys``: refused or set aside,
        yet a record of that species the members match); None when no member was aligned to one of them. The one
        reading of it: the review header of an assigned candidate (whose old nearest species is another), the
        assign list and proposals.csv's ``identity_to_assigned``. Why the dropped records: a reviewer assigns on
        them (the Norwegian *Pseudosmittia albipennis*, 99.8 % to a key the audit set aside, 85.1 % to the kept
        ones), and the export then published the name as resting on 85 %."""
        if not species:
            return None
        listed = [s.identity for s in self.near_species if s.species == species and s.identity is not None]
        hits = best_identity({pid: h.identity for pid, h in self.member_hits.items()
                              if h.species == species and h.identity is not None}, self.short_reads)
        dropped = [k.identity for k in self.dropped_keys if k.species == species and k.identity is not None]
        found = listed + ([hits] if hits is not None else []) + dropped
        return max(found) if found else None

    @property
    def short_reads(self) -> frozenset[str]:
        """:func:`short_reads` of the members' best hits."""
        return short_reads(self.member_hits)

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON layout (tuples as lists, NaN as null, ``extra`` merged back)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**jsonable(self.extra), **jsonable(_plain(out))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Evidence":
        """Read a stored record; ``ValueError`` names what is malformed or too new."""
        if data is None:
            return cls()
        if isinstance(data, Evidence):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"evidence must be a JSON object, got {type(data).__name__}")
        version = int(data.get("format", 0))
        if version > EVIDENCE_FORMAT:
            raise ValueError(f"evidence format {version} is newer than this biodiscover reads ({EVIDENCE_FORMAT})")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        d = {k: v for k, v in data.items() if k in names}

        def part(key: str, kind: Any) -> Any:
            value = d.get(key)
            return _part(kind, value) if value else None

        try:
            return cls(
                size=int(d.get("size") or 0),
                candidate=None if d.get("candidate") is None else int(d["candidate"]),
                mean_probability=_float(d.get("mean_probability")) if version >= 6 else None,
                hdbscan_agreement=_float(d.get("hdbscan_agreement")),
                threshold=_float(d.get("threshold")),
                linkage=d.get("linkage"),
                consensus_barcode=d.get("consensus_barcode") or None,
                consensus_length=int(d.get("consensus_length") or 0),
                within_distance=part("within_distance", Spread),
                within_distances=_floats(d.get("within_distances")),
                nearest_known_distances=_floats(d.get("nearest_known_distances")),
                alignment={str(k): str(v) for k, v in (d.get("alignment") or {}).items()},
                between_distance=part("between_distance", NearestCandidate),
                nearest_known=part("nearest_known", NearestKnown),
                bin=part("bin", BinEvidence),
                geography=part("geography", Geography),
                size_summary=part("size_summary", SizeSummary),
                representative_images=tuple(_part(RepresentativeImage, x)
                                            for x in d.get("representative_images") or ()),
                member_hits={str(k): _part(MemberHit, v) for k, v in (d.get("member_hits") or {}).items()},
                hit_barcodes={str(k): str(v) for k, v in (d.get("hit_barcodes") or {}).items() if v},
                near_species=tuple(_part(NearSpecies, x) for x in d.get("near_species") or ()),
                dropped_keys=tuple(_part(DroppedKey, x) for x in d.get("dropped_keys") or ()),
                extra={**({"clustering_score": d["mean_probability"]}
                           if version < 6 and _float(d.get("mean_probability")) is not None else {}),
                       **{str(k): v for k, v in data.items() if k not in names and k != "extra"}},
                format=EVIDENCE_FORMAT,
            )
        except _MALFORMED as err:  # a top-level field of the wrong kind: a list for ``alignment``, Infinity
            raise ValueError(f"evidence is malformed ({type(err).__name__}: {err})") from err


def _plain(value: Any) -> Any:
    """Nested dataclasses as dicts (``dataclasses.asdict`` would deep-copy every alignment)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------
# the proposal
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    """One specimen of a candidate: its membership probability and GLOSH outlier score."""

    processid: str
    probability: float | None = None
    outlier_score: float | None = None

    @classmethod
    def coerce(cls, item: Any) -> "Member":
        """A processid, a ``(processid, probability[, outlier_score])`` pair, a mapping or a Member."""
        if isinstance(item, Member):
            return item
        if isinstance(item, str):
            return cls(item)
        if isinstance(item, Mapping):
            return cls(str(item["processid"]), _float(item.get("probability")), _float(item.get("outlier_score")))
        pid, prob, *rest = item
        return cls(str(pid), _float(prob), _float(rest[0]) if rest else None)


def _members(value: Any) -> tuple[Member, ...]:
    """Members in any accepted spelling (a mapping is processid → probability), de-duplicated by
    processid (the last spelling wins)."""
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    out: dict[str, Member] = {}
    for item in items:
        m = Member.coerce(item)
        out[m.processid] = m
    return tuple(out.values())


@dataclass(frozen=True)
class CandidateProposal:
    """One candidate species, as discovery proposes it and ``Database.write_proposals`` stores it.

    The parent taxon is given by ``parent_taxon_id``, by ``parent_lineage`` (rank
    → name, created in the taxonomy when missing) or by ``parent_rank`` +
    ``parent_name``. ``novelty``: mean novelty probability of the members.
    ``members`` and ``evidence`` accept the looser spellings older callers used
    (processid lists, pairs, a dict evidence) and are normalised on construction.
    """

    members: tuple[Member, ...]
    parent_taxon_id: int | None = None
    parent_rank: str | None = None
    parent_name: str | None = None
    parent_lineage: Mapping[str, str] | None = None
    provisional_name: str | None = None
    novelty: float | None = None
    nearest_species: str | None = None
    nearest_identity: float | None = None
    evidence: Evidence = field(default_factory=Evidence)

    def __post_init__(self) -> None:
        members = _members(self.members)
        if not members:
            raise ValueError("proposal with no members")
        object.__setattr__(self, "members", members)
        if not isinstance(self.evidence, Evidence):
            object.__setattr__(self, "evidence", Evidence.from_dict(self.evidence))

    @property
    def size(self) -> int:
        return len(self.members)

    @classmethod
    def coerce(cls, obj: Any) -> "CandidateProposal":
        """A proposal from a mapping or a dataclass with these field names (a proposal as is)."""
        if isinstance(obj, CandidateProposal):
            return obj
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        if not isinstance(obj, Mapping):
            raise TypeError(f"cannot read a proposal from {type(obj).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(obj) - names)
        if unknown:
            raise ValueError(f"proposal has unknown field(s) {', '.join(map(repr, unknown))}")
        if "members" not in obj:
            raise ValueError("proposal without members")
        return cls(**obj)

    def member_rows(self) -> list[dict[str, Any]]:
        """Members as ``{processid, probability, outlier_score}`` dicts (the database's rows)."""
        return [dataclasses.asdict(m) for m in self.members]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (evidence in its stored layout)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "evidence"}
        return {**jsonable(_plain(out)), "evidence": self.evidence.to_dict()}
