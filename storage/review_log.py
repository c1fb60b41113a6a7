"""The review log's vocabulary, and which of its reviews are in force: plain data, no database.

Why a module of its own: the exports read the log as "what is in force" as the database does, and the export
layer is imported by every triage (its results writers); a results-only triage must not load SQLAlchemy and
Alembic (~1 s of CPU, ``tests/test_triage_process.py``). ``storage.db.models`` and ``storage.db.reviews`` take
these from here: one owner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

#: ``reopen``: a decision taken back from any session (the candidate pending again, the decision kept in the log);
#: ``withdraw``: a note taken back by its author, from any session (kept in the log, out of force).
REVIEW_ACTIONS: tuple[str, ...] = ("accept", "reject", "assign", "merge", "split", "move", "rename", "note", "undo",
                                   "reopen", "withdraw")
#: The review actions that decide a candidate (its status then: accepted, rejected, assigned).
DECISIONS: tuple[str, ...] = ("accept", "reject", "assign")
#: The review actions that take the review they target (``target_review_id``) out of force: an undo (of this
#: session's last review, or of an undo), a reopen (of the decision in force, from a later session) and a withdrawal
#: (of a note, by its author). Everything that reads the log as "what is in force" treats them alike
#: (:func:`in_force`).
UNDOING: tuple[str, ...] = ("undo", "reopen", "withdraw")
#: The statuses a decision leaves a candidate in: what a reopen takes back.
DECIDED_STATUSES: tuple[str, ...] = ("accepted", "rejected", "assigned")


def notes_in_force(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ``note`` rows of ``rows`` (one candidate's log, oldest first) still in force: not withdrawn, not undone.
    What a later run carries, and what a reviewer may withdraw."""
    active = in_force(rows)
    return [r for r in rows if r.get("action") == "note" and active.get(r.get("id"))]


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


#: Who signs a review the database made itself: a later run carrying a reviewer's decision, move, rename or split
#: onto the candidate its specimens came back in (``storage.db.proposals``), dated when it carried it.
MACHINE = "biodiscover"


@dataclass(frozen=True)
class Carried:
    """What a carried review (:func:`carried`) carries: ``source``, the candidate the review was made on;
    ``run``, the run that carried it (None: not recorded); ``reviewer`` and ``at``, who made the review there and
    when; ``on``, where it was written (``proposal``, ``specimens``, ``collections``: [name, count] pairs), for a
    note or a reason to say which specimens it was written about.

    Why: carried decisions were logged as the reviewer's own, at her time, with a machine sentence as her note, and
    the exports quoted "carried: its specimens came back in a later triage" as hers, backdated; her note "W1: 5 ex.,
    vials W1-A1..A5" read as written on a 2-specimen candidate of week 3 (e29 F9)."""

    source: int | None
    run: int | None = None
    reviewer: str | None = None
    at: str | None = None
    on: Mapping[str, Any] | None = None

    def words(self, action: str) -> str:
        """``rename carried from #2 by run 5``: the review as the database's action."""
        by = f"run {self.run}" if self.run is not None else "a later run"
        return f"{action} carried from #{self.source} by {by}"

    def written_on(self) -> str:
        """``on #2: 5 specimens of week1`` (``on #2: 11 specimens (week1 5, week2 4, week3 2)``): what a carried note
        or reason was written about."""
        on = self.on or {}
        where = f"on #{on.get('proposal', self.source)}"
        n = on.get("specimens")
        if not n:
            return where
        count = f"{n} specimen{'' if n == 1 else 's'}"
        places = [(str(c), int(k)) for c, k in on.get("collections") or ()]
        if len(places) == 1:
            return f"{where}: {count} of {places[0][0]}"
        return f"{where}: {count}" + (f" ({', '.join(f'{c} {k}' for c, k in places)})" if places else "")

    def origin(self) -> str:
        """``Ana Silva's, 2026-12-07, on #43: 12 specimens of week2``: whose review a carried action repeats, when she
        made it and on which candidate (:meth:`written_on`), however many runs carried it since (the source may be a
        candidate the database itself carried it to); a log that recorded no run names only where.

        Why one owner: the review app's history said this while proposals.csv and the report said only
        "rename carried from #144 by run 10 (biodiscover, …)", where #144 was a carried intermediate and the
        decision Ana Silva's on #43 (e31 F4)."""
        whose = [f"{self.reviewer}'s, {str(self.at or '')[:10]}"] if self.reviewer and self.run is not None else []
        return ", ".join([*whose, self.written_on()])


#: The sentences earlier biodiscover versions wrote as a carried review's note, signed with the reviewer's name and
#: time (read by :func:`carried` so such a log reads as a newer one does): ``(on #N) carried: …``, ``(on #N) its
#: specimens came back in a later triage; the reason given: …``, ``(on #N) its specimens, named X there, came back
#: in a later triage; the note given: …``, and ``(on #N) <the note>`` for a note.
_LEGACY = re.compile(r"^\(on #(\d+)\) (.*)$", re.S)
_LEGACY_ACTION = re.compile(r"^(?:carried: .*|its specimens(?:, named .* there,)? came back in a later triage"
                            r"(?:; the (?:reason|note) given: (?P<said>.*))?)$", re.S)


def _mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


def carried(row: Mapping[str, Any]) -> Carried | None:
    """What review ``row`` (a row of the log: ``action``, ``reviewer``, ``created_at``, ``note``, ``after``) carries
    when a later run made it on the candidate its specimens came back in; None for a reviewer's own review. A carried
    decision, move, rename or split is signed :data:`MACHINE` and dated when carried; a carried note keeps its
    author, time and text. Both record the source in ``after["carried"]``; a log written before that (its note
    ``(on #N) …``) is read from its note."""
    rec = _mapping(row.get("after")).get("carried")
    if isinstance(rec, Mapping):
        return Carried(source=rec.get("from"), run=rec.get("run"), reviewer=rec.get("reviewer"), at=rec.get("at"),
                       on=rec.get("on") if isinstance(rec.get("on"), Mapping) else None)
    m = _LEGACY.match(str(row.get("note") or ""))
    if m is None:
        return None
    return Carried(source=int(m.group(1)), reviewer=row.get("reviewer"), at=row.get("created_at"),
                   on={"proposal": int(m.group(1))})


def own_note(row: Mapping[str, Any]) -> str | None:
    """The note of review ``row`` as its reviewer wrote it (None: none): a carried review's own text, without the
    sentence earlier versions wrapped it in (``(on #2) …``; a carried action's machine sentence is no note)."""
    note = row.get("note")
    text = note.strip() if isinstance(note, str) else ""
    m = _LEGACY.match(text) if "carried" not in _mapping(row.get("after")) else None
    if m is not None:
        if row.get("action") == "note":
            text = m.group(2).strip()
        else:
            said = _LEGACY_ACTION.match(m.group(2))
            text = (said.group("said") or "").strip() if said else m.group(2).strip()
    return text or None
