"""The review queue and header after a real US plate's review (e25 findings 7, 8, 9, 10 and 13).

Each test builds a small SQLite database of one triage run, opens the real :class:`~biodiscover.tui.app.ReviewApp`
on it under Textual's Pilot, presses keys and asserts what the screen shows and where it went.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biodiscover.storage.db import Database
from biodiscover.storage.evidence import Evidence, Geography, MemberHit, NearSpecies
from biodiscover.storage.records import Specimen
from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.dialogs import TextDialog
from biodiscover.tui.screens.queue import QueueScreen
from biodiscover.tui.widgets.proposal_table import ProposalTable
from fixtures.review_db import GONODONTA, one_run_db
from fixtures.tui_pilot import asynctest, notes, open_proposal, reviewing, settle

SEQ = "ACGT" * 150


def _evidence(pids: list[str], near: tuple[NearSpecies, ...], **kw: Any) -> Evidence:
    """Evidence of candidate ``pids`` caught in the United States whose nearest species are ``near``."""
    top = near[0]
    return Evidence(size=len(pids), geography=Geography(countries={"United States": len(pids)}), near_species=near,
                    member_hits={p: MemberHit(top.species, top.genus, "K1", top.identity) for p in pids}, **kw)


def flag_plate(path: Path) -> dict[str, int]:
    """Five candidates of genus Gonodonta caught in the United States, ids by letter: ``near`` 2.5 % from a
    congener whose keys are all Brazilian (⚑ within the 3 %), ``far`` 6.1 % from one (⚑ beyond it), ``close`` 0.9 %
    from one (⚑ within, the closest), ``here`` whose nearest species has a US key (no flag) and ``noted``, no flag,
    with a reviewer's note."""
    def species(name: str, identity: float, countries: dict[str, int]) -> NearSpecies:
        return NearSpecies(name, "Gonodonta", identity, sum(countries.values()), countries, {})

    near = {"near": species("Gonodonta bidens", 0.975, {"Brazil": 6}),
            "far": species("Gonodonta uxor", 0.939, {"Brazil": 2}),
            "close": species("Gonodonta immacula", 0.991, {"Suriname": 1}),
            "here": species("Gonodonta sicheas", 0.95, {"United States": 3}),
            "noted": species("Gonodonta sicheas", 0.93, {"United States": 3})}
    groups = {k: [f"{k}{i}" for i in range(2)] for k in near}
    ids = one_run_db(path, [Specimen(processid=p, dna_barcode=SEQ, country="United States")
                            for g in groups.values() for p in g],
                     [{**GONODONTA, "species": s.species} for s in near.values()],
                     [{"members": groups[k], "parent_lineage": GONODONTA, "nearest_species": near[k].species,
                       "nearest_identity": near[k].identity, "evidence": _evidence(groups[k], (near[k],))}
                      for k in near])
    out = dict(zip(near, ids))
    with Database.open(path) as db:
        db.note(out["noted"], "needs genitalia", reviewer="ana")
    return out


def status_cells(app: Any) -> dict[int, str]:
    """Proposal id → the plain text of its status-and-marks cell, as the queue shows it."""
    table = app.screen.query_one(ProposalTable)
    return {p.id: str(table.get_row_at(i)[1].plain) for i, p in enumerate(table.rows_shown)}


@asynctest
async def test_the_queue_marks_the_flag_within_or_beyond_the_span_and_a_note(tmp_path: Path) -> None:
    """e25 finding 7: flagged candidates were visible only through ``f known=elsewhere`` and #34, with a note,
    read ``34 · Amara sp. cand34`` like any other. At 80 columns the marks are one cell each (⚑ within the 3 %
    one species usually spans, ⚐ beyond it, ✎ a note); at 200 the ⚑ carries its gap."""
    ids = flag_plate(tmp_path / "plate.sqlite")
    async with reviewing(tmp_path / "plate.sqlite", size=(80, 24)) as (app, db, pilot):
        await settle(pilot)
        cells = status_cells(app)
        assert cells == {ids["near"]: "·⚑", ids["far"]: "·⚐", ids["close"]: "·⚑", ids["here"]: "·",
                         ids["noted"]: "·  ✎"}, cells  # the twin mark's slot (≡) between the flag and ✎
        table = app.screen.query_one(ProposalTable)
        assert table.widths["taxon"] >= 21 and sum(table.widths.values()) + 2 * len(table.widths) + 3 <= 80
    async with reviewing(tmp_path / "plate.sqlite", size=(200, 50)) as (app, db, pilot):
        await settle(pilot)
        cells = status_cells(app)
        assert cells[ids["near"]] == "· ⚑2.5%" and cells[ids["far"]] == "· ⚐6.1%" and cells[ids["close"]] == "· ⚑0.9%"
        assert cells[ids["noted"]] == "·" + " " * 14 + "✎" and cells[ids["here"]] == "·"
    db.close()


