"""Runs (discovery jobs) and their per-specimen assignments.

API (a mixin of :class:`biodiscover.storage.db.Database`)::

    db.start_run(kind, parameters=None, model_fingerprint=None, *, collection=None, total=None,
                 backup=True, novelty_threshold=None) -> int
    db.heartbeat(run_id, done=None, total=None, message=None) -> None
    db.finish_run(run_id, status="completed", message=None) -> None
    db.run_progress(run_id) -> RunProgress          # what the review TUI polls
    db.latest_run(kind=None) -> RunProgress | None
    db.interrupt_dead_runs(kinds, stale_after_s, message) -> list[int]   # batch ledger: pid gone / no heartbeat
    db.find_completed_run(kind, parameters={...}) -> RunProgress | None     # batch ledger: "done already?"
    db.triaged_input(checksum, model_fingerprint, level) -> RunProgress | None  # the same input triaged before?
    db.write_assignments(run_id, rows, chunk_size=2000) -> int
    db.assignments(run_id) -> pandas.DataFrame
    db.run_tables(run_id) -> dict[str, Any]        # run, specimens, assignments, proposals, members, reviews
    db.earlier_decisions(run_id) -> dict[str, Any] # earlier runs' accepted / assigned proposals of its specimens
    db.reviewed_keys(run_id) -> dict[str, dict]    # its best keys that are members of such proposals (a review's)
    db.run_figures(run_id) -> dict[str, Any]       # what a stored run named, counted again from its rows
    db.run_superseded(run_id) -> dict[str, Any]    # how many of its candidates later runs re-clustered, and which runs
    db.run_reclustered(run_id) -> list[Reclustered]  # earlier runs' pending candidates it re-clustered (#4→#33, …)
    db.earlier_runs(run_id, ids=()) -> list[EarlierRun]  # the triage of its collection before it (its model)
    db.database_id() -> str | None                 # this database's identity, kept by a copy of the file
    db.empty_failed_runs() -> list[EmptyRun]       # failed triage runs that stored nothing (db check warns)
    db.drop_empty_run(run_id) -> Path              # remove one of them (backed up first); the backup's path

Why: every prediction must be traceable to the run (parameters, model
fingerprint) that made it, like pybioclip records its settings. A run writes
a heartbeat so a reader can tell a live job from one that died
(:meth:`RunsMixin.interrupt_dead_runs`). Assignment rows are written in chunks, each
its own ``BEGIN IMMEDIATE`` transaction, so a reviewer working on the same file
waits at most one chunk; they are upserts keyed by (run, processid), so a
resumed run rewrites rather than duplicates.

An assignment row is a mapping with ``processid`` and any of ``deepest_rank``,
``deepest_taxon``, ``novelty``, ``is_novel``, ``taxon_id``, ``label_<rank>``,
``confidence_<rank>`` — or nested ``labels`` / ``confidences`` dicts keyed by
rank (order, family, subfamily, genus, species) — and what it was named from:
``modality``, ``identity``, ``overlap``, ``top_hit``, ``reason``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from biodiscover.storage.db.clock import parse, utcnow
from biodiscover.storage.db.engine import CHUNK_ROWS
from biodiscover.storage.db.core import DatabaseCore, chunked, dbapi, inserted_id, table
from biodiscover.storage.db.models import RUN_STATUSES, Assignment, Collection, Run, SpecimenRow
from biodiscover.storage.errors import DatabaseError
from biodiscover.storage.records import RANKS
from datetime import UTC

log = logging.getLogger(__name__)

RUNS = table(Run)
ASSIGNMENTS = table(Assignment)
SPECIMENS = table(SpecimenRow)
COLLECTIONS = table(Collection)
ASSIGNMENT_FIELDS: tuple[str, ...] = ("deepest_rank", "deepest_taxon", "novelty", "is_novel", "taxon_id") + tuple(
    f"label_{r}" for r in RANKS) + tuple(f"confidence_{r}" for r in RANKS) + (
    "modality", "identity", "overlap", "top_hit", "reason")


@dataclass(frozen=True)
class RunProgress:
    """A run as a progress bar sees it. ``stale`` = running but no heartbeat for ``stale_after_s``."""

    id: int
    kind: str
    status: str
    done: int
    total: int | None
    message: str | None
    model_fingerprint: str | None
    parameters: dict[str, Any]
    started_at: str
    heartbeat_at: str
    finished_at: str | None
    seconds_since_heartbeat: float
    stale: bool
    #: the novelty probability at or above which the run's engine flagged a specimen novel
    novelty_threshold: float | None = None
    #: What the finished run produced, machine-readable (``finish_run(result=…)``); {} when nothing.
    result: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    host: str | None = None

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


#: SQL: the failed or interrupted triage runs that hold no row (no assignment, proposal or history edge) and whose
#: collection no later triage completed. One owner for "a failed run that holds nothing": ``db check`` warns of
#: them (a failed triage in its first seconds left the collection untriaged and said so only on that terminal)
#: and ``db drop-run`` removes only such a run, so a removal can never take a specimen's result with it.
#: a failed or interrupted triage run that stored nothing: what ``db drop-run`` may remove
EMPTY_RUNS_SQL = (
    "SELECT r.id, r.status, r.message, c.name AS collection, json_extract(r.parameters, '$.input') AS input, "
    "r.started_at FROM runs r LEFT JOIN collections c ON c.id = r.collection_id "
    "WHERE r.kind = 'triage' AND r.status IN ('failed', 'interrupted') "
    "AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.run_id = r.id) "
    "AND NOT EXISTS (SELECT 1 FROM proposals p WHERE p.run_id = r.id) "
    "AND NOT EXISTS (SELECT 1 FROM proposal_edges e WHERE e.run_id = r.id)")
#: those of them not redone: what ``db check`` warns of
EMPTY_FAILED_RUNS_SQL = (
    EMPTY_RUNS_SQL
    # the same collection triaged again to the end: the work was redone (as db check treats an unfinished ingest)
    + " AND NOT EXISTS (SELECT 1 FROM runs l WHERE l.kind = 'triage' AND l.status = 'completed' "
    "AND l.collection_id = r.collection_id AND l.id > r.id) ORDER BY r.id")


@dataclass(frozen=True)
class EmptyRun:
    """A failed or interrupted triage run that stored nothing (:data:`EMPTY_FAILED_RUNS_SQL`)."""

    id: int
    status: str
    message: str | None
    collection: str | None
    input: str | None
    started_at: str

    def summary(self) -> str:
        """Which run, of what, and why it stopped."""
        source = ", ".join(part for part in (f"collection {self.collection}" if self.collection else "",
                                             f"input {self.input}" if self.input else "") if part)
        return (f"triage run {self.id} ({source or 'no collection'}, started {self.started_at}) is {self.status}: "
                f"{self.message or 'no message'}")

    def describe(self, db_path: Any) -> str:
        """One line for ``db check``: :meth:`summary` and the two ways out."""
        return (f"{self.summary()}; it holds no specimens: re-run the same command to triage the collection, or "
                f"`biodiscover db drop-run --db {db_path} --run {self.id}` to remove it")


_JSON_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this host (a pid we may not signal still exists)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def normalise_assignment(row: Mapping[str, Any]) -> dict[str, Any]:
    """One input row → the ``assignments`` columns (see module docstring)."""
    if "processid" not in row or not row["processid"]:
        raise ValueError(f"assignment row without processid: {dict(row)!r}")
    out: dict[str, Any] = {"processid": str(row["processid"])}
    for key in ASSIGNMENT_FIELDS:
        if key in row:
            out[key] = row[key]
    for nested, prefix in (("labels", "label_"), ("confidences", "confidence_")):
        for rank, value in (row.get(nested) or {}).items():
            if rank not in RANKS:
                raise ValueError(f"assignment for {row['processid']!r}: unknown rank {rank!r} in {nested}")
            out[prefix + rank] = value
    for key in ("novelty", "identity") + tuple(f"confidence_{r}" for r in RANKS):
        if out.get(key) is not None:
            out[key] = float(out[key])
    if out.get("overlap") is not None:
        out["overlap"] = int(out["overlap"])
    if out.get("is_novel") is not None:
        out["is_novel"] = bool(out["is_novel"])
    return out


#: The columns of ``run_tables``' ``proposals`` (see :meth:`RunsMixin.run_tables`), in order.
PROPOSAL_COLUMNS: tuple[str, ...] = (
    "proposal_id", "provisional_name", "parent_rank", "parent_taxon", "parent_status", "parent_lineage", "status",
    "version", "size", "novelty", "nearest_species", "nearest_identity", "evidence", "assigned_provisional",
    "assigned_status", "carried_from")


def _decided_by(conn: Connection, review_id: int | None) -> tuple[str | None, str | None]:
    """(who, when) of decision ``review_id``: its reviewer, or for one a later run carried (signed by the database)
    the reviewer who made it where it was made."""
    from biodiscover.storage.review_log import carried

    row = conn.execute(sa.text("SELECT action, reviewer, created_at, note, after FROM reviews WHERE id = :i"),
                       {"i": review_id}).mappings().first() if review_id is not None else None
    if row is None:
        return None, None
    how = carried(dict(row))
    if how is not None and how.reviewer:
        return how.reviewer, how.at
    return row["reviewer"], row["created_at"]


def _carried_from(conn: Connection, prop_rows: Sequence[Mapping[Any, Any]]) -> dict[int, dict[str, Any]]:
    """Assigned proposal id → the earlier candidate whose reviewer's decision the database carried to it (a later
    triage proposed exactly its specimens again, ``recognised``; ``storage.db.proposals._carry_naming``): its
    ``proposal_id``, ``run_id``, ``decision`` (accepted / assigned), ``reviewer``, ``decided_at``, and the identity
    that decision rested on: ``identity`` to ``identity_to`` (for an assignment, the members' to the species
    assigned; for an acceptance, to the nearest known species: a provisional species' keys are its own members).
    Only while the proposal is still assigned to that candidate's species (a reviewer may have reassigned it).

    Why: run 2 of a real Norwegian plate listed such a candidate as "assigned by a reviewer" with an empty identity
    (e27, F6): nothing said the word was a reviewer's on run 1's #7."""
    from biodiscover.storage.evidence import Evidence

    assigned = {int(p["id"]): p["taxon_id"] for p in prop_rows if p["status"] == "assigned"}
    out: dict[int, dict[str, Any]] = {}
    for part in chunked(sorted(assigned)):
        for row in conn.execute(sa.text(
                "SELECT e.target_id, s.id, s.run_id, s.status, s.taxon_id, s.provisional_name, s.nearest_species, "
                "s.nearest_identity, s.evidence, (SELECT r.id FROM reviews r "
                "WHERE r.proposal_id = s.id AND r.action IN ('accept', 'assign') ORDER BY r.id DESC LIMIT 1) "
                "FROM proposal_edges e JOIN proposals s ON s.id = e.source_id WHERE e.kind = 'recognised' AND "
                "s.status IN ('accepted', 'assigned') AND e.target_id IN :ids ORDER BY e.id"
        ).bindparams(sa.bindparam("ids", expanding=True)), {"ids": part}):
            target, source, run, status, taxon, name, near, near_identity, evidence, decision = row
            if taxon != assigned[int(target)]:
                continue
            reviewer, when = _decided_by(conn, decision)
            if status == "assigned":
                try:
                    identity = Evidence.from_dict(json.loads(evidence) if isinstance(evidence, str) else evidence
                                                  ).identity_to(name)
                except ValueError:  # a malformed record: the decision stands, its figure is not known
                    identity = None
                to = name
            else:
                identity, to = near_identity, near
            out[int(target)] = {"proposal_id": int(source), "run_id": int(run), "decision": str(status),
                                "reviewer": reviewer or None, "decided_at": when or None,
                                "identity": None if identity is None else float(identity), "identity_to": to}
    return out


def _proposal_records(conn: Connection, prop_rows: Sequence[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """``proposals`` rows (the export shape, :data:`PROPOSAL_COLUMNS`) of the proposal rows ``prop_rows``: where
    each is placed and what a reviewer assigned it to, read with chunked queries.

    One owner for the shape: a run's own proposals and the earlier runs' decisions on its specimens
    (:meth:`RunsMixin.earlier_decisions`) are written by the exports with the same rules."""
    from biodiscover.storage.db.models import Proposal, Taxon

    P, T = table(Proposal), table(Taxon)
    # a parent a reviewer made for a genus the reference lacks is provisional: the exports say so
    parents = sorted({p["parent_taxon_id"] for p in prop_rows if p["parent_taxon_id"] is not None})
    parent_status: dict[int, str] = {}
    for part in chunked(parents):
        parent_status.update(conn.execute(sa.select(T.c.id, T.c.status).where(T.c.id.in_(part))).all())
    # where each candidate is placed, from the order down (a reviewer's move or new genus included): the
    # exports' rank columns follow it, not the machine's labels (a genus a reviewer added reached GBIF
    # with an empty genus column and no family)
    taxa: dict[int, tuple[str, str, int | None]] = {}
    asked: set[int] = set()
    # and the species a reviewer accepted or assigned each to, with the taxa above it (``decided_lineage``)
    decided = {p["taxon_id"] for p in prop_rows if p["status"] in ("accepted", "assigned") and p["taxon_id"]}
    wanted = set(parents) | decided
    while wanted:
        asked |= wanted
        for part in chunked(sorted(wanted)):
            for tid, rank, name, up in conn.execute(sa.select(T.c.id, T.c.rank, T.c.name, T.c.parent_id)
                                                    .where(T.c.id.in_(part))):
                taxa[tid] = (rank, name, up)
        wanted = {up for _, _, up in taxa.values() if up is not None and up not in asked}

    # a candidate assigned to a species a reviewer accepted here (provisional, not a described one): which
    # candidate's acceptance made it, so the exports write its members as that candidate's are
    assigned = sorted({p["taxon_id"] for p in prop_rows if p["status"] == "assigned" and p["taxon_id"]})
    taxon_status: dict[int, str] = {}
    made_by: dict[int, int] = {}
    for part in chunked(assigned):
        taxon_status.update(conn.execute(sa.select(T.c.id, T.c.status).where(T.c.id.in_(part))).all())
        made_by.update(conn.execute(sa.select(P.c.taxon_id, sa.func.min(P.c.id)).where(
            P.c.taxon_id.in_(part), P.c.status == "accepted").group_by(P.c.taxon_id)).all())

    carried = _carried_from(conn, prop_rows)

    def placed(tid: int | None) -> dict[str, str]:
        out: dict[str, str] = {}
        while tid is not None and tid in taxa and len(out) < 64:
            rank, name, tid = taxa[tid]
            out.setdefault(rank, name)
        return out

    return [{"proposal_id": p["id"], "provisional_name": p["provisional_name"], "parent_rank": p["parent_rank"],
             "parent_taxon": p["parent_name"], "parent_status": parent_status.get(p["parent_taxon_id"]),
             "parent_lineage": placed(p["parent_taxon_id"]),
             "status": p["status"], "version": p["version"], "size": p["size"],
             "novelty": p["novelty"], "nearest_species": p["nearest_species"],
             "nearest_identity": p["nearest_identity"], "evidence": dict(p["evidence"] or {}),
             "assigned_provisional": (made_by.get(p["taxon_id"], 0) if p["status"] == "assigned"
                                      and taxon_status.get(p["taxon_id"]) == "provisional" else None),
             "assigned_status": taxon_status.get(p["taxon_id"]) if p["status"] == "assigned" else None,
             "carried_from": carried.get(int(p["id"])),
             "decided_lineage": placed(p["taxon_id"]) if p["taxon_id"] in decided else {}}
            for p in prop_rows]


def _superseded_rows(conn: Connection, *, of_run: int | None = None, by_run: int | None = None
                     ) -> list[tuple[int, int, int | None, int | None]]:
    """(candidate, its run, the candidate holding its members now, the run that re-clustered it) of each candidate
    of run ``of_run`` later runs re-clustered, or of each earlier candidate run ``by_run`` re-clustered. One a
    later run retired, triaging its members whole and proposing none, is superseded by that run and held by none.

    Why one query both ways: an export of the earlier run counts where its candidates went (:func:`_superseded`)
    and the later triage names what it re-clustered (:meth:`RunsMixin.run_reclustered`); two counts of one event
    can disagree."""
    later = ("COALESCE(s.run_id, (SELECT max(e.run_id) FROM proposal_edges e WHERE e.source_id = p.id AND "
             "e.kind = 'retired'))")
    which = ("p.run_id = :run" if of_run is not None else
             # through the later run's proposals (run index) and the edges' target index; a retired one has no target
             "p.id IN (SELECT e.source_id FROM proposals n JOIN proposal_edges e ON e.target_id = n.id AND e.kind = "
             "'recluster' WHERE n.run_id = :run UNION SELECT e.source_id FROM proposal_edges e WHERE e.kind = "
             "'retired' AND e.run_id = :run)")
    rows = conn.execute(sa.text(
        f"SELECT p.id, p.run_id, p.superseded_by, {later} FROM proposals p LEFT JOIN proposals s ON s.id = "
        f"p.superseded_by WHERE p.status = 'superseded' AND {which} ORDER BY p.id"),
        {"run": of_run if of_run is not None else by_run}).all()
    out = [(int(r[0]), int(r[1]), None if r[2] is None else int(r[2]), None if r[3] is None else int(r[3]))
           for r in rows]
    return out if by_run is None else [r for r in out if r[3] == by_run]


def _superseded(conn: Connection, run_id: int) -> dict[str, Any]:
    """How many of run ``run_id``'s candidates later runs re-clustered (``candidates``) and those runs' ids
    (``by_runs``; :func:`_superseded_rows`)."""
    rows = _superseded_rows(conn, of_run=run_id)
    return {"candidates": len(rows), "by_runs": sorted({r[3] for r in rows if r[3] is not None})}


@dataclass(frozen=True)
class EarlierRun:
    """An earlier triage run as a later one names it: its id, collection, model fingerprint and the bundle path it
    recorded."""

    id: int
    collection: str | None
    model_fingerprint: str | None
    model: str | None


@dataclass(frozen=True)
class Reclustered:
    """The pending candidates of one earlier run that a later run re-clustered (``Database.run_reclustered``)."""

    run: EarlierRun
    #: (its candidate, the later run's candidate holding its members now; None: retired, the later run named every
    #: member and proposed none of them)
    pairs: tuple[tuple[int, int | None], ...]
    #: of its candidates, those a reviewer had acted on (a move, rename, split, merge or note)
    reviewed: tuple[int, ...] = ()
    #: of ``reviewed``, those whose every review in force the later run carried onto its candidates (a move,
    #: rename, split or note is carried; a merge whose members it parted is not: ``proposals._merge_not_carried``)
    carried: tuple[int, ...] = ()


def _earlier_runs(conn: Connection, ids: Iterable[int]) -> dict[int, EarlierRun]:
    """The runs ``ids`` as :class:`EarlierRun`, by id."""
    rows = conn.execute(
        sa.select(RUNS.c.id, COLLECTIONS.c.name, RUNS.c.model_fingerprint,
                  sa.func.json_extract(RUNS.c.parameters, "$.model"))
        .select_from(RUNS.outerjoin(COLLECTIONS, COLLECTIONS.c.id == RUNS.c.collection_id))
        .where(RUNS.c.id.in_(sorted(set(ids))))).all()
    return {int(r[0]): EarlierRun(int(r[0]), r[1], r[2], None if r[3] is None else str(r[3])) for r in rows}


def _run_ingest(conn: Connection, run_id: int, started_at: Any) -> Any:
    """The ingest a run triaged: the latest finished ingest of its collection up to the run's start (its id,
    n_quarantined, quarantine_file and checksum); None for a run of no collection or one before any ingest."""
    from biodiscover.storage.db.models import Ingest

    ING = table(Ingest)
    collection = conn.execute(sa.select(RUNS.c.collection_id).where(RUNS.c.id == run_id)).scalar()
    return conn.execute(sa.select(ING.c.id, ING.c.n_quarantined, ING.c.quarantine_file, ING.c.checksum).where(
        ING.c.collection_id == collection, ING.c.status == "completed", ING.c.started_at <= started_at)
        .order_by(ING.c.id.desc()).limit(1)).first() if collection is not None else None


class RunsMixin(DatabaseCore):
    """Runs and assignments API; see the module docstring."""

    stale_after_s: float = 600.0

    def start_run(self, kind: str, parameters: Mapping[str, Any] | None = None, model_fingerprint: str | None = None,
                  *, collection: str | None = None, total: int | None = None, backup: bool = True,
                  novelty_threshold: float | None = None) -> int:
        """Record a new running job and return its id (backs the database up first when it holds data).

        ``novelty_threshold``: what the run's engine flags novel at, stored beside its ``is_novel`` decisions.
        """
        if backup:
            self._auto_backup("pre-run")
        now = utcnow()

        def _do(conn: Connection) -> int:
            cid = None
            if collection is not None:
                cid = conn.execute(sa.select(COLLECTIONS.c.id).where(COLLECTIONS.c.name == collection)).scalar()
            return inserted_id(conn.execute(sa.insert(RUNS).values(
                kind=kind, parameters=dict(parameters or {}), model_fingerprint=model_fingerprint, status="running",
                collection_id=cid, started_at=now, heartbeat_at=now, total=total, done=0, pid=os.getpid(),
                host=socket.gethostname(), novelty_threshold=novelty_threshold)))

        run_id = self._write(_do, "start the run")
        log.info("started run %d (%s)", run_id, kind)
        return run_id

    def heartbeat(self, run_id: int, done: int | None = None, total: int | None = None,
                  message: str | None = None) -> None:
        """Say the run is alive (and how far it got)."""
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if done is not None:
            values["done"] = int(done)
        if total is not None:
            values["total"] = int(total)
        if message is not None:
            values["message"] = message

        def _do(conn: Connection) -> None:
            if conn.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(**values)).rowcount == 0:
                raise DatabaseError(f"no run {run_id} in {self.path}")

        self._write(_do, "record the run's progress")

    def finish_run(self, run_id: int, status: str = "completed", message: str | None = None,
                   result: Mapping[str, Any] | None = None) -> None:
        """End a run. ``message`` is for people; ``result`` (JSON) is what programs read back."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run status must be one of {RUN_STATUSES[1:]}, not {status!r}")
        now = utcnow()

        def _do(conn: Connection) -> None:
            values: dict[str, Any] = {"status": status, "finished_at": now, "heartbeat_at": now}
            if message is not None:
                values["message"] = message
            if result is not None:
                values["result"] = dict(result)
            if conn.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(**values)).rowcount == 0:
                raise DatabaseError(f"no run {run_id} in {self.path}")

        self._write(_do, "finish the run")

    def _progress(self, r: Mapping[Any, Any]) -> RunProgress:
        from datetime import datetime

        hb = parse(r["heartbeat_at"])
        age = (datetime.now(UTC) - hb).total_seconds() if hb else float("inf")
        return RunProgress(r["id"], r["kind"], r["status"], r["done"], r["total"], r["message"],
                           r["model_fingerprint"], dict(r["parameters"] or {}), r["started_at"], r["heartbeat_at"],
                           r["finished_at"], age, r["status"] == "running" and age > self.stale_after_s,
                           novelty_threshold=r["novelty_threshold"], result=dict(r.get("result") or {}),
                           pid=r.get("pid"), host=r.get("host"))

    def run_progress(self, run_id: int) -> RunProgress:
        with self._read() as conn:
            r = conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).mappings().first()
        if r is None:
            raise DatabaseError(f"no run {run_id} in {self.path}")
        return self._progress(r)

    def latest_run(self, kind: str | None = None, status: str | None = None) -> RunProgress | None:
        q = sa.select(RUNS).order_by(RUNS.c.id.desc()).limit(1)  # pragma: no mutate .first() takes one row
        if kind is not None:
            q = q.where(RUNS.c.kind == kind)
        if status is not None:
            q = q.where(RUNS.c.status == status)
        with self._read() as conn:
            r = conn.execute(q).mappings().first()
        return self._progress(r) if r else None

    def interrupt_dead_runs(self, kinds: Iterable[str], stale_after_s: float,
                            message: str = "process gone before the run finished") -> list[int]:
        """Mark ``running`` runs of ``kinds`` whose process is gone as ``interrupted``; returns their ids.

        Gone = started on this host and its pid no longer exists, or started on
        another host (whose pids we cannot see) and silent for ``stale_after_s``.
        A run whose process is alive here is never touched, however old its heartbeat.
        """
        host = socket.gethostname()
        kinds = tuple(kinds)
        with self._read() as conn:
            rows = conn.execute(sa.select(RUNS).where(RUNS.c.kind.in_(kinds), RUNS.c.status == "running")
                                .order_by(RUNS.c.id)).mappings().all()
        dead = []
        for r in rows:
            p = self._progress(r)
            if (p.host == host and not pid_alive(p.pid)) \
                    or (p.host != host and p.seconds_since_heartbeat > stale_after_s):
                dead.append(p.id)
        for run_id in dead:
            self.finish_run(run_id, "interrupted", message=message)
            log.warning("run %d was left running by a dead process: marked interrupted", run_id)
        return dead

    def find_completed_run(self, kind: str, parameters: Mapping[str, Any]) -> RunProgress | None:
        """The newest ``completed`` run of ``kind`` whose parameters hold every given key/value.

        Values are compared as JSON scalars (``None`` matches a null or missing key),
        in SQL, so the batch ledger never scans every run or parses a message.
        """
        found = self.find_runs(kind, parameters, status="completed", newest=1)
        return found[0] if found else None

    def triaged_input(self, checksum: str, model_fingerprint: str | Sequence[str] | None, level: float | None
                      ) -> RunProgress | None:
        """The newest ``completed`` triage run of the input whose ingest checksum is ``checksum``
        (``ingest.file_checksum``: its bytes and its photos' listing), with this model (a fingerprint, or each a
        version recorded for it: ``Bundle.fingerprints``) and naming ``level``; else
        None. A run's input is the ingest :func:`_run_ingest` gives it (the latest finished ingest of its
        collection up to the run's start: triage ingests before it starts its run, and an unchanged file's ingest
        is skipped, so a plate triaged twice has one ingest), whatever the collection was named. ``level`` None
        (a bundle that does not say its level) matches no run.

        Why: ``biodiscover run`` skips a collection done before (same bytes, same model, same level); it looked
        only at its own ledger, so a folder of weeks each triaged with ``triage`` was triaged again, and re-triaging
        reviewed weeks re-clusters their pending candidates under new numbers."""
        if level is None:
            return None
        from biodiscover.storage.db.models import Ingest

        ING = table(Ingest)
        same_input = sa.select(ING.c.collection_id).where(ING.c.checksum == checksum, ING.c.status == "completed")
        model = RUNS.c.model_fingerprint.is_(None) if model_fingerprint is None else \
            RUNS.c.model_fingerprint.in_([model_fingerprint] if isinstance(model_fingerprint, str) else
                                         list(model_fingerprint))
        q = sa.select(RUNS).where(RUNS.c.kind == "triage", RUNS.c.status == "completed", model,
                                  sa.func.json_extract(RUNS.c.parameters, "$.level") == float(level),
                                  RUNS.c.collection_id.in_(same_input)).order_by(RUNS.c.id.desc())
        with self._read() as conn:
            for r in conn.execute(q).mappings().all():
                ingest = _run_ingest(conn, int(r["id"]), r["started_at"])
                if ingest is not None and ingest.checksum == checksum:
                    return self._progress(r)
        return None

    def absent_share_bases(self, model_fingerprints: Sequence[str], *, plate: Iterable[str] = ()
                           ) -> list[tuple[int, str, dict[str, list[float]]]]:
        """(run id, collection, its ``absent_share_basis``) of the newest completed triage run of each other plate
        with this model (any of its ``Bundle.fingerprints``), oldest first; a plate whose newest such run recorded no
        basis (a run from before it was recorded, or one without a learned rank) gives none.

        A plate is the specimens a run read, not the collection's name: a run that shares a processid with
        ``plate`` (the processids being triaged) is this plate's own earlier reading, and one that shares a
        processid with a newer run kept or passed over is an earlier reading of that plate.

        Why: a week's plate triaged with ``--absent-share season`` is pulled toward the share of absent taxa its
        season's earlier plates read (``naming.pooled_share``) instead of even odds; a plate re-triaged takes the
        other weeks', not its own earlier reading twice. Keyed on the name, a new plate whose file had an earlier
        plate's name (labs reuse week1.csv every year) dropped that earlier plate from every later share (e31
        review F15)."""
        q = (sa.select(RUNS.c.id, RUNS.c.result, COLLECTIONS.c.name)
             .join(COLLECTIONS, COLLECTIONS.c.id == RUNS.c.collection_id)
             .where(RUNS.c.kind == "triage", RUNS.c.status == "completed",
                    RUNS.c.model_fingerprint.in_(list(model_fingerprints)))
             .order_by(RUNS.c.id.desc()))
        read: set[str] = set(plate)  # the processids of this plate and of every plate already met
        out: list[tuple[int, str, dict[str, list[float]]]] = []
        with self._read() as conn:
            for r in conn.execute(q).mappings().all():
                pids = set(conn.execute(sa.select(ASSIGNMENTS.c.processid)
                                        .where(ASSIGNMENTS.c.run_id == r["id"])).scalars())
                earlier_reading = not pids.isdisjoint(read)
                read |= pids
                if earlier_reading:
                    continue
                basis = (r["result"] or {}).get("absent_share_basis")
                if basis:
                    out.append((int(r["id"]), str(r["name"]), {k: [float(v[0]), float(v[1])]
                                                               for k, v in basis.items()}))
        return out[::-1]

    def find_runs(self, kind: str, parameters: Mapping[str, Any], *, status: str | None = None,
                  newest: int | None = None) -> list[RunProgress]:
        """The runs of ``kind`` (and ``status``) whose parameters hold every given key/value, newest first (at most
        ``newest``); values compared as in :meth:`find_completed_run`. The export finds a batch's items with it."""
        q = sa.select(RUNS).where(RUNS.c.kind == kind)
        if status is not None:
            q = q.where(RUNS.c.status == status)
        for key, value in parameters.items():
            if not _JSON_KEY.match(key):
                raise ValueError(f"parameter name {key!r} cannot be matched (letters, digits and _ only)")
            extracted = sa.func.json_extract(RUNS.c.parameters, f"$.{key}")
            if value is None:
                q = q.where(extracted.is_(None))
            elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
                q = q.where(extracted == value)
            else:
                raise ValueError(f"parameter {key!r}: only str, int, float or None can be matched")
        q = q.order_by(RUNS.c.id.desc())
        if newest is not None:
            q = q.limit(newest)
        with self._read() as conn:
            rows = conn.execute(q).mappings().all()
        return [self._progress(r) for r in rows]

    # -- assignments ----------------------------------------------------------------------------------------
    def write_assignments(self, run_id: int, rows: Iterable[Mapping[str, Any]], chunk_size: int = CHUNK_ROWS) -> int:
        """Upsert assignment rows for ``run_id`` in committed chunks; returns rows written."""
        written = 0
        for chunk in _batched(rows, chunk_size):
            values = [normalise_assignment(r) for r in chunk]

            def _do(conn: Connection, values: list[dict[str, Any]] = values) -> None:
                if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).scalar() is None:
                    raise DatabaseError(f"no run {run_id} in {self.path}")
                ids = dict(conn.execute(sa.select(SPECIMENS.c.processid, SPECIMENS.c.id).where(
                    SPECIMENS.c.current.is_(True), SPECIMENS.c.processid.in_([v["processid"] for v in values]))
                ).all())
                full = []
                for v in values:
                    row: dict[str, Any] = {k: None for k in ASSIGNMENT_FIELDS}
                    row.update(v)
                    row["run_id"] = run_id
                    row["specimen_id"] = ids.get(v["processid"])
                    full.append(row)
                stmt = sqlite_insert(ASSIGNMENTS)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["run_id", "processid"],
                    set_={k: stmt.excluded[k] for k in ASSIGNMENT_FIELDS + ("specimen_id",)})
                conn.execute(stmt, full)
                conn.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(heartbeat_at=utcnow()))

            self._write(_do, "write assignments")
            written += len(values)
        return written

    def assignments(self, run_id: int) -> "Any":
        """All assignments of a run as a DataFrame (columns as in the ``assignments`` table)."""
        import pandas as pd

        with self._read() as conn:
            rows = conn.execute(sa.select(ASSIGNMENTS).where(ASSIGNMENTS.c.run_id == run_id)
                                .order_by(ASSIGNMENTS.c.id)).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in ASSIGNMENTS.c])

    def run_figures(self, run_id: int) -> dict[str, Any]:
        """What run ``run_id`` named, counted again from its rows: ``specimens``, ``named_to_species`` (of them
        ``provisional_species``: to a provisional species of the taxonomy), ``named_to_genus``, ``novel``,
        ``proposals`` (its live candidates now), and ``quarantined`` / ``quarantine_file`` / ``first_set_aside``
        (``QuarantinedRecord.message``) from the latest finished ingest of its collection up to the run's start.

        Why: a batch shows a collection it skips with the figures of the run that did it; a batch item written
        before the batch stored those figures with it has only the run id."""
        from biodiscover.storage.db.models import LIVE_STATUSES, Proposal, QuarantinedRow, Taxon
        from biodiscover.storage.validation import QuarantinedRecord

        P, T, QR = table(Proposal), table(Taxon), table(QuarantinedRow)
        run = self.run_progress(run_id)
        provisional = sa.select(T.c.name).where(T.c.status == "provisional", T.c.rank == "species")
        with self._read() as conn:
            row = conn.execute(sa.select(
                sa.func.count(), sa.func.sum(sa.case((ASSIGNMENTS.c.deepest_rank == "species", 1), else_=0)),
                sa.func.sum(sa.case((sa.and_(ASSIGNMENTS.c.deepest_rank == "species",
                                             ASSIGNMENTS.c.deepest_taxon.in_(provisional)), 1), else_=0)),
                sa.func.sum(sa.case((ASSIGNMENTS.c.deepest_rank == "genus", 1), else_=0)),
                sa.func.sum(sa.case((ASSIGNMENTS.c.is_novel.is_(True), 1), else_=0)))
                .where(ASSIGNMENTS.c.run_id == run_id)).one()
            proposals = conn.execute(sa.select(sa.func.count()).select_from(P).where(
                P.c.run_id == run_id, P.c.status.in_(LIVE_STATUSES))).scalar()
            ingest = _run_ingest(conn, run_id, run.started_at)
            first = conn.execute(sa.select(QR).where(QR.c.ingest_id == ingest.id).order_by(QR.c.id).limit(1)
                                 ).mappings().all() if ingest is not None and ingest.n_quarantined else []
        said = QuarantinedRecord(file=first[0]["file"], line=first[0]["line"], processid=first[0]["processid"],
                                 kind=first[0]["kind"], reason=first[0]["reason"]).message if first else None
        return {"specimens": int(row[0] or 0), "named_to_species": int(row[1] or 0),
                "provisional_species": int(row[2] or 0), "named_to_genus": int(row[3] or 0),
                "novel": int(row[4] or 0), "proposals": int(proposals or 0),
                "quarantined": int(ingest.n_quarantined or 0) if ingest is not None else 0,
                "quarantine_file": ingest.quarantine_file if ingest is not None else None,
                "first_set_aside": said}

    def run_set_aside(self, run_id: int) -> dict[str, Any]:
        """The specimens the ingest of run ``run_id`` set aside (the latest finished ingest of its collection up to
        the run's start, as :meth:`run_figures` finds it): ``counts`` (problem kind → records, most first, then by
        kind; photos set aside from kept records and problems of the file itself are no specimen) and ``file``
        (the quarantine report it wrote; None: none written).

        Why: the exports said nothing of them; a plate of 31 was published as 29 (the data manager's review, F4)."""
        from biodiscover.storage.db.models import QuarantinedRow
        from biodiscover.storage.validation import FILE_PROBLEMS, PHOTO_SET_ASIDE

        QR = table(QuarantinedRow)
        started = self.run_progress(run_id).started_at
        with self._read() as conn:
            ingest = _run_ingest(conn, run_id, started)
            rows = conn.execute(sa.select(QR.c.kind, sa.func.count()).where(
                QR.c.ingest_id == ingest.id, QR.c.kind.not_in(sorted(FILE_PROBLEMS)),
                sa.not_(QR.c.reason.startswith(PHOTO_SET_ASIDE, autoescape=True))).group_by(QR.c.kind)
            ).all() if ingest is not None and ingest.n_quarantined else []
        counts = dict(sorted(((str(k), int(n)) for k, n in rows), key=lambda kv: (-kv[1], kv[0])))
        return {"counts": counts, "file": ingest.quarantine_file if ingest is not None and counts else None}

    def empty_failed_runs(self) -> list[EmptyRun]:
        """The failed or interrupted triage runs that stored nothing and were not redone (oldest first)."""
        with self._read() as conn:
            return [EmptyRun(**dict(r)) for r in conn.exec_driver_sql(EMPTY_FAILED_RUNS_SQL).mappings()]

    def drop_empty_run(self, run_id: int) -> Path:
        """Remove a failed or interrupted triage run that holds nothing (one :meth:`empty_failed_runs` lists, or one
        whose collection was triaged again since: harmless history, but an export of a run range stops at it);
        returns the backup written first. Any other run is refused with the reason: a run that stored rows is a
        record of what a triage said, and removing it would orphan them."""
        from biodiscover.storage.db.backup import KEEP_AUTOMATIC, backup_database

        with self._read() as conn:
            run = conn.execute(sa.select(RUNS.c.kind, RUNS.c.status).where(RUNS.c.id == run_id)).first()
        if run is None:
            raise DatabaseError(f"no run {run_id} in {self.path}")
        with self._read() as conn:
            empty = {r[0] for r in conn.exec_driver_sql(EMPTY_RUNS_SQL)}
        if run_id not in empty:
            what = (f"a {run.status} {run.kind} run" if run.kind != "triage" or run.status not in
                    ("failed", "interrupted") else f"a {run.status} triage run that stored results")
            raise DatabaseError(f"run {run_id} is {what}, not a failed triage run that holds no specimens: only "
                                "such a run is removed (see `biodiscover db check`)")
        backup = backup_database(self.path, reason="pre-drop-run", keep=KEEP_AUTOMATIC)

        def _do(conn: Connection) -> None:
            # checked again inside the write: a triage resumed since the check above may have stored rows
            if run_id not in {r[0] for r in conn.exec_driver_sql(EMPTY_RUNS_SQL)}:
                raise DatabaseError(f"run {run_id} changed while it was being removed; nothing removed")
            conn.execute(sa.delete(RUNS).where(RUNS.c.id == run_id))

        self._write(_do, "drop the run")
        log.info("removed run %d (failed, held nothing); backup %s", run_id, backup)
        return backup

    def database_id(self) -> str | None:
        """``db-3f2a9c1e0b7d``: this database's identity, from its first collection's name and creation time (rows
        never updated or deleted); None before anything was ingested.

        Why: the exports name a candidate by its proposal id, which every database numbers from 1, so two labs' (or
        one lab's two) databases gave different candidates one Darwin Core ``taxonConceptID``. A copy of the file
        keeps the identity (the same decisions, exported from the copy, name the same concepts); a database of its
        own, even of the same specimens, has another. Derived, not stored: no schema change, and every database
        written before has one."""
        import hashlib

        with self._read() as conn:
            first = conn.execute(sa.select(COLLECTIONS.c.name, COLLECTIONS.c.created_at)
                                 .order_by(COLLECTIONS.c.id).limit(1)).first()
        if first is None:
            return None
        return "db-" + hashlib.sha256(f"{first.name}\n{first.created_at}".encode()).hexdigest()[:12]

    def earlier_decisions(self, run_id: int) -> dict[str, Any]:
        """What reviewers decided, in runs before ``run_id``, about the specimens ``run_id`` named: the accepted
        and assigned proposals (a decision in force: an undone one is pending again) holding them.

        Keys: ``merged`` (one row per specimen of this run whose candidate of this run a reviewer merged into
        another run's: ``processid``, ``source_id`` (this run's candidate), ``run_id`` (the run of the candidate
        holding it now), then that candidate's ``proposals`` columns; its review rows are in ``reviews``),
        ``retired`` (one row per specimen of this run and pending candidate of an earlier run that a run up
        to this one retired, ``Database.retire_unproposed``: ``processid``, ``proposal_id``, ``run_id``,
        ``retired_by``, ``provisional_name``, ``parent_name``, ``parent_rank``; their review rows are in ``reviews``
        too: a note written there follows the specimen), ``decisions`` (one row per specimen and such proposal:
        ``processid``, ``run_id`` (the earlier run),
        ``decided_taxon`` (the name of the species the reviewer accepted or assigned the proposal to, as a later
        run names the specimen from the keys it became: :func:`~biodiscover.storage.db.taxonomy.
        provisional_references`), ``decided_lineage`` (rank → name of that species and of each taxon above it:
        what a later run's shallower name of the specimen is read against), then the ``proposals`` columns of
        :meth:`run_tables`) and ``reviews`` (the review log rows of those proposals).

        Why: a later triage names those specimens from keys that are themselves; the determination is still the
        reviewer's, and the exports must credit it (a week-2 archive called 328 reviewed specimens machine
        predictions)."""
        import pandas as pd

        from biodiscover.storage.db.models import Proposal, ProposalMember, Review, Taxon

        P, M, R, T = table(Proposal), table(ProposalMember), table(Review), table(Taxon)
        with self._read() as conn:
            # one query: this run's specimens joined to the decided proposals of earlier runs holding them
            rows = conn.execute(
                sa.select(ASSIGNMENTS.c.processid, T.c.name.label("decided_taxon"), P)
                .select_from(ASSIGNMENTS)
                .join(M, M.c.processid == ASSIGNMENTS.c.processid)
                .join(P, P.c.id == M.c.proposal_id)
                .join(T, T.c.id == P.c.taxon_id)
                .where(ASSIGNMENTS.c.run_id == run_id, P.c.run_id < run_id, P.c.status.in_(("accepted", "assigned")))
                .order_by(ASSIGNMENTS.c.id, P.c.id)).mappings().all()
            distinct = list({r["id"]: r for r in rows}.values())
            shaped = {p["proposal_id"]: p for p in _proposal_records(conn, distinct)}
            # the pending candidates of earlier runs that a run up to this one retired (it triaged them whole and
            # proposed none of their members): this run's record of each member carries what reviewers noted there
            retired = conn.execute(sa.text(
                "SELECT m.processid, p.id AS proposal_id, p.run_id, e.run_id AS retired_by, p.provisional_name, "
                "p.parent_name, p.parent_rank FROM assignments a JOIN proposal_members m ON m.processid = a.processid "
                "JOIN proposals p ON p.id = m.proposal_id JOIN proposal_edges e ON e.source_id = p.id "
                "AND e.kind = 'retired' WHERE a.run_id = :run AND p.run_id < :run AND e.run_id <= :run "
                "ORDER BY a.id, p.id"), {"run": run_id}).mappings().all()
            # this run's candidates a reviewer merged into another run's: their members' determination is the
            # candidate that holds them now (followed through merges of merges)
            folded = conn.execute(sa.text(
                "SELECT m.processid, p.id AS source_id, p.merged_into FROM assignments a JOIN proposal_members m "
                "ON m.processid = a.processid JOIN proposals p ON p.id = m.proposal_id WHERE a.run_id = :run AND "
                "p.run_id = :run AND p.status = 'merged' AND p.merged_into IS NOT NULL ORDER BY a.id"),
                {"run": run_id}).mappings().all()
            into: dict[int, int] = {}
            for r in folded:
                target, seen = int(r["merged_into"]), {int(r["source_id"])}
                while target not in seen:
                    seen.add(target)
                    nxt = conn.execute(sa.select(P.c.merged_into).where(P.c.id == target, P.c.status == "merged")
                                       ).scalar()
                    if nxt is None:
                        break
                    target = int(nxt)
                into[int(r["source_id"])] = target
            holders = conn.execute(sa.select(P).where(P.c.id.in_(sorted(set(into.values()))),
                                                      P.c.run_id != run_id)).mappings().all() if into else []
            held = {p["proposal_id"]: p for p in _proposal_records(conn, holders)}
            runs_of = {int(h["id"]): int(h["run_id"]) for h in holders}
            rev_rows: list[Any] = []
            for part in chunked(sorted(set(shaped) | set(held) | {int(r["proposal_id"]) for r in retired})):
                rev_rows.extend(conn.execute(sa.select(R).where(R.c.proposal_id.in_(part))
                                             .order_by(R.c.id)).mappings().all())
        decisions = pd.DataFrame(
            [{"processid": r["processid"], "run_id": r["run_id"], "decided_taxon": r["decided_taxon"],
              **shaped[r["id"]]} for r in rows],
            columns=["processid", "run_id", "decided_taxon", "decided_lineage", *PROPOSAL_COLUMNS])
        reviews = pd.DataFrame([dict(r) for r in rev_rows], columns=[c.name for c in R.c])
        gone = pd.DataFrame([dict(r) for r in retired], columns=["processid", "proposal_id", "run_id", "retired_by",
                                                                 "provisional_name", "parent_name", "parent_rank"])
        holder_of = {r["processid"]: (int(r["source_id"]), into[int(r["source_id"])]) for r in folded}
        merged = pd.DataFrame(
            [{"processid": pid, "source_id": source, "run_id": runs_of[holder], **held[holder]}
             for pid, (source, holder) in holder_of.items() if holder in held],
            columns=["processid", "source_id", "run_id", *PROPOSAL_COLUMNS])
        return {"decisions": decisions, "reviews": reviews, "retired": gone, "merged": merged}

    def reviewed_keys(self, run_id: int) -> dict[str, dict[str, Any]]:
        """The best keys (``top_hit``) of ``run_id``'s barcode calls that are members of an earlier run's candidate a
        reviewer accepted or assigned (a decision in force), each → ``proposal_id`` and ``run_id`` of that candidate,
        ``status`` (accepted / assigned), ``taxon`` (the species it was accepted as or assigned to) and ``reviewer``
        (who decided; of a decision a later run carried, who made it where it was made).

        Why: a triage adds those members as keys named by the species decided (``taxonomy.provisional_references``),
        and the archive called a specimen named from one "100.0 % identical to reference SOONR2491-20": a specimen a
        reviewer placed last week, not a reference barcode (e35 week-2 review, finding 7). A member of several such
        candidates (a later run's carry of the same decision) is its earliest's. A key the reference holds under the
        same process id stays the reference's in the search (``add_references`` skips it); it is still that
        candidate's member, all the exports say of it."""
        with self._read() as conn:
            rows = conn.execute(sa.text(
                "SELECT m.processid, p.id, p.run_id, p.status, t.name, (SELECT r.id FROM reviews r "
                "WHERE r.proposal_id = p.id AND r.action IN ('accept', 'assign') ORDER BY r.id DESC LIMIT 1) "
                "FROM proposal_members m JOIN proposals p ON p.id = m.proposal_id JOIN taxa t ON t.id = p.taxon_id "
                "WHERE p.run_id < :run AND p.status IN ('accepted', 'assigned') AND m.processid IN "
                "(SELECT a.top_hit FROM assignments a WHERE a.run_id = :run AND a.identity IS NOT NULL) "
                "ORDER BY p.id"), {"run": run_id}).all()
            out: dict[str, dict[str, Any]] = {}
            who: dict[Any, str | None] = {}  # one candidate's members share its decision: read once
            for key, proposal, run, status, taxon, decision in rows:
                if key not in out:
                    if decision not in who:
                        who[decision] = _decided_by(conn, decision)[0]
                    out[str(key)] = {"proposal_id": int(proposal), "run_id": int(run), "status": str(status),
                                     "taxon": taxon, "reviewer": who[decision]}
        return out

    def merges(self, run_id: int) -> Any:
        """The merges in force that touch ``run_id``'s candidates, one row per candidate folded into another: those
        of this run merged into any candidate, and any merged into one of this run's (followed through merges of
        merges to the candidate holding the members now). Columns: ``source_id``, ``source_run``,
        ``source_collection``, ``source_name`` (its name when merged: ``… gen. sp. cand29``), ``source_size`` (the
        members it brought), ``into_id``, ``into_run``, ``into_collection``, ``into_name``, ``into_status`` (the
        holder's now), ``review_id``, ``reviewer``, ``merged_at``.

        Why: a merged candidate vanished from the CSV and the HTML without a trace (only the JSON history said it),
        and week 2's export after its #29 was merged into week 1's accepted #2 listed neither (e32 review R6, R26):
        a taxonomist who wrote "cand29" down must find where its specimens went."""
        import pandas as pd

        from biodiscover.storage.records import candidate_name

        columns = ["source_id", "source_run", "source_collection", "source_name", "source_size", "into_id",
                   "into_run", "into_collection", "into_name", "into_status", "review_id", "reviewer", "merged_at"]
        with self._read() as conn:
            edges = conn.execute(sa.text(
                "SELECT e.source_id, e.target_id, e.review_id, r.reviewer, r.created_at, r.before "
                "FROM proposal_edges e JOIN proposals s ON s.id = e.source_id AND s.status = 'merged' "
                "AND s.merged_into = e.target_id LEFT JOIN reviews r ON r.id = e.review_id "
                "WHERE e.kind = 'merge' ORDER BY e.source_id")).mappings().all()
            if not edges:
                return pd.DataFrame(columns=columns)
            into = {int(e["source_id"]): int(e["target_id"]) for e in edges}

            def holder(pid: int) -> int:
                seen = {pid}
                while pid in into and into[pid] not in seen:
                    pid = into[pid]
                    seen.add(pid)
                return pid

            ids = sorted(set(into) | {holder(i) for i in into})
            props: dict[int, Any] = {}
            for part in chunked(ids):
                props.update({int(r["id"]): r for r in conn.execute(sa.text(
                    "SELECT p.id, p.run_id, p.status, p.provisional_name, p.parent_name, p.parent_rank, c.name AS "
                    "collection FROM proposals p JOIN runs u ON u.id = p.run_id LEFT JOIN collections c ON "
                    "c.id = u.collection_id WHERE p.id IN (" + ", ".join(str(int(i)) for i in part) + ")")
                ).mappings()})
        rows = []
        for e in edges:
            source, home = int(e["source_id"]), holder(int(e["source_id"]))
            s, h = props[source], props[home]
            if run_id not in (s["run_id"], h["run_id"], props[int(e["target_id"])]["run_id"]):
                continue
            before = e["before"]
            before = json.loads(before) if isinstance(before, str) else before or {}
            snap = (before.get("proposals") or {}).get(str(source)) or {}
            rows.append({
                "source_id": source, "source_run": s["run_id"], "source_collection": s["collection"],
                "source_name": candidate_name(snap.get("provisional_name"), snap.get("parent_name", s["parent_name"]),
                                              snap.get("parent_rank", s["parent_rank"]), source),
                "source_size": len(snap["members"]) if isinstance(snap.get("members"), list) else None,
                "into_id": home, "into_run": h["run_id"], "into_collection": h["collection"],
                "into_name": candidate_name(h["provisional_name"], h["parent_name"], h["parent_rank"], home),
                "into_status": h["status"], "review_id": e["review_id"], "reviewer": e["reviewer"],
                "merged_at": e["created_at"]})
        return pd.DataFrame(rows, columns=columns)

    def run_superseded(self, run_id: int) -> dict[str, Any]:
        """How many of the run's candidates later runs re-clustered, and those runs' ids: ``{"candidates": 38,
        "by_runs": [10]}``; what an export of the run says instead of "0 candidate species", and the review of the
        run instead of "none left to review" (a re-triaged week read "0 of 0", e31 F11)."""
        with self._read() as conn:
            return _superseded(conn, run_id)

    def run_reclustered(self, run_id: int) -> list[Reclustered]:
        """The pending candidates of earlier runs that run ``run_id`` re-clustered (each now ``superseded``: by the
        run's candidate holding its members, or retired), one :class:`Reclustered` per earlier run, oldest first;
        with those a reviewer had acted on and those whose reviews the run carried.

        Why: a re-triage of a reviewed week re-clustered 14 pending candidates of run 1 under new numbers (#4→#33,
        …) and said nothing; only a later export of run 1 did (e35 week-2 review, findings 3 and 6). The triage
        says it from this, in the numbers the export counts (:func:`_superseded_rows`)."""
        with self._read() as conn:
            rows = _superseded_rows(conn, by_run=run_id)
            if not rows:
                return []
            raw = dbapi(conn)
            old = [r[0] for r in rows]
            reviewed: set[int] = set()
            for part in chunked(old):
                reviewed |= {int(i) for (i,) in raw.execute(
                    f"SELECT DISTINCT proposal_id FROM reviews WHERE proposal_id IN ({', '.join('?' * len(part))})",
                    list(part))}
            # the reviews the run carried onto its candidates name where they came from (``_carry_record``)
            carried = {int(i) for (i,) in raw.execute(
                "SELECT DISTINCT json_extract(r.after, '$.carried.from') FROM proposals n JOIN reviews r ON "
                "r.proposal_id = n.id WHERE n.run_id = ? AND json_extract(r.after, '$.carried.run') = ? AND "
                "json_extract(r.after, '$.carried.from') IS NOT NULL", (run_id, run_id))}
            parted = {int(i) for (i,) in raw.execute(
                "SELECT e.source_id FROM proposals n JOIN proposal_edges e ON e.target_id = n.id AND e.kind = "
                "'recluster' WHERE n.run_id = ? AND json_extract(e.detail, '$.merge_not_carried') IS NOT NULL",
                (run_id,))}
            runs = _earlier_runs(conn, (r[1] for r in rows))
        out = []
        for earlier in sorted(runs):
            mine = [r for r in rows if r[1] == earlier]
            done = tuple(r[0] for r in mine if r[0] in reviewed)
            out.append(Reclustered(runs[earlier], tuple((r[0], r[2]) for r in mine), done,
                                   tuple(i for i in done if i in carried and i not in parted)))
        return out

    def earlier_runs(self, run_id: int, ids: Iterable[int] = ()) -> list[EarlierRun]:
        """The newest completed triage run before run ``run_id`` of its collection (the reading it replaces; not
        every older one, which a run of this very model may have replaced since), and the runs ``ids``, oldest
        first."""
        with self._read() as conn:
            collection = conn.execute(sa.select(RUNS.c.collection_id).where(RUNS.c.id == run_id)).scalar()
            newest = conn.execute(sa.select(sa.func.max(RUNS.c.id)).where(
                RUNS.c.kind == "triage", RUNS.c.status == "completed", RUNS.c.id < run_id,
                RUNS.c.collection_id == collection)).scalar() if collection is not None else None
            found = _earlier_runs(conn, [*([int(newest)] if newest is not None else []), *ids])
        return [found[i] for i in sorted(found)]

    def run_tables(self, run_id: int) -> dict[str, Any]:
        """One run as plain tables, the shape ``workflows.export.RunExport`` takes.

        Keys: ``run`` (dict; ``superseded``: how many of the run's candidates later runs re-clustered, and
        those runs' ids; ``database_id``: :meth:`database_id`), ``specimens`` (processid + BIOSCAN-5M columns, as
        provided, and ``submitted_barcode``: the barcode as submitted, None where not recorded), ``assignments``,
        ``proposals`` (live ones created by this run or split from them: ``proposal_id``, ``provisional_name``,
        ``parent_rank``, ``parent_taxon``, ``parent_status`` (the parent taxon's: ``provisional`` for a genus a
        reviewer added, ``described`` for a published one a reviewer added), ``parent_lineage`` (rank → name of the
        parent taxon and its ancestors),
        ``status``, ``version``, ``size``, ``novelty``,
        ``nearest_species``, ``nearest_identity``, ``evidence``, ``assigned_provisional``: for a candidate assigned
        to a species a reviewer accepted in this database, the candidate whose acceptance made it (0: not known;
        None: not such a candidate), ``assigned_status``: for an assigned candidate, its species' status
        (``accepted``: the reference's; ``provisional``: accepted here; ``described``: a published species a
        reviewer added, not in the reference), ``carried_from``: for a candidate assigned by the carry of a
        reviewer's decision on an earlier run's candidate, that candidate, the decision, who and the identity it
        rested on (:func:`_carried_from`; None otherwise)), ``members``
        (``proposal_id``, ``processid``, ``probability``) and ``reviews``.
        """
        import pandas as pd

        from biodiscover.storage.db.ingest import submitted_of_row
        from biodiscover.storage.db.models import LIVE_STATUSES, Proposal, ProposalMember, Review
        from biodiscover.storage.records import BIOSCAN_COLUMNS

        P, M, R = table(Proposal), table(ProposalMember), table(Review)
        progress = self.run_progress(run_id)
        run = {"id": progress.id, "kind": progress.kind, "status": progress.status,
               "model_fingerprint": progress.model_fingerprint, "parameters": progress.parameters,
               "started_at": progress.started_at, "finished_at": progress.finished_at,
               "novelty_threshold": progress.novelty_threshold, "database_id": self.database_id()}
        assignments = self.assignments(run_id)
        with self._read() as conn:
            # the version the run read (``specimen_id``), not the current one: a processid another collection
            # brought later with another barcode is that collection's new version, and week 3's export wrote it beside
            # the name week 3's run gave the old barcode (e31 review F22); an assignment recorded without one (an
            # older database) reads the current version
            spec_rows = conn.execute(
                sa.select(SPECIMENS).join(ASSIGNMENTS, ASSIGNMENTS.c.processid == SPECIMENS.c.processid)
                .where(ASSIGNMENTS.c.run_id == run_id,
                       sa.or_(ASSIGNMENTS.c.specimen_id == SPECIMENS.c.id,
                              sa.and_(ASSIGNMENTS.c.specimen_id.is_(None), SPECIMENS.c.current.is_(True))))
                .order_by(ASSIGNMENTS.c.id)
            ).mappings().all()
            prop_rows = conn.execute(sa.select(P).where(P.c.run_id == run_id, P.c.status.in_(LIVE_STATUSES))
                                     .order_by(P.c.id)).mappings().all()
            pids = [p["id"] for p in prop_rows]
            shaped = _proposal_records(conn, prop_rows)

            # candidates of this run that a later run re-clustered: not exported here (they are history), but
            # the export must say where they went, or run 1 silently reads "0 candidate species"
            later = _superseded(conn, run_id)
            # the collection the run triaged, by name: a database of weekly batches holds several, and a run id
            # alone said nothing on the report (the weekly-batch review)
            run["collection"] = conn.execute(
                sa.select(COLLECTIONS.c.name)
                .select_from(RUNS.join(COLLECTIONS, COLLECTIONS.c.id == RUNS.c.collection_id))
                .where(RUNS.c.id == run_id)).scalar()
            run["superseded"] = later
            mem_rows: list[Any] = []
            for part in chunked(pids):
                mem_rows.extend(conn.execute(sa.select(M.c.proposal_id, M.c.processid, M.c.probability)
                                             .where(M.c.proposal_id.in_(part))).mappings().all())
            rev_rows: list[Any] = []
            for part in chunked(pids):
                rev_rows.extend(conn.execute(sa.select(R).where(R.c.proposal_id.in_(part))
                                             .order_by(R.c.id)).mappings().all())
        specimens = pd.DataFrame([{**{c: r[c.replace("-", "_")] for c in BIOSCAN_COLUMNS},
                                   "submitted_barcode": submitted_of_row(r)} for r in spec_rows],
                                 columns=[*BIOSCAN_COLUMNS, "submitted_barcode"])
        proposals = pd.DataFrame(shaped, columns=list(PROPOSAL_COLUMNS))
        members = pd.DataFrame([dict(m) for m in mem_rows], columns=["proposal_id", "processid", "probability"])
        reviews = pd.DataFrame([dict(r) for r in rev_rows], columns=[c.name for c in R.c])
        return {"run": run, "specimens": specimens, "assignments": assignments, "proposals": proposals,
                "members": members, "reviews": reviews, "rejected_again": self._rejected_again(run_id)}

    def _rejected_again(self, run_id: int) -> dict[int, tuple[int, ...]]:
        """The run's rejected proposals a later run proposed again and recognised, itself rejected
        (``storage.db.proposals.REJECTED_AGAIN``) → every later proposal of that chain (a third triage recognises the
        second). Why: an export over several runs lists such a rejection once, as the later one of the export, as
        the queue does; a season's export listed one bad read as two rejected candidates (season review F11)."""
        with self._read() as conn:
            rows = conn.execute(sa.text(
                "WITH RECURSIVE chain(origin, later) AS ("
                " SELECT p.id, e.target_id FROM proposals p JOIN proposal_edges e ON e.source_id = p.id"
                " AND e.kind = 'recognised' JOIN proposals t ON t.id = e.target_id AND t.status = 'rejected'"
                " WHERE p.run_id = :run AND p.status = 'rejected'"
                " UNION SELECT c.origin, e.target_id FROM chain c JOIN proposal_edges e ON e.source_id = c.later"
                " AND e.kind = 'recognised' JOIN proposals t ON t.id = e.target_id AND t.status = 'rejected')"
                " SELECT origin, later FROM chain ORDER BY origin, later"), {"run": run_id}).all()
        out: dict[int, tuple[int, ...]] = {}
        for origin, later in rows:
            out[int(origin)] = (*out.get(int(origin), ()), int(later))
        return out
