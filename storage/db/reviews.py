"""Review decisions: an append-only log that never loses a taxonomist's work.

API (a mixin of :class:`biodiscover.storage.db.Database`); every action is one
``BEGIN IMMEDIATE`` transaction, appends one row to ``reviews`` and returns a
:class:`ReviewResult`::

    db.suggest_name(proposal_id) -> str                       # "Megaselia sp. BD-0007" (not reserved)
    db.accept(proposal_id, expected_version, name=None, *, reviewer, note=None)
    db.reject(proposal_id, expected_version, *, reviewer, note=None)
    db.assign(proposal_id, expected_version, species_taxon, *, reviewer, note=None)  # a known species
    db.assign(proposal_id, expected_version, None, *, reviewer, new_species="Aedes aegypti")  # described, added
    db.merge(proposal_ids, expected_versions, *, reviewer, note=None, parent=None, evidence=None)
    db.merge_places(target, others) -> dict[int, tuple]     # where merging each into target would place it
    db.split(proposal_id, expected_version, member_ids, *, reviewer, note=None, evidence=None)
    db.move(proposal_id, expected_version, new_parent_taxon, *, reviewer, note=None, new_taxon=None,
            described=False)
    db.rename(proposal_id, expected_version, name, *, reviewer, note=None)
    db.note(proposal_id, text, *, reviewer, expected_version=None)
    db.withdraw_note(review_id, expected_version, *, reviewer, note=None)  # her own note, from any session
    db.taken_names() -> dict[str, str]                     # names a new taxon may not take
    db.undo(review_id, *, reviewer, note=None)
    db.reopen(proposal_id, expected_version, *, reviewer, note=None)   # take back the decision in force
    db.repeated_rejections(proposal_id) -> list[int]                   # what a reopen of a rejection reopens too
    db.decision_in_force(proposal_id) -> dict | None                   # the accept / reject / assign in force
    db.reviews(proposal_id=None, limit=None) -> list[dict]

Rules:

* ``expected_version`` is the version the reviewer saw. If the proposal changed
  since (another review, or a newer run re-clustered it) the action is refused
  with :class:`~biodiscover.storage.errors.StaleProposalError` naming what happened; nothing
  is written.
* Accept / reject / assign / merge / split need a ``pending`` proposal; move and
  rename work on pending and accepted ones (an accepted proposal's provisional
  taxon is moved / renamed with it).
* Assigning names the members as a known species (a ``species`` taxon already in
  the taxonomy, e.g. from the reference): status ``assigned``, no new taxon; the
  next triage uses them as keys of that species. ``new_species`` assigns them to a
  described species the reference lacks, made then under the genus its name
  begins with (status ``described``: a published name, not a provisional one).
* Merging candidates of different parents places the result under the parents'
  lowest common taxon unless ``parent`` says where; the result names it.
* Split and merge change who the members are, so the caller passes the evidence
  recomputed from the new member lists (the review app does, with
  ``discovery.proposals.recompute_evidence``); it is stored in the same
  transaction and undo restores the evidence from before.
* Accepting creates a provisional species taxon under the proposal's parent. The
  default name is ``<parent> sp. BD-NNNN`` from a counter stored in the database
  and never reused (a custom ``BD-NNNN`` name advances it too).
* Every row stores ``before`` and ``after`` snapshots of the proposals (with
  members) and taxa it touched. :meth:`ReviewsMixin.undo` appends an ``undo``
  row that restores ``before`` — only while the touched proposals are still
  exactly as that review left them (same status, names, parent, members;
  otherwise undo the later reviews first).
  Undo of an undo redoes. Nothing in ``reviews`` is ever updated or deleted.
* :meth:`ReviewsMixin.reopen` takes back the decision in force on an accepted, rejected or assigned proposal from
  any session (``u`` undoes only this session's reviews): a ``reopen`` row targets that decision, which stays in
  the log out of force (as an undo's target does, :data:`~biodiscover.storage.review_log.UNDOING`); the proposal is
  pending again, with what later reviews changed (a rename, a move) kept.
* :meth:`ReviewsMixin.withdraw_note` takes back a note its author wrote, from any session: a ``withdraw`` row
  targets it (out of force, kept in the log, as an undo's target); the exports stop quoting it and a later run no
  longer carries it. Undoing the withdrawal puts the note back.
* Merges and splits also go to ``proposal_edges`` (the history graph).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from biodiscover.storage.db.clock import utcnow
from biodiscover.storage.db.core import DatabaseCore, dbapi, inserted_id, table
from biodiscover.storage.db.models import (LIVE_STATUSES, Assignment, Counter, Proposal, ProposalEdge, ProposalMember,
                                           Review, Taxon)
from biodiscover.storage.errors import DatabaseError, StaleProposalError
from biodiscover.storage.evidence import Evidence
from biodiscover.storage.records import DESCRIBED, INSECT_CLASS, INSECT_ORDERS, determination, open_qualifier
from biodiscover.storage.review_log import DECIDED_STATUSES, DECISIONS, carried, in_force, notes_in_force

log = logging.getLogger(__name__)

PROPOSALS = table(Proposal)
MEMBERS = table(ProposalMember)
REVIEWS = table(Review)
EDGES = table(ProposalEdge)
TAXA = table(Taxon)
COUNTERS = table(Counter)
ASSIGNMENTS = table(Assignment)

NAME_COUNTER = "provisional_name"
NAME_PATTERN = re.compile(r"\bBD-(\d+)\b")
#: Proposal fields a snapshot keeps (and undo restores).
SNAP_FIELDS: tuple[str, ...] = ("status", "provisional_name", "parent_taxon_id", "parent_rank", "parent_name",
                                "taxon_id", "merged_into", "size", "nearest_species", "nearest_identity", "novelty",
                                "version")


@dataclass(frozen=True)
class ReviewResult:
    """What a review action did: its log row, and the proposals' new versions."""

    review_id: int
    action: str
    proposal_id: int | None
    versions: dict[int, int]
    taxon_id: int | None = None
    name: str | None = None
    new_proposal_id: int | None = None
    #: where the proposal sits after a move or merge: (rank, name) of its parent taxon
    parent: tuple[str | None, str | None] | None = None
    #: a reopened rejection's repetitions reopened with it (:meth:`ReviewsMixin.repeated_rejections`)
    reopened: tuple[int, ...] = ()
    #: an undone reopen's repetitions rejected again with it, and those she has decided anew since, left as they are
    restored: tuple[int, ...] = ()
    kept: tuple[int, ...] = ()


def format_name(parent_name: str | None, number: int, parent_rank: str | None = "genus") -> str:
    """Provisional species name in open nomenclature: ``Megaselia sp. BD-0007``, ``Phoridae gen. sp. BD-0008``."""
    if not parent_name:
        return f"Incertae sedis sp. BD-{number:04d}"
    return f"{parent_name} {open_qualifier(parent_rank)} BD-{number:04d}"


def _counter_value(conn: Connection) -> int:
    v = conn.execute(sa.select(COUNTERS.c.value).where(COUNTERS.c.name == NAME_COUNTER)).scalar()
    return int(v or 0)


def suggest_name_in(conn: Connection, parent_name: str | None, parent_rank: str | None = "genus") -> str:
    return format_name(parent_name, _counter_value(conn) + 1, parent_rank)


def _next_number(conn: Connection) -> int:
    conn.execute(sa.text("INSERT OR IGNORE INTO counters(name, value) VALUES (:n, 0)"), {"n": NAME_COUNTER})
    return int(conn.execute(sa.text("UPDATE counters SET value = value + 1 WHERE name = :n RETURNING value"),
                            {"n": NAME_COUNTER}).scalar_one())


def _advance_counter_past(conn: Connection, name: str) -> None:
    m = NAME_PATTERN.search(name)
    if m:
        conn.execute(sa.text("INSERT OR IGNORE INTO counters(name, value) VALUES (:n, 0)"), {"n": NAME_COUNTER})
        conn.execute(sa.text("UPDATE counters SET value = max(value, :v) WHERE name = :n"),
                     {"n": NAME_COUNTER, "v": int(m.group(1))})


def _members_novelty(conn: Connection, members: Sequence[tuple[int, str]]) -> float | None:
    """The mean novelty of ``members`` ((run id, processid): each in the run that proposed it), what a
    candidate's novelty is when discovery makes it (``discovery.proposals``: its members' mean); None when no
    member has an assignment there. Why after a split or merge: the parts kept the parent's value (the demo's
    split showed 0.94 on a part whose members read 0.84-0.89)."""
    by_run: dict[int, list[str]] = {}
    for run, pid in members:
        by_run.setdefault(int(run), []).append(pid)
    values: list[float] = []
    for run, pids in by_run.items():
        for i in range(0, len(pids), 500):
            values += [float(v) for (v,) in conn.execute(
                sa.select(ASSIGNMENTS.c.novelty).where(ASSIGNMENTS.c.run_id == run,
                                                      ASSIGNMENTS.c.processid.in_(pids[i:i + 500])))
                if v is not None]
    return sum(values) / len(values) if values else None


def _snapshot(conn: Connection, proposal_ids: Sequence[int], taxon_ids: Sequence[int] = (), *,
              evidence: bool = False) -> dict[str, Any]:
    """Proposals (fields, members; the evidence too when ``evidence``: split and merge change it) and taxa."""
    props: dict[str, Any] = {}
    for pid in proposal_ids:
        r = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == pid)).mappings().first()
        if r is None:
            props[str(pid)] = None
            continue
        snap = {k: r[k] for k in SNAP_FIELDS}
        if evidence:
            snap["evidence"] = r["evidence"]
        snap["members"] = [list(m) for m in conn.execute(
            sa.select(MEMBERS.c.processid, MEMBERS.c.specimen_id, MEMBERS.c.probability, MEMBERS.c.outlier_score)
            .where(MEMBERS.c.proposal_id == pid).order_by(MEMBERS.c.processid))]
        props[str(pid)] = snap
    taxa: dict[str, Any] = {}
    for tid in taxon_ids:
        t = conn.execute(sa.select(TAXA.c.name, TAXA.c.parent_id, TAXA.c.status).where(TAXA.c.id == tid)
                         ).mappings().first()
        taxa[str(tid)] = dict(t) if t else None
    return {"proposals": props, "taxa": taxa}


