"""What triage stores for the review (issue 15): the reference's species in the taxonomy, each candidate's
nearest known species with its barcode and every member's own hit, and rejections remembered when the same
collection is triaged again. Real CLI, real bundle, real SQLite file."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from biodiscover.cli.main import main
from biodiscover.storage.review_log import carried
from biodiscover.storage.db import Database
from biodiscover.tui.screens.detail import DetailScreen
from fixtures.db_views import proposal_history, proposal_members
from fixtures.discovery import make_world, write_metadata
from fixtures.tui_pilot import asynctest, notes, open_proposal, reviewing, settle


@pytest.fixture(scope="module")
def world_and_bundle(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("ds")
    world = make_world(seed=7)
    write_metadata(root, world, phylum="Arthropoda", **{"class": "Insecta"}, inferred_ranks=0)
    with (root / "collection.fasta").open("w") as fh:
        for s in world["test"] + world["test_unseen"]:
            fh.write(f">{s.processid}|x\n{s.dna_barcode}\n")
    bundle = tmp_path_factory.mktemp("b") / "bundle"
    assert main(["build-reference", "--data", str(root), "--out", str(bundle), "--keys", "train",
                 "--max-outliers", "40", "--quiet"]) == 0
    return root, bundle, world


def _triage(root: Path, bundle: Path, db: Path, capsys) -> dict:
    assert main(["triage", "--input", str(root / "collection.fasta"), "--model", str(bundle), "--db", str(db),
                 "--json", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_triage_registers_known_species_and_records_nearest_barcodes(world_and_bundle, tmp_path, capsys) -> None:
    root, bundle, world = world_and_bundle
    db_path = tmp_path / "lab.sqlite"
    summary = _triage(root, bundle, db_path, capsys)
    keys = {s.processid: s for s in world["train"]}
    with Database.open(db_path) as db:
        graph = db.taxonomy()
        species = {graph.node(t).name for t in graph.graph.nodes if graph.node(t).rank == "species"}
        assert {s.species for s in world["train"] if s.species} <= species  # every known species, in the tree
        page, total = db.proposal_queue(run_id=summary["run_id"], limit=500)
        assert total > 0
        for p in page:
            ev = db.proposal_detail(p.id).evidence
            near = ev.nearest_known
            assert near.processid in keys and near.barcode == keys[near.processid].dna_barcode
            assert set(ev.member_hits) == set(proposal_members(db, p.id))
            best = max(ev.member_hits.values(), key=lambda h: h.identity)
            assert (best.processid, best.identity) == (near.processid, near.identity)
        assert db.known_species(search=near.species)[0][1].startswith(near.species)


def test_a_rejected_candidate_is_not_queued_again_by_the_next_triage(world_and_bundle, tmp_path, capsys) -> None:
    root, bundle, _ = world_and_bundle
    db_path = tmp_path / "lab.sqlite"
    first = _triage(root, bundle, db_path, capsys)
    with Database.open(db_path) as db:
        page, _ = db.proposal_queue(run_id=first["run_id"], status="pending", sort="size", descending=True, limit=500)
        rejected = page[0]
        db.reject(rejected.id, rejected.version, reviewer="ana")
        pending_before = db.queue_counts()["pending"]
    second = _triage(root, bundle, db_path, capsys)
    with Database.open(db_path) as db:
        again = [e for e in proposal_history(db, rejected.id) if e["kind"] == "recognised"]
        assert len(again) == 1
        new = db.proposal(again[0]["target_id"])
        assert new.run_id == second["run_id"] and new.status == "rejected" and new.lineage == rejected.lineage
        assert set(proposal_members(db, new.id)) <= set(proposal_members(db, rejected.id))
        assert not db.proposal_queue(run_id=second["run_id"], status="pending", search=new.provisional_name or
                                     proposal_members(db, new.id)[0])[0]
        # the rest of the first run's pending candidates were re-clustered (superseded), not duplicated
        assert db.queue_counts()["pending"] == pending_before


def test_a_reviewers_split_comes_back_split_from_a_real_re_triage_and_the_results_file_names_each_part(
        world_and_bundle, tmp_path, capsys) -> None:
    """A reviewer splits run 1's largest candidate in two; the same collection triaged again (the real CLI) would
    join them again: they come back as two candidates, the split logged as the reviewer's, and the results file
    names each specimen's own part. A triage told not to propose candidates (--no-cluster) retires nothing."""
    root, bundle, _ = world_and_bundle
    db_path = tmp_path / "lab.sqlite"
    first = _triage(root, bundle, db_path, capsys)
    with Database.open(db_path) as db:
        big = db.proposal_queue(run_id=first["run_id"], status="pending", sort="size", descending=True)[0][0]
        members = proposal_members(db, big.id)
        off = members[: len(members) // 2]
        made = db.split(big.id, big.version, off, reviewer="ana")
        pending = db.queue_counts()["pending"]
    assert main(["triage", "--input", str(root / "collection.fasta"), "--model", str(bundle), "--db", str(db_path),
                 "--no-cluster", "-q"]) == 0
    capsys.readouterr()
    with Database.open(db_path) as db:
        assert db.queue_counts()["pending"] == pending  # nothing proposed, nothing retired
    results = tmp_path / "results.csv"
    assert main(["triage", "--input", str(root / "collection.fasta"), "--model", str(bundle), "--db", str(db_path),
                 "--results", str(results), "--json", "-q"]) == 0
    third = json.loads(capsys.readouterr().out)["run_id"]
    with Database.open(db_path) as db:
        held = db.run_members(third)
        assert len({held[m].id for m in off}) == 1 and len({held[m].id for m in set(members) - set(off)}) == 1
        part, rest = held[off[0]], next(held[m] for m in members if m not in off)
        assert part.id != rest.id and set(proposal_members(db, part.id)) == set(off)
        (split,) = [r for r in db.reviews(rest.id) if r["action"] == "split"]
        assert (split["reviewer"], split["note"]) == ("biodiscover", None)
        assert (carried(split).source, carried(split).reviewer) == (big.id, "ana")
        assert db.proposal(made.new_proposal_id).superseded_by == part.id
        assert not db.proposal_queue(run_id=first["run_id"], status="pending")[1]  # every run-1 one re-clustered
    named = {r["processid"]: r["provisional_name"] for r in csv.DictReader(results.open())}
    assert {named[m] for m in off} == {part.name} and {named[m] for m in set(members) - set(off)} == {rest.name}


@pytest.fixture(scope="module")
def triaged_once(world_and_bundle, tmp_path_factory) -> tuple[Path, tuple[str, ...]]:
    """A database the collection was triaged into once (closed, for tests to copy) and the triage's arguments
    less ``--db``."""
    from fixtures.inprocess import run_cli

    root, bundle, _ = world_and_bundle
    args = ("triage", "--input", str(root / "collection.fasta"), "--model", str(bundle), "-q")
    db_path = tmp_path_factory.mktemp("triaged") / "lab.sqlite"
    assert run_cli(*args, "--db", str(db_path)).returncode == 0
    return db_path, args


def _copy_db(template: Path, db_path: Path) -> Path:
    """A copy of the closed database ``template`` (with its WAL, if any) at ``db_path``; ``db_path``."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{template}{suffix}").exists():
            shutil.copy(f"{template}{suffix}", f"{db_path}{suffix}")
    return db_path


@asynctest
async def test_merge_on_a_candidate_a_concurrent_triage_again_reclustered_says_where_its_members_are_now(
        triaged_once, tmp_path, cli) -> None:
    """e35 T6: the review open on a pending candidate while ``triage … --again`` re-clustered its collection into the
    same database; ``m`` then offered "the same specimens · 0.0% from #1 · #22 …", its own replacement, first, and
    Enter, y ended in "merge refused: cannot merge: proposal 1 was re-clustered by run 2 …". The old candidate is
    no longer current (the storage refuses any merge of it), so ``m`` says so, in the words ``#`` uses for a
    re-clustered candidate, names the one holding its members now, offers no list and shows the state in force."""
    template, args = triaged_once
    db_path = _copy_db(template, tmp_path / "lab.sqlite")
    async with reviewing(db_path) as (app, db, pilot):
        (old,), _ = db.proposal_queue(status="pending", sort="size", descending=True, limit=1)
        await open_proposal(pilot, old.id)
        assert cli(*args, "--db", str(db_path), "--again").returncode == 0  # while the review is open on it
        moved = db.successor(old.id)
        assert moved is not None and moved.proposal.status == "pending"
        now = moved.proposal
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen), app.screen  # no merge list
        assert (f"cannot merge #{old.id}: it was re-clustered by run {now.run_id} since it was loaded here: its "
                f"members are in #{now.id} {now.name} (pending) now (#{now.id} opens it)") in notes(app), notes(app)
        assert app.screen.detail.summary.status == "superseded"  # the screen shows the state in force
        assert db.proposal(now.id).status == "pending"
    db.close()


@pytest.fixture(scope="module")
def reclustered_once(triaged_once, tmp_path_factory) -> tuple[Path, Any]:
    """``triaged_once`` with a note of ana's on its largest pending candidate, then triaged ``--again`` (closed, for
    tests to copy), and that candidate's detail as a review screen loaded it before the second run: what a screen
    open while another process re-clustered the collection still holds."""
    from fixtures.inprocess import run_cli

    template, args = triaged_once
    db_path = _copy_db(template, tmp_path_factory.mktemp("reclustered") / "lab.sqlite")
    with Database.open(db_path) as db:
        (old,), _ = db.proposal_queue(status="pending", sort="size", descending=True, limit=1)
        db.note(old.id, "legs need a look", reviewer="ana", expected_version=old.version)  # for O
        loaded = db.proposal_detail(old.id)
    assert run_cli(*args, "--db", str(db_path), "--again").returncode == 0
    return db_path, loaded


@pytest.mark.parametrize("key, action", [("a", "accept"), ("r", "reject"), ("i", "assign"), ("x", "split"),
                                         ("v", "move"), ("e", "rename"), ("o", "add a note to"),
                                         ("O", "withdraw a note from")])
@asynctest
async def test_a_decision_on_a_candidate_a_concurrent_triage_again_reclustered_opens_no_dialog(
        reclustered_once, tmp_path, key, action) -> None:
    """e35: as ``m`` (above), every other decision key on a candidate re-clustered since its screen loaded opened
    its dialog (a name, a reason, a species, a taxon, members to tick) and the storage refused what the reviewer
    had filled in only after Enter ("accept refused: cannot accept: proposal 1 was re-clustered by run 2 …"). Each
    says so first, in the words ``m`` uses, names the candidate holding the members now and shows the state in
    force."""
    template, loaded = reclustered_once
    old = loaded.summary
    async with reviewing(_copy_db(template, tmp_path / "lab.sqlite")) as (app, db, pilot):
        screen = await open_proposal(pilot, old.id)
        screen.detail = loaded  # the screen as it was loaded before the second run
        now = db.successor(old.id).proposal
        await pilot.press(key)
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen), (app.screen, notes(app))  # no dialog
        assert (f"cannot {action} #{old.id}: it was re-clustered by run {now.run_id} since it was loaded here: its "
                f"members are in #{now.id} {now.name} (pending) now (#{now.id} opens it)") in notes(app), notes(app)
        assert app.screen.detail.summary.status == "superseded"  # the screen shows the state in force
        assert db.proposal(now.id).status == "pending"
    db.close()


@asynctest
async def test_merge_and_undo_on_a_candidate_a_later_run_retired_say_so_before_any_dialog(triaged_once,
                                                                                         tmp_path) -> None:
    """e35: a candidate a later run retired (it triaged every member and proposes none of them: superseded, no
    successor) while its screen was open still offered the merge list, and the storage refused the merge after
    Enter, y; ``u`` of this session's note on it asked, then said "proposal 1 changed after it (version 1 then, 2
    now); undo the later reviews first", there being none. Both say it was retired, in the words of its History
    tab, and ask nothing."""
    template, _ = triaged_once
    async with reviewing(_copy_db(template, tmp_path / "lab.sqlite")) as (app, db, pilot):
        (old,), _ = db.proposal_queue(status="pending", sort="size", limit=1)
        await open_proposal(pilot, old.id)
        await pilot.press("o")
        await settle(pilot)
        await pilot.press(*"legs", "enter")
        await settle(pilot)
        assert f"note added to #{old.id}" in notes(app)
        members = proposal_members(db, old.id)
        with Database.open(db.path) as other:  # another process: a run that names its members and proposes none
            run = other.start_run("triage", {}, backup=False)
            other.write_assignments(run, [{"processid": m, "deepest_rank": "genus", "deepest_taxon": "Harpalus"}
                                          for m in members])
            other.write_proposals(run, [])
            assert other.retire_unproposed(run) == [old.id]
            other.finish_run(run, "completed")
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen), (app.screen, notes(app))  # no merge list
        n = len(members)
        what = "its one member and does not propose it" if n == 1 else f"all {n} members and proposes none of them"
        retired = f"retired by run {run}: it triaged {what} (named genus Harpalus ({n})); out of the queue, status " \
            "superseded"
        assert f"cannot merge #{old.id}: since it was loaded here, it was {retired}" in notes(app), notes(app)
        assert app.screen.detail.summary.status == "superseded"
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen), (app.screen, notes(app))  # not asked
        assert f"cannot undo note of #{old.id}: #{old.id} was {retired}" in notes(app), notes(app)
    db.close()


def _reclustered_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "re-clustered" in line and "pending candidate" in line]


def test_a_triage_after_a_review_names_the_pending_candidates_it_re_clustered_in_one_line(
        triaged_once, tmp_path) -> None:
    """e35 week-2 review, F3: after a review, the same ``triage`` without ``--again`` runs (the reviewed candidates'
    members are keys for it: legitimate), and every pending candidate of run 1 became ``superseded`` under a new
    number with no line saying so; only a later export of run 1 did. One line names them, old → new, in the numbers
    the export counts, and says whose reviews carry over: a note and a rename do, a merge the run parts does not."""
    from fixtures.inprocess import run_cli

    template, args = triaged_once
    db_path = _copy_db(template, tmp_path / "lab.sqlite")
    with Database.open(db_path) as db:
        pending, _ = db.proposal_queue(status="pending", sort="size", descending=True, limit=500)
        noted, renamed, holder, merged = pending[:4]
        db.note(noted.id, "legs need a look", reviewer="ana", expected_version=noted.version)
        db.rename(renamed.id, renamed.version, "Foo sp. ANA1", reviewer="ana")
        db.merge([holder.id, merged.id], [holder.version, merged.version], reviewer="ana")
    done = run_cli(*args, "--db", str(db_path))  # no --again: a review since the first run, so it runs
    assert done.returncode == 0, done.stderr
    with Database.open(db_path) as db:
        later = db.latest_run(kind="triage").id
        went = db.run_superseded(1)
        assert went["by_runs"] == [later] and went["candidates"] == len(pending) - 1  # the merged one is no longer
        pairs = sorted((p.id, db.successor(p.id).proposal.id) for p in pending if p.id != merged.id)
    (line,) = _reclustered_lines(done.stdout)
    assert len(pairs) <= 5  # every pair shown (the line shows five, then "and N more")
    assert line.startswith(f"re-clustered {went['candidates']} pending candidates of run 1 (collection) under new "
                           f"numbers ({', '.join(f'#{a}→#{b}' for a, b in pairs)}): "), line
    carried = sorted((noted.id, renamed.id))
    assert line.endswith(f": the reviews of #{carried[0]} and #{carried[1]} carry over to the new numbers; those of "
                         f"#{holder.id} not all: a merge the new grouping parts is not carried (its history says so)")
    assert "used another model" not in done.stdout  # the same model


def test_run_names_under_its_table_the_pending_candidates_a_collection_triaged_again_re_clustered(
        triaged_once, tmp_path) -> None:
    """e35 week-2 review, F3, under ``run``: the plate triaged again (``--force``) re-clustered run 1's pending
    candidates, and the table said nothing of them; its line, none reviewed, is under the table."""
    from fixtures.inprocess import run_cli

    template, args = triaged_once
    db_path = _copy_db(template, tmp_path / "lab.sqlite")
    with Database.open(db_path) as db:
        pending = db.queue_counts()["pending"]
    model = args[args.index("--model") + 1]
    done = run_cli("run", "--collections", args[args.index("--input") + 1], "--model", model, "--db", str(db_path),
                   "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = _reclustered_lines(done.stdout)
    assert line.startswith(f"collection.fasta: re-clustered {pending} pending candidates of run 1 (collection) "
                           "under new numbers (#1→#"), line
    assert line.endswith(": none reviewed")


def test_a_plate_triaged_again_with_another_model_says_so_and_so_does_an_export_of_both_runs(
        triaged_once, tmp_path) -> None:
    """e35 week-2 review, F6: the plate triaged into the same database with another model bundle superseded run 1's
    pending candidates without a word, and ``export --run 1 --run 2`` merged the two models' runs naming neither."""
    from biodiscover.storage.bundle import Bundle
    from fixtures.inprocess import run_cli

    template, args = triaged_once
    db_path = _copy_db(template, tmp_path / "lab.sqlite")
    model = Path(args[args.index("--model") + 1])
    other = tmp_path / "model2"
    shutil.copytree(model, other)
    Bundle.open(other).set_section("fingerprint", "sha256:" + "5f" * 32)  # another model, by its fingerprint
    with Database.open(db_path) as db:
        first = db.run_progress(1).model_fingerprint
        pending = db.queue_counts()["pending"]
    argv = list(args)
    argv[argv.index("--model") + 1] = str(other)
    done = run_cli(*argv, "--db", str(db_path))  # no --again needed: another model is another triage
    assert done.returncode == 0, done.stderr
    assert len(_reclustered_lines(done.stdout)) == 1
    assert (f"run 1 (collection) used another model ({model.name}, {first[:19]}…) than this run (model2, "
            f"sha256:{'5f' * 6}…): its names are that model's, and an export of both (export --run 1 --run 2) mixes "
            "two models' names") in done.stdout.splitlines()
    assert f"re-clustered {pending} pending candidates of run 1 (collection)" in done.stdout
    export = run_cli("export", "--db", str(db_path), "--run", "1", "--run", "2", "-f", "csv", "-o",
                     str(tmp_path / "both"))
    assert export.returncode == 0, export.stderr
    assert (f"note: runs 1 and 2 used different models (run 1: {model.name}, {first[:19]}…; run 2: model2, "
            f"sha256:{'5f' * 6}…): their names are two models' readings, not one") in export.stderr.splitlines()
    one = run_cli("export", "--db", str(db_path), "--run", "2", "-f", "csv", "-o", str(tmp_path / "one"))
    assert one.returncode == 0 and "different models" not in one.stderr
    # the plate again with model2: the run it replaces is model2's, and run 1's model is history by now
    again = run_cli(*argv, "--db", str(db_path), "--again")
    assert again.returncode == 0 and "used another model" not in again.stdout
    assert f"re-clustered {pending} pending candidates of run 2 (collection)" in again.stdout


def test_the_re_clustered_line_shows_five_pairs_then_how_many_more_and_a_retired_candidate_as_none() -> None:
    """The line of a large re-triage stays one line (five pairs, then "and N more"); a candidate the later run
    retired, naming its members and proposing none, reads ``#N→none`` with what that means; runs of one model say
    nothing of models."""
    from biodiscover.storage.db.runs import EarlierRun, Reclustered
    from biodiscover.workflows.triage import other_model_line, reclustered_line

    week1 = EarlierRun(1, "week1", "sha256:" + "2b" * 32, "model")
    many = Reclustered(week1, tuple((i, 20 + i) for i in range(1, 8)) + ((9, None),))
    assert reclustered_line([many]) == (
        "re-clustered 8 pending candidates of run 1 (week1) under new numbers (#1→#21, #2→#22, #3→#23, #4→#24, "
        "#5→#25 and 3 more; →none: this run named its members and proposed none of them): none reviewed")
    assert reclustered_line([]) is None

    class Same:  # a bundle whose fingerprints hold run 1's
        fingerprints = (week1.model_fingerprint,)
        fingerprint = week1.model_fingerprint

    assert other_model_line([week1], Same(), "model", 2) is None  # type: ignore[arg-type]
