"""The order of the review's pick lists: what the candidate's evidence points to first, then its own lineage.

A taxonomist reviewing a real Costa Rican plate (F8) found the move list (``v``) of a Lepidoptera candidate
starting with Coleoptera and Diptera families (alphabetical), while the "not named" reason just above named
Gelechiidae and its runner-up Depressariidae (the right one); the assign list (``i``) went from the nearest
species' congeners straight to *Abax* (Coleoptera). Here, pure functions over the taxonomy graph and a proposal's
detail decide the order: the taxa the evidence names (the members' agreed label, where the closest candidates are
placed, the reason's label and its runner-up, the members' best-hit genera), then the taxa inside those, then the
rest by how deep their lineage meets the candidate's (siblings before cousins, the own order exhausted before
another order), then rank and name.
The dialogs draw the result (:mod:`biodiscover.tui.screens.dialogs`); the decisions fetch what goes in
(:mod:`biodiscover.tui.decisions`).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from biodiscover.storage.records import RANKS

#: The head of naming's "not named" sentence (``discovery.naming``'s ``explain``): the rank whose P(right) fell
#: under the level and its label, e.g. ``family Gelechiidae at 90.1% identity: …``.
_REASON_HEAD = re.compile(r"^(?P<rank>" + "|".join(RANKS) + r") (?P<name>.+?) at [\d.]+% identity:")
#: Its runner-up at that rank: ``…; Depressariidae lies within 1.0%``.
_REASON_RIVAL = re.compile(r"; (?P<name>[^;]+?) lies within [\d.]+%")


def reason_taxa(reason: str | None) -> list[tuple[str, str]]:
    """(rank, name) of the taxa a "not named" sentence names: the label of the rank that failed, then its
    runner-up at the same rank; [] for no sentence or one in another form."""
    head = _REASON_HEAD.match(reason or "")
    if head is None:
        return []
    out = [(head["rank"], head["name"])]
    rival = _REASON_RIVAL.search(reason or "")
    if rival is not None:
        out.append((head["rank"], rival["name"]))
    return out


#: the farthest (p-distance, consensus to consensus) another candidate may lie for its placement to be offered in
#: the move list. Why this figure: on the real Costa Rican plate each candidate's three nearest candidates were of
#: its true genus 109 times of 111 under 8 %, and 77 of 154 at 8-10 % (a coin toss).
PLACED_NEAR = 0.08


def neighbour_places(graph: Any, parent: int | None, near: Sequence[tuple[int, int, float]]) -> list[tuple[int, str]]:
    """(taxon id, why) of where the closest candidates are placed, closest first: ``near`` holds (proposal id,
    taxon id of its place, p-distance). Only a candidate under :data:`PLACED_NEAR` counts, and only a place that
    says more than the candidate's own ``parent`` (not it, nor a taxon above it). Why: a second review of the real
    plate put #5 into a new genus *Clemensia*; #14, 4.1 % from #5, then had to be moved there by typing the name,
    the move list offering only what #14's own evidence named."""
    above = {n.id for n in graph.lineage(parent)} if parent is not None and parent in graph else set()
    where: dict[int, list[str]] = {}
    for pid, tid, distance in sorted(near, key=lambda x: x[2]):
        if distance < PLACED_NEAR and tid in graph and tid not in above:
            where.setdefault(tid, []).append(f"#{pid} ({distance * 100:.1f} %)")
    return [(tid, f"where {', '.join(who)} {'is' if len(who) == 1 else 'are'} placed") for tid, who in where.items()]


def evidence_taxa(graph: Any, detail: Any, *, hits_first: bool = False,
                  placed: Sequence[tuple[int, str]] = ()) -> list[tuple[int, str]]:
    """(taxon id, why) of the taxa ``detail``'s evidence points to, most telling first: the rank every member's
    label agrees on, where the closest candidates are placed (``placed``, :func:`neighbour_places`), the reason's
    label and runner-up, the genera of the members' best hits (closest first; first of all with ``hits_first``,
    for the assign list, where a congener is what a reviewer looks for).
    Names the taxonomy lacks are left out; a name held by two taxa gives both."""
    named: list[tuple[str, str, str]] = []
    if detail.agreed_below is not None:
        named.append((detail.agreed_below[0], detail.agreed_below[1], "members' labels agree"))
    first = len(named)
    near = detail.evidence.nearest_known
    reason = reason_taxa(near.not_named_because if near is not None else None)
    named += [(rank, name, "not named there" if i == 0 else "runner-up in the reason")
              for i, (rank, name) in enumerate(reason)]
    hits = sorted((h for h in detail.evidence.member_hits.values() if h.genus and h.identity is not None),
                  key=lambda h: -float(h.identity))
    genera = [("genus", h.genus, "a member's best hit") for h in hits]
    if near is not None and near.genus:
        genera.insert(0, ("genus", near.genus, "nearest known species"))
    found: list[tuple[list[int], str]] = [([n.id for n in graph.find(name, rank)], why) for rank, name, why in named]
    found[first:first] = [([tid], why) for tid, why in placed]
    listed = [([n.id for n in graph.find(name, rank)], why) for rank, name, why in genera]
    found = listed + found if hits_first else found + listed
    out: dict[int, list[str]] = {}
    for tids, why in found:
        for tid in tids:
            if why not in out.setdefault(tid, []):
                out[tid].append(why)
    return [(tid, ", ".join(whys)) for tid, whys in out.items()]


def ranked(graph: Any, ids: Sequence[int], evidence: Sequence[int], anchor: int | None) -> list[int]:
    """``ids`` (taxon ids of the graph) best first: the ``evidence`` taxa in their order, then the taxa inside
    them, then the others by how deep their lineage meets ``anchor``'s (the candidate's parent, or the nearest
    known species), then by rank (family before genus) and name."""
    where = {tid: i for i, tid in enumerate(evidence)}
    meet = {node.id: depth for depth, node in enumerate(graph.lineage(anchor), 1)} \
        if anchor is not None and anchor in graph else {}

    def key(tid: int) -> tuple[Any, ...]:
        node = graph.node(tid)
        rank = RANKS.index(node.rank) if node.rank in RANKS else -1
        if tid in where:
            return (0, where[tid])
        lineage = graph.lineage(tid)
        inside = [where[n.id] for n in lineage[:-1] if n.id in where]
        shared = max((meet.get(n.id, 0) for n in lineage), default=0)
        if inside:
            return (1, min(inside), -shared, rank, node.name)
        return (2, -shared, rank, node.name)

    return sorted(ids, key=key)