def _describe_stale(conn: Connection, r: Mapping[Any, Any], expected: int | None) -> str:
    pid = r["id"]
    if r["status"] == "superseded" and r["superseded_by"] is None:
        gone = conn.execute(sa.select(EDGES.c.run_id, EDGES.c.detail).where(
            EDGES.c.source_id == pid, EDGES.c.kind == "retired").order_by(EDGES.c.id.desc()).limit(1)).first()
        return (f"proposal {pid} was retired by run {gone.run_id if gone else '?'}: that run triaged all its "
                f"members and proposes none of them ({retired_named(gone.detail if gone else None)}); nothing "
                "to review there")
    if r["status"] == "superseded":
        new = conn.execute(sa.select(PROPOSALS.c.run_id, PROPOSALS.c.version).where(
            PROPOSALS.c.id == r["superseded_by"])).first()
        run = f" by run {new.run_id}" if new else ""
        return (f"proposal {pid} was re-clustered{run} into proposal {r['superseded_by']} (version "
                f"{new.version if new else '?'}); its members may have changed — reload and review the new proposal")
    if r["status"] == "merged":
        return f"proposal {pid} was merged into proposal {r['merged_into']}; review that one instead"
    if r["status"] == "withdrawn":
        return f"proposal {pid} was withdrawn (a split was undone); reload the queue"
    return (f"proposal {pid} changed since you loaded it (you saw version {expected}, it is now version "
            f"{r['version']}, status {r['status']}); reload it and decide again")


def retired_named(detail: Any) -> str:
    """What a ``retired`` edge's run named the candidate's members, in words ("named genus Coleophora (3)"): the one
    wording of the refusal, the history tab and the exports."""
    named = (detail or {}).get("named", ()) if isinstance(detail, Mapping) else ()
    parts = [f"{rank} {taxon} ({n})" if rank else f"unnamed ({n})" for rank, taxon, n in named]
    return "named " + ", ".join(parts) if parts else "named nothing"


def _load_checked(conn: Connection, pid: int, expected: int | None, allowed: Sequence[str], action: str
                  ) -> Mapping[Any, Any]:
    r = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == pid)).mappings().first()
    if r is None:
        raise DatabaseError(f"no proposal {pid}")
    if r["status"] in ("superseded", "merged", "withdrawn") or (expected is not None and r["version"] != expected):
        raise StaleProposalError(f"cannot {action}: " + _describe_stale(conn, r, expected))
    if r["status"] not in allowed:
        raise DatabaseError(f"cannot {action} proposal {pid}: it is {r['status']}"
                            + (" (reopen it first)" if r["status"] in DECIDED_STATUSES else ""))
    return r




def _decision_in_force(conn: Connection, proposal_id: int) -> dict[str, Any] | None:
    """The last accept / reject / assign of ``proposal_id`` still in force (a row of the log), or None: what a reopen
    takes back and what the review app names before refusing a decision on a decided candidate. A decision, its
    undos and reopens are all filed under the proposal they decide."""
    rows = [dict(r) for r in conn.execute(sa.select(REVIEWS).where(REVIEWS.c.proposal_id == proposal_id)
                                          .order_by(REVIEWS.c.id)).mappings()]
    active = in_force(rows)
    decided = [r for r in rows if r["action"] in DECISIONS and active.get(r["id"])]
    return decided[-1] if decided else None


def _bump(conn: Connection, pid: int, now: str, **values: Any) -> None:
    conn.execute(sa.update(PROPOSALS).where(PROPOSALS.c.id == pid).values(
        version=PROPOSALS.c.version + 1, updated_at=now, **values))


def _set_members(conn: Connection, pid: int, members: Sequence[Sequence[Any]]) -> None:
    """Replace ``pid``'s members with ``members`` (processid, specimen id, membership, outlier score), exactly (an
    undo restores a snapshot with them)."""
    conn.execute(sa.delete(MEMBERS).where(MEMBERS.c.proposal_id == pid))
    if members:
        conn.execute(sa.insert(MEMBERS), [{"proposal_id": pid, "processid": m[0], "specimen_id": m[1],
                                           "probability": m[2], "outlier_score": m[3]} for m in members])


def _alone(part: list[Sequence[Any]]) -> list[Sequence[Any]]:
    """A part of a split: a candidate of one holds its member wholly (membership 1.0, as the clustering writes a
    singleton); a member split off alone kept the figure it had among others (0.941, read in the FASTA header as
    doubt about a singleton). A part of several keeps the clustering's figures."""
    return [(m[0], m[1], 1.0, *m[3:]) for m in part] if len(part) == 1 else part


def _namesake(conn: Connection, name: str, parent_id: int | None, own: int | None = None) -> int | None:
    """A species taxon other than ``own``, not rejected, called ``name`` under ``parent_id``: what would make two
    species of one name under one parent (the first wins the name in every lookup, so the second could never be
    told apart in a search, an assignment or an export)."""
    where = [TAXA.c.rank == "species", TAXA.c.name == name, TAXA.c.status != "rejected",
             TAXA.c.parent_id.is_(None) if parent_id is None else TAXA.c.parent_id == parent_id]
    if own is not None:
        where.append(TAXA.c.id != own)
    found = conn.execute(sa.select(TAXA.c.id).where(*where)).scalar()
    return None if found is None else int(found)


def _refuse_namesake(conn: Connection, taxon_id: int, what: str) -> None:
    """Raise when the species ``taxon_id`` (as it stands now, inside the review's transaction) shares its name
    with another species under the same parent, or the taxon above species ``taxon_id`` (a reviewer's new taxon
    brought back by undoing its undo) shares its name with any other taxon above species, as
    :func:`new_taxon_problem` forbids; the transaction then rolls back whole."""
    t = conn.execute(sa.select(TAXA.c.name, TAXA.c.parent_id, TAXA.c.status, TAXA.c.rank)
                     .where(TAXA.c.id == taxon_id)).first()
    if t is None or t.status == "rejected":
        return
    if t.rank != "species":
        taken = _taken_names(conn, t.name, other_than=taxon_id)
        if taken:
            raise DatabaseError(f"cannot {what}: {taken[t.name.lower()]} already exists (made since); undo that "
                                "one first")
        return
    other = _namesake(conn, t.name, t.parent_id, own=taxon_id)
    if other is not None:
        raise DatabaseError(f"cannot {what}: taxon {other} already has the name {t.name!r} under the same parent; "
                            "choose another name")


#: Fields of an ``assigned`` proposal that are its species taxon's, not its own: they follow the taxon.
FOLLOWS_TAXON: tuple[str, ...] = ("provisional_name", "parent_taxon_id", "parent_rank", "parent_name")


def _follow_taxon(conn: Connection, taxon_id: int) -> None:
    """Give the proposals assigned to ``taxon_id`` its current name and parent: one name per taxon. A candidate
    assigned to an accepted new species kept the name it had then after that species was renamed (and the parent
    after it was moved). What the assigned proposals decided stays theirs: their version does not move."""
    t = conn.execute(sa.select(TAXA.c.name, TAXA.c.parent_id).where(TAXA.c.id == taxon_id)).first()
    if t is None:
        return
    parent = conn.execute(sa.select(TAXA.c.rank, TAXA.c.name).where(TAXA.c.id == t.parent_id)).first() \
        if t.parent_id is not None else None
    conn.execute(sa.update(PROPOSALS).where(PROPOSALS.c.taxon_id == taxon_id, PROPOSALS.c.status == "assigned")
                 .values(provisional_name=t.name, parent_taxon_id=t.parent_id,
                         parent_rank=parent.rank if parent else None, parent_name=parent.name if parent else None))


def _log(conn: Connection, action: str, pid: int | None, reviewer: str, now: str, before: dict[str, Any],
         after: dict[str, Any], note: str | None = None, target: int | None = None) -> int:
    return inserted_id(conn.execute(sa.insert(REVIEWS).values(
        proposal_id=pid, action=action, reviewer=reviewer, created_at=now, note=note, target_review_id=target,
        before=before, after=after)))


def _content(snap: dict[str, Any] | None) -> Any:
    """A proposal snapshot without its version: what undo compares (an undo of a later review bumps
    the version but restores the content, so an earlier review can be undone next); an assigned proposal's
    name and parent follow its taxon (:func:`_follow_taxon`) and are left out."""
    if snap is None:
        return None
    # an assigned proposal's name and parent are its taxon's (a rename of that species since changes them)
    skip = ("version", "evidence", *(FOLLOWS_TAXON if snap.get("status") == "assigned" else ()))
    return {k: (sorted(map(list, v)) if k == "members" else v) for k, v in snap.items() if k not in skip}


def _versions(snap: dict[str, Any]) -> dict[int, int]:
    return {int(k): v["version"] for k, v in snap["proposals"].items() if v is not None}


def _evidence_json(evidence: Any) -> dict[str, Any]:
    """An evidence record (or its dict) in the stored JSON layout."""
    if isinstance(evidence, Evidence):
        return evidence.to_dict()
    if isinstance(evidence, Mapping):
        return dict(evidence)
    raise TypeError(f"evidence must be an Evidence record or a mapping, got {type(evidence).__name__}")


def _evidence_values(evidence: Any) -> dict[str, Any]:
    """Proposal columns set from recomputed evidence: the evidence itself and the nearest known species the
    queue sorts and filters by (they must say the same as the evidence tab)."""
    data = _evidence_json(evidence)
    found = data.get("nearest_known")
    near: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    return {"evidence": data, "nearest_species": near.get("species"), "nearest_identity": near.get("identity")}


