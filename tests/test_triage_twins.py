"""Weekly batches of one fauna (e26 batch, defect 1): the same new species in week 1 and week 2 is one species
to the review. Week 2's candidate names week 1's as its closest candidate, with its run and collection, "same
as" within the species threshold; both show the twin; ``a`` warns before a second provisional name is made for
a species already accepted, and ``i`` lists that species first. Real CLI, real bundle, real SQLite file."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from biodiscover.cli.main import main
from biodiscover.storage.db import Database
from biodiscover.tui import evidence as ev
from biodiscover.tui.app import ReviewApp
from biodiscover.tui.screens.detail import summary_text
from biodiscover.tui.screens.dialogs import PickDialog, TextDialog
from biodiscover.storage.evidence import twin_threshold
from fixtures.db_views import proposal_members
from fixtures.discovery import make_world, write_metadata
from fixtures.tui_pilot import asynctest, open_proposal, settle


@pytest.fixture(scope="module")
def weeks(tmp_path_factory) -> dict[str, Any]:
    """A bundle, and two weekly collections of the same fauna: each novel species' first four specimens in
    week 1, its last four in week 2, but one species met in week 1 only (the known ones alternate); both triaged
    into one database."""
    root = tmp_path_factory.mktemp("ds")
    world = make_world(seed=7)
    write_metadata(root, world, phylum="Arthropoda", **{"class": "Insecta"}, inferred_ranks=0)
    bundle = tmp_path_factory.mktemp("b") / "bundle"
    assert main(["build-reference", "--data", str(root), "--out", str(bundle), "--keys", "train",
                 "--max-outliers", "40", "--quiet"]) == 0
    by_species: dict[str, list[Any]] = {}
    for s in world["test_unseen"]:
        by_species.setdefault(s.species, []).append(s)
    groups = list(by_species.values())  # the first species is met in week 1 only: its candidate has no twin
    weeks = {"week1": world["test"][::2] + groups[0] + [s for v in groups[1:] for s in v[:4]],
             "week2": world["test"][1::2] + [s for v in groups[1:] for s in v[4:]]}
    db = tmp_path_factory.mktemp("db") / "lab.sqlite"
    runs = {}
    for name, specimens in weeks.items():
        path = root / f"{name}.fasta"
        path.write_text("".join(f">{s.processid}|x\n{s.dna_barcode}\n" for s in specimens))
        assert main(["triage", "--input", str(path), "--model", str(bundle), "--db", str(db), "-q"]) == 0
        with Database.open(db) as d:
            runs[name] = d.latest_run("triage").id
    species = {s.processid: s.species for s in world["test_unseen"]}
    return {"db": db, "runs": runs, "species": species, "root": root, "bundle": bundle}


def _copy(weeks: dict[str, Any], tmp_path: Path) -> Path:
    dest = tmp_path / "lab.sqlite"
    dest.write_bytes(Path(weeks["db"]).read_bytes())
    return dest


def _species_of(db: Database, proposal_id: int, species: dict[str, str]) -> set[str]:
    return {species.get(pid, "known") for pid in proposal_members(db, proposal_id)}


def test_week_2s_candidate_names_week_1s_twin_as_its_closest_candidate_with_its_run_and_collection(
        weeks: dict[str, Any]) -> None:
    run1, run2 = weeks["runs"]["week1"], weeks["runs"]["week2"]
    with Database.open(weeks["db"]) as db:
        second, _ = db.proposal_queue(run_id=run2, status="pending", limit=500)
        first, _ = db.proposal_queue(run_id=run1, status="pending", limit=500)
        assert len(second) >= 4 and len(first) == len(second) + 1  # 6 novel species in week 1, 5 of them again
        twins_of_first: dict[int, set[int]] = {}
        for p in second:
            d = db.proposal_detail(p.id)
            near, nb = d.closest_candidate, d.evidence.between_distance
            # its closest candidate is week 1's candidate of the same species, in the database's other run
            assert near is not None and near.run_id == run1 and d.closest_collection == "week1"
            assert _species_of(db, near.id, weeks["species"]) == _species_of(db, p.id, weeks["species"])
            assert nb is not None and nb.distance <= twin_threshold(d.evidence.threshold)
            line = dict(ev.extra_lines(d.evidence, near, d.bin_holders, d.closest_collection, p.run_id))
            assert line["closest candidate"] == (f"same as #{near.id} {near.name} (run {run1}, week1, "
                                                 f"{nb.distance * 100:.1f} %)")
            # the header says it too, and the twin is week 1's
            assert [t.proposal.id for t in d.twins] == [near.id] and d.twins[0].collection == "week1"
            assert f"{ev.TWIN_MARK} same as #{near.id} {near.name} (run {run1}, week1, " in str(summary_text(d))
            twins_of_first.setdefault(near.id, set()).add(p.id)
        # both ways: week 1's candidate shows its week-2 twin (its own evidence was computed before week 2)
        for pid, later in twins_of_first.items():
            assert {t.proposal.id for t in db.proposal_detail(pid).twins} == later
        # a week-1 candidate is not its own run's twin, and the species met in week 1 only has none
        assert all(t.proposal.run_id != run1 for p in first for t in db.twins([p.id]).get(p.id, ()))
        assert [p.id for p in first if p.id not in twins_of_first] == \
            [p.id for p in first if not db.proposal_detail(p.id).twins]
        assert len(twins_of_first) == len(first) - 1


def test_proposals_csv_names_the_closest_candidates_run_and_collection(weeks: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    run1, run2 = weeks["runs"]["week1"], weeks["runs"]["week2"]
    out = tmp_path / "csv"
    assert main(["export", "--db", str(weeks["db"]), "--run", str(run2), "-f", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader((out / "proposals.csv").open(encoding="utf-8-sig")))
    with Database.open(weeks["db"]) as db:
        for row in rows:
            d = db.proposal_detail(int(row["proposal_id"]))
            near = d.closest_candidate
            assert near is not None and near.run_id == run1
            assert row["evidence_between_distance_proposal_id"] == str(near.id)
            assert row["evidence_between_distance_run_id"] == str(run1)
            assert row["evidence_between_distance_collection"] == "week1"
            assert row["twins"] == f"#{near.id} (run {run1}, week1, {d.evidence.between_distance.distance * 100:.1f} %)"


def _app(path: Path) -> tuple[ReviewApp, Database]:
    db = Database.open(path)
    return ReviewApp(db, reviewer="ana", halfcell_images=True, poll_seconds=3600), db


@asynctest
async def test_accepting_a_twin_of_an_accepted_species_warns_and_i_lists_that_species_first(
        weeks: dict[str, Any], tmp_path: Path) -> None:
    run2 = weeks["runs"]["week2"]
    app, db = _app(_copy(weeks, tmp_path))
    later = db.proposal_queue(run_id=run2, status="pending", sort="size", descending=True, limit=1)[0][0]
    earlier = db.proposal_detail(later.id).closest_candidate
    accepted = db.accept(earlier.id, earlier.version, reviewer="ana")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_proposal(pilot, later.id)
        await pilot.press("a")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, PickDialog)  # not the name box: the warning first
        cut = twin_threshold(db.proposal_detail(later.id).evidence.threshold)
        title = str(dialog.title_text)
        assert title.startswith(f"{accepted.name} (accepted from #{earlier.id}, run {earlier.run_id}, week1, ")
        assert f"is probably this species: assign #{later.id} to it (i) instead?" in title
        shown = float(title.split(", week1, ")[1].split(" %")[0]) / 100
        assert shown <= cut
        assert [v for v, _ in dialog.options] == ["assign", "accept"]
        await pilot.press("enter")  # assign instead: the `i` list, that species first
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, PickDialog)
        tid, label = picker.options[0]
        assert tid == accepted.taxon_id and f"same species as #{earlier.id} (accepted, " in label
        await pilot.press("escape")
        await settle(pilot)
        # accepting anyway is still one choice away, and goes to the name box as before
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("down", "enter")  # the second option
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        await pilot.press("escape")
        await settle(pilot)
    assert db.proposal(later.id).status == "pending"
    db.close()


@asynctest
async def test_accepting_a_candidate_whose_twin_was_rejected_asks_for_the_name_at_once(weeks: dict[str, Any],
                                                                                     tmp_path: Path) -> None:
    """The warning is no extra step where nothing accepted or pending of another run lies within the threshold."""
    run2 = weeks["runs"]["week2"]
    app, db = _app(_copy(weeks, tmp_path))
    later = db.proposal_queue(run_id=run2, status="pending", sort="size", descending=True, limit=1)[0][0]
    earlier = db.proposal_detail(later.id).closest_candidate
    db.reject(earlier.id, earlier.version, reviewer="ana")
    async with app.run_test(size=(120, 40)) as pilot:
        await open_proposal(pilot, later.id)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        await pilot.press("escape")
        await settle(pilot)
    db.close()


@asynctest
async def test_the_header_of_a_twin_of_a_rejected_candidate_gives_the_reason_it_was_rejected(
        weeks: dict[str, Any], tmp_path: Path) -> None:
    """A season's week-3 candidate read "≡ same as #3 … rejected (run 1, week1, 0.5 %)" but not the reviewer's reason
    ("known species: Brachypogon incompletus …"), which she had to open #3 to read (e29 F12)."""
    run2 = weeks["runs"]["week2"]
    app, db = _app(_copy(weeks, tmp_path))
    later = db.proposal_queue(run_id=run2, status="pending", sort="size", descending=True, limit=1)[0][0]
    earlier = db.proposal_detail(later.id).closest_candidate
    db.reject(earlier.id, earlier.version, reviewer="Kari Nordmann", note="known species: Xus yus (14 % haplogroup)")
    async with app.run_test(size=(200, 50)) as pilot:
        await open_proposal(pilot, later.id)
        header = str(app.screen.query_one("#detail-summary").render())
        assert f"{ev.TWIN_MARK} same as #{earlier.id} {earlier.name} rejected (run " in header
        assert "rejected (run" in header and " %): “known species: Xus yus (14 % haplogroup)”" in header
    db.close()


