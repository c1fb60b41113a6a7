"""Candidate species (proposals): write them from a run, page through them, look one up.

API (a mixin of :class:`biodiscover.storage.db.Database`)::

    db.write_proposals(run_id, proposals, chunk_size=500, *, part_evidence=None) -> list[int]
    db.retire_unproposed(run_id) -> list[int]
    db.run_members(run_id) -> dict[str, ProposalSummary]
    db.proposal_queue(status=None, parent=None, *, parent_subtree=False, run_id=None, min_size=None,
                      max_size=None, min_novelty=None, max_novelty=None, min_identity=None,
                      max_identity=None, search=None, sort="id", descending=False, offset=0, limit=50,
                      known_elsewhere=False, twins=False, collection=None) -> tuple[list[ProposalSummary], int]
    db.queue_position(proposal_id, **the same filters and sort) -> int | None
    db.proposal_marks(proposal_ids) -> dict[int, tuple[QueueMark, ...]]
    db.proposal(proposal_id) -> ProposalSummary
    db.successor(proposal_id) -> Successor(proposal, runs) | None   # where a re-clustered candidate went
    db.proposal_detail(proposal_id) -> ProposalDetail
    db.consensus_barcodes(proposal_ids) -> dict[int, str]
    db.candidates_elsewhere(run_id) -> tuple[dict[int, str], dict[int, str]]
    db.twins(proposal_ids=None) -> dict[int, tuple[Twin, ...]]
    db.consensus_distances(proposal_id, others) -> dict[int, float]   # consensus to consensus, measured now
    db.closest_elsewhere(proposal_ids) -> dict[int, tuple[ProposalSummary, str | None]]
    db.run_collections() -> dict[int, str]
    db.run_order_cutoffs() -> dict[int, float]          # the order cut-off each run recorded (queue: ↓)
    db.queue_counts(run_id=None) -> dict[str, int]

A proposal to write is a :class:`~biodiscover.storage.evidence.CandidateProposal`
(``ProposalIn`` here), or a mapping / dataclass with the same field names.
``members`` may be a list of processids, of ``(processid, probability)`` pairs, of
dicts with ``processid``/``probability``/``outlier_score``, or a dict processid →
probability. The parent taxon is given by ``parent_taxon_id``, by ``parent_lineage``
(rank → name, created in ``taxa`` when missing) or by ``parent_rank`` + ``parent_name``.
The evidence is stored in its typed record's JSON layout
(:class:`~biodiscover.storage.evidence.Evidence`) and read back as that record.

**Rejections are remembered.** A new proposal whose members were all in a
candidate a reviewer rejected is that candidate again: it is stored ``rejected``
(same lineage, the reviewer's rejection and reason logged on it) with a ``recognised`` edge to the earlier one,
and never queued; the queue lists the rejection once, as the later one (``REJECTED_AGAIN``).
One that only shares members with a rejected candidate is queued with an
``overlaps_rejected`` edge, so the reviewer sees what was said before.

**A reviewer's word is kept.** A new proposal whose members were all in one candidate a reviewer assigned to a
known species or accepted as a new one is that species: it is assigned to it (a ``recognised`` edge), never
queued. One whose members all come from one pending candidate a reviewer moved or renamed takes that placement
and name (the ``recluster`` edge says what was carried). One whose members come from pending candidates a
reviewer split apart is split again along that line (``_carry_splits``; the caller's ``part_evidence`` gives each
part its evidence). Each carried decision is logged on the new proposal as that reviewer's, at its time, saying
where it was made: the history and the exports show who decided, and it can be undone there. A merge is not
carried (``_merge_not_carried``): the re-clustering that parts the members again is the machine's new grouping,
and the ``recluster`` edge of each new proposal says the merge was not carried. Notes follow the members.

**The same species in another run.** A run's candidates are measured against the live candidates of the other
runs (``candidates_elsewhere``) for their closest candidate; ``twins`` reads the pairs within the species threshold
(both ways) from that stored evidence, for the queue's ≡ mark, ``twins=True`` and ``sort="twin"``.

**Candidates a later run no longer proposes.** ``retire_unproposed`` makes a pending candidate of an earlier run
``superseded`` (no ``superseded_by``; a ``retired`` edge names the run and what it named the members) once a later
run has triaged every member and proposes none of them.

**Versions and re-clustering.** Each proposal has a ``version`` that grows with
every change. When a newer run writes a proposal sharing members with a
*pending* proposal of an older run, the old one becomes ``superseded`` (its
version bumps too, and ``superseded_by`` points at the new one); the new one
continues its ``lineage`` with ``version = old + 1``. Reviews carry the version
they saw, so a decision made on the old grouping is refused
(:class:`~biodiscover.storage.errors.StaleProposalError`) instead of being applied to
members the reviewer never saw. Accepted / rejected proposals are decisions and
are never superseded. A run regroups only what it triaged (its assignments, ``_untriaged``):
a pending candidate holding specimens the run did not triage is not superseded — a proposal
of nothing but its members is that candidate again (folded into it, status ``merged``, a
``returned`` edge; the candidate keeps its version), and one grouping some of its members
with others takes just those (the candidate loses them, its version bumps, a ``recluster``
edge says how many stay; its evidence stays as proposed).

The queue is one indexed query (status + sort column indexes) and a COUNT —
a page of 50 from 100k proposals takes milliseconds (see benchmarks/RESULTS-db.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from biodiscover.storage.db.clock import utcnow
from biodiscover.storage.db.engine import CHUNK_ROWS
from biodiscover.storage.db.ingest import ensure_lineage
from biodiscover.storage.db.core import DatabaseCore, chunked, dbapi, table
from biodiscover.storage.db.models import (LIVE_STATUSES, PROPOSAL_STATUSES, Assignment, Proposal, ProposalEdge,
                               ProposalMember, Review, Run, SpecimenRow, Taxon)
from biodiscover.storage.errors import DatabaseError
from biodiscover.storage.evidence import (CandidateProposal, Evidence, Geography, NearSpecies, data_mark,
                                          known_elsewhere, run_order_cutoff, twin_threshold,
                                          unusable_reads)
from biodiscover.storage.records import candidate_name
from biodiscover.storage.review_log import MACHINE, carried, notes_in_force, own_note

log = logging.getLogger(__name__)

PROPOSALS = table(Proposal)
MEMBERS = table(ProposalMember)
EDGES = table(ProposalEdge)
TAXA = table(Taxon)
RUNS = table(Run)
SPECIMENS = table(SpecimenRow)
ASSIGNMENTS = table(Assignment)
REVIEWS = table(Review)

#: Sort keys the queue accepts → column.
SORT_KEYS: dict[str, str] = {
    "id": "id", "size": "size", "novelty": "novelty", "identity": "nearest_identity",
    "nearest_identity": "nearest_identity", "parent": "parent_name", "name": "provisional_name",
    "status": "status", "created": "created_at", "updated": "updated_at", "version": "version",
}
#: The sort key computed from each candidate's evidence rather than read from a column: the gap (p-distance) to the
#: species its ⚑ says may be its own, met elsewhere (``storage.evidence.known_elsewhere``), smallest first, so the
#: flags within the 3 % one species usually spans (the grading of ``span_note``) come first and unflagged
#: candidates last, in either direction. Why: on a real US plate 27 of 50 candidates were flagged (the reference
#: held no US key), and ``known=elsewhere`` alone did not say which to look at first (e25 finding 10).
FLAG_SORT = "flag"
#: The sort that puts twins together (``Database.twins``): each group of candidates of different runs that are one
#: species, the group with the lowest id first, the candidates without a twin last (either direction). Why: after
#: three weekly batches of one fauna the same species sat in three queue rows far apart (e26 batch, defect 1).
TWIN_SORT = "twin"
#: The ⚑ gap of a row as SQL (NULL: not flagged); ``bd_flag_gap`` is registered per read (:func:`_flag_gap_sql`). An
#: assigned candidate is answered; a record SQLite cannot parse (NaN, which Python's json writes and reads) is no
#: flag, not a failed query: json_extract raised 'malformed JSON' for the whole queue over one such candidate.
_FLAG_GAP = ("(CASE WHEN status != 'assigned' AND json_valid(evidence) THEN "
             "bd_flag_gap(id, version, updated_at, json_extract(evidence, '$.near_species'), "
             "json_extract(evidence, '$.geography.countries'), "
             "CASE WHEN parent_rank = 'genus' THEN parent_name END) END)")


@dataclass(frozen=True)
class QueueMark:
    """One mark of a queue row, shown beside its status: ``kind`` (one of :data:`MARK_KINDS`) and its figure, where
    it has one. The queue draws each kind its own way (``tui.widgets.proposal_table``)."""

    kind: str
    value: float | None = None


#: The marks a queue row may carry, in the order they are shown: ``elsewhere`` (the ⚑: a known species met
#: elsewhere may be this one; ``value`` its gap, :data:`FLAG_SORT`), ``twin`` (a live candidate of another run is
#: probably this species, ``Database.twins``; ``value`` the distance to the nearest), ``note`` (reviewers' notes;
#: ``value`` how many). Why: the ⚑ and a note were visible only inside a candidate or through ``f known=elsewhere``;
#: on a real plate a candidate with a note looked like any other in the queue (e25 finding 7), and a weekly batch's
#: species met again sat in rows far apart with nothing to say so (e26 batch, defect 1); ``data`` (⚠: what is
#: wrong with its data, not its species — reads not usable as COI, a record the reference dropped that members
#: match, ``storage.evidence.data_mark``; ``value`` the share of members whose reads are not usable, 0 for a dropped
#: record only): a candidate of junk reads read in the queue as the most distinct new species of a real plate (e25
#: finding 4). A new kind is one entry here, one in :meth:`ProposalsMixin.proposal_marks` and one in the table's
#: drawing.
MARK_KINDS: tuple[str, ...] = ("elsewhere", "twin", "note", "data")


#: SQL true for a rejected proposal (``proposals`` row) a later run proposed again and recognised, itself rejected
#: (``_carry_rejection``): the queue lists the latest rejection of a grouping only, the earlier one in its history.
#: Why: after a second triage a real US plate's queue listed one rejected specimen twice (#31 and #75).
REJECTED_AGAIN = ("EXISTS (SELECT 1 FROM proposal_edges e JOIN proposals t ON t.id = e.target_id WHERE "
                  "e.source_id = proposals.id AND e.kind = 'recognised' AND t.status = 'rejected')")


#: A candidate species as discovery hands it to the database: the one record both sides use.
ProposalIn = CandidateProposal


@dataclass(frozen=True)
class ProposalSummary:
    """One queue row."""

    id: int
    run_id: int
    lineage: int | None
    version: int
    status: str
    parent_taxon_id: int | None
    parent_rank: str | None
    parent_name: str | None
    provisional_name: str | None
    size: int
    novelty: float | None
    nearest_species: str | None
    nearest_identity: float | None
    taxon_id: int | None
    merged_into: int | None
    superseded_by: int | None
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, r: Mapping[Any, Any]) -> "ProposalSummary":
        return cls(**{f.name: r[f.name] for f in dataclasses.fields(cls)})

    @property
    def name(self) -> str:
        """The one name of this candidate (:func:`~biodiscover.storage.records.candidate_name`)."""
        return candidate_name(self.provisional_name, self.parent_name, self.parent_rank, self.id)


_SUMMARY_COLUMNS = ", ".join(f.name for f in dataclasses.fields(ProposalSummary))


@dataclass(frozen=True)
class Twin:
    """A live candidate of another run that is probably the same species as a candidate (``Database.twins``):
    ``distance`` between their consensus barcodes, within the species threshold; ``collection``: the name of
    the collection its run triaged (None when the run names none)."""

    proposal: ProposalSummary
    distance: float
    collection: str | None = None


class Successor(NamedTuple):
    """Where a candidate later runs re-clustered went (``Database.successor``): the candidate holding its members
    now and the runs that re-clustered it, in order (each one's candidate superseded by the next run's)."""

    proposal: ProposalSummary
    runs: tuple[int, ...]

    @property
    def by(self) -> str:
        """``re-clustered by run 9`` or ``re-clustered by runs 9 and 10``. Why every run: after two re-triages
        "re-clustered by run 9: its members are in #179" named the run that made #144, not #179's (e31 F23)."""
        runs = [str(r) for r in self.runs]
        said = runs[0] if len(runs) == 1 else ", ".join(runs[:-1]) + " and " + runs[-1]
        return f"re-clustered by run{'s' * (len(runs) > 1)} {said}"