def _find_taxon(conn: Connection, taxon: int | str | None, action: str) -> Any:
    """A taxon row (id, rank, name, status, parent_id) by id or by unique name (not rejected)."""
    cols = (TAXA.c.id, TAXA.c.rank, TAXA.c.name, TAXA.c.status, TAXA.c.parent_id)
    if isinstance(taxon, int):
        t = conn.execute(sa.select(*cols).where(TAXA.c.id == taxon)).first()
    else:
        found = conn.execute(sa.select(*cols).where(TAXA.c.name == taxon, TAXA.c.status != "rejected")).all()
        if len(found) > 1:
            raise DatabaseError(f"cannot {action}: {len(found)} taxa are named {taxon!r}; pick one by id")
        t = found[0] if found else None
    if t is None:
        raise DatabaseError(f"cannot {action}: no taxon {taxon!r}")
    return t


#: A genus a reviewer names for a candidate whose genus the reference lacks: one Latin word, capital initial
#: (ICZN Art. 11.8); an interim label ("gen. 1", "Clemensia cincinnata") is not a genus name.
GENUS_NAME = re.compile(r"^[A-Z][a-z]+$")
#: Family-group names end in -idae (family) and -inae (subfamily) (ICZN Art. 29.2): the name a reviewer types
#: says which rank the taxon is, so the review app needs no rank picker.
FAMILY_GROUP_ENDINGS: tuple[tuple[str, str], ...] = (("idae", "family"), ("inae", "subfamily"))
#: Where a taxon a reviewer adds may go, by its rank: an order in the class (the taxonomy's root: no taxon), a
#: family in an order, a subfamily in a family, a genus in an order, family or subfamily (incertae sedis above).
ADDABLE_UNDER: dict[str, tuple[str, ...]] = {"order": ("class",), "family": ("order",), "subfamily": ("family",),
                                             "genus": ("order", "family", "subfamily")}


def new_taxon_rank(name: str) -> str:
    """The rank a taxon a reviewer adds takes from its name: ``Coleoptera`` an order (one of
    :data:`~biodiscover.storage.records.INSECT_ORDERS`: Odonata and Psocodea end in no -ptera), ``Lauxaniidae`` a
    family, ``Oecophorinae`` a subfamily, anything else a genus."""
    name = name.strip().lower()
    if name in INSECT_ORDERS:
        return "order"
    return next((rank for ending, rank in FAMILY_GROUP_ENDINGS if name.endswith(ending)), "genus")


def new_taxon_problem(name: str, under_rank: str | None, taken: Mapping[str, str],
                      described: bool | None = None) -> str | None:
    """Why ``name`` cannot be a new taxon (its rank from :func:`new_taxon_rank`) under a taxon of ``under_rank``
    (None: it can; ``under_rank`` None: not chosen yet, not checked). ``taken``: the lower-cased names of the taxa
    above species already in the taxonomy → how to say which one (``genus Amaxia (under subfamily Arctiinae)``):
    a second taxon of a name already there would split its candidates between two taxa no search can tell apart.
    Why families too: 92 specimens of an Australian plate were of families the reference lacked (Oecophoridae,
    Xyloryctidae, Lauxaniidae), and a reviewer who knew the family could only leave them under the order. One
    rule for the review app (which asks before it writes) and :meth:`ReviewsMixin.move`. ``described`` False: a
    provisional taxon, which an order (a published one of a fixed list) never is (None: not chosen yet)."""
    name = name.strip()
    if not name:
        return "type the new taxon's name in the box first (a genus such as Clemensia, a family such as Lauxaniidae)"
    if name.lower() in taken:
        return f"{taken[name.lower()]} already exists: pick it in the list instead"
    rank = new_taxon_rank(name)
    if not GENUS_NAME.match(name):
        example = {"order": "Coleoptera", "family": "Lauxaniidae", "subfamily": "Oecophorinae"}.get(rank, "Clemensia")
        return (f"{'an' if rank == 'order' else 'a'} {rank} name is one Latin word with a capital initial "
                f"(e.g. {example}), not {name!r}")
    if rank == "order" and described is False:
        return f"{name} is a published insect order: add it as described (not in the reference), not provisional"
    places = ADDABLE_UNDER[rank]
    if under_rank is not None and under_rank not in places:
        where = " or ".join([", ".join(places[:-1]), places[-1]] if len(places) > 1 else places)
        article = "an" if where[0] in "aeiou" else "a"
        return f"a new {rank} goes under {article} {where}, not under a {under_rank}"
    return None


def accepted_name_problem(name: str, lineage: Sequence[str], taxa: Mapping[str, str]) -> str | None:
    """Why a candidate under ``lineage`` (the names of its parent and the taxa above it; empty: unplaced) cannot
    be named ``name`` as a species (None: it can). The name's first word says where the species is (a genus, or a
    higher taxon before ``gen. sp.``), so one that names a taxon outside the lineage, an insect order the taxonomy
    lacks, or (for an unplaced candidate) a genus the taxonomy lacks, would export a species its own name
    contradicts, or one with no parent at all: the candidate must be moved there first (a placed candidate's name
    is checked only against an order: "Megaselia nova" under another genus stays the reviewer's call). ``taxa``:
    every taxon above species → how to say it (``order Coleoptera``). Why: e33 review F1, "Coleoptera sp.
    BD-0002" accepted for an unplaced candidate was stored as a species with no parent, its order in its name alone.
    """
    case = name_case_problem(name)
    if case is not None:
        return case
    first = name.split()[0] if name.split() else ""
    if not GENUS_NAME.match(first) or first in lineage or first in ("Incertae", INSECT_CLASS):
        return None
    rank = new_taxon_rank(first)
    if lineage and rank != "order":
        return None
    where = "unplaced" if not lineage else f"under {lineage[-1]}"
    if first in taxa:
        return (f"its name puts it in {taxa[first]}, but the candidate is {where}: move it there first (v, type "
                f"{first}), then name it")
    if rank == "order":
        return (f"its name puts it in order {first}, which the taxonomy lacks, and the candidate is {where}: move it "
                f"into the order first (v, type {first}: '+ order {first} (described, not in the reference)'), "
                f"then name it {first} gen. sp. …")
    return (f"its name puts it in a {rank} {first} the taxonomy lacks, and the candidate is unplaced: move it into "
            f"{first} first (v, type {first}), then name it; or accept it as Incertae sedis")


def name_case_problem(name: str) -> str | None:
    """Why ``name``, a binomial (two words of letters) or a genus before an open-nomenclature qualifier
    (``sp.``, ``cf.``, ``aff.``, ``nr.``, ``gen.``), is not written as one (None: it is, or it is no such name): the
    genus capitalised (its first letter only), the epithet wholly in lower case (ICZN Art. 28); a code
    (``Megaselia MS1``), a quoted nickname or a longer working phrase pass.
    Why: e33 review F10, ``e`` renamed #16 to "garrha Carnea-Like" without a question, exported as the taxon
    name; e34 attack T2, "ODONATUS carnea", "Thopliaus cARNEA" and "thopliaus sp. BD-9" still passed."""
    words = name.split()
    if len(words) < 2:
        return None
    first, second = words[0], words[1]
    binomial = len(words) == 2 and second.replace("-", "").isalpha()
    if not (binomial or second.lower() in OPEN_QUALIFIERS):
        return None
    genus = first[:1].upper() + first[1:].lower()
    right = " ".join([genus, second.lower() if binomial else second, *words[2:]])
    if first.isalpha() and first != genus:
        return f"a species name begins with its genus, capitalised ({right}), not {first!r}"
    if binomial and second != second.lower():
        return f"its epithet is written in lower case ({right}), not {second!r}"
    return None


#: the words of open nomenclature that follow a genus (or a higher taxon) in a name (:func:`name_case_problem`)
OPEN_QUALIFIERS = frozenset({"sp.", "spp.", "cf.", "aff.", "nr.", "gen."})


def _accepted_name_problem(conn: Connection, name: str, parent_id: int | None) -> str | None:
    """:func:`accepted_name_problem` from the taxa table."""
    lineage = [str(conn.execute(sa.select(TAXA.c.name).where(TAXA.c.id == t)).scalar_one())
               for t in reversed(_ancestry(conn, parent_id))] if parent_id is not None else []
    first = name.split()[0] if name.split() else ""
    taxa = {str(n): f"{r} {n}" for r, n in conn.execute(sa.select(TAXA.c.rank, TAXA.c.name).where(
        TAXA.c.name == first, TAXA.c.rank != "species", TAXA.c.status != "rejected"))}
    return accepted_name_problem(name, lineage, taxa)


#: two Latin words, as a published species is named: ``Memphis beatrix`` (not ``Memphis sp. BD-0003``)
BINOMIAL = re.compile(r"[A-Z][a-z]+ (?!(?:sp|spp|cf|aff|nr|gen)\b)[a-z]{2,}(?:-[a-z]+)?")


def binomial_like(name: str) -> bool:
    """Whether ``name`` reads as a published species name (genus, then species epithet): what a described species a
    reviewer adds must be, and what the review app asks about before accepting a candidate under it."""
    return BINOMIAL.fullmatch(name.strip()) is not None


def described_species_problem(name: str, genera: Sequence[str], species: Mapping[str, str]) -> str | None:
    """Why ``name`` cannot be a described species a reviewer adds (None: it can). ``genera``: how to say each genus
    of the taxonomy called as ``name``'s first word (``genus Aedes (under subfamily Culicinae)``); ``species``: the
    lower-cased names of the species in the taxonomy → how to say which one.

    The species goes under the genus its name begins with: a binomial names its genus (ICZN Art. 5.1), so placing
    "Aedes aegypti" anywhere else would export a record that says two genera at once. A genus the taxonomy lacks
    is refused rather than made here: where a genus goes (which family, which subfamily) is the move list's
    decision, where the evidence orders the places, and an assigned candidate can no longer be moved. One rule
    for the review app (which asks before it writes) and :meth:`ReviewsMixin.assign`."""
    name = " ".join(name.split())
    if not name:
        return "type the species' name in the box first (genus and species, e.g. Aedes aegypti)"
    if not binomial_like(name):
        return f"a described species is named by two Latin words, genus then species (e.g. Aedes aegypti), not {name!r}"
    if name.lower() in species:
        return f"{species[name.lower()]} is in the taxonomy already: pick it in the list instead"
    genus = name.split()[0]
    if not genera:
        return (f"genus {genus} is not in the taxonomy: move the candidate into it first (v, type {genus}: "
                f"'+ genus {genus} (described, not in the reference)'), then assign it")
    if len(genera) > 1:
        return f"{len(genera)} genera are called {genus} ({'; '.join(genera)}): which one is {name} in cannot be told"
    return None