@asynctest
async def test_r_on_a_twin_of_a_rejected_candidate_opens_with_its_reason_to_edit(weeks: dict[str, Any],
                                                                               tmp_path: Path) -> None:
    """``r`` on the week-3 twin of the haplogroup rejected in week 1 opened an empty reason box: the reason, shown in
    the header, had to be typed again or the rejection went without one (e29 F12). It opens with "same as #N
    rejected: <her reason>", which the reviewer edits; a candidate with no rejected twin opens empty."""
    run1, run2 = weeks["runs"]["week1"], weeks["runs"]["week2"]
    app, db = _app(_copy(weeks, tmp_path))
    later = db.proposal_queue(run_id=run2, status="pending", sort="size", descending=True, limit=1)[0][0]
    earlier = db.proposal_detail(later.id).closest_candidate
    db.reject(earlier.id, earlier.version, reviewer="Kari Nordmann", note="known species: Xus yus (14 % haplogroup)")
    twinned = {p for p, found in db.twins().items() if found}
    lonely = next(p for p in db.proposal_queue(run_id=run1, status="pending", limit=500)[0] if p.id not in twinned)
    async with app.run_test(size=(200, 50)) as pilot:
        await open_proposal(pilot, later.id)
        await pilot.press("r")
        await settle(pilot)
        box = app.screen
        assert isinstance(box, TextDialog)
        assert box.query_one("#dialog-input").value == \
            f"same as #{earlier.id} rejected: known species: Xus yus (14 % haplogroup)"
        await pilot.press("end", *"; week 2", "enter")  # edited, then written
        await settle(pilot)
        assert db.proposal(later.id).status == "rejected"
        assert db.decision_in_force(later.id)["note"] == \
            f"same as #{earlier.id} rejected: known species: Xus yus (14 % haplogroup); week 2"
        await open_proposal(pilot, lonely.id)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog) and app.screen.query_one("#dialog-input").value == ""
    db.close()


