"""The review log's vocabulary, and which of its reviews are in force: plain data, no database.

Why a module of its own: the exports read the log as "what is in force" as the database does, and the export
layer is imported by every triage (its results writers); a results-only triage must not load SQLAlchemy and
Alembic (~1 s of CPU, ``tests/test_triage_process.py``). ``storage.db.models`` and ``storage.db.reviews`` take
these from here: one owner.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

#: ``reopen``: a decision taken back from any session (the candidate pending again, the decision kept in the log).
REVIEW_ACTIONS: tuple[str, ...] = ("accept", "reject", "assign", "merge", "split", "move", "rename", "note", "undo",
                                   "reopen")
#: The review actions that decide a candidate (its status then: accepted, rejected, assigned).
DECISIONS: tuple[str, ...] = ("accept", "reject", "assign")
#: The review actions that take the review they target (``target_review_id``) out of force: an undo (of this
#: session's last review, or of an undo) and a reopen (of the decision in force, from a later session). Everything
#: that reads the log as "what is in force" treats them alike (:func:`in_force`).
UNDOING: tuple[str, ...] = ("undo", "reopen")
#: The statuses a decision leaves a candidate in: what a reopen takes back.
DECIDED_STATUSES: tuple[str, ...] = ("accepted", "rejected", "assigned")


def in_force(rows: Sequence[Mapping[str, Any]]) -> dict[Any, bool]:
    """review id → whether it is in force: an undo or a reopen (:data:`UNDOING`) takes its target out, an undo of
    either puts it back (``rows`` oldest first, each with ``id``, ``action`` and ``target_review_id``)."""
    active: dict[Any, bool] = {}
    undo_target: dict[Any, Any] = {}
    for r in rows:
        if r.get("action") in UNDOING and r.get("target_review_id") is not None:
            undo_target[r.get("id")] = r.get("target_review_id")
        # a review in force takes the review it undoes out of force, and that one's target back in: down the
        # whole chain (undo, redo, undo again leaves the first review undone)
        rid, active_now = r.get("id"), True
        while True:
            active[rid] = active_now
            if rid not in undo_target:
                break
            rid, active_now = undo_target[rid], not active_now
    return active
