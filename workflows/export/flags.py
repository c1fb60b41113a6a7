"""What a reviewer should look at first in a candidate, read from its stored evidence only.

Why here, once: a taxonomist reviewing a real plate of 115 candidates found the
report's sections a long flat list and asked for one line per candidate to scan
(no gap, a tie among known species, partial reads, why it was not named); and
for each candidate assigned to a known species, how close its barcodes are to
that species. Both are read from what the evidence record
(:class:`~biodiscover.storage.evidence.Evidence`) already holds — nothing is
recomputed, so the report says what the review screen was shown:

* the nearest known species and its identity, and each member's best hit
  (``member_hits``), name known species with their identity;
* the naming model's reason (``nearest_known.not_named_because``, written by
  ``discovery.naming``) names a rival taxon ("Gonodonta uxor lies within 0.0%")
  and a short overlap ("only 266 informative bases shared with the best key");
  its parts are pinned by ``tests/test_naming_reasons.py``;
* the members' aligned rows (``alignment``) say how many bases each read has.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

from biodiscover.storage.evidence import (FULL_READ, TIE, Evidence, chance_note, congeners_note, known_elsewhere,
                                          span_note, tied_species, uncompared)
from biodiscover.storage.records import plural

_HEAD = re.compile(r"^(?P<rank>\w+) (?P<label>.+?) at (?P<identity>[\d.]+)% identity: ")
_RIVAL = re.compile(r"^(?P<other>.+) lies within (?P<gap>[\d.]+)%$")
_OVERLAP = re.compile(r"^only (?P<n>\d+) informative bases shared with the best key")


#: the last stored dicts :func:`evidence_of` read, by ``id``, each beside the dict itself (an ``id`` is reused only
#: once its object is gone, and the entry keeps it alive, so a hit is the same object) and its record
_READ: OrderedDict[int, tuple[Any, Evidence]] = OrderedDict()
_READ_KEPT = 64


def evidence_of(value: Any) -> Evidence:
    """The evidence record of a proposal's stored dict (an empty one where it is missing or malformed:
    a report never stops over one candidate's evidence).

    The same dict read again (the same object: a record is frozen, and an export reads each proposal's dict once
    from the database and never changes it) is the record read before. Why: the archive and the CSV read each
    member's data quality from its candidate's evidence, so a candidate of 945 members was parsed 945 times, and
    a 20,000-specimen run's export spent 404 of its 418 s there (e32 review R20)."""
    if isinstance(value, Evidence):
        return value
    if not isinstance(value, Mapping):
        return Evidence()
    hit = _READ.get(id(value))
    if hit is not None and hit[0] is value:
        _READ.move_to_end(id(value))
        return hit[1]
    try:
        read = Evidence.from_dict(value)
    except (TypeError, ValueError):
        read = Evidence()
    _READ[id(value)] = (value, read)
    if len(_READ) > _READ_KEPT:
        _READ.popitem(last=False)
    return read


@dataclass(frozen=True)
class Reason:
    """The parts of the naming model's sentence a flag needs: the rank it stopped at, the label it did not give
    and its identity, each rival label with its identity, and the bases shared with the best key."""

    rank: str
    label: str
    identity: float
    rivals: tuple[tuple[str, float], ...] = ()
    overlap: int | None = None


def parse_reason(text: str | None) -> Reason | None:
    """:class:`Reason` from a ``not_named_because`` sentence; None when there is none or it has another shape."""
    head = _HEAD.match(text or "")
    if head is None or text is None:
        return None
    identity = float(head["identity"]) / 100
    rivals, overlap = [], None
    for part in text.split("; ")[1:]:
        if (rival := _RIVAL.match(part)) is not None:
            rivals.append((rival["other"], identity - float(rival["gap"]) / 100))
        elif (short := _OVERLAP.match(part)) is not None:
            overlap = int(short["n"])
    return Reason(head["rank"], head["label"], identity, tuple(rivals), overlap)


@dataclass(frozen=True)
class KnownIdentity:
    """How close a candidate's barcodes are to one known species, and where the evidence says so."""

    identity: float
    source: str


def known_identities(ev: Evidence) -> dict[str, KnownIdentity]:
    """Known species the evidence names → the best identity to each (species only, best first): the nearest known
    species, each member's best hit, and a rival species the naming reason names (its identity is the reason's
    less the distance it gives, to 0.1 %)."""
    out: dict[str, KnownIdentity] = {}

    def add(species: str | None, identity: float | None, source: str) -> None:
        if species and identity is not None and (species not in out or identity > out[species].identity):
            out[species] = KnownIdentity(identity, source)

    near = ev.nearest_known
    if near is not None:
        add(near.species, near.identity, "the nearest known species")
    for listed in ev.near_species:  # evidence format 4: the nearest few species over every member
        add(listed.species, listed.identity, "the nearest known species" if near is not None
            and listed.species == near.species else "one of the nearest known species")
    hits: dict[str, list[float]] = {}
    for h in ev.member_hits.values():
        if h.species and h.identity is not None:
            hits.setdefault(h.species, []).append(h.identity)
    n = len(ev.member_hits)
    for species, values in hits.items():
        add(species, max(values), f"best hit of {len(values)} of {plural(n, 'member')}")
    if near is not None:
        reason = parse_reason(near.not_named_because)
        if reason is not None and reason.rank == "species":
            # the sentence rounds to 0.1 %: measured from the nearest species' own identity where it is that one
            best = near.identity if near.species == reason.label and near.identity is not None else reason.identity
            for other, identity in reason.rivals:
                gap = reason.identity - identity
                add(other, best - gap, f"the naming reason: within {100 * gap:.1f}% of {reason.label}")
    return dict(sorted(out.items(), key=lambda kv: -kv[1].identity))


