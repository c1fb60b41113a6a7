"""The review's pickers and decision dialogs as a taxonomist needs them (a real Costa Rican plate's review, F7-F10,
F16): the move and assign lists start where the evidence points and stay in the candidate's order before any other;
a genus the reference lacks can be made (provisional, undoable); the merge list says how far every candidate is;
a rejection takes a reason; the members table drops empty columns; the split dialog's boxes read ticked or not.

Real SQLite file, the real app driven with Pilot.
"""

from __future__ import annotations


import random
from pathlib import Path
from typing import Any

import pytest

from biodiscover.storage.db import Database
from biodiscover.storage.db.taxonomy import register_lineages
from biodiscover.storage.errors import DatabaseError, StaleProposalError
from biodiscover.storage.records import Specimen
from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog, PickManyDialog, TextDialog
from biodiscover.workflows.export.dwca import occurrence_rows
from biodiscover.workflows.export.pipeline import load_run_export
from fixtures.tui_pilot import asynctest, notes, open_proposal, press_on, reviewing, settle

LEPIDOPTERA = [
    {"order": "Lepidoptera", "family": "Noctuidae", "genus": "Ponometia", "species": "Ponometia bruchi"},
    {"order": "Lepidoptera", "family": "Erebidae", "subfamily": "Arctiinae", "genus": "Amaxia",
     "species": "Amaxia apyga"},
    {"order": "Lepidoptera", "family": "Erebidae", "subfamily": "Arctiinae", "genus": "Amaxia",
     "species": "Amaxia rocioecheverriae"},
    {"order": "Lepidoptera", "family": "Notodontidae", "genus": "Nystalea", "species": "Nystalea ebalea"},
]
#: other orders, whose families and genera sort before Lepidoptera's alphabetically (as on the real plate)
OTHERS = [
    {"order": "Coleoptera", "family": "Anthicidae", "genus": "Anthicus", "species": "Anthicus antherinus"},
    {"order": "Coleoptera", "family": "Carabidae", "subfamily": "Harpalinae", "genus": "Abax",
     "species": "Abax parallelepipedus"},
    {"order": "Diptera", "family": "Anthomyiidae", "genus": "Delia", "species": "Delia platura"},
]
REASON = ("family Noctuidae at 91.0% identity: P(right) 0.06 below the level 0.98, P(absent from the reference) "
          "0.05; Erebidae lies within 0.2%; farther than Noctuidae's own members lie from each other (≈7.2%)")


def _mutate(seq: str, n: int, rng: random.Random) -> str:
    out = list(seq)
    for i in rng.sample(range(len(seq)), n):
        out[i] = {"A": "C", "C": "G", "G": "T", "T": "A"}[out[i]]
    return "".join(out)