def _described_species_problem(conn: Connection, name: str) -> tuple[str | None, int | None]:
    """:func:`described_species_problem` from the taxa table, and the id of the genus the species goes under."""
    up = TAXA.alias("up")
    name = " ".join(name.split())
    genus = name.split()[0] if name else ""
    genera = conn.execute(sa.select(TAXA.c.id, TAXA.c.name, up.c.rank, up.c.name.label("up_name")).select_from(
        TAXA.outerjoin(up, up.c.id == TAXA.c.parent_id)).where(
        TAXA.c.rank == "genus", TAXA.c.name == genus, TAXA.c.status != "rejected").order_by(TAXA.c.id)).all()
    species = {n.lower(): f"species {n}" for (n,) in conn.execute(sa.select(TAXA.c.name).where(
        TAXA.c.rank == "species", TAXA.c.status != "rejected",
        sa.func.lower(TAXA.c.name) == name.lower()))}
    problem = described_species_problem(name, [f"genus {g.name}" + (f" (under {g.rank} {g.up_name})" if g.up_name
                                                                    else "") for g in genera], species)
    return problem, (int(genera[0].id) if problem is None else None)


def _taken_names(conn: Connection, name: str | None = None, other_than: int | None = None) -> dict[str, str]:
    """:func:`new_taxon_problem`'s ``taken`` from the taxa table (names above species, not rejected): all of them,
    or those spelled ``name`` in any case; ``other_than``: leave that taxon out (the one being checked)."""
    up = TAXA.alias("up")
    q = sa.select(TAXA.c.rank, TAXA.c.name, up.c.rank.label("up_rank"), up.c.name.label("up_name")).select_from(
        TAXA.outerjoin(up, up.c.id == TAXA.c.parent_id)).where(TAXA.c.rank != "species", TAXA.c.status != "rejected")
    if name is not None:
        q = q.where(sa.func.lower(TAXA.c.name) == name.strip().lower())
    if other_than is not None:
        q = q.where(TAXA.c.id != other_than)
    out: dict[str, str] = {}
    for r in conn.execute(q.order_by(TAXA.c.id)):
        out.setdefault(r.name.lower(), f"{r.rank} {r.name}" + (f" (under {r.up_rank} {r.up_name})" if r.up_name
                                                               else ""))
    return out


def _ancestry(conn: Connection, taxon_id: int | None) -> list[int]:
    """``taxon_id`` and its ancestors, nearest first."""
    out: list[int] = []
    while taxon_id is not None and len(out) < 64 and taxon_id not in out:
        out.append(taxon_id)
        taxon_id = conn.execute(sa.select(TAXA.c.parent_id).where(TAXA.c.id == taxon_id)).scalar()
    return out


def _merged_parent(conn: Connection, parents: Sequence[int | None], chosen: int | None
                   ) -> tuple[int | None, str | None, str | None] | None:
    """(id, rank, name) of where a merge lands: ``chosen``, else the parents' lowest common taxon when
    they differ; (None, None, None) where they share no taxon: unplaced (a fly merged into a moth candidate kept
    "order Lepidoptera" as its place, a real plate's review); None where they agree (the target keeps its parent)."""
    if chosen is None:
        known = [p for p in parents if p is not None]
        if len(set(known)) <= 1:
            return None
        common = _ancestry(conn, known[0])
        for other in known[1:]:
            up = set(_ancestry(conn, other))
            common = [t for t in common if t in up]
        if not common:
            return None, None, None
        chosen = common[0]
    t = conn.execute(sa.select(TAXA.c.id, TAXA.c.rank, TAXA.c.name).where(TAXA.c.id == chosen)).first()
    if t is None:
        raise DatabaseError(f"cannot merge under taxon {chosen}: no such taxon")
    return t.id, t.rank, t.name


def members_assignment(run_id: int) -> Any:
    """The join of a candidate's members (``proposal_members``) to the assignment that determines each: by the
    candidate's run ``run_id``, else by the latest run before it that triaged the member (a candidate merged in from
    an earlier week: its members showed "?: ?" in the members table), else the latest run that did."""
    A, B = ASSIGNMENTS, ASSIGNMENTS.alias("b")
    before = (sa.select(sa.func.max(B.c.run_id)).where(B.c.processid == MEMBERS.c.processid, B.c.run_id <= run_id)
              .scalar_subquery())
    latest = sa.select(sa.func.max(B.c.run_id)).where(B.c.processid == MEMBERS.c.processid).scalar_subquery()
    return sa.and_(A.c.processid == MEMBERS.c.processid, A.c.run_id == sa.func.coalesce(before, latest))


def member_determinations(conn: Connection, proposal_id: int, run_id: int) -> dict[str, dict[str, str]] | None:
    """Each member of ``proposal_id`` (of run ``run_id``) → its own determination above species
    (:func:`~biodiscover.storage.records.determination`), by the assignment the detail shows for it
    (:func:`members_assignment`); None where some member has no assignment: the run never assessed it, so
    nothing says where it is named (a candidate written without its run's assignments).

    Why: what a split places each part by (:func:`split_off`), as triage placed the whole."""
    A = ASSIGNMENTS
    ranks = ("order", "family", "subfamily", "genus", "species")
    q = (sa.select(MEMBERS.c.processid, A.c.run_id, A.c.deepest_rank, A.c.deepest_taxon,
                   *[A.c[f"label_{rk}"] for rk in ranks])
         .select_from(MEMBERS).outerjoin(A, members_assignment(run_id)).where(MEMBERS.c.proposal_id == proposal_id))
    out: dict[str, dict[str, str]] = {}
    for m in conn.execute(q).mappings():
        if m["run_id"] is None:
            return None
        out[m["processid"]] = determination({rk: m[f"label_{rk}"] for rk in ranks}, m["deepest_rank"],
                                            m["deepest_taxon"])
    return out


def reviewer_placement(raw: Any, old_id: int) -> dict[str, Any]:
    """What a reviewer set on pending proposal ``old_id`` and is still in force: ``parent`` ((id, rank, name),
    from a move whose result the proposal still has) and ``name`` (from a rename, likewise), with the review that
    did each (``move_review``, ``rename_review``); {} for none.

    Why: a re-triage that re-clusters a pending candidate gave its successor the machine's placement and working
    name again: a reviewer's move of a fly from "Unplaced" to Diptera, or into a new provisional genus, was gone
    without a word (third real-plate review, B1; QA). A decision the reviewer undid is not in force: the
    proposal no longer holds what that review wrote."""
    now = raw.execute("SELECT parent_taxon_id, parent_rank, parent_name, provisional_name FROM proposals WHERE id = ?",
                      (old_id,)).fetchone()
    out: dict[str, Any] = {}
    for rid, action, after in raw.execute(
            "SELECT id, action, after FROM reviews WHERE proposal_id = ? AND action IN ('move', 'rename') "
            "ORDER BY id DESC", (old_id,)):
        snap = (json.loads(after) if isinstance(after, str) else after or {}).get("proposals", {}).get(str(old_id))
        if not snap:
            continue
        if action == "move" and "parent" not in out and snap.get("parent_taxon_id") == now[0]:
            out["parent"], out["move_review"] = (now[0], now[1], now[2]), int(rid)
        if action == "rename" and "name" not in out and snap.get("provisional_name") == now[3]:
            out["name"], out["rename_review"] = now[3], int(rid)
    return out


def _parts_placed(conn: Connection, r: Mapping[Any, Any], parts: Sequence[Sequence[Any]]
                  ) -> list[dict[str, Any]]:
    """Where each part of a split of proposal row ``r`` goes (``parent_taxon_id``, ``parent_rank``,
    ``parent_name``): as triage places a candidate, by its own members' determinations
    (``storage.records.placement`` over :func:`member_determinations`); the proposal's own placement for both
    where a reviewer's move of it is in force (hers, not the machine's) or where some member was never assessed.

    Why: a part inherited the whole's placement: the e33 review's split of #14 gave #284 "Chrysomya sp." whose one
    member the run named only to subfamily Chrysomyinae (F6)."""
    from biodiscover.storage.db.ingest import ensure_lineage
    from biodiscover.storage.records import placement

    own = {"parent_taxon_id": r["parent_taxon_id"], "parent_rank": r["parent_rank"], "parent_name": r["parent_name"]}
    pid = int(r["id"])
    dets = None if "parent" in reviewer_placement(dbapi(conn), pid) else \
        member_determinations(conn, pid, int(r["run_id"]))
    if dets is None:
        return [own for _ in parts]
    out = []
    for part in parts:
        lineage = placement([dets[m[0]] for m in part])
        tid = ensure_lineage(conn, lineage, {}, {}, f"run:{r['run_id']}") if lineage else None
        t = conn.execute(sa.select(TAXA.c.rank, TAXA.c.name).where(TAXA.c.id == tid)).first() if tid else None
        out.append({"parent_taxon_id": tid, "parent_rank": t.rank if t else None, "parent_name": t.name if t else None})
    return out


