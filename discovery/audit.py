"""Reference audit: keys that sit far from the rest of their own species.

Why: one misidentified or contaminated reference barcode names every query that
matches it with the wrong species, and the naming model cannot see that from the
query's side — when that key is the only close one, the top hits agree and the
species' size and spread look ordinary. BOLD flags such records (a species split
over distant BINs); a taxonomist wants them listed before trusting a reference.
So ``build-reference`` lists, for review, every key whose nearest conspecific key
is farther than the published COI family cut-off (``naming.PUBLISHED_CUTOFFS``:
two keys of one species rarely differ more than two families usually do), with
the nearest key of another species. The audit never edits a key's record; it
says which keys to check (``build-reference`` output, ``info``, the bundle table
``reference_audit``), and the engine sets the listed keys aside when naming
(``DiscoveryModel.naming_lineages_``; a key stored reversed is turned round
instead): no query is named from them, while the rest of their species still
names. Only a species of two keys, both listed, loses its name that way.

Mislabelled keys also come in groups: one lab's batch filed under the wrong
name, identical or nearly so. A real Pakistani plate's 74 *Culex quinquefasciatus*
were not named even to genus because 8 keys filed as *Aedes aegypti* and *Ae.
albopictus* (from Indonesia and China) carry its barcode; 12 *Eristalis tenax*
because 2 *Episyrphus balteatus* keys carry theirs. Each such key has a close
conspecific (its batch-mates), so the lone-key rule cannot see them. A **group**
is listed too: keys that lie farther than the cut-off from the bulk of their
species (the group of its anchors whose barcodes most keys carry), hold at most ``MAX_GROUP_SHARE`` of
its keys, and match another species' key at the published species cut-off
(:func:`confirm_groups`): they carry another known species' barcode.

A species split into two groups of several keys each, neither of them another
species' barcode, is *not* flagged (a cryptic species is not a mislabel) — unless
the small group lies farther from the bulk than the published order cut-off
(``FAR_GROUP_IDENTITY``): five GenBank keys filed as *Phyllotreta cruciferae*, 18 %
from the other 55 keys of that species, carried the barcode of *P. striolata*,
which the reference lacked, and named every *P. striolata* of a real plate
*P. cruciferae* at 0.993 or more (e36 season review, finding 2); no lineage of
one species lies as far from the rest as two orders' keys do. What is flagged is
a key alone — and for a species of two keys both are listed, since nothing tells
which one is wrong — or a small group carrying another species' barcode, or one
that far.

Cost: each distinct barcode of a species is compared with at most ``anchors``
other distinct barcodes of it (bounded alignments that stop at the cut-off); only
keys that none of the bulk's anchors is close to are compared with every other
barcode of their species (at most ``max_exact``) and searched for their nearest
other species.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from biodiscover.discovery.naming import PUBLISHED_CUTOFFS
from biodiscover.storage.distance import identity, p_distance, reverse_complement

#: a key whose nearest conspecific is below this identity is listed (the published family cut-off)
AUDIT_IDENTITY = PUBLISHED_CUTOFFS["family"]
#: a group far from its species' bulk is listed when it holds at most this share of the species' keys (the bulk
#: then holds twice as many: which side is wrong is told by numbers) ...
MAX_GROUP_SHARE = 1 / 3
#: ... and a key of it matches another species' key at least this closely (the published species cut-off) ...
GROUP_OTHER_IDENTITY = PUBLISHED_CUTOFFS["species"]
#: ... or it lies farther from the bulk than this (the published order cut-off): two keys of one species do not
#: differ as two orders' keys usually do, whatever species the group's barcode belongs to
FAR_GROUP_IDENTITY = PUBLISHED_CUTOFFS["order"]


@dataclass(frozen=True)
class SuspectKey:
    """A reference key with no close key of its own species (one row of the audit)."""

    processid: str
    species: str
    #: identity to the nearest other key of its species (exact, :func:`storage.distance.identity`)
    own_identity: float
    #: other keys of its species in the reference
    conspecific_keys: int
    #: species of the nearest key of another species among the search candidates (None: none found)
    nearest_other: str | None = None
    nearest_other_identity: float = 0.0
    #: identity of the key's reverse complement to the nearest other key of its species (0.0: not
    #: computed); at or above the audit's cut-off the key was stored reversed
    reversed_identity: float = 0.0
    #: keys of its species in its group (itself included) when it was listed as one of a group far from the
    #: species' bulk (``own_identity`` then the best identity to the bulk's anchors); 0: listed alone
    group_keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SuspectKey":
        return cls(processid=str(data["processid"]), species=str(data["species"]),
                   own_identity=float(data["own_identity"]), conspecific_keys=int(data["conspecific_keys"]),
                   nearest_other=None if data.get("nearest_other") is None else str(data["nearest_other"]),
                   nearest_other_identity=float(data.get("nearest_other_identity", 0.0)),
                   reversed_identity=float(data.get("reversed_identity", 0.0)),
                   group_keys=int(data.get("group_keys", 0)))

    def describe(self) -> str:
        """One line for a reviewer: the key, how far it is from its species, what it resembles instead."""
        if self.group_keys:
            rest = self.conspecific_keys + 1 - self.group_keys
            if self.nearest_other is None or self.nearest_other_identity < GROUP_OTHER_IDENTITY:
                near = (f"; nearest other species {self.nearest_other} at {100 * self.nearest_other_identity:.1f} %"
                        if self.nearest_other else "")
                return (f"{self.processid} ({self.species}): {100 * self.own_identity:.1f} % to the bulk of its "
                        f"species (about {rest} keys), farther than two orders' keys usually lie: a batch filed "
                        f"under the wrong name, of a species the reference may lack{near}")
            return (f"{self.processid} ({self.species}): {100 * self.nearest_other_identity:.1f} % identical to "
                    f"{self.nearest_other}, {100 * self.own_identity:.1f} % to the bulk of its species (about {rest} "
                    "keys): a batch carrying another species' barcode")
        text = (f"{self.processid} ({self.species}): {100 * self.own_identity:.1f} % identity to the nearest of "
                f"the {self.conspecific_keys} other key(s) of its species")
        if self.reversed_identity >= AUDIT_IDENTITY:
            text += (f"; its reverse complement is {100 * self.reversed_identity:.1f} % identical to its species: "
                     "stored reversed, indexed as its reverse complement")
        elif self.nearest_other:
            text += f"; {100 * self.nearest_other_identity:.1f} % to {self.nearest_other}"
        return text


@dataclass(frozen=True)
class RefusedKey:
    """A row of the reference's data that build-reference refused (quarantined) though it holds a barcode: kept in
    the bundle (table ``reference_refused``) so that triage can say when a candidate matches it.

    Why: a refused row names nothing, yet it may be the reference's only record of a species. On a real US plate
    *Pyrausta pseudonythesalis*'s only key (ZYPAN924-10, 146 nt, under the 200 nt build-reference asks for) was
    quarantined, and its 20 specimens were proposed as a new species whose nearest known species was a *Palpita* at
    91.8 %. The report beside the bundle (``<bundle>.quarantine.csv``) lists the row, but triage reads the bundle
    alone. ``why``: the validator's reason, as the report gives it."""

    processid: str
    species: str | None
    genus: str | None
    why: str
    barcode: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> "RefusedKey":
        """A stored row; a missing field or one of the wrong kind is a ``ValueError`` naming it."""
        values = {k: row.get(k) for k in ("processid", "species", "genus", "why", "barcode")}
        for k in ("processid", "why", "barcode"):
            if not isinstance(values[k], str) or not values[k]:
                raise ValueError(f"refused key {values['processid']!r}: {k} must be text, got {values[k]!r}")
        for k in ("species", "genus"):
            if values[k] is not None and not isinstance(values[k], str):
                raise ValueError(f"refused key {values['processid']!r}: {k} must be text, got {values[k]!r}")
        return cls(str(values["processid"]), values["species"], values["genus"], str(values["why"]),
                   str(values["barcode"]))