def plate(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """Four pending candidates of one run, all under order Lepidoptera: ``a`` (3 members, the not-named reason
    above, best hit Ponometia bruchi, no BIN, no photo), and ``b``, ``c``, ``d`` at 1 %, 5 % and 8 % from it
    (2, 3 and 6 members: by size the list would read d, c, b)."""
    rng = random.Random(5)
    base = "".join(rng.choice("ACGT") for _ in range(600))
    seqs = {"a": base, "b": _mutate(base, 6, rng), "c": _mutate(base, 30, rng), "d": _mutate(base, 48, rng)}
    sizes = {"a": 3, "b": 2, "c": 3, "d": 6}
    path = tmp_path / "plate.sqlite"
    with Database.create(path) as db:
        specs = [Specimen(processid=f"BLPAA1004{i}-19" if k == "a" else f"{k.upper()}{i}", dna_barcode=seqs[k],
                          country="Costa Rica") for k in sizes for i in range(sizes[k])]
        db.ingest(specs, collection="plate", backup=False)
        register_lineages(db, LEPIDOPTERA + OTHERS, source="test")
        run = db.start_run("triage", {}, backup=False)
        genera = ("Ponometia", "Ponometia", "Acontia")
        db.write_assignments(run, [{
            "processid": s.processid, "deepest_rank": "order", "deepest_taxon": "Lepidoptera", "is_novel": True,
            "labels": {"order": "Lepidoptera", "family": "Noctuidae", "genus": genera[i % 3]},
            "confidences": {"order": 1.0, "family": 0.06, "genus": 0.01}, "novelty": 0.99}
            for i, s in enumerate(specs)])
        members = {k: [s.processid for s in specs if s.dna_barcode == seqs[k]] for k in sizes}
        hit = {"species": "Ponometia bruchi", "genus": "Ponometia", "processid": "REF1", "identity": 0.91}
        ids = db.write_proposals(run, [{
            "members": members[k], "parent_lineage": {"order": "Lepidoptera"},
            "evidence": {"consensus_barcode": seqs[k], "consensus_length": 600,
                         **({"nearest_known": {**hit, "not_named_because": REASON},
                             "member_hits": {pid: hit for pid in members[k]}} if k == "a" else {})}}
            for k in sizes])
        db.finish_run(run, "completed")
    return path, dict(zip(sizes, ids))


def labels(screen: Any) -> list[str]:
    return [label for _, label in screen.options]


ORDER_OF = {name: lin["order"] for lin in LEPIDOPTERA + OTHERS for rank, name in lin.items() if rank != "species"}


async def move_list_for(pilot: Any, app: Any, pid: int, typed: str) -> list[str]:
    """Open the move list on ``pid``, type ``typed`` in its box: the options it then shows."""
    await press_on(pilot, pid, "v")
    await pilot.press(*typed)
    await settle(pilot)
    shown = app.screen.query_one("#dialog-options")
    return [str(shown.get_option_at_index(i).prompt) for i in range(shown.option_count)]


def order_of(label: str) -> str:
    """The order of the taxon a move option (``rank name  (lineage)``) names."""
    return ORDER_OF[label.split("  ")[0].split(" ", 1)[1]]


# -- F8: the move and assign lists --------------------------------------------------------------------------------

@asynctest
async def test_the_move_list_starts_where_the_evidence_points_then_stays_in_the_order(tmp_path: Path) -> None:
    path, ids = plate(tmp_path)
    async with reviewing(path) as (app, db, pilot):
        await press_on(pilot, ids["a"], "v")
        assert isinstance(app.screen, PickDialog)
        shown = labels(app.screen)
        # the members' agreed family and the reason's label, its runner-up, the members' best-hit genus
        assert [s.split("  ")[0] for s in shown[:3]] == ["family Noctuidae", "family Erebidae", "genus Ponometia"]
        # then what lies inside those (the runner-up's subfamily and genera) before the rest of the order
        assert [s.split("  ")[0] for s in shown[3:5]] == ["subfamily Arctiinae", "genus Amaxia"]
        orders = [order_of(s) for s in shown if not s.startswith(("order ", "+ new genus"))]
        first_other = orders.index(next(o for o in orders if o != "Lepidoptera"))
        assert set(orders[:first_other]) == {"Lepidoptera"} and "Lepidoptera" not in orders[first_other:]
    db.close()


@asynctest
async def test_the_assign_list_stays_in_the_candidates_order_after_the_best_hits(tmp_path: Path) -> None:
    """The real review's `i` list went from Gonodonta's congeners straight to Abax (Coleoptera)."""
    path, ids = plate(tmp_path)
    async with reviewing(path) as (app, db, pilot):
        await press_on(pilot, ids["a"], "i")
        assert isinstance(app.screen, PickDialog)
        names = [s.split("  ")[0] for s in labels(app.screen)]
        assert names[0] == "Ponometia bruchi"
        # the runner-up family's species (Erebidae, the reason) before the rest of the order, then other orders
        assert names[1:] == ["Amaxia apyga", "Amaxia rocioecheverriae", "Nystalea ebalea", "Abax parallelepipedus",
                             "Anthicus antherinus", "Delia platura"]
    db.close()


# -- F7: a genus the reference lacks ------------------------------------------------------------------------------

def test_a_new_taxon_name_says_its_rank_and_is_one_capitalised_word_not_taken() -> None:
    from biodiscover.storage.db.reviews import new_taxon_problem, new_taxon_rank

    taken = {"amaxia": "genus Amaxia (under subfamily Arctiinae)"}
    assert new_taxon_problem("Clemensia", "subfamily", taken) is None
    assert "type" in new_taxon_problem("   ", "subfamily", taken)
    assert "one Latin word" in new_taxon_problem("Clemensia cincinnata", "subfamily", taken)
    assert "one Latin word" in new_taxon_problem("clemensia", "subfamily", taken)
    assert "already exists" in new_taxon_problem("AMAXIA", "family", taken) and "Arctiinae" in \
        new_taxon_problem("Amaxia", "family", taken)
    assert "under a genus" in new_taxon_problem("Clemensia", "genus", taken)
    # a family-group name says its rank by its ending (ICZN Art. 29.2): -idae a family, -inae a subfamily; a
    # family goes in an order and a subfamily in a family (92 specimens of an Australian plate were of families
    # the reference lacked: Oecophoridae, Xyloryctidae, Lauxaniidae)
    assert [new_taxon_rank(n) for n in ("Lauxaniidae", "Oecophorinae", "Clemensia", " Xyloryctidae ")] == \
        ["family", "subfamily", "genus", "family"]
    assert new_taxon_problem("Lauxaniidae", "order", taken) is None
    assert new_taxon_problem("Oecophorinae", "family", taken) is None
    assert "a new family goes under an order, not under a family" in new_taxon_problem("Lauxaniidae", "family", taken)
    assert "a new subfamily goes under a family, not under a order" in \
        new_taxon_problem("Oecophorinae", "order", taken).replace("an order", "a order")
    assert "one Latin word" in new_taxon_problem("Lauxaniidae sp", "order", taken)


@asynctest
async def test_move_into_a_new_genus_is_provisional_confirmed_undoable_and_exported(tmp_path: Path) -> None:
    path, ids = plate(tmp_path)
    pid = ids["a"]
    async with reviewing(path) as (app, db, pilot):
        shown = await move_list_for(pilot, app, pid, "Clemensia")
        assert len(shown) == 1  # no taxon has that name: only the offer to make it
        assert "new genus Clemensia" in shown[0]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)  # where the new genus goes
        title = str(app.screen.query_one("Label").render())
        assert "new genus Clemensia" in title
        assert all(s.split()[0] in ("order", "family", "subfamily") for s in labels(app.screen))
        assert labels(app.screen)[0].startswith("order Lepidoptera")  # where the candidate sits now, first
        await pilot.press(*"Arctiinae", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        question = app.screen.question
        assert f"#{pid}" in question and "new genus Clemensia" in question and "subfamily Arctiinae" in question \
            and "provisional" in question
        await pilot.press("y")
        await settle(pilot)
        moved = db.proposal(pid)
        assert (moved.parent_rank, moved.parent_name) == ("genus", "Clemensia")
        graph = db.taxonomy()
        genus = graph.node(moved.parent_taxon_id)
        assert genus.provisional and genus.source == "review"
        assert [n.name for n in graph.lineage(genus.id)] == ["Lepidoptera", "Erebidae", "Arctiinae", "Clemensia"]
        assert "moved from order Lepidoptera to new genus Clemensia" in " ".join(notes(app))
        # the header marks the genus a reviewer added, as the taxonomy screen does
        header = str(app.screen.query_one("#detail-summary").render())
        assert "Arctiinae › Clemensia ◆ (genus)" in header, header
        # accepted there, it is "Clemensia sp. BD-0001"
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog) and app.screen.value == "Clemensia sp. BD-0001"
        await pilot.press("enter")
        await settle(pilot)
    db.close()
    # it survives reopening, and the exports say the genus is provisional
    with Database.open(path) as again:
        accepted = again.proposal(pid)
        assert (accepted.status, accepted.parent_name, accepted.provisional_name) == \
            ("accepted", "Clemensia", "Clemensia sp. BD-0001")
        assert [n.name for n in again.taxonomy().provisional()] == ["Clemensia", "Clemensia sp. BD-0001"] or \
            sorted(n.name for n in again.taxonomy().provisional()) == ["Clemensia", "Clemensia sp. BD-0001"]
    occ, _, _ = occurrence_rows(load_run_export(path, 1))
    row = next(r for r in occ if r["occurrenceID"] == "BLPAA10040-19")
    assert (row["scientificName"], row["taxonRank"], row["identificationQualifier"]) == ("Clemensia", "genus", "sp.")
    assert row["verbatimIdentification"] == "Clemensia sp. BD-0001"
    assert "genus Clemensia is provisional: added by a reviewer" in row["identificationRemarks"]
    # the rank columns follow the placement, not the machine's labels (order only, family Noctuidae guessed):
    # a second review found the genus column empty and no family for a provisional genus
    assert (row["order"], row["family"], row["subfamily"], row["genus"]) == \
        ("Lepidoptera", "Erebidae", "Arctiinae", "Clemensia")
    # undo (the accept, then the move) takes the genus back out of the taxonomy
    async with reviewing(path) as (app, db, pilot):
        await open_proposal(pilot, pid)
        reviews = [r["id"] for r in sorted(db.reviews(pid), key=lambda r: r["id"])]
        app.session_reviews.extend(reviews)
        await pilot.press("u", "y")
        await settle(pilot)
        await pilot.press("u", "y")
        await settle(pilot)
    back = db.proposal(pid)
    assert (back.status, back.parent_rank, back.parent_name) == ("pending", "order", "Lepidoptera")
    assert not db.taxonomy().find("Clemensia")
    db.close()


