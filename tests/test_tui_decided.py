"""A taxonomist's season review (e29 F2, F3, F12): decisions of earlier sessions, notes on the right candidate.

F2: ``i`` on a candidate rejected in an earlier session let the reviewer pick and confirm a species, then failed
"cannot assign proposal 3: it is rejected (undo that decision first)"; ``u`` said "nothing to undo in this session".
A decision key on a decided candidate now says who decided what, and why, before any dialog and offers to reopen it;
``R`` reopens (any session), with an optional reason, recorded in the log.
F3: ``#2`` typed in a candidate's screen did nothing but switch to the DNA tab, and the next note went to the wrong
candidate; after a decision the next candidate opens at once and the note box said only "Note on #N:".
F12: the members table read "?: ?" for a specimen named to no rank.

Real app under Pilot, real SQLite database (:mod:`fixtures.review_db`), assertions on the database and the screen.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from textual.widgets import DataTable, Label, TabbedContent

from biodiscover.storage.db import Database
from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog, TextDialog
from biodiscover.tui.screens.queue import QueueScreen
from fixtures.tui_pilot import asynctest, notes, open_proposal, reviewing, settle


def _log(db: Database, proposal_id: int) -> list[tuple[str, str, str | None]]:
    return [(r["action"], r["reviewer"], r["note"]) for r in sorted(db.reviews(proposal_id), key=lambda r: r["id"])]


@asynctest
async def test_a_decision_key_on_a_candidate_rejected_in_an_earlier_session_offers_to_reopen_it_first(
        review_db: Path) -> None:
    with Database.open(review_db) as week1:  # the earlier session
        p = week1.proposal_queue(status="pending", limit=1)[0][0]
        week1.reject(p.id, p.version, reviewer="Kari Nordmann", note="known species")
        day = week1.reviews(p.id)[0]["created_at"][:10]
    async with reviewing(review_db) as (app, db, pilot):
        await open_proposal(pilot, p.id)
        await pilot.press("u")  # this session has nothing to undo: it says where the earlier decision is taken back
        await settle(pilot)
        assert any("nothing to undo in this session" in m and "R reopens" in m for m in notes(app))
        await pilot.press("i")
        await settle(pilot)
        # no species list to pick from and confirm before a refusal: the decision in force, and the offer
        dialog = app.screen
        assert isinstance(dialog, TextDialog) and not isinstance(dialog, PickDialog)
        assert dialog.title_text.startswith(
            f"cannot assign #{p.id} as it is: #{p.id} {p.name} ({p.size} specimens) was rejected by Kari Nordmann on "
            f"{day} (“known species”). Reopen it? It goes back to pending (then assign it); the decision stays in its "
            "history.")
        await pilot.press("escape")  # leaves it as it is
        await settle(pilot)
        assert db.proposal(p.id).status == "rejected" and len(db.reviews(p.id)) == 1
        await pilot.press("i")
        await settle(pilot)
        await pilot.press(*"it is a known species after all", "enter")
        await settle(pilot)
        assert db.proposal(p.id).status == "pending"
        assert _log(db, p.id) == [("reject", "Kari Nordmann", "known species"),
                                  ("reopen", "ana", "it is a known species after all")]
        assert any(f"#{p.id} reopened, pending again: press i to assign it" in m for m in notes(app))
        assert isinstance(app.screen, DetailScreen) and app.screen.proposal_id == p.id  # it stays on screen
        history = str(app.screen.query_one("#history-text").render())
        rejected = db.reviews(p.id)[0]["target_review_id"]  # newest first: the reopen
        assert "rejected  by Kari Nordmann  “known species”" in history
        assert (f"reopened: took back the reject of review {rejected}; pending again  by ana  “it is a known species "
                "after all”") in history
        await pilot.press("i")  # now the species list
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        assert db.proposal(p.id).status == "assigned"
        assert [a for a, _, _ in _log(db, p.id)] == ["reject", "reopen", "assign"]
    db.close()


@asynctest
async def test_R_reopens_a_decided_candidate_and_u_takes_the_reopen_back_in_the_same_session(review_db: Path) -> None:
    with Database.open(review_db) as earlier:
        p = earlier.proposal_queue(status="pending", limit=1)[0][0]
        accepted = earlier.accept(p.id, p.version, reviewer="Kari Nordmann")
    async with reviewing(review_db) as (app, db, pilot):
        await open_proposal(pilot, p.id)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        assert "was accepted by Kari Nordmann on " in app.screen.title_text
        await pilot.press("enter")  # no reason given: reopened all the same
        await settle(pilot)
        now = db.proposal(p.id)
        assert (now.status, now.taxon_id) == ("pending", None)
        assert _log(db, p.id) == [("accept", "Kari Nordmann", None), ("reopen", "ana", None)]
        assert any(f"#{p.id} reopened, pending again: decide it anew" in m for m in notes(app))
        await pilot.press("R")  # pending: nothing to reopen, and no dialog
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert any(f"#{p.id} is pending: there is no decision to reopen" in m for m in notes(app))
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        back = db.proposal(p.id)
        assert (back.status, back.taxon_id, back.provisional_name) == ("accepted", accepted.taxon_id, accepted.name)
        assert db.decision_in_force(p.id)["id"] == accepted.review_id
    db.close()


@asynctest
async def test_hash_and_a_number_in_a_candidates_screen_open_that_candidate_and_the_note_box_names_it(
        review_db: Path) -> None:
    async with reviewing(review_db) as (app, db, pilot):
        first, second = db.proposal_queue(status="pending", limit=2)[0]
        await open_proposal(pilot, first.id)
        await pilot.press("#", *str(second.id), "enter")  # typed in one go, as the reviewer did
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.proposal_id == second.id
        assert screen.query_one(TabbedContent).active == "members"  # the digits went to the box, not the tabs
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        assert app.screen.title_text == f"Note on #{second.id} {second.name} ({second.size} specimens):"
        await pilot.press(*"W2: +4 ex.", "enter")
        await settle(pilot)
        assert _log(db, second.id) == [("note", "ana", "W2: +4 ex.")] and db.reviews(first.id) == []
        await pilot.press(":", *"nonsense", "enter")
        await settle(pilot)
        assert any("not a candidate number: 'nonsense'" in m for m in notes(app))
        await pilot.press("escape")  # the goto took the candidate screen's place: back is the queue
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
    db.close()


@asynctest
async def test_after_a_decision_the_note_box_names_the_candidate_now_open_and_the_one_just_decided(
        review_db: Path) -> None:
    async with reviewing(review_db) as (app, db, pilot):
        await settle(pilot)
        await pilot.press("enter")  # the queue's first candidate
        await settle(pilot)
        decided = app.screen.proposal_id
        await pilot.press("r", "enter")  # rejected: the next candidate opens at once
        await settle(pilot)
        now = db.proposal(app.screen.proposal_id)
        assert now.id != decided
        await pilot.press("o")
        await settle(pilot)
        assert app.screen.title_text == (f"Note on #{now.id} {now.name} ({now.size} specimens):\n(not on #{decided}, "
                                         f"which you rejected last: Esc, then #{decided} opens it)")
        assert str(app.screen.query_one(".dialog-title", Label).render()).startswith(f"Note on #{now.id} {now.name}")
    db.close()


@asynctest
async def test_the_members_table_says_unnamed_for_a_specimen_named_to_no_rank(review_db: Path) -> None:
    with Database.open(review_db) as db:
        p = db.proposal_queue(status="pending", limit=1)[0][0]
        member = db.proposal_detail(p.id).members[0]
    with sqlite3.connect(review_db) as raw:
        assert raw.execute("UPDATE assignments SET deepest_rank = NULL, deepest_taxon = NULL WHERE processid = ?",
                           (member.processid,)).rowcount == 1
    async with reviewing(review_db) as (_app, db, pilot):
        screen = await open_proposal(pilot, p.id)
        table = screen.query_one("#members-table", DataTable)
        cells = [str(c).strip() for c in table.get_row(member.processid)]
        assert "unnamed" in cells and not any("?" in c for c in cells)
    db.close()


@asynctest
async def test_hash_and_the_number_of_a_candidate_a_later_run_reclustered_opens_where_its_members_are_now(
        review_db: Path) -> None:
    """Season review F10: a vial labelled "cand11" met a re-run of its week; ``#11`` opened the superseded record,
    and the same specimen's candidate was #14 (then #21). ``#11`` now opens the candidate holding its members,
    through every later re-clustering, and says so, naming every run that re-clustered it; a candidate never
    re-clustered opens as itself."""
    with Database.open(review_db) as db:
        (old, other), _ = db.proposal_queue(status="pending", limit=2)
        members = [m.processid for m in db.proposal_detail(old.id).members]
        second = db.start_run("triage", {"input": "week3.csv"})
        (again,) = db.write_proposals(second, [{"members": members}])
        third = db.start_run("triage", {"input": "week3.csv"})
        (latest,) = db.write_proposals(third, [{"members": members}])
        assert db.proposal(old.id).status == db.proposal(again).status == "superseded"
        moved = db.successor(old.id)
        assert (moved.proposal.id, moved.runs) == (latest, (second, third))
        assert db.successor(again) == (db.proposal(latest), (third,))
        assert db.successor(latest) is None and db.successor(other.id) is None
        name = db.proposal(latest).name
    async with reviewing(review_db) as (app, db, pilot):
        await settle(pilot)
        await pilot.press("#", *str(old.id), "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen) and app.screen.proposal_id == latest
        # both re-triages, not only the first (e31 F23: "by run 9: … in #179", which run 10 made)
        assert any(m.startswith(f"#{old.id} was re-clustered by runs {second} and {third}: its members are in "
                                f"#{latest} {name} "
                                "(pending) now") for m in notes(app)), notes(app)
        await pilot.press("#", *str(other.id), "enter")
        await settle(pilot)
        assert app.screen.proposal_id == other.id
    db.close()


@asynctest
async def test_R_on_a_rejection_a_later_run_repeated_names_the_repetition_and_reopens_it_with_it(
        review_db: Path) -> None:
    """Reopening week 3's rejected bad read left the re-run's rejection of the same specimen (citing hers) in force
    (e29): the dialog names the repetitions, and they are reopened with it."""
    from fixtures.db_views import proposal_members

    with Database.open(review_db) as earlier:
        p = earlier.proposal_queue(status="pending", limit=1)[0][0]
        earlier.reject(p.id, p.version, reviewer="Kari Nordmann", note="contaminant")
        run = earlier.start_run("triage", {}, backup=False)
        (again,) = earlier.write_proposals(run, [{"members": list(proposal_members(earlier, p.id)),
                                                  "parent_rank": p.parent_rank, "parent_name": p.parent_name}])
        earlier.finish_run(run, "completed")
        assert earlier.proposal(again).status == "rejected"
    async with reviewing(review_db) as (app, db, pilot):
        await open_proposal(pilot, p.id)
        await pilot.press("R")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        assert (f"the decision stays in its history. Later runs rejected its specimens again citing this rejection: "
                f"#{again} is reopened with it.") in app.screen.title_text
        await pilot.press("enter")
        await settle(pilot)
        assert (db.proposal(p.id).status, db.proposal(again).status) == ("pending", "pending")
        assert any(f"#{p.id} reopened, pending again: decide it anew (#{again} reopened with it)" in m
                   for m in notes(app)), notes(app)
        # u takes the whole reopen back, as R made it with one key: the repetition is rejected again too
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        assert (db.proposal(p.id).status, db.proposal(again).status) == ("rejected", "rejected")
        assert any(f"undid reopen of #{p.id} (review " in m and f"); #{again}, reopened with it, is rejected again"
                   in m for m in notes(app)), notes(app)
        db.reopen(p.id, db.proposal(p.id).version, reviewer="ana")
        # rejected again, on second thought: r on the re-run's candidate of the same specimens offers her reason
        db.reject(p.id, db.proposal(p.id).version, reviewer="ana", note="bad read, re-sequenced")
        await open_proposal(pilot, again)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        assert app.screen.query_one("#dialog-input").value == f"same specimens as #{p.id} rejected: bad read, " \
                                                               "re-sequenced"
    db.close()
