"""Reference audit: keys that sit far from every other key of their own species.

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

A species split into two groups of several keys each is *not* flagged: each key
has a close conspecific. What is flagged is a key alone — and for a species of
two keys both are listed, since nothing tells which one is wrong.

Cost: each distinct barcode of a species is compared with at most ``anchors``
other distinct barcodes of it (bounded alignments that stop at the cut-off); only
keys that none of these is close to are compared with every other barcode of their
species (at most ``max_exact``) and searched for their nearest other species.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from biodiscover.discovery.naming import PUBLISHED_CUTOFFS
from biodiscover.storage.distance import identity, p_distance, reverse_complement

#: a key whose nearest conspecific is below this identity is listed (the published family cut-off)
AUDIT_IDENTITY = PUBLISHED_CUTOFFS["family"]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SuspectKey":
        return cls(processid=str(data["processid"]), species=str(data["species"]),
                   own_identity=float(data["own_identity"]), conspecific_keys=int(data["conspecific_keys"]),
                   nearest_other=None if data.get("nearest_other") is None else str(data["nearest_other"]),
                   nearest_other_identity=float(data.get("nearest_other_identity", 0.0)),
                   reversed_identity=float(data.get("reversed_identity", 0.0)))

    def describe(self) -> str:
        """One line for a reviewer: the key, how far it is from its species, what it resembles instead."""
        text = (f"{self.processid} ({self.species}): {100 * self.own_identity:.1f} % identity to the nearest of "
                f"the {self.conspecific_keys} other key(s) of its species")
        if self.reversed_identity >= AUDIT_IDENTITY:
            text += (f"; its reverse complement is {100 * self.reversed_identity:.1f} % identical to its species: "
                     "stored reversed, indexed as its reverse complement")
        elif self.nearest_other:
            text += f"; {100 * self.nearest_other_identity:.1f} % to {self.nearest_other}"
        return text


def _close(a: str, b: str, min_identity: float) -> bool:
    """Whether two barcodes are within the audit's cut-off (a bounded alignment: far pairs stop early)."""
    return p_distance(a, b, max_distance=1.0 - min_identity) <= 1.0 - min_identity


def audit_reference(ids: Sequence[str], sequences: Sequence[str], lineages: Sequence[tuple[str | None, ...]], *,
                    min_identity: float = AUDIT_IDENTITY, anchors: int = 4, max_exact: int = 200,
                    seed: int = 0) -> tuple[list[SuspectKey], int]:
    """Keys whose nearest conspecific key is below ``min_identity`` (most distant first), and how
    many species had two keys or more (the species the audit could check).

    ``lineages[j][-1]`` is key j's species (None: not labelled to species, not audited).
    The nearest other species is left empty here (:func:`nearest_other_species` fills it).
    """
    rng = np.random.default_rng(seed)
    by_species: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for j, lin in enumerate(lineages):
        if lin and lin[-1]:
            by_species[lin[-1]][sequences[j]].append(j)
    suspects: list[SuspectKey] = []
    checked = 0
    for species, distinct in by_species.items():
        n_keys = sum(len(v) for v in distinct.values())
        checked += n_keys > 1
        if len(distinct) < 2:
            continue  # alone, or every key the same barcode: nothing to compare
        seqs = list(distinct)
        picks = rng.choice(len(seqs), min(anchors, len(seqs)), replace=False)
        for i, seq in enumerate(seqs):
            if len(distinct[seq]) > 1:
                continue  # an identical conspecific copy
            if any(_close(seq, seqs[a], min_identity) for a in picks if a != i):
                continue
            others = [s for s in seqs if s != seq]
            if len(others) > max_exact:
                others = [others[int(x)] for x in rng.choice(len(others), max_exact, replace=False)]
            best = max(identity(seq, s) for s in others)
            if best < min_identity:
                flipped = reverse_complement(seq)
                back = max(identity(flipped, s) for s in others)
                suspects.extend(SuspectKey(str(ids[j]), species, best, n_keys - 1, reversed_identity=back)
                                for j in distinct[seq])
    suspects.sort(key=lambda s: (s.own_identity, s.processid))
    return suspects, checked


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
        out.append(SuspectKey(s.processid, s.species, s.own_identity, s.conspecific_keys, best_sp,
                              best if best_sp else 0.0, s.reversed_identity))
    return out


def describe_audit(summary: Mapping[str, Any], limit: int = 5) -> list[str]:
    """Lines for ``build-reference`` and ``info`` from the audit summary a bundle records."""
    n = int(summary.get("suspects", 0))
    checked = int(summary.get("species_checked", 0))
    cut = float(summary.get("min_identity", AUDIT_IDENTITY))
    if not n:
        return [f"reference audit: every key of the {checked} species with 2 or more keys lies within "
                f"{100 * (1 - cut):.0f} % of another key of its species"]
    head = (f"reference audit: {n} key(s) lie farther than {100 * (1 - cut):.0f} % from every other key of their "
            "species (possible misidentification, contamination or a cryptic species; ")
    aside = summary.get("set_aside")
    if aside is None:  # a bundle built before keys were set aside: they still name what matches them
        head += "check them before trusting names they give):"
    else:
        head += (f"{int(aside)} set aside: no specimen is named from them, the rest of their species still names; "
                 "check them):")
    lines = [head]
    shown = summary.get("worst", [])[:limit]
    lines += [f"  {SuspectKey.from_dict(row).describe()}" for row in shown]
    if n > len(shown):
        lines.append(f"  … and {n - len(shown)} more (bundle table reference_audit)")
    return lines