@asynctest
async def test_a_new_taxon_that_is_blank_or_taken_is_refused_with_a_message(tmp_path: Path) -> None:
    path, ids = plate(tmp_path)
    pid = ids["a"]
    async with reviewing(path) as (app, db, pilot):
        shown = await move_list_for(pilot, app, pid, "Amaxia")
        options = app.screen.query_one("#dialog-options")
        # the existing genus, and no offer to make a second of that name (a review found "+ new genus Amaxia"
        # under the genus Amaxia itself)
        assert "genus Amaxia" in shown[0] and not any("new genus" in s for s in shown), shown
        await pilot.press(*["backspace"] * 6, "space", "space")
        await settle(pilot)
        options.highlighted = options.option_count - 1
        options.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        assert any("type the new taxon's name" in m for m in notes(app))
    assert db.proposal(pid).parent_name == "Lepidoptera" and not db.taxonomy().find("Clemensia")
    with pytest.raises(DatabaseError, match="already exists"):
        db.move(pid, db.proposal(pid).version, "Arctiinae", reviewer="ana", new_taxon="Amaxia")
    with pytest.raises(DatabaseError, match="type"):
        db.move(pid, db.proposal(pid).version, "Arctiinae", reviewer="ana", new_taxon="  ")
    with pytest.raises(DatabaseError, match="a new family goes under an order"):
        db.move(pid, db.proposal(pid).version, "Arctiinae", reviewer="ana", new_taxon="Lauxaniidae")
    assert db.reviews(pid) == []
    db.close()