def split_off(conn: Connection, proposal_id: int, chosen: set[str] | frozenset[str], reviewer: str, now: str,
              note: str | None = None, evidence: Sequence[Any] | None = None, *,
              carried: Mapping[str, Any] | None = None) -> tuple[int, int, dict[str, Any]]:
    """Move the members ``chosen`` of pending proposal ``proposal_id`` into a new pending proposal of the same run,
    each part placed by :func:`_parts_placed`, logged as ``reviewer``'s split at ``now``; (review id, new proposal
    id, the after snapshot). The one split, whether a reviewer makes it (:meth:`ReviewsMixin.split`) or a later
    triage carries it (``storage.db.proposals``, with its ``carried`` record in the after snapshot), so both are
    undone the same way."""
    r = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == proposal_id)).mappings().one()
    before = _snapshot(conn, [proposal_id], evidence=True)
    members = before["proposals"][str(proposal_id)]["members"]
    have = {m[0] for m in members}
    missing = sorted(chosen - have)
    if missing:
        raise DatabaseError(f"cannot split proposal {proposal_id}: {', '.join(missing[:5])} "
                            "not among its members")
    if not chosen or chosen == have:
        raise DatabaseError(f"cannot split proposal {proposal_id}: pick some but not all of its members")
    keep = [m for m in members if m[0] not in chosen]
    move = [m for m in members if m[0] in chosen]
    novelty = [_members_novelty(conn, [(r["run_id"], m[0]) for m in part]) for part in (keep, move)]
    placed = _parts_placed(conn, r, (keep, move))
    new_id = inserted_id(conn.execute(sa.insert(PROPOSALS).values(
        run_id=r["run_id"], lineage=None, version=1, status="pending", **placed[1], size=len(move),
        novelty=r["novelty"] if novelty[1] is None else novelty[1],
        **(_evidence_values(evidence[1]) if evidence is not None else {
            "nearest_species": r["nearest_species"], "nearest_identity": r["nearest_identity"],
            "evidence": {"split_from": proposal_id}}),
        created_at=now, updated_at=now)))
    conn.execute(sa.update(PROPOSALS).where(PROPOSALS.c.id == new_id).values(lineage=new_id))
    _set_members(conn, new_id, _alone(move))
    _set_members(conn, proposal_id, _alone(keep))
    _bump(conn, proposal_id, now, size=len(keep), **({} if novelty[0] is None else {"novelty": novelty[0]}),
          **(_evidence_values(evidence[0]) if evidence is not None else {}), **placed[0])
    before["proposals"][str(new_id)] = None
    after = _snapshot(conn, [proposal_id, new_id], evidence=True)
    rid = _log(conn, "split", proposal_id, reviewer, now, before, {**after, "carried": dict(carried)} if carried
               else after, note)
    conn.execute(sa.insert(EDGES).values(kind="split", source_id=proposal_id, target_id=new_id,
                                         review_id=rid, created_at=now, detail={"members": sorted(chosen)}))
    return rid, new_id, after


def _reopen_one(conn: Connection, r: Mapping[Any, Any], reviewer: str, note: str | None, follows: int | None = None
                ) -> tuple[int, dict[str, Any]]:
    """Reopen decided proposal row ``r`` (see :meth:`ReviewsMixin.reopen`): (the reopen's review id, its after
    snapshot). ``follows``: the reopen this one follows from (its ``after["follows"]``, what undoing that reopen
    undoes with it: :func:`_follow_ups`)."""
    proposal_id = int(r["id"])
    decision = _decision_in_force(conn, proposal_id)
    then_before: Mapping[str, Any] = {}
    then_after: Mapping[str, Any] = {}
    made: list[int] = []
    if decision is not None:
        then_before = ((decision["before"] or {}).get("proposals") or {}).get(str(proposal_id)) or {}
        then_after = ((decision["after"] or {}).get("proposals") or {}).get(str(proposal_id)) or {}
        made = [int(k) for k, t in ((decision["before"] or {}).get("taxa") or {}).items() if t is None]
    if r["status"] == "accepted" and r["taxon_id"] and r["taxon_id"] not in made:
        made.append(int(r["taxon_id"]))  # the species its acceptance made (a log without snapshots)
    named = conn.execute(sa.select(PROPOSALS.c.id, TAXA.c.name).join(TAXA, TAXA.c.id == PROPOSALS.c.taxon_id)
                         .where(PROPOSALS.c.taxon_id.in_(made), PROPOSALS.c.id != proposal_id,
                                PROPOSALS.c.status == "assigned").order_by(PROPOSALS.c.id)).first() \
        if made else None
    if named is not None:
        raise DatabaseError(f"cannot reopen proposal {proposal_id}: proposal {named.id} was assigned to "
                            f"{named.name} since; reopen that one first")
    now = utcnow()
    before = _snapshot(conn, [proposal_id], made)
    values: dict[str, Any] = {"status": "pending", "taxon_id": None}
    for f in SNAP_FIELDS:
        if f in ("status", "taxon_id", "version") or f not in then_before:
            continue
        if then_before[f] == then_after.get(f):
            continue  # the decision did not change it
        if (r["status"] == "assigned" and f in FOLLOWS_TAXON) or r[f] == then_after.get(f):
            values[f] = then_before[f]  # an assigned proposal's name and place are its species'
    _bump(conn, proposal_id, now, **values)
    for tid in made:
        conn.execute(sa.update(TAXA).where(TAXA.c.id == tid).values(status="rejected"))
    after = _snapshot(conn, [proposal_id], made)
    logged = after if follows is None else {**after, "follows": follows}
    rid = _log(conn, "reopen", proposal_id, reviewer, now, before, logged, note,
               target=None if decision is None else int(decision["id"]))
    return rid, after


def _follow_ups(conn: Connection, review_id: int) -> list[tuple[int, int]]:
    """(review id, proposal id) of the reopens that followed from reopen ``review_id`` (a rejection's repetitions,
    :meth:`ReviewsMixin.reopen`), newest first. Rows written before the link was recorded are known by the note
    the reopen wrote on them."""
    said = f"follows from reopening #% (review {review_id}): %"
    rows = conn.execute(sa.select(REVIEWS.c.id, REVIEWS.c.proposal_id).where(
        REVIEWS.c.action == "reopen", REVIEWS.c.id > review_id,
        sa.or_(sa.func.json_extract(REVIEWS.c.after, "$.follows") == review_id, REVIEWS.c.note.like(said)))
        .order_by(REVIEWS.c.id.desc()))
    return [(int(rid), int(pid)) for rid, pid in rows]


def _repeated_rejections(conn: Connection, proposal_id: int) -> list[int]:
    """:meth:`ReviewsMixin.repeated_rejections` inside a transaction: the ``recognised`` edges from
    ``proposal_id`` to rejected candidates whose rejection in force was carried from it, and theirs in turn."""
    out: list[int] = []
    todo = [proposal_id]
    while todo:
        source = todo.pop(0)
        for (target,) in conn.execute(sa.select(EDGES.c.target_id).join(PROPOSALS, PROPOSALS.c.id == EDGES.c.target_id)
                                      .where(EDGES.c.source_id == source, EDGES.c.kind == "recognised",
                                             PROPOSALS.c.status == "rejected").order_by(EDGES.c.target_id)):
            decision = _decision_in_force(conn, int(target))
            how = carried(decision) if decision is not None and decision["action"] == "reject" else None
            if how is not None and how.source == source and int(target) not in out:
                out.append(int(target))
                todo.append(int(target))
    return out


def _undo_one(conn: Connection, review_id: int, reviewer: str, note: str | None) -> ReviewResult:
    """:meth:`ReviewsMixin.undo` of one review inside a transaction; raises before it writes anything when the
    review cannot be undone (``StaleProposalError``), so a caller may try another."""
    rv = conn.execute(sa.select(REVIEWS).where(REVIEWS.c.id == review_id)).mappings().first()
    if rv is None:
        raise DatabaseError(f"no review {review_id}")
    after, before = rv["after"], rv["before"]
    pids = [int(k) for k in after["proposals"]]
    tids = [int(k) for k in after.get("taxa", {})]
    with_evidence = any(isinstance(v, dict) and "evidence" in v for v in before["proposals"].values())
    now_snap = _snapshot(conn, pids, tids, evidence=with_evidence)
    for k, snap in after["proposals"].items():
        cur = now_snap["proposals"][k]
        if snap is not None and cur is not None:
            cur = {f: v for f, v in cur.items() if f in snap}  # compare what that review recorded
        if _content(snap) != _content(cur):
            raise StaleProposalError(
                f"cannot undo review {review_id} ({rv['action']}): proposal {k} changed after it "
                f"(version {snap['version'] if snap else '-'} then, {cur['version'] if cur else '-'} now); "
                "undo the later reviews first")
    made = [k for k in tids if before.get("taxa", {}).get(str(k)) is None]  # taxa that review created
    named = conn.execute(sa.select(PROPOSALS.c.id, TAXA.c.name).join(TAXA, TAXA.c.id == PROPOSALS.c.taxon_id)
                         .where(PROPOSALS.c.taxon_id.in_(made), PROPOSALS.c.id.notin_(pids),
                                PROPOSALS.c.status == "assigned")).first() if made else None
    if named is not None:
        raise StaleProposalError(
            f"cannot undo review {review_id} ({rv['action']}): proposal {named.id} was assigned to "
            f"{named.name} since; undo that assignment first")
    # a genus that review made holds other candidates or taxa since: taking it out would orphan them (a
    # rejected one too: undoing its rejection brought it back under a genus the taxonomy no longer had)
    # (a merged one too: undoing its merge brought it back pending under a rejected genus)
    inside = conn.execute(sa.select(PROPOSALS.c.id, PROPOSALS.c.status, PROPOSALS.c.merged_into, TAXA.c.name)
                          .join(TAXA, TAXA.c.id == PROPOSALS.c.parent_taxon_id).where(
        PROPOSALS.c.parent_taxon_id.in_(made), PROPOSALS.c.id.notin_(pids),
        PROPOSALS.c.status.in_((*LIVE_STATUSES, "merged"))).order_by(PROPOSALS.c.id)).first() \
        if made else None
    below = conn.execute(sa.select(TAXA.c.name).where(
        TAXA.c.parent_id.in_(made), TAXA.c.id.notin_(tids), TAXA.c.status != "rejected")).first() \
        if made else None
    if inside is not None and inside.status == "merged":
        raise StaleProposalError(f"cannot undo review {review_id} ({rv['action']}): proposal {inside.id} was "
                                 f"placed in {inside.name} and merged into proposal {inside.merged_into} "
                                 "since; undo that merge first")
    if inside is not None or below is not None:
        what = f"proposal {inside.id} was placed in {inside.name}" if inside is not None else \
            f"taxon {below.name if below is not None else '?'} was placed in it"
        raise StaleProposalError(f"cannot undo review {review_id} ({rv['action']}): {what} since; "
                                 "move that elsewhere or undo it first")
    now = utcnow()
    if rv["action"] not in ("note", "withdraw"):  # they changed no proposal: nothing to restore
        for k, target in before["proposals"].items():
            pid = int(k)
            if target is None:
                _set_members(conn, pid, [])
                _bump(conn, pid, now, status="withdrawn", size=0)
                conn.execute(sa.insert(EDGES).values(kind="undo", source_id=pid, target_id=None,
                                                     created_at=now, detail={"review": review_id}))
                continue
            # snapshots written by older versions lack newer fields: restore what they hold
            values = {f: target[f] for f in SNAP_FIELDS if f != "version" and f in target}
            if "evidence" in target:
                values["evidence"] = target["evidence"]
            _bump(conn, pid, now, **values)
            _set_members(conn, pid, target["members"])
        for k in tids:
            target = before.get("taxa", {}).get(str(k))
            if target is None:
                conn.execute(sa.update(TAXA).where(TAXA.c.id == k).values(status="rejected"))
            else:
                conn.execute(sa.update(TAXA).where(TAXA.c.id == k).values(**target))
        # a restored assignment takes its species' name as it is now, not as it was then
        assigned = {t["taxon_id"] for t in before["proposals"].values()
                    if t is not None and t.get("status") == "assigned" and t.get("taxon_id")}
        for k in tids:
            _refuse_namesake(conn, k, f"undo review {review_id} ({rv['action']})")
        for k in sorted(set(tids) | assigned):
            _follow_taxon(conn, k)
    restored = _snapshot(conn, pids, tids, evidence=with_evidence)
    rid = _log(conn, "undo", rv["proposal_id"], reviewer, now, now_snap, restored, note, target=review_id)
    return ReviewResult(rid, "undo", rv["proposal_id"], _versions(restored))


