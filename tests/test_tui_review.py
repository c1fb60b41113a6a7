"""Issue 15, item by item: the review a taxonomist needs, on a real database under Textual's Pilot.

Each test presses keys in the real :class:`~biodiscover.tui.app.ReviewApp` on a
SQLite file filled by discovery and the storage API (:mod:`fixtures.review_db`),
then asserts what the database holds and what the screen says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from biodiscover.discovery.proposals import recompute_evidence
from biodiscover.storage.db import Database
from biodiscover.storage.db.taxonomy import provisional_references
from biodiscover.storage.records import Specimen
from biodiscover.tui.app import ReviewApp
from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog, PickManyDialog
from biodiscover.tui.screens.taxonomy import TaxonomyScreen
from biodiscover.tui.widgets.dna_panel import DnaPanel
from biodiscover.tui.widgets.image_panel import ImagePanel
from biodiscover.tui.widgets.proposal_table import ProposalTable
from fixtures.review_db import partial_barcode_db
from fixtures.tui_pilot import asynctest, notes, open_detail, settle
from fixtures.db_views import proposal_members

SIZE = (80, 24)


def make_app(path: Path, reviewer: str | None = "ana", **kw: Any) -> tuple[ReviewApp, Database]:
    db = Database.open(path)
    return ReviewApp(db, reviewer=reviewer, halfcell_images=True, poll_seconds=3600, **kw), db


async def open_proposal(pilot, proposal_id: int) -> DetailScreen:
    while isinstance(pilot.app.screen, DetailScreen):
        pilot.app.pop_screen()
    pilot.app.push_screen(DetailScreen(proposal_id))
    await settle(pilot)
    return pilot.app.screen


async def decide(pilot, proposal_id: int, key: str, *answer: str) -> None:
    """Let the app load, open a proposal, press a decision's key, answer its dialog and let it be written."""
    await settle(pilot)
    await open_proposal(pilot, proposal_id)
    await pilot.press(key)
    await settle(pilot)
    await pilot.press(*answer)
    await settle(pilot)


async def open_dna_tab(pilot, proposal_id: int) -> tuple[DetailScreen, DnaPanel]:
    """Let the app load, open a proposal on its DNA tab and let the alignment load."""
    await settle(pilot)
    screen = await open_proposal(pilot, proposal_id)
    await pilot.press("2")
    await settle(pilot)
    return screen, screen.query_one(DnaPanel)


# -- item 1: a rejected candidate whose members come back is recognised, linked and not re-queued ----------------

