"""Behaviour of the review app on a real database: press keys, check what the database holds.

Every test runs the real :class:`biodiscover.tui.app.ReviewApp` under Textual's Pilot on a
SQLite file filled through the storage API by :mod:`fixtures.review_db`, and
asserts on the database (status, names, review log) and on the notifications
the app posted.
"""

from __future__ import annotations

import re

import time
from pathlib import Path
from typing import Any

import pytest

from biodiscover.storage.db import Database
from fixtures.tui_pilot import asynctest, notes, open_detail, settle
from textual.widgets import Input, Label, SelectionList

from biodiscover.tui.app import ReviewApp
from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.dialogs import PickDialog, PickManyDialog, TextDialog
from biodiscover.tui.screens.help import HelpScreen
from biodiscover.tui.screens.queue import QueueQuery, QueueScreen
from biodiscover.tui.screens.taxonomy import TaxonomyScreen
from biodiscover.tui.widgets.dna_panel import DnaPanel, variable_sites
from biodiscover.tui.widgets.histogram import DistanceHistogram, bin_distances
from biodiscover.tui.widgets.image_panel import ImagePanel
from biodiscover.tui.widgets.proposal_table import ProposalTable
from fixtures.db_views import proposal_members

SIZE = (80, 24)


def log_of(db: Database, proposal_id: int) -> list[dict[str, Any]]:
    """The review log of one proposal, oldest first."""
    return sorted(db.reviews(proposal_id), key=lambda r: r["id"])


def make_app(path: Path, **kw) -> tuple[ReviewApp, Database]:
    db = Database.open(path)
    return ReviewApp(db, reviewer="ana", halfcell_images=True, **kw), db