@asynctest
async def test_move_into_a_family_the_reference_lacks_then_accept_and_export(tmp_path: Path) -> None:
    """An Australian plate held 92 specimens of families the reference lacked (Oecophoridae, Xyloryctidae,
    Lauxaniidae): the reviewer who knew the family could only leave them under the order."""
    path, ids = plate(tmp_path)
    pid = ids["a"]
    async with reviewing(path) as (app, db, pilot):
        shown = await move_list_for(pilot, app, pid, "Oecophoridae")
        assert len(shown) == 1
        assert "+ new family Oecophoridae (provisional ◆)" in shown[0]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)  # where it goes: an order, and nothing else
        title = str(app.screen.query_one("Label").render())
        assert "new family Oecophoridae" in title
        assert labels(app.screen) and all(s.startswith("order ") for s in labels(app.screen))
        assert labels(app.screen)[0].startswith("order Lepidoptera")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "new family Oecophoridae" in app.screen.question and "order Lepidoptera" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        moved = db.proposal(pid)
        assert (moved.parent_rank, moved.parent_name) == ("family", "Oecophoridae")
        graph = db.taxonomy()
        family = graph.node(moved.parent_taxon_id)
        assert family.provisional and family.rank == "family"
        assert [n.name for n in graph.lineage(family.id)] == ["Lepidoptera", "Oecophoridae"]
        # a second candidate can now go in it from the list, and a genus can be made inside it
        found = await move_list_for(pilot, app, ids["b"], "Oecophoridae")
        assert any(f.startswith("family Oecophoridae ◆") for f in found) and not any("new family" in f for f in found)
        await pilot.press("escape")
        await settle(pilot)
    db.move(ids["b"], db.proposal(ids["b"]).version, "Oecophoridae", reviewer="ana", new_taxon="Garrha")
    assert [n.name for n in db.taxonomy().lineage(db.proposal(ids["b"]).parent_taxon_id)] == \
        ["Lepidoptera", "Oecophoridae", "Garrha"]
    # the family cannot be taken out again while the genus made inside it stands
    family_move = max(r["id"] for r in db.reviews(pid))
    with pytest.raises(StaleProposalError, match="taxon Garrha was placed in it"):
        db.undo(family_move, reviewer="ana")
    db.accept(pid, db.proposal(pid).version, reviewer="ana")
    db.close()
    occ, _, _ = occurrence_rows(load_run_export(path, 1))
    row = next(r for r in occ if r["occurrenceID"] == "BLPAA10040-19")
    assert (row["order"], row["family"], row["genus"]) == ("Lepidoptera", "Oecophoridae", None)
    assert (row["scientificName"], row["taxonRank"]) == ("Oecophoridae", "family")
    assert "family Oecophoridae is provisional: added by a reviewer" in row["identificationRemarks"]


# -- F10: the merge list ------------------------------------------------------------------------------------------

@asynctest
async def test_the_merge_list_is_by_distance_and_says_each_one(tmp_path: Path) -> None:
    path, ids = plate(tmp_path)
    async with reviewing(path) as (app, db, pilot):
        await press_on(pilot, ids["a"], "m")
        assert isinstance(app.screen, PickDialog)
        rows = labels(app.screen)
        assert [o.id for o, _ in (v for v, _ in app.screen.options)] == [ids["b"], ids["c"], ids["d"]]
        for row, pct in zip(rows, ("1.0%", "5.0%", "8.0%")):
            assert f"{pct} from #{ids['a']}" in row
    db.close()


# -- F16: a rejection's reason, and the tab the next candidate opens on ---------------------------------------------

@asynctest
async def test_reject_asks_for_a_reason_that_history_and_export_show(tmp_path: Path) -> None:
    path, ids = plate(tmp_path)
    async with reviewing(path) as (app, db, pilot):
        await press_on(pilot, ids["a"], "r")
        assert isinstance(app.screen, TextDialog) and "reason" in app.screen.title_text.lower()
        assert db.proposal(ids["a"]).status == "pending"  # nothing written before the dialog is answered
        await pilot.press(*"contaminant", "enter")
        await settle(pilot)
        assert db.proposal(ids["a"]).status == "rejected"
        app.push_screen(DetailScreen(ids["a"]))
        await settle(pilot)
        await pilot.press("5")
        assert "“contaminant”" in str(app.screen.query_one("#history-text").render())
        # no reason is fine too: Enter on the empty box
        app.push_screen(DetailScreen(ids["b"]))
        await settle(pilot)
        await pilot.press("r", "enter")
        await settle(pilot)
        assert db.proposal(ids["b"]).status == "rejected"
    (reason,) = [r["note"] for r in db.reviews(ids["a"]) if r["action"] == "reject"]
    assert reason == "contaminant"
    assert [r["note"] for r in db.reviews(ids["b"]) if r["action"] == "reject"] == [None]
    db.close()
    occ, _, _ = occurrence_rows(load_run_export(path, 1))
    row = next(r for r in occ if r["occurrenceID"] == "BLPAA10040-19")
    assert '"contaminant"' in row["identificationRemarks"]