def assigned_identity(proposal: Mapping[str, Any]) -> float | None:
    """The identity (0-1) of a candidate a reviewer assigned to a known species to that species' keys
    (:meth:`Evidence.identity_to`, what the review header shows); None for any other candidate or where no member
    was aligned to one of its keys. Why: its ``nearest_species`` stays the machine's evidence (another species,
    often a tied congener), and proposals.csv and the report's table gave that one's identity as if it were the
    assigned species'."""
    if proposal.get("status") != "assigned":
        return None
    species = proposal.get("provisional_name")
    return evidence_of(proposal.get("evidence")).identity_to(species if isinstance(species, str) else None)


def carried_identity(proposal: Mapping[str, Any]) -> str | None:
    """``95.1% to Gonodonta sicheas (nearest known, on #7)``: the identity the carried decision rested on
    (``carried_from``: an acceptance on the nearest known species, as a provisional species' keys are its own
    members; an assignment on the species assigned), for an assigned candidate whose own evidence holds no identity
    to its species; None for any other or where none was recorded."""
    c = proposal.get("carried_from")
    if not isinstance(c, Mapping) or c.get("identity") is None or assigned_identity(proposal) is not None:
        return None
    nearest = "nearest known, " if c.get("decision") == "accepted" else ""
    return f"{100 * float(c['identity']):.1f}% to {c.get('identity_to')} ({nearest}on #{c.get('proposal_id')})"


def identity_to(ev: Evidence, species: str) -> str:
    """``99.1% (the nearest known species)``: the identity to ``species`` and where it comes from, or that the
    evidence does not hold one (with the nearest it does hold). The figure is :meth:`Evidence.identity_to`'s (the
    review header's, proposals.csv's ``identity_to_assigned``) wherever it has one; only an older record without
    the nearest species list or member hits falls back to the naming reason's rivals."""
    known = known_identities(ev).get(species)
    value = ev.identity_to(species)
    if value is not None:
        dropped = next((k for k in ev.dropped_keys if k.species == species and k.identity == value), None)
        source = known.source if known is not None and abs(known.identity - value) <= 1e-9 else \
            f"{dropped.processid}, a record the reference {dropped.why or 'dropped'}" if dropped is not None else \
            "one of the nearest known species" if any(s.species == species for s in ev.near_species) else \
            "a member's best hit"
        return f"{100 * value:.1f}% ({source})"
    if known is not None:
        return f"{100 * known.identity:.1f}% ({known.source})"
    near = ev.nearest_known
    nearest = f"; nearest known recorded: {near.species} at {100 * near.identity:.1f}%" \
        if near is not None and near.species and near.identity is not None else ""
    return f"not in the evidence{nearest}"


def _gap_flag(ev: Evidence, nearest_identity: Any) -> str | None:
    from biodiscover.discovery.barcode_gap import gap_of, pct_digits

    gap = gap_of(ev, nearest_identity)
    verdict = gap.verdict
    if verdict == "no gap":
        return "no barcode gap"
    if verdict == "not separated":
        return "no barcode gap (nearest known within the species threshold)"
    if gap.within_max is not None and gap.threshold is not None and gap.within_max > gap.threshold:
        d = pct_digits(gap.within_max, gap.threshold)
        return f"members up to {100 * gap.within_max:.{d}f}% apart, beyond the species threshold"
    return None


def _ties(ev: Evidence) -> list[str]:
    out = []
    known = list(known_identities(ev).items())
    if ev.near_species:  # the list the review's header reads its tie from (``tied_species``): the same tie
        tied_near = tied_species(ev.near_species)
        if len(tied_near) > 1 and tied_near[0].identity is not None:
            out.append(f"tie: {' / '.join(s.species for s in tied_near)} ({100 * tied_near[0].identity:.1f}%)")
    elif len(known) > 1:
        # congeners only: two species of different genera equally far (91 % to a Halysidota and a Gonodonta, on a
        # real plate) say nothing is close, not which species this may be
        best, genus = known[0][1].identity, known[0][0].split()[0]
        tied = [species for species, k in known if best - k.identity <= TIE + 1e-9 and species.split()[0] == genus]
        if len(tied) > 1:
            out.append(f"tie: {' / '.join(tied)} ({100 * best:.1f}%)")
    reason = parse_reason(ev.nearest_known.not_named_because if ev.nearest_known is not None else None)
    if reason is not None and reason.rank != "species":
        tied = [other for other, identity in reason.rivals if reason.identity - identity <= TIE + 1e-9]
        if tied:
            out.append(f"tie at {reason.rank}: {' / '.join([reason.label, *tied])} ({100 * reason.identity:.1f}%)")
    return out


