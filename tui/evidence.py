"""Read a proposal's evidence record into what the detail widgets draw.

Evidence is produced by discovery (``discovery.proposals``) as the typed record
:class:`biodiscover.storage.evidence.Evidence`, stored by the database and handed
back as that record, so every reader here names a field instead of guessing
keys; what a record lacks reads as "not recorded". Nothing is computed here
beyond picking and counting what is given.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Container, Mapping, Sequence

from biodiscover.discovery.barcode_gap import BarcodeGap, gap_of
from biodiscover.storage.db.reviews import retired_named
from biodiscover.storage.evidence import (SPECIES_SPAN, TIE, Evidence, NearSpecies, below_order_cutoff, chance_note,
                                          congeners_note,
                                          indistinct_congeners, known_elsewhere, span_note, species_spread,
                                          nearest_first, tied_species, twin_threshold, unusable_reads)
from biodiscover.storage.records import DESCRIBED, RANKS, candidate_name, is_filler_name
from biodiscover.storage.review_log import carried, in_force, own_note


#: what marks a provisional taxon (a genus a reviewer made, not in the reference) wherever a taxon is named
PROVISIONAL_MARK = "◆"
#: what marks, in the taxonomy tree, a described taxon a reviewer added that the reference lacks (a published name:
#: hollow, where a provisional one is filled)
DESCRIBED_MARK = "◇"


def marked(name: str, provisional: bool) -> str:
    """``Clemensia ◆``: a taxon's name as the header and every pick list show it (the taxonomy tree marks it the
    same). Why: a reviewer's provisional genus read ``genus Clemensia (Erebidae › Arctiinae)`` in the move list,
    as if the reference held it."""
    return f"{name} {PROVISIONAL_MARK}" if provisional else name


def shown_name(p: Any, provisional: Container[int]) -> str:
    """The candidate's one name (``ProposalSummary.name``) with its genus marked when a reviewer made it
    (``Clemensia ◆ sp. cand5``): ``provisional`` holds the ids of the provisional taxa. A row without a parent id
    (a summary-like record) reads as its name."""
    name, parent = str(p.name), getattr(p, "parent_name", None)
    if getattr(p, "parent_taxon_id", None) in provisional and parent and name.startswith(f"{parent} "):
        return marked(parent, True) + name[len(parent):]
    return name


def distances(evidence: Evidence) -> tuple[list[float], list[float]]:
    """(within-candidate distances, distances to the nearest known species), fractions."""
    return list(evidence.within_distances), list(evidence.nearest_known_distances)


#: what marks a candidate that is probably the same species as a live candidate of another run (``Database.twins``):
#: in the queue's marks column and the review's header
TWIN_MARK = "≡"


#: what marks a nearest known species below the run's order cut-off (``storage.evidence.below_order_words``: far from
#: every key, an order the reference lacks or a distant family or genus of its own): after its identity in the
#: Evidence tab's list, the queue's ident% cell and the assign list's rows (:func:`below_order_mark`); the help's
#: glossary explains it
BELOW_ORDER_MARK = "↓"


def below_order_mark(identity: float | None, order_cutoff: float | None, blank: str = "") -> str:
    """:data:`BELOW_ORDER_MARK` where a known species at ``identity`` (a fraction) lies below the run's
    ``order_cutoff`` (``storage.evidence.below_order_cutoff``), else ``blank`` (the queue's one spare cell keeps
    its figures aligned with a space). Why one owner: the Evidence tab and the queue marked a moth at 82.8 % for
    beetles while the assign list (``i``) offered the same moth at 82.8 % unmarked (e35)."""
    return BELOW_ORDER_MARK if below_order_cutoff(identity, order_cutoff) else blank


def other_run(p: Any, collection: str | None) -> str:
    """``run 6, 2026-w01-costa-rica``: where a candidate of another run comes from."""
    return f"run {p.run_id}" + (f", {collection}" if collection else "")


def twin_text(p: Any, distance: float, collection: str | None) -> str:
    """``#10 Adelpha sp. cand10 (run 6, 2026-w01-costa-rica, 0.2 %)``, its status said unless pending
    (``#3 Hemiceras sp. BD-0005 accepted (run 6, …)``): a twin of another run as the header, the Evidence tab
    and the accept warning name it."""
    status = "" if p.status == "pending" else f" {p.status}"
    return f"#{p.id} {p.name}{status} ({other_run(p, collection)}, {distance * 100:.1f} %)"


def twins_line(twins: Sequence[Any], reason: str | None = None) -> str | None:
    """The header's line for ``ProposalDetail.twins``: the nearest named, the others counted; ``reason``: the note
    of the nearest one's decision (a rejected twin's "known species: …", which the reviewer otherwise went back
    to #3 to read, e29 F12)."""
    if not twins:
        return None
    first = twins[0]
    more = f"; also #{', #'.join(str(t.proposal.id) for t in twins[1:])}" if len(twins) > 1 else ""
    said = f": “{reason}”" if reason else ""
    return f"same as {twin_text(first.proposal, first.distance, first.collection)}{said}{more}"


def extra_lines(evidence: Evidence, closest: Any = None, bin_holders: Sequence[Any] = (),
                closest_collection: str | None = None, own_run: int | None = None) -> list[tuple[str, str]]:
    """(label, value) lines for what evidence adds beyond the histogram: BINs, neighbour, sizes. ``closest``:
    the proposal now holding the closest candidate (``ProposalDetail.closest_candidate``), named when given;
    when it is another run's (not ``own_run``), the line says which run and collection
    (``closest_collection``), and "same as" within the species threshold (``storage.evidence.twin_threshold``);
    ``bin_holders``: the proposals holding the other candidates of the dominant BIN (``ProposalDetail``)."""
    out: list[tuple[str, str]] = []
    b = evidence.bin
    if b is not None and b.dominant:
        text = f"{b.dominant}" + (f", {b.agreement * 100:.0f}% of members" if b.agreement is not None else "")
        if bin_holders:
            text += f"; also in #{', #'.join(str(p.id) for p in bin_holders)} (over-split?)"
        elif b.shared_with and not b.shared_members:  # a record that names no specimen: its numbers are no ids
            text += f"; also in {len(b.shared_with)} other candidate(s) of its run (over-split?)"
        out.append(("BIN", text))
    w = evidence.within_distance
    if w is not None and w.mean is not None:
        out.append(("within", f"mean {w.mean * 100:.2f}%, max {(w.max or 0) * 100:.2f}%"))
    nb = evidence.between_distance
    if nb is not None:
        if closest is not None and own_run is not None and closest.run_id != own_run:
            if nb.distance <= twin_threshold(evidence.threshold):
                out.append(("closest candidate", f"same as {twin_text(closest, nb.distance, closest_collection)}"))
            else:
                out.append(("closest candidate", f"#{closest.id} {closest.name} "
                                                 f"({other_run(closest, closest_collection)}), "
                                                 f"{nb.distance * 100:.1f}% away"))
        else:
            which = f"#{closest.id} {closest.name}, " if closest is not None else ""
            out.append(("closest candidate", f"{which}{nb.distance * 100:.1f}% away"))
    sizes = evidence.size_summary.image_measurement_value if evidence.size_summary else None
    if sizes is not None:
        out.append(("body area (px in image)", f"median {sizes.median:.0f} (min {sizes.min:.0f}, max {sizes.max:.0f})"))
    return out


def barcode_gap(evidence: Evidence, nearest_identity: Any = None) -> "BarcodeGap":
    """The candidate's barcode gap, judged against the learned threshold (one definition, shared with the
    HTML report: :func:`biodiscover.discovery.barcode_gap.gap_of`)."""
    return gap_of(evidence, nearest_identity)


GAP_STYLE = {"gap": "green", "not separated": "yellow", "no gap": "yellow", "not COI": "bold red", "unknown": "grey50"}


def p_under(value: float) -> str:
    """A P(right) under the naming level, cut (not rounded) to two decimals: 0.977 reads ``0.97``. Why: "P(right)
    0.96–0.98, under the level" beside a Members column of 0.98s read as if the level 0.98 were met (third
    real-plate review, D2); a cut figure never reads as reaching a level it is under."""
    return f"{math.floor(value * 100 + 1e-9) / 100:.2f}"


def p_span(values: Sequence[float]) -> str:
    """``0.96–0.97``, or ``0.34`` when they read alike: the P(right) of several members at one rank, each
    :func:`p_under`."""
    lo, hi = p_under(min(values)), p_under(max(values))
    return lo if lo == hi else f"{lo}–{hi}"


def p_against(lo: float, hi: float, level: float | None) -> str:
    """The lowest and highest P(right) of several members at one rank against the run's naming ``level``:
    ``0.95–0.979, under the level 0.98`` (a figure under it printed with the digits that show it:
    ``discovery.naming.printed_below``, as the reasons print theirs), ``0.98–0.99, at or over the level 0.98``, or
    ``0.976–0.99, the lowest under the level 0.98``; :func:`p_span` and ``under the level`` where the level is
    unknown (a run that recorded none).

    Why: after a reviewer moved #31 up to its subfamily the header read "members' labels agree down to genus
    Sitona (P(right) 0.98, under the level)" for members named there at 0.984-0.987, over the level 0.98 (e36
    season review, finding 7): the figure and the words disagreed, and the level was not said."""
    if level is None:
        return f"{p_span([lo, hi])}, under the level"
    from biodiscover.discovery.naming import printed_below

    def shown(v: float) -> str:
        return printed_below(v, level) if v < level else p_under(v)

    span = shown(lo) if shown(lo) == shown(hi) else f"{shown(lo)}–{shown(hi)}"
    said = "under" if hi < level else "at or over" if lo >= level else "the lowest under"
    return f"{span}, {said} the level {level:g}"


def unplaced_line(members: Sequence[Any]) -> str:
    """The header's lineage line for a candidate placed in no taxon: what its members' labels say at order, under
    the level (``not placed: its member's label is order Lepidoptera (P(right) 0.34, under the level)``). The real
    plate's #113 read ``?`` there while its member's label said Lepidoptera."""
    said = [(m.labels.get("order"), m.confidences.get("order")) for m in members
            if getattr(m, "labels", None) and m.labels.get("order")]
    if not said:
        return "not placed: no label at any rank"
    names = Counter(name for name, _ in said)
    if len(names) > 1:  # each with how sure it is: 11 best guesses at 0.00 are no 11 votes against one at 0.78
        def sure(name: str) -> str:
            probs = [float(c) for n, c in said if n == name and c is not None]
            return f" (P(right) {p_span(probs)})" if probs else ""

        return "not placed: its members' labels part at order: " + \
            ", ".join(f"{name} {n}{sure(name)}" for name, n in names.most_common())
    who = "its member's label is" if len(members) == 1 else "its members' labels are"
    probs = [float(c) for _, c in said if c is not None]
    p = f" (P(right) {p_span(probs)}, under the level)" if probs else ""
    return f"not placed: {who} order {said[0][0]}{p}"


def rank_under(parent_rank: str | None, members: Sequence[Any]) -> str | None:
    """The rank just under a candidate's place (``parent_rank``; order for one placed nowhere) where some member
    has a label, ranks no member is labelled at skipped (BOLD leaves subfamily blank); None at genus, or when no
    member has a label there. Why: e21's F2 — a candidate at order showed each member as "order: Lepidoptera
    1.00", while the family label under the level and its P(right) are what a taxonomist places it from."""
    ranks = list(RANKS[:RANKS.index("species")])
    start = ranks.index(parent_rank) + 1 if parent_rank in ranks else 0
    for rank in ranks[start:]:
        if any(isinstance(n := getattr(m, "labels", {}).get(rank), str) and not is_filler_name(n) for m in members):
            return rank
    return None


def label_at(member: Any, rank: str | None) -> str:
    """``0.06 Noctuidae``: ``member``'s label at ``rank`` after its P(right) there (first, so a long name cut to
    its column never takes the figure); ``–`` for none."""
    name = getattr(member, "labels", {}).get(rank) if rank else None
    if not isinstance(name, str) or is_filler_name(name):
        return "–"
    p = getattr(member, "confidences", {}).get(rank)
    return name if p is None else f"{p_under(float(p))} {name}"


def deepest_text(member: Any) -> str:
    """``genus: Smittia``: the deepest rank a member is named to, as the members table shows it; ``unnamed`` for a
    specimen named to no rank (it read "?: ?", e29 F12)."""
    taxon = getattr(member, "deepest_taxon", None)
    if not taxon:
        return "unnamed"
    return f"{getattr(member, 'deepest_rank', None) or '?'}: {taxon}"


def split_from(edges: Sequence[dict[str, Any]], proposal_id: int) -> int | None:
    """The proposal a reviewer split this one off (its ``split`` history edge), or None."""
    for e in edges:
        if e.get("kind") == "split" and e.get("target_id") == proposal_id and e.get("review_id") is not None:
            return int(e["source_id"])
    return None


def why_lines(evidence: Evidence, members: Sequence[Any], split_off: int | None = None) -> list[tuple[str, str]]:
    """(label, value) lines saying why these specimens were proposed as one candidate species. ``split_off``: the
    proposal a reviewer split these off (:func:`split_from`): the clustering figures are that proposal's (the cut
    and the members' membership are carried over, ``discovery.proposals.recompute_evidence``), which the real
    plate's split-off #116 showed as if it had been clustered so."""
    out: list[tuple[str, str]] = []
    nov = [m.novelty for m in members if isinstance(getattr(m, "novelty", None), (int, float))]
    if nov:
        out.append(("novelty", f"{min(nov):.2f}–{max(nov):.2f} across members (mean {sum(nov) / len(nov):.2f})"))
    parts = []
    t = evidence.threshold
    if t is not None:
        linkage = evidence.linkage
        parts.append(f"{linkage + ' linkage' if linkage else 'linked'} at ≤ {t * 100:.1f}% p-distance")
    if evidence.hdbscan_agreement is not None:
        parts.append(f"HDBSCAN agrees {evidence.hdbscan_agreement * 100:.0f}%")
    if evidence.mean_probability is not None:
        parts.append(f"mean membership {evidence.mean_probability:.2f} (P(same species) at each member's distance "
                     "from the others, calibrated on the reference; ctr% in Members: each one's distance from the "
                     "consensus)")
    elif isinstance(evidence.extra.get("clustering_score"), (int, float)):
        # evidence stored before format 6: half of its figure is HDBSCAN's soft membership, which a single-cluster
        # group leaves near 0; "mean membership 0.51" beside "HDBSCAN agrees 100%" read as doubt about half the
        # members of a candidate 0.9 % wide
        parts.append(f"clustering score {float(evidence.extra['clustering_score']):.2f} (stored by an earlier "
                     "version: P(same species) by distance averaged with HDBSCAN's soft membership, ≈0 where "
                     "HDBSCAN sees one cluster: not doubt; ctr% in Members: each one's distance from the consensus)")
    if parts:
        out.append(("clustered", "; ".join(parts)))
    near = evidence.nearest_known
    if near is not None and near.not_named_because:  # why the closest member is not that known species
        out.append(("not named", near.not_named_because))
    if split_off is not None:
        unnamed = "" if near is not None and near.not_named_because else \
            '; no "not named" reason was computed for it'
        out.append(("made by", f"split off #{split_off} by a reviewer: the clustering figures above are "
                               f"#{split_off}'s, not recomputed for this part{unnamed}"))
    return out


#: nearest known species the Evidence tab lists (the flag reads the same ones)
NEAR_SHOWN = 5


def species_names(names: Sequence[str]) -> str:
    """``Gonodonta bidens / G. uxor``: tied species in one line, a repeated genus shortened to its initial."""
    out: list[str] = []
    first_genus = names[0].split(" ", 1)[0] if names else ""
    for i, name in enumerate(names):
        genus, _, rest = name.partition(" ")
        out.append(f"{genus[0]}. {rest}" if i and rest and genus == first_genus else name)
    return " / ".join(out)


def nearest_header(evidence: Evidence, species: str | None, identity: float | None) -> tuple[str, float | None]:
    """(what the header names as the nearest known species, its identity): every species tied with the nearest
    (within 0.1 %) — a real plate's true species sat tied and unnamed behind "nearest known G. bidens" — else
    the proposal's own nearest species (records without the list)."""
    tied = tied_species(evidence.near_species)
    near = evidence.near_species
    # as near, in other genera: a name picked among them says nothing (an Australian plate's "nearest known
    # Gonodonta bidens" for four species of four families at 91.5 %, on six candidates of none of them)
    others = sum(1 for s in near[1:] if near[0].identity is not None and s.identity is not None
                 and near[0].identity - s.identity <= TIE + 1e-12 and s not in tied)
    more = f" + {others} as near in other genera" if others else ""
    if len(tied) > 1 and species in {t.species for t in tied}:  # the best key's species first, as before
        return species_names([species, *(t.species for t in tied if t.species != species)]) + more, tied[0].identity
    top = bool(near) and species == near[0].species
    return (species or "–") + (more if top else ""), identity


def placed_genus(rank: str | None, name: str | None) -> str | None:
    """The genus a candidate is placed in (None above genus): what ``known_elsewhere`` compares with (the queue
    filter asks the database the same: ``parent_rank = 'genus'``)."""
    return name if rank == "genus" else None


def elsewhere_line(evidence: Evidence, genus: str | None, *, short: bool = False,
                   met_here: Mapping[str, Mapping[str, int]] | None = None) -> str | None:
    """The flag in words, where ``known_elsewhere`` raises it (``met_here``: the countries reviewers' assigned
    candidates add, ``ProposalDetail.met_here``): ``H. losa (93.4%): 2 keys: Suriname 1, Trinidad and Tobago 1;
    none from Costa Rica — may be a known species met from another part of its range: 6.6% apart, more than the 3%
    one species usually spans`` (``span_note``); ``short`` (the header, two lines at 80 columns): the key count
    without the countries the Evidence tab lists, "met elsewhere" (two lines, not three, at 80 columns)."""
    s = flagged_species(evidence, genus, met_here)
    if s is None:
        return None
    here = ", ".join(evidence.geography.countries) if evidence.geography is not None else "?"
    keys = s.keys_text() if not short else "no key" if not s.n_keys else (
        f"{s.n_keys} key{'' if s.n_keys == 1 else 's'}" + _one_country(s))
    span = span_note(s, short=short)
    where = "elsewhere" if short else "from another part of its range"
    return f"{s.species} ({_percent(s.identity)}): {keys}; none from {here} — may be a known species met {where}" + (
        f": {span}" if span else "")


def flag_mark(gap: float | None) -> tuple[str, str]:
    """(mark, style) of the known-elsewhere flag at ``gap`` (1 - identity to the flagged species): ⚑ within the
    ``SPECIES_SPAN`` one species usually spans, ⚐ beyond it (none known: ⚐). One owner for the queue's mark and
    the header's and Evidence tab's lines (e33 review F17: the header drew ⚑ for Udea ferrugalis at 4.1 % where the
    queue drew ⚐)."""
    return ("⚑", "bold yellow") if gap is not None and gap <= SPECIES_SPAN + 1e-12 else ("⚐", "yellow")


def flagged_mark(s: NearSpecies | None) -> tuple[str, str]:
    """:func:`flag_mark` of the species the flag names (:func:`flagged_species`)."""
    return flag_mark(None if s is None or s.identity is None else max(0.0, 1.0 - s.identity))


def flagged_species(evidence: Evidence, genus: str | None,
                    met_here: Mapping[str, Mapping[str, int]] | None = None) -> NearSpecies | None:
    """The species the ⚑ names (``known_elsewhere`` over the listed ones), None where none is flagged."""
    return known_elsewhere(evidence, genus, NEAR_SHOWN, met_here=met_here)


def congeners_line(evidence: Evidence, s: NearSpecies | None, *, short: bool = False) -> str | None:
    """:func:`~biodiscover.storage.evidence.congeners_note`, a repeated genus shortened to its initial; ``short`` (the
    header, two lines at 80 columns): ``2 Amara species 0.7% apart (Amara ovata / A. similata), nearer each other
    than to the members (2.9%): DNA cannot pick among them``."""
    text = congeners_note(evidence, s)
    group = indistinct_congeners(evidence, s) if s is not None and text else []
    if not group or text is None or s is None or s.identity is None:
        return text
    names = species_names([t.species for t in group])
    if short:
        return (f"{len(group)} {s.genus or s.species.split()[0]} species {100 * species_spread(group):.1f}% apart "
                f"({names}), nearer each other than to the members ({100 * (1.0 - s.identity):.1f}%): DNA cannot "
                "pick among them")
    return text.replace(" / ".join(t.species for t in group), names)


def quality_lines(evidence: Evidence, *, short: bool = False) -> list[str]:
    """What the evidence says of the data rather than the species: reads not usable as COI (where only some
    members are: where all are, the barcode gap line says it) and reference records dropped that members match
    (``DroppedKey``); ``short`` (the header) names the record, its species and why in fewer words."""
    out = []
    bad = unusable_reads(evidence.member_hits)
    if bad and len(bad) < len(evidence.member_hits):
        out.append(chance_note(evidence) or "")
    for k in evidence.dropped_keys:
        if short:
            why = k.why.split(":", 1)[0]
            size = max(evidence.size, len(evidence.member_hits))
            who = "its member matches" if size <= 1 else f"{len(k.members)} of {size} members match"
            out.append(f"{who} a record the reference dropped: {k.processid} ({k.species or 'no species'}) "
                       f"{'–' if k.identity is None else f'{100 * k.identity:.1f}%'}, {why}")
        else:
            out.append(k.sentence(max(evidence.size, len(evidence.member_hits))))
    return [line for line in out if line]


def _one_country(s: NearSpecies) -> str:
    """``, no country`` / ``, all from Papua New Guinea`` (several keys, every one from one country) / empty: what
    the header adds to a flagged species' key count (an Australian plate's *Bactrocera kraussi*: 29 keys, all
    from Papua New Guinea, read "29 keys")."""
    if s.no_country == s.n_keys:
        return ", no country"
    countries = list(s.countries or {})
    return f", all from {countries[0]}" if (s.n_keys or 0) > 1 and len(countries) == 1 and not s.no_country else ""


def near_species_lines(evidence: Evidence, met_here: Mapping[str, Mapping[str, int]] | None = None,
                       order_cutoff: float | None = None) -> list[tuple[NearSpecies, str]]:
    """(species, ``99.1%  9 keys: Brazil 6, …``) for the nearest known species listed, nearest first; a species
    reviewers assigned candidates to says from where (``met_here``: ``; assigned here: Costa Rica 10``), which is
    why its ⚑ may be gone; one below the run's ``order_cutoff`` (``ProposalDetail.order_cutoff``) has
    :data:`BELOW_ORDER_MARK` after its identity (``82.8%↓``: a moth listed for beetles, e33 review F4)."""
    out = []
    short = evidence.short_reads
    for s in nearest_first(evidence.near_species, short)[:NEAR_SHOWN]:
        line = f"{_percent(s.identity)}{below_order_mark(s.identity, order_cutoff)}  {s.keys_text()}"
        if s.members and all(pid in short for pid in s.members):  # listed after every full-length read's species
            bases = sorted(h.overlap for pid in s.members if (h := evidence.member_hits.get(pid)) and h.overlap)
            read = f"{bases[-1]}-base read" if len(bases) == 1 else \
                f"{len(bases)} reads of {bases[0]}-{bases[-1]} bases" if bases else "short reads"
            line += f"; met only by {'a ' if len(bases) == 1 else ''}{read} (a short read's identity runs high)"
        met = (met_here or {}).get(s.species)
        if met:
            line += "; assigned here: " + ", ".join(f"{c} {n}" for c, n in sorted(met.items(), key=lambda cn: -cn[1]))
        out.append((s, line))
    return out


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def consensus(evidence: Evidence) -> str | None:
    return evidence.consensus_barcode or None


def places(evidence: Evidence, members: Sequence[Any]) -> tuple[list[tuple[str, int]], list[float] | None]:
    """(place, count) pairs and a lat/lon box: from the evidence's geography when present, else members."""
    geo = evidence.geography
    pairs: list[tuple[str, int]] = []
    bbox: list[float] | None = None
    if geo is not None:
        pairs = [(str(k), int(v)) for k, v in geo.countries.items()]
        if geo.bbox is not None:
            bbox = list(geo.bbox)
    if not pairs:
        counts = Counter(", ".join(x for x in (m.country, m.province_state) if x) or "unknown" for m in members)
        pairs = list(counts.items())
    if bbox is None:
        lats = [m.coord_lat for m in members if m.coord_lat is not None]
        lons = [m.coord_lon for m in members if m.coord_lon is not None]
        if lats and lons:
            bbox = [min(lats), max(lats), min(lons), max(lons)]
    return pairs, bbox


def images(members: Sequence[Any], evidence: Evidence, image_root: Path | None) -> list[tuple[str, Path]]:
    """(processid, path) of member images; representative images (evidence) first."""
    by_pid: dict[str, Path] = {}
    for m in members:
        if m.image_path:
            path = Path(m.image_path)
            if not path.is_absolute() and image_root is not None:
                path = image_root / path
            by_pid[m.processid] = path
    order: list[str] = []
    for r in evidence.representative_images:
        if r.path and r.processid not in by_pid:
            by_pid[r.processid] = Path(r.path) if image_root is None or Path(r.path).is_absolute() \
                else image_root / r.path
        if r.processid in by_pid and r.processid not in order:
            order.append(r.processid)
    order += [pid for pid in by_pid if pid not in order]
    return [(pid, by_pid[pid]) for pid in order]


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (stored history may lack any part)."""
    return value if isinstance(value, dict) else {}


def _snap(row: dict[str, Any], side: str, proposal_id: int | None) -> dict[str, Any]:
    props = _dict(_dict(row.get(side)).get("proposals"))
    return _dict(props.get(str(proposal_id)) if proposal_id is not None else None)


def _parent(snap: dict[str, Any]) -> str:
    return " ".join(str(x) for x in (snap.get("parent_rank"), snap.get("parent_name")) if x) or "no parent"


def _added(r: dict[str, Any]) -> str | None:
    """The status of the taxon a review added to the taxonomy (one its ``before`` lacks: a new genus, a described
    species), or None when it added none: History says a genus is provisional or described, as the exports do."""
    before = _dict(_dict(r.get("before")).get("taxa"))
    made = [t for k, t in _dict(_dict(r.get("after")).get("taxa")).items()
            if isinstance(t, dict) and k in before and before[k] is None]
    return str(made[0].get("status")) if made else None


def review_line(r: dict[str, Any], actions: dict[Any, Any], current: Any = None) -> str:
    """What one review did, in words: old and new names, where a move went, what an undo took back.
    ``current``: the proposal as it is now (``ProposalSummary``): an assignment to a species renamed since
    says its name now too."""
    action = str(r.get("action"))
    pid = r.get("proposal_id")
    before, after = _snap(r, "before", pid), _snap(r, "after", pid)
    if action == "rename":  # the name it went by, the working one included (as the exports' history says it)
        was = candidate_name(before.get("provisional_name"), before.get("parent_name"), before.get("parent_rank"), pid)
        return f"renamed “{was}” → “{after.get('provisional_name')}”"
    if action == "move":
        added = {"provisional": " (added: provisional)", DESCRIBED: " (added: described, not in the reference)"}
        return f"moved from {_parent(before)} to {_parent(after)}" + added.get(_added(r) or "", "")
    if action == "accept":
        return f"accepted as new species “{after.get('provisional_name')}”"
    if action == "assign":
        then = after.get("provisional_name")
        renamed = current is not None and current.status == "assigned" and \
            current.taxon_id == after.get("taxon_id") and current.provisional_name != then
        return (f"assigned to described species “{then}” (added: not in the reference)" if _added(r) == DESCRIBED
                else f"assigned to known species “{then}”") + (f" (renamed “{current.provisional_name}” since)"
                                                          if renamed else "")
    if action == "reject":
        return "rejected"
    if action == "merge":
        others = [k for k in (r.get("after") or {}).get("proposals", {}) if k != str(pid)]
        where = f", now under {_parent(after)}" if _parent(before) != _parent(after) else ""
        return f"merged #{', #'.join(others)} into this one (n={after.get('size')}{where})"
    if action == "split":
        new = [k for k in (r.get("after") or {}).get("proposals", {}) if k != str(pid)]
        moved = (r.get("after") or {}).get("proposals", {}).get(new[0], {}) if new else {}
        n = moved.get("size", "?")
        return f"split {n} member{'' if n == 1 else 's'} off into #{new[0] if new else '?'}"
    if action == "undo":
        target = r.get("target_review_id")
        return f"undid {actions.get(target) or 'review'} (review {target})"
    if action == "reopen":  # a decision of any session taken back: the candidate is pending again
        target = r.get("target_review_id")
        taken = f"the {actions.get(target) or 'decision'} of review {target}" if target is not None else "its decision"
        return f"reopened: took back {taken}; pending again"
    if action == "withdraw":  # a note taken back by its author, from any session
        target = r.get("target_review_id")
        return f"withdrew the note of review {target}"
    if action == "note":
        return "note"
    return action


def edge_line(e: dict[str, Any], proposal_id: int) -> str | None:
    """An automatic history event (re-clustering, a rejection remembered), or the other side of a merge or split
    (the part split off, a candidate merged into another); None where this proposal's own review row tells it."""
    kind, src, dst = e.get("kind"), e.get("source_id"), e.get("target_id")
    detail = _dict(e.get("detail"))
    shared = detail.get("shared_members")
    if e.get("review_id") is not None and kind in ("merge", "split"):
        # the review row is the kept proposal's (merge) or the parent's (split): the other side says it here
        if proposal_id == (dst if kind == "merge" else src):
            return None
        if kind == "split":
            n = len(detail.get("members") or ())
            return f"split off from #{src} ({n} member{'' if n == 1 else 's'}, review {e.get('review_id')})"
        return f"merged into #{dst} (review {e.get('review_id')})"
    if kind == "recluster":
        merge = _dict(detail.get("merge_not_carried"))
        away = int(merge.get("elsewhere") or 0)
        merged = ", #".join(map(str, merge.get("merged") or ()))
        unmerged = (f"; {merge.get('reviewer') or 'a reviewer'}'s merge of #{merged} into #{src} is not carried: "
                    f"{away} of its members {'is' if away == 1 else 'are'} elsewhere now" if merge else "")
        kept = detail.get("kept")  # the run triaged only some of the candidate's members: the rest stay in it
        stay = (f"; the other {kept} stay {'here' if src == proposal_id else 'there'}" if kept else "")
        return (f"re-clustered by run {e.get('run_id')} into #{dst} ({shared} members shared{unmerged}{stay})"
                if src == proposal_id
                else f"re-clusters #{src} of an earlier run ({shared} members shared{unmerged}{stay})")
    if kind == "returned":
        away = int(detail.get("untriaged") or 0)
        return (f"run {e.get('run_id')} triaged {shared} of its {int(shared or 0) + away} members again and grouped "
                f"them alone: kept here (#{src})" if dst == proposal_id else
                f"its members are all in #{dst}, which holds {away} specimens run {e.get('run_id')} did not triage: "
                "kept there, not queued")
    if kind == "retired":
        n = int(detail.get("members") or 0)
        what = "its one member and does not propose it" if n == 1 else f"all {n} members and proposes none of them"
        return (f"retired by run {e.get('run_id')}: it triaged {what} ({retired_named(detail)}); out of the queue, "
                "status superseded")
    if kind == "recognised":
        return (f"its members came back in run {e.get('run_id')} as #{dst}: rejected again, not queued"
                if src == proposal_id else f"same members as #{src}, which a reviewer rejected: not queued again")
    if kind == "overlaps_rejected":
        return (f"{shared} of its members came back in #{dst} (run {e.get('run_id')})" if src == proposal_id
                else f"{shared} of {detail.get('members', '?')} members were in #{src}, which a reviewer rejected")
    if kind == "undo":
        return "withdrawn: the split that made it was undone"
    return f"{kind} #{src} → #{dst}"


def history_entries(reviews: Sequence[dict[str, Any]], edges: Sequence[dict[str, Any]], proposal_id: int,
                    current: Any = None) -> list[tuple[str, str, str | None, str | None]]:
    """(time, what happened, reviewer or None, note or None), oldest first: reviews and automatic events
    in one timeline (``current``: the proposal now, see :func:`review_line`)."""
    actions = {r.get("id"): r.get("action") for r in reviews}
    ordered = sorted(reviews, key=lambda r: r.get("id") or 0)
    active = in_force(ordered)
    taken = {r.get("target_review_id"): r.get("id") for r in ordered
             if r.get("action") == "withdraw" and active.get(r.get("id"))}
    out: list[tuple[str, str, str | None, str | None]] = []
    for r in reviews:
        what, how, note = review_line(r, actions, current), carried(r), own_note(r)
        if how is not None and r.get("action") == "note":  # her note, carried: where she wrote it
            what += f" ({how.written_on()})"
        elif how is not None:  # the database's action, saying whose review it repeats, and where
            what += f" — {how.words(str(r.get('action')))} ({how.origin()})"
        if r.get("id") in taken:
            what += f" (withdrawn, review {taken[r.get('id')]})"
        out.append((str(r.get("created_at") or ""), what, str(r.get("reviewer") or "?"), note))
    for e in edges:
        line = edge_line(e, proposal_id)
        if line is not None:
            out.append((str(e.get("created_at") or ""), line, None, None))
    return sorted(out, key=lambda x: x[0])


def rejected_warning(edges: Sequence[dict[str, Any]], proposal_id: int, status: str) -> str | None:
    """One line when this candidate meets a rejected one again (``overlaps_rejected`` / ``recognised``), while that
    is what holds: a recognised one while it stays rejected, one sharing members with a rejection while pending.
    Why ``status``: a twin rejected again citing #54, reopened with it and then merged into it still read "same
    members as #54, rejected by a reviewer: not queued again" (e31 F9); its history keeps the line."""
    for e in edges:
        if e.get("target_id") != proposal_id:
            continue
        detail = _dict(e.get("detail"))
        if e.get("kind") == "recognised" and status == "rejected":
            return f"same members as #{e.get('source_id')}, rejected by a reviewer: not queued again"
        if e.get("kind") == "overlaps_rejected" and status == "pending":
            return (f"{detail.get('shared_members')} of {detail.get('members', '?')} members were in "
                    f"#{e.get('source_id')}, which a reviewer rejected")
    return None


#: Members aligned in the DNA tab (evenly spread over the list when there are more).
DNA_MAX_MEMBERS = 40


@dataclass(frozen=True)
class DnaView:
    """What the DNA tab draws: (label, row) of the nearest known species, member rows, and a caption."""

    reference: tuple[str, str] | None
    rows: list[tuple[str, str]]
    note: str


#: the p-distance from which ``storage.distance.cross_p_distance`` stops aligning and keeps its k-mer estimate:
#: a member this far from its candidate's consensus reads ``>12``, not a figure it was not measured to
CENTRE_ALIGNED = 0.12


def centre_distances(evidence: Evidence, members: Sequence[Any]) -> dict[str, float]:
    """processid → p-distance of each barcoded member from the candidate's consensus barcode (its centre); {} when
    the evidence holds no consensus (one member).

    Why this figure in the members table, not the stored membership (``proposal_members.probability``): the
    membership is a probability in the unit of the reference's species (P(same species) at the member's linkage
    distance), saturated near 1 for every close member, while a reviewer asks of a member how far it lies from the
    rest, in the unit the rest of the screen uses. (Runs stored before evidence format 6 hold a membership
    averaged with HDBSCAN's soft membership, 0 for most members of a tight candidate: a real US plate's #2, 69
    *Renia* ≤ 0.9 % apart with HDBSCAN agreeing 100 %, showed ``memb 0.49`` on 64 members, read as doubt about
    half of them.)"""
    from biodiscover.storage.distance import cross_p_distance

    centre = evidence.consensus_barcode
    read = [m for m in members if m.dna_barcode]
    if not centre or not read:
        return {}
    d = cross_p_distance([m.dna_barcode for m in read], [centre], max_aligned=CENTRE_ALIGNED)[:, 0]
    return {m.processid: float(x) for m, x in zip(read, d)}


def centre_text(distance: float | None) -> str:
    """A member's distance from the centre in percent, as the members table and the split dialog show it (``0.2``,
    ``>12`` beyond what was aligned, ``–`` without a barcode or a consensus)."""
    if distance is None:
        return "–"
    return f">{CENTRE_ALIGNED * 100:.0f}" if distance >= CENTRE_ALIGNED - 1e-9 else f"{distance * 100:.1f}"


def dna_alignment(evidence: Evidence, members: Sequence[Any]) -> DnaView:
    """The members' barcodes and the nearest known species' barcode in one pyfamsa alignment
    (:func:`biodiscover.discovery.proposals.align_members`, the alignment discovery makes its consensus
    with), so partial barcodes line up and differences are read against the known species."""
    from biodiscover.discovery.proposals import align_members

    with_dna = [m for m in members if m.dna_barcode]
    if not with_dna:
        return DnaView(None, [], "no member of this candidate has a barcode")
    shown = with_dna if len(with_dna) <= DNA_MAX_MEMBERS else \
        [with_dna[round(i * (len(with_dna) - 1) / (DNA_MAX_MEMBERS - 1))] for i in range(DNA_MAX_MEMBERS)]
    near = evidence.nearest_known
    ref_id = "\x00reference"
    ids = [m.processid for m in shown]
    seqs = [m.dna_barcode for m in shown]
    if near is not None and near.barcode:
        ids, seqs = [ref_id, *ids], [near.barcode, *seqs]
    _, aligned = align_members(ids, seqs, max_msa=len(ids))
    rows = [(pid, aligned[pid]) for pid in ids if pid != ref_id and pid in aligned]
    sample = f"{len(shown)} of {len(with_dna)} barcoded members" if len(shown) < len(with_dna) \
        else f"{len(shown)} barcoded member{'s' if len(shown) != 1 else ''}"
    if near is not None and ref_id in aligned:
        label = f"{near.species or near.processid}"
        note = (f"{sample} + nearest known {label} (first row)  ·  ^ vary  | differ from it  ·  "
                "[ ] page")
        return DnaView((label, aligned[ref_id]), rows, note)
    why = "no nearest known species" if near is None else "its barcode was not recorded by this run"
    return DnaView(None, rows, f"{sample} ({why})  ·  ^ vary  ·  [ ] page")


def resolve(path: str | Path | None, image_root: Path | None) -> Path | None:
    """A stored image path, relative ones resolved against ``--images``."""
    if not path:
        return None
    p = Path(path)
    return image_root / p if not p.is_absolute() and image_root is not None else p