def _close(a: str, b: str, min_identity: float) -> bool:
    """Whether two barcodes are within the audit's cut-off (a bounded alignment: far pairs stop early)."""
    return p_distance(a, b, max_distance=1.0 - min_identity) <= 1.0 - min_identity


class Audit(NamedTuple):
    """What :func:`audit_reference` finds before the reference is indexed."""

    #: keys alone, far from every other key of their species (listed as they are)
    suspects: list[SuspectKey]
    #: species with two keys or more (the species the audit could check)
    checked: int
    #: keys in small groups far from their species' bulk, in the order found: listed only where
    #: :func:`confirm_groups` finds another species' barcode in them (the search needs the index; the engine
    #: orders what it lists with the lone keys)
    groups: list[SuspectKey]


def _bulk_anchors(seqs: Sequence[str], weights: Sequence[int], picks: Sequence[int],
                  min_identity: float) -> list[int]:
    """The anchors of a species' bulk: ``picks`` grouped by closeness to one another, the group whose anchors'
    own barcodes the most keys carry (``weights``: keys per distinct barcode; ties: the first); every anchor when
    they are all one group. A proxy, not a count of the keys near each group (that would take every alignment):
    where it picks a batch of identical copies over the true bulk, the bulk is too large a share to be listed
    and the batch, taken for the bulk, is not listed either: the audit misses the batch rather than list the bulk."""
    groups: list[list[int]] = []
    for a in picks:
        joined = [g for g in groups if any(_close(seqs[a], seqs[b], min_identity) for b in g)]
        merged = [a] + [b for g in joined for b in g]
        groups = [g for g in groups if g not in joined] + [merged]
    return max(groups, key=lambda g: sum(weights[a] for a in g)) if groups else []