class ReviewsMixin(DatabaseCore):
    """Review actions; see the module docstring."""

    def _review(self, fn: Any, what: str) -> ReviewResult:
        result: ReviewResult = self._write(fn, f"record a review ({what})")
        log.info("review %d: %s on proposal %s", result.review_id, result.action, result.proposal_id)
        return result

    def taken_names(self) -> dict[str, str]:
        """Lower-cased name → ``genus Amaxia (under subfamily Arctiinae)`` of every taxon above species: what a new
        taxon may not be called (:func:`new_taxon_problem`), for the review app to say so before it writes."""
        with self._read() as conn:
            return _taken_names(conn)

    def provisional_taxa(self) -> frozenset[int]:
        """Ids of the provisional taxa (a genus a reviewer made, a species a reviewer accepted): the queue marks a
        candidate placed in one (◆) without loading the whole taxonomy for each page."""
        with self._read() as conn:
            q = sa.select(TAXA.c.id).where(TAXA.c.status == "provisional")
            return frozenset(int(t) for (t,) in conn.execute(q))

    def provisional_concepts(self) -> dict[str, int]:
        """Provisional species name → the id of the candidate whose acceptance made it (the candidate's concept: what
        a later run's specimens named that species point to in the exports' ``taxonConceptID``).

        Why: week 2's specimens the machine named *Hemiceras* sp. BD-0001 were exported with no concept, week 1's
        members with the candidate's, so GBIF could not join the weekly datasets on the species (the weekly-batch
        review). The current name: a run after a rename names the species by it."""
        q = (sa.select(TAXA.c.name, PROPOSALS.c.id).select_from(PROPOSALS).join(TAXA, TAXA.c.id == PROPOSALS.c.taxon_id)
             .where(PROPOSALS.c.status == "accepted", TAXA.c.rank == "species", TAXA.c.status == "provisional")
             .order_by(PROPOSALS.c.id))
        with self._read() as conn:
            out: dict[str, int] = {}
            for name, pid in conn.execute(q):
                out.setdefault(str(name), int(pid))  # two accepted candidates of one name: the first made it
            return out

    def suggest_name(self, proposal_id: int) -> str:
        """The name :meth:`accept` would give now (not reserved: the counter moves only on accept)."""
        with self._read() as conn:
            row = conn.execute(sa.select(PROPOSALS.c.parent_name, PROPOSALS.c.parent_rank)
                               .where(PROPOSALS.c.id == proposal_id)).first()
            return suggest_name_in(conn, row[0] if row else None, row[1] if row else None)

    def accept(self, proposal_id: int, expected_version: int, name: str | None = None, *, reviewer: str,
               note: str | None = None) -> ReviewResult:
        """Accept a candidate: it becomes a provisional species under its parent taxon."""
        def _do(conn: Connection) -> ReviewResult:
            r = _load_checked(conn, proposal_id, expected_version, ("pending",), "accept")
            now = utcnow()
            before = _snapshot(conn, [proposal_id])
            final = (name or "").strip() or format_name(r["parent_name"], _next_number(conn), r["parent_rank"])
            if name:
                problem = _accepted_name_problem(conn, final, r["parent_taxon_id"])
                if problem is not None:
                    raise DatabaseError(f"cannot accept proposal {proposal_id} as {final!r}: {problem}")
                _advance_counter_past(conn, final)
            clash = _namesake(conn, final, r["parent_taxon_id"])
            if clash is not None:
                raise DatabaseError(f"cannot accept proposal {proposal_id} as {final!r}: taxon {clash} already has "
                                    "that name under the same parent; choose another name")
            tid = inserted_id(conn.execute(sa.insert(TAXA).values(
                rank="species", name=final, parent_id=r["parent_taxon_id"], status="provisional", source="review",
                proposal_id=proposal_id, created_at=now)))
            _bump(conn, proposal_id, now, status="accepted", taxon_id=tid, provisional_name=final)
            before["taxa"][str(tid)] = None
            after = _snapshot(conn, [proposal_id], [tid])
            rid = _log(conn, "accept", proposal_id, reviewer, now, before, after, note)
            return ReviewResult(rid, "accept", proposal_id, _versions(after), taxon_id=tid, name=final)

        return self._review(_do, "accept")

    def reject(self, proposal_id: int, expected_version: int, *, reviewer: str,
               note: str | None = None) -> ReviewResult:
        def _do(conn: Connection) -> ReviewResult:
            _load_checked(conn, proposal_id, expected_version, ("pending",), "reject")
            now = utcnow()
            before = _snapshot(conn, [proposal_id])
            _bump(conn, proposal_id, now, status="rejected")
            after = _snapshot(conn, [proposal_id])
            rid = _log(conn, "reject", proposal_id, reviewer, now, before, after, note)
            return ReviewResult(rid, "reject", proposal_id, _versions(after))

        return self._review(_do, "reject")

    def assign(self, proposal_id: int, expected_version: int, species_taxon: int | str | None, *, reviewer: str,
               note: str | None = None, new_species: str | None = None) -> ReviewResult:
        """Identify a candidate as a known species: its members are named as that species.

        ``species_taxon``: the id (or unique name) of a ``species`` taxon that is not
        provisional-from-this-proposal or rejected. The proposal closes as
        ``assigned`` under the species' parent, carrying the species' name.

        ``new_species`` (``species_taxon`` None): first make a species of that name, status ``described``, under
        the genus its name begins with (:func:`described_species_problem` says when it cannot be). Why: the
        commonest candidate of a tropical plate is a described species the reference lacks (371 specimens of
        *Aedes aegypti* with every key of it out of the reference); accepted as a new species it went to GBIF as
        "Aedes sp., provisional" and "Aedes aegypti" at once. Undo takes the species out again (status rejected).
        """
        if (species_taxon is None) == (new_species is None):
            raise ValueError("assign needs a known species or the name of a described one to add, not both")

        def _do(conn: Connection) -> ReviewResult:
            _load_checked(conn, proposal_id, expected_version, ("pending",), "assign")
            now = utcnow()
            before = _snapshot(conn, [proposal_id])
            taxa: list[int] = []
            if new_species is not None:
                problem, genus = _described_species_problem(conn, new_species)
                if problem is not None:
                    raise DatabaseError(f"cannot assign proposal {proposal_id} to a described species: {problem}")
                made = inserted_id(conn.execute(sa.insert(TAXA).values(
                    rank="species", name=" ".join(new_species.split()), parent_id=genus, status=DESCRIBED,
                    source="review", created_at=now)))
                before["taxa"][str(made)] = None
                taxa.append(made)
            chosen = taxa[0] if taxa else species_taxon
            assert chosen is not None  # one of the two, checked above
            t = _find_taxon(conn, chosen, "assign")
            if t.rank != "species" or t.status == "rejected":
                raise DatabaseError(f"cannot assign proposal {proposal_id} to {t.rank} {t.name!r}: pick a species")
            parent = conn.execute(sa.select(TAXA.c.id, TAXA.c.rank, TAXA.c.name).where(
                TAXA.c.id == t.parent_id)).first() if t.parent_id is not None else None
            _bump(conn, proposal_id, now, status="assigned", taxon_id=t.id, provisional_name=t.name,
                  parent_taxon_id=parent.id if parent else None, parent_rank=parent.rank if parent else None,
                  parent_name=parent.name if parent else None)
            after = _snapshot(conn, [proposal_id], taxa)
            rid = _log(conn, "assign", proposal_id, reviewer, now, before, after, note)
            return ReviewResult(rid, "assign", proposal_id, _versions(after), taxon_id=t.id, name=t.name,
                                parent=(parent.rank, parent.name) if parent else None)

        return self._review(_do, "assign")

    def known_species(self, search: str = "", limit: int = 200, near: str | None = None) -> list[tuple[int, str]]:
        """(taxon id, ``name  (family › genus)``) of known species matching ``search`` (case-insensitive
        substring), ``near``'s genus first when given: what "assign to a known species" offers — the
        reference's species, the provisional ones reviewers accepted (a later candidate of an accepted
        one, such as a fourth specimen triaged apart, is assigned to it, not accepted twice) and the described ones
        reviewers added (a second candidate of *Aedes aegypti* goes to the one the first made)."""
        from biodiscover.storage.db.taxonomy import lineage_labels

        with self._read() as conn:
            q = sa.select(TAXA.c.id, TAXA.c.name, TAXA.c.parent_id).where(
                TAXA.c.rank == "species", TAXA.c.status.in_(("accepted", "provisional", DESCRIBED)))
            if search:
                q = q.where(TAXA.c.name.ilike(f"%{search}%"))
            rows = conn.execute(q.order_by(TAXA.c.name).limit(max(limit, 1) * 4)).all()
            labels = lineage_labels(conn, {r.parent_id for r in rows if r.parent_id is not None})
        genus = near.split()[0] if near else None
        rows = sorted(rows, key=lambda r: (r.name != near, not (genus and r.name.startswith(genus + " ")), r.name))
        return [(r.id, r.name + (f"  ({labels[r.parent_id]})" if r.parent_id in labels else "")) for r in rows[:limit]]

    def merge(self, proposal_ids: Sequence[int], expected_versions: Sequence[int] | Mapping[int, int], *,
              reviewer: str, note: str | None = None, parent: int | None = None,
              evidence: Any = None) -> ReviewResult:
        """Fold ``proposal_ids[1:]`` into ``proposal_ids[0]`` (members united, highest probability kept).

        Candidates of different parents end under their lowest common taxon (or
        ``parent``, a taxon id); ``evidence``: the evidence recomputed for the merged
        members (an :class:`~biodiscover.storage.evidence.Evidence` or its dict).
        """
        ids = list(dict.fromkeys(int(i) for i in proposal_ids))
        if len(ids) < 2:
            raise ValueError("merge needs at least two different proposals")
        expected = dict(expected_versions) if isinstance(expected_versions, Mapping) else dict(
            zip(ids, expected_versions))
        if set(expected) != set(ids):
            raise ValueError("merge needs the expected version of every proposal")

        def _do(conn: Connection) -> ReviewResult:
            for pid in ids:
                _load_checked(conn, pid, expected[pid], ("pending",), "merge")
            now = utcnow()
            target = ids[0]
            before = _snapshot(conn, ids, evidence=True)
            runs = {int(i): int(run) for i, run in conn.execute(
                sa.select(PROPOSALS.c.id, PROPOSALS.c.run_id).where(PROPOSALS.c.id.in_(ids)))}
            best: dict[str, list[Any]] = {}
            came_from: dict[str, int] = {}
            for pid in ids:
                for m in before["proposals"][str(pid)]["members"]:
                    cur = best.get(m[0])
                    if cur is None or (m[2] or 0) > (cur[2] or 0):
                        best[m[0]], came_from[m[0]] = m, runs[pid]
            _set_members(conn, target, sorted(best.values()))
            where = _merged_parent(conn, [before["proposals"][str(i)]["parent_taxon_id"] for i in ids], parent)
            values: dict[str, Any] = {"size": len(best)}
            novelty = _members_novelty(conn, [(came_from[m], m) for m in best])
            if novelty is not None:
                values["novelty"] = novelty
            if where is not None:
                values.update(parent_taxon_id=where[0], parent_rank=where[1], parent_name=where[2])
            if evidence is not None:
                values.update(_evidence_values(evidence))
            _bump(conn, target, now, **values)
            for pid in ids[1:]:
                _bump(conn, pid, now, status="merged", merged_into=target)
            after = _snapshot(conn, ids, evidence=True)
            rid = _log(conn, "merge", target, reviewer, now, before, after, note)
            for pid in ids[1:]:
                conn.execute(sa.insert(EDGES).values(kind="merge", source_id=pid, target_id=target, review_id=rid,
                                                     created_at=now, detail={}))
            t = after["proposals"][str(target)]
            return ReviewResult(rid, "merge", target, _versions(after), parent=(t["parent_rank"], t["parent_name"]))

        return self._review(_do, "merge")

    def merge_places(self, target: int, others: Sequence[int]) -> dict[int, tuple[int | None, str | None, str | None]]:
        """Proposal id of each of ``others`` → (taxon id, rank, name) of where :meth:`merge` of it into ``target``
        (no ``parent`` chosen) would place the merged candidate, by the rule it applies (:func:`_merged_parent`);
        (None, None, None): unplaced. Ids that are no proposal are left out.

        Why asked, not worked out beside it: the review's merge list said of an unplaced candidate "no taxon in
        common: the merged candidate would be unplaced", and the merge then kept the target's family (e36 season
        review, finding 7): an unplaced candidate takes no place away."""
        ids = [int(target), *(int(o) for o in others)]
        with self._read() as conn:
            rows = {int(i): (pt, rank, name) for i, pt, rank, name in conn.execute(
                sa.select(PROPOSALS.c.id, PROPOSALS.c.parent_taxon_id, PROPOSALS.c.parent_rank,
                          PROPOSALS.c.parent_name).where(PROPOSALS.c.id.in_(sorted(set(ids)))))}
            if int(target) not in rows:
                return {}
            here = rows[int(target)]
            out: dict[int, tuple[int | None, str | None, str | None]] = {}
            for o in ids[1:]:
                if o not in rows:
                    continue
                where = _merged_parent(conn, [here[0], rows[o][0]], None)
                out[o] = (here[0], here[1], here[2]) if where is None else where
            return out

    def split(self, proposal_id: int, expected_version: int, member_ids: Sequence[str], *, reviewer: str,
              note: str | None = None, evidence: Sequence[Any] | None = None) -> ReviewResult:
        """Move ``member_ids`` out of a proposal into a new pending proposal of the same run, each part placed by its
        own members unless a reviewer placed the whole (:func:`_parts_placed`).

        ``evidence``: (evidence of the members that stay, evidence of the members split off),
        recomputed from each member list by the caller.
        """
        chosen = set(member_ids)

        def _do(conn: Connection) -> ReviewResult:
            _load_checked(conn, proposal_id, expected_version, ("pending",), "split")
            rid, new_id, after = split_off(conn, proposal_id, chosen, reviewer, utcnow(), note, evidence)
            return ReviewResult(rid, "split", proposal_id, _versions(after), new_proposal_id=new_id)

        return self._review(_do, "split")

    def move(self, proposal_id: int, expected_version: int, new_parent_taxon: int | str | None, *, reviewer: str,
             note: str | None = None, new_taxon: str | None = None, described: bool = False) -> ReviewResult:
        """Place a proposal (and its provisional taxon, if accepted) under another parent taxon (id or name).

        ``new_taxon``: first make a taxon of that name under ``new_parent_taxon``, status ``provisional``, and place
        the proposal in it; its rank is the name's (:func:`new_taxon_rank`: an order in the class, i.e.
        ``new_parent_taxon`` None, the taxonomy's root where the reference's orders are, a family in an order, a
        subfamily in a family, a genus in an order, family or subfamily). Why: 209 of 1,200 specimens of a real
        Costa Rican plate were of genera the reference lacks, 92 of an Australian plate of families it lacks, and a
        taxonomist who knew the taxon could only place them above it; 450 beetles of an order it lacked (e33 F1).
        Undo takes the taxon out again (status rejected, as an accepted species' taxon).

        ``described``: the new taxon is a published one the reference lacks (*Cleora* Curtis, 1825), status
        ``described``, not provisional: the exports name it as any genus, and say no reference key stood behind it.
        """
        def _do(conn: Connection) -> ReviewResult:
            r = _load_checked(conn, proposal_id, expected_version, ("pending", "accepted"), "move")
            # an order a reviewer adds goes in the class: no taxon above it, as the reference's own orders
            t: Any = None if new_parent_taxon is None and new_taxon is not None else \
                _find_taxon(conn, new_parent_taxon, "move")
            if t is None and new_taxon is not None and new_taxon_rank(new_taxon) != "order":
                raise DatabaseError(f"cannot move proposal {proposal_id} into a new {new_taxon_rank(new_taxon)} "
                                    f"{new_taxon.strip()}: say which taxon it goes under (only an order goes under "
                                    "the class)")
            now = utcnow()
            taxa = [r["taxon_id"]] if r["taxon_id"] else []
            before = _snapshot(conn, [proposal_id], taxa)
            if new_taxon is not None:
                problem = new_taxon_problem(new_taxon, t.rank if t is not None else "class",
                                            _taken_names(conn, new_taxon), described)
                if problem is not None:
                    raise DatabaseError(f"cannot move proposal {proposal_id} into a new "
                                        f"{new_taxon_rank(new_taxon)}: {problem}")
                gid = inserted_id(conn.execute(sa.insert(TAXA).values(
                    rank=new_taxon_rank(new_taxon), name=new_taxon.strip(), parent_id=None if t is None else t.id,
                    status=DESCRIBED if described else "provisional", source="review", created_at=now)))
                before["taxa"][str(gid)] = None
                taxa.append(gid)
                t = _find_taxon(conn, gid, "move")
            _bump(conn, proposal_id, now, parent_taxon_id=t.id, parent_rank=t.rank, parent_name=t.name)
            if r["taxon_id"]:
                conn.execute(sa.update(TAXA).where(TAXA.c.id == r["taxon_id"]).values(parent_id=t.id))
                _refuse_namesake(conn, r["taxon_id"], f"move proposal {proposal_id} under {t.name}")
                _follow_taxon(conn, r["taxon_id"])
            after = _snapshot(conn, [proposal_id], taxa)
            rid = _log(conn, "move", proposal_id, reviewer, now, before, after, note)
            return ReviewResult(rid, "move", proposal_id, _versions(after), taxon_id=r["taxon_id"],
                                parent=(t.rank, t.name))

        return self._review(_do, "move")

    def rename(self, proposal_id: int, expected_version: int, name: str, *, reviewer: str,
               note: str | None = None) -> ReviewResult:
        name = name.strip()
        if not name:
            raise ValueError("a new name cannot be empty")

        def _do(conn: Connection) -> ReviewResult:
            r = _load_checked(conn, proposal_id, expected_version, ("pending", "accepted"), "rename")
            problem = _accepted_name_problem(conn, name, r["parent_taxon_id"])
            if problem is not None:
                raise DatabaseError(f"cannot rename proposal {proposal_id} to {name!r}: {problem}")
            now = utcnow()
            taxa = [r["taxon_id"]] if r["taxon_id"] else []
            before = _snapshot(conn, [proposal_id], taxa)
            _advance_counter_past(conn, name)
            _bump(conn, proposal_id, now, provisional_name=name)
            if r["taxon_id"]:
                conn.execute(sa.update(TAXA).where(TAXA.c.id == r["taxon_id"]).values(name=name))
                _refuse_namesake(conn, r["taxon_id"], f"rename proposal {proposal_id} to {name!r}")
                _follow_taxon(conn, r["taxon_id"])
            after = _snapshot(conn, [proposal_id], taxa)
            rid = _log(conn, "rename", proposal_id, reviewer, now, before, after, note)
            return ReviewResult(rid, "rename", proposal_id, _versions(after), taxon_id=r["taxon_id"], name=name)

        return self._review(_do, "rename")

    def note(self, proposal_id: int, text: str, *, reviewer: str, expected_version: int | None = None
             ) -> ReviewResult:
        """Attach a free-text note (changes nothing else; the version stays)."""
        def _do(conn: Connection) -> ReviewResult:
            r = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == proposal_id)).mappings().first()
            if r is None:
                raise DatabaseError(f"no proposal {proposal_id}")
            if expected_version is not None and r["version"] != expected_version:
                raise StaleProposalError("cannot note: " + _describe_stale(conn, r, expected_version))
            now = utcnow()
            snap = _snapshot(conn, [proposal_id])
            rid = _log(conn, "note", proposal_id, reviewer, now, snap, snap, text)
            return ReviewResult(rid, "note", proposal_id, _versions(snap))

        return self._review(_do, "note")

    def withdraw_note(self, review_id: int, expected_version: int, *, reviewer: str,
                      note: str | None = None) -> ReviewResult:
        """Take back note ``review_id``: its author only, from any session. A ``withdraw`` row targets it (the note
        stays in the log, out of force, as an undo's target; undoing the withdrawal puts it back); the exports stop
        quoting it and a later run no longer carries it to the candidate its specimens come back in.
        ``expected_version``: the candidate's version the reviewer saw, checked as for every review (a note changes
        no version, so neither does its withdrawal).

        Why: a note written on the wrong candidate (the next one had opened after a decision) could not be removed
        once the review app was closed: undo is per session, and every export quoted it on a specimen it does not
        describe ("W2: +4 ex. (ex-#5) merged" on a *Harpalus latus*, e29 F2)."""
        def _do(conn: Connection) -> ReviewResult:
            rv = conn.execute(sa.select(REVIEWS).where(REVIEWS.c.id == review_id)).mappings().first()
            if rv is None:
                raise DatabaseError(f"no review {review_id}")
            pid = rv["proposal_id"]
            if rv["action"] != "note" or pid is None:
                raise DatabaseError(f"cannot withdraw review {review_id}: it is a {rv['action']}, not a note")
            r = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == pid)).mappings().first()
            if r is None:
                raise DatabaseError(f"no proposal {pid}")
            if r["version"] != expected_version:
                raise StaleProposalError("cannot withdraw the note: " + _describe_stale(conn, r, expected_version))
            if rv["reviewer"] != reviewer:
                raise DatabaseError(f"cannot withdraw note {review_id} on proposal {pid}: it is {rv['reviewer']}'s; "
                                    "only its author withdraws it")
            rows = [dict(x) for x in conn.execute(sa.select(REVIEWS).where(REVIEWS.c.proposal_id == pid)
                                                  .order_by(REVIEWS.c.id)).mappings()]
            if review_id not in {x["id"] for x in notes_in_force(rows)}:
                raise DatabaseError(f"cannot withdraw note {review_id} on proposal {pid}: it is withdrawn already")
            now = utcnow()
            snap = _snapshot(conn, [pid])
            rid = _log(conn, "withdraw", pid, reviewer, now, snap, snap, note, target=review_id)
            return ReviewResult(rid, "withdraw", pid, _versions(snap))

        return self._review(_do, "withdraw")

    def undo(self, review_id: int, *, reviewer: str, note: str | None = None) -> ReviewResult:
        """Append an ``undo`` that restores what review ``review_id`` changed (see module docstring).

        Undoing a reopen also undoes the reopens that followed from it (:meth:`reopen`: a rejection's repetitions),
        in the same transaction, each as an undo row of its own on its candidate; a repetition she has decided
        anew since keeps her later decision (``ReviewResult.kept``), as does one whose reopen was undone already.
        Why: ``R`` reopened #10 with #13 and #16 in one key, and ``u`` put back only #10's rejection, leaving the
        database's repetitions of it pending in the queue (e30)."""
        def _do(conn: Connection) -> ReviewResult:
            row = conn.execute(sa.select(REVIEWS.c.action, REVIEWS.c.proposal_id)
                               .where(REVIEWS.c.id == review_id)).first()
            restored: list[int] = []
            kept: list[int] = []
            if row is not None and row.action == "reopen":
                for follow, pid in _follow_ups(conn, review_id):
                    try:
                        _undo_one(conn, follow, reviewer, f"follows from undoing review {review_id} (the reopen "
                                                          f"of #{row.proposal_id})")
                        restored.append(pid)
                    except StaleProposalError:
                        kept.append(pid)
            done = _undo_one(conn, review_id, reviewer, note)
            return replace(done, restored=tuple(restored), kept=tuple(kept))

        return self._review(_do, "undo")

    def decision_in_force(self, proposal_id: int) -> dict[str, Any] | None:
        """The accept / reject / assign in force on ``proposal_id`` (its log row: ``id``, ``action``, ``reviewer``,
        ``created_at``, ``note`` …), or None: for the review app to say who decided what, and why, before it
        offers to reopen."""
        with self._read() as conn:
            return _decision_in_force(conn, proposal_id)

    def repeated_rejections(self, proposal_id: int) -> list[int]:
        """The later candidates whose rejection in force is the database's repetition of ``proposal_id``'s (a later
        run proposed exactly its specimens again and carried the rejection, ``storage.db.proposals``), and theirs in
        turn, oldest first: what :meth:`reopen` reopens with it, for the review app to name before it asks."""
        with self._read() as conn:
            return _repeated_rejections(conn, proposal_id)

    def reopen(self, proposal_id: int, expected_version: int, *, reviewer: str,
               note: str | None = None) -> ReviewResult:
        """Take back the decision in force on an accepted, rejected or assigned proposal: it is pending again and
        can be decided anew. Logged as a ``reopen`` row that targets that decision (which stays in the log, out of
        force, as an undo's target); undoing the reopen brings the decision back, and its repetitions' (below).

        What the decision changed is restored from its ``before`` snapshot where nothing changed it since (the name
        an accept gave; the name and place an assign gave, which are its species'); what later reviews changed is
        kept (a rename or move of an accepted species). The species an accept made, or a described one an assign
        added, is taken out (status rejected), as undo does; refused while another proposal is assigned to it.

        A rejection's repetitions are reopened with it (:meth:`repeated_rejections`: a later run that proposed the
        very specimens again rejected its candidate citing this rejection), each as a ``reopen`` row of its own
        (same reviewer, its note naming the reopen it follows from; ``ReviewResult.reopened``), so any can be undone
        alone. Why reopen them rather than ask: they are not decisions of their own but the database repeating hers
        on the same specimens; a taxonomist who takes back her rejection takes back her word on those specimens,
        and left in force they would still read "rejected by Kari Nordmann" in the later runs' exports and stay out
        of the queue, where she now means to name them (e29: reopening week 3's rejected bad read #10 left #13, its
        re-run's auto-rejection, rejected). The candidates then stand pending side by side, twins (≡) in the queue.

        Why: undo is per session, so a rejection made last week could not be corrected: a taxonomist who found the
        rejected haplogroup was *Brachypogon incompletus* after all was let pick and confirm the species, then told
        "it is rejected (undo that decision first)", and ``u`` said "nothing to undo in this session" (e29 F2)."""
        def _do(conn: Connection) -> ReviewResult:
            r = _load_checked(conn, proposal_id, expected_version, DECIDED_STATUSES, "reopen")
            rid, after = _reopen_one(conn, r, reviewer, note)
            versions = _versions(after)
            reopened: list[int] = []
            if r["status"] == "rejected":
                for later in _repeated_rejections(conn, proposal_id):
                    row = conn.execute(sa.select(PROPOSALS).where(PROPOSALS.c.id == later)).mappings().one()
                    _reopen_one(conn, row, reviewer, f"follows from reopening #{proposal_id} (review {rid}): its "
                                                     "rejection repeated that one", follows=rid)
                    reopened.append(later)
            return ReviewResult(rid, "reopen", proposal_id, versions, reopened=tuple(reopened))

        return self._review(_do, "reopen")

    def reviews(self, proposal_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The log, newest first (all, or those of one proposal)."""
        q = sa.select(REVIEWS).order_by(REVIEWS.c.id.desc())
        if proposal_id is not None:
            q = q.where(REVIEWS.c.proposal_id == proposal_id)
        if limit is not None:
            q = q.limit(limit)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]