def test_the_queue_marks_twins_filters_them_and_sorts_each_species_together(weeks: dict[str, Any]) -> None:
    """The marks column carries ≡ with the distance to the nearest twin; ``twin=yes`` keeps the candidates with
    one; ``sort=twin`` puts week 1's and week 2's candidates of one species in adjacent rows."""
    run1, run2 = weeks["runs"]["week1"], weeks["runs"]["week2"]
    with Database.open(weeks["db"]) as db:
        twins = db.twins()
        everyone, total = db.proposal_queue(status="pending", limit=500)
        marks = db.proposal_marks([p.id for p in everyone])
        assert {p.id for p in everyone if any(m.kind == "twin" for m in marks.get(p.id, ()))} == set(twins)
        for pid, found in twins.items():
            (mark,) = [m for m in marks[pid] if m.kind == "twin"]
            assert mark.value == found[0].distance
        with_twin, n = db.proposal_queue(status="pending", twins=True, limit=500)
        assert {p.id for p in with_twin} == set(twins) and n == len(twins) < total
        # sorted by twins: each week-2 candidate right after or before its week-1 twin
        rows, _ = db.proposal_queue(status="pending", sort="twin", limit=500)
        order = [p.id for p in rows]
        for p in rows:
            if p.run_id == run2:
                (twin,) = twins[p.id]
                assert twin.proposal.run_id == run1 and abs(order.index(twin.proposal.id) - order.index(p.id)) == 1
        assert all(p.id not in twins for p in rows[len(twins):])  # those without a twin last
        assert db.queue_position(order[3], status="pending", sort="twin") == 3


