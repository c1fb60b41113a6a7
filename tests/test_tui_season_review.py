"""A taxonomist's season review of four weekly plates (e31): what the review app said wrong after re-triages.

F1: after a re-triage carried #54's rejection to its twin #155 (the same 3 specimens) and the reviewer reopened
both, merging #155 into #54 asked "… 6 specimens under order Diptera?" and said "now 6 specimens" for 3; ``a`` on
#54 nudged towards week 3's #99 (0.0 % away too) and left the twin pending.

Real SQLite database (:mod:`fixtures.review_db`), the real app driven with Pilot.
"""

from __future__ import annotations

from pathlib import Path

from biodiscover.storage.db import Database
from textual.widgets import Input, OptionList, Static

from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog, TextDialog
from fixtures.tui_pilot import asynctest, notes, open_proposal, press_on, reviewing, settle


def _retriaged(db: Database, p_id: int, members: list[str], collection: str) -> int:
    """A later run proposing ``members`` again, with ``p_id``'s evidence (its consensus barcode: 0.0 % away)."""
    p, detail = db.proposal(p_id), db.proposal_detail(p_id)
    run = db.start_run("triage", {}, collection=collection, backup=False)
    (new,) = db.write_proposals(run, [{"members": members, "parent_taxon_id": p.parent_taxon_id,
                                       "evidence": detail.evidence}])
    db.finish_run(run, "completed")
    return int(new)


def _season(path: Path) -> tuple[int, int, int]:
    """The first pending candidate of at least 3 specimens, rejected, proposed again by a re-triage (rejected
    again, citing it), then reopened with its twin; and week 3's candidate (other specimens, the same consensus:
    0.0 % away, a lower id than the twin's): (candidate, week 3's, twin)."""
    with Database.open(path) as db:
        pending = db.proposal_queue(status="pending", limit=100)[0]
        p = next(p for p in pending if p.size >= 3)
        q = next(q for q in pending if q.id != p.id)
        week3 = _retriaged(db, p.id, sorted(db.member_sets([q.id])[q.id]), "week3")
        db.reject(p.id, db.proposal(p.id).version, reviewer="Ana Silva", note="same as a known species")
        twin = _retriaged(db, p.id, sorted(db.member_sets([p.id])[p.id]), "week2")
        assert db.proposal(twin).status == "rejected"
        assert db.reopen(p.id, db.proposal(p.id).version, reviewer="Ana Silva").reopened == (twin,)
    return p.id, week3, twin


@asynctest
async def test_a_nudges_to_the_twin_holding_the_same_specimens_and_merging_it_counts_them_once(
        review_db: Path) -> None:
    p, week3, twin = _season(review_db)
    async with reviewing(review_db) as (app, db, pilot):
        size = db.proposal(p).size
        assert [(db.proposal(i).status, db.proposal(i).size) for i in (week3, twin)][1] == ("pending", size)
        assert db.proposal(week3).status == "pending"
        await press_on(pilot, p, "a")
        assert isinstance(app.screen, PickDialog), notes(app)
        assert app.screen.title_text.startswith(f"#{twin} "), app.screen.title_text  # not week 3's, as near
        assert "(and 1 other within the threshold)" in app.screen.title_text
        await pilot.press("enter")  # merge it in first: the merge list, the twin on top
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        (first, _), label = app.screen.options[0]
        assert first.id == twin and label.startswith("the same specimens · 0.0% from"), label
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        question = app.screen.question
        assert f": {size} specimens (the same {size} in both) under " in question, question
        await pilot.press("y")
        await settle(pilot)
        assert (db.proposal(p).size, db.proposal(twin).status) == (size, "merged")
        assert any(f"#{twin} merged into #{p}: now {size} specimens (the same {size} in both) under " in m
                   for m in notes(app)), notes(app)
    db.close()



@asynctest
async def test_the_reject_box_says_what_enter_does_with_the_reason_it_opens_with(review_db: Path) -> None:
    """F10: ``r`` on #54, twin of the rejected #24, opened with "same as #24 rejected: …" in the box under the hint
    "Enter alone rejects without one", and Enter stored that reason. The hint says what Enter does with what the box
    holds; Ctrl-U, Enter rejects with none."""
    p, _week3, twin = _season(review_db)
    with Database.open(review_db) as db:
        db.reject(p, db.proposal(p).version, reviewer="Ana Silva", note="Culicidae, known Aedes vexans")
        plain = next(o for o in db.proposal_queue(status="pending", limit=100)[0] if o.id not in (p, twin))
    async with reviewing(review_db) as (app, db, pilot):
        await press_on(pilot, twin, "r")
        assert isinstance(app.screen, TextDialog)
        reason = f"same specimens as #{p} rejected: Culicidae, known Aedes vexans"
        assert app.screen.query_one("#dialog-input", Input).value == reason
        assert app.screen.title_text.endswith(
            "Reason, optional (Enter rejects with this reason; clear it (Ctrl-U) for none):"), app.screen.title_text
        await pilot.press("enter")
        await settle(pilot)
        assert max((r for r in db.reviews(twin) if r["action"] == "reject"), key=lambda r: r["id"])["note"] == reason
        await press_on(pilot, plain.id, "r")  # an empty box: Enter alone rejects without one
        assert isinstance(app.screen, TextDialog)
        assert app.screen.title_text.endswith("Reason, optional (Enter alone rejects without one):")
        await pilot.press("escape")
        await settle(pilot)
    db.close()


