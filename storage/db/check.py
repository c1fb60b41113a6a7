"""``biodiscover db check``: is this database whole? And the quick check every writer runs first.

Three layers, because each catches what the others miss:

0. page-count sanity — the file is a whole number of pages and no shorter than
   its header says (a truncated copy);
1. ``PRAGMA integrity_check`` — the file itself (pages, indexes) is sound;
2. ``PRAGMA foreign_key_check`` — no row points at a missing row;
3. orphan / invariant checks that SQL constraints cannot express: one current
   version per specimen, accepted proposals with their taxon, sizes matching
   members, live proposals without members or in a rejected taxon, taxonomy
   without cycles, and (as warnings) runs or ingests that stopped without finishing, and each failed
   triage run that stored nothing (one line each: its collection, why it stopped, how to redo or remove it).

Runs on a read-only connection; never changes the file.

The cheap form every writer runs first (page-count sanity + ``PRAGMA
quick_check``) is :func:`biodiscover.storage.db.integrity.quick_problems`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biodiscover.storage.db.engine import connect_readonly
from biodiscover.storage.db.integrity import check_sqlite_file, explain_sqlite_error, page_problems
from biodiscover.storage.db.models import LIVE_STATUSES, PROPOSAL_STATUSES, RUN_STATUSES, TAXON_STATUSES
from biodiscover.storage.db.runs import EMPTY_FAILED_RUNS_SQL, EmptyRun
from biodiscover.storage.db.schema import inspect_revision, refuse_newer
from biodiscover.storage.errors import DatabaseError
from biodiscover.storage.review_log import REVIEW_ACTIONS


def _sql_list(values: tuple[str, ...]) -> str:
    """A SQL ``IN`` list of the model's own constants (never user input), so the checks follow the model."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


_LIVE = _sql_list(LIVE_STATUSES)
#: statuses whose proposal names a taxon: a new one (``accepted``) or a known species (``assigned``)
_WITH_TAXON = _sql_list(("accepted", "assigned"))

#: (description, SQL returning one row per problem). The status lists come from the model
#: (``LIVE_STATUSES`` and friends), so a status added there is checked here too.
ORPHAN_CHECKS: tuple[tuple[str, str], ...] = (
    ("specimens with more than one current version",
     "SELECT processid FROM specimens WHERE current = 1 GROUP BY processid HAVING count(*) > 1"),
    ("specimens with no current version",
     "SELECT processid FROM specimens GROUP BY processid HAVING sum(current) = 0"),
    ("accepted or assigned proposals without a live taxon",
     f"SELECT p.id FROM proposals p LEFT JOIN taxa t ON t.id = p.taxon_id WHERE p.status IN ({_WITH_TAXON}) "
     "AND (t.id IS NULL OR t.status = 'rejected')"),
    # a reviewer's new genus or family taken out again (undone) while a candidate still sat in it
    ("live proposals placed in a rejected taxon",
     f"SELECT p.id FROM proposals p JOIN taxa t ON t.id = p.parent_taxon_id WHERE p.status IN ({_LIVE}) "
     "AND t.status = 'rejected'"),
    ("assigned proposals whose taxon is not a species",
     "SELECT p.id FROM proposals p JOIN taxa t ON t.id = p.taxon_id WHERE p.status = 'assigned' "
     "AND t.rank != 'species'"),
    ("proposals whose size differs from their member count",
     "SELECT p.id FROM proposals p LEFT JOIN (SELECT proposal_id, count(*) n FROM proposal_members "
     f"GROUP BY proposal_id) m ON m.proposal_id = p.id WHERE p.status IN ({_LIVE}) "
     "AND p.size != coalesce(m.n, 0)"),
    ("live proposals without members",
     f"SELECT p.id FROM proposals p WHERE p.status IN ({_LIVE}) "
     "AND NOT EXISTS (SELECT 1 FROM proposal_members m WHERE m.proposal_id = p.id)"),
    # a candidate a later run retired (it triaged its members whole and proposed none) has that run's edge instead
    ("superseded proposals without a successor",
     "SELECT p.id FROM proposals p WHERE p.status = 'superseded' AND p.superseded_by IS NULL AND NOT EXISTS "
     "(SELECT 1 FROM proposal_edges e WHERE e.source_id = p.id AND e.kind = 'retired' AND e.run_id IS NOT NULL)"),
    ("merged proposals without a target",
     "SELECT id FROM proposals WHERE status = 'merged' AND merged_into IS NULL"),
    ("undo reviews without the review they undo",
     "SELECT id FROM reviews WHERE action = 'undo' AND target_review_id IS NULL"),
    # no CHECK constraints in the schema: a status no code knows would hide a row from every queue and export
    ("proposals with an unknown status",
     f"SELECT id FROM proposals WHERE status NOT IN ({_sql_list(PROPOSAL_STATUSES)})"),
    ("taxa with an unknown status", f"SELECT id FROM taxa WHERE status NOT IN ({_sql_list(TAXON_STATUSES)})"),
    ("runs with an unknown status", f"SELECT id FROM runs WHERE status NOT IN ({_sql_list(RUN_STATUSES)})"),
    ("reviews with an unknown action", f"SELECT id FROM reviews WHERE action NOT IN ({_sql_list(REVIEW_ACTIONS)})"),
)
WARNING_CHECKS: tuple[tuple[str, str], ...] = (
    ("runs still marked running (interrupted, or running now)", "SELECT id FROM runs WHERE status = 'running'"),
    # a later completed ingest into the same collection means the work was redone: no longer worth a warning
    ("ingests that did not finish (re-run the same ingest to complete them)",
     "SELECT i.id FROM ingests i WHERE i.status = 'running' AND NOT EXISTS (SELECT 1 FROM ingests j "
     "WHERE j.collection_id = i.collection_id AND j.id > i.id AND j.status = 'completed')"),
)