@asynctest
async def test_queue_shows_database_page_and_counts(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        table = app.screen.query_one(ProposalTable)
        rows, total = db.proposal_queue(status="pending", limit=100)
        assert [p.id for p in table.rows_shown] == [p.id for p in rows]
        assert table.total == total == db.queue_counts()["pending"]
        counts = str(app.screen.query_one("#counts").render())
        assert f"pending {total}" in counts and "accepted 0" in counts
    db.close()


@asynctest
async def test_accept_with_suggested_name_is_written_at_once(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.query_one(ProposalTable).current
        suggested = db.suggest_name(first.id)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        assert app.screen.query_one(Input).value == suggested
        await pilot.press("enter")
        await settle(pilot)
        # A second, independent connection sees the decision while the app is still running.
        with Database.open(review_db) as other:
            p = other.proposal(first.id)
            assert p.status == "accepted" and p.provisional_name == suggested
            log = log_of(other, first.id)
            assert [r["action"] for r in log] == ["accept"] and log[0]["reviewer"] == "ana"
            assert any(t.name == suggested for t in other.taxonomy().provisional())
        assert any(f"accepted as {suggested}" in m for m in notes(app))
        # The cursor moved on to the next pending proposal.
        assert app.screen.query_one(ProposalTable).current.id != first.id
    db.close()


@asynctest
async def test_accept_with_edited_name(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.query_one(ProposalTable).current
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("ctrl+u")  # clear the suggestion, then type a name
        await pilot.press(*"Saphuius sp. BD-0042")
        await pilot.press("enter")
        await settle(pilot)
        assert db.proposal(first.id).provisional_name == "Saphuius sp. BD-0042"
    db.close()


@asynctest
async def test_reject_then_undo(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.query_one(ProposalTable).current
        await pilot.press("r", "enter")
        await settle(pilot)
        assert db.proposal(first.id).status == "rejected"
        assert first.id not in [p.id for p in app.screen.query_one(ProposalTable).rows_shown]
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert db.proposal(first.id).status == "pending"
        assert [r["action"] for r in log_of(db, first.id)] == ["reject", "undo"]
        assert any(f"undid reject of #{first.id}" in m for m in notes(app))
    db.close()


@asynctest
async def test_decision_refused_when_proposal_changed_underneath(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        seen = app.screen.query_one(ProposalTable).current
        with Database.open(review_db) as other:  # another reviewer decides first
            other.reject(seen.id, seen.version, reviewer="bo")
        await pilot.press("r", "enter")
        await settle(pilot)
        assert any("refused" in m for m in notes(app))
        log = log_of(db, seen.id)
        assert [(r["action"], r["reviewer"]) for r in log] == [("reject", "bo")]
    db.close()


@asynctest
async def test_detail_shows_evidence_from_database(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pid = app.screen.query_one(ProposalTable).current.id
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.proposal_id == pid
        detail = db.proposal_detail(pid)
        members = screen.query_one("#members-table")
        assert members.row_count == len(detail.members)
        dna = screen.query_one(DnaPanel)
        barcoded = [m.processid for m in detail.members if m.dna_barcode]
        rows = [label for label, _ in dna.data.rows]
        assert len(rows) == min(40, len(barcoded)) and rows[0] == barcoded[0] and rows[-1] == barcoded[-1]
        assert rows == [pid for pid in barcoded if pid in set(rows)]  # an even sample, in the members' order
        # the nearest known species' barcode is the first row of the same alignment
        near = detail.evidence.nearest_known
        assert dna.data.reference is not None and dna.data.reference[0] == near.species
        assert dna.data.reference[1].replace("-", "") == near.barcode.upper()
        assert len({len(row) for _, row in dna.data.rows} | {len(dna.data.reference[1])}) == 1
        assert dna.variable_site_count == len(variable_sites(dna.data.consensus, [r for _, r in dna.data.rows]))
        hist = screen.query_one(DistanceHistogram)
        expected = bin_distances(detail.evidence.within_distances, detail.evidence.nearest_known_distances)
        assert hist.binned == expected
        assert sum(hist.binned.within) == len(detail.evidence.within_distances)
        summary = str(screen.query_one("#detail-summary").render())
        assert detail.summary.nearest_species in summary
        dominant = detail.evidence.bin.dominant
        assert f"BIN: {dominant}" in str(screen.query_one("#nearest").render())
        await pilot.press("4")
        await settle(pilot)
        images = screen.query_one(ImagePanel)
        with_images = [m for m in detail.members if m.image_path]
        assert len(images.images) == len(with_images) > 0
        assert f"photo 1/{len(with_images)}" in images.caption
        assert images.reference is not None and images.reference[0] == near.species
    db.close()


@asynctest
async def test_detail_next_after_decision_walks_the_queue(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        order = [p.id for p in db.proposal_queue(status="pending", limit=6)[0]]
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("r", "enter")  # reject the first; the detail moves on to the second
        await settle(pilot)
        assert app.screen.proposal_id == order[1]
        await pilot.press("j")
        await settle(pilot)
        assert app.screen.proposal_id == order[2]
        await pilot.press("k")
        await settle(pilot)
        assert app.screen.proposal_id == order[1]
        assert db.proposal(order[0]).status == "rejected"
        await pilot.press("u", "y")  # undo shows the proposal it gave back
        await settle(pilot)
        assert db.proposal(order[0]).status == "pending" and app.screen.proposal_id == order[0]
        # back to the queue after walking on with j: the cursor is on the proposal the reviewer was looking at
        # (it went back to where the detail was opened: found while reviewing the demo), on the row that took
        # its place after a decision took it out of the queue
        for key in ("j", "j", "escape"):  # each let through: a second j's load can lag behind Escape on a busy machine
            await pilot.press(key)
            await settle(pilot)
        table = app.screen.query_one(ProposalTable)
        assert isinstance(app.screen, QueueScreen) and table.current.id == order[2] and table.cursor_row == 2
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("r", "enter")
        await settle(pilot)
        assert app.screen.proposal_id == order[3]
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.query_one(ProposalTable).current.id == order[3] and table.cursor_row == 2
    db.close()


@asynctest
async def test_split_merge_move_rename_note(review_db: Path) -> None:
    app, db = make_app(review_db)
    big = max(db.proposal_queue(status="pending", limit=100)[0], key=lambda p: p.size)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.set_query(screen.query_state.__class__(status="pending", sort="size", descending=True))
        await settle(pilot)
        assert screen.query_one(ProposalTable).current.id == big.id
        # split: tick the first two members (n: none of the proposed ones ticked)
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("n")
        assert isinstance(app.screen, PickManyDialog)
        picked = [app.screen.options[0][0], app.screen.options[1][0]]
        await pilot.press("space", "down", "space", "enter")
        await settle(pilot)
        after = db.proposal(big.id)
        assert after.size == big.size - 2
        new = [p for p in db.proposal_queue(status="pending", limit=500)[0]
               if set(proposal_members(db, p.id)) == set(picked)]
        assert len(new) == 1
        # rename and note
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("ctrl+u", *"Big one", "enter")
        await settle(pilot)
        assert db.proposal(big.id).provisional_name == "Big one"
        await pilot.press("o")
        await settle(pilot)
        await pilot.press(*"two haplotypes", "enter")
        await settle(pilot)
        assert [r["note"] for r in log_of(db, big.id) if r["action"] == "note"] == ["two haplotypes"]
        # merge the split-off proposal back (same parent)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        await pilot.press(*f"#{new[0].id} ", "enter")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert db.proposal(new[0].id).status == "merged"
        assert db.proposal(big.id).size == big.size
        # move under another taxon, chosen by typing its name
        target = next(t for t in db.taxonomy().graph.nodes if db.taxonomy().node(t).rank == "genus"
                      and t != big.parent_taxon_id)
        name = db.taxonomy().node(target).name
        await pilot.press("v")
        await settle(pilot)
        await pilot.press(*f"genus {name}", "enter")
        await settle(pilot)
        assert "to genus " + name in app.screen.question  # the confirmation says where, before anything is written
        await pilot.press("y")
        await settle(pilot)
        assert db.proposal(big.id).parent_taxon_id == target
        assert any(f"moved from genus {big.parent_name} to genus {name}" in n for n in notes(app))
        actions = [r["action"] for r in log_of(db, big.id)]
        assert actions == ["split", "rename", "note", "merge", "move"]
    db.close()


@asynctest
async def test_split_dialog_says_which_members_are_ticked_without_colour(review_db: Path) -> None:
    """Textual's checkbox tells a ticked member from an unticked one by colour alone: the row's own text carries
    the tick and a line counts and names the ticked ones, so a monochrome terminal shows what is split off."""
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot)
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("n")  # start from none ticked (the dialog ticks a proposed group)
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, PickManyDialog)
        rows = dialog.query_one(SelectionList)

        def shown() -> list[str]:
            return [rows.render_line(y).text for y in range(3)]

        def count() -> str:
            return str(dialog.query_one("#dialog-count", Label).render())

        before = shown()
        assert count().startswith(f"0 of {len(dialog.options)} ticked")
        await pilot.press("space", "down", "down", "space")
        await pilot.pause()
        after = shown()
        assert after[1] == before[1]  # the unticked row reads as it did
        assert after[0] != before[0] and after[2] != before[2]
        assert "✓" in after[0] and "✓" in after[2] and "✓" not in after[1]
        ticked = [dialog.options[0][0], dialog.options[2][0]]
        assert count().startswith(f"2 of {len(dialog.options)} ticked: {ticked[0]}, {ticked[1]}")
        await pilot.press("space")  # untick the third again
        await pilot.pause()
        assert shown()[2] == before[2] and count().startswith(f"1 of {len(dialog.options)} ticked: {ticked[0]}")
    db.close()


@asynctest
async def test_sort_and_filter_go_through_the_database(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")  # id → size (largest first)
        await settle(pilot)
        table = app.screen.query_one(ProposalTable)
        sizes = [p.size for p in table.rows_shown]
        assert sizes == sorted(sizes, reverse=True)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press(*"size>=5 identity<=93", "enter")
        await settle(pilot)
        rows, total = db.proposal_queue(status="pending", min_size=5, max_identity=0.93, sort="size",
                                        descending=True, limit=100)
        assert [p.id for p in table.rows_shown] == [p.id for p in rows] and table.total == total
        assert all(p.size >= 5 and p.nearest_identity <= 0.93 for p in table.rows_shown)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press(*"size>=banana", "enter")
        await settle(pilot)
        assert any("cannot read filter term" in m for m in notes(app))
    db.close()


@asynctest
async def test_the_merge_list_offers_the_closest_candidate_first_with_its_distance(review_db: Path) -> None:
    """After a split, the part split off records the part that stays as its closest candidate: its merge list
    puts that one first and says how far it is ("Merging is guesswork": the list gave no distances)."""
    from biodiscover.tui.decisions import recomputed

    db = Database.open(review_db)
    big = max(db.proposal_queue(status="pending", limit=100)[0], key=lambda p: p.size)
    detail = db.proposal_detail(big.id)
    members = [m.processid for m in detail.members]
    keep, off = members[2:], members[:2]
    new_id = db.split(big.id, big.version, off, reviewer="ana",
                      evidence=recomputed(db, [detail], [keep, off])).new_proposal_id
    nb = db.proposal_detail(new_id).evidence.between_distance
    db.close()
    assert nb is not None
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.set_query(screen.query_state.__class__(status="pending", search=off[0]))
        await settle(pilot)
        await open_detail(pilot)
        assert app.screen.proposal_id == new_id
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        (first, label), rest = app.screen.options[0], app.screen.options[1:]
        assert first[0].id == big.id and label.startswith(f"{nb.distance * 100:.1f}% from #{new_id} · #{big.id} ")
        # every row says how far it is, and the list is by that distance (it went by size after the first row)
        said = [float(re.match(r"^≈?([\d.]+)% from #", lab)[1]) for _, lab in app.screen.options]
        assert len(said) == len(rest) + 1 and said == sorted(said)
    db.close()


@asynctest
async def test_taxonomy_marks_provisional_and_jumps_to_proposals(review_db: Path) -> None:
    app, db = make_app(review_db)
    first = db.proposal_queue(status="pending", limit=1)[0][0]
    result = db.accept(first.id, first.version, reviewer="ana")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        await pilot.press("P")  # next provisional taxon
        await settle(pilot)
        node = screen.current_taxon
        assert node.provisional and node.id == result.taxon_id
        assert "provisional" in str(screen.query_one("#taxon-tree").cursor_node.label)
        await pilot.press("p")  # the proposal that created it
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen) and app.screen.proposal_id == first.id
        await pilot.press("escape")
        await settle(pilot)
        # Back on the tree: go to the parent genus, jump to its proposals.
        tree = app.screen.query_one("#taxon-tree")
        tree.move_cursor(tree.cursor_node.parent)
        parent = app.screen.current_taxon
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        shown = app.screen.query_one(ProposalTable).rows_shown
        rows, _total = db.proposal_queue(parent=parent.id, parent_subtree=True, limit=100)
        assert {p.id for p in shown} == {p.id for p in rows} and first.id in {p.id for p in shown}
    db.close()


@asynctest
async def test_keymap_remaps_binding_ids_and_help_lists_them(review_db: Path) -> None:
    app, db = make_app(review_db, keymap={"proposal.reject": "z"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.query_one(ProposalTable).current
        await pilot.press("r")
        await settle(pilot)
        assert db.proposal(first.id).status == "pending"
        await pilot.press("z", "enter")
        await settle(pilot)
        assert db.proposal(first.id).status == "rejected"
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        body = str(app.screen.query_one("#help-body").render())
        assert "proposal.reject" in body and "proposal.accept" in body
        line = next(t for t in body.splitlines() if "proposal.reject" in t)
        assert line.split()[0] == "z"
    db.close()


@asynctest
async def test_command_palette_runs_proposal_actions(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.query_one(ProposalTable).current
        await pilot.press("ctrl+p")
        await pilot.press(*"proposal: reject")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")  # no reason
        await settle(pilot)
        assert db.proposal(first.id).status == "rejected"
    db.close()


@asynctest
async def test_progress_of_a_running_batch_job_is_polled(review_db: Path) -> None:
    writer = Database.open(review_db)
    run = writer.start_run("run", {"collection": "night"}, total=1000, backup=False)
    writer.heartbeat(run, done=100, total=1000)
    app, db = make_app(review_db, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = str(app.screen.query_one("#run").render())
        assert f"run {run}" in status and "100/1,000" in status
        writer.heartbeat(run, done=750)  # the batch job advances in another connection
        deadline = time.monotonic() + 5
        while "750/1,000" not in str(app.screen.query_one("#run").render()) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert "750/1,000" in str(app.screen.query_one("#run").render())
    writer.close()
    db.close()


@asynctest
async def test_fast_keys_never_decide_on_a_proposal_already_left_behind(review_db: Path) -> None:
    """A second decision key pressed before the next proposal is on screen is refused, not applied."""
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        order = [p.id for p in db.proposal_queue(status="pending", limit=3)[0]]
        await pilot.press("enter")
        await settle(pilot)
        # Two key handlers back to back, before the worker of the first could report (Pilot would
        # wait for idle between two presses): exactly what a fast typist produces on a slow disk.
        shown = app.screen.current_proposal()
        app.screen.reject_with(shown, "")  # the reason dialog answered twice
        app.screen.reject_with(shown, "")
        await settle(pilot)
        assert db.proposal(order[0]).status == "rejected"
        assert db.proposal(order[1]).status == "pending"
        assert any("still saving" in m for m in notes(app))
        assert app.screen.proposal_id == order[1]
        await pilot.press("r", "enter")  # once the next one is shown, keys work again
        await settle(pilot)
        assert db.proposal(order[1]).status == "rejected" and app.screen.proposal_id == order[2]
    db.close()


@asynctest
async def test_members_table_never_runs_one_column_into_the_next(review_db: Path) -> None:
    """A country longer than its column ends in … and leaves a blank before the area column."""
    import sqlite3

    from biodiscover.tui.screens.detail import MEMBER_COLUMNS

    with Database.open(review_db) as first_db:
        first = first_db.proposal_queue(status="pending", limit=1)[0][0]
        long_one = proposal_members(first_db, first.id)[0]
    with sqlite3.connect(review_db) as raw:  # a real country name longer than the column
        raw.execute("UPDATE specimens SET country = 'Democratic Republic of the Congo' WHERE processid = ?",
                    (long_one,))
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot)
        table = screen.query_one("#members-table")
        widths = {key: column.width for key, column in table.columns.items()}
        detail = db.proposal_detail(screen.proposal_id)
        shown = [k for k, *_ in MEMBER_COLUMNS if k in widths]
        for m in detail.members:
            row = dict(zip(shown, table.get_row(m.processid)))
            for key, cell in row.items():
                assert len(str(cell)) <= widths[key] - 1, (key, cell)
            country = m.country or "–"
            expected = country if len(country) <= widths["country"] - 1 else country[: widths["country"] - 2] + "…"
            assert row["country"] == expected
        assert dict(zip(shown, table.get_row(long_one)))["country"].endswith("…")
        # the area column is there when a member has one (hidden when none has: a plate without photographs)
        assert ("area" in [str(c.label) for c in table.columns.values()]) == \
            any(m.image_measurement_value is not None for m in detail.members)
        assert widths["pid"] - 1 >= len("GBMIN123456-19")  # a BOLD process id shows whole at 80 columns
    db.close()


@asynctest
async def test_members_table_shows_a_five_digit_area_whole_at_80_columns(review_db: Path) -> None:
    """A reviewer saw "1234…" for an area of 12345 px (the column had room for four digits). Five digits show
    whole, six in thousands, and the table still fits 80 columns without scrolling sideways."""
    import sqlite3

    with Database.open(review_db) as first_db:
        first = first_db.proposal_queue(status="pending", limit=1)[0][0]
        five, six = proposal_members(first_db, first.id)[:2]
    with sqlite3.connect(review_db) as raw:
        raw.execute("UPDATE specimens SET image_measurement_value = 12345 WHERE processid = ?", (five,))
        raw.execute("UPDATE specimens SET image_measurement_value = 110817 WHERE processid = ?", (six,))
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot)
        table = screen.query_one("#members-table")
        keys = list(table.columns)
        assert str(table.get_row(five)[keys.index("size")]) == "12345"
        assert str(table.get_row(six)[keys.index("size")]) == "111k"
        assert table.virtual_size.width <= table.scrollable_content_region.width  # every column in view
        shown = ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]
        row = next(line for line in shown if line.lstrip().startswith(five))
        assert row.split()[-2] == "12345"  # the area column, before the membership one
    db.close()


@asynctest
async def test_the_footer_ends_at_the_command_palette_key_on_every_screen(review_db: Path) -> None:
    """The bottom row ends "^p Commands" exactly: Textual's compact footer gave the docked command-palette key a
    right margin, and the column under it showed a letter of the key beneath ("^p Commandsl" on the DNA tab,
    "^p Commandsn" on the photographs tab, at 80 columns)."""
    def bottom_row() -> str:
        return "".join(seg.text for seg in app.screen._compositor.render_strips()[-1])

    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = {"queue": bottom_row()}
        await open_detail(pilot)
        for tab in "1234":
            await pilot.press(tab)
            await settle(pilot)
            rows[tab] = bottom_row()
    db.close()
    for where, row in rows.items():
        assert len(row) == SIZE[0] and row.endswith("^p Commands"), (where, row)


@asynctest
async def test_tab_keys_focus_the_tab_content(review_db: Path) -> None:
    """2 then arrows scroll the alignment (not the tab bar); 4 then n pages the images."""
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot)
        assert app.focused is screen.query_one("#members-table")
        await pilot.press("2")
        dna = screen.query_one(DnaPanel)
        assert app.focused is dna
        await pilot.press("right", "right", "right")
        await settle(pilot)
        assert screen.query_one("#detail-tabs").active == "dna" and dna.scroll_x == 3
        await pilot.press("4")
        await settle(pilot)
        images = screen.query_one(ImagePanel)
        assert app.focused is images and images.caption.startswith("photo 1/")
        await pilot.press("z", "enter")
        await settle(pilot)
        view = images.query_one(".zoom-view").region  # zoomed, the photo fills the tab, not a 24×12 stamp
        assert view.height >= screen.query_one("#image-panel").region.height - 3 and view.width > 24
        await pilot.press("z", "n")
        assert images.caption.startswith("photo 2/")
    db.close()


@asynctest
async def test_detail_says_why_proposed_and_reads_the_barcode_gap(review_db: Path) -> None:
    from biodiscover.tui.evidence import barcode_gap

    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot)
        detail = db.proposal_detail(screen.proposal_id)
        summary = str(screen.query_one("#detail-summary").render())
        assert barcode_gap(detail.evidence, detail.summary.nearest_identity).sentence() in summary
        assert f"({detail.summary.parent_rank})" in summary
        evidence = str(screen.query_one("#nearest").render())
        assert "novelty: " in evidence and "across members" in evidence
    db.close()


@asynctest
async def test_taxonomy_opened_from_a_proposal_sits_on_its_parent(review_db: Path) -> None:
    app, db = make_app(review_db)
    rows, _ = db.proposal_queue(status="pending", limit=100)
    # The last proposal of the page: its parent is rarely the first taxon of the tree.
    target = rows[-1]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one(ProposalTable).move_cursor(row=len(rows) - 1)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.proposal_id == target.id
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, TaxonomyScreen)
        assert app.screen.current_taxon.id == target.parent_taxon_id
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert target.id in {p.id for p in app.screen.query_one(ProposalTable).rows_shown}
        assert app.screen.query_state.parent == target.parent_taxon_id
    db.close()


@asynctest
async def test_filter_dialog_opens_with_the_current_filter(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press(*"size>=3 identity<=95", "enter")
        await settle(pilot)
        assert "identity<=95" in str(app.screen.query_one("#queue-query").render())
        await pilot.press("f")
        await settle(pilot)
        assert app.screen.query_one(Input).value == "status=pending size>=3 identity<=95"
        await pilot.press("end", *" novelty>=0.9", "enter")
        await settle(pilot)
        q = app.screen.query_state
        assert (q.min_size, q.max_identity, q.min_novelty) == (3, pytest.approx(0.95), 0.9)
    db.close()


@asynctest
async def test_history_names_what_an_undo_took_back(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.query_one(ProposalTable).current
        await pilot.press("r", "enter")
        await settle(pilot)
        await pilot.press("u", "y")
        await settle(pilot)
        app.push_screen(DetailScreen(first.id))
        await settle(pilot)
        await pilot.press("5")
        history = str(app.screen.query_one("#history-text").render())
        undo = next(line for line in history.splitlines() if "undid" in line)
        assert "undid reject (review " in undo and "UTC" in undo and "T" not in undo.split()[1]
        assert f"by {app.reviewer}" in undo
    db.close()


@asynctest
async def test_an_empty_queue_says_what_to_do(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.set_query(QueueQuery(status="pending", min_size=10_000))
        await settle(pilot)
        line = str(app.screen.query_one("#queue-query").render())
        assert line.startswith("0 of 0") and "nothing matches: f edits the filter" in line
        for p in db.proposal_queue(status="pending", limit=500)[0]:
            db.reject(p.id, p.version, reviewer="ana")
        app.screen.set_query(QueueQuery(status="pending"))
        await settle(pilot)
        assert "none left to review: Tab shows decided ones" in str(app.screen.query_one("#queue-query").render())
    db.close()
