"""Review decisions shared by the queue and the detail screen.

Each key asks what it needs (a dialog), then writes at once through the storage
API in a thread worker (the UI never waits on SQLite), then tells the screen to
reload. The version the reviewer *saw* goes with every write, so a proposal
that changed underneath (another reviewer, a newer run) is refused by storage
with :class:`~biodiscover.storage.errors.StaleProposalError`; that message is shown as an
error notification and the screen reloads to show the new state.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Container, Mapping, Sequence

from textual import work
from textual.binding import Binding
from textual.screen import Screen

from biodiscover.storage.review_log import DECIDED_STATUSES, notes_in_force, own_note
from biodiscover.storage.db.reviews import (ADDABLE_UNDER, binomial_like, described_species_problem,
                                            new_taxon_problem, new_taxon_rank)
from biodiscover.storage.evidence import below_order_cutoff, below_order_words, indistinct_congeners
from biodiscover.storage.errors import BiodiscoverError, StaleProposalError
from biodiscover.storage.records import INSECT_CLASS, determination, placement, plural
from biodiscover.tui.evidence import (BELOW_ORDER_MARK, below_order_mark, centre_distances, centre_text, edge_line,
                                     marked, nearest_header, shown_name)
from biodiscover.tui.pickers import evidence_taxa, neighbour_places, ranked
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog, PickManyDialog, TextDialog

log = logging.getLogger(__name__)

DECISION_BINDINGS: list[Binding] = [
    Binding("a", "accept", "Accept", id="proposal.accept"),
    Binding("r", "reject", "Reject", id="proposal.reject"),
    Binding("i", "assign", "Known species", id="proposal.assign"),
    Binding("m", "merge", "Merge with another", id="proposal.merge", show=False),
    Binding("x", "split", "Split off members", id="proposal.split", show=False),
    Binding("v", "move", "Move to other taxon", id="proposal.move", show=False),
    Binding("e", "rename", "Rename", id="proposal.rename", show=False),
    Binding("o", "note", "Add note", id="proposal.note", show=False),
    Binding("u", "undo", "Undo", id="proposal.undo"),
    Binding("R", "reopen", "Reopen a decision", id="proposal.reopen", show=False),
    Binding("O", "withdraw_note", "Withdraw a note", id="proposal.withdraw_note", show=False),
]

#: the statuses each review action works on (storage refuses the others; the app says so before any dialog)
ACTS_ON: dict[str, tuple[str, ...]] = {"accept": ("pending",), "reject": ("pending",), "assign": ("pending",),
                                       "merge": ("pending",), "split": ("pending",),
                                       "move": ("pending", "accepted"), "rename": ("pending", "accepted"),
                                       "reopen": DECIDED_STATUSES}
#: what each decision is called in a sentence ("#3 was rejected by …")
DECIDED_WORDS: dict[str, str] = {"accept": "accepted", "reject": "rejected", "assign": "assigned"}


def proposal_label(p: Any, lands: str | None = None, provisional: Container[int] = ()) -> str:
    """A merge candidate as one line: what a taxonomist compares before merging two candidates, and
    (``lands``) where the merged candidate would sit when the parents differ; its genus marked ◆ when it is one of
    the ``provisional`` taxa (ids)."""
    ident = p.nearest_identity
    near = "" if not p.nearest_species else \
        f" · nearest {p.nearest_species}" + ("" if ident is None else f" {ident * 100 if ident <= 1 else ident:.1f}%")
    where = "" if not lands else (f" → {lands}" if lands.startswith("no taxon") else f" → under {lands}")
    return f"#{p.id} {shown_name(p, provisional)} · n={p.size}{near}{where}"


#: species this close to the closest in the assign list (a fraction of identity) are offered first, by identity
CONTENDERS = 0.02
#: where the merge list says a candidate sharing no taxon with this one would land: nowhere (two orders); such a
#: merge is asked about first (a real plate's review merged a fly candidate into a moth one, listed as "stays
#: under order Lepidoptera")
UNPLACED_MERGE = "no taxon in common: the merged candidate would be unplaced"


def assign_wording(proposal_id: int, size: int, species: str, identity: float | None = None,
                   added_under: str | None = None, threshold: float | None = None,
                   order_cutoff: float | None = None, also: str | None = None) -> tuple[str, str]:
    """What assigning asks before it writes, and what it says after: one specimen is one ("its 1 members" read
    oddly on the real plate, where single-specimen candidates are common); ``identity``, the best of a member to
    the species' keys (``Evidence.identity_to``), in the question, so a tie or a far row picked by mistake shows
    where the decision is made. ``added_under``: the species is a described one the reference lacks, added under
    that genus by this decision (:meth:`~biodiscover.storage.db.reviews.ReviewsMixin.assign`'s ``new_species``).
    ``threshold``: the run's species threshold (``Evidence.threshold``), ``order_cutoff`` its order cut-off
    (``ProposalDetail.order_cutoff``), both read by :func:`far_warning`; ``also``: a further warning (the species'
    order against its members', :func:`order_warning`; no member aligned to its keys)."""
    members = "its member is" if size == 1 else f"its {size} members are"
    ident = "" if identity is None else f" ({identity * 100:.1f} %, the best identity of a member to its keys)"
    warned = [w.rstrip(".") for w in (far_warning(identity, threshold, order_cutoff), also) if w]
    far = "; ".join(warned) + "." if warned else ""
    what = species if added_under is None else \
        f"{species}, a described species the reference lacks, added under {added_under}"
    recorded = "" if added_under is None else " (recorded as described, not in the reference: not provisional)"
    return (f"Assign #{proposal_id} ({plural(size, 'specimen')}) to {what}{ident}? "
            f"{members[0].upper()}{members[1:]} then named as that species{recorded}." + (f" ⚠ {far}" if far else ""),
            f"#{proposal_id} assigned to {species}" + ("" if added_under is None else
                                                       " (described, not in the reference)")
            + f": {members} named as that species")


def split_wording(before: Any, moved: int, parts: Sequence[Any]) -> str:
    """What a split says once written: how many members went where, and each part placed elsewhere than the whole
    was (``storage.db.reviews._parts_placed``: by its own members' determinations), so the reviewer sees a
    part leave the whole's genus without reading each header. ``parts``: the part that stays, then the new one.

    Why: the split's parts used to keep the whole's placement (e33 review F6: #284 "Chrysomya sp." whose one member
    the run named only to subfamily), and "1 members split" counted as no other message does."""
    said = [f"{plural(moved, 'member')} split from #{before.id} into #{parts[-1].id}; evidence recomputed for both"]
    for part in parts:
        if (part.parent_rank, part.parent_name) != (before.parent_rank, before.parent_name):
            said.append(f"#{part.id} placed by its own members: " + (
                f"{part.parent_rank} {part.parent_name}" if part.parent_name
                else "unplaced (no order names more than half of them)"))
    return "; ".join(said)


#: what the assign question says where no member's barcode was aligned to the species' keys (a species typed by name)
UNREACHED = "no member's barcode was aligned to its keys: nothing in the barcodes says they are this species"


def beyond_species(gap: float, threshold: float | None, what: str) -> str | None:
    """``6.5 % apart, more than the 4.5 % within which this run counts two barcodes one species``, or None where
    ``gap`` is within the run's species span (``storage.evidence.twin_threshold`` of its ``threshold``): one
    sentence for the assign question (``what`` "from its keys") and the merge question ("apart")."""
    from biodiscover.storage.evidence import twin_threshold

    span = twin_threshold(threshold)
    if gap <= span + 1e-12:
        return None
    return f"{100 * gap:.1f} % {what}, more than the {100 * span:.1f} % within which this run counts two barcodes " \
        "one species"


def far_warning(identity: float | None, threshold: float | None = None,
                order_cutoff: float | None = None) -> str | None:
    """Why a species at ``identity`` is far from the members, or None where it is within the species threshold:
    beyond the distance within which the run counts two barcodes one species (``storage.evidence.twin_threshold``
    of the run's ``threshold``), and below the identity at which triage names even an order the species says
    nothing of the members' order: the run's ``order_cutoff`` where it recorded one
    (``storage.evidence.run_order_cutoff``, the header's), else the published one
    (``discovery.naming.PUBLISHED_CUTOFFS``).

    Why: on the e33 review's plate ``i`` on #1 (28 beetles, an order the reference lacks) offered the moth *Cecrita
    daona* at 82.8 % and asked "Assign #1 (28 specimens) to Cecrita daona (82.8 %, …)?" with no word that 82.8 % is
    beyond the order cut-off, while a ⚑ candidate 3 % away was told much more. Why the run's: its order cut-off
    was 87.4 %, so a moth at 86 % read "below the order cut-off 87.4%" in the header and nothing here."""
    from biodiscover.discovery.naming import PUBLISHED_CUTOFFS
    from biodiscover.storage.evidence import cutoff_phrase

    if identity is None:
        return None
    beyond = beyond_species(1.0 - identity, threshold, "from its keys")
    if beyond is None:
        return None
    said = beyond + ": the members may not be this species"
    order = PUBLISHED_CUTOFFS["order"] if order_cutoff is None else order_cutoff
    if identity < order:
        which = "the identity this run needed to name even an order" if order_cutoff is not None else \
            "the published COI one, at which triage names even an order"
        # not "likely not of its order": absent genera of the reference's own orders lie as far (e36 season F4)
        said += f"; below {cutoff_phrase('order', order)} ({which}), the species says nothing of their order"
    return said + "."


def decided_words(p: Any, decision: Mapping[str, Any] | None) -> str:
    """``#3 Unplaced sp. cand3 (3 specimens) was rejected by Kari Nordmann on 2026-12-07 (“known species”)``: the
    decision in force (:meth:`~biodiscover.storage.db.reviews.ReviewsMixin.decision_in_force`) as the reopen
    question and a refusal say it; where the log holds none (a database older than its snapshots), the status."""
    said = f"#{p.id} {p.name} ({plural(p.size, 'specimen')}) "
    if decision is None:
        return said + f"is {p.status}"
    note = f" (“{decision['note']}”)" if decision.get("note") else ""
    return (said + f"was {DECIDED_WORDS.get(decision['action'], decision['action'])} by {decision['reviewer']} on "
            f"{str(decision['created_at'])[:10]}{note}")


def order_warning(determined: Sequence[Mapping[str, str]], order: str | None) -> str | None:
    """Why moving a candidate into ``order`` goes against its members' barcodes: more than half of them named to
    another order by the run (their own determinations, :func:`~biodiscover.storage.records.placement`); None where
    they are not (unplaced members, the same order, or no order to compare).

    Why: e34 attack T3 and R2: the demo's #1, ten flies named genus Tiaopsis at P 1.00, moved to order Odonata with
    no word, accepted there; the next triage named ten other flies order Odonata from its members' barcodes."""
    placed = placement(determined).get("order")
    if order is None or placed is None or placed == order:
        return None
    n = sum(1 for d in determined if d.get("order") == placed)
    return (f"{n} of {len(determined)} members are named order {placed} by their barcodes, not {order}; decided "
            f"so, their barcodes would name their relatives on later plates {order} too")


@dataclasses.dataclass(frozen=True)
class NewTaxon:
    """The move list's offer to make a taxon the reference lacks, called what the reviewer typed: an order when it
    is one of the insect orders, a family or subfamily when the name ends as one (-idae, -inae), else a genus
    (:func:`~biodiscover.storage.db.reviews.new_taxon_rank`); ``described``: a published one (*Cleora* Curtis,
    1825), else a provisional one a reviewer names until it is described (an order is always described)."""

    name: str
    described: bool = False

    @property
    def rank(self) -> str:
        return new_taxon_rank(self.name)

    @property
    def words(self) -> str:
        """``new genus Clemensia (provisional ◆)`` or ``genus Cleora (described, not in the reference)``: what
        the offer, the question and the message call it."""
        return f"{self.rank} {self.name} (described, not in the reference)" if self.described else \
            f"new {self.rank} {self.name} (provisional ◆)"


@dataclasses.dataclass(frozen=True)
class DescribedSpecies:
    """The assign list's offer to add a described species the reference lacks, called what the reviewer typed."""

    name: str


class DescribedCheck:
    """Whether a name can be a described species a reviewer adds, over the taxonomy in memory:
    :func:`~biodiscover.storage.db.reviews.described_species_problem`, the rule storage applies again when it
    writes, asked while the reviewer types (the UI never waits on SQLite)."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.genera: dict[str, list[int]] = {}
        #: lower-cased name → ``species Aedes vexans``, every species of the taxonomy
        self.species: dict[str, str] = {}
        for tid, a in graph.graph.nodes(data=True):
            if a["rank"] == "genus":
                self.genera.setdefault(a["name"], []).append(tid)
            elif a["rank"] == "species":
                self.species.setdefault(a["name"].lower(), f"species {a['name']}")

    def __call__(self, name: str) -> tuple[str | None, int | None]:
        """(why ``name`` cannot be one, or None; the genus it goes under)."""
        words = name.split()
        found = self.genera.get(words[0], []) if words else []
        problem = described_species_problem(" ".join(words), [taxon_label(self.graph, g) for g in found],
                                            self.species)
        return problem, (found[0] if problem is None else None)


def above(graph: Any, tid: int) -> str:
    """``Erebidae › Arctiinae``: the two taxa above ``tid``, a provisional one marked (:func:`marked`)."""
    return " › ".join(marked(n.name, n.provisional) for n in graph.lineage(tid)[:-1][-2:])


def taxon_label(graph: Any, tid: int) -> str:
    """``genus Clemensia ◆  (Erebidae › Arctiinae)``: a taxon in a pick list, with the two taxa above it."""
    node = graph.node(tid)
    lineage = above(graph, tid)
    return f"{node.rank} {marked(node.name, node.provisional)}" + (f"  ({lineage})" if lineage else "")


def candidate_distances(db: Any, p: Any, others: Sequence[Any]) -> dict[int, float]:
    """Proposal id → p-distance of its consensus barcode from ``p``'s, for those of ``others`` that have one
    (the merge list sorts by it; the move list says where the closest are placed): ``Database.consensus_distances``,
    the measure the header's ≡ line shows too."""
    return dict(db.consensus_distances(p.id, [o.id for o in others]))


@dataclasses.dataclass(frozen=True)
class MergeRow:
    """One row of the merge list against a candidate: the other ``proposal``, its consensus ``distance`` from it
    (None: no consensus barcode), whether it holds the ``same`` specimens (a re-triage's twin), and ``lands``: where
    the merged candidate would be placed when that is not where the candidate is now (storage's own answer,
    ``Database.merge_places``; :data:`UNPLACED_MERGE` where nowhere), else None."""

    proposal: Any
    distance: float | None
    same: bool
    lands: str | None
    key: tuple[Any, ...]


def merge_rows(db: Any, p: Any, others: Sequence[Any], graph: Any = None) -> list[MergeRow]:
    """``others`` against ``p`` in the one order the merge list offers them, which the accept dialog's "listed
    first" and :func:`probable_twins` follow: a twin holding the same specimens first, then the closest (consensus
    to consensus, measured now: :func:`candidate_distances`), then (a tie) the same parent, then the closest
    relatives (the deepest place the merge keeps), then the lower id.

    Why one order: the accept dialog said "merge #80 into #31 first (m: it is listed first)" by its own order
    (the lower id of two at 0.0 %), and the merge list put #122 first by another (the same parent), so Enter there
    merged #122 (e36 season review, finding 7)."""
    others = [o for o in others if o.id != p.id]
    if not others:
        return []
    graph = db.taxonomy() if graph is None else graph
    distance = candidate_distances(db, p, others)
    held = db.member_sets([p.id, *(o.id for o in others)])
    places = db.merge_places(p.id, [o.id for o in others])
    provisional = {n.id for n in graph.provisional()}
    rows = []
    for o in others:
        tid, rank, name = places.get(o.id, (p.parent_taxon_id, p.parent_rank, p.parent_name))
        if tid is None and name is None:  # nowhere: said unless neither was placed anywhere
            lands = UNPLACED_MERGE if (p.parent_taxon_id is not None or o.parent_taxon_id is not None) else None
        else:
            lands = None if tid == p.parent_taxon_id else f"{rank} {marked(str(name), tid in provisional)}"
        depth = -len(graph.lineage(tid)) if tid is not None and tid in graph else 0
        d = distance.get(o.id)
        same = held[o.id] == held[p.id]
        key = (not same, d is None, d or 0.0, o.parent_taxon_id != p.parent_taxon_id, depth, o.id)
        rows.append(MergeRow(o, d, same, lands, key))
    return sorted(rows, key=lambda r: r.key)


def merge_list(db: Any, p: Any, graph: Any = None) -> list[MergeRow]:
    """Every pending candidate but ``p``, as the merge list offers them (:func:`merge_rows`)."""
    rows, _ = db.proposal_queue(status="pending", sort="size", descending=True, limit=2000)
    return merge_rows(db, p, rows, graph)


def probable_twins(db: Any, p: Any, pending: Sequence[MergeRow] | None = None) -> list[tuple[Any, float]]:
    """(proposal, distance) of the accepted candidates (every run) and the pending ones of other runs whose
    consensus barcode lies within the species threshold of ``p``'s (``storage.evidence.twin_threshold`` of
    its run), accepted first (nearest first), then the pending ones in the merge list's order (:func:`merge_rows`;
    ``pending``: that list, where the caller has it). Measured now, consensus to consensus, not read from the stored
    closest candidate: a species accepted after this candidate's run, or a week-3 twin whose evidence names only
    the week-1 one, is found too.

    Why: a reviewer of a real weekly batch accepted week 1's *Hemiceras* #3 as BD-0005, then week 2's #123, 0.0 %
    from it, as BD-0006 with no word from the app: the next week's specimens of that one species split between
    the two names. Among them a candidate holding the very same specimens (a re-triage's twin) comes first."""
    from biodiscover.storage.evidence import twin_threshold

    rows, _ = db.proposal_queue(status="accepted", sort="id", limit=1_000_000)
    accepted = [o for o in rows if o.id != p.id]
    if pending is None:
        queued, _ = db.proposal_queue(status="pending", sort="id", limit=1_000_000)
        pending = merge_rows(db, p, [o for o in queued if o.run_id != p.run_id])
    if not accepted and not pending:
        return []
    cut = twin_threshold(db.proposal_detail(p.id).evidence.threshold)
    distance = candidate_distances(db, p, accepted)
    near = [(o, distance[o.id]) for o in accepted if o.id in distance and distance[o.id] <= cut]
    held = db.member_sets([p.id, *(o.id for o, _ in near)])
    near.sort(key=lambda od: (held[od[0].id] != held[p.id], od[1], od[0].id))
    return near + [(r.proposal, r.distance) for r in pending
                   if r.proposal.run_id != p.run_id and r.distance is not None and r.distance <= cut]


def twin_warning(p: Any, twin: Any, distance: float, collection: str | None) -> str:
    """The question ``a`` asks when ``twin`` (:func:`probable_twins`) is probably ``p``'s species: ``BD-0005
    (accepted from #3, 0.0 % away) is probably this species: assign to it (i) instead?``."""
    where = f"run {twin.run_id}" + (f", {collection}" if collection else "")
    if twin.status == "accepted":
        return (f"{twin.provisional_name or twin.name} (accepted from #{twin.id}, {where}, {distance * 100:.1f} % "
                f"away) is probably this species: assign #{p.id} to it (i) instead?")
    return (f"#{twin.id} {twin.name} (pending, {where}, {distance * 100:.1f} % away) is probably this species: "
            f"merge it into #{p.id} (m) before accepting?")


def placed_at(graph: Any, p: Any) -> int | None:
    """The taxon ``p`` is placed in: its parent, or for a candidate assigned to a known species that species'
    genus (or whatever holds it); None when neither is in ``graph``."""
    if p.status == "assigned" and p.taxon_id in graph:
        lineage = graph.lineage(p.taxon_id)
        return lineage[-2].id if len(lineage) > 1 else None
    return p.parent_taxon_id if p.parent_taxon_id in graph else None


def split_proposal(detail: Any) -> tuple[list[str], str | None]:
    """(processids to tick, the sentence saying why) for the split dialog: the smaller of the two groups the
    members' barcodes fall into last under the run's own linkage (:func:`biodiscover.discovery.clustering.
    two_groups`, distances by :func:`biodiscover.storage.distance.pairwise_p_distance`); nothing ticked where
    fewer than three members have a barcode or they are all alike. A proposal the reviewer changes with Space."""
    from biodiscover.discovery.clustering import two_groups
    from biodiscover.storage.distance import pairwise_p_distance

    read = [m for m in detail.members if m.dna_barcode]
    if len(read) < 3:
        return [], None
    method = detail.evidence.linkage or "average"
    split = two_groups(pairwise_p_distance([m.dna_barcode for m in read]), method)
    if split is None:
        return [], None
    ids = [read[i].processid for i in split.smaller]
    rest = len(read) - len(ids)
    # said as the suggestion it is: the reviewer ticks others, and "ticked: the 1 member …" then read as if it
    # were still what is ticked (e29 F12); the count under the list says what is
    return ids, (f"suggested (ticked as this opens): the {plural(len(ids), 'member')} {split.between * 100:.1f}% "
                 f"from the other {rest} ({method} linkage; each group within {split.within * 100:.1f}%): their "
                 "barcodes part there first")


def recomputed(db: Any, details: list[Any], groups: list[list[str]]) -> list[Any]:
    """Evidence for each member list in ``groups`` (processids), recomputed from the member specimens with
    discovery's own function (:func:`biodiscover.discovery.proposals.recompute_evidence`) and the evidence of
    the proposals they came from (``details``).

    The closest candidate of each new member list is the nearest of those the sources had as theirs (outside
    the sources) and, after a split, the other part: the part split off and the part that stays name each
    other (the part that stays was given no neighbour at all, so its evidence lost its closest candidate)."""
    from biodiscover.discovery.proposals import nearest_candidate, recompute_evidence

    sources = [d.evidence for d in details]
    own = {d.summary.id for d in details}
    # the candidates closest to the sources before this review are still there, and still near the new parts
    seqs: dict[int, str] = {}
    held: dict[int, str] = {}
    for d in details:
        near, nb = d.closest_candidate, d.evidence.between_distance
        if near is not None and nb is not None and nb.member and near.id not in own and near.id not in seqs:
            seqs[near.id] = db.proposal_detail(near.id).evidence.consensus_barcode or ""
            held[near.id] = nb.member
    prob = {m.processid: m.probability for d in details for m in d.members}
    specs = {s.processid: s for s in db.specimens(sorted({pid for g in groups for pid in g}))}
    out: list[Any] = []
    for group in groups:
        members = [specs[pid] for pid in group if pid in specs]
        probs = [prob[m.processid] if prob.get(m.processid) is not None else 1.0 for m in members]
        out.append(recompute_evidence(members, probs, sources, neighbours=seqs, neighbour_members=held))
    if len(out) == 2:
        # a split: the other part is a candidate of its own now, named (until storage gives it an id) by the
        # proposal it came from and one of its specimens, which says later which proposal holds it
        parent = details[0].summary.id
        out = [dataclasses.replace(e, between_distance=nearest_candidate(
            e.consensus_barcode or "", {**seqs, parent: out[1 - i].consensus_barcode or ""},
            {**held, parent: groups[1 - i][0]})) for i, e in enumerate(out)]
    return out


def member_label(m: Any, with_bin: bool = True, centre: float | None = None) -> str:
    """A member in the split dialog: aligned columns that fit the 80-column dialog (the BIN column left out
    when no member has one, as on a plate whose BINs were removed: it said "no BIN" on every row); ``centre``: its
    p-distance from the candidate's consensus (``tui.evidence.centre_distances``, where the stored membership
    read as doubt on a tight candidate)."""
    nov = "–" if m.novelty is None else f"{m.novelty:.2f}"
    country = m.country or "–"
    country = country if len(country) <= 12 else country[:11] + "…"
    bin_ = f"{m.dna_bin or 'no BIN':<12} " if with_bin else ""
    ctr = centre_text(centre)
    return f"{m.processid:<13} {bin_}{country:<12} ctr {ctr + '%' if ctr != '–' else ctr:<5} nov {nov}"


def twin_reason(db: Any, proposal_id: int) -> str:
    """What the reject box opens with for ``proposal_id``: ``same specimens as #10 rejected: bad read …`` when its
    specimens were in a rejected candidate (the ``recognised`` / ``overlaps_rejected`` edges the header's ⚠ line
    reads; ``2 of its 3 specimens were in #10, rejected: …`` for some), else ``same as #3 rejected: known species:
    Brachypogon incompletus`` when a twin of another run (``Database.twins``, nearest first) was rejected, each with
    the reason given there (its decision in force); "" when neither.

    Why: a season's week-3 candidate was the haplogroup rejected in week 1 with a reason; its header said so, but
    ``r`` opened with an empty box, and the reason had to be typed again or the rejection went without one (e29
    F12); the same for a re-run's candidate of the very specimen she rejected, reopened with her rejection. Prefilled,
    not written: the reviewer edits it, clears it, or presses Enter."""
    said = ""
    for e in db.proposal_detail(proposal_id).history:
        source = e.get("source_id")
        if e.get("target_id") != proposal_id or e.get("kind") not in ("recognised", "overlaps_rejected") or \
                source is None or db.proposal(source).status != "rejected":
            continue
        detail = e.get("detail") or {}
        shared, members = detail.get("shared_members"), detail.get("members")
        said = f"same specimens as #{source} rejected" if e.get("kind") == "recognised" or shared == members else \
            f"{shared} of its {members} specimens were in #{source}, rejected"
        break
    if not said:
        twin = next((t.proposal for t in db.twins([proposal_id]).get(proposal_id, ())
                     if t.proposal.status == "rejected"), None)
        if twin is None:
            return ""
        source, said = twin.id, f"same as #{twin.id} rejected"
    reason = str((db.decision_in_force(source) or {}).get("note") or "").strip()
    return said + (f": {reason}" if reason else "")


def note_title(p: Any, session: Mapping[int, tuple[str, int | None]]) -> str:
    """The note dialog's title: which candidate the note goes on (number, name, size, a decided one's status), and,
    when this session's last review decided another candidate, that one: after ``a``/``r``/``i`` the next candidate
    opens at once, and a note meant for the one just decided was written on the next (e29 F3)."""
    status = "" if p.status == "pending" else f", {p.status}"
    title = f"Note on #{p.id} {p.name} ({plural(p.size, 'specimen')}{status}):"
    last = session[max(session)] if session else None
    if last is not None and last[0] in DECIDED_WORDS and last[1] is not None and last[1] != p.id:
        title += (f"\n(not on #{last[1]}, which you {DECIDED_WORDS[last[0]]} last: Esc, then #{last[1]} opens it)")
    return title



def _follow_ups_said(r: Any) -> str:
    """What undoing a reopen did to the repetitions reopened with it (``ReviewResult.restored`` / ``kept``):
    "; #13, reopened with it, is rejected again; #16 keeps what you decided since"."""
    said = ""
    for ids, done in ((getattr(r, "restored", ()), "rejected again"), (getattr(r, "kept", ()), "")):
        if ids:
            named = ", ".join(f"#{i}" for i in ids)
            said += (f"; {named}, reopened with it, {'is' if len(ids) == 1 else 'are'} {done}" if done else
                     f"; {named} {'keeps' if len(ids) == 1 else 'keep'} what was decided on "
                     f"{'it' if len(ids) == 1 else 'them'} since")
    return said


class DecisionsMixin:
    """Mixed into a :class:`Screen` that implements ``current_proposal`` and ``reload``."""

    app: Any
    sub_title: Any  # the screen's header line (``Screen.sub_title``)

    def current_proposal(self) -> Any | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def reload(self, *, advance: bool = False) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    #: True from the moment a decision is sent until the screen shows the state after it. Keys for
    #: a new decision in between would act on the proposal still on screen, which the reviewer has
    #: already moved past in their head; they are refused with a message instead.
    deciding: bool = False

    # -- helpers -------------------------------------------------------------------------------------------
    def _busy(self) -> bool:
        if self.deciding:
            self.app.notify("still saving the last decision…", severity="warning", timeout=2)
        return self.deciding

    def decision_shown(self) -> None:
        """Called by the screen once it shows data loaded after the last decision."""
        self.deciding = False

    def _target(self, action: str | None = None) -> Any | None:
        """The proposal on screen, when ``action`` (a key of :data:`ACTS_ON`) can act on it; else None, having said
        why before any dialog: a decided candidate gets the offer to reopen it. Why: ``i`` on a candidate rejected
        in an earlier session let the reviewer pick and confirm a species, then failed "it is rejected" (e29 F2)."""
        if self._busy():
            return None
        p = self.current_proposal()
        if p is None:
            self.app.notify("no proposal selected", severity="warning")
            return None
        if action is None or p.status in ACTS_ON[action]:
            return p
        if action == "reopen":
            self.app.notify(f"#{p.id} is {p.status}: there is no decision to reopen", severity="warning", timeout=6)
        elif p.status in DECIDED_STATUSES:
            self._offer_reopen(p, action)
        else:  # merged, superseded, withdrawn: its history says where its members went
            self.app.notify(f"cannot {action} #{p.id}: it is {p.status} (its History tab says where its members "
                            "went)", severity="warning", timeout=8)
        return None

    def _reclustered(self, p: Any, action: str) -> bool:
        """Whether a later run re-clustered or retired ``p`` since the screen loaded it (worker thread; every
        decision that opens a dialog asks first); if so, says so, naming the candidate that holds its members now
        (``Database.successor``, in the words ``#`` uses for one) or, retired (superseded by a run, no successor:
        ``Database.retire_unproposed``), what that run named them (in the words of its History tab), and shows the
        state in force. Why: with the review open on #1, ``triage … --again`` into the same database made #22 of
        the same specimens; ``m`` on #1 offered #22 ("the same specimens · 0.0% from #1") and the merge was refused
        only after the reviewer had confirmed it (e35 T6); ``a``, ``r``, ``i``, ``x``, ``v``, ``e``, ``o`` and ``O``
        opened their dialogs so too, and a retired candidate still got the merge list (e35)."""
        moved = self.app.db.successor(p.id)
        if moved is not None:
            now = moved.proposal
            said = (f"it was {moved.by} since it was loaded here: its members are in #{now.id} {now.name} "
                    f"({now.status}) now (#{now.id} opens it)")
        elif (retired := self._retired(p.id)) is not None:
            said = f"since it was loaded here, it was {retired}"
        else:
            return False
        self.app.call_from_thread(self.app.notify, f"cannot {action} #{p.id}: {said}", severity="warning",
                                  timeout=10)
        self.app.call_from_thread(self.reload)
        return True

    def _retired(self, proposal_id: int) -> str | None:
        """How a later run retired ``proposal_id`` (superseded by the run, no successor: ``Database.retire_unproposed``)
        in the words of its History tab ("retired by run 2: it triaged all 8 members and proposes none of them …");
        None when it is not retired (worker thread). Why: ``successor`` is None for it, so it read as current."""
        db = self.app.db
        now = db.proposal(proposal_id)
        if now.status != "superseded" or now.superseded_by is not None:
            return None
        return next((edge_line(e, proposal_id) for e in reversed(db.proposal_detail(proposal_id).history)
                     if e.get("kind") == "retired"), None) or "retired by a later run (its History tab says which)"

    def _write(self, what: str, fn: Callable[[], Any], done: Callable[[Any], str], advance: bool = False) -> None:
        """Send one decision (UI thread): refuse while another is in flight, else write in a worker."""
        if self._busy():
            return
        self.deciding = True
        self._write_worker(what, fn, done, advance)

    @work(thread=True, group="decisions", exit_on_error=False, description="review decision")
    def _write_worker(self, what: str, fn: Callable[[], Any], done: Callable[[Any], str], advance: bool) -> None:
        """Run one storage write off the UI thread; report the outcome as a notification."""
        try:
            result = fn()
        except StaleProposalError as exc:
            self.app.call_from_thread(self.app.notify, f"{what} refused: {exc}", title="Proposal changed",
                                      severity="error", timeout=8)
            self.app.call_from_thread(self.reload)
            return
        except (BiodiscoverError, ValueError) as exc:
            self.app.call_from_thread(self.app.notify, f"{what} failed: {exc}", severity="error", timeout=8)
            self.app.call_from_thread(self.decision_shown)
            return
        if getattr(result, "review_id", None) is not None:
            self.app.session_reviews.append(result.review_id)
            self.app.session_actions[result.review_id] = (result.action, result.proposal_id)
        self.app.call_from_thread(self.app.notify, done(result), timeout=3)
        self.app.call_from_thread(self.reload, advance=advance)

    def _ask(self, screen: Screen[Any], then: Callable[[Any], None]) -> None:
        def _answer(value: Any) -> None:
            if value is not None and value is not False:
                then(value)
        self.app.push_screen(screen, _answer)

    # -- actions -------------------------------------------------------------------------------------------
    def action_reopen(self) -> None:
        p = self._target("reopen")
        if p is not None:
            self._offer_reopen(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _offer_reopen(self, p: Any, wanted: str | None = None) -> None:
        """Say which decision is in force, by whom and why, and ask for the reason to reopen it (optional): Enter
        reopens (:meth:`~biodiscover.storage.db.reviews.ReviewsMixin.reopen`), Esc leaves it decided. ``wanted``:
        the action the reviewer asked for, which that decision stands in the way of."""
        db, who = self.app.db, self.app.reviewer
        try:
            said = decided_words(p, db.decision_in_force(p.id))
            repeated = db.repeated_rejections(p.id) if p.status == "rejected" else []
        except BiodiscoverError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        why = f"cannot {wanted} #{p.id} as it is: " if wanted else ""
        then = f" (then {wanted} it)" if wanted else ""
        # a later run's rejections of the same specimens citing this one are reopened with it: named first
        named = ", ".join(f"#{i}" for i in repeated)
        also = (f" Later runs rejected its specimens again citing this rejection: {named} "
                f"{'is' if len(repeated) == 1 else 'are'} reopened with it." if repeated else "")
        title = (f"{why}{said}. Reopen it? It goes back to pending{then}; the decision stays in its history.{also} "
                 "Reason, optional (Enter reopens, Esc leaves it as it is):")

        def reopen(reason: str) -> None:
            note = reason.strip() or None
            keys = {"accept": "a", "reject": "r", "assign": "i", "merge": "m", "split": "x", "move": "v",
                    "rename": "e"}
            after = f": press {keys[wanted]} to {wanted} it" if wanted in keys else ": decide it anew"
            self._write("reopen", lambda: db.reopen(p.id, p.version, reviewer=who, note=note),
                        lambda r: f"#{p.id} reopened, pending again{after}" + (
                            f" ({', '.join(f'#{i}' for i in r.reopened)} reopened with it)" if r.reopened else ""))

        self.app.call_from_thread(self._ask, TextDialog(title, "", "e.g. it is a known species after all",
                                                        allow_empty=True), reopen)

    def action_accept(self) -> None:
        p = self._target("accept")
        if p is None:
            return
        self._suggest_then_accept(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _suggest_then_accept(self, p: Any) -> None:
        if self._reclustered(p, "accept"):  # its replacement would be offered as its twin, and the accept refused
            return
        try:
            name = p.provisional_name or self.app.db.suggest_name(p.id)
        except BiodiscoverError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        db, who = self.app.db, self.app.reviewer
        # The working name (cand<id>) is the candidate's until a reviewer accepts it; accepting gives it a
        # provisional species name, by default the next free BD number.
        title = f"Accept #{p.id} ({p.name}) as a new species named:" if not p.provisional_name else \
            f"Accept #{p.id} as a new species named:"
        def accept(n: str) -> None:
            self._write("accept", lambda: db.accept(p.id, p.version, n, reviewer=who),
                        lambda r: f"#{p.id} accepted as {r.name}", True)

        def named(n: str) -> None:
            if not binomial_like(n):
                accept(n)
                return
            self._binomial_choice(p, " ".join(n.split()), name, accept)

        pending = merge_list(db, p)  # the merge list ``m`` opens, in its order
        twins = probable_twins(db, p, pending)
        if not twins:
            self.app.call_from_thread(self._ask, TextDialog(title, name), named)
            return
        # another run's candidate, or a species already accepted, lies within the species threshold: say so first
        twin, distance = twins[0]
        question = twin_warning(p, twin, distance, db.run_collections().get(twin.run_id))
        row = next((i for i, r in enumerate(pending) if r.proposal.id == twin.id), 0)
        where = "it is listed first" if row == 0 else f"it is row {row + 1} of the merge list"
        instead = ("assign", f"assign #{p.id} to {twin.provisional_name} instead (i: it is listed first)") \
            if twin.status == "accepted" else ("merge", f"merge #{twin.id} into #{p.id} first (m: {where})")
        more = f" (and {plural(len(twins) - 1, 'other')} within the threshold)" if len(twins) > 1 else ""

        def chosen(value: str) -> None:
            if value == "assign":
                self._assign_options(p)
            elif value == "merge":
                self._merge_options(p)
            else:
                self._ask(TextDialog(title, name), named)

        self.app.call_from_thread(
            self._ask, PickDialog(question + more, [instead, ("accept", f"accept #{p.id} as a new species anyway")]),
            chosen)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _binomial_choice(self, p: Any, typed: str, suggested: str, accept: Callable[[str], None]) -> None:
        """Accepting under a published species' name asks which it is: the described species the reference lacks
        (assigned so, as ``i`` does: a tropical plate's 371 *Aedes aegypti* accepted as a new species went to GBIF
        as "Aedes sp., provisional" and "Aedes aegypti" at once) or a new species named so anyway. Why ask at all:
        a second review of a real plate accepted #66 as "Memphis beatrix" with no word from the app."""
        graph = self.app.db.taxonomy()
        known = graph.find(typed, "species")
        if known:  # a species the taxonomy holds: assigned to it, as ``i`` does (e34 attack T9: both choices
            # offered here were refused, the first as "a described species the reference lacks … in the taxonomy")
            detail = self.app.db.proposal_detail(p.id)
            self.app.call_from_thread(self.confirm_assign, p, detail, graph, known[0].id, typed,
                                      detail.evidence.identity_to(typed))
            return
        problem, genus = DescribedCheck(graph)(typed)
        where = f"under {taxon_label(graph, genus)}" if genus is not None else f"its genus first: {problem}"
        options = [("described", f"{typed} is a described species the reference lacks: assign #{p.id} to it "
                                 f"({where})"),
                   ("provisional", f"{typed} is a new species: accept #{p.id} as a provisional one named "
                                   f"“{typed}” anyway (one is named provisionally until described, e.g. {suggested})")]

        def chosen(value: str) -> None:
            if value == "described" and genus is not None:
                self.assign_described(p, typed, taxon_label(graph, genus))
            else:
                accept(typed)

        self.app.call_from_thread(
            self._ask, PickDialog(f"“{typed}” reads as a published species name (two Latin words). Which is #{p.id}?",
                                  options, refuse=lambda v: problem if v == "described" else None), chosen)

    def confirm_assign(self, p: Any, detail: Any, graph: Any, tid: int, name: str, identity: float | None) -> None:
        """Ask, then assign ``p`` to the species ``tid`` (called ``name``) of the taxonomy (UI thread), saying exactly
        what before writing: a row picked by one key press too many names another species; a species no member's
        barcode reaches, or of another order than they are named, says so (e34 attack T1: a fly species typed for 11
        wasps asked with no warning at all). ``identity``: the best of a member to its keys (None: none aligned)."""
        db, who = self.app.db, self.app.reviewer
        determined = [determination(m.labels or {}, m.deepest_rank, m.deepest_taxon) for m in detail.members]
        also = "; ".join(w for w in (
            None if identity is not None else UNREACHED,
            order_warning(determined, graph.lineage_dict(tid).get("order") if tid in graph else None)) if w)
        question, done = assign_wording(p.id, p.size, name, identity, threshold=detail.evidence.threshold,
                                        order_cutoff=detail.order_cutoff, also=also or None)
        self._ask(ConfirmDialog(question),
                  lambda _: self._write("assign", lambda: db.assign(p.id, p.version, tid, reviewer=who),
                                        lambda r: done, True))

    def assign_described(self, p: Any, name: str, under: str) -> None:
        """Ask, then assign ``p`` to ``name``, a described species the reference lacks, added under the genus
        ``under`` (its label) by the same decision (UI thread)."""
        db, who = self.app.db, self.app.reviewer
        question, done = assign_wording(p.id, p.size, name, added_under=under)
        self._ask(ConfirmDialog(question),
                  lambda _: self._write("assign", lambda: db.assign(p.id, p.version, None, reviewer=who,
                                                                    new_species=name),
                                        lambda r: done, True))

    def action_reject(self) -> None:
        """Ask why (optional), then reject: a later reader of the history or the export needs the reason ("known
        species", "contaminant"); it is the reject review's note, where exports read reviewers' notes. The box
        opens with the reason a rejected twin was given (:func:`twin_reason`), to edit or keep."""
        p = self._target("reject")
        if p is not None:
            self._ask_reject(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _ask_reject(self, p: Any) -> None:
        if self._reclustered(p, "reject"):
            return
        try:
            reason = twin_reason(self.app.db, p.id)
        except BiodiscoverError:  # a reason that cannot be read must not stop the rejection
            reason = ""
        # the hint says what Enter does with what the box holds: with a twin's reason there, Enter stores it (the
        # hint said "Enter alone rejects without one" over a prefilled reason, e31 F10)
        enter = "Enter rejects with this reason; clear it (Ctrl-U) for none" if reason else \
            "Enter alone rejects without one"
        self.app.call_from_thread(
            self._ask, TextDialog(f"Reject #{p.id} ({p.name}). Reason, optional ({enter}):",
                                  reason, "e.g. known species, contaminant, mixed sample", allow_empty=True),
            lambda reason: self.reject_with(p, reason))

    def reject_with(self, p: Any, reason: str) -> None:
        """Write the rejection of ``p`` with ``reason`` (blank: none)."""
        db, who = self.app.db, self.app.reviewer
        note = reason.strip() or None
        self._write("reject", lambda: db.reject(p.id, p.version, reviewer=who, note=note),
                    lambda r: f"#{p.id} rejected" + (f": “{note}”" if note else ""), True)

    def action_rename(self) -> None:
        p = self._target("rename")
        if p is not None:
            self._ask_rename(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _ask_rename(self, p: Any) -> None:
        if self._reclustered(p, "rename"):
            return
        db, who = self.app.db, self.app.reviewer

        def renamed(n: str) -> None:
            if n.strip() == p.name:  # Enter on the name as offered: a working name is not frozen into a given one
                self.app.notify(f"#{p.id} keeps its name", severity="information")
                return
            self._write("rename", lambda: db.rename(p.id, p.version, n, reviewer=who),
                        lambda r: f"#{p.id} renamed to {n}")

        # the box holds the name it goes by (its working name until a reviewer gave one), to edit, not retype
        self.app.call_from_thread(self._ask, TextDialog(f"Rename #{p.id}:", p.name), renamed)

    def action_note(self) -> None:
        p = self._target()
        if p is not None:
            self._ask_note(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _ask_note(self, p: Any) -> None:
        if self._reclustered(p, "add a note to"):
            return
        db, who = self.app.db, self.app.reviewer
        self.app.call_from_thread(
            self._ask, TextDialog(note_title(p, self.app.session_actions), "", "what you saw"),
            lambda t: self._write("note", lambda: db.note(p.id, t, reviewer=who, expected_version=p.version),
                                  lambda r: f"note added to #{p.id}"))

    def action_withdraw_note(self) -> None:
        """``O``: pick one of your notes in force on this candidate and withdraw it (any session): it stays in the
        History tab, marked withdrawn, and the exports stop quoting it (``u`` puts it back in this session)."""
        p = self._target()
        if p is not None:
            self._withdraw_options(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _withdraw_options(self, p: Any) -> None:
        if self._reclustered(p, "withdraw a note from"):
            return
        db, who = self.app.db, self.app.reviewer
        try:
            notes = notes_in_force(sorted(db.reviews(p.id), key=lambda r: r["id"]))
        except BiodiscoverError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        if not notes:
            self.app.call_from_thread(self.app.notify, f"#{p.id} has no note in force to withdraw",
                                      severity="warning", timeout=6)
            return
        author = {int(r["id"]): str(r["reviewer"]) for r in notes}
        options = [(int(r["id"]), f"“{own_note(r) or ''}” ({r['reviewer']}, {str(r['created_at'])[:10]})")
                   for r in notes]
        title = (f"Withdraw a note on #{p.id} {p.name}? It stays in its history, marked withdrawn; the exports stop "
                 "quoting it (Enter withdraws the one picked, Esc keeps them all):")

        def refuse(rid: int) -> str | None:
            return None if author[rid] == who else f"that note is {author[rid]}'s: only its author withdraws it"

        def withdraw(rid: int) -> None:
            self._write("withdraw note", lambda: db.withdraw_note(rid, p.version, reviewer=who),
                        lambda r: f"note withdrawn from #{p.id}: kept in its history, no longer in the exports")

        self.app.call_from_thread(self._ask, PickDialog(title, options, refuse=refuse), withdraw)

    def action_undo(self) -> None:
        if self._busy():
            return
        if not self.app.session_reviews:
            self.app.notify("nothing to undo in this session (u takes back this session's reviews; R reopens a "
                            "candidate decided in an earlier one)", severity="warning", timeout=8)
            return
        review_id = self.app.session_reviews[-1]
        action, proposal_id = self.app.session_actions.get(review_id, ("decision", None))
        self._ask_undo(review_id, proposal_id,
                       f"{action} of #{proposal_id}" if proposal_id is not None else f"review {review_id}")

    @work(thread=True, group="decisions", exit_on_error=False)
    def _ask_undo(self, review_id: int, proposal_id: int | None, what: str) -> None:
        """Ask, then undo review ``review_id`` (``what``: "note of #6"); where a later run re-clustered or retired
        its candidate, say so instead of asking (e35: "Undo your last decision?", y, then "refused")."""
        if (gone := self._undo_refused(proposal_id)) is not None:
            self.app.call_from_thread(self.app.notify, f"cannot undo {what}: {gone}", severity="warning", timeout=10)
            return
        db, who = self.app.db, self.app.reviewer

        def _done(r: Any) -> str:
            if self.app.session_reviews and self.app.session_reviews[-1] == r.review_id:
                self.app.session_reviews.pop()  # the undo row itself is not undone by the next u
            if review_id in self.app.session_reviews:
                self.app.session_reviews.remove(review_id)
            # Show what came back, so the reviewer sees the proposal they are deciding on again.
            self.show_undone(proposal_id)
            return f"undid {what} (review {review_id})" + _follow_ups_said(r)

        def _undo() -> Any:
            if (gone := self._undo_refused(proposal_id)) is not None:  # since the question was asked
                raise StaleProposalError(gone)
            return db.undo(review_id, reviewer=who)

        self.app.call_from_thread(self._ask, ConfirmDialog(f"Undo your last decision: {what}?"),
                                  lambda _: self._write("undo", _undo, _done))

    def _undo_refused(self, proposal_id: int | None) -> str | None:
        """Why this session's review of ``proposal_id`` cannot be undone now (worker thread), or None. A later run
        re-clustered the candidate and carried her review to its successor: where, as the machine's change is nothing
        she can undo ("undo the later reviews first" sent her looking: e31 F21); or retired it: the storage said
        "proposal 1 changed after it (version 1 then, 2 now); undo the later reviews first" there too (e35)."""
        if proposal_id is None:
            return None
        moved = self.app.db.successor(proposal_id)
        if moved is not None:
            now = moved.proposal
            return (f"#{proposal_id} was {moved.by}: its members are in #{now.id}, which carries your reviews of it; "
                    f"open #{now.id} to change them")
        retired = self._retired(proposal_id)
        return None if retired is None else f"#{proposal_id} was {retired}"

    def show_undone(self, proposal_id: int | None) -> None:
        """Hook: the detail screen switches to the proposal an undo restored (the queue keeps its page)."""

    def action_merge(self) -> None:
        p = self._target("merge")
        if p is not None:
            self._merge_options(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _merge_options(self, p: Any) -> None:
        """Every pending candidate can be merged in, in the order of :func:`merge_rows` (the closest first), each
        saying how far and, where the merge would move the candidate, where it would land (storage's answer)."""
        db, who = self.app.db, self.app.reviewer
        if self._reclustered(p, "merge"):  # its replacement would head the list, and the merge be refused
            return
        graph = db.taxonomy()
        rows = merge_list(db, p, graph)
        if not rows:
            self.app.call_from_thread(self.app.notify, "no other pending proposal to merge with", severity="warning")
            return
        distance = {r.proposal.id: r.distance for r in rows if r.distance is not None}
        # what each merge would hold: the union of members (a re-triage's twin holds the same specimens as this one)
        held = db.member_sets([p.id, *(r.proposal.id for r in rows)])
        provisional = {n.id for n in graph.provisional()}
        options = []
        for r in rows:
            o, d = r.proposal, r.distance
            # every row's distance, consensus to consensus (a reviewer saw it on the first row only, the rest by
            # size); far pairs keep the k-mer estimate (storage.distance: never aligned beyond 12 %)
            how_far = "distance unknown (no consensus barcode)" if d is None else \
                (f"{d * 100:.1f}% from #{p.id}" if d < 0.12 else f"≈{d * 100:.0f}% from #{p.id}")
            label = ("the same specimens · " if r.same else "") + \
                f"{how_far} · {proposal_label(o, r.lands, provisional)}"
            options.append(((o, r.lands), label))

        threshold = db.proposal_detail(p.id).evidence.threshold

        def merge(choice: Any) -> None:
            """Asked first, as every other decision is (a reviewer of a real batch merged on Enter by mistake); a pair
            farther apart than the run's species span says so (e34 attack T4: 6.5 % against 4.5 %, asked as any)."""
            o, lands = choice
            d = distance.get(o.id)
            far = None if d is None else beyond_species(d, threshold, "apart")
            both = held[p.id] & held[o.id]
            united = plural(len(held[p.id] | held[o.id]), "specimen") + (
                "" if not both else f" (the same {len(both)} in both)" if held[p.id] == held[o.id] else
                f" ({len(both)} in both)")
            if lands == UNPLACED_MERGE:  # two orders (or one unplaced): the merged candidate loses its place
                question = (f"#{o.id} ({o.name}) shares no taxon with #{p.id} ({p.name}): merged, the candidate "
                            f"would be unplaced. Merge anyway?")
            else:
                where = lands or " ".join(str(x) for x in (p.parent_rank, p.parent_name) if x) or "no taxon"
                question = (f"Merge #{o.id} ({o.name}, {o.size}) into #{p.id} ({p.name}, {p.size}): "
                            f"{united} under {where}?")
            self._ask(ConfirmDialog(question + (f" ⚠ the two are {far}: they may be two species." if far else "")),
                      lambda _: merged(o, united))

        def merged(o: Any, united: str) -> None:

            def fn() -> Any:
                a, b = db.proposal_detail(p.id), db.proposal_detail(o.id)
                members = list(dict.fromkeys([m.processid for m in a.members] + [m.processid for m in b.members]))
                (evidence,) = recomputed(db, [a, b], [members])
                return db.merge([p.id, o.id], [p.version, o.version], reviewer=who, evidence=evidence)

            def done(r: Any) -> str:
                where = (f" under {r.parent[0]} {r.parent[1]}" if r.parent[0] else ", unplaced") if r.parent else ""
                return f"#{o.id} merged into #{p.id}: now {united}{where}; evidence recomputed"

            self._write("merge", fn, done)

        self.app.call_from_thread(
            self._ask, PickDialog(f"Merge into #{p.id} ({p.name}, "
                                  + (f"under {p.parent_rank} {p.parent_name}):" if p.parent_name else "unplaced):"),
                                  options), merge)

    #: the proposal whose split dialog is being prepared (its members' barcodes grouped), None when none is
    splitting: int | None = None

    def action_split(self) -> None:
        p = self._target("split")
        if p is None:
            return
        # Grouping the members' barcodes for the suggestion takes a while on a big candidate (945 members: 14 s
        # with the screen unchanged, e32 review R25): said at once, in the header while it lasts, and a second
        # ``x`` meanwhile is told so instead of opening a second dialog.
        if self.splitting is not None:
            self.app.notify(f"still grouping #{self.splitting}'s members for the split dialog…", severity="warning",
                            timeout=3)
            return
        self.splitting = p.id
        self.app.notify(f"#{p.id}: grouping the barcodes of its {plural(p.size, 'member')} to suggest a split; the "
                        "dialog opens when done", timeout=6)
        before = self.sub_title
        self.sub_title = (f"{before} · " if before else "") + f"grouping #{p.id}'s members for a split…"

        def done() -> None:
            self.splitting = None
            self.sub_title = before

        self._split_options(p, done)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _split_options(self, p: Any, done: Callable[[], None]) -> None:
        try:
            if not self._reclustered(p, "split"):
                self._ask_split(p)
        finally:
            self.app.call_from_thread(done)

    def _ask_split(self, p: Any) -> None:
        """The split dialog of ``p`` (in the worker: the members are read and their barcodes grouped here)."""
        db, who = self.app.db, self.app.reviewer
        detail = db.proposal_detail(p.id)
        if len(detail.members) < 2:
            self.app.call_from_thread(self.app.notify, f"#{p.id} has one member; nothing to split",
                                      severity="warning")
            return
        with_bin = any(m.dna_bin for m in detail.members)
        centre = centre_distances(detail.evidence, detail.members)
        options = [(m.processid, member_label(m, with_bin, centre.get(m.processid))) for m in detail.members]
        proposed, why = split_proposal(detail)

        def split(ids: list[str]) -> None:
            def fn() -> Any:
                chosen = set(ids)
                keep = [m.processid for m in detail.members if m.processid not in chosen]
                evidence = recomputed(db, [detail], [keep, list(ids)]) if keep and chosen else None
                return db.split(p.id, p.version, ids, reviewer=who, evidence=evidence)

            self._write("split", fn, lambda r: split_wording(
                p, len(ids), [db.proposal(i) for i in (p.id, r.new_proposal_id)]))

        self.app.call_from_thread(
            self._ask, PickManyDialog(f"Split from #{p.id}: tick the members of the new proposal" + (
                f"\n{why}" if why else ""), options, ticked=proposed), split)

    def action_move(self) -> None:
        p = self._target("move")
        if p is not None:
            self._move_options(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _move_options(self, p: Any) -> None:
        """Every taxon above species, where the evidence points first (:mod:`biodiscover.tui.pickers`), each of
        those saying why; and, last, a genus or family the reference lacks, called what the reviewer typed (F7 of
        a real plate's review: 209 of 1,200 specimens were of absent genera; an Australian plate's 92 of absent
        families), placed next under a taxon picked the same way, made provisional with the move."""
        if self._reclustered(p, "move"):
            return
        db, who = self.app.db, self.app.reviewer
        graph = db.taxonomy()
        detail = db.proposal_detail(p.id)
        taken = db.taken_names()
        # where the closest candidates are placed now (a reviewer's move or new genus included), even decided ones
        others, _ = db.proposal_queue(status=("pending", "accepted", "assigned"), limit=2000)
        far = candidate_distances(db, p, others)
        near = [(o.id, place, far[o.id]) for o in others if o.id in far
                and (place := placed_at(graph, o)) is not None]
        evidence = evidence_taxa(graph, detail, placed=neighbour_places(graph, p.parent_taxon_id, near))
        why = dict(evidence)
        anchor = p.parent_taxon_id if p.parent_taxon_id in graph else (evidence[0][0] if evidence else None)
        places = [tid for tid in graph.graph.nodes if graph.node(tid).rank != "species"]
        order = ranked(graph, places, [tid for tid, _ in evidence], anchor)
        labels = {tid: taxon_label(graph, tid) for tid in order}
        options: list[tuple[Any, str]] = [(tid, labels[tid] + (f"  ← {why[tid]}" if tid in why else ""))
                                          for tid in order if tid != p.parent_taxon_id]
        # an unplaced candidate has no parent: the dialog read "now under None None"
        here = f"{p.parent_rank} {p.parent_name}" if p.parent_name else "no taxon (unplaced)"

        def latin(typed: str) -> str:
            name = typed.strip()
            if name.isalpha():  # a Latin name above species is capitalised: "odonata" is offered as Odonata (e34 T5)
                name = name[0].upper() + name[1:].lower()
            return name

        def offer(typed: str) -> list[tuple[Any, str]]:
            name = latin(typed)
            if name.lower() in taken:
                return []  # it is in the list already: a second of that name would be refused anyway
            if not name:
                return [(NewTaxon(name), "+ new taxon: type its name in the box above (a genus, family or order the "
                                         "reference lacks, e.g. Clemensia, Lauxaniidae, Coleoptera)")]
            # a name the reference lacks is a provisional one a reviewer gives, or a published one (Cleora Curtis,
            # 1825, on a tropical plate): the reviewer says which, and the exports call it so; an insect order is
            # a published one, and goes in the class (the reference's orders are the taxonomy's roots)
            if new_taxon_rank(name) == "order":
                return [(NewTaxon(name, described=True),
                         f"+ {NewTaxon(name, described=True).words}: under class {INSECT_CLASS}, Enter to confirm")]
            return [(new, f"+ {new.words}: Enter, then pick where it goes")
                    for new in (NewTaxon(name), NewTaxon(name, described=True))]

        def refuse(value: Any) -> str | None:
            return new_taxon_problem(value.name, None, taken, value.described) if isinstance(value, NewTaxon) else None

        determined = [determination(m.labels or {}, m.deepest_rank, m.deepest_taxon) for m in detail.members]

        def move(tid: int | None, new: NewTaxon | None = None, new_order: NewTaxon | None = None) -> None:
            """Move ``p`` under ``tid`` (None: the class), into ``new`` made there first where given; ``new_order``:
            an order the reference lacks, added in the class first and ``new`` made under it (two moves, as the
            reviewer would make them by hand: ``u`` takes back the second, the next ``u`` the first)."""
            under = f"class {INSECT_CLASS}" if tid is None else labels[tid]
            if new_order is not None:
                under = f"{new_order.words} under {under}"
            into = f"{new.words} under {under}" if new is not None else under
            said = f"{new.words.replace(' ◆', '')} under {under.split('  ')[0]}" if new is not None else None
            order = new_order.name if new_order is not None else \
                new.name if new is not None and new.rank == "order" else \
                None if tid is None else graph.lineage_dict(tid).get("order")
            warn = order_warning(determined, order)

            def write() -> Any:
                if new_order is None:
                    return db.move(p.id, p.version, tid, reviewer=who, new_taxon=new.name if new else None,
                                   described=new is not None and new.described)
                first = db.move(p.id, p.version, None, reviewer=who, new_taxon=new_order.name, described=True)
                # both moves are this session's to take back: ``u`` took back only the family's, and the next ``u``
                # offered another candidate's decision while this one stayed under the new order (e36 rev3 F2)
                self.app.session_reviews.append(first.review_id)
                self.app.session_actions[first.review_id] = (first.action, first.proposal_id)
                now = db.proposal(p.id)
                return db.move(p.id, now.version, now.parent_taxon_id, reviewer=who,
                               new_taxon=new.name if new else None, described=new is not None and new.described)

            # Say exactly where before writing: two taxa can read alike (family Dreumidae, subfamily Dreuminae).
            self._ask(ConfirmDialog(f"Move #{p.id} from {here} to {into}?" + (f" ⚠ {warn}" if warn else "")),
                      lambda _: self._write("move", write, lambda r: f"#{p.id} moved from {here} to "
                                                                     f"{said or f'{r.parent[0]} {r.parent[1]}'}"))

        def pick(choice: Any) -> None:
            if not isinstance(choice, NewTaxon):
                move(choice)
                return
            if choice.rank == "order":  # in the class: nothing to pick
                move(None, choice)
                return
            # where the new taxon goes: the candidate's own parent first when one of that rank can go there; where
            # its nearest known species lies below the run's order cut-off the reference's orders are no evidence,
            # and the taxa reviewers added come first (e34 attack T7: a beetle family offered under order Diptera
            # first, Enter alone putting it there, with order Coleoptera, just added, second)
            under = [tid for tid in order if graph.node(tid).rank in ADDABLE_UNDER[choice.rank]]
            added: list[int] = []
            if below_order_cutoff(nearest_header(detail.evidence, p.nearest_species, p.nearest_identity)[1],
                                  detail.order_cutoff):
                added = [t for t in under if graph.node(t).described or graph.node(t).provisional]
                under = added + [t for t in under if t not in added]
            if p.parent_taxon_id in under:
                under = [p.parent_taxon_id] + [t for t in under if t != p.parent_taxon_id]

            def new_order(typed: str) -> list[tuple[Any, str]]:
                """An insect order the taxonomy lacks, typed here, offered as the move list offers it, the new
                taxon to go under it. Why: "Place the family Nymphalidae … under:" offered only the reference's
                two orders, and "Lepidoptera" typed there found nothing (e36 season review, finding 7)."""
                name = latin(typed)
                if "order" not in ADDABLE_UNDER[choice.rank] or new_taxon_rank(name) != "order" or \
                        name.lower() in taken:
                    return []
                order = NewTaxon(name, described=True)
                return [(order, f"+ {order.words}: under class {INSECT_CLASS}, the {choice.rank} under it, Enter "
                                f"to confirm")]

            self._ask(PickDialog(f"Place the {choice.words} under:",
                                 [(tid, labels[tid] + ("  ← where #%d is now" % p.id if tid == p.parent_taxon_id
                                                       else "  ← added by a reviewer (the nearest known species "
                                                       "lies below the order cut-off)" if tid in added
                                                       else f"  ← {why[tid]}" if tid in why else ""))
                                  for tid in under], offer=new_order, refuse=refuse,
                                 name_of=lambda tid: graph.node(tid).name),
                      lambda tid: move(None, choice, tid) if isinstance(tid, NewTaxon) else move(tid, choice))

        self.app.call_from_thread(self._ask, PickDialog(f"Move #{p.id} (now under {here}) to:", options,
                                                        offer=offer, refuse=refuse,
                                                        name_of=lambda tid: graph.node(tid).name), pick)

    def action_assign(self) -> None:
        p = self._target("assign")
        if p is not None:
            self._assign_options(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _assign_options(self, p: Any) -> None:
        """Pick a known species (the reference's, registered by triage, or a new one a reviewer accepted), the
        nearest one first."""
        if self._reclustered(p, "assign"):
            return
        db = self.app.db
        options = db.known_species(limit=1_000_000, near=p.nearest_species)
        if not options:
            self.app.call_from_thread(self.app.notify, "no known species in this database's taxonomy (a triage "
                                      "registers the reference's species)", severity="warning")
            return
        names = {tid: label.split("  (")[0] for tid, label in options}
        # after the best hits: the evidence's genera and families, then the candidate's own order before any other
        # (the real plate's list went from the congeners to Abax, a beetle)
        graph = db.taxonomy()
        # the two taxa above each species from the graph, so a provisional genus is marked as in every list
        options = [(tid, f"{names[tid]}  ({above(graph, tid)})" if tid in graph and above(graph, tid) else label)
                   for tid, label in options]
        detail = db.proposal_detail(p.id)
        evidence = [tid for tid, _ in evidence_taxa(graph, detail, hits_first=True)]
        near = graph.find(p.nearest_species, "species") if p.nearest_species else []
        anchor = near[0].id if near else p.parent_taxon_id
        place = {tid: i for i, tid in enumerate(ranked(graph, [t for t, _ in options if t in graph], evidence,
                                                       anchor))}
        options = sorted(options, key=lambda o: place.get(o[0], len(place)))
        # the species the members' own best hits name, closest first, each with its identity and how many members
        # hit it: a taxonomist reviewing a real plate saw one of two species tied at 95.0 % and assigned by row
        hits: dict[str, list[float]] = {}
        for h in detail.evidence.member_hits.values():
            if h.species and h.identity is not None:
                hits.setdefault(h.species, []).append(h.identity)
        best = {sp: len(v) for sp, v in hits.items()}

        # each species at the best identity of ANY member to its keys (the nearest species list too): a species
        # tied with a member's best hit is no member's best hit (the real plate's G. uxor, 99.1 %); one below the
        # run's order cut-off marked as the queue and the Evidence tab mark it
        def percent(identity: float) -> str:
            return f"{100 * identity:.1f} %{below_order_mark(identity, detail.order_cutoff)}"

        def shown(species: str) -> tuple[float, str] | None:
            top = detail.evidence.identity_to(species)
            if top is None:
                return None
            how = f"best hit of {best[species]} of {p.size}" if species in best else "among the nearest species"
            return top, f"  · {percent(top)}, {how}"

        said = {tid: x for tid, _ in options if (x := shown(names[tid])) is not None}
        # the contenders (within CONTENDERS of the closest) first, closest first; every other species keeps its
        # place in the order above, its identity shown: a species of another subfamily at 90.9 % came before
        # the congeners of a candidate at 95.0 % (a real plate's #17)
        top = max((x[0] for x in said.values()), default=0.0)
        close = {tid: x[0] for tid, x in said.items() if top - x[0] <= CONTENDERS}
        # congeners nearer each other than the members are to them come first, together and marked: the ⚑ named one
        # of them and a real plate's #34 would have been assigned it (``storage.evidence.indistinct_congeners``)
        near = detail.evidence.near_species
        group = {s.species for s in indistinct_congeners(detail.evidence, near[0])} if near else set()
        for tid, x in list(said.items()):
            if names[tid] in group:
                close[tid] = 2.0 + x[0]
                said[tid] = (x[0], x[1] + f" · one of {len(group)} species DNA cannot pick among")
        # a species whose record the reference dropped (refused at build-reference, set aside by the audit) and the
        # members match at that identity: first, saying so — the deciding evidence of a real Norwegian candidate
        # (99.8 % to a set-aside key) sat in the "not named" line while `i` offered its species at 85.1 %
        dropped = {k.species: k for k in detail.evidence.dropped_keys if k.species and k.identity is not None}
        for tid, _ in options:
            k = dropped.get(names[tid])
            if k is not None and k.identity is not None:
                close[tid] = 4.0 + k.identity
                why = k.why.split(":", 1)[0]
                said[tid] = (k.identity, (said[tid][1] if tid in said else "") + f"  · {percent(k.identity)} to "
                             f"{k.processid}, a record the reference dropped ({why})")
        options = sorted(((tid, label + (said[tid][1] if tid in said else "")) for tid, label in options),
                         key=lambda o: -close[o[0]] if o[0] in close else 1.0)[:5000]
        # a species accepted from a candidate within the species threshold of this one (another week's twin)
        # comes first, saying so: it is probably this species (the warning at ``a`` sends the reviewer here)
        same = {o.taxon_id: (o, d) for o, d in probable_twins(db, p) if o.status == "accepted" and o.taxon_id}
        if same:
            labels = dict(options)
            for tid, (o, _) in same.items():
                names.setdefault(tid, o.provisional_name or o.name)
                labels.setdefault(tid, names[tid])
            options = [(tid, f"{labels[tid]}  · same species as #{o.id} (accepted, {d * 100:.1f} % away)")
                       for tid, (o, d) in sorted(same.items(), key=lambda x: x[1][1])] + \
                [(tid, label) for tid, label in options if tid not in same]

        check = DescribedCheck(graph)

        def offer(typed: str) -> list[tuple[Any, str]]:
            # a described species the reference lacks (a tropical plate's 371 Aedes aegypti): added under its genus
            name = " ".join(typed.split())
            if not name or name.lower() in check.species:
                return []  # in the list already (or nothing typed: the title says what typing a name does)
            if not binomial_like(name):
                return [(DescribedSpecies(name), "+ described species the reference lacks: type its whole name "
                                                 "(genus and species, e.g. Aedes aegypti)")]
            problem, genus = check(name)
            where = f"under {taxon_label(graph, genus)}" if genus is not None else str(problem)
            return [(DescribedSpecies(name), f"+ described species {name} (not in the reference): {where}")]

        def refuse(value: Any) -> str | None:
            return check(value.name)[0] if isinstance(value, DescribedSpecies) else None

        def confirm(choice: Any) -> None:
            if isinstance(choice, DescribedSpecies):
                genus = check(choice.name)[1]
                if genus is not None:
                    self.assign_described(p, " ".join(choice.name.split()), taxon_label(graph, genus))
                return
            self.confirm_assign(p, detail, graph, choice, names[choice], said[choice][0] if choice in said else None)

        # the mark said once in words, as the Evidence tab says it under its list (e33 review F4)
        below = next((f"; {BELOW_ORDER_MARK} {words}" for identity, _ in said.values()
                      if (words := below_order_words(identity, detail.order_cutoff, placed=bool(p.parent_name)))),
                     "")
        self.app.call_from_thread(
            self._ask, PickDialog(f"#{p.id} is a known species or an accepted new one (type to search; the species "
                                  "its members' best hits name first, closest first; % is the best identity of a "
                                  "member to the species' keys (as in Evidence); a described species the reference "
                                  f"lacks: type its name{below}):", options, offer=offer, refuse=refuse,
                                  name_of=lambda tid: names.get(tid, "")), confirm)