def audit_reference(ids: Sequence[str], sequences: Sequence[str], lineages: Sequence[tuple[str | None, ...]], *,
                    min_identity: float = AUDIT_IDENTITY, anchors: int = 4, max_exact: int = 200,
                    max_share: float = MAX_GROUP_SHARE, seed: int = 0) -> Audit:
    """Keys whose nearest conspecific key is below ``min_identity`` (most distant first), how many species had
    two keys or more, and the keys of small groups (at most ``max_share`` of their species' keys) that are below
    ``min_identity`` to every anchor of their species' bulk (:class:`Audit`).

    ``lineages[j][-1]`` is key j's species (None: not labelled to species, not audited).
    The nearest other species is left empty here (:func:`nearest_other_species` fills it).
    """
    rng = np.random.default_rng(seed)
    by_species: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for j, lin in enumerate(lineages):
        if lin and lin[-1]:
            by_species[lin[-1]][sequences[j]].append(j)
    suspects: list[SuspectKey] = []
    groups: list[SuspectKey] = []
    checked = 0
    for species, distinct in by_species.items():
        n_keys = sum(len(v) for v in distinct.values())
        checked += n_keys > 1
        if len(distinct) < 2:
            continue  # alone, or every key the same barcode: nothing to compare
        seqs = list(distinct)
        weights = [len(distinct[q]) for q in seqs]
        picks = [int(a) for a in rng.choice(len(seqs), min(anchors, len(seqs)), replace=False)]
        bulk = _bulk_anchors(seqs, weights, picks, min_identity)
        for i, seq in enumerate(seqs):
            if any(_close(seq, seqs[a], min_identity) for a in bulk if a != i):
                continue  # in the bulk of its species
            copies = len(distinct[seq])
            alone = copies == 1 and not any(_close(seq, seqs[a], min_identity) for a in picks
                                            if a != i and a not in bulk)
            if i in bulk and not alone:
                continue  # an anchor of the bulk with company of its own
            others = [s for s in seqs if s != seq]
            sample = others if len(others) <= max_exact else \
                [others[int(x)] for x in rng.choice(len(others), max_exact, replace=False)]
            near = [identity(seq, s) for s in sample]
            if alone:
                best = max(near)
                if best < min_identity:
                    back = max(identity(reverse_complement(seq), s) for s in sample)
                    suspects.extend(SuspectKey(str(ids[j]), species, best, n_keys - 1, reversed_identity=back)
                                    for j in distinct[seq])
                    continue
            if i in bulk:
                continue
            # with company of its own (identical copies or close conspecifics) away from the bulk: a group, if a
            # small one (its share of the keys compared, the sample's weights standing for the species')
            weight = {s: len(distinct[s]) for s in sample}
            close = copies + sum(weight[s] for s, v in zip(sample, near) if v >= min_identity)
            seen = copies + sum(weight.values())
            if close <= max_share * seen:
                to_bulk = max((identity(seq, seqs[a]) for a in bulk), default=0.0)
                back = max((identity(reverse_complement(seq), seqs[a]) for a in bulk), default=0.0)
                if back >= min_identity:  # a batch stored reversed: turned round, as a lone key is
                    suspects.extend(SuspectKey(str(ids[j]), species, to_bulk, n_keys - 1, reversed_identity=back)
                                    for j in distinct[seq])
                    continue
                groups.extend(SuspectKey(str(ids[j]), species, to_bulk, n_keys - 1,
                                         group_keys=round(close * n_keys / seen)) for j in distinct[seq])
    suspects.sort(key=lambda s: (s.own_identity, s.processid))
    return Audit(suspects, checked, groups)