@asynctest
async def test_sort_by_the_flag_gap_puts_the_flags_within_the_span_first(tmp_path: Path) -> None:
    """e25 finding 10: 27 of 50 candidates were flagged; sorted by the ⚑ gap (``s`` to ``sort=flag``, or
    ``sort=flag`` in the filter) the closest flags come first and the unflagged last, in id order."""
    ids = flag_plate(tmp_path / "plate.sqlite")
    want = [ids["close"], ids["near"], ids["far"], ids["here"], ids["noted"]]
    async with reviewing(tmp_path / "plate.sqlite", size=(120, 30)) as (app, db, pilot):
        await settle(pilot)
        for _ in range(5):  # id → size → novelty → identity → parent → flag
            await pilot.press("s")
            await settle(pilot)
        assert app.screen.query_state.sort == "flag"
        assert [p.id for p in app.screen.query_one(ProposalTable).rows_shown] == want
        assert "sort=flag ↑" in str(app.screen.query_one("#queue-query").render())
        await pilot.press("S")  # reversed: the farthest flag first, the unflagged still last
        await settle(pilot)
        assert [p.id for p in app.screen.query_one(ProposalTable).rows_shown] == [
            ids["far"], ids["near"], ids["close"], ids["noted"], ids["here"]]
        await pilot.press("s")  # back to id
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press("ctrl+u", *"sort=flag", "enter")
        await settle(pilot)
        assert [p.id for p in app.screen.query_one(ProposalTable).rows_shown] == want
        await pilot.press("f")
        await settle(pilot)
        await pilot.press("ctrl+u", *"sort=colour", "enter")
        await settle(pilot)
        assert any("cannot read filter term 'sort=colour'" in n for n in notes(app))
    assert db.queue_position(ids["far"], status="pending", sort="flag") == 2
    assert db.queue_position(ids["far"], status="accepted") is None
    db.close()


@asynctest
async def test_a_candidate_opens_by_its_number_at_its_place_in_the_queue(tmp_path: Path) -> None:
    """e25 finding 9: ``#31`` or ``:31`` from the queue opens that candidate; ``j`` then steps on from its place
    in the queue's own order (here sorted by the ⚑ gap), and back in the queue the cursor is on it."""
    ids = flag_plate(tmp_path / "plate.sqlite")
    async with reviewing(tmp_path / "plate.sqlite", size=(120, 30)) as (app, db, pilot):
        await settle(pilot)
        app.screen.action_sort_by("flag")
        await settle(pilot)
        await pilot.press("number_sign")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        await pilot.press(*str(ids["near"]), "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen) and app.screen.proposal_id == ids["near"]
        assert app.screen.position == 1  # second in the ⚑ order
        await pilot.press("j")
        await settle(pilot)
        assert app.screen.proposal_id == ids["far"]
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen) and app.screen.query_one(ProposalTable).current.id == ids["far"]
        await pilot.press("colon")
        await settle(pilot)
        await pilot.press(*f"cand{ids['here']}", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen) and app.screen.proposal_id == ids["here"]
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("number_sign")
        await settle(pilot)
        await pilot.press(*"#99", "enter")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen) and any("no proposal 99" in n for n in notes(app))
        await pilot.press("question_mark")  # the help names the keys as typed
        await settle(pilot)
        assert "#/:       Open candidate #N" in str(app.screen.query_one("#help-body").render())
    db.close()


@asynctest
async def test_an_assigned_candidate_is_placed_at_its_species_in_the_header(tmp_path: Path) -> None:
    """e25 finding 13: #13, assigned to *Acrolophus kearfotti*, read "… › Acrolophus (genus)" under its name."""
    ids = flag_plate(tmp_path / "plate.sqlite")
    with Database.open(tmp_path / "plate.sqlite") as db:
        pid = ids["near"]
        db.assign(pid, db.proposal(pid).version, "Gonodonta bidens", reviewer="ana")
    async with reviewing(tmp_path / "plate.sqlite", size=(80, 24)) as (_app, db, pilot):
        screen = await open_proposal(pilot, pid)
        lines = str(screen.query_one("#detail-summary").render()).splitlines()
        assert lines[0].startswith(f"#{pid} assigned") and lines[0].endswith("Gonodonta bidens")
        assert lines[1] == "Lepidoptera › Erebidae › Calpinae › Gonodonta bidens (species)", lines
        screen = await open_proposal(pilot, ids["far"])  # a pending one keeps its genus
        assert str(screen.query_one("#detail-summary").render()).splitlines()[1].endswith("› Gonodonta (genus)")
    db.close()