@asynctest
async def test_after_a_decision_the_next_candidate_opens_on_a_tab_with_content(tmp_path: Path) -> None:
    """On a plate without photographs, the Images tab is empty for every candidate."""
    path, ids = plate(tmp_path)
    async with reviewing(path) as (app, db, pilot):
        await settle(pilot)
        await pilot.press("enter")  # from the queue, so the detail walks on after a decision
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        tabs = app.screen.query_one("#detail-tabs")
        assert tabs.active == "images"
        await pilot.press("r", "enter")
        await settle(pilot)
        assert app.screen.proposal_id == ids["b"]
        assert tabs.active == "members"
        await pilot.press("3", "j")  # a tab with content stays
        await settle(pilot)
        assert app.screen.proposal_id == ids["c"] and tabs.active == "evidence"
    db.close()


# -- F9: the members table and the split dialog ---------------------------------------------------------------------

@asynctest
async def test_members_table_drops_empty_columns_and_never_cuts_a_processid(tmp_path: Path) -> None:
    path, ids = plate(tmp_path)
    async with reviewing(path, size=(80, 24)) as (_app, db, pilot):
        screen = await open_proposal(pilot, ids["a"])
        table = screen.query_one("#members-table")
        headers = [str(c.label) for c in table.columns.values()]
        assert "BIN" not in headers and "area" not in headers  # no member has one
        assert "processid" in headers and "country" in headers
        cells = [str(c) for c in table.get_row_at(0)]
        assert cells[0].strip() == "BLPAA10040-19"
        assert cells[1].strip() == "order: Lepidoptera"  # cut to "order: Lepidopte…" at 80 columns before
    db.close()


@asynctest
async def test_split_dialog_draws_a_ticked_box_unlike_an_unticked_one(tmp_path: Path) -> None:
    path, ids = plate(tmp_path)
    async with reviewing(path) as (app, db, pilot):
        await press_on(pilot, ids["d"], "x")
        assert isinstance(app.screen, PickManyDialog)
        await pilot.press("space")
        await settle(pilot)
        rows = app.screen.query_one("#dialog-selection")
        first, second = rows.render_line(0).text, rows.render_line(1).text
        assert first.startswith("▐X▌") and second.startswith("▐ ▌")
        assert "BIN" not in first  # no member has one: "no BIN" on every row said nothing
    db.close()


def test_undo_of_a_new_genus_waits_for_what_was_placed_in_it_since(tmp_path: Path) -> None:
    from biodiscover.storage.errors import StaleProposalError

    path, ids = plate(tmp_path)
    with Database.open(path) as db:
        made = db.move(ids["a"], 1, "Arctiinae", reviewer="ana", new_taxon="Clemensia")
        later = db.move(ids["b"], 1, "Clemensia", reviewer="ana")
        with pytest.raises(StaleProposalError, match=f"proposal {ids['b']} was placed in Clemensia"):
            db.undo(made.review_id, reviewer="ana")
        db.undo(later.review_id, reviewer="ana")
        db.undo(made.review_id, reviewer="ana")
        assert not db.taxonomy().find("Clemensia") and db.proposal(ids["a"]).parent_name == "Lepidoptera"


def test_redoing_a_new_genus_whose_name_was_taken_since_is_refused(tmp_path: Path) -> None:
    """Undo a new genus, another reviewer makes a genus of that name, then the first undo is undone (a redo): it
    brought the first genus back beside the second, two provisional genera Clemensia under one subfamily
    (``biodiscover db check`` said ok), the split ``new_taxon_problem`` exists to prevent."""
    path, ids = plate(tmp_path)
    with Database.open(path) as db:
        made = db.move(ids["a"], 1, "Arctiinae", reviewer="ana", new_taxon="Clemensia")
        undone = db.undo(made.review_id, reviewer="ana")
        db.move(ids["b"], 1, "Arctiinae", reviewer="bob", new_taxon="Clemensia")
        with pytest.raises(DatabaseError, match=r"genus Clemensia \(under subfamily Arctiinae\) already exists"):
            db.undo(undone.review_id, reviewer="ana")
        assert [n.status for n in db.taxonomy().find("Clemensia")] == ["provisional"]
        assert db.proposal(ids["a"]).parent_name == "Lepidoptera"


