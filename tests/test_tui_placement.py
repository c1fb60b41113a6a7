"""Where the members of a candidate agree below its parent: said in the detail's header, first in the move list.

A taxonomist reviewing a real Costa Rican plate (115 candidates) found 72 of them placed only at order
("Lepidoptera gen. sp.") while every member's label named one genus at P(right) 0.95-0.99 — just under the
naming level — and the screen said only "order"; the move list then began with other orders' families. Real
SQLite file, the real app driven with Pilot.
"""

from __future__ import annotations

from pathlib import Path

from biodiscover.storage.db import Database
from biodiscover.storage.db.proposals import agreed_below
from biodiscover.storage.records import Specimen
from biodiscover.tui.app import ReviewApp
from biodiscover.tui.screens.dialogs import PickDialog
from fixtures.review_db import one_run_db
from fixtures.tui_pilot import asynctest, open_proposal, press_on, reviewing, settle

NYSTALEA = {"order": "Lepidoptera", "family": "Notodontidae", "subfamily": None, "genus": "Nystalea"}


def test_the_deepest_rank_every_members_label_agrees_on_below_the_parent() -> None:
    labels = [{**NYSTALEA, "species": "Nystalea superciliosa"}, {**NYSTALEA, "species": "Nystalea ebalea"}]
    conf = [{"order": 1.0, "family": 0.99, "genus": 0.95, "species": 0.1},
            {"order": 1.0, "family": 0.98, "genus": 0.97, "species": 0.2}]
    assert agreed_below("order", labels, conf) == ("genus", "Nystalea", 0.95, 0.97)  # blank subfamily skipped
    assert agreed_below("genus", labels, conf) is None  # a candidate species' place is above species
    assert agreed_below("order", [labels[0]] * 2, conf) == ("genus", "Nystalea", 0.95, 0.97)  # one species label
    other = [labels[0], {**NYSTALEA, "genus": "Hemiceras", "species": "Hemiceras losa"}]
    assert agreed_below("order", other, conf) == ("family", "Notodontidae", 0.98, 0.99)
    filler = [{**NYSTALEA, "genus": "unassigned Notodontidae"}] * 2
    assert agreed_below("order", filler, conf)[:2] == ("family", "Notodontidae")  # a rank filler names nothing
    assert agreed_below("order", [], []) is None
    # a label every member guesses alike is no place: each rank needs every member at P(right) >= 0.9 (a second
    # review of the real plate: 40 of 63 hints wrong without it, 34 of them under 0.5)
    unsure = [{"order": 1.0, "family": 0.99, "genus": 0.89, "species": 0.1}, conf[1]]
    assert agreed_below("order", labels, unsure) == ("family", "Notodontidae", 0.98, 0.99)
    guess = [{"order": 1.0, "family": 0.06, "genus": 0.03, "species": 0.0}] * 2
    assert agreed_below("order", labels, guess) is None
    assert agreed_below("order", labels, [{**conf[0], "genus": 0.9}, conf[1]]) == ("genus", "Nystalea", 0.9, 0.97)


@asynctest
async def test_the_header_says_it_and_the_move_list_offers_it_first(tmp_path: Path) -> None:
    path = tmp_path / "plate.sqlite"
    (pid,) = one_run_db(
        path, [Specimen(processid=f"CR{i}", dna_barcode="ACGT" * 150, country="Costa Rica") for i in range(3)],
        [NYSTALEA, {"order": "Lepidoptera", "family": "Erebidae", "genus": "Amaxia"},
         {"order": "Coleoptera", "family": "Carabidae", "genus": "Agonum"}],
        [{"members": ["CR0", "CR1", "CR2"], "parent_lineage": {"order": "Lepidoptera"}}],
        [{"processid": f"CR{i}", "deepest_rank": "order", "deepest_taxon": "Lepidoptera",
          "labels": {**NYSTALEA, "species": "Nystalea superciliosa"}, "is_novel": True,
          "confidences": {"order": 1.0, "family": 0.99, "genus": g, "species": 0.01}, "novelty": 0.99}
         for i, g in enumerate((0.95, 0.97, 0.96))])
    db = Database.open(path)
    app = ReviewApp(db, reviewer="ana", halfcell_images=True, poll_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_proposal(pilot, pid)
        header = str(app.screen.query_one("#detail-summary").render())
        assert "members' labels agree down to genus Nystalea (P(right) 0.95–0.97, under the level)" in header
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        assert app.screen.options[0][1].startswith("genus Nystalea")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")  # confirm the move
        await settle(pilot)
    moved = db.proposal(pid)
    assert (moved.parent_rank, moved.parent_name) == ("genus", "Nystalea")
    db.close()


@asynctest
async def test_moving_an_unplaced_candidate_says_so(tmp_path: Path) -> None:
    """The taxonomist saw "Move #113 (now under None None) to:" for a candidate the engine could not place."""
    path = tmp_path / "plate.sqlite"
    (pid,) = one_run_db(path, [Specimen(processid="CR9", dna_barcode="ACGT" * 150)], [NYSTALEA],
                        [{"members": ["CR9"]}])
    async with reviewing(path, size=(100, 30)) as (app, db, pilot):
        assert isinstance(await press_on(pilot, pid, "v"), PickDialog)
        title = str(app.screen.query_one("Label").render())
        assert f"Move #{pid} (now under no taxon (unplaced)) to:" in title and "None" not in title
    db.close()