@asynctest
async def test_rejection_is_remembered_when_the_same_members_come_back(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.query_one(ProposalTable).current
        await pilot.press("r", "enter")
        await settle(pilot)
    assert db.proposal(first.id).status == "rejected"
    members = proposal_members(db, first.id)
    pending_before = db.queue_counts()["pending"]
    # The same collection triaged again: a new run proposes the same 80 specimens, and a candidate sharing
    # some of them with new specimens.
    run = db.start_run("triage", {"again": True}, backup=False)
    again, overlap = db.write_proposals(run, [
        {"members": members, "parent_rank": first.parent_rank, "parent_name": first.parent_name},
        {"members": members[:5] + proposal_members(db, first.id + 1)[:3], "parent_rank": "genus",
         "parent_name": first.parent_name}])
    db.finish_run(run, "completed")
    assert db.proposal(again).status == "rejected" and db.proposal(again).lineage == first.lineage
    assert db.proposal(overlap).status == "pending"
    assert db.queue_counts()["pending"] == pending_before  # the 80 did not come back as pending
    assert not [p for p in db.proposal_queue(status="pending", limit=500)[0] if p.id == again]
    app2, _ = make_app(review_db)
    async with app2.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_proposal(pilot, again)
        assert "same members as #%d, rejected by a reviewer: not queued again" % first.id in \
            str(screen.query_one("#detail-summary").render())
        screen = await open_proposal(pilot, overlap)
        assert f"5 of 8 members were in #{first.id}, which a reviewer rejected" in \
            str(screen.query_one("#detail-summary").render())
    db.close()


# -- item 2: evidence recomputed from the members on split and merge ----------------------------------------------

def _members_of(db: Database, pid: int) -> list[Specimen]:
    return db.specimens(proposal_members(db, pid))


@asynctest
async def test_split_and_merge_recompute_the_evidence_from_the_members(review_db: Path) -> None:
    app, db = make_app(review_db)
    big = db.proposal_detail(1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_proposal(pilot, 1)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, PickManyDialog)
        picked = [app.screen.options[i][0] for i in (0, 1, 2)]
        await pilot.press("n", "space", "down", "space", "down", "space", "enter")
        await settle(pilot)
        new_id = next(r["after"] for r in db.reviews(1) if r["action"] == "split")
        new_id = int(next(k for k in new_id["proposals"] if k != "1"))
        kept, split = db.proposal_detail(1), db.proposal_detail(new_id)
        assert kept.summary.size == big.summary.size - 3 and split.summary.size == 3
        assert {m.processid for m in split.members} == set(picked)  # the ticked members, not any three
        for d in (kept, split):
            ev = d.evidence
            assert ev.size == d.summary.size
            assert sum(ev.geography.countries.values()) == d.summary.size
            assert set(ev.member_hits) == {m.processid for m in d.members}
            # exactly what discovery computes for these members from the evidence they came from
            want = recompute_evidence(_members_of(db, d.summary.id), [m.probability for m in sorted(
                d.members, key=lambda m: m.processid)], [big.evidence])
            assert ev.within_distance == want.within_distance
            assert ev.nearest_known.species == want.nearest_known.species
            assert ev.threshold == big.evidence.threshold
        assert split.evidence.between_distance.nearest_candidate == 1
        # the screen shows the kept part's new numbers, not the 80-member ones
        summary = str(screen.query_one("#detail-summary").render())
        assert f"n={kept.summary.size} " in summary
        within_max = kept.evidence.within_distance.max
        assert f"members ≤ {within_max * 100:.1f}% apart" in summary
        # merge the three back: the evidence is the big candidate's again
        await pilot.press("m")
        await settle(pilot)
        await pilot.press(*f"#{new_id} ", "enter")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        merged = db.proposal_detail(1)
        assert merged.summary.size == big.summary.size and merged.evidence.size == big.summary.size
        assert merged.evidence.within_distance.max == pytest.approx(big.evidence.within_distance.max)
        assert merged.evidence.nearest_known.species == big.evidence.nearest_known.species
        assert any("evidence recomputed" in n for n in notes(app))
        # undo the merge: the evidence of the split state comes back with the members
        await pilot.press("u", "y")
        await settle(pilot)
        assert db.proposal_detail(1).evidence == kept.evidence
    db.close()


def test_exports_read_the_recomputed_evidence(review_db: Path, tmp_path: Path) -> None:
    import csv

    from biodiscover.workflows.export import export_run

    db = Database.open(review_db)
    detail = db.proposal_detail(1)
    picked = [m.processid for m in detail.members[:7]]
    keep = [m.processid for m in detail.members[7:]]
    from biodiscover.tui.decisions import recomputed

    evidence = recomputed(db, [detail], [keep, picked])
    res = db.split(1, detail.summary.version, picked, reviewer="ana", evidence=evidence)
    run = detail.summary.run_id
    db.close()
    export_run(review_db, run, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        rows = {int(r["proposal_id"]): r for r in csv.DictReader(fh)}
    for pid, ev in ((1, evidence[0]), (res.new_proposal_id, evidence[1])):
        assert int(rows[pid]["evidence_size"]) == ev.size == int(rows[pid]["size"])
        # the CSV rounds to 4 decimals (columns.txt says so)
        assert float(rows[pid]["evidence_within_distance_max"]) == round(ev.within_distance.max, 4)


@asynctest
async def test_after_a_split_the_part_that_stays_names_its_closest_candidate_too(review_db: Path) -> None:
    """Found reviewing the demo: after a split the part split off said "closest candidate: #1 …, 0.7% away" and
    #1, the part that stays, said nothing: only the part split off was given a neighbour when the evidence was
    recomputed. Both parts now name each other, on the evidence tab too."""
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await decide(pilot, 1, "x", "n", "space", "down", "space", "down", "space", "enter")
        new_id = db.reviews(1)[0]  # newest first: the split
        new_id = int(next(k for k in new_id["after"]["proposals"] if k != "1"))
        kept, off = db.proposal_detail(1), db.proposal_detail(new_id)
        assert kept.closest_candidate is not None and kept.closest_candidate.id == new_id
        assert off.closest_candidate is not None and off.closest_candidate.id == 1
        # one distance between the two consensus barcodes, whichever side reads it
        assert kept.evidence.between_distance.distance == pytest.approx(off.evidence.between_distance.distance)
        await pilot.press("3")
        await settle(pilot)
        shown = str(app.screen.query_one("#nearest").render())
        assert (f"closest candidate: #{new_id} {off.summary.name}, "
                f"{kept.evidence.between_distance.distance * 100:.1f}% away") in shown
    db.close()


def test_a_split_or_merge_keeps_the_closest_candidate_the_sources_had(review_db: Path) -> None:
    """The candidate closest to a proposal before a split or merge is still there afterwards: the new member
    lists are measured against it too (a merged candidate had no closest candidate at all)."""
    from biodiscover.tui.decisions import recomputed

    db = Database.open(review_db)
    a, b = db.proposal_detail(4), db.proposal_detail(6)  # two Bobeix candidates, both closest to a third one
    third = a.closest_candidate
    assert third is not None and b.closest_candidate is not None and b.closest_candidate.id == third.id
    members = [m.processid for m in a.members] + [m.processid for m in b.members]
    (evidence,) = recomputed(db, [a, b], [members])
    db.merge([4, 6], [a.summary.version, b.summary.version], reviewer="ana", evidence=evidence)
    merged = db.proposal_detail(4)
    assert merged.closest_candidate is not None and merged.closest_candidate.id == third.id
    # split one member off: the part that stays is nearer that part than the third, the third stays a neighbour
    ids = [m.processid for m in merged.members]
    keep, off = recomputed(db, [merged], [ids[1:], ids[:1]])
    assert keep.between_distance is not None and off.between_distance is not None
    third_seq = db.proposal_detail(third.id).evidence.consensus_barcode
    from biodiscover.storage.distance import cross_p_distance

    to_third = float(cross_p_distance([off.consensus_barcode], [third_seq])[0][0])
    assert off.between_distance.distance == pytest.approx(min(to_third, keep.between_distance.distance))
    db.close()


# -- item 3: "this is species X" ----------------------------------------------------------------------------------

@asynctest
async def test_assign_to_a_known_species_names_the_members_and_closes_the_proposal(review_db: Path) -> None:
    app, db = make_app(review_db)
    target = db.proposal(2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_proposal(pilot, 2)
        await pilot.press("i")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, PickDialog)
        assert dialog.options[0][1].startswith(target.nearest_species)  # the nearest known species first
        # with its identity and how many members' best hits name it (a real plate's tie was assigned by row)
        best = max(h.identity for h in db.proposal_detail(2).evidence.member_hits.values()
                   if h.species == target.nearest_species)
        assert f"· {100 * best:.1f} %, best hit of " in dialog.options[0][1]
        species = "Bobeix thiata"
        await pilot.press(*species, "enter")
        await settle(pilot)
        # asked before written: which species, how many specimens
        assert isinstance(app.screen, ConfirmDialog) and db.proposal(2).status == "pending"
        assert f"Assign #2 ({target.size} specimens) to {species}?" in str(app.screen.query_one("Label").render())
        await pilot.press("enter")
        await settle(pilot)
    p = db.proposal(2)
    taxon = db.taxonomy().node(p.taxon_id)
    assert (p.status, p.provisional_name, taxon.rank, taxon.name, taxon.status) == \
        ("assigned", species, "species", species, "accepted")
    assert p.parent_name == "Bobeix" and p.parent_rank == "genus"
    named = {s.processid: s.species for s in provisional_references(db)}
    assert {named[pid] for pid in proposal_members(db, 2)} == {species}
    assert db.reviews(2)[0]["reviewer"] == "ana" and db.reviews(2)[0]["action"] == "assign"
    assert any(f"#2 assigned to {species}: its {target.size} members" in n for n in notes(app))
    # undo gives the candidate back and leaves the known species alone
    db.undo(db.reviews(2)[0]["id"], reviewer="ana")
    assert db.proposal(2).status == "pending" and db.taxonomy().node(taxon.id).status == "accepted"
    db.close()


@asynctest
async def test_a_renamed_new_species_is_named_anew_on_the_candidates_assigned_to_it(
        review_db: Path, tmp_path: Path) -> None:
    """One name per taxon. A candidate assigned (``i``) to a new species a reviewer had accepted kept the name
    the species had then once the species was renamed: the queue, its detail and the exports said the old
    name. They follow the species now; the assignment still undoes, and undoing the rename names it back."""
    import csv

    from biodiscover.workflows.export import export_run

    db = Database.open(review_db)
    species = db.proposal(3)
    old = db.accept(3, species.version, "Vibeum sp. BD-0001", reviewer="ana")
    assigned = db.assign(2, db.proposal(2).version, old.taxon_id, reviewer="ana")
    db.close()
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await decide(pilot, 3, "e", "ctrl+u", *"Vibeum dorsalis", "enter")
        assert db.taxonomy().node(old.taxon_id).name == "Vibeum dorsalis"
        screen = await open_proposal(pilot, 2)
        assert "Vibeum dorsalis" in str(screen.query_one("#detail-summary").render()).splitlines()[0]
        await pilot.press("5")
        await settle(pilot)
        history = str(screen.query_one("#history-text").render())
        assert "assigned to known species “Vibeum sp. BD-0001” (renamed “Vibeum dorsalis” since)" in history
        app.pop_screen()
        queue = app.screen
        queue.set_query(queue.query_state.__class__(status="assigned"))
        await settle(pilot)
        assert [(p.id, p.name) for p in queue.query_one(ProposalTable).rows_shown] == [(2, "Vibeum dorsalis")]
    assert db.proposal(2).version == assigned.versions[2]  # the assignment itself did not change
    run = db.proposal(2).run_id
    export_run(review_db, run, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        assert {int(r["proposal_id"]): r["provisional_name"] for r in csv.DictReader(fh)}[2] == "Vibeum dorsalis"
    # a reviewer's decisions survive the rename: the assignment undoes, and redoes under the name of now
    undo = db.undo(assigned.review_id, reviewer="ana")
    assert db.proposal(2).status == "pending"
    db.undo(undo.review_id, reviewer="ana")
    assert (db.proposal(2).status, db.proposal(2).name) == ("assigned", "Vibeum dorsalis")
    # undoing the rename names the species and its assigned candidate back
    rename = next(r["id"] for r in db.reviews(3) if r["action"] == "rename")
    db.undo(rename, reviewer="ana")
    assert db.proposal(2).name == db.proposal(3).name == "Vibeum sp. BD-0001"
    db.close()


# -- item 4: the DNA tab on partial barcodes ----------------------------------------------------------------------

@asynctest
async def test_dna_tab_aligns_partial_barcodes_to_the_nearest_known_species(tmp_path: Path) -> None:
    path, pid = partial_barcode_db(tmp_path / "partial.sqlite")
    app, db = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        screen, dna = await open_dna_tab(pilot, pid)
        ref_label, _ref_row = dna.data.reference
        assert ref_label == "Xus knownus"
        rows = dict(dna.data.rows)
        assert rows["PART0-24"].startswith("-" * 57) and rows["PART0-24"][57] != "-"  # starts where it starts
        assert dna.variable_site_count == 0  # 0.0 % apart: no column varies among the members
        assert dna.fixed_difference_count == 5  # the five sites that tell it from the known species
        note = str(screen.query_one("#dna-note").render())
        assert note == ("2 barcoded members + nearest known Xus knownus (first row)  ·  ^ vary  | differ from it  ·  "
                        "[ ] page")
        # sideways paging by key, and it is in the footer and the help
        await pilot.press("right_square_bracket")
        assert dna.scroll_x > 40
        await pilot.press("left_square_bracket")
        assert dna.scroll_x == 0
        footer = " ".join(b.binding.description for b in app.screen.active_bindings.values() if b.binding.show)
        assert "Page →" in footer and "← Page" in footer
        await pilot.press("question_mark")
        await settle(pilot)
        help_text = str(app.screen.query_one("#help-body").render())
        assert "DNA tab" in help_text and "Page →" in help_text and "dna.page_right" in help_text
    db.close()


@asynctest
async def test_dna_tab_shows_a_long_species_name_whole_at_80_columns(tmp_path: Path) -> None:
    """The label column was cut at 24 characters: the reference row read "Xus sp. BIOUG57720-B08 c". A label
    column as wide as the longest label shows it whole and still leaves 40 bases in view at 80 columns."""
    species = "Xus sp. BIOUG57720-B08 cf. knownus"
    path, pid = partial_barcode_db(tmp_path / "partial.sqlite", species=species)
    app, db = make_app(path)
    async with app.run_test(size=SIZE) as pilot:
        _, dna = await open_dna_tab(pilot, pid)
        _, reference = dna.data.reference
        first = dna.render_line(0).text
        assert first.startswith(species + " ")
        bases = first[len(species):].strip()
        assert len(bases) >= 40 and reference.startswith(bases)  # the reference's own bases, from column 1
        member = dna.render_line(3).text  # member rows start in the same column (a read starting with gaps)
        assert member[: len(species) + 1].rstrip() == "PART0-24" and member[len(species) + 1] == "-"
    db.close()


# -- item 6: photographs ------------------------------------------------------------------------------------------

@asynctest
async def test_photos_show_a_member_grid_beside_the_nearest_known_species(review_db: Path) -> None:
    app, db = make_app(review_db)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        screen = await open_proposal(pilot, 1)
        await pilot.press("4")
        await settle(pilot)
        panel = screen.query_one(ImagePanel)
        near = db.proposal_detail(1).evidence.nearest_known
        assert panel.reference == (near.species, Path(near.image))
        assert len(panel.page) >= 8  # a grid of members at 160×50, not one at a time
        assert len(panel.query(".tile-view")) == len(panel.page) + 1  # and the nearest known species' photo
        assert panel.caption.endswith("drawn with half blocks")
        await pilot.press("z")
        await settle(pilot)
        assert panel.zoomed and len(panel.query(".zoom-view")) == 1
    db.close()


# -- item 7: move and merge say where -----------------------------------------------------------------------------

@asynctest
async def test_merge_across_parents_lands_under_their_common_taxon_and_says_so(review_db: Path) -> None:
    app, db = make_app(review_db)
    graph = db.taxonomy()
    a = db.proposal(4)
    other = next(p for p in db.proposal_queue(status="pending", limit=100)[0] if p.parent_name != a.parent_name
                 and graph.lineage(p.parent_taxon_id)[1].name == graph.lineage(a.parent_taxon_id)[1].name)
    up = {n.id for n in graph.lineage(other.parent_taxon_id)}
    family = [n for n in graph.lineage(a.parent_taxon_id) if n.id in up][-1]  # the deepest taxon both sit in
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_proposal(pilot, a.id)
        await pilot.press("m")
        await settle(pilot)
        dialog = app.screen
        label = next(label for (o, _), label in dialog.options if o.id == other.id)
        assert label.endswith(f"→ under {family.rank} {family.name}")
        await pilot.press(*f"#{other.id} ", "enter")
        await settle(pilot)
        # asked first, as every other decision is (a reviewer of a real batch merged on Enter by mistake)
        assert app.screen.question.startswith(
            f"Merge #{other.id} ({other.name}, {other.size}) into #{a.id} ({a.name}, {a.size}): "
            f"{a.size + other.size} specimens under {family.rank} {family.name}? ⚠ the two are ")  # two genera apart
        await pilot.press("y")
        await settle(pilot)
    merged = db.proposal(a.id)
    assert (merged.parent_rank, merged.parent_name) == (family.rank, family.name)
    assert db.proposal(other.id).status == "merged"
    assert any(f"#{other.id} merged into #{a.id}: now {a.size + other.size} specimens under {family.rank} "
               f"{family.name}" in n for n in notes(app))
    db.close()


# -- item 9: history, reviewer, taxonomy ----------------------------------------------------------------------------

@asynctest
async def test_the_rename_box_holds_the_name_it_goes_by_and_enter_on_it_changes_nothing(review_db: Path) -> None:
    """The box opened empty (a real plate's review: "the rename box opens empty"); it holds the working name to
    edit. Enter on it as offered writes nothing: renaming to the working name would freeze "cand3" as a given
    name, which a later move would no longer follow."""
    from biodiscover.tui.screens.dialogs import TextDialog

    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_proposal(pilot, 3)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog) and app.screen.value == "Vibeum sp. cand3"
        await pilot.press("enter")
        await settle(pilot)
        assert "#3 keeps its name" in notes(app)
    assert [r["action"] for r in db.reviews(3)] == []
    assert db.proposal_detail(3).summary.provisional_name is None
    db.close()


@asynctest
async def test_history_in_time_order_with_old_and_new_names_and_the_reviewer_from_the_config(
        review_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "biodiscover").mkdir()
    (tmp_path / "biodiscover" / "config.toml").write_text('reviewer = "Ana Silva"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("BIODISCOVER_REVIEWER", raising=False)
    app, db = make_app(review_db, reviewer=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.reviewer == "Ana Silva" and "reviewer Ana Silva" in app.sub_title
        await open_proposal(pilot, 3)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("ctrl+u", *"Vibeum sp. A", "enter")
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        await pilot.press(*"legs paler", "enter")
        await settle(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("ctrl+u", *"Vibeum sp. B", "enter")
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        history = str(app.screen.query_one("#history-text").render()).splitlines()
    lines = [line for line in history if line.strip()]
    # the name it went by before, its working name included (as the exports' history says it; a real plate's review
    # read "(working name)" on screen beside "Vibeum sp. cand3" in the JSON)
    assert "renamed “Vibeum sp. cand3” → “Vibeum sp. A”  by Ana Silva" in lines[0]
    assert "note  by Ana Silva  “legs paler”" in lines[1]
    assert "renamed “Vibeum sp. A” → “Vibeum sp. B”  by Ana Silva" in lines[2]
    stamps = [line[:23] for line in lines]
    assert stamps == sorted(stamps)
    assert {r["reviewer"] for r in db.reviews(3)} == {"Ana Silva"}
    db.close()


def test_the_part_split_off_and_the_candidate_merged_away_say_where_they_went(review_db: Path) -> None:
    """The review row of a split is the parent's and of a merge the kept candidate's; the other side's history
    said nothing of it (the part split off from the demo's #1 showed only a note): now it names the other
    proposal, and the side that holds the review row does not say it twice."""
    from biodiscover.tui.evidence import history_entries

    db = Database.open(review_db)
    detail = db.proposal_detail(1)
    picked = [m.processid for m in detail.members[:3]]
    new_id = db.split(1, detail.summary.version, picked, reviewer="ana").new_proposal_id
    assert new_id is not None
    other = next(p for p in db.proposal_queue(status="pending", limit=50)[0] if p.id not in (1, new_id))
    versions = {1: db.proposal_detail(1).summary.version, other.id: other.version}
    db.merge([1, other.id], versions, reviewer="ana")

    def said(pid: int) -> list[str]:
        d = db.proposal_detail(pid)
        return [what for _, what, _, _ in history_entries(d.reviews, d.history, pid)]

    split_review = next(r["id"] for r in db.reviews(1) if r["action"] == "split")
    assert said(new_id) == [f"split off from #1 (3 members, review {split_review})"]
    merged_away = said(other.id)
    assert len(merged_away) == 1 and merged_away[0].startswith("merged into #1 (review ")
    kept = said(1)
    assert kept[0] == "split 3 members off into #%d" % new_id and kept[1].startswith(f"merged #{other.id} into")
    assert len(kept) == 2  # its own review rows only: the edges they made are not told again
    db.close()


@asynctest
async def test_environment_names_the_reviewer_and_a_login_name_is_flagged(
        review_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("BIODISCOVER_REVIEWER", "Ben Ode")
    app, db = make_app(review_db, reviewer=None)
    assert app.reviewer == "Ben Ode"
    monkeypatch.delenv("BIODISCOVER_REVIEWER")
    app, db = make_app(review_db, reviewer=None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.reviewer_source == "login name"
        assert any("(your login name): set --reviewer, $BIODISCOVER_REVIEWER" in n for n in notes(app))
    db.close()


@asynctest
async def test_taxonomy_tree_lists_the_known_species(review_db: Path) -> None:
    app, db = make_app(review_db)
    p = db.proposal(2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_proposal(pilot, 2)
        await pilot.press("t")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        genus = screen.query_one("Tree").cursor_node
        assert genus.data == p.parent_taxon_id
        genus.expand()
        await settle(pilot)
        species = [str(c.label) for c in genus.children]
    assert any(p.nearest_species in s for s in species)
    db.close()


# -- item 5: one name, from one function, everywhere ----------------------------------------------------------------

@asynctest
async def test_one_name_for_a_candidate_on_screen_and_in_every_export(review_db: Path, tmp_path: Path) -> None:
    import csv
    import zipfile

    from biodiscover.workflows.export import export_run

    app, db = make_app(review_db)
    p = db.proposal(3)
    assert p.name == f"{p.parent_name} sp. cand3"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(ProposalTable)
        row = [str(c) for c in table.get_row_at(2)]
        assert row[2] == p.name
        screen = await open_proposal(pilot, 3)
        assert p.name in str(screen.query_one("#detail-summary").render())
    db.close()
    run = p.run_id
    export_run(review_db, run, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        assert next(r for r in csv.DictReader(fh) if r["proposal_id"] == "3")["name"] == p.name
    export_run(review_db, run, "fasta", tmp_path / "fa")
    third = [f for f in (tmp_path / "fa").glob("*.fasta")
             if f.name != "all_specimens.fasta" and int(f.name.split("_", 1)[0]) == 3]  # 03_… or 3_…
    headers = [line for f in third for line in f.read_text().splitlines() if line.startswith(">")]
    assert headers and {h.split("|")[1] for h in headers} == {p.name}
    export_run(review_db, run, "dwca", tmp_path / "a.zip")
    occ = zipfile.ZipFile(tmp_path / "a.zip").read("occurrence.txt").decode()
    assert f"\t{p.name}\t" in occ
    export_run(review_db, run, "html", tmp_path / "r.html")
    assert f"<h3>#3 {p.name}</h3>" in (tmp_path / "r.html").read_text()


@asynctest
async def test_a_proposal_opened_from_the_taxonomy_over_its_own_detail_does_not_crash(review_db: Path) -> None:
    """queue → detail → accept → t → P (next provisional) → p (its proposal): a second detail screen."""
    app, db = make_app(review_db)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot)
        pid = app.screen.proposal_id
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("enter")  # the suggested name
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("P", "p")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen) and app.screen.proposal_id == pid
        assert sum(isinstance(s, DetailScreen) for s in app.screen_stack) == 2
    db.close()


ONE_TWO_THREE = [(1, "one"), (2, "two"), (3, "three")]


def picked_in(dialog: PickDialog, keys: Any) -> list[Any]:
    """What ``dialog`` returns in a bare app after ``keys(pilot)`` (an async function of the pilot)."""
    from textual.app import App

    got: list[Any] = []

    class _App(App[None]):
        def on_mount(self) -> None:
            self.push_screen(dialog, got.append)

    async def run() -> None:
        async with _App().run_test() as pilot:
            await pilot.pause()
            await keys(pilot)
            await pilot.pause()

    asyncio.run(run())
    return got


@pytest.mark.parametrize("typed,picked", [("Tenebrionidae", 2), ("tenebrionidae ", 2), ("Tenebrio", 1), ("", 1)])
def test_an_option_named_what_was_typed_comes_first(typed: str, picked: int) -> None:
    """A real batch's review: typing "Tenebrionidae" in the move list left "genus Crypticus (Tenebrionidae › …)"
    highlighted on top (the evidence's genus), and Enter took the genus. An option whose own name is the typed
    text comes first; a part of a name filters only, in the list's own order."""
    options = [(1, "genus Crypticus  (Tenebrionidae › Pedinini)  ← a member's best hit"),
               (2, "family Tenebrionidae  (Coleoptera)")]
    dialog = PickDialog("move to", options, name_of={1: "Crypticus", 2: "Tenebrionidae"}.get)
    assert picked_in(dialog, lambda pilot: pilot.press(*typed, "enter")) == [picked]


@pytest.mark.parametrize("downs,picked", [(1, 2), (2, 3)])
def test_quick_downs_in_the_filter_box_move_as_they_would_in_the_list(downs: int, picked: int) -> None:
    """Found in tmux: two quick ↓ in the move list's filter box picked the first offer (a provisional genus) where
    the second (the described one) was wanted: focus moves to the list on the next turn of the event loop, so both
    reached the box. Keys posted together, as a terminal delivers them, without waiting in between."""
    from textual import events

    async def keys(pilot: Any) -> None:
        for _ in range(downs):
            pilot.app.post_message(events.Key("down", None))
        await pilot.pause()
        await pilot.press("enter")

    assert picked_in(PickDialog("pick", ONE_TWO_THREE), keys) == [picked]


@pytest.mark.parametrize("keys,picked", [(["enter"], 1), (["down", "enter"], 2), (["down", "down", "enter"], 3),
                                         (["down", "up", "enter"], 1), (["t", "enter"], 2),
                                         (["t", "down", "enter"], 3)])
def test_pick_dialog_picks_what_is_highlighted_on_top(keys: list[str], picked: int) -> None:
    """Found reviewing the demo: ↓ then Enter on the nearest known species assigned the *second* species, none
    highlighted to show which. The first option is highlighted from the start, Enter picks it, and each ↓ moves the
    highlight one down, the first too, as the hint says (↓↑: move): the first ↓ once only entered the list, and one
    ↓ and Enter withdrew the first of two notes where the reviewer meant the second (e31 F12)."""
    assert picked_in(PickDialog("pick", ONE_TWO_THREE), lambda pilot: pilot.press(*keys)) == [picked]