def test_undo_of_a_new_genus_waits_for_a_rejected_candidate_in_it(tmp_path: Path) -> None:
    """A candidate moved into the new genus and then rejected still sits in it: undoing the genus left it under a
    rejected taxon, and undoing the rejection brought it back pending under a genus the taxonomy no longer shows
    (accepting it then made a species under that rejected genus)."""
    from biodiscover.storage.errors import StaleProposalError

    path, ids = plate(tmp_path)
    with Database.open(path) as db:
        made = db.move(ids["a"], 1, "Arctiinae", reviewer="ana", new_taxon="Clemensia")
        db.move(ids["b"], 1, "Clemensia", reviewer="ana")
        rejected = db.reject(ids["b"], db.proposal(ids["b"]).version, reviewer="ana", note="a contaminant")
        with pytest.raises(StaleProposalError, match=f"proposal {ids['b']} was placed in Clemensia"):
            db.undo(made.review_id, reviewer="ana")
        db.undo(rejected.review_id, reviewer="ana")
        assert db.proposal(ids["b"]).parent_taxon_id in db.taxonomy()


def test_undo_of_a_new_genus_waits_for_a_candidate_in_it_that_was_merged_elsewhere(tmp_path: Path) -> None:
    """A candidate moved into the new genus and then merged into a candidate elsewhere still names the genus: undoing
    the genus was allowed (a merged candidate is not live), and undoing the merge then brought it back pending under
    a rejected genus, which ``db check`` called ok. Undoing the genus waits for the merge and the move to be undone;
    merging a candidate into one placed in the genus, either way round, changes that one and is refused as before."""
    from biodiscover.storage.db import check_database
    from biodiscover.storage.errors import StaleProposalError

    path, ids = plate(tmp_path)
    with Database.open(path) as db:
        made = db.move(ids["a"], 1, "Arctiinae", reviewer="ana", new_taxon="Clemensia")
        moved = db.move(ids["b"], 1, "Clemensia", reviewer="ana")
        merged = db.merge([ids["c"], ids["b"]], {ids["c"]: 1, ids["b"]: 2}, reviewer="ana")
        with pytest.raises(StaleProposalError, match=f"proposal {ids['b']} was placed in Clemensia and merged into "
                                                     f"proposal {ids['c']} since; undo that merge first"):
            db.undo(made.review_id, reviewer="ana")
        assert [n.status for n in db.taxonomy().find("Clemensia")] == ["provisional"]
        db.undo(merged.review_id, reviewer="ana")
        assert (db.proposal(ids["b"]).status, db.proposal(ids["b"]).parent_name) == ("pending", "Clemensia")
        db.undo(moved.review_id, reviewer="ana")
        db.undo(made.review_id, reviewer="ana")
        assert {db.proposal(ids[k]).parent_name for k in "abc"} == {"Lepidoptera"}
        assert not db.taxonomy().find("Clemensia")
        again = db.move(ids["a"], 3, "Arctiinae", reviewer="ana", new_taxon="Ghostia")
        into_a = db.merge([ids["a"], ids["d"]], {ids["a"]: 4, ids["d"]: 1}, reviewer="ana")
        with pytest.raises(StaleProposalError, match=f"proposal {ids['a']} changed after it"):
            db.undo(again.review_id, reviewer="ana")
        db.undo(into_a.review_id, reviewer="ana")
        db.undo(again.review_id, reviewer="ana")
        assert db.proposal(ids["d"]).status == "pending" and not db.taxonomy().find("Ghostia")
    report = check_database(path)
    assert report.ok, report.problems


def test_assigning_one_specimen_says_one_not_1_members() -> None:
    """The real plate's single-specimen candidates read "its 1 members are named" (F16)."""
    from biodiscover.tui.decisions import assign_wording

    assert assign_wording(111, 1, "Euglyphis melancholica") == (
        "Assign #111 (1 specimen) to Euglyphis melancholica? Its member is then named as that species.",
        "#111 assigned to Euglyphis melancholica: its member is named as that species")
    question, done = assign_wording(2, 3, "Bobeix thiata")
    assert question.startswith("Assign #2 (3 specimens) to Bobeix thiata? Its 3 members are then named")
    assert done == "#2 assigned to Bobeix thiata: its 3 members are named as that species"


