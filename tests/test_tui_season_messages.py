"""What the review app says before a decision agrees with what then happens (e36 season review, finding 7).

A second lab's season of real BOLD barcodes, reviewed in the TUI: the accept dialog named one twin "listed
first" and the merge list had another first; the merge list said a merge would leave the candidate unplaced and
storage kept its family. Real SQLite files built by hand (:func:`fixtures.review_db.one_run_db`), the real app
driven with Pilot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog
from fixtures.review_db import GONODONTA, one_run_db
from fixtures.tui_pilot import asynctest, open_proposal, press_on, reviewing, settle

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
            ids.append([int(i) for i in db.write_proposals(run, [{"evidence": EVIDENCE, **p} for p in week])])
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


@asynctest
async def test_the_header_says_the_members_p_right_against_the_level_in_figures_that_show_it(
        tmp_path: Path) -> None:
    """After a move up to its subfamily, #31's header read "members' labels agree down to genus Sitona (P(right)
    0.98, under the level)" for members named there at 0.984-0.987 over the level 0.98; a P(right) of 0.9795 read
    "0.97". The header says the run's level and each figure with the digits its side of the level needs."""
    from biodiscover.tui.screens.detail import summary_text

    path = tmp_path / "season.sqlite"
    family = {k: GONODONTA[k] for k in ("order", "family")}
    genus_p = (0.975, 0.979, 0.9795, 0.984, 0.987, 0.99, 0.979)
    under, over, both = one_run_db(
        path, [Specimen(processid=f"S{i}", dna_barcode=BARCODE) for i in range(len(genus_p))],
        [{**GONODONTA, "species": "Gonodonta bidens"}],
        [{"members": members, "parent_lineage": family, "evidence": EVIDENCE}
         for members in (["S0", "S1", "S2"], ["S3", "S4"], ["S5", "S6"])],
        [{"processid": f"S{i}", "deepest_rank": "family", "deepest_taxon": "Erebidae", "novelty": 0.9,
          "labels": {**GONODONTA, "species": "Gonodonta bidens"}, "is_novel": True,
          "confidences": {"order": 1.0, "family": 0.995, "subfamily": 0.995, "genus": p, "species": 0.01}}
         for i, p in enumerate(genus_p)], parameters={"level": 0.98})
    async with reviewing(path, size=(120, 40)) as (_app, db, pilot):
        screen = await open_proposal(pilot, both)
        header = str(screen.query_one("#detail-summary").render())
        assert "agree down to genus Gonodonta (P(right) 0.979–0.99, the lowest under the level 0.98)" in header, header
        said = {pid: str(summary_text(db.proposal_detail(pid))) for pid in (under, over)}
    assert "(P(right) 0.97–0.9795, under the level 0.98)" in said[under], said[under]
    assert "(P(right) 0.98, at or over the level 0.98)" in said[over], said[over]
    db.close()


@asynctest
async def test_the_header_and_the_accept_dialog_say_one_distance_to_a_twin(tmp_path: Path) -> None:
    """#33's header said "≡ same as #83 … 0.5 %" (the figure #83's run recorded) while its accept dialog said "#83
    … 0.3 % away" (the consensus barcodes measured now, after a merge had changed #33's): both say the measured one."""
    path = tmp_path / "season.sqlite"
    near = "".join("T" if i in (100, 300, 500) else c for i, c in enumerate(BARCODE))  # a few bases apart
    [[p], [twin]] = _weeks(path, [
        [{"members": ["P1", "P2"], "parent_lineage": GONODONTA}],
        [{"members": ["Q1"], "parent_lineage": GONODONTA,
          "evidence": {**EVIDENCE, "consensus_barcode": near,
                       "between_distance": {"nearest_candidate": 1, "distance": 0.009, "member": "P1"}}}]])
    async with reviewing(path) as (app, db, pilot):
        screen = await open_proposal(pilot, p)
        header = str(screen.query_one("#detail-summary").render())
        (line,) = [x for x in header.splitlines() if "same as" in x]
        assert f"same as #{twin} " in line, line
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, PickDialog) and app.screen.title_text.startswith(f"#{twin} ")
        away = re.search(r", (\d+\.\d %) away\)", app.screen.title_text)
        assert away is not None and away[1] != "0.9 %", app.screen.title_text  # measured, not the stored 0.9 %
        assert line.endswith(f"(run 2, {away[1]})"), (line, away[1])
    db.close()