def _partial_reads(ev: Evidence, size: Any = None) -> str | None:
    """How many members are partial reads, over every member whose best hit records the bases it shares with its
    key (the one rule for a short read, ``Evidence.short_reads``); from the aligned rows only for evidence from
    before that was recorded, and then said to be of the aligned sample where the candidate has more members.

    Why: the alignment keeps at most 50 rows; a real 317-member candidate read "49 of 50 members under 500 bases
    (439–445)" where 308 of 317 were."""
    recorded = {pid: h.overlap for pid, h in ev.member_hits.items() if h.overlap is not None}
    if recorded:
        short_ids = ev.short_reads
        shared = sorted(n for pid, n in recorded.items() if pid in short_ids)
        if not shared:
            return None
        return (f"partial reads: {len(shared)} of {plural(len(recorded), 'member')} share under {FULL_READ} bases "
                f"with their best key ({_span(shared)})")
    called = sorted(sum(c in "ACGTacgt" for c in row) for row in ev.alignment.values())
    short = [n for n in called if n < FULL_READ]
    if not short:
        return None
    members = int(size) if isinstance(size, (int, float)) and size == size else len(called)
    of = plural(len(called), "member") if members <= len(called) else \
        f"the {len(called)} members aligned (of {members})"
    return f"partial reads: {len(short)} of {of} under {FULL_READ} bases ({_span(short)})"


def _span(values: list[int]) -> str:
    """``values`` (sorted) as its one value or its range."""
    return f"{values[0]}" if values[0] == values[-1] else f"{values[0]}–{values[-1]}"


def check_first(proposal: Mapping[str, Any], met_here: Mapping[str, Mapping[str, int]] | None = None) -> bool:
    """A proposal whose flags say it may not be a new species at all: no barcode gap to a known species, no read
    usable as COI, members matching a record the reference dropped, or a known species met from another part of
    its range (⚑). Why: the report listed the largest candidates only, and left out the four singletons within the
    species threshold of a known species (one a real Erebia manto) that its caption told a taxonomist to check
    first (e32 review R5): these are listed whatever their size."""
    from biodiscover.discovery.barcode_gap import gap_of

    ev = evidence_of(proposal.get("evidence"))
    if chance_note(ev) or ev.dropped_keys or gap_of(ev, proposal.get("nearest_identity")).no_gap:
        return True
    placed = proposal.get("parent_taxon") if proposal.get("parent_rank") == "genus" else None
    return proposal.get("status") != "assigned" and \
        known_elsewhere(ev, str(placed) if placed else None, met_here=met_here) is not None


def candidate_flags(proposal: Mapping[str, Any], met_here: Mapping[str, Mapping[str, int]] | None = None) -> list[str]:
    """The flags of one proposal (an export row with its ``evidence`` dict), most decisive first; [] for none.
    ``met_here``: where reviewers' assigned candidates met each known species (``RunExport.met_here``)."""
    ev = evidence_of(proposal.get("evidence"))
    ident = proposal.get("nearest_identity")
    # the data first: a read not usable as COI, a record the reference dropped that members match
    flags = [f for f in [chance_note(ev)] if f]
    flags += [k.sentence(max(ev.size, len(ev.member_hits))) for k in ev.dropped_keys]
    flags += [f for f in [_gap_flag(ev, ident)] if f]
    if uncompared(ev):
        flags.append("members' barcodes share too little sequence to be compared with each other (no "
                     "within-candidate distance): check that they are one species")
    flags += _ties(ev)
    near = ev.nearest_known
    placed = proposal.get("parent_taxon") if proposal.get("parent_rank") == "genus" else None
    mine = known_elsewhere(ev, str(placed) if placed else None, met_here=met_here)  # the review's ⚑ rule
    if mine is not None and proposal.get("status") != "assigned":  # an assigned candidate is answered
        span = span_note(mine)
        flags.append(f"may be {mine.species} met from another part of its range "
                     f"({100 * (mine.identity or 0.0):.1f}%; {mine.keys_text()}, none from where the members were "
                     f"caught{'; ' + span if span else ''})")
        together = congeners_note(ev, mine)
        if together:
            flags.append(together)
    partial = _partial_reads(ev, proposal.get("size"))
    if partial:
        flags.append(partial)
    reason = parse_reason(near.not_named_because if near is not None else None)
    if reason is not None and reason.overlap is not None:
        flags.append(f"short overlap: {reason.overlap} bases shared with the best key")
    return flags