@asynctest
async def test_the_split_dialog_ticks_the_group_the_barcodes_part_into_first(tmp_path: Path) -> None:
    """A real plate's #16 held *Memphis aulica* 6 and *M. orthesia* 5, 2.3 % apart, and the reviewer found the five
    to tick alone. The dialog now ticks the smaller of the two groups the members' barcodes fall into last (the
    run's own linkage), says how far apart they are, and a reviewer may change it (``n`` unticks all)."""
    from biodiscover.storage.distance import p_distance
    from fixtures.review_db import one_run_db

    rng = random.Random(16)
    aulica = "".join(rng.choice("ACGT") for _ in range(600))
    orthesia = _mutate(aulica, 14, rng)  # 2.3 %
    seqs = [_mutate(aulica, i % 2, rng) for i in range(6)] + [_mutate(orthesia, i % 2, rng) for i in range(5)]
    pids = [f"M{i}" for i in range(11)]
    path = tmp_path / "plate.sqlite"
    (pid,) = one_run_db(path, [Specimen(processid=p, dna_barcode=s, country="Costa Rica") for p, s in zip(pids, seqs)],
                        [{"order": "Lepidoptera", "family": "Nymphalidae", "genus": "Memphis"}],
                        [{"members": pids, "parent_lineage": {"order": "Lepidoptera", "family": "Nymphalidae",
                                                              "genus": "Memphis"},
                          "evidence": {"threshold": 0.028, "linkage": "average"}}])
    async with reviewing(path) as (_app, db, pilot):
        dialog = await press_on(pilot, pid, "x")
        assert isinstance(dialog, PickManyDialog)
        assert sorted(dialog.options[i][0] for i in dialog.ticked) == sorted(pids[6:])
        # average linkage: the two groups join at the mean p-distance between their members
        between = sum(p_distance(a, b) for a in seqs[:6] for b in seqs[6:]) / 30
        assert f"ticked: the 5 members {between * 100:.1f}% from the other 6 (average linkage; each group within " \
            "0.3%)" in dialog.title_text and 0.023 <= between <= 0.027
        assert str(dialog.query_one("#dialog-count").render()).startswith("5 of 11 ticked: M10, M6")
        await pilot.press("enter")
        await settle(pilot)
        split = [p for p in db.proposal_queue(status="pending")[0] if p.id != pid]
        assert [p.size for p in split] == [5] and db.proposal(pid).size == 6
        # the dialog again on the six left, one species: it still proposes, and n unticks every member
        dialog = await press_on(pilot, pid, "x")
        await pilot.press("n")
        await pilot.pause()
        assert str(dialog.query_one("#dialog-count").render()).startswith("0 of 6 ticked")
    db.close()


# -- S7 (second review of the real plate): where the closest candidates were placed -------------------------------

@asynctest
async def test_the_move_list_offers_where_the_closest_candidates_are_placed_a_provisional_genus_marked(
        tmp_path: Path) -> None:
    """After #5 went into a new genus Clemensia ◆, the move list of #14 (4.1 % from #5) began with the families of
    the "not named" reason; the reviewer had to remember and type "Clem", and then read the genus with no ◆."""
    path, ids = plate(tmp_path)
    with Database.open(path) as db:
        db.move(ids["b"], db.proposal(ids["b"]).version, "Arctiinae", reviewer="ana", new_taxon="Clemensia")
        db.accept(ids["b"], db.proposal(ids["b"]).version, "Clemensia sp. BD-0001", reviewer="ana")
        db.move(ids["c"], db.proposal(ids["c"]).version, "Amaxia", reviewer="ana")
    async with reviewing(path) as (app, db, pilot):
        await press_on(pilot, ids["a"], "v")
        assert isinstance(app.screen, PickDialog)
        shown = labels(app.screen)
        b, c = ids["b"], ids["c"]
        assert shown[:3] == [f"genus Clemensia ◆  (Erebidae › Arctiinae)  ← where #{b} (1.0 %) is placed",
                             f"genus Amaxia  (Erebidae › Arctiinae)  ← where #{c} (5.0 %) is placed",
                             "family Noctuidae  (Lepidoptera)  ← not named there"], shown[:4]
        await pilot.press("escape")
        await settle(pilot)
        # the assign list marks the provisional genus of the species accepted in it
        await pilot.press("i")
        await settle(pilot)
        clemensia = next(s for s in labels(app.screen) if s.startswith("Clemensia sp. BD-0001"))
        assert "(Arctiinae › Clemensia ◆)" in clemensia, clemensia
        await pilot.press("escape")
        await settle(pilot)
        # and the header's lineage
        await open_proposal(pilot, b)
        header = str(app.screen.query_one("#detail-summary").render())
        assert "Lepidoptera › Erebidae › Arctiinae › Clemensia ◆ (genus)" in header
    db.close()


def test_a_placed_neighbour_says_where_only_when_close_and_deeper_than_the_candidate() -> None:
    """Under 8 % a candidate's three nearest candidates on the real plate were of its true genus 109 times of 111,
    at 8-10 % 77 of 154: a placement farther than that is no evidence; nor is one at or above the candidate's own."""
    import networkx as nx

    from biodiscover.storage.db.taxonomy import TaxonomyGraph
    from biodiscover.tui.pickers import neighbour_places

    g = nx.DiGraph()
    for tid, rank, name, parent in ((1, "order", "Lepidoptera", None), (2, "family", "Erebidae", 1),
                                    (3, "genus", "Clemensia", 2), (4, "genus", "Amaxia", 2)):
        g.add_node(tid, rank=rank, name=name, status="provisional" if tid == 3 else "accepted", source="test",
                   parent_id=parent)
        if parent is not None:
            g.add_edge(parent, tid)
    graph = TaxonomyGraph(g)
    near = [(5, 3, 0.041), (9, 3, 0.06), (7, 1, 0.02), (8, 4, 0.085), (6, 2, 0.05)]
    assert neighbour_places(graph, 2, near) == [(3, "where #5 (4.1 %), #9 (6.0 %) are placed")]
    assert neighbour_places(graph, 1, near) == [(3, "where #5 (4.1 %), #9 (6.0 %) are placed"),
                                                (2, "where #6 (5.0 %) is placed")]
    assert neighbour_places(graph, None, [(7, 1, 0.02)]) == [(1, "where #7 (2.0 %) is placed")]