def test_the_filter_reads_twin_yes_and_sort_twin() -> None:
    from biodiscover.tui.screens.queue import QueueQuery, parse_filter

    q = parse_filter("twin=yes sort=twin", QueueQuery())
    assert q.twins and q.sort == "twin" and q.kwargs()["twins"] is True
    assert q.filter_text() == "status=pending twin=yes" and "twin=yes" in q.describe()
    with pytest.raises(ValueError, match="twin=yes"):
        parse_filter("twin=maybe", QueueQuery())


def test_among_other_runs_candidates_within_the_threshold_the_earliest_is_the_closest_candidate() -> None:
    """Re-triaging a middle week while a later one was stored linked week 2's candidates to week 3's; week 3's
    re-triage then left week 1's without a twin (14 of 106 on the real batch). Within the species threshold the
    earliest candidate (lowest id) is taken; beyond it, the nearest, as before."""
    import random

    from biodiscover.discovery.proposals import nearest_in_database
    from biodiscover.storage.evidence import CandidateProposal, Evidence, NearestCandidate

    rng = random.Random(3)
    base = [rng.choice("ACGT") for _ in range(600)]

    def mutated(n: int) -> str:
        seq = list(base)
        for i in rng.sample(range(600), n):
            seq[i] = {"A": "C", "C": "G", "G": "T", "T": "A"}[seq[i]]
        return "".join(seq)

    own = NearestCandidate(1, 0.08, "OWN1")
    mine = CandidateProposal(members=("Q1",), evidence=Evidence(consensus_barcode="".join(base), threshold=0.02,
                                                                between_distance=own))
    # #5 (week 1) 0.5 % away, #9 (week 3, stored before week 2 was triaged again) identical
    (out,) = nearest_in_database([mine], {5: mutated(3), 9: "".join(base)}, {5: "W1", 9: "W3"})
    assert (out.evidence.between_distance.nearest_candidate, out.evidence.between_distance.member) == (5, "W1")
    assert out.evidence.between_distance.distance == pytest.approx(3 / 600, abs=1e-3)
    # beyond the threshold the nearest is the closest candidate, and the run's own stays where it is nearer
    (far,) = nearest_in_database([mine], {5: mutated(60), 9: mutated(30)}, {5: "W1", 9: "W3"})
    assert far.evidence.between_distance.nearest_candidate == 9
    (kept,) = nearest_in_database([mine], {5: mutated(90)}, {5: "W1"})
    assert kept.evidence.between_distance == own