@asynctest
async def test_the_family_placement_list_offers_an_order_the_reference_lacks(tmp_path: Path) -> None:
    """#57, butterflies triaged against a reference of flies and beetles: "Place the family Nymphalidae … under:"
    offered only the reference's two orders, and "Lepidoptera" typed there found nothing, while ``v`` offered "+
    order Lepidoptera (described, not in the reference)". The placement list offers it too, and picking it places
    the candidate in the family under the new order."""
    path = tmp_path / "season.sqlite"
    (pid,) = one_run_db(path, [Specimen(processid="L1", dna_barcode=BARCODE)],
                        [{"order": "Diptera", "family": "Muscidae", "genus": "Musca"},
                         {"order": "Coleoptera", "family": "Curculionidae", "genus": "Sitona"}],
                        [{"members": ["L1"], "parent_lineage": {"order": "Diptera"}, "evidence": EVIDENCE}])
    async with reviewing(path) as (app, db, pilot):
        assert isinstance(await press_on(pilot, pid, "v"), PickDialog)
        app.screen.query_one("#dialog-filter").value = "Nymphalidae"
        await settle(pilot)
        chosen = [value for value in app.screen._offered if getattr(value, "described", False)]
        assert [v.name for v in chosen] == ["Nymphalidae"]
        app.screen.dismiss(chosen[0])
        await settle(pilot)
        assert isinstance(app.screen, PickDialog)
        assert app.screen.title_text.startswith("Place the family Nymphalidae (described, not in the reference)")
        app.screen.query_one("#dialog-filter").value = "lepidoptera"
        await settle(pilot)
        shown = [str(o.prompt) for o in app.screen.query_one("#dialog-options").options]
        assert shown == ["+ order Lepidoptera (described, not in the reference): under class Insecta, the family "
                         "under it, Enter to confirm"], shown
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "to family Nymphalidae (described, not in the reference) under order Lepidoptera (described, not in " \
            "the reference) under class Insecta?" in app.screen.question, app.screen.question
        await pilot.press("y")
        await settle(pilot)
        moved = db.proposal(pid)
        assert (moved.parent_rank, moved.parent_name) == ("family", "Nymphalidae")
        lineage = db.taxonomy().lineage_dict(moved.parent_taxon_id)
        assert lineage.get("order") == "Lepidoptera", lineage
        # both moves are on the session's undo stack, the family's last: ``u`` took back only the family's, and
        # the next ``u`` offered another candidate's decision (e36 rev3 F2)
        moves = [r["id"] for r in db.reviews() if r["proposal_id"] == pid and r["action"] == "move"]
        assert sorted(moves) == app.session_reviews[-2:] and len(moves) == 2, (moves, app.session_reviews)
    db.close()


@asynctest
async def test_queue_rows_keep_the_qualifier_every_row_has(tmp_path: Path) -> None:
    """A season's queue (120 columns, its collections shown) read "Coenosiinae cand24" beside "Syrphinae gen. sp.
    cand23": the row too long for its column lost its "gen. sp.", as if the two were named differently. Every row
    keeps it; the long taxon is shortened instead."""
    from biodiscover.tui.widgets.proposal_table import ProposalTable, column_widths

    path = tmp_path / "season.sqlite"
    muscidae = {"order": "Diptera", "family": "Muscidae"}
    long_one, short_one = one_run_db(
        path, [Specimen(processid=p, dna_barcode=BARCODE) for p in ("M1", "S1")],
        [{**muscidae, "subfamily": "Taeglaeocephalusinae", "genus": "Musca"},
         {"order": "Diptera", "family": "Syrphidae", "subfamily": "Syrphinae", "genus": "Syrphus"}],
        [{"members": ["M1"], "parent_lineage": {**muscidae, "subfamily": "Taeglaeocephalusinae"}},
         {"members": ["S1"], "parent_lineage": {"order": "Diptera", "family": "Syrphidae", "subfamily": "Syrphinae"}}])
    assert column_widths(90)["taxon"] < len(f"Taeglaeocephalusinae gen. sp. cand{long_one}")
    async with reviewing(path, size=(90, 24)) as (app, db, pilot):
        await settle(pilot)
        table = app.screen.query_one(ProposalTable)
        names = {p.id: str(table.get_row_at(i)[2]) for i, p in enumerate(table.rows_shown)}
    assert names[short_one] == f"Syrphinae gen. sp. cand{short_one}", names
    assert names[long_one].endswith(f"… gen. sp. cand{long_one}") and names[long_one].startswith("Taeglaeo"), names
    db.close()