def test_the_assign_question_gives_the_identity_to_the_species_keys() -> None:
    """The second review of the real plate: the confirmation named the species but gave no identity, so nothing in
    the dialog showed a tie (A. rocioecheverriae / A. apyga, 95.0 %) or a far species picked by one key too many."""
    from biodiscover.tui.decisions import assign_wording

    question, _ = assign_wording(17, 11, "Amaxia apyga", 0.9498)
    assert question.startswith("Assign #17 (11 specimens) to Amaxia apyga (95.0 %, the best identity of a member "
                               "to its keys)? Its 11 members are then named"), question
    assert "identity" not in assign_wording(17, 11, "Amaxia apyga", None)[0]  # no member aligned to its keys


@asynctest
async def test_accepting_under_a_binomial_asks_first(tmp_path: Path) -> None:
    """The real plate's #66 was accepted as "Memphis beatrix", two Latin words that read as a published species,
    with no word from the app; a provisional name (``Memphis sp. BD-0001``) goes through as before."""
    path, ids = plate(tmp_path)
    async with reviewing(path) as (app, db, pilot):
        assert isinstance(await press_on(pilot, ids["a"], "a"), TextDialog)
        await pilot.press("ctrl+u", *"Memphis beatrix", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "“Memphis beatrix” reads as a published species name" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert db.proposal(ids["a"]).provisional_name == "Memphis beatrix"
        assert isinstance(await press_on(pilot, ids["b"], "a"), TextDialog)
        await pilot.press("ctrl+u", *"Memphis sp. BD-0002", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        assert db.proposal(ids["b"]).provisional_name == "Memphis sp. BD-0002"
    db.close()


@asynctest
async def test_members_table_gives_each_members_label_one_rank_under_the_candidates_place(tmp_path: Path) -> None:
    """e21 F2, again in the second review: a candidate at order showed 16 rows of "order: Lepidoptera 1.00", while
    what places it is each member's family label and its P(right), just under the level. A candidate at genus has
    no rank under its place to show: no such column."""
    path, ids = plate(tmp_path)
    with Database.open(path) as db:
        db.move(ids["b"], db.proposal(ids["b"]).version, "Ponometia", reviewer="ana")
    async with reviewing(path, size=(80, 24)) as (_app, db, pilot):
        screen = await open_proposal(pilot, ids["a"])
        table = screen.query_one("#members-table")
        headers = [str(c.label) for c in table.columns.values()]
        assert headers[:4] == ["processid", "deepest rank", "conf", "P · family"], headers
        rows = [[str(c).strip() for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert [r[3] for r in rows] == ["0.06 Noctuidae"] * 3
        assert rows[0][:2] == ["BLPAA10040-19", "order: Lepidoptera"]  # nothing cut at 80 columns
        assert "country" in headers and "memb" in headers
        screen = await open_proposal(pilot, ids["b"])
        headers = [str(c.label) for c in screen.query_one("#members-table").columns.values()]
        assert not any("P ·" in h for h in headers), headers
    db.close()


@asynctest
async def test_the_queue_and_the_merge_list_mark_a_candidate_in_a_provisional_genus(tmp_path: Path) -> None:
    """S7's "◆ in every list": the queue read "Clemensia sp. cand5" for a candidate in a genus a reviewer made, as
    it reads for a genus of the reference."""
    from biodiscover.tui.widgets.proposal_table import ProposalTable

    path, ids = plate(tmp_path)
    with Database.open(path) as db:
        db.move(ids["b"], db.proposal(ids["b"]).version, "Arctiinae", reviewer="ana", new_taxon="Clemensia")
        db.move(ids["c"], db.proposal(ids["c"]).version, "Amaxia", reviewer="ana")
    async with reviewing(path) as (app, db, pilot):
        await settle(pilot)
        table = app.screen.query_one(ProposalTable)
        names = {p.id: str(table.get_row_at(i)[2]) for i, p in enumerate(table.rows_shown)}
        assert names[ids["b"]] == f"Clemensia ◆ sp. cand{ids['b']}"
        assert names[ids["c"]] == f"Amaxia sp. cand{ids['c']}"
        await press_on(pilot, ids["a"], "m")
        assert isinstance(app.screen, PickDialog)
        row = next(label for label in labels(app.screen) if f"#{ids['b']} " in label)
        assert f"#{ids['b']} Clemensia ◆ sp. cand{ids['b']} ·" in row, row
    db.close()