#: What a proposal's evidence records of its closest other candidate: one of its specimens, the distance, and the
#: threshold the run cut at (SQL, on ``proposals``; NULL where the evidence records none or is not JSON).
_NEAR_COLUMNS = (
    "CASE WHEN json_valid(evidence) THEN json_extract(evidence, '$.between_distance.member') END, "
    "CASE WHEN json_valid(evidence) THEN json_extract(evidence, '$.between_distance.distance') END, "
    "CASE WHEN json_valid(evidence) THEN json_extract(evidence, '$.threshold') END")


class _NearIndex:
    """Every proposal's recorded closest candidate (:data:`_NEAR_COLUMNS`), kept per database between queries and
    both ways: proposal id → (run, specimen, distance, threshold), and specimen → the proposals recording it.

    Why: the twins of a queue page (``Database.twins``, asked for every page shown and every detail opened) were
    found by reading every live candidate's evidence, ~5 KB of JSON each: 0.2 s a page at 5,000 candidates,
    seconds at 100,000 (benchmarks/RESULTS-tui.md). A proposal's evidence changes only with a change that bumps
    its version and its ``updated_at`` (a split, a merge, an undo: ``reviews._bump``) or as a new proposal, so each
    query reads again only the rows whose id or ``updated_at`` is at least the newest seen, through the id and
    ``ix_proposals_updated`` indexes. A change stamped before the newest already seen (a clock set back) is read when
    the handle is opened again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen_id = 0
        self.seen_stamp = ""
        self.near: dict[int, tuple[int, str, float, float | None]] = {}
        self.by_member: dict[str, set[int]] = {}

    def refresh(self, raw: Any) -> None:
        """Read the proposals written or changed since the last call (all of them the first time)."""
        read = f"SELECT id, run_id, updated_at, {_NEAR_COLUMNS} FROM proposals"
        rows = raw.execute(f"{read} WHERE id > ? UNION {read} WHERE updated_at >= ?", (self.seen_id, self.seen_stamp)
                           ).fetchall() if self.seen_id else raw.execute(read).fetchall()
        for pid, run, stamp, member, distance, cut in rows:
            pid = int(pid)
            old = self.near.pop(pid, None)
            if old is not None:
                self.by_member.get(old[1], set()).discard(pid)
            if member is not None and distance is not None:
                self.near[pid] = (int(run), str(member), float(distance), None if cut is None else float(cut))
                self.by_member.setdefault(str(member), set()).add(pid)
            self.seen_id = max(self.seen_id, pid)
            self.seen_stamp = max(self.seen_stamp, str(stamp or ""))

    def pairs(self, raw: Any, asked: Iterable[int] | None) -> list[tuple[int, int, float, float | None]]:
        """(proposal, live proposal of another run holding its recorded specimen, distance, threshold) for every
        live proposal that records one — those involving ``asked`` (as either side) when given: what the full
        join over every evidence answered, read from this index and the members index."""
        with self.lock:
            self.refresh(raw)
            if asked is None:
                recorders = set(self.near)
            else:
                ids = sorted({int(i) for i in asked})
                recorders = {i for i in ids if i in self.near}
                for part in chunked(ids):  # the asked proposals' specimens some proposal records: those proposals
                    for (processid,) in raw.execute("SELECT processid FROM proposal_members WHERE proposal_id IN "
                                                    f"({', '.join('?' * len(part))})", list(part)):
                        recorders |= self.by_member.get(str(processid), set())
            near = {p: self.near[p] for p in recorders}
        holders: dict[str, list[tuple[int, int]]] = {}
        if asked is None:  # every pair (``sort=twin``, ``twin=yes``): two scans beat 100,000 lookups
            live = dict(raw.execute(f"SELECT id, run_id FROM proposals WHERE {_LIVE_ONLY}").fetchall())
            wanted = {near[p][1] for p in near if p in live}
            for processid, q in raw.execute("SELECT processid, proposal_id FROM proposal_members").fetchall():
                if processid in wanted and q in live:
                    holders.setdefault(str(processid), []).append((int(q), live[q]))
            live = {p: run for p, run in live.items() if p in near}
        else:
            live = {}
            for part in chunked(sorted(near)):
                live.update(raw.execute(f"SELECT id, run_id FROM proposals WHERE id IN ({', '.join('?' * len(part))}) "
                                        f"AND {_LIVE_ONLY}", list(part)).fetchall())
            for names in chunked(sorted({near[p][1] for p in live})):
                for processid, q, run in raw.execute(
                        "SELECT m.processid, q.id, q.run_id FROM proposal_members m JOIN proposals q ON q.id = "
                        f"m.proposal_id WHERE m.processid IN ({', '.join('?' * len(names))}) AND {_LIVE_ONLY}",
                        list(names)):
                    holders.setdefault(str(processid), []).append((int(q), int(run)))
        return [(p, q, near[p][2], near[p][3]) for p in sorted(live) for q, run in holders.get(near[p][1], ())
                if run != live[p]]


@dataclass(frozen=True)
class MemberInfo:
    """A member specimen with what the TUI shows about it."""

    processid: str
    probability: float | None
    outlier_score: float | None
    dna_barcode: str | None
    dna_bin: str | None
    country: str | None
    province_state: str | None
    coord_lat: float | None
    coord_lon: float | None
    image_measurement_value: float | None
    image_path: str | None
    provided: dict[str, str | None]
    deepest_rank: str | None
    deepest_taxon: str | None
    confidence: float | None
    novelty: float | None
    #: the run's label of this member at every rank and its P(right) there, named or not (the header of a
    #: candidate placed nowhere says what they are: a real plate's #113 read "?" where its label said Lepidoptera)
    labels: dict[str, str | None] = dataclasses.field(default_factory=dict)
    confidences: dict[str, float | None] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ProposalDetail:
    summary: ProposalSummary
    evidence: Evidence
    members: list[MemberInfo]
    reviews: list[dict[str, Any]]
    history: list[dict[str, Any]]
    suggested_name: str
    #: (rank, name) from the top down to where the candidate is placed: its parent taxon, or for an assigned
    #: candidate the species it was assigned to
    parent_lineage: list[tuple[str, str]]
    #: the live proposal that now holds the closest candidate's recorded specimen (None: not recorded, or no
    #: live proposal holds it): "closest candidate" says which one, after any split or merge
    closest_candidate: ProposalSummary | None = None
    #: the live proposals that now hold the recorded specimens of the other candidates sharing this one's BIN
    bin_holders: tuple[ProposalSummary, ...] = ()
    #: the deepest rank below the candidate's parent at which every member's label agrees, though not every
    #: member was named there: (rank, name, lowest and highest P(right) of the members); None when they part
    #: at the parent's own rank. Why: 72 of 115 candidates of a real Costa Rican plate sat at order while
    #: all their members' labels said one genus at P(right) 0.95-0.99, and the reviewer saw only "order".
    agreed_below: tuple[str, str, float, float] | None = None
    #: names in ``parent_lineage`` that are provisional (a genus a reviewer added, not in the reference): the
    #: header marks them ◆ as the taxonomy screen does, so a candidate placed in one does not read as known
    provisional_taxa: frozenset[str] = frozenset()
    #: of the species this candidate's evidence lists nearest, those reviewers assigned candidates to: species →
    #: {country: specimens} of those candidates (``Database.assigned_countries``): keys from those countries now,
    #: for the ⚑ rule (``storage.evidence.known_elsewhere``) and the Evidence tab
    met_here: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: the collection the closest candidate's run triaged, when it is another run's (the Evidence tab says "run
    #: 6, 2026-w01-costa-rica"); None for one of this candidate's own run
    closest_collection: str | None = None
    #: the live candidates of other runs that are probably this species (``Database.twins``), each at its distance
    #: measured now (``Database.consensus_distances``: what the review's accept dialog says), nearest first
    twins: tuple[Twin, ...] = ()
    #: the identity the candidate's run needed to name an order (``storage.evidence.run_order_cutoff``; None: its
    #: reference learned its orders): the header says a nearest known species lies below it
    order_cutoff: float | None = None
    #: the P(right) the candidate's run named at (its parameters' ``level``; None: a run that recorded none): the
    #: header says whether the members' P(right) at ``agreed_below`` is under it, in figures that show it
    naming_level: float | None = None


#: the lowest P(right) every member needs at a rank before the review offers that rank as the candidate's place
#: (``agreed_below``): the lowest level ``triage`` reports what it would name at (``LOWER_LEVELS``). Why: with no
#: floor, a second review of the real Costa Rican plate met the hint on 63 of 115 candidates and 40 of them wrong,
#: 34 of those where a member's P(right) was under 0.5 ("agree down to genus Praxis (P(right) 0.02-0.03)": an
#: Australian genus, for a Neotropical one the reference lacks); at 0.9 or more, 1 wrong of 7.
AGREED_FLOOR = 0.9
#: the share of a candidate's members that may fall under ``AGREED_FLOOR`` at a rank every label agrees on (one in
#: ten, counted down: under ten members none may). Why: a real tropical plate's 371 mosquitoes all said Culicidae,
#: 370 at P(right) 0.9-0.999 and one short read at 0.868, and the review offered no family for them at all.
AGREED_UNSURE = 0.1


def agreed_below(parent_rank: str | None, labels: Sequence[Mapping[str, Any]],
                 confidences: Sequence[Mapping[str, Any]]) -> tuple[str, str, float, float] | None:
    """See :attr:`ProposalDetail.agreed_below` (``labels``/``confidences`` per member, keyed by rank; blank ranks
    are skipped, as the subfamily often is in BOLD; species is never a candidate's place). Every member's label must
    agree, and a rank counts only where all but ``AGREED_UNSURE`` of the members (none under ten) have P(right) there
    of at least ``AGREED_FLOOR``: the walk stops at the first that is not, since a label every member guesses the
    same (a lone specimen always agrees with itself) says nothing about the place."""
    from biodiscover.storage.records import RANKS, is_filler_name

    start = RANKS.index(parent_rank) + 1 if parent_rank in RANKS else 0
    found = None
    for rank in RANKS[start : RANKS.index("species")]:  # a candidate species' place is a taxon above species
        names = {lab.get(rank) for lab in labels}
        if names == {None}:
            continue
        if len(names) != 1 or not isinstance(name := next(iter(names)), str) or is_filler_name(name):
            break
        conf = sorted(float(c.get(rank) or 0.0) for c in confidences)
        if conf[int(len(conf) * AGREED_UNSURE)] < AGREED_FLOOR:  # the P(right) all but the allowed few reach
            break
        found = (rank, name, conf[0], conf[-1])
    return found if labels else None


def _holders(conn: Connection, summary: ProposalSummary, specimens: Sequence[str]) -> list[ProposalSummary]:
    """The live proposals other than ``summary``'s that hold ``specimens`` now (through the members index), those
    of its own run first, then by id: evidence names another candidate by one of its specimens, which stays true
    after splits and merges (a specimen another run also proposed is in one live proposal of each run)."""
    if not specimens:
        return []
    marks = ", ".join("?" * len(specimens))
    rows = dbapi(conn).execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM proposals WHERE id != ? AND status NOT IN ('merged', 'superseded', "
        f"'withdrawn') AND id IN (SELECT proposal_id FROM proposal_members WHERE processid IN ({marks})) "
        "ORDER BY run_id != ?, id", (summary.id, *specimens, summary.run_id)).fetchall()
    return [ProposalSummary(*r) for r in rows]


def _resolve_parent(conn: Connection, p: ProposalIn, run_id: int) -> tuple[int | None, str | None, str | None]:
    if p.parent_taxon_id is not None:
        r = conn.execute(sa.select(TAXA.c.rank, TAXA.c.name).where(TAXA.c.id == p.parent_taxon_id)).first()
        if r is None:
            raise DatabaseError(f"proposal parent taxon {p.parent_taxon_id} does not exist")
        return p.parent_taxon_id, r.rank, r.name
    if p.parent_lineage:
        tid = ensure_lineage(conn, dict(p.parent_lineage), {}, {}, f"run:{run_id}")
        if tid is not None:
            r = conn.execute(sa.select(TAXA.c.rank, TAXA.c.name).where(TAXA.c.id == tid)).one()
            return tid, r.rank, r.name
    if p.parent_name:
        q = sa.select(TAXA.c.id, TAXA.c.rank).where(TAXA.c.name == p.parent_name, TAXA.c.status != "rejected")
        if p.parent_rank:
            q = q.where(TAXA.c.rank == p.parent_rank)
        q = q.order_by(TAXA.c.id).limit(1)  # pragma: no mutate .first() takes one row
        r = conn.execute(q).first()
        if r is not None:
            return r.id, r.rank, p.parent_name
        return None, p.parent_rank, p.parent_name
    return None, None, None


def _in_chunks(raw: Any, sql: str, keys: Sequence[Any], extra: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` (with one ``{}`` for an IN list) over ``keys`` in chunks below SQLite's variable limit."""
    out: list[tuple[Any, ...]] = []
    for chunk in chunked(keys):
        part = list(chunk)
        out.extend(raw.execute(sql.format(", ".join("?" * len(part))), [*part, *extra]).fetchall())
    return out


#: Evidence of the parts of a proposal a carried split divides (``write_proposals``' ``part_evidence``): called
#: with the proposal as discovery made it, the member lists of the part that stays and the part split off, and the
#: id of the proposal being split; returns their evidence, in that order. Storage cannot recompute a consensus or
#: distances itself.
PartEvidence = Callable[[CandidateProposal, Sequence[Sequence[str]], int], Sequence[Evidence]]


@dataclass
class _WriteContext:
    """What one chunk of ``write_proposals`` shares between its proposals: resolved parents, the reviewers' splits
    in force (loaded once, when a proposal first needs them) and the caller's evidence of split parts."""

    now: str
    parents: dict[tuple[Any, ...], tuple[int | None, str | None, str | None]] = field(default_factory=dict)
    part_evidence: PartEvidence | None = None
    splits: list[tuple[int, str, str, int, frozenset[str], frozenset[str]]] | None = None


def _write_one(conn: Connection, run_id: int, p: ProposalIn, ctx: _WriteContext) -> int:
    """Insert one proposal with its members; supersede the pending proposals it re-clusters.

    Raw SQL on the transaction's own connection: SQLAlchemy's per-statement
    overhead was 90% of the time at 100k proposals (benchmarks/RESULTS-db.md).
    """
    from biodiscover.storage.db.reviews import reviewer_placement

    raw = dbapi(conn)
    now, parents = ctx.now, ctx.parents
    members = p.member_rows()
    pids = [m["processid"] for m in members]
    key = (p.parent_taxon_id, tuple(sorted((p.parent_lineage or {}).items())), p.parent_rank, p.parent_name)
    if key not in parents:
        parents[key] = _resolve_parent(conn, p, run_id)
    parent_id, parent_rank, parent_name = parents[key]
    # Older pending proposals re-clustered by this one (any pending proposal of another run sharing a member),
    # and rejected ones it meets again (a reviewer's "no" is remembered, not asked again).
    overlap: dict[int, int] = {}
    rejected: dict[int, int] = {}
    decided: dict[int, int] = {}
    # CROSS JOIN pins the join order (members by processid first); left to itself the planner walks every
    # pending proposal through the status index, which is quadratic over a 100k-proposal run.
    for old_id, status, n in _in_chunks(
            raw, "SELECT m.proposal_id, p.status, count(*) FROM proposal_members m CROSS JOIN proposals p "
                 "ON p.id = m.proposal_id WHERE m.processid IN ({}) AND p.status IN ('pending', 'rejected', "
                 "'assigned', 'accepted') AND (p.taxon_id IS NOT NULL OR p.status IN ('pending', 'rejected')) "
                 "AND p.run_id != ? GROUP BY m.proposal_id", pids, (run_id,)):
        into = overlap if status == "pending" else rejected if status == "rejected" else decided
        into[old_id] = into.get(old_id, 0) + n
    # Pending proposals of an earlier run that an earlier proposal of this run already re-clustered: this run parts
    # their members, and this one's history says so too (a merge's members came back in two candidates, and the
    # second had no history at all)
    parted: dict[int, int] = {}
    for old_id, n in _in_chunks(
            raw, "SELECT m.proposal_id, count(*) FROM proposal_members m CROSS JOIN proposals p ON p.id = "
                 "m.proposal_id JOIN proposals s ON s.id = p.superseded_by WHERE m.processid IN ({}) AND "
                 "p.status = 'superseded' AND s.run_id = ? AND p.run_id != ? GROUP BY m.proposal_id",
            pids, (run_id, run_id)):
        parted[old_id] = parted.get(old_id, 0) + n
    # Every member was in one rejected candidate: the same candidate again, rejected again (linked to it).
    recognised = min((k for k, n in rejected.items() if n == len(pids)), default=None)
    # Every member was in one candidate a reviewer named (assigned to a known species, or accepted as a new one):
    # they are that species, as the reviewer said; assigned to it, not queued again
    named = min((k for k, n in decided.items() if n == len(pids)), default=None) if recognised is None else None
    # A pending candidate holding specimens this run did not triage is not this run's to replace (``_untriaged``):
    # a proposal of nothing but its members is that candidate again (``home``: kept, the proposal folded into it);
    # one that groups some of its members with others takes those members only, and the rest keep the candidate
    partial = _untriaged(raw, run_id, overlap) if recognised is None and named is None else {}
    home = min((k for k in partial if overlap[k] == len(pids)), default=None)
    shrunk = {k: overlap.pop(k) for k in sorted(partial)} if home is None else {}
    lineage, version = None, 1
    if recognised is not None:
        lineage, old_version = raw.execute("SELECT lineage, version FROM proposals WHERE id = ?",
                                           (recognised,)).fetchone()
        version = old_version + 1
    elif overlap and home is None:
        best = max(overlap, key=lambda k: (overlap[k], -k))
        lineage, old_version = raw.execute("SELECT lineage, version FROM proposals WHERE id = ?", (best,)).fetchone()
        version = old_version + 1
    ids = dict(_in_chunks(raw, "SELECT processid, id FROM specimens WHERE current = 1 AND processid IN ({})", pids))
    cur = raw.execute(
        "INSERT INTO proposals (run_id, lineage, version, status, parent_taxon_id, parent_rank, parent_name, "
        "provisional_name, size, novelty, nearest_species, nearest_identity, evidence, created_at, updated_at) "
        "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, lineage, version, parent_id, parent_rank, parent_name,
         p.provisional_name, len(members),
         None if p.novelty is None else float(p.novelty), p.nearest_species,
         None if p.nearest_identity is None else float(p.nearest_identity),
         json.dumps(p.evidence.to_dict()), now, now))
    new_id = int(cur.lastrowid)
    if lineage is None:
        raw.execute("UPDATE proposals SET lineage = ? WHERE id = ?", (new_id, new_id))
    raw.executemany("INSERT INTO proposal_members (proposal_id, processid, specimen_id, probability, outlier_score) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(new_id, m["processid"], ids.get(m["processid"]), m["probability"], m["outlier_score"])
                     for m in members])
    if home is not None:
        raw.execute("UPDATE proposals SET status = 'merged', merged_into = ? WHERE id = ?", (home, new_id))
        raw.execute("INSERT INTO proposal_edges (kind, source_id, target_id, run_id, created_at, detail) "
                    "VALUES ('returned', ?, ?, ?, ?, ?)", (new_id, home, run_id, now, json.dumps(
                        {"shared_members": len(pids), "untriaged": partial[home]})))
        return new_id
    for old_id, n in shrunk.items():
        for chunk in chunked(pids):
            some = list(chunk)
            raw.execute(f"DELETE FROM proposal_members WHERE proposal_id = ? AND processid IN "
                        f"({', '.join('?' * len(some))})", [old_id, *some])
        raw.execute("UPDATE proposals SET size = size - ?, version = version + 1, updated_at = ? WHERE id = ?",
                    (n, now, old_id))
        raw.execute("INSERT INTO proposal_edges (kind, source_id, target_id, run_id, created_at, detail) "
                    "VALUES ('recluster', ?, ?, ?, ?, ?)", (old_id, new_id, run_id, now, json.dumps(
                        {"shared_members": n, "kept": partial[old_id]})))
    # a reviewer's decisions on these very specimens, logged as theirs on the new proposal (undoable, in the history)
    if recognised is not None:
        _carry_rejection(conn, raw, recognised, new_id, now, run_id)
    if named is not None:
        name = _carry_naming(conn, raw, named, new_id, now, run_id)
        raw.execute("INSERT INTO proposal_edges (kind, source_id, target_id, run_id, created_at, detail) "
                    "VALUES ('recognised', ?, ?, ?, ?, ?)", (named, new_id, run_id, now, json.dumps(
                        {"shared_members": decided[named], "members": len(pids), "as": name})))
    # the part of this proposal each re-clustered pending candidate's members are in: all in this one, unless a
    # reviewer's split of those candidates is carried (then each side of it is a part of its own)
    part_of = {old_id: new_id for old_id in overlap}
    if recognised is None and named is None and len(overlap) > 1:
        part_of = _carry_splits(conn, raw, run_id, p, new_id, pids, overlap, ctx)
    carried: dict[int, list[str]] = {}
    for part in sorted(set(part_of.values())):
        held = [old_id for old_id in overlap if part_of[old_id] == part]
        size = raw.execute("SELECT size FROM proposals WHERE id = ?", (part,)).fetchone()[0]
        # Every member of this part from one pending candidate a reviewer had moved or renamed: placement and name
        if recognised is None and named is None and len(held) == 1 and overlap[held[0]] == size:
            kept = reviewer_placement(raw, held[0])
            if kept:
                carried[held[0]] = _carry_placement(conn, raw, held[0], part, kept, now, run_id)
    for old_id in sorted(overlap):
        raw.execute("UPDATE proposals SET status = 'superseded', superseded_by = ?, version = version + 1, "
                    "updated_at = ? WHERE id = ? AND status = 'pending'", (part_of[old_id], now, old_id))
        raw.execute("INSERT INTO proposal_edges (kind, source_id, target_id, run_id, created_at, detail) "
                    "VALUES ('recluster', ?, ?, ?, ?, ?)",
                    (old_id, part_of[old_id], run_id, now, json.dumps(
                        {"shared_members": overlap[old_id], **({"carried": carried[old_id]} if carried.get(old_id)
                                                               else {}),
                         **_merge_not_carried(raw, old_id, overlap[old_id])})))
    for old_id in sorted(parted):
        raw.execute("INSERT INTO proposal_edges (kind, source_id, target_id, run_id, created_at, detail) "
                    "VALUES ('recluster', ?, ?, ?, ?, ?)",
                    (old_id, new_id, run_id, now, json.dumps({"shared_members": parted[old_id],
                                                              **_merge_not_carried(raw, old_id, parted[old_id])})))
    for old_id in sorted(rejected):
        kind = "recognised" if old_id == recognised else "overlaps_rejected"
        raw.execute("INSERT INTO proposal_edges (kind, source_id, target_id, run_id, created_at, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (kind, old_id, new_id, run_id, now,
                                                  json.dumps({"shared_members": rejected[old_id],
                                                              "members": len(pids)})))
    for part in sorted(set(part_of.values()) | {new_id}):
        _carry_notes(conn, raw, sorted(k for k in overlap if part_of[k] == part), part, run_id)
    # the notes on the decided candidate these very specimens were in follow them too (a genitalia determination
    # written after an assignment was in no current record once the specimen came back)
    decided_here = recognised if recognised is not None else named
    if decided_here is not None:
        _carry_notes(conn, raw, [decided_here], new_id, run_id)
    return new_id