def nearest_other_species(suspects: Sequence[SuspectKey], positions: Mapping[str, int],
                          sequences: Sequence[str], lineages: Sequence[tuple[str | None, ...]],
                          candidates: Any) -> list[SuspectKey]:
    """``suspects`` with the nearest key of another species filled in.

    ``candidates(seqs)`` → per query, (positions, identities) of its best keys (the engine's
    own candidate search, so the answer is what a query with this barcode would be shown).
    """
    if not suspects:
        return []
    found = candidates([sequences[positions[s.processid]] for s in suspects])
    out = []
    for s, (pos, ids_) in zip(suspects, found):
        best_sp, best = None, -math.inf
        for j, ident in zip(pos, ids_):
            sp = lineages[int(j)][-1]
            if sp and sp != s.species and float(ident) > best:
                best_sp, best = sp, float(ident)
        out.append(replace(s, nearest_other=best_sp, nearest_other_identity=best if best_sp else 0.0))
    return out


def confirm_groups(groups: Sequence[SuspectKey], positions: Mapping[str, int], sequences: Sequence[str],
                   lineages: Sequence[tuple[str | None, ...]], candidates: Any,
                   min_other: float = GROUP_OTHER_IDENTITY, far: float = FAR_GROUP_IDENTITY) -> list[SuspectKey]:
    """The keys of ``groups`` that match another species' key at ``min_other`` or closer (nearest other species
    filled in), or lie farther from their species' bulk than ``far``: a batch filed under the wrong name. A far
    group closer than that which matches no other species is left alone (a cryptic species or a deep lineage of
    its own is not a mislabel)."""
    found = nearest_other_species(groups, positions, sequences, lineages, candidates)
    return [g for g in found if g.own_identity < far or (g.nearest_other is not None
                                                         and g.nearest_other_identity >= min_other)]


#: the command that lists every key the audit flagged (``info --audit``), named where a summary shows only some
AUDIT_COMMAND = "biodiscover info {bundle} --audit"


def describe_audit(summary: Mapping[str, Any], limit: int = 5, bundle: str = "BUNDLE") -> list[str]:
    """Lines for ``build-reference`` and ``info`` from the audit summary a bundle records (``bundle``: its path, for
    the command that lists every key).

    Why the counts are split: the keys not set aside are those stored reversed (turned round and kept as keys), and
    "67 key(s) … 65 set aside" left a taxonomist asking what became of the other 2; "(25 such keys listed)" and
    "… and 26 more (bundle table reference_audit)" pointed at a file inside the bundle no command showed (e33
    review F14): the last line names the command that lists them."""
    n = int(summary.get("suspects", 0))
    checked = int(summary.get("species_checked", 0))
    cut = float(summary.get("min_identity", AUDIT_IDENTITY))
    if not n:
        return [f"reference audit: every key of the {checked} species with 2 or more keys lies within "
                f"{100 * (1 - cut):.0f} % of another key of its species"]
    grouped = int(summary.get("grouped", 0))
    head = (f"reference audit: {n} key(s) lie farther than {100 * (1 - cut):.0f} % from " + (
        f"their species: {n - grouped} from every other key of it, {grouped} in small groups far from its bulk "
        "that carry another species' barcode or lie farther than two orders' keys" if grouped
        else "every other key of their species")
        + " (possible misidentification, contamination or a cryptic species; ")
    aside = summary.get("set_aside")
    if aside is None:  # a bundle built before keys were set aside: they still name what matches them
        head += "check them before trusting names they give):"
    else:
        head += (f"{int(aside)} set aside: no specimen is named from them, the rest of their species still names; "
                 + (f"{n - int(aside)} stored reversed (their reverse complement matches their species): turned "
                    "round and kept as keys; " if n > int(aside) else "")
                 + "check them):")
    lines = [head]
    rows = list(summary.get("worst", []))
    # the most distant lone keys, then one line per group (``listed``: its keys, one batch of another species'
    # barcode, of which this line shows the first)
    shown = [r for r in rows if not r.get("group_keys")][:limit] + [r for r in rows if r.get("group_keys")][:limit]
    lines += [f"  {SuspectKey.from_dict(r).describe()}" + (f" (one of the batch's {r['listed']} keys)"
                                                              if int(r.get("listed", 1)) > 1 else "") for r in shown]
    told = sum(int(r.get("listed", 1)) for r in shown)
    if n > told:
        lines.append(f"  … and {n - told} more: `{AUDIT_COMMAND.format(bundle=bundle)}` lists every one")
    return lines


def list_audit(rows: Sequence[SuspectKey]) -> list[str]:
    """Every key of a bundle's audit table, one line each, most distant first (``info --audit``). Why: the summary
    ``info`` and ``build-reference`` print shows the worst keys and one key per batch, and a taxonomist checking a
    reference needs each key's processid to look it up in BOLD."""
    return [s.describe() for s in sorted(rows, key=lambda s: (s.own_identity, s.processid))]