@asynctest
async def test_one_down_and_enter_withdraws_the_second_note_as_the_highlight_shows(review_db: Path) -> None:
    """F12: ``O`` on #8 with two of her notes, one ↓, Enter: the first note was withdrawn (the first ↓ only moved
    the focus into the list, the hint saying "↓↑: move"). Each ↓ moves the highlight, in every pick list."""
    with Database.open(review_db) as earlier:
        p = earlier.proposal_queue(status="pending", limit=1)[0][0]
        first = earlier.note(p.id, "W1: 5 ex., vials W1-A1..A5", reviewer="ana").review_id
        second = earlier.note(p.id, "one leg lost in transit", reviewer="ana").review_id
    async with reviewing(review_db) as (app, db, pilot):
        await press_on(pilot, p.id, "O")
        assert isinstance(app.screen, PickDialog)
        assert [v for v, _ in app.screen.options] == [first, second]
        options = app.screen.query_one(OptionList)
        assert options.highlighted == 0
        await pilot.press("down")
        await settle(pilot)
        assert options.highlighted == 1 and options.has_focus
        await pilot.press("enter")
        await settle(pilot)
        (withdrawal,) = [r for r in db.reviews(p.id) if r["action"] == "withdraw"]
        assert withdrawal["target_review_id"] == second
    db.close()


@asynctest
async def test_a_merged_candidates_header_says_where_its_members_are_now_not_a_reopened_rejection(
        review_db: Path) -> None:
    """F9: #155, the re-triage's twin of #54 (rejected again citing #54, reopened with it, then merged into #54,
    which run 10 re-clustered into #190) still read "⚠ same members as #54, rejected by a reviewer: not queued
    again". The header follows the state in force: merged into #54, whose members are now in #190."""
    p, _week3, twin = _season(review_db)
    with Database.open(review_db) as db:
        db.merge([p, twin], [db.proposal(p).version, db.proposal(twin).version], reviewer="Ana Silva")
        now = _retriaged(db, p, sorted(db.member_sets([p])[p]), "week2")
        assert (db.proposal(p).status, db.proposal(p).superseded_by) == ("superseded", now)
        run = db.proposal(now).run_id
    async with reviewing(review_db) as (_app, db, pilot):
        screen = await open_proposal(pilot, twin)
        header = str(screen.query_one("#detail-summary", Static).render())
        assert "rejected by a reviewer" not in header, header
        assert (f"merged into #{p}, whose members are now in #{now} {db.proposal(now).name} (pending; re-clustered "
                f"by run {run})") in header, header
        # the rejection it repeated stands in its history, as the reopen that took it back
        assert f"same members as #{p}, which a reviewer rejected" in str(screen.query_one("#history-text").render())
    db.close()


@asynctest
async def test_the_review_of_a_run_triaged_again_says_which_run_holds_its_specimens_now(review_db: Path) -> None:
    """F11: ``review --run 2`` of week 2, triaged again by run 10, read "0 of 0 … none left to review" while week 2's
    33 candidates were pending under run 10; the html export said so already. The empty queue says where they are."""
    from biodiscover.tui.app import ReviewApp

    with Database.open(review_db) as db:
        pending = db.proposal_queue(status="pending", limit=1000)[0]
        first = {p.run_id for p in pending}.pop()
        sets = db.member_sets([p.id for p in pending])
        again = db.start_run("triage", {}, collection="week2", backup=False)
        db.write_proposals(again, [{"members": sorted(sets[p.id]), "parent_taxon_id": p.parent_taxon_id}
                                   for p in pending])
        db.finish_run(again, "completed")
        assert db.run_superseded(first) == {"candidates": len(pending), "by_runs": [again]}
    db = Database.open(review_db)
    app = ReviewApp(db, run_id=first, reviewer="ana", halfcell_images=True, poll_seconds=3600)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        line = str(app.screen.query_one("#queue-query", Static).render())
        assert line.startswith("0 of 0") and (f"none left to review; its specimens were triaged again by run {again}: "
                                              f"review --run {again} (Tab shows decided ones)") in line, line
    db.close()


@asynctest
async def test_u_after_a_re_triage_carried_her_review_says_where_it_went(review_db: Path) -> None:
    """F21: a note (or rename) made in the app, then a re-triage of the week re-clustered the candidate and carried
    it on; ``u`` said "cannot undo review 12 (rename): proposal 90 changed after it …; undo the later reviews first",
    and the later change was the machine's, nothing she could undo. It says where the candidate went and that her
    review went with it; at once, not after "Undo your last decision: note of #90?", y (e35)."""
    async with reviewing(review_db) as (app, db, pilot):
        p = db.proposal_queue(status="pending", limit=1)[0][0]
        await open_proposal(pilot, p.id)
        await pilot.press("o")
        await settle(pilot)
        await pilot.press(*"W2: +4 ex.", "enter")
        await settle(pilot)
        assert [r["action"] for r in db.reviews(p.id)] == ["note"]
        new = _retriaged(db, p.id, sorted(db.member_sets([p.id])[p.id]), "week2")
        run = db.proposal(new).run_id
        assert [(r["action"], r["note"]) for r in db.reviews(new)] == [("note", "W2: +4 ex.")]  # carried there
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen), (app.screen, notes(app))  # not asked first
        assert (f"cannot undo note of #{p.id}: #{p.id} was re-clustered by run {run}: its members are in #{new}, "
                f"which carries your reviews of it; open #{new} to change them") in notes(app), notes(app)
        assert [r["action"] for r in db.reviews(p.id)] == ["note"]
    db.close()
