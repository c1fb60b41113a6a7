"""A note on the wrong candidate, withdrawn from a later session (e29 F2/F3).

A taxonomist's season review wrote "W2: +4 ex. (ex-#5) merged" on *Harpalus latus* #7 (the next candidate had
opened after a decision, or ``#2`` switched tabs instead of candidates); once the review app was closed, undo
(per session) could not take it back, and every export quoted it on a specimen it does not describe.
``Database.withdraw_note`` takes back a note its author wrote, from any session: a ``withdraw`` row targets it (kept
in the log, out of force), with an optimistic version as every review; ``O`` in the review app picks one of her
notes on the candidate on screen. The exports stop quoting it; the history says it was withdrawn.

Real SQLite database, the real review API, the real review app under Pilot and the real CLI.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from biodiscover.storage.db import Database
from biodiscover.storage.errors import DatabaseError, StaleProposalError
from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.dialogs import PickDialog
from fixtures.inprocess import run_cli
from fixtures.review_db import build_review_db
from fixtures.tui_pilot import asynctest, notes, open_proposal, reviewing, settle

WRONG = "W2: +4 ex. (ex-#5) merged; all 9 on one haplotype"
RIGHT = "det. Kari Nordmann 2026 by male genitalia"


def _export(home: Path, db: Path, run: int, fmt: str, out: Path) -> None:
    proc = run_cli("export", "--db", str(db), "--run", str(run), "-f", fmt, "-o", str(out),
                   env={"XDG_CONFIG_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def test_her_note_on_the_wrong_candidate_is_withdrawn_in_a_later_session_and_the_exports_stop_quoting_it(
        tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=6)
    p = fx.proposal_ids[0]
    with Database.open(fx.path) as week2:  # the session that wrote it
        wrong = week2.note(p, WRONG, reviewer="Kari Nordmann").review_id
        right = week2.note(p, RIGHT, reviewer="Kari Nordmann").review_id
        other = week2.note(p, "legs lost in transit", reviewer="Ana Silva").review_id
    db = Database.open(fx.path)  # a later session
    try:
        seen = db.proposal(p).version
        with pytest.raises(StaleProposalError, match="changed since you loaded it"):
            db.withdraw_note(wrong, seen - 1, reviewer="Kari Nordmann")
        with pytest.raises(DatabaseError, match=rf"cannot withdraw note {other} on proposal {p}: it is Ana Silva's; "
                                                "only its author withdraws it"):
            db.withdraw_note(other, seen, reviewer="Kari Nordmann")
        withdrawn = db.withdraw_note(wrong, seen, reviewer="Kari Nordmann", note="meant for #2")
        assert (withdrawn.action, withdrawn.proposal_id, withdrawn.versions) == ("withdraw", p, {p: seen})
        with pytest.raises(DatabaseError, match=rf"cannot withdraw note {wrong} on proposal {p}: it is withdrawn "
                                                "already"):
            db.withdraw_note(wrong, seen, reviewer="Kari Nordmann")
        with pytest.raises(DatabaseError, match=rf"cannot withdraw review {withdrawn.review_id}: it is a withdraw"):
            db.withdraw_note(withdrawn.review_id, seen, reviewer="Kari Nordmann")
        # the log keeps the note, word for word; the withdrawal names it
        log = sorted(db.reviews(p), key=lambda r: r["id"])
        assert [(r["action"], r["note"], r["target_review_id"]) for r in log] == [
            ("note", WRONG, None), ("note", RIGHT, None), ("note", "legs lost in transit", None),
            ("withdraw", "meant for #2", wrong)]
    finally:
        db.close()
    _export(tmp_path, fx.path, fx.run_id, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        row = {int(r["proposal_id"]): r for r in csv.DictReader(fh)}[p]
    assert "W2: +4 ex." not in row["review_notes"] and "meant for #2" not in row["review_notes"]
    assert RIGHT in row["review_notes"] and "legs lost in transit" in row["review_notes"]
    _export(tmp_path, fx.path, fx.run_id, "json", tmp_path / "run.json")
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    review = next(x for x in doc["proposals"] if x["proposal_id"] == p)["review"]
    assert [n["text"] for n in review["notes"]] == [RIGHT, "legs lost in transit"]
    assert [(h["review_id"], h["action"], h["undone_by"], h["undoes"]) for h in review["history"]] == [
        (wrong, "note", withdrawn.review_id, None), (right, "note", None, None), (other, "note", None, None),
        (withdrawn.review_id, "withdraw", None, wrong)]
    _export(tmp_path, fx.path, fx.run_id, "html", tmp_path / "r.html")
    assert "W2: +4 ex." not in (tmp_path / "r.html").read_text(encoding="utf-8")


@asynctest
async def test_O_withdraws_her_own_note_from_the_candidates_screen_and_u_puts_it_back(review_db: Path) -> None:
    with Database.open(review_db) as earlier:
        p = earlier.proposal_queue(status="pending", limit=1)[0][0]
        mine = earlier.note(p.id, WRONG, reviewer="ana").review_id
        earlier.note(p.id, "legs lost in transit", reviewer="Ana Silva")
    async with reviewing(review_db) as (app, db, pilot):
        await open_proposal(pilot, p.id)
        await pilot.press("O")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, PickDialog) and dialog.title_text.startswith(f"Withdraw a note on #{p.id} {p.name}?")
        assert [label for _, label in dialog.options] == [f"“{WRONG}” (ana, {db.reviews(p.id)[-1]['created_at'][:10]})",
                                                          f"“legs lost in transit” (Ana Silva, "
                                                          f"{db.reviews(p.id)[0]['created_at'][:10]})"]
        await pilot.press(*"legs", "enter")  # another reviewer's: refused, the dialog stays
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        assert any("that note is Ana Silva's: only its author withdraws it" in m for m in notes(app))
        await pilot.press("ctrl+u", *"W2", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        (withdrawal,) = [r for r in db.reviews(p.id) if r["action"] == "withdraw"]
        assert (withdrawal["reviewer"], withdrawal["target_review_id"]) == ("ana", mine)
        assert any(f"note withdrawn from #{p.id}" in m for m in notes(app))
        history = str(app.screen.query_one("#history-text").render())
        assert f"note (withdrawn, review {withdrawal['id']})  by ana  “{WRONG}”" in history, history
        assert f"withdrew the note of review {mine}  by ana" in history, history
        await pilot.press("u", "y")  # this session's: undone, the note is in force again
        await settle(pilot)
        assert [r["action"] for r in sorted(db.reviews(p.id), key=lambda r: r["id"])] == [
            "note", "note", "withdraw", "undo"]
        await pilot.press("O")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog) and len(app.screen.options) == 2
    db.close()