@asynctest
async def test_the_queue_says_which_collection_each_candidate_came_from_and_filters_on_it(
        weeks: dict[str, Any], tmp_path: Path) -> None:
    """A reviewer of a batch database (five weeks' plates) could not tell which plate a queued candidate came from.
    The queue's last column, "from", names its run's collection where the terminal has room (100 columns: yes; 80:
    the names keep their room), and ``from=NAME`` keeps the candidates of the collections whose name holds NAME.
    A third run's collection under a long name, triaged into the same real SQLite file, shows as the part that
    tells it apart, cut with an ellipsis."""
    from textual.widgets import Input

    from biodiscover.tui.screens.queue import QueueScreen
    from biodiscover.tui.widgets.proposal_table import ProposalTable

    run1, run2 = weeks["runs"]["week1"], weeks["runs"]["week2"]
    path = _copy(weeks, tmp_path)
    # the week-1 unseen species again, as a plate of their own with a lab's long collection name
    week1 = (weeks["root"] / "week1.fasta").read_text().split(">")[1:]
    novel = [rec for rec in week1 if rec.split("|")[0] in weeks["species"]]
    plate = tmp_path / "trap.fasta"
    plate.write_text("".join(">" + rec.replace("|", "-T|", 1) for rec in novel))
    assert main(["triage", "--input", str(plate), "--model", str(weeks["bundle"]), "--db", str(path), "-q",
                 "--collection", "2026-w03-costa-rica-malaise-trap"]) == 0
    app, db = _app(path)
    run3 = db.latest_run("triage").id
    by_run = {r: {p.id for p in db.proposal_queue(run_id=r, status="pending", limit=500)[0]} for r in
              (run1, run2, run3)}
    assert all(by_run.values())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(ProposalTable)
        assert table.widths["from"] == 9 and table.widths["taxon"] >= NAME_MIN_SHOWN
        shown = {p.id: str(table.get_row(str(p.id))[-1].plain) for p in table.rows_shown}
        want = {run1: "week1", run2: "week2", run3: "2026-w03…"}
        assert shown == {pid: want[r] for r, ids in by_run.items() for pid in ids}
        assert [c.label.plain for c in table.columns.values()][-1] == "from"
        app.save_screenshot(str(tmp_path / "queue-100.svg"))

        await pilot.press("f")
        await settle(pilot)
        await pilot.press(*"from=COSTA", "enter")
        await settle(pilot)
        assert isinstance(app.screen, QueueScreen)
        assert {p.id for p in table.rows_shown} == by_run[run3] and table.total == len(by_run[run3])
        assert "from=COSTA" in str(app.screen.query_one("#queue-query").render())
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, TextDialog)
        assert app.screen.query_one(Input).value == "status=pending from=COSTA"
        await pilot.press("ctrl+u", *"from=week", "enter")
        await settle(pilot)
        assert {p.id for p in table.rows_shown} == by_run[run1] | by_run[run2]

        await pilot.resize_terminal(80, 30)
        await settle(pilot)
        assert "from" not in table.widths and len(table.columns) == 7
    db.close()


#: the candidate's name column keeps at least this many cells beside the "from" column at 100 columns
NAME_MIN_SHOWN = 21


def test_the_from_column_shows_what_tells_the_collections_apart() -> None:
    from biodiscover.tui.widgets.proposal_table import column_widths, short_collections

    assert short_collections({1: "2026-w01-costa-rica", 2: "2026-w02-norway", 3: "2026-w03-norway"}) == {
        1: "w01-costa-rica", 2: "w02-norway", 3: "w03-norway"}
    assert short_collections({1: "plate_01.us", 2: "plate_02.us"}) == {1: "01", 2: "02"}
    assert short_collections({1: "week1", 2: "week2"}) == {1: "week1", 2: "week2"}
    assert short_collections({1: "costa", 2: "costa"}) == {1: "costa", 2: "costa"}  # one collection: whole
    assert short_collections({1: "a-b", 2: "a--b"}) == {1: "a-b", 2: "a--b"}  # alike once cut: whole names
    for width in (80, 89):
        assert "from" not in column_widths(width, collections=True)
    assert column_widths(90, collections=True)["from"] == 8
    hundred, wide = column_widths(100, collections=True), column_widths(160, collections=True)
    alone = column_widths(100)  # one collection: no column, the names as before
    assert "from" not in alone and (alone["taxon"], alone["nearest"]) == (31, 28)
    assert hundred["from"] == 9 and (hundred["taxon"], hundred["nearest"]) == (25, 23)
    assert wide["from"] == 16
    for w, total in ((hundred, 100), (wide, 160)):
        assert sum(w.values()) + 2 * len(w) + 3 <= total