def _untriaged(raw: Any, run_id: int, old_ids: Iterable[int]) -> dict[int, int]:
    """Of the pending candidates ``old_ids``, those holding specimens run ``run_id`` did not triage (not in its
    assignments): id → how many. Empty for a run that recorded no assignments (the API used without a triage):
    such a run is taken to have triaged what it re-clusters, as before.

    Why: a candidate a reviewer built over a season (three weeks' specimens merged into #2 and named) met a re-run
    of one week; the week's 2 specimens came back alone, #2 was superseded by them, and the 9 of the other weeks,
    never triaged again, were left in no candidate, their name and notes on a 2-specimen one. A run's grouping is
    its word on the specimens it triaged, not on the others."""
    old_ids = list(old_ids)
    if not old_ids or raw.execute("SELECT 1 FROM assignments WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is None:
        return {}
    out: dict[int, int] = {}
    for old_id in old_ids:
        (n,) = raw.execute("SELECT count(*) FROM proposal_members m WHERE m.proposal_id = ? AND NOT EXISTS (SELECT 1 "
                           "FROM assignments a WHERE a.run_id = ? AND a.processid = m.processid)",
                           (old_id, run_id)).fetchone()
        if n:
            out[old_id] = int(n)
    return out


def _merge_not_carried(raw: Any, old_id: int, shared: int) -> dict[str, Any]:
    """``{"merge_not_carried": …}`` for a recluster edge from ``old_id`` when a reviewer's merge made that candidate
    and the new proposal holds only ``shared`` of its members: the history says the merge was not carried (what
    was merged in, by whom, and how many members are elsewhere now); {} otherwise.

    Why not carried: a merge says these members are one species; the later run's groupings of them may hold
    specimens the reviewer never saw, and joining those is a decision only a reviewer can make. (A split is
    carried: parting the specimens a reviewer parted joins nothing new.)"""
    size = raw.execute("SELECT count(*) FROM proposal_members WHERE proposal_id = ?", (old_id,)).fetchone()[0]
    if shared >= size:
        return {}
    # through the merge edges' target index: proposals.merged_into has none (a scan per re-clustered candidate)
    merged = [int(i) for (i,) in raw.execute(
        "SELECT DISTINCT e.source_id FROM proposal_edges e JOIN proposals s ON s.id = e.source_id WHERE "
        "e.target_id = ? AND e.kind = 'merge' AND s.status = 'merged' AND s.merged_into = ? ORDER BY e.source_id",
        (old_id, old_id))]
    if not merged:
        return {}
    who = raw.execute("SELECT id, reviewer FROM reviews WHERE proposal_id = ? AND action = 'merge' ORDER BY id DESC "
                      "LIMIT 1", (old_id,)).fetchone()
    return {"merge_not_carried": {"merged": merged, "review": who[0] if who else None,
                                  "reviewer": who[1] if who else None, "elsewhere": size - shared}}


def _reviewer_splits(raw: Any) -> list[tuple[int, str, str, int, frozenset[str], frozenset[str]]]:
    """Every split in force (its part not withdrawn by an undo), oldest first: (review id, reviewer, time, the
    proposal split, the members split off, the members that stayed)."""
    out = []
    for rid, reviewer, when, source, before, detail in raw.execute(
            "SELECT r.id, r.reviewer, r.created_at, e.source_id, r.before, e.detail FROM proposal_edges e "
            "JOIN reviews r ON r.id = e.review_id JOIN proposals t ON t.id = e.target_id "
            "WHERE e.kind = 'split' AND r.action = 'split' AND t.status != 'withdrawn' ORDER BY r.id"):
        snap = (json.loads(before) if isinstance(before, str) else before or {}).get("proposals", {})
        was = {str(m[0]) for m in (snap.get(str(source)) or {}).get("members", ())}
        off = frozenset(str(m) for m in (json.loads(detail) if isinstance(detail, str) else detail or {})
                        .get("members", ()))
        out.append((int(rid), str(reviewer), str(when), int(source), off, frozenset(was - off)))
    return out


def _carry_splits(conn: Connection, raw: Any, run_id: int, p: ProposalIn, new_id: int, pids: Sequence[str],
                  overlap: Mapping[int, int], ctx: _WriteContext) -> dict[int, int]:
    """Split ``new_id`` along every reviewer's split its members cross, each logged as the database's split, carried
    from where the reviewer made it (:func:`_carry_record`; undoable, in the history and the exports); the part each
    pending candidate in ``overlap`` has its members in.

    A split crosses this proposal when some of its members come from the side a reviewer split off and some from
    the side that stayed, held now by different pending candidates (a reviewer who merged the sides again joined
    them: not crossed). The members from the candidates holding the side split off become a part of their own;
    members from no such candidate (new specimens) stay. Why: on a real US plate a reviewer split two *Harpalus*
    apart and the next triage put them together again in a new candidate, without a word."""
    from biodiscover.storage.db.reviews import split_off

    holder = {str(pid): int(old) for pid, old in _in_chunks(
        raw, "SELECT m.processid, m.proposal_id FROM proposal_members m CROSS JOIN proposals p ON p.id = "
             "m.proposal_id WHERE m.processid IN ({}) AND p.status = 'pending' AND p.run_id != ?", pids, (run_id,))}
    if ctx.splits is None:
        ctx.splits = _reviewer_splits(raw)
    parts: dict[int, set[str]] = {new_id: set(pids)}
    for rid, _reviewer, _when, source, off, stay in ctx.splits:
        away = {holder[m] for m in off if m in holder}
        kept = {holder[m] for m in stay if m in holder}
        if not away or not kept or away & kept:
            continue
        part = next((k for k, v in parts.items() if any(holder.get(m) in away for m in v)), None)
        if part is None or not any(holder.get(m) in kept for m in parts[part]):
            continue  # an earlier cut already parted them
        cut = {m for m in parts[part] if holder.get(m) in away}
        rest = sorted(parts[part] - cut)
        evidence = ctx.part_evidence(p, [rest, sorted(cut)], part) if ctx.part_evidence is not None else None
        _review, made, _after = split_off(conn, part, cut, MACHINE, ctx.now, None, evidence,
                                          carried=_carry_record(raw, rid, source, run_id))
        # the part continues the lineage of the candidate whose members it holds, as the proposal it was cut from
        first = min(away, key=lambda k: (-overlap.get(k, 0), k))
        raw.execute("UPDATE proposals SET lineage = (SELECT lineage FROM proposals WHERE id = ?), version = "
                    "(SELECT version FROM proposals WHERE id = ?) + 1 WHERE id = ?", (first, first, made))
        parts[part] -= cut
        parts[made] = cut
    return {old_id: next((k for k, v in parts.items() if any(holder.get(m) == old_id for m in v)), new_id)
            for old_id in overlap}


def _carry_record(raw: Any, review_id: int | None, old_id: int, run_id: int) -> dict[str, Any]:
    """``after["carried"]`` of a review a later run carries from candidate ``old_id`` (review ``review_id`` there)
    onto the candidate its specimens came back in (:class:`~biodiscover.storage.review_log.Carried`): the source,
    the carrying run, who made the review and when, and what it was written on (that candidate's members then, by
    collection). A review itself carried keeps its origin: who made it first, and on which specimens.

    Why: carried reviews were logged as the reviewer's own, at her time, with a machine sentence as her note; the
    exports quoted "carried: its specimens came back in a later triage" as her words, backdated, and her note about
    week 1's five vials read as written on two specimens of week 3 (e29 F9)."""
    row = raw.execute("SELECT id, action, reviewer, created_at, note, before, after FROM reviews WHERE id = ?",
                      (review_id,)).fetchone() if review_id is not None else None
    if row is None:
        return {"from": old_id, "run": run_id, "review": None, "reviewer": None, "at": None,
                "on": {"proposal": old_id}}
    r = dict(zip(("id", "action", "reviewer", "created_at", "note", "before", "after"), row))
    was = carried(r)
    if was is not None and was.on and was.on.get("specimens"):
        on: dict[str, Any] = dict(was.on)
    elif was is not None:  # carried by an older version (its note ``(on #N) …``): the review on #N it repeats
        own = own_note(r)
        first = raw.execute("SELECT before FROM reviews WHERE proposal_id = ? AND action = ? AND (note IS ? OR "
                            "(? IS NULL AND action != 'note')) ORDER BY id DESC LIMIT 1",
                            (was.source, r["action"], own, own)).fetchone()
        on = {"proposal": was.source, **(_written_on(raw, _snapshot_members(first[0], was.source)) if first else {})}
    else:
        on = {"proposal": old_id, **_written_on(raw, _snapshot_members(r["before"], old_id))}
    return {"from": old_id, "run": run_id, "review": int(r["id"]),
            "reviewer": was.reviewer if was is not None else r["reviewer"],
            "at": was.at if was is not None else r["created_at"], "on": on}


def _snapshot_members(before: Any, proposal_id: int | None) -> Sequence[Sequence[Any]]:
    """The members of ``proposal_id`` in a review's snapshot (stored JSON or its dict); () where it holds none."""
    snap = json.loads(before) if isinstance(before, str) else before or {}
    return ((snap.get("proposals") or {}).get(str(proposal_id)) or {}).get("members") or ()


def _written_on(raw: Any, members: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """``specimens`` and ``collections`` ([name, count], in the order ingested) of the members of a review's
    snapshot (processid, specimen id, …): what a note written then was about."""
    ids = sorted({int(m[1]) for m in members if len(m) > 1 and m[1] is not None})
    counts: dict[str, int] = {}
    for name, n in _in_chunks(raw, "SELECT c.name, count(*) FROM specimens s JOIN collections c ON c.id = "
                                   "s.collection_id WHERE s.id IN ({}) GROUP BY c.id ORDER BY c.id", ids):
        counts[str(name)] = counts.get(str(name), 0) + int(n)
    return {"specimens": len(members), "collections": [[c, n] for c, n in counts.items()]}


def _log_carried(conn: Connection, action: str, new_id: int, before: dict[str, Any], record: Mapping[str, Any],
                 now: str, note: str | None) -> int:
    """Log ``action`` on ``new_id`` as the database's (:data:`~biodiscover.storage.review_log.MACHINE`, dated
    ``now``), carrying ``record`` (:func:`_carry_record`) in its after snapshot; ``note``: the reviewer's own words
    given with the review carried (a rejection's reason), which the exports quote as hers, written on its source."""
    from biodiscover.storage.db.reviews import _log, _snapshot

    return _log(conn, action, new_id, MACHINE, now, before, {**_snapshot(conn, [new_id]), "carried": dict(record)},
                note)


def _decided_by(raw: Any, old_id: int, actions: Sequence[str]) -> tuple[int | None, str | None]:
    """(id, own note) of the last review of ``old_id`` among ``actions`` (a decision carried)."""
    row = raw.execute(f"SELECT id, action, reviewer, created_at, note, after FROM reviews WHERE proposal_id = ? AND "
                      f"action IN ({', '.join('?' * len(actions))}) ORDER BY id DESC LIMIT 1",
                      (old_id, *actions)).fetchone()
    if row is None:
        return None, None
    return int(row[0]), own_note(dict(zip(("id", "action", "reviewer", "created_at", "note", "after"), row)))


def _carry_rejection(conn: Connection, raw: Any, old_id: int, new_id: int, now: str, run_id: int) -> None:
    """Reject ``new_id`` (a grouping of exactly the members of rejected ``old_id``), logged as the database's
    rejection carried from there (who rejected it, when, and the reason given, written on its specimens): the
    history and the exports say whose decision it repeats, and it can be undone there, or reopened with the
    rejection it cites (:meth:`~biodiscover.storage.db.reviews.ReviewsMixin.reopen`). Why: on a real US plate the
    second triage's recognised rejection read as nobody's decision in the export, and the queue listed the same
    specimen twice."""
    from biodiscover.storage.db.reviews import _snapshot

    review, said = _decided_by(raw, old_id, ("reject",))
    before = _snapshot(conn, [new_id])
    raw.execute("UPDATE proposals SET status = 'rejected' WHERE id = ?", (new_id,))
    _log_carried(conn, "reject", new_id, before, _carry_record(raw, review, old_id, run_id), now, said)


def _carry_naming(conn: Connection, raw: Any, old_id: int, new_id: int, now: str, run_id: int) -> str:
    """Assign ``new_id`` to the species a reviewer named ``old_id`` (assigned to a known species, or the provisional
    one its acceptance made), logged as the database's assignment carried from there (undoable, shown in the history
    and the exports with whose decision it repeats); the species' name.

    Why: on a real Australian plate a reviewer assigned three *Aedes aegypti* to that species; the next triage of
    the same plate (their barcodes now keys of it) still could not name them past subfamily, and queued them again
    as a new candidate, exported as "Culicinae, unverified": the reviewer's word was lost to the machine's."""
    from biodiscover.storage.db.reviews import _snapshot

    taxon_id, name = raw.execute("SELECT taxon_id, provisional_name FROM proposals WHERE id = ?", (old_id,)).fetchone()
    review, said = _decided_by(raw, old_id, ("assign", "accept"))
    parent = raw.execute("SELECT t.id, t.rank, t.name FROM taxa s JOIN taxa t ON t.id = s.parent_id WHERE s.id = ?",
                         (taxon_id,)).fetchone()
    before = _snapshot(conn, [new_id])
    raw.execute("UPDATE proposals SET status = 'assigned', taxon_id = ?, provisional_name = ?, parent_taxon_id = ?, "
                "parent_rank = ?, parent_name = ? WHERE id = ?",
                (taxon_id, name, *(parent if parent else (None, None, None)), new_id))
    _log_carried(conn, "assign", new_id, before, _carry_record(raw, review, old_id, run_id), now, said)
    return str(name)


def _carry_placement(conn: Connection, raw: Any, old_id: int, new_id: int, kept: Mapping[str, Any],
                     now: str, run_id: int) -> list[str]:
    """Give ``new_id`` the placement and name a reviewer gave ``old_id`` (``reviews.reviewer_placement``), each
    logged as the database's move or rename carried from there; what was carried (``placement``, ``name``)."""
    from biodiscover.storage.db.reviews import _snapshot

    carried_now: list[str] = []
    for what, action, sql, values in (
            ("placement", "move", "parent_taxon_id = ?, parent_rank = ?, parent_name = ?", kept.get("parent")),
            ("name", "rename", "provisional_name = ?", (kept["name"],) if "name" in kept else None)):
        if values is None:
            continue
        before = _snapshot(conn, [new_id])
        raw.execute(f"UPDATE proposals SET {sql} WHERE id = ?", (*values, new_id))
        review = kept.get(f"{action}_review")
        _log_carried(conn, action, new_id, before, _carry_record(raw, review, old_id, run_id), now, None)
        carried_now.append(what)
    return carried_now


def _carry_notes(conn: Connection, raw: Any, old_ids: Sequence[int], new_id: int, run_id: int) -> None:
    """A reviewer's notes on a pending candidate follow it when a later run re-clusters it (and on a decided one,
    when a later run proposes exactly its specimens again and the decision is carried): the new proposal
    gets each note in force (her text, name and time, and which candidate and specimens it was written on,
    :func:`_carry_record`), so the queue, the history tab and the exports show it where the reviewer now works
    (after a carried split, the part holding the members of the candidate it was written on). A note withdrawn or
    undone there does not follow. Decisions other than those ``_write_one`` carries are not: the grouping they
    were made on is gone (a stale review is refused instead)."""
    from biodiscover.storage.db.reviews import _log, _snapshot

    rows = [dict(zip(("id", "proposal_id", "action", "reviewer", "created_at", "note", "after", "target_review_id"),
                     r)) for old_id in old_ids for r in raw.execute(
        "SELECT id, proposal_id, action, reviewer, created_at, note, after, target_review_id FROM reviews WHERE "
        "proposal_id = ? ORDER BY id", (old_id,)).fetchall()]
    notes = notes_in_force(rows)
    if not notes:
        return
    snap = _snapshot(conn, [new_id])
    for r in notes:
        record = _carry_record(raw, r["id"], int(r["proposal_id"]), run_id)
        _log(conn, "note", new_id, str(record["reviewer"] or r["reviewer"]), str(record["at"] or r["created_at"]),
             snap, {**snap, "carried": record}, own_note(r))


def _flag_gap_sql(near: str | None, countries: str | None, genus: str | None,
                  met_here: Mapping[str, Mapping[str, int]]) -> float | None:
    """``known_elsewhere`` as an SQLite function over the evidence's JSON parts: the gap (1 − identity) to the
    flagged species, 1.0 where its identity is not recorded, None when nothing is flagged; a part that does not
    read is no flag (the detail screen says what is wrong with that record)."""
    try:
        s = known_elsewhere(Evidence(near_species=_near_of(near), geography=Geography(
            countries=_countries_of(countries))), genus, met_here=met_here)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if s is None:
        return None
    return 1.0 if s.identity is None else max(0.0, 1.0 - float(s.identity))


def _near_of(near: str | None) -> tuple[NearSpecies, ...]:
    return tuple(NearSpecies.from_dict(x) for x in json.loads(near or "[]"))


def _countries_of(countries: str | None) -> dict[str, int]:
    """The ``geography.countries`` JSON part of an evidence record (country → members)."""
    return {str(k): int(v) for k, v in json.loads(countries or "{}").items()}


def _assigned_countries(raw: Any) -> dict[str, dict[str, int]]:
    """``Database.assigned_countries`` on an open DB-API connection; a record whose countries do not read adds
    nothing (the detail screen says what is wrong with it)."""
    out: dict[str, dict[str, int]] = {}
    for species, countries in raw.execute(
            "SELECT provisional_name, CASE WHEN json_valid(evidence) THEN "
            "json_extract(evidence, '$.geography.countries') END FROM proposals WHERE status = 'assigned'"):
        try:
            here = _countries_of(countries)
        except (ValueError, TypeError, AttributeError):
            continue
        into = out.setdefault(str(species), {})
        for country, n in here.items():
            into[country] = into.get(country, 0) + n
    return out


#: the live statuses' clause, and a rejection a later run recognised left out (listed as the later one)
_LIVE_ONLY = "status NOT IN ('merged', 'superseded', 'withdrawn')"
_NOT_REJECTED_AGAIN = f"(status != 'rejected' OR NOT {REJECTED_AGAIN})"
#: the queue's clause when no filter is set (``proposal_queue`` answers its total from the indexes)
_UNFILTERED = f"{_LIVE_ONLY} AND {_NOT_REJECTED_AGAIN}"


#: the most ⚑ gaps one database keeps (``_register_flag_gap``) before it starts again
FLAG_MEMO_ROWS = 500_000


def _register_flag_gap(raw: Any, sql: str, memo: dict[Any, Any]) -> None:
    """Make ``bd_flag_gap`` (:func:`_flag_gap_sql`) callable on ``raw`` when ``sql`` uses it, with the countries
    reviewers' assigned candidates add (read once per query).

    Each gap is kept in ``memo`` (one per database) under the proposal's id, version and last change, for the
    countries reviewers have added so far. Why: the rule runs in Python on every row of the query, about 0.25 ms a
    row; sorted by the ⚑ gap, a page and each ``j`` step (two queries) cost 1.2-1.5 s at 5,000 proposals and about
    5 s each at 20,000 (the real US plate's evidence copied to that many rows; benchmarks/RESULTS-tui.md). A
    proposal's evidence changes only with a change that bumps its version or time (split, merge, a new run)."""
    if "bd_flag_gap" not in sql:
        return
    met = _assigned_countries(raw)
    key = tuple(sorted((sp, tuple(sorted(c.items()))) for sp, c in met.items()))
    if memo.get("met") != key or len(memo) > FLAG_MEMO_ROWS:
        memo.clear()
        memo["met"] = key

    def gap(pid: int, version: int, stamp: str, near: str | None, countries: str | None,
            genus: str | None) -> float | None:
        k = (pid, version, stamp, genus)
        if k not in memo:
            memo[k] = _flag_gap_sql(near, countries, genus, met)
        found: float | None = memo[k]
        return found

    raw.create_function("bd_flag_gap", 6, gap)


def _twin_pairs(rows: Iterable[tuple[int, int, float, float | None]]) -> dict[int, dict[int, float]]:
    """Proposal id → {twin's id: distance} (``Database.twins``: both ways, within the species threshold) of the
    rows :meth:`_NearIndex.pairs` gives."""
    pairs: dict[int, dict[int, float]] = {}
    for pid, other, d, cut in rows:
        if float(d) <= twin_threshold(None if cut is None else float(cut)):
            for a, b in ((int(pid), int(other)), (int(other), int(pid))):
                near = pairs.setdefault(a, {})
                near[b] = min(near.get(b, float(d)), float(d))
    return pairs


def _register_twin_group(raw: Any, sql: str, index: _NearIndex) -> None:
    """Make ``bd_twin_group(id)`` callable on ``raw`` when ``sql`` uses it: the lowest id of the candidate's group
    of twins (twins of twins included: week 1's, week 2's and week 3's candidates of one species are one group), NULL
    for a candidate without a twin. What ``twins=True`` filters on and :data:`TWIN_SORT` sorts by."""
    if "bd_twin_group" not in sql:
        return
    pairs = _twin_pairs(index.pairs(raw, None))
    group: dict[int, int] = {}
    for start in sorted(pairs):
        if start in group:
            continue
        seen, todo = {start}, [start]
        while todo:
            for b in pairs.get(todo.pop(), {}):
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        group.update({x: min(seen) for x in seen})
    raw.create_function("bd_twin_group", 1, group.get)


def _run_order_cutoffs(raw: Any, run_id: int | None = None) -> dict[int, float]:
    """``Database.run_order_cutoffs`` on an open connection (of run ``run_id`` alone where given): only the
    ``naming_limits`` of each run's parameters is read."""
    where, args = ("WHERE id = ?", (run_id,)) if run_id is not None else ("", ())
    out = {}
    for rid, limits in raw.execute(f"SELECT id, json_extract(parameters, '$.naming_limits') FROM runs {where}", args):
        cut = run_order_cutoff({"naming_limits": json.loads(limits)}) if isinstance(limits, str) else None
        if cut is not None:
            out[int(rid)] = cut
    return out


def _run_level(raw: Any, run_id: int) -> float | None:
    """The naming level run ``run_id`` recorded in its parameters (``level``: triage and batch runs), or None."""
    row = raw.execute("SELECT json_extract(parameters, '$.level') FROM runs WHERE id = ?", (run_id,)).fetchone()
    level = row[0] if row is not None else None
    return float(level) if isinstance(level, (int, float)) and not isinstance(level, bool) else None


def _run_collections(raw: Any) -> dict[int, str]:
    """``Database.run_collections`` on an open connection."""
    return {int(rid): str(name) for rid, name in raw.execute(
        "SELECT r.id, c.name FROM runs r JOIN collections c ON c.id = r.collection_id")}


class ProposalsMixin(DatabaseCore):
    """Proposals API; see the module docstring."""

    @property
    def _near_index(self) -> _NearIndex:
        """Each proposal's recorded closest candidate, kept between queries (:class:`_NearIndex`)."""
        index = self.__dict__.get("_near")
        if index is None:
            index = self.__dict__["_near"] = _NearIndex()
        return index

    @property
    def _flag_memo(self) -> dict[Any, Any]:
        """The ⚑ gaps computed so far on this database (``_register_flag_gap``)."""
        memo = self.__dict__.get("_flag_gaps")
        if memo is None:
            memo = self.__dict__["_flag_gaps"] = {}
        return memo

    def write_proposals(self, run_id: int, proposals: Iterable[Any], chunk_size: int = CHUNK_ROWS // 4, *,
                        part_evidence: PartEvidence | None = None) -> list[int]:
        """Store a run's candidate species (chunked commits); returns their ids in input order (a part a carried
        split made is not among them: ``run_members`` says which proposal holds each specimen).
        ``part_evidence``: the evidence of the parts of a proposal a reviewer's split is carried to (without it
        the part split off records only where it came from, as a split made with no evidence)."""
        items = [ProposalIn.coerce(p) for p in proposals]
        out: list[int] = []
        for i in range(0, len(items), chunk_size):
            chunk = items[i:i + chunk_size]

            def _do(conn: Connection, chunk: list[ProposalIn] = chunk) -> list[int]:
                if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).scalar() is None:
                    raise DatabaseError(f"no run {run_id} in {self.path}")
                ctx = _WriteContext(utcnow(), part_evidence=part_evidence)
                ids = [_write_one(conn, run_id, p, ctx) for p in chunk]
                conn.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(heartbeat_at=ctx.now))
                return ids

            out.extend(self._write(_do, "write proposals"))
        self.optimize()
        return out

    def retire_unproposed(self, run_id: int) -> list[int]:
        """Take out of the queue the pending candidates of earlier runs whose every member run ``run_id`` triaged
        and none of which it proposes: each becomes ``superseded`` (by the run, not by a proposal: ``superseded_by``
        stays empty) with a ``retired`` edge saying what the run named its members (rank, taxon, how many); its
        history and notes stay with it. A candidate only some of whose members the run triaged (a run over part of
        a plate) stays pending. Returns the ids retired.

        Why: after a second triage of a real US plate the queue still held four run-1 candidates whose specimens
        the new run named to genus (*Coleophora*, *Amara*, *Tipula*) and did not propose; accepting one would have
        made a species for specimens the current run does not propose."""
        def _do(conn: Connection) -> list[int]:
            raw = dbapi(conn)
            now = utcnow()
            stale = [int(i) for (i,) in raw.execute(
                "SELECT p.id FROM proposals p WHERE p.status = 'pending' AND p.run_id < ? AND NOT EXISTS (SELECT 1 "
                "FROM proposal_members m WHERE m.proposal_id = p.id AND NOT EXISTS (SELECT 1 FROM assignments a "
                "WHERE a.run_id = ? AND a.processid = m.processid)) AND NOT EXISTS (SELECT 1 FROM proposal_members "
                "m JOIN proposal_members n ON n.processid = m.processid JOIN proposals q ON q.id = n.proposal_id "
                "WHERE m.proposal_id = p.id AND q.run_id = ?) AND EXISTS (SELECT 1 FROM proposal_members m "
                "WHERE m.proposal_id = p.id) ORDER BY p.id", (run_id, run_id, run_id))]
            for old_id in stale:
                named = [[rank, taxon, int(n)] for rank, taxon, n in raw.execute(
                    "SELECT a.deepest_rank, a.deepest_taxon, count(*) FROM proposal_members m JOIN assignments a "
                    "ON a.processid = m.processid AND a.run_id = ? WHERE m.proposal_id = ? GROUP BY 1, 2 "
                    "ORDER BY 3 DESC, 2", (run_id, old_id))]
                raw.execute("UPDATE proposals SET status = 'superseded', superseded_by = NULL, version = version + 1, "
                            "updated_at = ? WHERE id = ?", (now, old_id))
                raw.execute("INSERT INTO proposal_edges (kind, source_id, target_id, run_id, created_at, detail) "
                            "VALUES ('retired', ?, NULL, ?, ?, ?)", (old_id, run_id, now, json.dumps(
                                {"members": sum(n for *_, n in named), "named": named})))
            return stale

        return self._write(_do, "retire candidates no longer proposed")

    def run_members(self, run_id: int) -> dict[str, ProposalSummary]:
        """processid → the live proposal of run ``run_id`` holding it (a part a carried split made included), or,
        for a proposal of the run that was an earlier candidate again (``returned``), that candidate."""
        cols = ', '.join('p.' + c for c in _SUMMARY_COLUMNS.split(', '))
        with self._read() as conn:
            rows = dbapi(conn).execute(
                f"SELECT m.processid, {cols} FROM proposals p JOIN proposal_members m ON m.proposal_id = p.id "
                "WHERE p.run_id = ? AND p.status NOT IN ('merged', 'superseded', 'withdrawn') UNION ALL "
                f"SELECT m.processid, {cols} FROM proposals q JOIN proposal_edges e ON e.source_id = q.id AND "
                "e.kind = 'returned' JOIN proposals p ON p.id = e.target_id JOIN proposal_members m ON "
                "m.proposal_id = q.id WHERE q.run_id = ? AND q.status = 'merged' AND p.status NOT IN "
                "('merged', 'superseded', 'withdrawn') ORDER BY 2", (run_id, run_id)).fetchall()
        return {str(r[0]): ProposalSummary(*r[1:]) for r in rows}

    def proposal_queue(self, status: str | Sequence[str] | None = None, parent: int | str | None = None, *,
                       parent_subtree: bool = False, run_id: int | None = None, min_size: int | None = None,
                       max_size: int | None = None, min_novelty: float | None = None,
                       max_novelty: float | None = None, min_identity: float | None = None,
                       max_identity: float | None = None, search: str | None = None, sort: str = "id",
                       descending: bool = False, offset: int = 0, limit: int = 50,
                       known_elsewhere: bool = False, twins: bool = False,
                       collection: str | None = None) -> tuple[list[ProposalSummary], int]:
        """One page of proposals and the total matching the filters.

        ``status`` None = live (pending, accepted, rejected, assigned); a rejection a later run recognised is listed
        once, as the later one (``REJECTED_AGAIN``), unless ``run_id`` asks for the earlier run; ``parent`` is a taxon
        id (with ``parent_subtree`` every proposal below it) or a parent name. ``known_elsewhere``: only
        candidates whose evidence says a known species met from elsewhere cannot be ruled out
        (``storage.evidence.known_elsewhere``, the one rule, run inside SQLite on each candidate's evidence).
        Sort keys: id, size, novelty, identity, parent, name, status, created,
        updated, version; ties by id; missing values count as smallest (first
        ascending, last descending) — SQLite's order, which keeps the indexes usable. ``flag`` (:data:`FLAG_SORT`):
        by the ⚑ gap, unflagged last either way; computed on every row's evidence, as ``known_elsewhere`` is.
        ``twins``: only candidates with a twin of another run (``twins``); ``twin`` (:data:`TWIN_SORT`): each group
        of twins together. ``collection``: only candidates of runs whose collection's name holds it (any case):
        ``costa`` keeps the runs of ``2026-w01-costa-rica``.
        """
        clause, params, order = self._queue_sql(
            status, parent, parent_subtree=parent_subtree, run_id=run_id, min_size=min_size, max_size=max_size,
            min_novelty=min_novelty, max_novelty=max_novelty, min_identity=min_identity, max_identity=max_identity,
            search=search, sort=sort, descending=descending, known_elsewhere=known_elsewhere, twins=twins,
            collection=collection)
        page_sql = f"SELECT {_SUMMARY_COLUMNS} FROM proposals WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?"
        with self._read() as conn:
            raw = dbapi(conn)
            _register_flag_gap(raw, clause + order, self._flag_memo)
            _register_twin_group(raw, clause + order, self._near_index)
            rows = raw.execute(page_sql, (*params, max(0, limit), max(0, offset))).fetchall()
            if clause == _UNFILTERED:
                # The unfiltered queue: total minus the (few) dead ones and rejections shown by their later
                # recognition, all answered from indexes.
                total = raw.execute("SELECT (SELECT count(*) FROM proposals) - (SELECT count(*) FROM proposals "
                                    "WHERE status IN ('merged', 'superseded', 'withdrawn')) - (SELECT count(*) "
                                    f"FROM proposals WHERE status = 'rejected' AND {REJECTED_AGAIN})").fetchone()[0]
            else:
                total = raw.execute(f"SELECT count(*) FROM proposals WHERE {clause}", params).fetchone()[0]
        return [ProposalSummary(*r) for r in rows], int(total)

    def queue_position(self, proposal_id: int, **query: Any) -> int | None:
        """Where ``proposal_id`` stands (0 first) in the queue ``query`` selects (``proposal_queue``'s arguments,
        less ``offset``/``limit``); None when the query does not hold it. Why: a candidate opened by its number
        (``#31`` in the review) steps on with ``j``/``k`` from its own place in the queue, not from row 1; one id
        column of the query is read (100k ints at most)."""
        clause, params, order = self._queue_sql(**query)
        with self._read() as conn:
            raw = dbapi(conn)
            _register_flag_gap(raw, clause + order, self._flag_memo)
            _register_twin_group(raw, clause + order, self._near_index)
            for i, (pid,) in enumerate(raw.execute(f"SELECT id FROM proposals WHERE {clause} ORDER BY {order}",
                                                   params)):
                if pid == proposal_id:
                    return i
        return None

    def proposal_marks(self, proposal_ids: Sequence[int]) -> dict[int, tuple[QueueMark, ...]]:
        """Proposal id → its queue marks (:data:`MARK_KINDS`, in that order; ids with none are left out), for one
        page of the queue: the ⚑ with its gap (the rule of ``known_elsewhere``, as ``known=elsewhere`` filters
        it), the distance to its nearest twin of another run (``twins``) and the number of reviewers' notes."""
        ids = [int(i) for i in proposal_ids]
        out: dict[int, tuple[QueueMark, ...]] = {}
        twins = self.twins(ids)
        with self._read() as conn:
            raw = dbapi(conn)
            _register_flag_gap(raw, _FLAG_GAP, self._flag_memo)
            for chunk in chunked(ids):
                part = list(chunk)
                for pid, gap, notes in raw.execute(
                        f"SELECT id, {_FLAG_GAP}, (SELECT count(*) FROM reviews r WHERE r.proposal_id = proposals.id "
                        f"AND r.action = 'note') FROM proposals WHERE id IN ({', '.join('?' * len(part))})", part):
                    twin = twins.get(int(pid))
                    marks = [*([QueueMark("elsewhere", float(gap))] if gap is not None else []),
                             *([QueueMark("twin", twin[0].distance)] if twin else []),
                             *([QueueMark("note", float(notes))] if notes else [])]
                    if marks:
                        out[int(pid)] = tuple(marks)
        for pid, share in self._data_shares(ids).items():
            out[pid] = (*out.get(pid, ()), QueueMark("data", share))
        return out

    def _queue_sql(self, status: str | Sequence[str] | None = None, parent: int | str | None = None, *,
                   parent_subtree: bool = False, run_id: int | None = None, min_size: int | None = None,
                   max_size: int | None = None, min_novelty: float | None = None, max_novelty: float | None = None,
                   min_identity: float | None = None, max_identity: float | None = None, search: str | None = None,
                   sort: str = "id", descending: bool = False, known_elsewhere: bool = False, twins: bool = False,
                   collection: str | None = None) -> tuple[str, list[Any], str]:
        """The WHERE clause, its parameters and the ORDER BY of a queue (see :meth:`proposal_queue`): one place,
        so a page, a step with ``j`` and a candidate's place in the queue are the same query."""
        if sort not in SORT_KEYS and sort not in (FLAG_SORT, TWIN_SORT):
            raise ValueError(f"unknown sort key {sort!r} (known: {', '.join([*SORT_KEYS, FLAG_SORT, TWIN_SORT])})")
        statuses = LIVE_STATUSES if status is None else ((status,) if isinstance(status, str) else tuple(status))
        bad = [s for s in statuses if s not in PROPOSAL_STATUSES]
        if bad:
            raise ValueError(f"unknown proposal status {bad[0]!r} (known: {', '.join(PROPOSAL_STATUSES)})")
        # Plain SQL: at 100k proposals SQLAlchemy's statement building cost more than SQLite's answer.
        where: list[str] = []
        params: list[Any] = []
        if set(statuses) == set(LIVE_STATUSES):
            # "Not one of the dead statuses" rather than an IN over three: the IN sends the planner to the
            # status index and a full sort; this lets it walk the sort column's index and stop after a page.
            where.append(_LIVE_ONLY)
        else:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if parent is not None:
            if isinstance(parent, int) and parent_subtree:
                where.append("parent_taxon_id IN (WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL SELECT t.id "
                             "FROM taxa t JOIN tree ON t.parent_id = tree.id) SELECT id FROM tree)")
                params.append(parent)
            elif isinstance(parent, int):
                where.append("parent_taxon_id = ?")
                params.append(parent)
            else:
                where.append("parent_name = ?")
                params.append(parent)
        for column, lo, hi in (("size", min_size, max_size), ("novelty", min_novelty, max_novelty),
                               ("nearest_identity", min_identity, max_identity)):
            if lo is not None:
                where.append(f"{column} >= ?")
                params.append(lo)
            if hi is not None:
                where.append(f"{column} <= ?")
                params.append(hi)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if collection is not None:
            # a handful of runs: the subquery is answered once, then the run index; instr, not LIKE, so a name's
            # "_" or "%" is a letter
            where.append("run_id IN (SELECT r.id FROM runs r JOIN collections c ON c.id = r.collection_id "
                         "WHERE instr(lower(c.name), lower(?)) > 0)")
            params.append(collection)
        if known_elsewhere:
            where.append(f"{_FLAG_GAP} IS NOT NULL")
        if twins:
            where.append("bd_twin_group(id) IS NOT NULL")
        if search:
            # a specimen's processid finds the candidate holding it (exact, through the members index); the
            # number or working label the queue shows ("#113", "cand113", "Unplaced sp. cand113") finds that one
            where.append("(provisional_name LIKE ? OR parent_name LIKE ? OR nearest_species LIKE ? "
                         "OR id IN (SELECT proposal_id FROM proposal_members WHERE processid = ?) OR id = ?)")
            params.extend([f"%{search}%"] * 3 + [search.strip(), self._shown_as(search)])
        direction = "DESC" if descending else "ASC"
        if "rejected" in statuses and run_id is None:  # one run's own candidates are all listed under its filter
            where.append(_NOT_REJECTED_AGAIN)
        if sort == FLAG_SORT:  # unflagged last both ways: 2.0 / -1.0 lie outside every gap (0-1)
            order = f"coalesce({_FLAG_GAP}, {-1.0 if descending else 2.0}) {direction}, id {direction}"
        elif sort == TWIN_SORT:  # each group together, ordered by its lowest id; without a twin last both ways
            order = f"bd_twin_group(id) IS NULL, bd_twin_group(id) {direction}, id {direction}"
        else:
            order = f"{SORT_KEYS[sort]} {direction}, id {direction}"
        return " AND ".join(where), params, order

    def _shown_as(self, search: str) -> int | None:
        """The candidate the queue shows as ``search``: its number (``113``, ``#113``, ``cand113``) or its whole
        working label (``Unplaced sp. cand113``, which must be that candidate's name); None when it names none."""
        typed = search.strip()
        if (m := re.fullmatch(r"(?:#|cand)?(\d+)", typed)) is not None:
            return int(m.group(1))
        if (m := re.fullmatch(r".+\scand(\d+)", typed)) is not None:
            try:
                shown = self.proposal(int(m.group(1)))
            except DatabaseError:
                return None
            return shown.id if shown.name.lower() == " ".join(typed.lower().split()) else None
        return None

    def successor(self, proposal_id: int) -> Successor | None:
        """Where a candidate a later run re-clustered went: the candidate that now holds its members (following
        ``superseded_by`` through every later re-clustering) and the runs that re-clustered it, first to last; None
        when the candidate is not superseded, or was retired (its members named and proposed by none:
        ``retire_unproposed``).

        Why: a vial labelled "cand11" met a re-run of its week, and ``#11`` opened a superseded record; the
        candidate, same specimen, was #14 (season review F10)."""
        step = ("SELECT p.superseded_by, s.run_id FROM proposals p JOIN proposals s ON s.id = p.superseded_by "
                "WHERE p.id = ? AND p.status = 'superseded'")
        with self._read() as conn:
            raw = dbapi(conn)
            seen, current, runs = {proposal_id}, proposal_id, []
            # a chain of re-runs: each superseded by the next (never a cycle; guarded all the same)
            while (nxt := raw.execute(step, (current,)).fetchone()) is not None and int(nxt[0]) not in seen:
                current = int(nxt[0])
                seen.add(current)
                if int(nxt[1]) not in runs:
                    runs.append(int(nxt[1]))
        return None if current == proposal_id else Successor(self.proposal(current), tuple(runs))

    def proposal(self, proposal_id: int) -> ProposalSummary:
        with self._read() as conn:
            r = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == proposal_id)).mappings().first()
        if r is None:
            raise DatabaseError(f"no proposal {proposal_id} in {self.path}")
        return ProposalSummary.from_row(r)

    def consensus_barcodes(self, proposal_ids: Sequence[int]) -> dict[int, str]:
        """proposal id → the consensus barcode its evidence holds (those with one), in one query: the merge list
        measures every pending candidate's distance from the one under review, and a full evidence record each
        (alignment, member hits) would be read for one string. A record SQLite's JSON functions refuse (a NaN
        Python's json wrote) reads as holding none: one such candidate failed the whole query (every merge list,
        and the detail, which measures its twins so)."""
        ids = [int(i) for i in proposal_ids]
        out: dict[int, str] = {}
        seq_of = sa.case((sa.func.json_valid(PROPOSALS.c.evidence),
                          sa.func.json_extract(PROPOSALS.c.evidence, "$.consensus_barcode")))
        with self._read() as conn:
            for i in range(0, len(ids), 500):
                q = sa.select(PROPOSALS.c.id, seq_of).where(PROPOSALS.c.id.in_(ids[i:i + 500]))
                out.update({int(pid): str(seq) for pid, seq in conn.execute(q) if seq})
        return out

    def consensus_distances(self, proposal_id: int, others: Sequence[int]) -> dict[int, float]:
        """Proposal id of ``others`` → the p-distance of its consensus barcode from ``proposal_id``'s, measured now
        (those with one; none where ``proposal_id`` has none). Far pairs keep the k-mer estimate
        (``storage.distance.cross_p_distance``: never aligned beyond 12 %). The one measure of how far two
        candidates are that the review shows: the merge list, the accept dialog's twin and the header's ≡ line.

        Why measured, not read from the stored evidence: a merge recomputes the candidate's consensus, and #33's
        header said "≡ same as #83 … 0.5 %" (its run's figure) while the accept dialog on the same screen said
        "#83 … 0.3 % away" (e36 season review, finding 7)."""
        from biodiscover.storage.distance import cross_p_distance

        seqs = self.consensus_barcodes([proposal_id, *others])
        measured = [int(o) for o in dict.fromkeys(others) if seqs.get(int(o)) and int(o) != int(proposal_id)]
        if not seqs.get(int(proposal_id)) or not measured:
            return {}
        far = cross_p_distance([seqs[int(proposal_id)]], [seqs[o] for o in measured])[0]
        return {o: float(d) for o, d in zip(measured, far)}

    def member_sets(self, proposal_ids: Sequence[int]) -> dict[int, frozenset[str]]:
        """proposal id → the processids it holds now (those asked for, empty when none), in one query a chunk: what
        a merge unites (a candidate and its twin of a re-triage hold the same specimens: merged, they are as many as
        either, not both added) and which of the candidates within the threshold is that twin."""
        ids = [int(i) for i in proposal_ids]
        out: dict[int, set[str]] = {i: set() for i in ids}
        with self._read() as conn:
            for i in range(0, len(ids), 500):
                q = sa.select(MEMBERS.c.proposal_id, MEMBERS.c.processid).where(
                    MEMBERS.c.proposal_id.in_(ids[i:i + 500]))
                for pid, processid in conn.execute(q):
                    out[int(pid)].add(str(processid))
        return {i: frozenset(m) for i, m in out.items()}

    def _data_evidence(self, proposal_ids: Sequence[int]) -> dict[int, Evidence]:
        """proposal id → the two parts of its evidence a data mark reads (member hits, dropped records), in one query
        a chunk (not the alignment); a record SQLite cannot parse or this version cannot read is left out (its
        detail says why)."""
        ids = [int(i) for i in proposal_ids]
        out: dict[int, Evidence] = {}
        valid = sa.func.json_valid(PROPOSALS.c.evidence)

        def part(path: str) -> Any:
            return sa.case((valid, sa.func.json_extract(PROPOSALS.c.evidence, path)), else_=None)

        with self._read() as conn:
            for chunk in chunked(ids):
                q = sa.select(PROPOSALS.c.id, part("$.member_hits"), part("$.dropped_keys")) \
                    .where(PROPOSALS.c.id.in_(list(chunk)))
                for pid, hits, dropped in conn.execute(q):
                    try:
                        out[int(pid)] = Evidence.from_dict({"member_hits": json.loads(hits) if hits else {},
                                                            "dropped_keys": json.loads(dropped) if dropped else []})
                    except (ValueError, TypeError):
                        continue
        return out

    def _data_shares(self, proposal_ids: Sequence[int]) -> dict[int, float]:
        """proposal id → the share of its members whose reads are not usable as COI (0.0 where only a dropped
        record is matched), for those with a data mark: the ``data`` queue mark's figure."""
        out = {}
        for pid, ev in self._data_evidence(proposal_ids).items():
            if data_mark(ev):
                bad = len(unusable_reads(ev.member_hits))
                out[pid] = bad / len(ev.member_hits) if bad else 0.0
        return out

    def data_marks(self, proposal_ids: Sequence[int]) -> dict[int, str]:
        """proposal id → what its evidence says is wrong with its data in a few words (``storage.evidence.data_mark``:
        ``not COI``, ``dropped key: …``), for those with a mark: what the queue's ⚠ stands for."""
        return {pid: mark for pid, ev in self._data_evidence(proposal_ids).items() if (mark := data_mark(ev))}

    def candidates_elsewhere(self, run_id: int) -> tuple[dict[int, str], dict[int, str]]:
        """(proposal id → consensus barcode, proposal id → one of its specimens) of every live candidate of the
        database's other runs that holds none of the specimens run ``run_id`` assigned: what a new run's candidates
        are measured against for their closest candidate (``discovery.proposals.nearest_in_database``). A candidate
        of an earlier triage of the same specimens is left out: this run proposes them again (its pending ones
        are superseded, its decided ones recognised), so it is no other candidate."""
        with self._read() as conn:
            rows = dbapi(conn).execute(
                "SELECT p.id, (SELECT min(m.processid) FROM proposal_members m WHERE m.proposal_id = p.id) "
                "FROM proposals p WHERE p.run_id != ? AND p.status NOT IN ('merged', 'superseded', 'withdrawn') "
                "AND NOT EXISTS (SELECT 1 FROM proposal_members m JOIN assignments a ON a.processid = m.processid "
                "AND a.run_id = ? WHERE m.proposal_id = p.id) ORDER BY p.id", (run_id, run_id)).fetchall()
        members = {int(pid): str(member) for pid, member in rows if member}
        return self.consensus_barcodes(list(members)), members

    def twins(self, proposal_ids: Sequence[int] | None = None) -> dict[int, tuple[Twin, ...]]:
        """Proposal id → the live candidates of other runs that are probably its species, nearest first (ids
        with none left out; ``proposal_ids``: only those asked for). Two live candidates of different runs are
        twins when the evidence of either records the other as its closest candidate (the live proposal now
        holding its recorded specimen, as ``proposal_detail`` resolves it) within that run's species threshold
        (``storage.evidence.twin_threshold``); the relation goes both ways, so week 1's candidate shows week 2's
        twin too.

        Why: weekly batches of one fauna propose the same new species every week; after three Costa Rican weeks
        a real queue held 328 pending candidates for 127 species, and nothing said which rows were one species.
        Read from the stored evidence (no alignment), as kept between queries (:class:`_NearIndex`): the queue asks
        for every page."""
        with self._read() as conn:
            raw = dbapi(conn)
            pairs = _twin_pairs(self._near_index.pairs(raw, proposal_ids))
            if proposal_ids is not None:
                asked = {int(i) for i in proposal_ids}
                pairs = {a: near for a, near in pairs.items() if a in asked}
            ids = sorted({b for near in pairs.values() for b in near})
            summaries: dict[int, ProposalSummary] = {}
            for chunk in chunked(ids):
                part = list(chunk)
                summaries.update({int(r[0]): ProposalSummary(*r) for r in raw.execute(
                    f"SELECT {_SUMMARY_COLUMNS} FROM proposals WHERE id IN ({', '.join('?' * len(part))})", part)})
            collections = _run_collections(raw)
        return {a: tuple(Twin(summaries[b], d, collections.get(summaries[b].run_id))
                         for b, d in sorted(near.items(), key=lambda bd: (bd[1], bd[0])))
                for a, near in sorted(pairs.items())}

    def closest_elsewhere(self, proposal_ids: Sequence[int]) -> dict[int, tuple[ProposalSummary, str | None]]:
        """Proposal id → (the live proposal of another run now holding its closest candidate's recorded specimen,
        the collection that run triaged), for those of ``proposal_ids`` whose closest candidate is another run's
        (``discovery.proposals.nearest_in_database``), whatever the distance: what an export of one run names,
        whose own tables hold no other run's candidates."""
        asked = {int(i) for i in proposal_ids}
        with self._read() as conn:
            raw = dbapi(conn)
            found: dict[int, int] = {}
            for pid, other, _, _ in self._near_index.pairs(raw, asked):
                if pid in asked:  # the lowest-numbered holder, as the review resolves it
                    found[pid] = min(other, found.get(pid, other))
            summaries = {int(r[0]): ProposalSummary(*r) for part in chunked(sorted(set(found.values())))
                         for r in raw.execute(f"SELECT {_SUMMARY_COLUMNS} FROM proposals WHERE id IN "
                                              f"({', '.join('?' * len(part))})", list(part))}
            collections = _run_collections(raw)
        return {pid: (summaries[q], collections.get(summaries[q].run_id)) for pid, q in sorted(found.items())}

    def run_collections(self) -> dict[int, str]:
        """Run id → the name of the collection it triaged (runs with none left out): what the review says a
        candidate of another run came from (``2026-w01-costa-rica``)."""
        with self._read() as conn:
            return _run_collections(dbapi(conn))

    def run_order_cutoffs(self) -> dict[int, float]:
        """Run id → the identity its order needed (``storage.evidence.run_order_cutoff``; runs whose reference
        learned its orders left out): what the queue marks a nearest known species below with ``↓``."""
        with self._read() as conn:
            return _run_order_cutoffs(dbapi(conn))

    def assigned_countries(self) -> dict[str, dict[str, int]]:
        """Known species → {country: specimens} of the live candidates reviewers assigned to it, every run of
        the database: where the project has now met each species, beside the reference's keys. What the ⚑
        rule counts as keys from those countries (``storage.evidence.known_elsewhere``, ``met_here``)."""
        with self._read() as conn:
            return _assigned_countries(dbapi(conn))

    def queue_counts(self, run_id: int | None = None) -> dict[str, int]:
        """Proposals per status (every status present, zero when none) plus ``live``; without ``run_id`` a rejection
        a later run recognised counts once (``REJECTED_AGAIN``), as the queue lists it."""
        q = sa.select(PROPOSALS.c.status, sa.func.count()).group_by(PROPOSALS.c.status)
        if run_id is not None:
            q = q.where(PROPOSALS.c.run_id == run_id)
        else:  # as the queue lists them: a rejection a later run recognised is counted once, as the later one
            q = q.where(sa.text(f"(status != 'rejected' OR NOT {REJECTED_AGAIN})"))
        with self._read() as conn:
            counts = {s: 0 for s in PROPOSAL_STATUSES}
            counts.update({s: int(n) for s, n in conn.execute(q)})
        counts["live"] = sum(counts[s] for s in LIVE_STATUSES)
        return counts

    def proposal_detail(self, proposal_id: int) -> ProposalDetail:
        """Everything the detail screen shows: members with specimen data and assignment, reviews, history."""
        from biodiscover.storage.db.reviews import members_assignment, suggest_name_in

        with self._read() as conn:
            r = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == proposal_id)).mappings().first()
            if r is None:
                raise DatabaseError(f"no proposal {proposal_id} in {self.path}")
            summary = ProposalSummary.from_row(r)
            S, A = SPECIMENS, ASSIGNMENTS
            q = (sa.select(MEMBERS.c.processid, MEMBERS.c.probability, MEMBERS.c.outlier_score, S, A.c.deepest_rank,
                           A.c.deepest_taxon, A.c.novelty.label("a_novelty"),
                           *[A.c[f"confidence_{rk}"] for rk in ("order", "family", "subfamily", "genus", "species")],
                           *[A.c[f"label_{rk}"] for rk in ("order", "family", "subfamily", "genus", "species")])
                 .select_from(MEMBERS)
                 .outerjoin(S, sa.and_(S.c.processid == MEMBERS.c.processid, S.c.current.is_(True)))
                 .outerjoin(A, members_assignment(summary.run_id))
                 .where(MEMBERS.c.proposal_id == proposal_id)
                 .order_by(MEMBERS.c.probability.desc(), MEMBERS.c.processid))
            members = []
            labels: list[dict[str, Any]] = []
            confidences: list[dict[str, Any]] = []
            for m in conn.execute(q).mappings():
                if m["deepest_rank"] is not None or m["label_order"] is not None:  # a member the run assigned
                    labels.append({rk: m[f"label_{rk}"] for rk in ("order", "family", "subfamily", "genus", "species")})
                    confidences.append({rk: m[f"confidence_{rk}"]
                                        for rk in ("order", "family", "subfamily", "genus", "species")})
                rank = m["deepest_rank"]
                conf = m.get(f"confidence_{rank}") if rank else None
                ranks = ("order", "family", "subfamily", "genus", "species")
                members.append(MemberInfo(
                    m["processid"], m["probability"], m["outlier_score"], m["dna_barcode"], m["dna_bin"],
                    m["country"], m["province_state"], m["coord_lat"], m["coord_lon"], m["image_measurement_value"],
                    m["image_path"], {rk: m[rk] for rk in ("order", "family", "subfamily", "genus", "species")},
                    rank, m["deepest_taxon"], conf, m["a_novelty"], {rk: m[f"label_{rk}"] for rk in ranks},
                    {rk: m[f"confidence_{rk}"] for rk in ranks}))
            reviews = [dict(x) for x in conn.execute(sa.select(REVIEWS).where(REVIEWS.c.proposal_id == proposal_id)
                                                     .order_by(REVIEWS.c.id)).mappings()]
            history = [dict(x) for x in conn.execute(sa.select(EDGES).where(sa.or_(
                EDGES.c.source_id == proposal_id, EDGES.c.target_id == proposal_id)).order_by(EDGES.c.id)).mappings()]
            lineage: list[tuple[str, str]] = []
            provisional: set[str] = set()
            # an assigned candidate's place is the species it was assigned to (its lineage ends with it): its
            # parent's read "Acrolophus (genus)" under "#13 assigned Acrolophus kearfotti" (e25 finding 13)
            tid = summary.taxon_id if summary.status == "assigned" and summary.taxon_id is not None \
                else summary.parent_taxon_id
            while tid is not None and len(lineage) < 64:
                t = conn.execute(sa.select(TAXA.c.rank, TAXA.c.name, TAXA.c.parent_id, TAXA.c.status)
                                 .where(TAXA.c.id == tid)).first()
                if t is None:
                    break
                lineage.append((t.rank, t.name))
                if t.status == "provisional":
                    provisional.add(t.name)
                tid = t.parent_id
            suggested = suggest_name_in(conn, summary.parent_name, summary.parent_rank)
            try:
                evidence = Evidence.from_dict(r["evidence"])
            except (TypeError, ValueError) as err:
                raise DatabaseError(f"proposal {proposal_id} in {self.path}: stored evidence is unreadable: "
                                    f"{err}") from err
            listed = {n.species for n in evidence.near_species}
            met_here = {sp: c for sp, c in _assigned_countries(dbapi(conn)).items() if sp in listed}
            held = evidence.between_distance.member if evidence.between_distance is not None else None
            closest = _holders(conn, summary, [held] if held else [])
            bin_holders = _holders(conn, summary, evidence.bin.shared_members if evidence.bin else ())
            near = closest[0] if closest else None
            collection = _run_collections(dbapi(conn)).get(near.run_id) \
                if near is not None and near.run_id != summary.run_id else None
            order_cutoff = _run_order_cutoffs(dbapi(conn), summary.run_id).get(summary.run_id)
            level = _run_level(dbapi(conn), summary.run_id)
        # the twins as the relation finds them (the stored evidence), each at its distance measured now, nearest first
        twins = self.twins([proposal_id]).get(proposal_id, ())
        now = self.consensus_distances(proposal_id, [t.proposal.id for t in twins]) if twins else {}
        twins = tuple(sorted((dataclasses.replace(t, distance=now.get(t.proposal.id, t.distance)) for t in twins),
                             key=lambda t: (t.distance, t.proposal.id)))
        return ProposalDetail(summary, evidence, members, reviews, history, suggested, list(reversed(lineage)),
                              near, tuple(bin_holders),
                              agreed_below(summary.parent_rank, labels, confidences), frozenset(provisional),
                              met_here, collection, twins, order_cutoff, level)