@asynctest
async def test_members_show_their_distance_from_the_centre_not_a_membership_that_reads_as_doubt(
        tmp_path: Path) -> None:
    """e25 finding 8: on #2 (69 *Renia* ≤ 0.9 % apart, HDBSCAN agreeing 100 %) 64 members read ``memb 0.49``: half
    of that figure is HDBSCAN's soft membership, 0 where it finds one cluster. The members table shows each one's
    p-distance from the consensus barcode instead, and the evidence says what the stored score is."""
    variant = "ACGA" + SEQ[4:300] + "T" + SEQ[301:]  # 2 differences in 600 from the consensus: 0.3 %
    pids = ["R0", "R1", "R2", "R3"]
    seqs = [SEQ, SEQ, SEQ, variant]
    (pid,) = one_run_db(tmp_path / "plate.sqlite",
                        [Specimen(processid=p, dna_barcode=s, country="United States") for p, s in zip(pids, seqs)],
                        [GONODONTA],
                        [{"members": [(p, 0.486) for p in pids], "parent_lineage": GONODONTA,
                          # stored before evidence format 6, when the membership averaged HDBSCAN's soft one in
                          "evidence": {"format": 5, "size": 4, "consensus_barcode": SEQ, "threshold": 0.025,
                                       "linkage": "average", "hdbscan_agreement": 1.0, "mean_probability": 0.486}}])
    async with reviewing(tmp_path / "plate.sqlite", size=(80, 24)) as (_app, db, pilot):
        screen = await open_proposal(pilot, pid)
        table = screen.query_one("#members-table")
        assert str(table.columns["p"].label) == "ctr%"
        rows = {str(table.get_row_at(i)[0]).strip(): str(table.get_row_at(i)[-1]).strip()
                for i in range(table.row_count)}
        assert rows == {"R0": "0.0", "R1": "0.0", "R2": "0.0", "R3": "0.3"}, rows
        await pilot.press("3")
        await settle(pilot)
        evidence = " ".join(str(screen.query_one("#nearest").render()).split())
        assert "mean membership" not in evidence
        assert "clustering score 0.49 (stored by an earlier version: P(same species) by distance averaged with " \
               "HDBSCAN's soft membership, ≈0 where HDBSCAN sees one cluster: not doubt" in evidence, evidence
    db.close()


def _type_at_once(app: Any, keys: list[str]) -> None:
    """Post ``keys`` to the app together, as a terminal delivers a burst (tmux send-keys, a paste, a quick hand)."""
    from textual import events

    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))


@asynctest
async def test_keys_typed_before_the_filter_box_opens_go_into_it_in_order(tmp_path: Path) -> None:
    """e25 finding 9: typed fast after ``f``, the text reached the queue's table before the filter box opened and
    was lost there, while Ctrl-U and Enter acted on the box when they came back up: an emptied filter was applied.
    In the box itself, a burst of "Ctrl-U text Enter" typed the text, then cleared it. Every key now lands in the
    box, in order, and a second Enter does not close the queue under it."""
    ids = flag_plate(tmp_path / "plate.sqlite")
    async with reviewing(tmp_path / "plate.sqlite", size=(120, 30)) as (app, db, pilot):
        await settle(pilot)
        _type_at_once(app, ["f", "ctrl+u", *f"#{ids['far']}", "enter"])
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen), app.screen_stack
        assert app.screen.query_state.search == f"#{ids['far']}"
        assert [p.id for p in app.screen.query_one(ProposalTable).rows_shown] == [ids["far"]]
        _type_at_once(app, ["f", "ctrl+u", *"sort=flag", "enter", "enter"])
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen) and len(app.screen_stack) == 2, app.screen_stack
        assert app.screen.query_state.sort == "flag" and app.screen.query_state.search is None
    db.close()


def test_the_flag_goes_from_the_marks_and_the_sort_once_a_reviewer_assigns_a_sibling_to_that_species(
        tmp_path: Path) -> None:
    """The ⚑ gaps are kept per database between queries (a ``j`` step sorted by them re-ran the rule on every row:
    about 5 s at 20,000 proposals); an assignment that makes the species known from here must still clear them."""
    ids = flag_plate(tmp_path / "plate.sqlite")
    with Database.open(tmp_path / "plate.sqlite") as db:
        assert db.proposal_marks([ids["near"]])[ids["near"]][0].kind == "elsewhere"
        assert db.queue_position(ids["near"], status="pending", sort="flag") == 1
        noted = db.proposal(ids["noted"])
        db.assign(noted.id, noted.version, "Gonodonta bidens", reviewer="ana")  # US specimens of G. bidens now
        assert ids["near"] not in db.proposal_marks([ids["near"]])
        rows, _ = db.proposal_queue(status="pending", sort="flag")
        assert [p.id for p in rows] == [ids["close"], ids["far"], ids["near"], ids["here"]]