@dataclass(frozen=True)
class CheckReport:
    """``ok`` is False when any problem was found; warnings never fail the check."""

    path: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "problems": self.problems, "warnings": self.warnings,
                "stats": self.stats}


def check_database(path: Path) -> CheckReport:
    path = Path(path)
    if not path.is_file():
        raise DatabaseError(f"{path}: no database here")
    check_sqlite_file(path)
    state = inspect_revision(path)
    refuse_newer(path, state)
    problems: list[str] = []
    warnings: list[str] = []
    stats: dict[str, int] = {}
    if not state.is_current:
        problems.append(f"schema revision {state.revision!r} is not the current {state.head!r} (run db upgrade)")
    problems.extend(page_problems(path))
    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise explain_sqlite_error(path, exc, "read") from None
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems.extend(f"integrity: {' '.join(str(m).split())}" for m in integrity[:20])
        fks = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fks:
            problems.append(f"{len(fks)} rows break a foreign key (first: table {fks[0][0]} rowid {fks[0][1]} → "
                            f"{fks[0][2]})")
        if state.revision is not None:
            for what, sql in ORPHAN_CHECKS:
                rows = conn.execute(sql).fetchall()
                if rows:
                    problems.append(f"{len(rows)} {what} (e.g. {', '.join(str(r[0]) for r in rows[:5])})")
            for what, sql in WARNING_CHECKS:
                rows = conn.execute(sql).fetchall()
                if rows:
                    warnings.append(f"{len(rows)} {what}: {', '.join(str(r[0]) for r in rows[:5])}")
            # one line each: a failed triage that stored nothing left its collection untriaged (harmless to the
            # file, so a warning as an unfinished ingest is; the line says how to redo or remove it)
            conn.row_factory = sqlite3.Row
            warnings.extend(EmptyRun(**dict(r)).describe(path) for r in conn.execute(EMPTY_FAILED_RUNS_SQL))
            conn.row_factory = None
            cycle = conn.execute(
                "WITH RECURSIVE up(start, id, depth) AS (SELECT id, parent_id, 1 FROM taxa WHERE parent_id IS NOT NULL "
                "UNION ALL SELECT up.start, t.parent_id, depth + 1 FROM up JOIN taxa t ON t.id = up.id "
                "WHERE t.parent_id IS NOT NULL AND depth < 64) SELECT DISTINCT start FROM up WHERE id = start"
            ).fetchall()
            if cycle:
                problems.append(f"taxonomy has cycles through taxa {', '.join(str(r[0]) for r in cycle[:5])}")
            for table in ("specimens", "taxa", "runs", "assignments", "proposals", "proposal_members", "reviews"):
                stats[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        problems.append(f"the file cannot be read: {exc}")
    finally:
        conn.close()
    return CheckReport(path, problems, warnings, stats)
