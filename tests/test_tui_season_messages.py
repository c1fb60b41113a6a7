"""What the review app says before a decision agrees with what then happens (e36 season review, finding 7).

A second lab's season of real BOLD barcodes, reviewed in the TUI: the accept dialog named one twin "listed
first" and the merge list had another first; the merge list said a merge would leave the candidate unplaced and
storage kept its family. Real SQLite files built by hand (:func:`fixtures.review_db.one_run_db`), the real app
driven with Pilot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog
from fixtures.review_db import GONODONTA, one_run_db
from fixtures.tui_pilot import asynctest, press_on, reviewing, settle

BARCODE = "ACGT" * 150
EVIDENCE = {"format": 6, "consensus_barcode": BARCODE, "threshold": 0.028}
EREBIDAE = {"order": "Lepidoptera", "family": "Erebidae"}


def _weeks(path: Path, weeks: Sequence[Sequence[Mapping[str, Any]]]) -> list[list[int]]:
    """Week 1's proposals by :func:`one_run_db`, then each later week's as a triage run of its own; every candidate
    with one consensus barcode (0.0 % apart); the ids, week by week."""
    specimens = [Specimen(processid=m, dna_barcode=BARCODE) for week in weeks for p in week for m in p["members"]]
    ids = [one_run_db(path, specimens, [{**GONODONTA, "species": "Gonodonta bidens"}],
                      [{**p, "evidence": EVIDENCE} for p in weeks[0]])]
    with Database.open(path) as db:
        for n, week in enumerate(weeks[1:], start=2):
            run = db.start_run("triage", {}, collection=f"week{n}", backup=False)
            ids.append([int(i) for i in db.write_proposals(run, [{**p, "evidence": EVIDENCE} for p in week])])
            db.finish_run(run, "completed")
    return ids


@asynctest
async def test_the_twin_the_accept_dialog_says_is_listed_first_is_the_merge_lists_first(tmp_path: Path) -> None:
    """#31's accept dialog said "merge #80 into #31 first (m: it is listed first)" (the lower id of two twins at
    0.0 %); the merge list put #122 (the same parent) first, and Enter merged #122."""
    path = tmp_path / "season.sqlite"
    [[p], [other_parent], [same_parent]] = _weeks(path, [
        [{"members": ["P1", "P2"], "parent_lineage": GONODONTA}],
        [{"members": ["A1"], "parent_lineage": EREBIDAE}],
        [{"members": ["B1"], "parent_lineage": GONODONTA}]])
    async with reviewing(path) as (app, db, pilot):
        assert isinstance(await press_on(pilot, p, "a"), PickDialog)
        (value, said), _ = app.screen.options
        assert value == "merge" and said == f"merge #{same_parent} into #{p} first (m: it is listed first)", said
        assert app.screen.title_text.startswith(f"#{same_parent} "), app.screen.title_text
        await pilot.press("enter")  # to the merge list
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        assert [o.id for (o, _), _ in app.screen.options] == [same_parent, other_parent]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and app.screen.question.startswith(f"Merge #{same_parent} ")
        await pilot.press("y")
        await settle(pilot)
        assert db.proposal(same_parent).status == "merged" and db.proposal(other_parent).status == "pending"
    db.close()


@asynctest
async def test_the_merge_list_says_where_storage_will_place_the_merged_candidate(tmp_path: Path) -> None:
    """The merge list said of an unplaced candidate "no taxon in common: the merged candidate would be unplaced";
    merged, the candidate kept its place (storage takes no place from an unplaced one). The list and the question say
    what storage will do, and it does it."""
    path = tmp_path / "season.sqlite"
    [[p, unplaced, erebid]] = _weeks(path, [[{"members": ["P1", "P2"], "parent_lineage": GONODONTA},
                                             {"members": ["U1"]},
                                             {"members": ["E1"], "parent_lineage": EREBIDAE}]])
    async with reviewing(path) as (app, db, pilot):
        assert db.proposal(unplaced).parent_taxon_id is None
        assert isinstance(await press_on(pilot, p, "m"), PickDialog)
        labels = {o.id: label for (o, _), label in app.screen.options}
        assert "no taxon in common" not in labels[unplaced] and "→" not in labels[unplaced], labels[unplaced]
        assert labels[erebid].endswith("→ under family Erebidae"), labels[erebid]
        app.screen.query_one("#dialog-filter").value = f"#{unplaced} "
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert app.screen.question.endswith("3 specimens under genus Gonodonta?"), app.screen.question
        await pilot.press("y")
        await settle(pilot)
        merged = db.proposal(p)
        assert db.proposal(unplaced).status == "merged" and merged.size == 3
        assert (merged.parent_rank, merged.parent_name) == ("genus", "Gonodonta")
    db.close()