#: the lookup as it was before it was kept between queries: every live candidate's evidence read, joined in SQL
_EVERY_EVIDENCE = (
    "SELECT p.id, q.id, p.near_d, p.cut FROM (SELECT id, run_id, "
    "CASE WHEN json_valid(evidence) THEN json_extract(evidence, '$.between_distance.member') END AS near_m, "
    "CASE WHEN json_valid(evidence) THEN json_extract(evidence, '$.between_distance.distance') END AS near_d, "
    "CASE WHEN json_valid(evidence) THEN json_extract(evidence, '$.threshold') END AS cut "
    "FROM proposals WHERE status NOT IN ('merged', 'superseded', 'withdrawn')) p "
    "JOIN proposal_members m ON m.processid = p.near_m JOIN proposals q ON q.id = m.proposal_id "
    "WHERE q.run_id != p.run_id AND q.status NOT IN ('merged', 'superseded', 'withdrawn') AND p.near_d IS NOT NULL")


def _every_evidence_twins(path: Path) -> tuple[dict[int, dict[int, float]], dict[int, int]]:
    """(proposal id → {twin id: distance}, proposal id → its closest other-run holder) by reading every evidence."""
    import sqlite3

    con = sqlite3.connect(path)
    rows = con.execute(_EVERY_EVIDENCE).fetchall()
    con.close()
    pairs: dict[int, dict[int, float]] = {}
    closest: dict[int, int] = {}
    for p, q, d, cut in rows:
        closest[p] = min(q, closest.get(p, q))
        if d <= twin_threshold(cut):
            for a, b in ((p, q), (q, p)):
                pairs.setdefault(a, {})[b] = min(pairs.get(a, {}).get(b, d), d)
    return pairs, closest


def test_a_review_left_open_sees_the_twins_every_evidence_gives_after_splits_merges_and_a_new_run(
        weeks: dict[str, Any], tmp_path: Path) -> None:
    """The twins of a page were found by reading every live candidate's evidence (seconds a page at 100,000
    candidates); they are now kept per database handle and only the candidates written or changed since are read
    again. A handle held open through a split that moves a twin's recorded specimen into a new candidate, a merge
    that retires one, a reject, and a third week triaged into the file by another handle reports, for every
    candidate and for a page of them, the twins and closest candidates reading every evidence gives."""
    run1, run2 = weeks["runs"]["week1"], weeks["runs"]["week2"]
    path = _copy(weeks, tmp_path)
    with Database.open(path) as db:
        def check() -> None:
            every, closest = _every_evidence_twins(path)
            ids = [p.id for p in db.proposal_queue(limit=1000)[0]]
            assert {a: {t.proposal.id: t.distance for t in ts} for a, ts in db.twins(ids).items()} == every
            page = ids[3:9]
            assert {a: {t.proposal.id: t.distance for t in ts} for a, ts in db.twins(page).items()} == {
                a: v for a, v in every.items() if a in page}
            assert {a: q.id for a, (q, _) in db.closest_elsewhere(ids).items()} == closest
            with Database.open(path) as fresh:
                assert fresh.twins() == db.twins()

        check()
        later = db.proposal_queue(run_id=run2, status="pending", sort="size", descending=True, limit=3)[0]
        recorded = db.proposal_detail(later[0].id).evidence.between_distance
        assert recorded is not None and recorded.member is not None
        earlier = db.run_members(run1)[recorded.member]
        db.split(earlier.id, earlier.version, [recorded.member], reviewer="ana")  # the twin is now the new part
        check()
        assert db.twins([later[0].id])[later[0].id][0].proposal.id == db.run_members(run1)[recorded.member].id
        a, b = db.proposal(later[1].id), db.proposal(later[2].id)
        db.merge([a.id, b.id], {a.id: a.version, b.id: b.version}, reviewer="ana")
        check()
        c = db.proposal(later[0].id)
        db.reject(c.id, expected_version=c.version, reviewer="ana")
        check()
        assert main(["triage", "--input", str(weeks["root"] / "week1.fasta"), "--model", str(weeks["bundle"]),
                     "--db", str(path), "-q", "--collection", "week3"]) == 0
        check()
