"""storage.db behaviour on a real SQLite file: ingest, runs, queue, reviews, taxonomy, check."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from biodiscover.storage.review_log import carried
from biodiscover.storage.db import Database, ProposalIn, check_database
from biodiscover.storage.db.taxonomy import provisional_references, register_lineages
from biodiscover.storage.errors import DatabaseError, InputError, StaleProposalError
from biodiscover.storage.records import Specimen
from biodiscover.storage.settings import Reviewer, resolve_reviewer
from fixtures.db_views import (count_specimens, plain_sqlite_file, proposal_history, proposal_members,
                               specimen_versions)

GENERA = (("Diptera", "Phoridae", "Megaselia"), ("Diptera", "Cecidomyiidae", "Campylomyza"),
          ("Hymenoptera", "Braconidae", "Apanteles"))


def make_specimens(n: int, start: int = 0) -> list[Specimen]:
    out = []
    for i in range(start, start + n):
        order, family, genus = GENERA[i % len(GENERA)]
        out.append(Specimen(processid=f"BD{i:06d}", order=order, family=family, genus=genus,
                            dna_barcode="ACGT" * 60 + "A" * (i % 7), country="Canada", coord_lat=45.0 + i % 3,
                            split="test"))
    return out


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    handle = Database.create(tmp_path / "bd.sqlite")
    handle.ingest(make_specimens(60), collection="plate-1", backup=False)
    yield handle
    handle.close()


def test_every_connection_enforces_foreign_keys_not_only_the_one_that_migrated(db: Database) -> None:
    """SQLite forgets ``foreign_keys`` per connection: the migration switches it back on for its own connection,
    so the check must be on a connection that never migrated — a second one opened beside it, and the first of
    a database opened again. A member of no candidate is refused there too."""
    import sqlalchemy as sa

    path = db.path
    with db.engine.connect() as first, db.engine.connect() as second:
        for conn in (first, second):
            assert conn.connection.dbapi_connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    db.close()
    again = Database.open(path)
    try:
        with again.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
            conn.exec_driver_sql("INSERT INTO proposal_members (proposal_id, processid, probability) "
                                 "VALUES (999, 'X', 1.0)")
    finally:
        again.close()


def _new_run(db: Database, proposals: list[dict]) -> tuple[int, list[int]]:
    run = db.start_run("triage", {"k": 8}, "sha256:model", backup=False)
    return run, db.write_proposals(run, proposals)


def _lineage(i: int) -> dict[str, str]:
    order, family, genus = GENERA[i % len(GENERA)]
    return {"order": order, "family": family, "genus": genus}


def test_sqlite_settings_are_wal_fk_and_busy_timeout(db: Database) -> None:
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        # the documented speed settings: 64 MiB page cache, NORMAL fsync in WAL, a bounded ANALYZE
        assert raw.execute("PRAGMA cache_size").fetchone()[0] == -65536
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert raw.execute("PRAGMA analysis_limit").fetchone()[0] == 400


def test_every_connection_waits_the_configured_busy_timeout(tmp_path: Path) -> None:
    """The engine's busy timeout (connect_args' ``timeout``) reaches every pooled connection, read-only ones too."""
    from biodiscover.storage.db.engine import EngineConfig, make_engine

    Database.create(tmp_path / "bd.sqlite").close()
    for readonly in (False, True):
        engine = make_engine(tmp_path / "bd.sqlite", EngineConfig(busy_timeout_ms=1234), readonly=readonly)
        try:
            with engine.connect() as first, engine.connect() as second:
                for conn in (first, second):
                    assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
        finally:
            engine.dispose()


def test_ingest_is_idempotent_and_versions_changed_records(tmp_path: Path) -> None:
    path = tmp_path / "bd.sqlite"
    with Database.create(path) as db:
        first = db.ingest(make_specimens(30), collection="c", backup=False)
        assert (first.new, first.changed, first.unchanged) == (30, 0, 0)
        dump_before = list(sqlite3.connect(path).execute("SELECT * FROM specimens ORDER BY id"))
        again = db.ingest(make_specimens(30), collection="c", backup=False)
        assert (again.new, again.changed, again.unchanged) == (0, 0, 30)
        assert list(sqlite3.connect(path).execute("SELECT * FROM specimens ORDER BY id")) == dump_before
        changed = make_specimens(30)
        changed[3].country = "Costa Rica"
        third = db.ingest(changed, collection="c", backup=False)
        assert (third.new, third.changed, third.unchanged) == (0, 1, 29)
        versions = specimen_versions(path, "BD000003")
        assert [(v["version"], v["current"], v["country"]) for v in versions] == [
            (1, False, "Canada"), (2, True, "Costa Rica")]
        assert versions[1]["ingest_id"] == third.ingest_id != versions[0]["ingest_id"]
        assert count_specimens(path) == 30 and count_specimens(path, current_only=False) == 31


def test_same_file_twice_is_skipped_by_checksum_with_provenance(tmp_path: Path) -> None:
    src = tmp_path / "plate.csv"
    src.write_text("processid,dna_barcode\nA1," + "ACGT" * 60 + "\n")
    with Database.create(tmp_path / "bd.sqlite") as db:
        r1 = db.ingest([Specimen("A1", dna_barcode="ACGT" * 60)], collection="plate", source=src, backup=False)
        r2 = db.ingest([Specimen("A1", dna_barcode="ACGT" * 60)], collection="plate", source=src, backup=False)
        assert r1.checksum and r1.checksum.startswith("sha256:") and not r1.skipped
        assert r2.skipped and r2.ingest_id == r1.ingest_id
        with db._read() as conn:
            rows = conn.exec_driver_sql("SELECT source, checksum, status, finished_at FROM ingests").all()
        assert len(rows) == 1 and rows[0][0] == str(src) and rows[0][2] == "completed" and rows[0][3]
        # a re-run that writes nothing takes no pre-ingest backup (each one would push an older good one out)
        from biodiscover.storage.db.backup import list_backups

        before = list_backups(tmp_path / "bd.sqlite")
        r3 = db.ingest([Specimen("A1", dna_barcode="ACGT" * 60)], collection="plate", source=src, backup=True)
        assert r3.skipped and r3.backup is None and list_backups(tmp_path / "bd.sqlite") == before


def test_ingest_registers_provided_taxonomy_as_graph(db: Database) -> None:
    graph = db.taxonomy()
    (megaselia,) = graph.find("Megaselia", "genus")
    assert [n.name for n in graph.lineage(megaselia.id)] == ["Diptera", "Phoridae", "Megaselia"]
    (diptera,) = graph.find("Diptera", "order")
    assert graph.find("Phoridae", "genus") == [] and len(graph.find("Phoridae")) == 1  # the rank is a filter
    below, names = [diptera], set()
    while below:  # the tree as the taxonomy screen walks it, children by children
        node = below.pop()
        names.add(node.name)
        below.extend(graph.children(node.id))
    assert names == {"Diptera", "Phoridae", "Megaselia", "Cecidomyiidae", "Campylomyza"}


def test_ingest_without_register_taxa_leaves_the_taxonomy_as_it_was(tmp_path: Path) -> None:
    """Only *with* ``register_taxa`` are the provided names added to the taxonomy (the module's promise):
    without it the specimens are stored and the taxa table gains no row."""
    with Database.create(tmp_path / "bd.sqlite") as handle:
        report = handle.ingest(make_specimens(12), collection="plate-1", backup=False, register_taxa=False)
        assert report.new == 12 and handle.taxonomy().find("Megaselia") == []
    assert count_specimens(tmp_path / "bd.sqlite") == 12
    assert sqlite3.connect(tmp_path / "bd.sqlite").execute("SELECT count(*) FROM taxa").fetchone() == (0,)


def test_a_candidates_members_carry_their_own_assignment_once_each(db: Database) -> None:
    """The review screen's member table: each member once, with the rank, taxon, confidence and novelty the
    run gave *that* specimen (every specimen of the run has an assignment here, so a join on the wrong key
    would multiply the rows or mix them up)."""
    run = db.start_run("triage", {}, "sha256:abc", backup=False)
    db.write_assignments(run, [{"processid": f"BD{i:06d}", "deepest_rank": "genus", "deepest_taxon": f"G{i}",
                                "novelty": i / 100, "confidences": {"genus": 0.5 + i / 200}} for i in range(60)])
    (pid,) = db.write_proposals(run, [{"members": [("BD000003", 0.9), ("BD000007", 0.8)], "parent_rank": "genus",
                                       "parent_name": "Megaselia"}])
    members = db.proposal_detail(pid).members
    assert [(m.processid, m.deepest_taxon, m.confidence, m.novelty) for m in members] == [
        ("BD000003", "G3", 0.515, 0.03), ("BD000007", "G7", 0.535, 0.07)]


def test_runs_heartbeat_progress_and_assignments_upsert(db: Database) -> None:
    run = db.start_run("triage", {"threshold": 0.9}, "sha256:abc", total=60, backup=False)
    rows = [{"processid": f"BD{i:06d}", "deepest_rank": "genus", "deepest_taxon": GENERA[i % 3][2],
             "novelty": 0.5, "labels": {"genus": GENERA[i % 3][2]}, "confidences": {"genus": 0.9, "species": 0.2}}
            for i in range(60)]
    assert db.write_assignments(run, rows, chunk_size=7) == 60
    db.heartbeat(run, done=60, message="classified")
    prog = db.run_progress(run)
    assert (prog.status, prog.done, prog.total, prog.fraction, prog.stale) == ("running", 60, 60, 1.0, False)
    assert prog.message == "classified"
    db.heartbeat(run, done=59)  # a heartbeat without a message keeps the last one; with a total, sets it
    assert (db.run_progress(run).done, db.run_progress(run).message) == (59, "classified")
    db.heartbeat(run, total=61, message="named")
    assert (db.run_progress(run).done, db.run_progress(run).total, db.run_progress(run).message) == (59, 61, "named")
    db.heartbeat(run, done=60, total=60, message="classified")
    rows[0]["novelty"] = 0.99
    db.write_assignments(run, rows[:1])  # a resumed run rewrites, never duplicates
    frame = db.assignments(run)
    assert len(frame) == 60
    assert frame.loc[frame.processid == "BD000000", "novelty"].item() == 0.99
    assert frame.loc[frame.processid == "BD000001", "confidence_species"].item() == 0.2
    assert frame.specimen_id.notna().all()
    db.finish_run(run, "completed")
    assert db.run_progress(run).status == "completed" and db.run_progress(run).finished_at
    assert db.latest_run("triage").id == run


def test_queue_filters_sorts_pages_and_counts(db: Database) -> None:
    proposals = [ProposalIn(members=[(f"BD{j:06d}", 0.5 + 0.01 * j) for j in range(i * 3, i * 3 + 1 + i % 3)],
                            parent_lineage=_lineage(i), novelty=i / 20, nearest_identity=0.99 - i / 100,
                            nearest_species=f"sp{i}", evidence={"consensus": "ACGT"})
                 for i in range(20)]
    _run, ids = _new_run(db, proposals)
    rows, total = db.proposal_queue(sort="novelty", descending=True, limit=5)
    assert total == 20 and [r.id for r in rows] == ids[::-1][:5]
    rows, total = db.proposal_queue(parent="Megaselia", min_size=2, sort="size", limit=100)
    expect = [ids[i] for i in range(20) if i % 3 == 0 and 1 + i % 3 >= 2]
    assert total == len(expect) and sorted(r.id for r in rows) == sorted(expect)
    rows, total = db.proposal_queue(min_novelty=0.5, max_identity=0.85, sort="identity")
    assert total == sum(1 for i in range(20) if i / 20 >= 0.5 and 0.99 - i / 100 <= 0.85)
    assert [r.nearest_identity for r in rows] == sorted(r.nearest_identity for r in rows)
    page2, total = db.proposal_queue(offset=5, limit=5)
    assert [r.id for r in page2] == ids[5:10] and total == 20
    (diptera,) = db.taxonomy().find("Diptera", "order")
    _, n_dipt = db.proposal_queue(parent=diptera.id, parent_subtree=True)
    assert n_dipt == sum(1 for i in range(20) if GENERA[i % 3][0] == "Diptera")
    assert db.queue_counts()["pending"] == 20
    with pytest.raises(ValueError, match="unknown sort key"):
        db.proposal_queue(sort="colour")


def test_accept_names_are_stable_counter_never_reused(db: Database) -> None:
    _run, ids = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)},
                             {"members": ["BD000006"], "parent_lineage": _lineage(0)},
                             {"members": ["BD000009"], "parent_lineage": _lineage(0)}])
    assert db.suggest_name(ids[0]) == "Megaselia sp. BD-0001"
    a = db.accept(ids[0], 1, reviewer="ana")
    assert a.name == "Megaselia sp. BD-0001" and db.proposal(ids[0]).status == "accepted"
    undone = db.undo(a.review_id, reviewer="ana")
    assert db.proposal(ids[0]).status == "pending" and undone.versions[ids[0]] == 3
    b = db.accept(ids[1], 1, reviewer="ana")
    assert b.name == "Megaselia sp. BD-0002"  # 0001 was used once, never again
    c = db.accept(ids[2], 1, "Megaselia sp. BD-0042", reviewer="ana")
    assert c.name == "Megaselia sp. BD-0042" and db.suggest_name(ids[0]) == "Megaselia sp. BD-0043"
    graph = db.taxonomy()
    prov = {n.name for n in graph.provisional()}
    assert prov == {"Megaselia sp. BD-0002", "Megaselia sp. BD-0042"}
    node = graph.node(b.taxon_id)
    assert [n.name for n in graph.lineage(node.id)] == ["Diptera", "Phoridae", "Megaselia", "Megaselia sp. BD-0002"]
    refs = provisional_references(db)
    assert {(s.processid, s.species, s.genus) for s in refs} == {
        ("BD000006", "Megaselia sp. BD-0002", "Megaselia"), ("BD000009", "Megaselia sp. BD-0042", "Megaselia")}


def test_every_review_action_logs_and_undo_restores(db: Database) -> None:
    _run, ids = _new_run(db, [{"members": [("BD000000", 0.9), ("BD000003", 0.8), ("BD000006", 0.7)],
                              "parent_lineage": _lineage(0)},
                             {"members": [("BD000009", 0.6)], "parent_lineage": _lineage(0)},
                             {"members": ["BD000001"], "parent_lineage": _lineage(1)}])
    p0, p1, p2 = ids
    s = db.split(p0, 1, ["BD000006"], reviewer="ana", note="two haplogroups")
    new = s.new_proposal_id
    assert proposal_members(db, p0) == ["BD000000", "BD000003"] and proposal_members(db, new) == ["BD000006"]
    m = db.merge([p1, new], {p1: 1, new: 1}, reviewer="ana")
    assert proposal_members(db, p1) == ["BD000006", "BD000009"] and db.proposal(new).status == "merged"
    assert db.proposal(p1).size == 2
    (campylomyza,) = db.taxonomy().find("Campylomyza", "genus")
    mv = db.move(p1, db.proposal(p1).version, campylomyza.id, reviewer="ana")
    assert db.proposal(p1).parent_name == "Campylomyza"
    rn = db.rename(p2, 1, "Campylomyza sp. wet-meadow", reviewer="ana")
    db.note(p2, "check wing venation", reviewer="bo")
    rj = db.reject(p2, db.proposal(p2).version, reviewer="bo")
    log = db.reviews()
    assert [r["action"] for r in reversed(log)] == ["split", "merge", "move", "rename", "note", "reject"]
    assert all(r["reviewer"] in ("ana", "bo") and r["created_at"] for r in log)
    assert [(r["proposal_id"], r["action"]) for r in db.reviews(p2)] == [(p2, "reject"), (p2, "note"),
                                                                         (p2, "rename")]  # one proposal's log
    assert log[-1]["before"]["proposals"][str(p0)]["members"][2][0] == "BD000006"  # before snapshot kept
    # undo in reverse order restores the original grouping
    for res in (rj, rn, mv, m, s):
        db.undo(res.review_id, reviewer="ana")
    assert proposal_members(db, p0) == ["BD000000", "BD000003", "BD000006"]
    assert proposal_members(db, p1) == ["BD000009"] and db.proposal(p1).parent_name == "Megaselia"
    assert db.proposal(new).status == "withdrawn" and db.proposal(p2).status == "pending"
    assert db.proposal(new).size == 0 and proposal_members(db, new) == []  # withdrawn holds nobody (mutation testing)
    assert db.proposal(p2).provisional_name is None
    assert len(db.reviews()) == 11  # append-only: nothing deleted
    kinds = [e["kind"] for e in proposal_history(db, p1)]
    assert kinds == ["merge"]
    assert check_database(db.path).ok, check_database(db.path).problems


def test_stale_version_and_out_of_order_undo_are_refused(db: Database) -> None:
    _run, (pid,) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)}])
    r = db.rename(pid, 1, "first", reviewer="ana")
    with pytest.raises(StaleProposalError, match="you saw version 1, it is now version 2"):
        db.reject(pid, 1, reviewer="bo")
    db.rename(pid, 2, "second", reviewer="ana")
    with pytest.raises(StaleProposalError, match="undo the later reviews first"):
        db.undo(r.review_id, reviewer="ana")
    assert db.proposal(pid).provisional_name == "second"
    # a note checked against the version its reviewer saw: the current one is taken, a stale one refused
    db.note(pid, "wing venation as in M. scalaris", reviewer="bo", expected_version=3)
    with pytest.raises(StaleProposalError, match="you saw version 2, it is now version 3"):
        db.note(pid, "written on an old screen", reviewer="bo", expected_version=2)
    assert [r["action"] for r in db.reviews()].count("note") == 1
    done = db.reject(pid, 3, reviewer="bo")
    with pytest.raises(DatabaseError, match="it is rejected"):
        db.accept(pid, done.versions[pid], reviewer="bo")


def test_recluster_supersedes_pending_but_not_decided(db: Database) -> None:
    _run1, (a, b) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)},
                                 {"members": ["BD000006"], "parent_lineage": _lineage(0)}])
    db.accept(b, 1, reviewer="ana")
    _run2, (c,) = _new_run(db, [{"members": ["BD000000", "BD000003", "BD000006", "BD000009"],
                                "parent_lineage": _lineage(0)}])
    old, new = db.proposal(a), db.proposal(c)
    assert (old.status, old.superseded_by, old.version) == ("superseded", c, 2)
    assert (new.lineage, new.version) == (a, 2)
    assert db.proposal(b).status == "accepted"  # decisions are never superseded
    assert [e["kind"] for e in proposal_history(db, c)] == ["recluster"]


def test_registered_lineages_join_the_taxonomy_once_with_every_rank(db: Database) -> None:
    """The reference's lineages (how taxa enter besides reviews) land under the taxa already there, a subfamily
    between family and genus included; registering them again adds nothing."""
    before = len(db.taxonomy().graph)
    lineage = {"order": "Diptera", "family": "Phoridae", "subfamily": "Metopininae", "genus": "Dohrniphora",
               "species": "Dohrniphora cornuta"}
    assert register_lineages(db, [lineage, dict(lineage)], source="reference") == 1
    graph = db.taxonomy()
    assert len(graph.graph) == before + 3
    (species,) = graph.find("Dohrniphora cornuta", "species")
    assert [(n.rank, n.name) for n in graph.lineage(species.id)] == list(lineage.items())
    (phoridae,) = graph.find("Phoridae", "family")
    assert graph.lineage(species.id)[1].id == phoridae.id and species.source == "reference"
    register_lineages(db, [lineage], source="reference")
    assert len(db.taxonomy().graph) == before + 3


def test_run_tables_feed_the_export(db: Database) -> None:
    run, ids = _new_run(db, [{"members": [("BD000000", 0.9)], "parent_lineage": _lineage(0),
                              "nearest_identity": 0.91}])
    db.write_assignments(run, [{"processid": "BD000000", "deepest_rank": "genus", "deepest_taxon": "Megaselia"}])
    t = db.run_tables(run)
    assert t["run"]["model_fingerprint"] == "sha256:model"
    assert list(t["proposals"].proposal_id) == ids and t["proposals"].parent_taxon.item() == "Megaselia"
    assert list(t["members"].processid) == ["BD000000"] and t["specimens"].processid.tolist() == ["BD000000"]
    assert "coord-lat" in t["specimens"].columns


def test_records_disagreeing_on_intermediate_ranks_share_one_taxon(tmp_path: Path) -> None:
    with Database.create(tmp_path / "bd.sqlite") as db:
        db.ingest([Specimen("A", order="Diptera", family="Phoridae", subfamily="Metopininae", genus="Megaselia"),
                   Specimen("B", order="Diptera", family="Phoridae", genus="Megaselia"),
                   Specimen("C", order="Diptera", family="Phoridae", genus="Megaselia", species="Megaselia scalaris")],
                  collection="c", backup=False, chunk_size=1)
        graph = db.taxonomy()
        (genus,) = graph.find("Megaselia", "genus")
        (species,) = graph.find("Megaselia scalaris", "species")
        assert [n.name for n in graph.lineage(species.id)] == [
            "Diptera", "Phoridae", "Metopininae", "Megaselia", "Megaselia scalaris"]
        assert graph.node(species.id).parent_id == genus.id


def test_names_in_open_nomenclature_and_search_by_member(tmp_path) -> None:
    """A family-level candidate is '<Family> gen. sp. BD-n' (as the DwC export writes it), and a
    specimen's processid finds the candidate that holds it."""
    from biodiscover.storage.db import Database
    from biodiscover.storage.db.proposals import ProposalIn
    from biodiscover.storage.db.reviews import format_name

    assert format_name("Megaselia", 7) == "Megaselia sp. BD-0007"
    assert format_name("Phoridae", 8, "family") == "Phoridae gen. sp. BD-0008"
    assert format_name("Metopininae", 9, "subfamily") == "Metopininae gen. sp. BD-0009"
    assert format_name(None, 1) == "Incertae sedis sp. BD-0001"
    db = Database.create(tmp_path / "names.sqlite")
    run = db.start_run("triage", parameters={})
    ids = db.write_proposals(run, [
        ProposalIn(parent_rank="family", parent_name="Phoridae", members=[("KNFZ912-20", 1.0), ("KNFZ913-20", 0.9)]),
        ProposalIn(parent_rank="genus", parent_name="Megaselia", members=[("ABC1-22", 1.0)]),
    ])
    assert db.suggest_name(ids[0]) == "Phoridae gen. sp. BD-0001"
    assert db.suggest_name(ids[1]) == "Megaselia sp. BD-0001"
    page, total = db.proposal_queue(search="KNFZ913-20")
    assert total == 1 and [p.id for p in page] == [ids[0]]
    assert db.proposal_queue(search="KNFZ91")[1] == 0  # processids match exactly, names by substring
    accepted = db.accept(ids[0], expected_version=page[0].version, reviewer="t")
    assert db.proposal_detail(ids[0]).summary.provisional_name == "Phoridae gen. sp. BD-0001"
    assert accepted.proposal_id == ids[0]


def test_queue_search_finds_a_candidate_by_the_name_and_number_the_queue_shows(tmp_path) -> None:
    """The queue shows a pending candidate as 'Unplaced sp. cand113' or 'Phoridae gen. sp. cand2' with its number
    beside it; a reviewer of a real plate typed 'cand113' in the filter and got 'nothing matches' (the search looked
    at provisional names, parents, nearest species and processids only)."""
    from biodiscover.storage.db import Database
    from biodiscover.storage.db.proposals import ProposalIn

    db = Database.create(tmp_path / "search.sqlite")
    run = db.start_run("triage", parameters={})
    ids = db.write_proposals(run, [
        ProposalIn(parent_rank="family", parent_name="Phoridae", members=[("KNFZ912-20", 1.0)]),
        ProposalIn(parent_rank=None, parent_name=None, members=[("ABC1-22", 1.0)]),
        ProposalIn(parent_rank="genus", parent_name="Megaselia", members=[("ABC2-22", 1.0)]),
    ])
    unplaced = db.proposal(ids[1])
    assert unplaced.name == f"Unplaced sp. cand{ids[1]}"
    for typed in (f"cand{ids[1]}", unplaced.name, f"#{ids[1]}", str(ids[1])):
        page, total = db.proposal_queue(search=typed)
        assert (total, [p.id for p in page]) == (1, [ids[1]]), typed
    assert [p.id for p in db.proposal_queue(search=f"Phoridae gen. sp. cand{ids[0]}")[0]] == [ids[0]]
    assert db.proposal_queue(search=f"Megaselia sp. cand{ids[0]}")[1] == 0  # the number and the name must agree
    assert [p.id for p in db.proposal_queue(search="Megaselia")[0]] == [ids[2]]  # names still by substring


def test_run_ledger_queries_are_database_methods(tmp_path: Path) -> None:
    """Issue 14 item 8: what the batch ledger needs, asked of the Database (no SQL or message parsing outside)."""
    import socket

    import sqlalchemy as sa

    from biodiscover.storage.db.models import Run

    with Database.create(tmp_path / "bd.sqlite") as db:
        a = db.start_run("batch_item", {"collection_key": "k1", "model_fingerprint": "m1"}, backup=False)
        db.finish_run(a, "completed", message="triage run 7: whatever a person reads", result={"triage_run_id": 7})
        b = db.start_run("batch_item", {"collection_key": "k1", "model_fingerprint": None}, backup=False)
        db.finish_run(b, "completed", result={"triage_run_id": 8})
        c = db.start_run("batch_item", {"collection_key": "k1", "model_fingerprint": "m1"}, backup=False)
        db.finish_run(c, "failed", message="triage run 9: crashed")
        found = db.find_completed_run("batch_item", {"collection_key": "k1", "model_fingerprint": "m1"})
        assert found is not None and (found.id, found.result) == (a, {"triage_run_id": 7})
        assert db.find_completed_run("batch_item", {"collection_key": "k1", "model_fingerprint": None}).id == b
        assert db.find_completed_run("batch_item", {"collection_key": "k2"}) is None
        assert db.find_completed_run("triage", {"collection_key": "k1"}) is None
        with pytest.raises(ValueError, match="cannot be matched"):
            db.find_completed_run("batch_item", {"key') OR 1=1 --": "x"})
        # runs left running: here by a dead pid, elsewhere silent for long, elsewhere fresh, here alive
        here, there = socket.gethostname(), "another-host"
        ids = [db.start_run("batch_item", {}, backup=False) for _ in range(4)]
        with db.engine.begin() as conn:
            runs = Run.__table__
            conn.execute(sa.update(runs).where(runs.c.id == ids[0]).values(pid=2 ** 22 + 12345, host=here))
            conn.execute(sa.update(runs).where(runs.c.id == ids[1]).values(host=there,
                                                                           heartbeat_at="2000-01-01T00:00:00.000000Z"))
            conn.execute(sa.update(runs).where(runs.c.id == ids[2]).values(host=there))
        assert db.interrupt_dead_runs(["batch_item"], stale_after_s=3600, message="gone") == ids[:2]
        assert [db.run_progress(i).status for i in ids] == ["interrupted", "interrupted", "running", "running"]
        assert db.run_progress(ids[0]).message == "gone"
        assert db.interrupt_dead_runs(["batch_item"], stale_after_s=3600) == []


def test_check_knows_every_proposal_status_including_assigned(db: Database) -> None:
    """`db check` follows the model's status lists: an assigned proposal is live (its members and size are
    checked), must name a live species, and a status, taxon status, run status or review action no code
    knows is a problem, not a row silently missing from every queue and export."""
    register_lineages(db, [{**_lineage(0), "species": "Megaselia scalaris"}], source="test")
    genus = db.taxonomy().find("Megaselia", "genus")[0]
    _, (p0, p1) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": {"genus": "Megaselia"}},
                                {"members": ["BD000006"], "parent_lineage": {"genus": "Megaselia"}}])
    db.assign(p0, 1, "Megaselia scalaris", reviewer="ana")
    assert db.proposal(p0).status == "assigned"
    report = check_database(db.path)
    assert report.ok, report.problems
    path = db.path
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM proposal_members WHERE proposal_id = ?", (p0,))
    problems = check_database(db.path).problems
    assert f"1 proposals whose size differs from their member count (e.g. {p0})" in problems
    assert f"1 live proposals without members (e.g. {p0})" in problems
    with sqlite3.connect(path) as con:
        con.execute("UPDATE proposals SET taxon_id = ? WHERE id = ?", (genus.id, p0))
        con.execute("UPDATE proposals SET status = 'asigned' WHERE id = ?", (p1,))
        con.execute("UPDATE taxa SET status = 'tentative' WHERE id = ?", (genus.id,))
        con.execute("UPDATE runs SET status = 'done'")
    problems = check_database(db.path).problems
    assert f"1 assigned proposals whose taxon is not a species (e.g. {p0})" in problems
    assert f"1 proposals with an unknown status (e.g. {p1})" in problems
    assert f"1 taxa with an unknown status (e.g. {genus.id})" in problems
    assert any(p.startswith("1 runs with an unknown status") for p in problems), problems
    with sqlite3.connect(path) as con:
        con.execute("UPDATE proposals SET taxon_id = NULL WHERE id = ?", (p0,))
    assert f"1 accepted or assigned proposals without a live taxon (e.g. {p0})" in check_database(db.path).problems
    with sqlite3.connect(path) as con:  # a candidate left in a reviewer's genus that was taken out again
        con.execute("UPDATE taxa SET status = 'rejected' WHERE id = ?", (genus.id,))
        con.execute("UPDATE proposals SET parent_taxon_id = ?, status = 'pending' WHERE id = ?", (genus.id, p1))
    assert f"2 live proposals placed in a rejected taxon (e.g. {p0}, {p1})" in check_database(db.path).problems


def test_check_reports_a_taxonomy_cycle(db: Database) -> None:
    """A parent loop in the taxonomy (which no API writes: taxa change only through reviews) is a problem `db check`
    names with the taxa on it; a lineage walk would otherwise never end."""
    assert check_database(db.path).ok
    with sqlite3.connect(db.path) as con:
        family, genus = (con.execute("SELECT id FROM taxa WHERE rank = ? AND name = ?", key).fetchone()[0]
                         for key in (("family", "Phoridae"), ("genus", "Megaselia")))
        con.execute("UPDATE taxa SET parent_id = ? WHERE id = ?", (genus, family))
    problems = check_database(db.path).problems
    assert any(p.startswith("taxonomy has cycles through taxa ") and str(genus) in p and str(family) in p
               for p in problems), problems


def test_merging_candidates_of_different_parents_lands_under_their_lowest_common_taxon(db: Database) -> None:
    """Two genera of one order meet at the order; two orders share no taxon and the merged candidate is unplaced,
    not left under the target's place (found by mutation testing: only merges within one genus were tested; a fly
    merged into a moth candidate stayed "order Lepidoptera" in a real plate's review)."""
    _, (pm, pc, pa) = _new_run(db, [{"members": ["BD000000"], "parent_lineage": _lineage(0)},   # Megaselia
                                    {"members": ["BD000001"], "parent_lineage": _lineage(1)},   # Campylomyza
                                    {"members": ["BD000002"], "parent_lineage": _lineage(2)}])  # Apanteles
    res = db.merge([pm, pc], [1, 1], reviewer="ana")
    assert res.parent == ("order", "Diptera")
    assert (db.proposal(pm).parent_rank, db.proposal(pm).parent_name) == ("order", "Diptera")
    assert proposal_members(db, pm) == ["BD000000", "BD000001"] and db.proposal(pc).status == "merged"
    res = db.merge([pa, pm], [1, db.proposal(pm).version], reviewer="ana")
    assert res.parent == (None, None)  # Hymenoptera and Diptera: no common taxon
    assert db.proposal(pa).parent_taxon_id is None and db.proposal(pa).name == f"Unplaced sp. cand{pa}"
    assert check_database(db.path).ok, check_database(db.path).problems


def test_a_run_records_the_collection_it_triaged(db: Database) -> None:
    """The run → collection link is provenance the JSON export carries (found by mutation testing: a run
    that lost it passed every test)."""
    named = db.start_run("triage", {}, "sha256:model", collection="plate-1", backup=False)
    bare = db.start_run("evaluate", {}, "sha256:model", backup=False)
    with sqlite3.connect(db.path) as con:
        plate = con.execute("SELECT id FROM collections WHERE name = 'plate-1'").fetchone()[0]
        linked = dict(con.execute("SELECT id, collection_id FROM runs WHERE id IN (?, ?)", (named, bare)).fetchall())
    assert linked == {named: plate, bare: None}


def test_jsonable_writes_paths_and_dates_as_text() -> None:
    """What runs record as parameters (paths, dates) is stored as text, never dropped to null (found by
    mutation testing)."""
    from datetime import date, datetime
    from pathlib import PurePosixPath

    from biodiscover.storage.jsonable import jsonable

    assert jsonable({"out": PurePosixPath("/data/plate 4.csv"), "on": date(2024, 6, 1),
                     "at": datetime(2024, 6, 1, 12, 30)}) == {"out": "/data/plate 4.csv", "on": "2024-06-01",
                                                              "at": "2024-06-01 12:30:00"}


def test_renaming_an_accepted_candidate_renames_its_taxon_and_nothing_else(db: Database) -> None:
    """An accepted candidate's provisional species follows its new name; every other taxon keeps its name
    (found by mutation testing: no test renamed an accepted candidate)."""
    _, (pid,) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)}])
    with sqlite3.connect(db.path) as con:
        before = dict(con.execute("SELECT id, name FROM taxa").fetchall())
    res = db.accept(pid, 1, reviewer="ana")
    db.rename(pid, res.versions[pid], "Megaselia sp. wet-meadow", reviewer="ana")
    with sqlite3.connect(db.path) as con:
        after = dict(con.execute("SELECT id, name FROM taxa").fetchall())
    assert after.pop(res.taxon_id) == "Megaselia sp. wet-meadow" == db.proposal(pid).provisional_name
    assert after == before


def test_a_rename_not_written_as_a_species_name_is_refused_with_the_form_it_takes(db: Database) -> None:
    """e33 review F10: ``e`` renamed #16 to "garrha Carnea-Like" (genus in lower case, epithet capitalised) without
    a question. Two words of letters are a binomial: the genus capitalised, the epithet lower case; open
    nomenclature, codes and a longer working phrase ("the humpbacked one", a pending candidate's label) pass."""
    from biodiscover.storage.db.reviews import name_case_problem

    _, (pid,) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)}])
    with pytest.raises(DatabaseError) as err:
        db.rename(pid, 1, "garrha Carnea-Like", reviewer="ana")
    assert str(err.value) == (f"cannot rename proposal {pid} to 'garrha Carnea-Like': a species name begins with its "
                              "genus, capitalised (Garrha carnea-like), not 'garrha'")
    assert name_case_problem("Garrha Carnea-Like") == \
        "its epithet is written in lower case (Garrha carnea-like), not 'Carnea-Like'"
    assert db.proposal(pid).provisional_name is None and db.proposal(pid).version == 1
    # e34 attack T2: a genus all in capitals, an epithet in mixed case, a genus in lower case before "sp."
    assert name_case_problem("ODONATUS carnea") == \
        "a species name begins with its genus, capitalised (Odonatus carnea), not 'ODONATUS'"
    assert name_case_problem("Thopliaus cARNEA") == \
        "its epithet is written in lower case (Thopliaus carnea), not 'cARNEA'"
    assert name_case_problem("thopliaus sp. BD-9") == \
        "a species name begins with its genus, capitalised (Thopliaus sp. BD-9), not 'thopliaus'"
    assert name_case_problem("ODONATUS CARNEA") == \
        "a species name begins with its genus, capitalised (Odonatus carnea), not 'ODONATUS'"
    for fine in ("Megaselia sp. wet-meadow", "Megaselia nova", "Lepidoptera gen. sp. BD-0002", "Harpalus sp. NOR-A",
                 "Incertae sedis sp. BD-0003", "Memphis 'Carnea-like'", "Megaselia MS1",
                 "the humpbacked one"):
        assert name_case_problem(fine) is None, fine
    db.rename(pid, 1, "Megaselia carnea-like", reviewer="ana")
    assert db.proposal(pid).provisional_name == "Megaselia carnea-like"


def test_the_reviewer_written_in_the_log_comes_from_flag_environment_config_then_login(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Who decided is part of every review row: the name in ``config.toml`` must be the one used when neither
    ``--reviewer`` nor ``$BIODISCOVER_REVIEWER`` is given, and a blank one is refused, not logged."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("BIODISCOVER_REVIEWER", raising=False)
    assert resolve_reviewer().source == "login name"  # nothing configured: the login name, said so
    (tmp_path / "biodiscover").mkdir()
    config = tmp_path / "biodiscover" / "config.toml"
    config.write_text('reviewer = "  Ana Silva "\n')
    assert resolve_reviewer() == Reviewer("Ana Silva", str(config))
    monkeypatch.setenv("BIODISCOVER_REVIEWER", "Ben Okafor")
    assert resolve_reviewer() == Reviewer("Ben Okafor", "$BIODISCOVER_REVIEWER")
    assert resolve_reviewer(" Cy ") == Reviewer("Cy", "--reviewer")
    monkeypatch.delenv("BIODISCOVER_REVIEWER")
    config.write_text('reviewer = "   "\n')
    with pytest.raises(InputError, match="reviewer must be a non-empty string"):
        resolve_reviewer()


def test_a_candidates_members_show_the_current_version_of_each_specimen(db: Database) -> None:
    """The detail a reviewer decides on must show each member as it stands now: after a corrected re-ingest
    (a new version of one specimen) the member carries the new data, never the superseded row."""
    _, (pid,) = _new_run(db, [ProposalIn(parent_rank="genus", parent_name="Megaselia",
                                         members=[("BD000000", 1.0), ("BD000003", 0.8)])])
    corrected = make_specimens(60)
    corrected[3].country = "Costa Rica"
    assert db.ingest(corrected, collection="plate-1", backup=False).changed == 1
    members = {m.processid: m for m in db.proposal_detail(pid).members}
    assert (members["BD000003"].country, members["BD000000"].country) == ("Costa Rica", "Canada")
    assert members["BD000003"].dna_barcode == corrected[3].dna_barcode
    assert members["BD000003"].provided["genus"] == "Megaselia"


def test_bulk_writes_leave_the_query_planner_its_statistics(db: Database) -> None:
    """Ingest and a run's proposals end with ``PRAGMA optimize``: without statistics SQLite chose a full sort
    over an index walk for a filtered queue page (benchmarks/RESULTS-db.md), so they must be there after both."""
    def analysed() -> set[str]:
        return {r[0] for r in sqlite3.connect(db.path).execute("SELECT DISTINCT tbl FROM sqlite_stat1")}

    assert "specimens" in analysed()  # the fixture's ingest
    _new_run(db, [ProposalIn(parent_rank="genus", parent_name="Megaselia",
                             members=[(f"BD{i:06d}", 1.0) for i in range(0, 60, 3)])])
    assert {"proposals", "proposal_members"} <= analysed()


def test_specimens_returns_all_current_records_or_exactly_those_named(db: Database) -> None:
    """Exports and the report fetch members' records by name: asking for two must give those two (current
    versions), asking for none named gives every current record, and a long list is read in chunks."""
    corrected = make_specimens(60)
    corrected[5].country = "Costa Rica"
    db.ingest(corrected, collection="plate-1", backup=False)
    assert [s.processid for s in db.specimens()] == [f"BD{i:06d}" for i in range(60) if i != 5] + ["BD000005"]
    named = db.specimens(["BD000005", "BD000001", "NOT-THERE"])
    assert sorted((s.processid, s.country) for s in named) == [("BD000001", "Canada"), ("BD000005", "Costa Rica")]
    many = [f"BD{i:06d}" for i in range(950)]  # past one 900-name chunk
    assert sorted(s.processid for s in db.specimens(many)) == [f"BD{i:06d}" for i in range(60)]


def test_assign_pick_list_shows_lineage_higher_to_lower(tmp_path: Path) -> None:
    """The assign-to-species dialog reads "(Harpalinae › Pterostichus)", order → genus like the headers,
    not reversed."""
    with Database.create(tmp_path / "t.sqlite") as db:
        register_lineages(db, [{"order": "Coleoptera", "family": "Carabidae", "subfamily": "Harpalinae",
                                "genus": "Pterostichus", "species": "Pterostichus niger"}], source="test")
        assert [label for _, label in db.known_species("niger")] == ["Pterostichus niger  (Harpalinae › Pterostichus)"]


def test_the_queue_filters_by_status_run_and_exact_parent_and_counts_per_run(db: Database) -> None:
    """The review queue's less used filters: a status list, one run, a parent taxon itself (not its subtree)."""
    run1, (a, b) = _new_run(db, [{"members": ["BD000000"], "parent_lineage": _lineage(0)},
                                 {"members": ["BD000001"], "parent_lineage": _lineage(1)}])
    run2, (c,) = _new_run(db, [{"members": ["BD000002"], "parent_lineage": _lineage(2)}])
    db.reject(b, 1, reviewer="ana")
    assert [r.id for r in db.proposal_queue(status="rejected")[0]] == [b]
    assert sorted(r.id for r in db.proposal_queue(status=["pending", "rejected"])[0]) == [a, b, c]
    rows, total = db.proposal_queue(run_id=run1)
    assert (sorted(r.id for r in rows), total) == (sorted([a, b]), 2)
    (megaselia,) = db.taxonomy().find("Megaselia", "genus")
    (phoridae,) = db.taxonomy().find("Phoridae", "family")
    assert [r.id for r in db.proposal_queue(parent=megaselia.id)[0]] == [a]
    assert db.proposal_queue(parent=phoridae.id)[1] == 0  # the family itself holds no candidate
    counts = db.queue_counts(run_id=run1)
    assert (counts["pending"], counts["rejected"], counts["live"]) == (1, 1, 2)
    assert db.queue_counts(run_id=run2)["pending"] == 1
    with pytest.raises(ValueError, match="unknown proposal status 'maybe'"):
        db.proposal_queue(status=["pending", "maybe"])


def test_a_proposal_under_a_taxon_id_takes_its_rank_and_name_and_a_missing_one_is_refused(db: Database) -> None:
    (apanteles,) = db.taxonomy().find("Apanteles", "genus")
    _run, (pid,) = _new_run(db, [ProposalIn(members=[("BD000002", 1.0)], parent_taxon_id=apanteles.id)])
    p = db.proposal(pid)
    assert (p.parent_taxon_id, p.parent_rank, p.parent_name) == (apanteles.id, "genus", "Apanteles")
    run = db.start_run("triage", {}, "sha256:model", backup=False)
    with pytest.raises(DatabaseError, match="parent taxon 99999 does not exist"):
        db.write_proposals(run, [ProposalIn(members=[("BD000005", 1.0)], parent_taxon_id=99999)])


def test_a_rejected_candidate_proposed_again_is_recognised_and_an_overlap_is_linked(db: Database) -> None:
    """A re-run that proposes exactly a rejected candidate continues its lineage (version + 1, edge
    "recognised"); one that only overlaps a rejected candidate is a new lineage linked "overlaps_rejected"."""
    _run, (old, other) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)},
                                       {"members": ["BD000006", "BD000009"], "parent_lineage": _lineage(0)}])
    db.reject(old, 1, reviewer="ana")
    db.reject(other, 1, reviewer="ana")
    _run2, (again, partly) = _new_run(db, [
        {"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)},
        {"members": ["BD000006", "BD000012"], "parent_lineage": _lineage(0)}])
    p_again, p_partly = db.proposal(again), db.proposal(partly)
    assert (p_again.lineage, p_again.version) == (db.proposal(old).lineage, 3)  # rejected at version 2
    assert p_partly.lineage != db.proposal(other).lineage and p_partly.version == 1
    edges = {(e["kind"], e["source_id"], e["target_id"]) for e in proposal_history(db, old)}
    assert edges == {("recognised", old, again)}
    assert [(e["kind"], e["source_id"]) for e in proposal_history(db, partly)] == [("overlaps_rejected", other)]
    assert db.proposal(old).status == db.proposal(other).status == "rejected"  # decisions stay


def test_a_stale_review_says_whether_the_candidate_was_merged_or_withdrawn(db: Database) -> None:
    _run, (p0, p1) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)},
                                   {"members": ["BD000006"], "parent_lineage": _lineage(0)}])
    with pytest.raises(DatabaseError, match="BD000009 not among its members"):
        db.split(p0, 1, ["BD000003", "BD000009"], reviewer="ana")
    s = db.split(p0, 1, ["BD000003"], reviewer="ana")
    new = s.new_proposal_id
    db.undo(s.review_id, reviewer="ana")
    with pytest.raises(StaleProposalError, match=f"proposal {new} was withdrawn \\(a split was undone\\)"):
        db.accept(new, db.proposal(new).version, reviewer="ana")
    db.merge([p0, p1], {p0: db.proposal(p0).version, p1: 1}, reviewer="ana")
    with pytest.raises(StaleProposalError, match=f"proposal {p1} was merged into proposal {p0}; review that one"):
        db.reject(p1, db.proposal(p1).version, reviewer="bo")
    with pytest.raises(DatabaseError, match="no proposal 99999"):
        db.reject(99999, 1, reviewer="bo")


def test_merge_and_split_with_recomputed_evidence_update_the_nearest_species_the_queue_shows(db: Database
                                                                                             ) -> None:
    from biodiscover.storage.evidence import Evidence, NearestKnown

    _run, (p0, p1) = _new_run(db, [{"members": ["BD000000", "BD000003", "BD000006"], "parent_lineage": _lineage(0),
                                    "nearest_species": "Megaselia old", "nearest_identity": 0.5},
                                   {"members": ["BD000009"], "parent_lineage": _lineage(0)}])
    merged = Evidence(size=4, nearest_known=NearestKnown(species="Megaselia scalaris", identity=0.97))
    db.merge([p0, p1], [1, 1], reviewer="ana", evidence=merged)
    p = db.proposal(p0)
    assert (p.nearest_species, p.nearest_identity, p.size) == ("Megaselia scalaris", 0.97, 4)
    assert db.proposal_detail(p0).evidence.nearest_known.species == "Megaselia scalaris"
    stay = {"size": 2, "nearest_known": {"species": "Megaselia abdita", "identity": 0.93}}
    off = {"size": 2, "nearest_known": "not a mapping"}
    s = db.split(p0, p.version, ["BD000006", "BD000009"], reviewer="ana", evidence=(stay, off))
    kept, moved = db.proposal(p0), db.proposal(s.new_proposal_id)
    assert (kept.nearest_species, kept.nearest_identity) == ("Megaselia abdita", 0.93)
    assert (moved.nearest_species, moved.nearest_identity) == (None, None)
    with pytest.raises(TypeError, match="evidence must be an Evidence record or a mapping, got list"):
        db.merge([p0, s.new_proposal_id], [kept.version, moved.version], reviewer="ana", evidence=[1])


def test_a_split_or_merge_gives_each_candidate_its_members_mean_novelty_and_undo_restores_it(db: Database) -> None:
    """A candidate's novelty is its members' mean (as discovery makes it); the demo's split left both parts at
    the parent's 0.94 while the queue's members read 0.97 and 0.87. Merged members count in the run that
    proposed them; a member without an assignment counts for nothing."""
    run, (p0,) = _new_run(db, [{"members": ["BD000000", "BD000003", "BD000006", "BD000009"], "novelty": 0.7}])
    db.write_assignments(run, [{"processid": pid, "novelty": v, "is_novel": True} for pid, v in
                               (("BD000000", 0.9), ("BD000003", 0.8), ("BD000006", 0.5), ("BD000009", 0.6))])
    s = db.split(p0, 1, ["BD000006", "BD000009"], reviewer="ana")
    kept, moved = db.proposal(p0), db.proposal(s.new_proposal_id)
    assert kept.novelty == pytest.approx(0.85) and moved.novelty == pytest.approx(0.55)
    other, (p2,) = _new_run(db, [{"members": ["BD000012", "BD000015"], "novelty": 0.99}])
    db.write_assignments(other, [{"processid": "BD000012", "novelty": 1.0, "is_novel": True}])
    m = db.merge([p0, p2], [kept.version, 1], reviewer="ana")
    assert db.proposal(p0).novelty == pytest.approx((0.9 + 0.8 + 1.0) / 3)  # BD000015: no assignment
    db.undo(m.review_id, reviewer="ana")
    assert db.proposal(p0).novelty == pytest.approx(0.85)
    db.undo(s.review_id, reviewer="ana")
    assert db.proposal(p0).novelty == pytest.approx(0.7) and check_database(db.path).ok


def _assessed(db: Database, run: int, named: dict[str, tuple[str, ...]]) -> None:
    """Assignments of ``run``: each processid named down to the last of its (order, family, genus) given (none:
    assessed, named to no rank)."""
    rows = []
    for pid, lineage in named.items():
        ranks = ("order", "family", "genus")[:len(lineage)]
        rows.append({"processid": pid, "novelty": 0.9, "is_novel": True,
                     "deepest_rank": ranks[-1] if ranks else None, "deepest_taxon": lineage[-1] if lineage else None,
                     **{f"label_{r}": n for r, n in zip(ranks, lineage)}})
    db.write_assignments(run, rows)


def test_a_split_places_each_part_where_its_own_members_are_named_unless_a_reviewer_placed_it(db: Database) -> None:
    """A part split off inherited its parent's placement: the e33 review's split of #14 gave #284 "Chrysomya sp.",
    whose one member the run named only to subfamily (F6). Each part is placed as triage places a candidate
    (``storage.records.placement``: where more than half of its members are named and none elsewhere), and the
    part that stays too; undo puts the one placement back. A placement a reviewer gave (a move in force) is hers:
    both parts keep it. Members the run never assessed give nothing to place by: the parent's placement stays."""
    megaselia = ("Diptera", "Phoridae", "Megaselia")
    run, (p0,) = _new_run(db, [{"members": ["BD000000", "BD000003", "BD000006", "BD000009"],
                                "parent_lineage": {"order": "Diptera", "family": "Phoridae"}}])
    _assessed(db, run, {"BD000000": megaselia, "BD000003": megaselia, "BD000006": megaselia[:2], "BD000009": ()})
    s = db.split(p0, 1, ["BD000006", "BD000009"], reviewer="ana")
    kept, part = db.proposal(p0), db.proposal(s.new_proposal_id)
    assert (kept.parent_rank, kept.parent_name, kept.name) == ("genus", "Megaselia", f"Megaselia sp. cand{p0}")
    assert (part.parent_rank, part.parent_name, part.parent_taxon_id) == (None, None, None)
    assert part.name == f"Unplaced sp. cand{part.id}"
    db.undo(s.review_id, reviewer="ana")
    assert (db.proposal(p0).parent_rank, db.proposal(p0).parent_name) == ("family", "Phoridae")
    s = db.split(p0, db.proposal(p0).version, ["BD000000", "BD000003", "BD000006"], reviewer="ana")
    # two of the three the run named to Megaselia, the third to its family: more than half reach the genus
    assert (db.proposal(s.new_proposal_id).parent_rank, db.proposal(s.new_proposal_id).parent_name) == \
        ("genus", "Megaselia")
    assert db.proposal(p0).parent_taxon_id is None
    db.undo(s.review_id, reviewer="ana")
    # the reviewer's own placement, in force, is kept by both parts
    db.move(p0, db.proposal(p0).version, "Megaselia", reviewer="bo")
    s = db.split(p0, db.proposal(p0).version, ["BD000009"], reviewer="bo")
    assert {(db.proposal(i).parent_rank, db.proposal(i).parent_name) for i in (p0, s.new_proposal_id)} == \
        {("genus", "Megaselia")}
    # a run that assessed none of them: the parent's placement stays on both
    _run, (p1,) = _new_run(db, [{"members": ["BD000012", "BD000015"], "parent_lineage": _lineage(0)}])
    s = db.split(p1, 1, ["BD000015"], reviewer="ana")
    assert {(db.proposal(i).parent_rank, db.proposal(i).parent_name) for i in (p1, s.new_proposal_id)} == \
        {("genus", "Megaselia")}
    assert check_database(db.path).ok


def test_the_closest_candidate_is_the_live_proposal_now_holding_its_recorded_specimen(db: Database) -> None:
    """Evidence records the closest candidate by a number of the run that made it (not a proposal id: the demo's
    #9 recorded candidate 8, which is #14) and one of its specimens; the detail names the live proposal holding
    that specimen, after a merge too, and none when no live proposal holds it."""
    near = {"between_distance": {"nearest_candidate": 8, "distance": 0.046, "member": "BD000009"}}
    _run, (p0, p1, p2) = _new_run(db, [{"members": ["BD000000", "BD000003"], "evidence": near},
                                       {"members": ["BD000009"]}, {"members": ["BD000012"]}])
    closest = db.proposal_detail(p0).closest_candidate
    assert closest is not None and (closest.id, closest.name) == (p1, db.proposal(p1).name)
    db.merge([p2, p1], [1, 1], reviewer="ana")
    assert db.proposal_detail(p0).closest_candidate.id == p2  # merged into p2, which holds it now
    db.reject(p2, db.proposal(p2).version, reviewer="ana")
    assert db.proposal_detail(p0).closest_candidate.id == p2  # rejected is still a candidate a reviewer decided
    assert db.proposal_detail(p1).closest_candidate is None  # no closest recorded
    _run2, (p3,) = _new_run(db, [{"members": ["BD000015"], "evidence": {
        "between_distance": {"nearest_candidate": 0, "distance": 0.05, "member": "BD000015"}}}])
    assert db.proposal_detail(p3).closest_candidate is None  # only itself holds it
    # the candidates sharing its BIN, the same way: by the specimens recorded, each held once
    _run3, (p4, p5) = _new_run(db, [{"members": ["BD000018"], "evidence": {"bin": {
        "dominant": "BOLD:X", "shared_with": [1, 2, 3], "shared_members": ["BD000021", "BD000000", "BD000003"]}}},
        {"members": ["BD000021"]}])
    assert [p.id for p in db.proposal_detail(p4).bin_holders] == [p5, p0]  # its own run's first
    # a specimen two runs proposed: the closest candidate is the one of this proposal's own run
    _run4, (p6, p7) = _new_run(db, [{"members": ["BD000024"], "evidence": near}, {"members": ["BD000009"]}])
    assert db.proposal_detail(p6).closest_candidate.id == p7 and db.proposal_detail(p0).closest_candidate.id == p2


def test_moving_an_accepted_candidate_moves_its_taxon_and_undo_puts_it_back(db: Database) -> None:
    _run, (pid,) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)}])
    acc = db.accept(pid, 1, reviewer="ana")
    (campylomyza,) = db.taxonomy().find("Campylomyza", "genus")
    mv = db.move(pid, acc.versions[pid], "Campylomyza", reviewer="ana")
    graph = db.taxonomy()
    assert graph.node(acc.taxon_id).parent_id == campylomyza.id
    assert [n.name for n in graph.lineage(acc.taxon_id)][:3] == ["Diptera", "Cecidomyiidae", "Campylomyza"]
    db.undo(mv.review_id, reviewer="ana")
    graph = db.taxonomy()
    assert [n.name for n in graph.lineage(acc.taxon_id)][:3] == ["Diptera", "Phoridae", "Megaselia"]
    assert db.proposal(pid).parent_name == "Megaselia" and check_database(db.path).ok


def test_known_species_offers_the_nearest_genus_first_labelled_with_genus_and_family(db: Database) -> None:
    """What "assign to a known species" lists: accepted species matching the search, the named one first,
    then its genus, each labelled with its parent and grandparent ("unassigned …" fillers skipped)."""
    from biodiscover.storage.db.taxonomy import register_lineages

    lineages = [{"order": "Diptera", "family": "Phoridae", "genus": "Megaselia", "species": "Megaselia scalaris"},
                {"order": "Diptera", "family": "Phoridae", "genus": "Megaselia", "species": "Megaselia abdita"},
                {"order": "Diptera", "family": "Phoridae", "genus": "Abiomyia", "species": "Abiomyia zeta"},
                {"order": "Diptera", "family": "unassigned Diptera", "genus": "Zyx", "species": "Zyx ana"}]
    assert register_lineages(db, lineages + [("Diptera", "Phoridae", "Megaselia")], source="test") == 5
    assert register_lineages(db, [], source="test") == 0
    assert [name for _, name in db.known_species()] == [  # higher rank first, as the headers read
        "Abiomyia zeta  (Phoridae › Abiomyia)", "Megaselia abdita  (Phoridae › Megaselia)",
        "Megaselia scalaris  (Phoridae › Megaselia)", "Zyx ana  (Diptera › Zyx)"]
    near = [name.split("  ")[0] for _, name in db.known_species(near="Megaselia scalaris")]
    assert near == ["Megaselia scalaris", "Megaselia abdita", "Abiomyia zeta", "Zyx ana"]
    assert [name.split("  ")[0] for _, name in db.known_species("SELIA", limit=1, near="Megaselia abdita")] == [
        "Megaselia abdita"]
    assert db.known_species("no such species") == []


def test_the_taxonomy_graph_lists_roots_children_and_provisional_taxa(db: Database) -> None:
    _run, (pid,) = _new_run(db, [{"members": ["BD000000"], "parent_lineage": _lineage(0)}])
    acc = db.accept(pid, 1, reviewer="ana")
    graph = db.taxonomy()
    assert [n.name for n in graph.roots()] == ["Diptera", "Hymenoptera"]
    (diptera,) = graph.find("Diptera", "order")
    assert [n.name for n in graph.children(diptera.id)] == ["Cecidomyiidae", "Phoridae"]
    assert len(graph) == 2 + 3 + 3 + 1  # two orders, three families, three genera, the accepted candidate
    node = graph.node(acc.taxon_id)
    assert node.provisional and not diptera.provisional and node.proposal_id == pid
    assert acc.taxon_id in graph and -5 not in graph
    with pytest.raises(KeyError, match="no taxon -5"):
        graph.node(-5)


# -- SQLite failures as one user error: damage, permissions, a lock, a full disk told apart (issue 12 item 8) ------

def _sqlite_error(path: Path, *statements: str, timeout: float = 5.0) -> sqlite3.Error:
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError(f"no SQLite error from {statements}")


def test_a_lock_a_full_disk_damage_and_a_bug_get_their_own_message(tmp_path: Path) -> None:
    """Real SQLite errors, each classified: the advice differs (wait, free space, restore, report a bug)."""
    from biodiscover.storage.db.engine import sqlite_error_kind
    from biodiscover.storage.db.integrity import explain_sqlite_error

    path = tmp_path / "bd.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x BLOB)").connection.commit()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    busy = _sqlite_error(path, "INSERT INTO t VALUES (1)", timeout=0)
    holder.rollback()
    holder.close()
    assert sqlite_error_kind(busy) == "busy"
    assert str(explain_sqlite_error(path, busy, "write to")) == (
        f"{path}: the database is locked by another process; try again when it finishes")

    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    full = _sqlite_error(path, f"PRAGMA max_page_count = {pages}", "INSERT INTO t VALUES (zeroblob(1000000))")
    assert sqlite_error_kind(full) == "full"
    assert str(explain_sqlite_error(path, full, "write to")) == (
        f"{path}: cannot write to the database: the disk is full")

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all " * 200)
    damaged = _sqlite_error(junk, "SELECT * FROM sqlite_master")
    assert sqlite_error_kind(damaged) == "damaged"
    msg = str(explain_sqlite_error(junk, damaged, "read"))
    assert "the database is damaged" in msg and f"biodiscover db check --db {junk}" in msg

    bug = _sqlite_error(path, "SELECT * FROM no_such_table")
    assert sqlite_error_kind(bug) is None
    assert str(explain_sqlite_error(path, bug, "read")) == (
        f"{path}: cannot read the database (no such table: no_such_table)")

    # a failing disk cannot be made on demand: SQLite's own message for it, as SQLite raises it
    io = sqlite3.OperationalError("disk I/O error")
    assert sqlite_error_kind(io) == "io"
    assert str(explain_sqlite_error(path, io, "write to")) == (
        f"{path}: cannot write to the database: input/output error from the disk (disk I/O error)")


PERMISSION_PROBE = """
import json, sqlite3, sys
from pathlib import Path
from biodiscover.storage.db.engine import sqlite_error_kind
from biodiscover.storage.db.integrity import explain_sqlite_error
out = {}
for case in sys.argv[1:]:
    path = Path(case) / "bd.sqlite"
    try:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version").fetchone()
        conn.execute("CREATE TABLE written_by_nobody (x)")
        conn.commit()
        conn.close()
        out[case] = "written"
    except sqlite3.Error as exc:
        out[case] = [sqlite_error_kind(exc), str(explain_sqlite_error(path, exc, "write to"))]
print(json.dumps(out))
"""


def test_permission_problems_name_the_file_the_folder_or_the_side_files_not_damage(
        open_tmp: Path, unprivileged_prefix: tuple[str, ...]) -> None:
    """As a user without write permission (never skipped as root): which of the file, its folder or the
    -wal/-shm files beside it is in the way, and that the file is not damaged (so no restore from a backup)."""
    import json
    import subprocess
    import sys

    modes = {"unreadable": (0o755, 0o600), "ro-folder": (0o555, 0o666), "ro-file": (0o777, 0o644),
             "side-files": (0o777, 0o666)}  # (folder, file)
    cases = {}
    for name, (_, file_mode) in modes.items():
        folder = open_tmp / name
        folder.mkdir()
        conn = sqlite3.connect(folder / "bd.sqlite")
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
        (folder / "bd.sqlite").chmod(file_mode)
        cases[name] = folder
    # another user's live WAL session: its -wal and -shm stay while its connection is open
    owner = sqlite3.connect(cases["side-files"] / "bd.sqlite")
    owner.execute("PRAGMA journal_mode = wal")
    owner.execute("INSERT INTO t VALUES (1)")
    owner.commit()
    for side in ("bd.sqlite-wal", "bd.sqlite-shm"):
        (cases["side-files"] / side).chmod(0o600)
    if unprivileged_prefix and "--reuid=65534" not in unprivileged_prefix:
        # the prefix only drops root's capabilities (uid 65534 cannot reach this venv, e.g. under a 0700
        # clone folder): the probe stays uid 0, the owner, for whom 0o644 is writable; hand the files to
        # another user so the modes stand in the way as they would for a colleague's database
        for folder in cases.values():
            for p in [folder, *folder.iterdir()]:
                os.chown(p, 65534, 65534)
    for name, (folder_mode, _) in modes.items():
        cases[name].chmod(folder_mode)
    before = {n: (f / "bd.sqlite").read_bytes() for n, f in cases.items()}
    try:
        res = subprocess.run([*unprivileged_prefix, sys.executable, "-c", PERMISSION_PROBE,
                              *(str(f) for f in cases.values())], capture_output=True, text=True, cwd=open_tmp,
                             env={**os.environ, "HOME": str(open_tmp / ".home"),
                                  "XDG_CONFIG_HOME": str(open_tmp / ".home" / ".config")})
    finally:
        owner.close()
    assert res.returncode == 0, res.stderr
    out = {Path(k).name: v for k, v in json.loads(res.stdout).items()}
    for name, (kind, msg) in out.items():
        assert kind == "permission", (name, msg)
        assert msg.startswith(f"{cases[name] / 'bd.sqlite'}: cannot write to the database: ")
        assert "(permissions, not damage: the file was left untouched; SQLite said: " in msg
    if unprivileged_prefix and "--reuid=65534" in unprivileged_prefix:  # as another user: which part is named
        assert "the file is not readable by you" in out["unreadable"][1]
        assert f"its folder {cases['ro-folder']} is not writable" in out["ro-folder"][1]
        assert "the file is read-only for you" in out["ro-file"][1]
        assert "bd.sqlite-wal, bd.sqlite-shm beside it belongs to another user" in out["side-files"][1]
    assert {n: (f / "bd.sqlite").read_bytes() for n, f in cases.items()}["ro-file"] == before["ro-file"]


def test_the_header_check_catches_a_stub_a_bad_page_size_and_a_foreign_file(tmp_path: Path) -> None:
    from biodiscover.storage.db.integrity import page_problems, quick_problems

    stub = tmp_path / "stub.sqlite"
    stub.write_bytes(b"SQLite format 3\x00" + b"\x00" * 40)
    assert page_problems(stub) == ["the file is 56 bytes, shorter than a SQLite header"]
    (tmp_path / "empty.sqlite").write_bytes(b"")
    assert page_problems(tmp_path / "empty.sqlite") == []  # an empty file is a new database, not a damaged one
    good = plain_sqlite_file(tmp_path / "good.sqlite")
    head = bytearray(good.read_bytes())
    odd = tmp_path / "odd.sqlite"
    odd.write_bytes(bytes(head[:16]) + (1000).to_bytes(2, "big") + bytes(head[18:]))
    assert page_problems(odd) == ["the header's page size 1000 is not a power of two between 512 and 65536"]
    tiny = tmp_path / "tiny.sqlite"
    tiny.write_bytes(bytes(head[:16]) + (256).to_bytes(2, "big") + bytes(head[18:]))
    assert "page size 256 is not" in page_problems(tiny)[0]
    big = tmp_path / "big.sqlite"  # 1 stands for 65536: a whole page of that size is sane
    big.write_bytes(bytes(head[:16]) + (1).to_bytes(2, "big") + bytes(head[18:28]) + (1).to_bytes(4, "big")
                    + bytes(head[32:100]) + b"\x00" * (65536 - 100))
    assert page_problems(big) == []
    assert page_problems(good) == [] and quick_problems(good) == []
    foreign = tmp_path / "foreign.sqlite"
    foreign.write_bytes(b"x" * 16 + (4096).to_bytes(2, "big") + b"\x00" * (4096 - 18))
    problems = quick_problems(foreign)
    assert len(problems) == 1 and problems[0].startswith("the file cannot be read: ")
    with pytest.raises(DatabaseError, match="permissions, not damage"):
        quick_problems(tmp_path / "missing.sqlite")


def test_the_handle_names_its_file_and_counts_the_review_log(db: Database) -> None:
    assert repr(db) == f"Database({str(db.path)!r})"
    assert db.count_reviews() == 0
    _run, (pid,) = _new_run(db, [{"members": ["BD000000"], "parent_lineage": _lineage(0)}])
    db.note(pid, "one", reviewer="ana")
    res = db.reject(pid, 1, reviewer="ana")
    db.undo(res.review_id, reviewer="ana")
    assert db.count_reviews() == 3


def test_check_reports_an_old_schema_a_broken_index_and_rows_breaking_a_foreign_key(tmp_path: Path) -> None:
    """``db check`` on three kinds of damage it must name (each left by a tool outside biodiscover)."""
    path = tmp_path / "bd.sqlite"
    with Database.create(path) as handle:
        handle.ingest(make_specimens(12), collection="c", backup=False)
        _new_run(handle, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)}])
    assert check_database(path).ok
    raw = sqlite3.connect(path)  # foreign keys are off in a plain connection, as in any other tool
    raw.execute("DELETE FROM runs")
    raw.commit()
    index = raw.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'specimens' "
                        "AND sql IS NOT NULL ORDER BY name").fetchone()
    raw.execute("PRAGMA writable_schema = ON")  # an index whose definition no longer matches its entries
    raw.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?",
                (f"CREATE INDEX {index[0]} ON specimens(country)", index[0]))
    raw.execute("PRAGMA writable_schema = OFF")
    raw.execute("UPDATE alembic_version SET version_num = '0003'")
    raw.commit()
    (orphan,) = raw.execute("SELECT rowid FROM proposals").fetchone()  # the one proposal, its run deleted
    raw.close()
    problems = check_database(path).problems
    assert problems[0] == "schema revision '0003' is not the current '0006' (run db upgrade)"
    assert any(p.startswith("integrity: ") and index[0] in p for p in problems), problems
    fk = [p for p in problems if "break a foreign key" in p]
    assert fk == [f"1 rows break a foreign key (first: table proposals rowid {orphan} → runs)"]


def test_a_runs_process_is_alive_only_while_it_exists_and_finishing_takes_only_end_statuses(db: Database) -> None:
    import subprocess
    import sys

    from biodiscover.storage.db.runs import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert pid_alive(os.getpid()) and not pid_alive(child.pid)
    assert not pid_alive(None) and not pid_alive(0)
    first = db.start_run("triage", {}, "sha256:m", backup=False)
    second = db.start_run("triage", {}, "sha256:m", backup=False)
    db.finish_run(first, "completed", message="done", result={"n": 3})
    assert db.latest_run("triage").id == second
    done = db.latest_run("triage", status="completed")
    assert (done.id, done.message, done.result) == (first, "done", {"n": 3})
    assert db.latest_run("triage", status="failed") is None
    other = db.start_run("build-reference", {}, "sha256:m", backup=False)  # a newer run of another kind
    assert (db.latest_run("triage").id, db.latest_run().id) == (second, other)
    for bad in ("running", "finished"):
        with pytest.raises(ValueError, match="finish_run status must be one of"):
            db.finish_run(second, bad)
    with pytest.raises(DatabaseError, match="no run 999"):
        db.finish_run(999, "failed")
    assert db.run_progress(second).status == "running"


def test_a_backup_of_a_damaged_database_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    """A backup is only stored when its copy passes integrity_check: a source whose copy fails the check gives the
    damaged-database error, a file that is not SQLite is refused as such; neither leaves a backup or a .partial."""
    from biodiscover.storage.db.backup import backup_database

    path = tmp_path / "bd.sqlite"
    with Database.create(path) as handle:
        handle.ingest(make_specimens(12), collection="c", backup=False)
    raw = sqlite3.connect(path)
    index = raw.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'specimens' "
                        "AND sql IS NOT NULL ORDER BY name").fetchone()[0]
    raw.execute("PRAGMA writable_schema = ON")
    raw.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?", (f"CREATE INDEX {index} ON specimens(country)",
                                                                    index))
    raw.commit()
    raw.close()
    out = tmp_path / "backups"
    with pytest.raises(DatabaseError, match=r"the database is damaged \(its copy fails integrity_check: .*"
                                            r"no backup was stored"):
        backup_database(path, out / "copy.sqlite")
    assert list(out.iterdir()) == []
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00" * 8192)
    with pytest.raises(DatabaseError, match=r"junk\.sqlite: not a biodiscover database \(not a SQLite database"):
        backup_database(junk, out / "junk-copy.sqlite")
    assert list(out.iterdir()) == []


def test_an_ingest_into_a_database_holding_data_is_backed_up_first_by_default(tmp_path: Path) -> None:
    """Triage ingests without naming ``backup``: the default must take the verified pre-ingest backup of a
    database that already holds data (an empty one has nothing to save). (Written after the seed-4817 mutation
    sample, for its survivor at ingest.py:167; not re-scored into that sample.)"""
    from biodiscover.storage.db.integrity import quick_problems

    with Database.create(tmp_path / "bd.sqlite") as handle:
        first = handle.ingest(make_specimens(12), collection="c")
        assert first.backup is None  # nothing worth saving yet
        second = handle.ingest(make_specimens(3, start=12), collection="c")
        assert second.backup is not None and second.backup.is_file()
        assert "pre-ingest" in second.backup.name and quick_problems(second.backup) == []
        copy = sqlite3.connect(second.backup)
        assert copy.execute("SELECT count(*) FROM specimens").fetchone()[0] == 12  # taken before the 3 new
        copy.close()


# -- paths no other test walks (found from the coverage of the mutation pool, not from any mutant) ----------
def test_a_failed_creation_leaves_no_half_made_database_and_a_bug_keeps_its_traceback(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    from biodiscover.storage.db import database as database_module

    def disk_fails(engine, target: str = "head") -> None:
        with engine.connect() as conn:  # SQLite has written the file (and its -wal) by then
            conn.exec_driver_sql("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(database_module, "run_migrations", disk_fails)
    new = tmp_path / "new" / "bd.sqlite"
    new.parent.mkdir()
    with pytest.raises(DatabaseError, match=r"bd\.sqlite: cannot create the database \(disk I/O error\)$"):
        Database.create(new)
    assert list(new.parent.iterdir()) == []  # no database, -wal or -shm left for the next open to trip on
    mine = tmp_path / "mine" / "bd.sqlite"  # an empty file the user made is theirs: kept
    mine.parent.mkdir()
    mine.touch()
    with pytest.raises(DatabaseError, match="cannot create the database"):
        Database.create(mine)
    assert mine.is_file()

    def bug(engine, target: str = "head") -> None:
        raise RuntimeError("a bug in a migration")

    monkeypatch.setattr(database_module, "run_migrations", bug)
    with pytest.raises(RuntimeError, match="a bug in a migration"):
        Database.create(tmp_path / "other.sqlite")


def test_sqlite_failures_a_user_can_act_on_are_one_message_and_bugs_stay_bugs(db: Database) -> None:
    for raised, kind in ((sqlite3.OperationalError("database is locked"), "busy"),
                         (sqlite3.OperationalError("disk I/O error"), "io"),
                         (sqlite3.DatabaseError("database disk image is malformed"), "damaged")):
        with pytest.raises(DatabaseError) as err:
            with db._read():
                raise raised
        assert str(db.path) in str(err.value), (kind, err.value)
    for bug in (sqlite3.IntegrityError("UNIQUE constraint failed: specimens.id"),
                sqlite3.ProgrammingError("Cannot operate on a closed cursor"),
                sqlite3.OperationalError("no such column: nope")):
        with pytest.raises(type(bug)) as caught:
            with db._read():
                raise bug
        assert caught.value is bug  # unchanged: a traceback for a bug, not advice to a user


def test_an_ingest_another_process_completes_meanwhile_is_skipped_not_doubled(tmp_path: Path) -> None:
    """Between the 'already ingested?' read and the start of the ingest, another process finishes the same
    input: the start sees it (in the write transaction) and skips; nothing is stored twice."""
    path = tmp_path / "bd.sqlite"
    with Database.create(path) as db, Database.open(path) as other:
        db.ingest(make_specimens(2, start=100), collection="plate", backup=False)
        finished: list[int | None] = []

        def another_process_meanwhile(reason: str) -> None:
            report = other.ingest(make_specimens(12), collection="plate", checksum="sha256:same", backup=False)
            finished.append(report.ingest_id)

        db._auto_backup = another_process_meanwhile
        report = db.ingest(make_specimens(12), collection="plate", checksum="sha256:same")
        assert report.skipped and (report.total, report.new, report.unchanged) == (12, 0, 12)
        assert report.ingest_id == finished[0] is not None
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM ingests WHERE checksum = 'sha256:same'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM ingests WHERE status != 'completed'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM specimens").fetchone()[0] == 14


def test_pid_alive_tells_live_gone_and_unsignallable_processes_apart(monkeypatch,
                                                                     unprivileged_prefix: tuple[str, ...]) -> None:
    import errno
    import subprocess
    import sys

    from biodiscover.storage.db.runs import pid_alive

    assert pid_alive(os.getpid()) and not pid_alive(None) and not pid_alive(0)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not pid_alive(gone.pid)
    # a process we may not signal (pid 1, root's, asked by an unprivileged user) still exists
    res = subprocess.run([*unprivileged_prefix, sys.executable, "-c",
                          "import sys\nfrom biodiscover.storage.db.runs import pid_alive\n"
                          "sys.exit(0 if pid_alive(1) else 7)"], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr

    def probe_fails(pid: int, sig: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "kill", probe_fails)
    assert not pid_alive(12345)  # a probe that fails for another reason does not make a process up


def test_a_backup_that_cannot_be_renamed_into_place_is_named_and_leaves_no_partial_copy(db: Database,
                                                                                        monkeypatch) -> None:
    import errno

    def disk_full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    dest = db.path.parent / "keep" / "copy.sqlite"
    before = count_specimens(db.path)
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(DatabaseError, match=r"copy\.sqlite: cannot write the backup \(No space left on device\)$"):
        db.backup(dest)
    monkeypatch.undo()
    assert list(dest.parent.iterdir()) == []  # no .partial copy a later prune could take for a backup
    assert count_specimens(db.path) == before and check_database(db.path).ok


def test_a_pooled_connection_serves_another_thread_and_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    """The batch's heartbeat poller reads on its own thread from the pool the main thread filled; and a
    transaction that fails half-way leaves none of its rows (the explicit BEGIN: pysqlite is in autocommit)."""
    import threading

    from biodiscover.storage.db.engine import make_engine

    engine = make_engine(tmp_path / "t.sqlite")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with engine.connect() as c:
                c.exec_driver_sql("SELECT count(*) FROM t").scalar()
        except Exception as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    worker = threading.Thread(target=read)
    worker.start()
    worker.join()
    assert errors == []
    with pytest.raises(RuntimeError, match="half-way"):
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            raise RuntimeError("half-way")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    engine.dispose()


def test_a_runs_progress_carries_its_parameters(db: Database) -> None:
    run = db.start_run("triage", {"threshold": 0.9, "k": 8}, "sha256:abc", total=3, backup=False)
    assert db.run_progress(run).parameters == {"threshold": 0.9, "k": 8}
    bare = db.start_run("evaluate", None, backup=False)
    assert db.run_progress(bare).parameters == {}


def test_a_permission_error_with_no_side_files_does_not_blame_them(tmp_path: Path) -> None:
    """-wal/-shm files that do not exist are not "another user's": the message says the OS refused."""
    from biodiscover.storage.db.integrity import explain_sqlite_error

    path = tmp_path / "bd.sqlite"
    Database.create(path).close()
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)
    err = explain_sqlite_error(path, sqlite3.OperationalError("attempt to write a readonly database"), "write to")
    assert "the operating system refused access" in str(err) and "another user" not in str(err), err


def test_an_image_folder_ingest_that_completes_marks_the_killed_one_of_the_same_folder_interrupted(
        tmp_path: Path) -> None:
    """With a source but no file checksum (an image folder), the re-run that completes clears the
    "did not finish" warning of the earlier ingest of that folder — and only of that folder."""
    def dies_after_two(specimens: list[Specimen]):
        yield from specimens[:2]
        raise KeyboardInterrupt  # a Ctrl-C mid-ingest: the ingest row stays "running"

    with Database.create(tmp_path / "bd.sqlite") as db:
        for source in ("photos-a", "photos-b"):
            with pytest.raises(KeyboardInterrupt):
                db.ingest(dies_after_two(make_specimens(6)), collection="c", source=source, chunk_size=1,
                          backup=False)
        with pytest.raises(KeyboardInterrupt):
            db.ingest(dies_after_two(make_specimens(6)), collection="c", chunk_size=1, backup=False)
        db.ingest(make_specimens(6), collection="c", source="photos-a", backup=False)
        path = db.path
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT source, status FROM ingests ORDER BY id").fetchall()
    assert rows == [("photos-a", "interrupted"), ("photos-b", "running"), (None, "running"),
                    ("photos-a", "completed")]


def test_a_genus_name_under_two_unrelated_families_stays_two_taxa(tmp_path: Path) -> None:
    """A homonym (one genus name in two families of two orders) is two taxa, never one merged taxon;
    records that agree, but one names fewer ranks, share theirs (the test above)."""
    with Database.create(tmp_path / "bd.sqlite") as db:
        db.ingest([Specimen("A", order="Diptera", family="Phoridae", genus="Homonyma"),
                   Specimen("B", order="Coleoptera", family="Carabidae", genus="Homonyma"),
                   Specimen("C", order="Diptera", family="Phoridae", genus="Homonyma")],
                  collection="c", backup=False, chunk_size=1)
        graph = db.taxonomy()
        found = graph.find("Homonyma", "genus")
        assert sorted(graph.lineage(t.id)[1].name for t in found) == ["Carabidae", "Phoridae"]


def test_an_assigned_candidate_sits_under_the_species_genus_and_a_detail_lists_its_lineage(db: Database) -> None:
    register_lineages(db, [{**_lineage(0), "species": "Megaselia scalaris"}], source="test")
    genus = db.taxonomy().find("Megaselia", "genus")[0]
    _, (p0, p1) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": {"genus": "Megaselia"}},
                                {"members": ["BD000006"], "parent_lineage": {"genus": "Megaselia"}}])
    db.assign(p0, 1, "Megaselia scalaris", reviewer="ana")
    s = db.proposal(p0)
    assert (s.parent_taxon_id, s.parent_rank, s.parent_name) == (genus.id, "genus", "Megaselia")
    assert db.proposal_detail(p1).parent_lineage == [("order", "Diptera"), ("family", "Phoridae"),
                                                     ("genus", "Megaselia")]  # higher to lower


def test_a_review_logged_with_fewer_fields_by_an_older_version_can_still_be_undone(db: Database) -> None:
    """Undo compares only what the review recorded: a log row lacking a field added since is not "stale"."""
    import json

    _, (p0,) = _new_run(db, [{"members": ["BD000000"], "parent_lineage": {"genus": "Megaselia"}}])
    rejected = db.reject(p0, expected_version=1, reviewer="ana")
    with sqlite3.connect(db.path) as con:
        before, after = con.execute("SELECT before, after FROM reviews WHERE id = ?",
                                    (rejected.review_id,)).fetchone()
        before, after = json.loads(before), json.loads(after)
        for snap in (before, after):
            for field in ("nearest_species", "nearest_identity"):
                del snap["proposals"][str(p0)][field]
        con.execute("UPDATE reviews SET before = ?, after = ? WHERE id = ?",
                    (json.dumps(before), json.dumps(after), rejected.review_id))
    db.undo(rejected.review_id, reviewer="ana")
    assert db.proposal(p0).status == "pending"


def test_a_bulk_job_keeps_exactly_three_automatic_backups_of_its_reason(db: Database) -> None:
    taken = [db.start_run("triage", {}, backup=True) for _ in range(4)]
    assert len(taken) == 4
    kept = sorted(p.name for p in (db.path.parent / f"{db.path.name}.backups").iterdir()
                  if "-pre-run-" in p.name)
    assert len(kept) == 3, kept


def test_the_queue_pages_exactly_and_the_log_keeps_evidence_only_where_a_review_changes_it(db: Database) -> None:
    _, (p0, p1, p2) = _new_run(db, [{"members": [f"BD00000{i}"], "parent_lineage": {"genus": "Megaselia"}}
                                    for i in range(3)])
    assert db.proposal_queue(limit=0) == ([], 3)
    assert [s.id for s in db.proposal_queue(limit=1, offset=1)[0]] == [p1]
    db.note(p0, "older than the limit reaches", reviewer="ana")
    db.reject(p2, expected_version=1, reviewer="ana")
    db.merge([p0, p1], {p0: 1, p1: 1}, reviewer="ana")
    assert len(db.reviews()) == 3
    merged, rejected = db.reviews(limit=2)  # the newest two of three
    assert (merged["action"], rejected["action"]) == ("merge", "reject")
    assert all("evidence" in s for s in merged["after"]["proposals"].values() if s is not None)
    assert "evidence" not in rejected["after"]["proposals"][str(p2)]


def test_a_candidate_proposed_without_any_parent_is_unplaced(db: Database) -> None:
    _, (pid,) = _new_run(db, [{"members": ["BD000001"]}])
    s = db.proposal(pid)
    assert (s.parent_taxon_id, s.parent_rank, s.parent_name) == (None, None, None)


def test_a_migration_that_leaves_broken_foreign_keys_is_refused_naming_the_first(tmp_path: Path) -> None:
    from biodiscover.storage.db.engine import make_engine
    from biodiscover.storage.db.schema import run_migrations

    path = tmp_path / "old.sqlite"
    engine = make_engine(path)
    run_migrations(engine, "0001")
    engine.dispose()
    with sqlite3.connect(path) as con:  # a row pointing at a collection that does not exist (foreign keys off)
        con.execute("INSERT INTO specimens (processid, version, current, record_hash, collection_id, ingest_id) "
                    "VALUES ('ORPHAN1', 1, 1, 'h', 99, 99)")
    engine = make_engine(path)
    with pytest.raises(DatabaseError, match=r"migration left \d+ foreign-key violations \(first: \('specimens', "):
        run_migrations(engine)
    engine.dispose()


def test_writing_a_runs_candidates_refreshes_its_heartbeat(db: Database) -> None:
    """A long write of candidates must not make a live run look stale (seed 5309's survivor proposals.py:291)."""
    run = db.start_run("triage", {}, backup=False)
    before = db.run_progress(run).heartbeat_at
    db.write_proposals(run, [{"members": ["BD000001"], "parent_lineage": {"genus": "Megaselia"}}])
    assert db.run_progress(run).heartbeat_at > before


def test_a_backup_is_one_self_contained_file_and_a_clean_skipped_reingest_reports_nothing_set_aside(
        db: Database, tmp_path: Path) -> None:
    """Seed 5309's survivors backup.py:82 (a backup keeping the WAL flag needs -wal/-shm files to be read) and
    ingest.py:193 (a skipped re-run of a clean file said one record was set aside); not re-scored."""
    dest = db.backup(tmp_path / "copy.sqlite")
    with sqlite3.connect(dest) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    plate = tmp_path / "plate.csv"
    plate.write_text("processid,dna_barcode\n" + "".join(f"Q{i}-24,{'ACGT' * 60}\n" for i in range(3)),
                     encoding="utf-8")
    first, _ = db.ingest_file(plate, collection="plate-2", backup=False)
    again, _ = db.ingest_file(plate, collection="plate-2", backup=False)
    assert (first.new, first.quarantined) == (3, 0)
    assert (again.skipped, again.quarantined, again.photos_set_aside) == (True, 0, 0)


def test_a_candidate_placed_by_parent_name_links_that_taxon_and_one_species_name_per_genus_is_accepted_once(
        db: Database) -> None:
    """Seed 5309's survivors proposals.py:170 (a parent given by name and rank linked no taxon) and
    reviews.py:302 (a second species of one name under one genus was not refused); not re-scored."""
    megaselia = db.taxonomy().find("Megaselia", "genus")[0]
    _, (p0, p1, p2) = _new_run(db, [
        {"members": ["BD000000"], "parent_name": "Megaselia", "parent_rank": "genus"},
        {"members": ["BD000003"], "parent_name": "Megaselia", "parent_rank": "genus"},
        {"members": ["BD000001"], "parent_name": "Campylomyza", "parent_rank": "genus"}])
    assert db.proposal(p0).parent_taxon_id == megaselia.id
    db.accept(p0, 1, "Megaselia nova", reviewer="ana")
    with pytest.raises(DatabaseError, match=r"as 'Megaselia nova': taxon \d+ already has that name under the same "):
        db.accept(p1, 1, "Megaselia nova", reviewer="ana")
    db.accept(p2, 1, "Megaselia nova", reviewer="ana")  # another genus: not the same parent, no clash


def test_no_rename_move_or_undo_makes_two_species_of_one_name_under_one_parent(db: Database) -> None:
    """Accept refused a second "Megaselia nova" under Megaselia; a rename, a move or an undo could still make one
    (the review UI's rename had no check). Each is refused whole: names, parents and versions stay as they were."""
    _, (p0, p1, p2) = _new_run(db, [
        {"members": ["BD000000"], "parent_name": "Megaselia", "parent_rank": "genus"},
        {"members": ["BD000003"], "parent_name": "Megaselia", "parent_rank": "genus"},
        {"members": ["BD000001"], "parent_name": "Campylomyza", "parent_rank": "genus"}])
    db.accept(p0, 1, "Megaselia nova", reviewer="ana")
    db.accept(p1, 1, "Megaselia alta", reviewer="ana")
    db.accept(p2, 1, "Megaselia nova", reviewer="ana")  # under Campylomyza: no clash
    before = {p: (db.proposal(p).provisional_name, db.proposal(p).parent_name, db.proposal(p).version)
              for p in (p0, p1, p2)}
    with pytest.raises(DatabaseError, match=r"cannot rename proposal \d+ to 'Megaselia nova': taxon \d+ already has "
                                            r"the name 'Megaselia nova' under the same parent"):
        db.rename(p1, 2, "Megaselia nova", reviewer="bo")
    with pytest.raises(DatabaseError, match=r"cannot move proposal \d+ under Megaselia: taxon \d+ already has"):
        db.move(p2, 2, "Megaselia", reviewer="bo")
    assert {p: (db.proposal(p).provisional_name, db.proposal(p).parent_name, db.proposal(p).version)
            for p in (p0, p1, p2)} == before
    assert sorted(t.name for t in db.taxonomy().find("Megaselia nova", "species")) == ["Megaselia nova"] * 2
    # an undo that would bring a name back where another species took it since
    renamed = db.rename(p0, 2, "Megaselia prima", reviewer="bo")
    db.rename(p1, 2, "Megaselia nova", reviewer="bo")  # the name is free now
    with pytest.raises(DatabaseError, match=rf"cannot undo review {renamed.review_id} \(rename\): taxon \d+ already "):
        db.undo(renamed.review_id, reviewer="bo")
    assert db.proposal(p0).provisional_name == "Megaselia prima"
    db.rename(p0, 3, "Megaselia tertia", reviewer="bo")  # another name is free


def test_a_message_about_many_rows_names_the_first_five_and_counts_them_all(db: Database) -> None:
    """A refused split and `db check`'s findings name at most five ids and count every one."""
    run, (pid,) = _new_run(db, [{"members": [f"BD{i:06d}" for i in range(4)], "parent_lineage": _lineage(0)}])
    with pytest.raises(DatabaseError) as caught:
        db.split(pid, 1, [f"ZZ{i}" for i in range(7)] + ["BD000000"], reviewer="ana")
    assert str(caught.value) == f"cannot split proposal {pid}: ZZ0, ZZ1, ZZ2, ZZ3, ZZ4 not among its members"
    runs = [run] + [db.start_run("triage", {"k": 8}, backup=False) for _ in range(6)]
    report = check_database(db.path)
    assert report.ok and report.warnings == [
        "7 runs still marked running (interrupted, or running now): " + ", ".join(str(r) for r in runs[:5])]
    conn = sqlite3.connect(db.path)
    conn.execute("UPDATE runs SET status = 'paused'")
    conn.commit()
    conn.close()
    report = check_database(db.path)
    assert not report.ok and report.warnings == []
    assert report.problems == [f"7 runs with an unknown status (e.g. {', '.join(str(r) for r in runs[:5])})"]


def test_ingest_refuses_a_users_file_as_quarantine_report_before_storing_anything(tmp_path: Path) -> None:
    """``Database.ingest(quarantine_file=...)`` is an API of its own (the CLI checks the path too): a user's
    file there must stop the ingest before its first commit, or the rows would be stored and the ingest
    marked done with its set-aside rows reported nowhere. The user's file stays as it was."""
    path = tmp_path / "bd.sqlite"
    Database.create(path).close()
    user_file = tmp_path / "notes.csv"
    user_file.write_bytes(b"my own notes\n")
    with Database.open(path) as handle, pytest.raises(InputError, match=r"notes\.csv: already exists and was not "
                                                                        r"written by biodiscover"):
        handle.ingest(make_specimens(5), collection="plate-1", backup=False, quarantine_file=user_file)
    assert count_specimens(path) == 0
    assert user_file.read_bytes() == b"my own notes\n"
    with Database.open(path) as handle:
        report = handle.ingest(make_specimens(5), collection="plate-1", backup=False)
    assert (report.skipped, report.new) == (False, 5) and count_specimens(path) == 5


def test_a_candidates_detail_lists_its_own_reviews_and_no_other_candidates(db: Database) -> None:
    """The detail screen's review list, like ``reviews(proposal_id)``, is one candidate's log: with two candidates
    reviewed, each shows exactly its own notes and decisions, in the order they were made."""
    _run, (a, b, c) = _new_run(db, [{"members": ["BD000000"], "parent_lineage": _lineage(0)},
                                    {"members": ["BD000001"], "parent_lineage": _lineage(1)},
                                    {"members": ["BD000002"], "parent_lineage": _lineage(2)}])
    db.note(a, "first on a", reviewer="ana")
    db.note(b, "only on b", reviewer="bo")
    db.note(a, "second on a", reviewer="ana")
    db.reject(b, 1, reviewer="bo")
    assert [(r["action"], r["note"], r["reviewer"]) for r in db.proposal_detail(a).reviews] == [
        ("note", "first on a", "ana"), ("note", "second on a", "ana")]
    assert [(r["action"], r["note"]) for r in db.proposal_detail(b).reviews] == [("note", "only on b"),
                                                                                   ("reject", None)]
    assert db.proposal_detail(c).reviews == []


def test_a_completed_run_is_matched_only_on_str_int_float_or_null_parameters(tmp_path: Path) -> None:
    """``find_completed_run`` compares values as JSON scalars in SQL; a bool (an int to Python, but ``true`` in
    JSON), a list or a dict cannot be compared that way and is refused, not matched against something else."""
    with Database.create(tmp_path / "bd.sqlite") as db:
        run = db.start_run("batch_item", {"k": 8, "f": 0.5, "name": "x", "flag": True}, backup=False)
        db.finish_run(run, "completed")
        assert db.find_completed_run("batch_item", {"k": 8, "f": 0.5, "name": "x"}).id == run
        assert db.find_completed_run("batch_item", {"k": 9}) is None
        for value in (True, False, ["x"], {"a": 1}, b"x"):
            with pytest.raises(ValueError, match="parameter 'flag': only str, int, float or None can be matched"):
                db.find_completed_run("batch_item", {"flag": value})


def test_a_file_is_skipped_only_when_the_same_collection_completed_it_and_progress_counts_every_record(
        tmp_path: Path) -> None:
    """The skip is keyed on collection *and* checksum (the module's promise): the same bytes ingested into another
    collection are a new ingest there, a file with other bytes is read, and a checksum given by the caller (no
    source file) is matched the same way. ``on_progress`` hears the running record count after each chunk."""
    src = tmp_path / "plate.csv"
    src.write_text("processid\nBD000000\n")
    seen: list[int] = []
    with Database.create(tmp_path / "bd.sqlite") as db:
        first = db.ingest(make_specimens(5), collection="plate", source=src, backup=False, chunk_size=2,
                          on_progress=seen.append)
        assert seen == [2, 4, 5] and not first.skipped
        other = db.ingest(make_specimens(5), collection="another plate", source=src, backup=False)
        assert not other.skipped and other.ingest_id != first.ingest_id and other.checksum == first.checksum
        assert (other.new, other.unchanged) == (0, 5)
        again = db.ingest(make_specimens(5), collection="another plate", source=src, backup=False)
        assert again.skipped and again.ingest_id == other.ingest_id
        src.write_text("processid\nBD000001\n")
        changed = db.ingest(make_specimens(6), collection="plate", source=src, backup=False)
        assert not changed.skipped and (changed.new, changed.unchanged) == (1, 5)
        given = db.ingest(make_specimens(2, start=40), collection="plate", checksum="sha256:given", backup=False)
        assert not given.skipped and given.checksum == "sha256:given" and given.new == 2
        repeat = db.ingest(make_specimens(2, start=40), collection="plate", checksum="sha256:given", backup=False)
        assert repeat.skipped and repeat.ingest_id == given.ingest_id
        elsewhere = db.ingest(make_specimens(2, start=40), collection="third", checksum="sha256:given", backup=False)
        assert not elsewhere.skipped and elsewhere.ingest_id > repeat.ingest_id
    assert count_specimens(tmp_path / "bd.sqlite") == 8


def test_the_known_species_pick_list_offers_at_most_200_and_a_near_genus_from_past_the_alphabetical_cut(
        db: Database) -> None:
    """The pick list is 200 entries by default; the near species' genus comes first even when its names sort
    past the first 200 (the search fetches four times the limit before ordering)."""
    from biodiscover.storage.db.taxonomy import register_lineages

    many = [{"order": "Diptera", "family": "Phoridae", "genus": "Aphiochaeta", "species": f"Aphiochaeta s{i:03d}"}
            for i in range(250)] + [{"order": "Diptera", "family": "Phoridae", "genus": "Megaselia",
                                     "species": "Megaselia scalaris"}]
    register_lineages(db, many, source="test")
    offered = [name.split("  ")[0] for _, name in db.known_species()]
    assert offered == [f"Aphiochaeta s{i:03d}" for i in range(200)]
    near = [name.split("  ")[0] for _, name in db.known_species(near="Megaselia scalaris")]
    assert near == ["Megaselia scalaris"] + [f"Aphiochaeta s{i:03d}" for i in range(199)]


def test_an_undone_acceptance_leaves_the_taxonomy_but_stays_on_record_as_rejected(db: Database) -> None:
    """Undoing an accept takes the provisional species out of the taxonomy every screen shows (``db.taxonomy()``);
    the row itself is kept, status ``rejected``, and only ``TaxonomyGraph.load(include_rejected=True)`` sees it."""
    from biodiscover.storage.db.taxonomy import TaxonomyGraph

    _run, (pid,) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": _lineage(0)}])
    accepted = db.accept(pid, 1, "Megaselia sp. BD-0001", reviewer="ana")
    (species,) = db.taxonomy().find("Megaselia sp. BD-0001", "species")
    assert species.id == accepted.taxon_id and species.status == "provisional" and species.id in db.taxonomy()
    db.undo(accepted.review_id, reviewer="ana")
    assert db.taxonomy().find("Megaselia sp. BD-0001") == [] and accepted.taxon_id not in db.taxonomy()
    everything = TaxonomyGraph.load(db, include_rejected=True)
    assert [(n.id, n.status) for n in everything.find("Megaselia sp. BD-0001")] == [(accepted.taxon_id, "rejected")]
    assert len(everything) == len(db.taxonomy()) + 1


def test_the_queue_unasked_is_the_first_50_live_candidates_oldest_first(db: Database) -> None:
    """``proposal_queue()`` with no argument is the review screen's first page: 50 candidates, lowest id first,
    out of a total that counts them all; the next page starts where it ended, and ``descending`` turns it."""
    _run, ids = _new_run(db, [{"members": [f"BD{i:06d}"], "parent_lineage": _lineage(i)} for i in range(55)])
    page, total = db.proposal_queue()
    assert total == 55 and [p.id for p in page] == ids[:50]
    assert [p.id for p in db.proposal_queue(offset=50)[0]] == ids[50:]
    assert [p.id for p in db.proposal_queue(descending=True)[0]] == ids[::-1][:50]


def test_a_run_started_on_a_database_holding_data_is_backed_up_first_by_default(db: Database) -> None:
    from biodiscover.storage.db.backup import list_backups

    assert list_backups(db.path) == []
    db.start_run("triage", {})
    (taken,) = list_backups(db.path)
    assert "-pre-run-" in taken.name


def test_a_read_only_connection_sees_what_is_still_in_the_write_ahead_log(tmp_path: Path) -> None:
    """``connect_readonly`` (``db check``, exports' checks) reads a live database as its writer left it, rows
    still in the ``-wal`` file included; only a caller that says the file is frozen (a backup) gets
    ``immutable``, which would ignore the log."""
    from urllib.parse import quote

    from biodiscover.storage.db.engine import connect_readonly, readonly_uri

    path = tmp_path / "bd.sqlite"
    with Database.create(path) as db:
        db.ingest(make_specimens(5), collection="c", backup=False)
        assert path.with_name("bd.sqlite-wal").stat().st_size > 0
        con = connect_readonly(path)
        try:
            assert con.execute("SELECT count(*) FROM specimens").fetchone() == (5,)
        finally:
            con.close()
    assert readonly_uri(path) == f"file:{quote(str(path.resolve()))}?mode=ro"
    assert readonly_uri(path, immutable=True) == f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"


def test_merging_candidates_keeps_every_member_also_one_not_stored_as_a_specimen(tmp_path: Path) -> None:
    """A merge keys members by processid: candidates written over processids that were never ingested (the API
    allows it; their specimen id is empty) merge into one holding all of them, each once."""
    with Database.create(tmp_path / "bd.sqlite") as db:
        run = db.start_run("triage", {}, backup=False)
        a, b = db.write_proposals(run, [{"members": [("X1", 0.9), ("X2", 0.8)], "parent_rank": "genus",
                                         "parent_name": "Megaselia"},
                                        {"members": [("X3", 0.7)], "parent_rank": "genus",
                                         "parent_name": "Megaselia"}])
        db.merge([a, b], {a: 1, b: 1}, reviewer="ana")
        merged = db.proposal(a)
        assert merged.size == 3
        assert sorted(m.processid for m in db.proposal_detail(a).members) == ["X1", "X2", "X3"]


def test_the_log_of_a_split_records_both_candidates_recomputed_evidence(db: Database) -> None:
    """A split changes the evidence of the candidate kept and gives the new one its own: the review log's after-state
    holds both (as a merge's does), so the record says what the reviewer's split produced."""
    _run, (p0,) = _new_run(db, [{"members": ["BD000000", "BD000003", "BD000006"], "parent_lineage": _lineage(0)}])
    stay = {"size": 2, "nearest_known": {"species": "Megaselia abdita", "identity": 0.93}}
    off = {"size": 1, "nearest_known": {"species": "Megaselia scalaris", "identity": 0.95}}
    s = db.split(p0, 1, ["BD000006"], reviewer="ana", evidence=(stay, off))
    (logged,) = db.reviews(p0, limit=1)
    after = logged["after"]["proposals"]
    assert after[str(p0)]["evidence"]["nearest_known"]["species"] == "Megaselia abdita"
    assert after[str(s.new_proposal_id)]["evidence"]["nearest_known"]["species"] == "Megaselia scalaris"


def test_a_run_is_stale_only_while_it_says_running_without_a_heartbeat(db: Database) -> None:
    """``RunProgress.stale``: a run left ``running`` whose last heartbeat is older than ``stale_after_s``;
    a finished run is never stale, however long ago it ended."""
    running = db.start_run("triage", {}, backup=False)
    done = db.start_run("triage", {}, backup=False)
    db.finish_run(done, "completed")
    assert (db.run_progress(running).stale, db.run_progress(done).stale) == (False, False)
    db.stale_after_s = 0.0  # every heartbeat is now too old
    assert (db.run_progress(running).stale, db.run_progress(done).stale) == (True, False)


def test_a_later_candidate_is_assigned_to_an_accepted_new_species_whose_accept_then_cannot_be_undone_under_it(
        db: Database) -> None:
    """The demo's review met it: a fourth specimen of an accepted candidate's species came as a candidate of its
    own, and nothing could add it to the accepted one. "Assign" offers the accepted provisional species too; and
    the accept that made that species cannot be undone while another candidate is assigned to it (its specimens
    would be named as a species that no longer is): the assignment is undone first, then the accept."""
    register_lineages(db, [{**_lineage(0), "species": "Megaselia scalaris"}], source="test")
    _, (p0, p1) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": {"genus": "Megaselia"}},
                                {"members": ["BD000006"], "parent_lineage": {"genus": "Megaselia"}}])
    accepted = db.accept(p0, 1, reviewer="ana", name="Megaselia sp. BD-0001")
    offered = [name.split("  ")[0] for _, name in db.known_species(near="Megaselia scalaris")]
    assert offered == ["Megaselia scalaris", "Megaselia sp. BD-0001"]
    assigned = db.assign(p1, 1, "Megaselia sp. BD-0001", reviewer="bo")
    assert (db.proposal(p1).status, db.proposal(p1).taxon_id) == ("assigned", accepted.taxon_id)
    with pytest.raises(StaleProposalError, match=f"proposal {p1} was assigned to Megaselia sp. BD-0001 since"):
        db.undo(accepted.review_id, reviewer="ana")
    assert db.proposal(p0).status == "accepted"  # refused whole: nothing moved
    db.undo(assigned.review_id, reviewer="bo")
    db.undo(accepted.review_id, reviewer="ana")
    assert db.proposal(p0).status == "pending" and db.proposal(p1).status == "pending"
    assert [name.split("  ")[0] for _, name in db.known_species()] == ["Megaselia scalaris"]  # rejected: not offered


def test_assigning_to_a_known_species_checks_the_version_and_the_status_like_every_review(db: Database) -> None:
    """``assign`` is optimistic like accept and reject: a reviewer who saw an older version is refused (another
    reviewer's decision is never overwritten), and a candidate already decided must be undone first; the
    proposal is untouched and nothing is logged."""
    register_lineages(db, [{**_lineage(0), "species": "Megaselia scalaris"}], source="test")
    _, (p0, p1) = _new_run(db, [{"members": ["BD000000", "BD000003"], "parent_lineage": {"genus": "Megaselia"}},
                                {"members": ["BD000006"], "parent_lineage": {"genus": "Megaselia"}}])
    db.reject(p1, 1, reviewer="bo")
    with pytest.raises(StaleProposalError, match="you saw version 1, it is now version 2"):
        db.assign(p1, 1, "Megaselia scalaris", reviewer="ana")
    with pytest.raises(DatabaseError, match=f"cannot assign proposal {p1}: it is rejected"):
        db.assign(p1, 2, "Megaselia scalaris", reviewer="ana")
    with pytest.raises(DatabaseError, match="no proposal 999"):
        db.assign(999, 1, "Megaselia scalaris", reviewer="ana")
    assert (db.proposal(p1).status, db.proposal(p1).version) == ("rejected", 2)
    assert [r["action"] for r in db.reviews(p1)] == ["reject"]
    db.assign(p0, 1, "Megaselia scalaris", reviewer="ana")
    assert (db.proposal(p0).status, db.proposal(p0).version) == ("assigned", 2)


def test_a_reviewers_assignment_acceptance_move_and_rename_survive_a_re_triage(db: Database) -> None:
    """A third real-plate review: three *Aedes aegypti* a reviewer assigned came back from the next triage of
    the same plate as a new pending candidate, and a fly moved from "Unplaced" to Diptera came back unplaced.
    A new proposal wholly inside an assigned (or accepted) one is that species, assigned to it and never
    queued; one wholly inside a pending candidate a reviewer moved or renamed keeps that placement and name.
    An undone move is not carried, nor is anything to a proposal that takes members from two candidates."""
    register_lineages(db, [{**_lineage(0), "species": "Megaselia scalaris"}], source="reference")
    _run, (assigned, accepted, moved, undone, plain, half) = _new_run(db, [
        {"members": ["BD000000", "BD000001"], "parent_lineage": _lineage(0)},
        {"members": ["BD000002", "BD000003"], "parent_lineage": _lineage(0)},
        {"members": ["BD000004", "BD000005"], "parent_lineage": {"order": _lineage(0)["order"]}},
        {"members": ["BD000006", "BD000007"], "parent_lineage": {"order": _lineage(0)["order"]}},
        {"members": ["BD000008", "BD000009"], "parent_lineage": _lineage(1)},
        {"members": ["BD000010", "BD000011"], "parent_lineage": _lineage(1)}])
    db.assign(assigned, 1, "Megaselia scalaris", reviewer="ana")
    made = db.accept(accepted, 1, reviewer="ana", name="Megaselia sp. BD-1")
    (genus,) = db.taxonomy().find(_lineage(0)["genus"], "genus")
    db.move(moved, 1, genus.id, reviewer="ana")
    db.rename(moved, db.proposal(moved).version, "the humpbacked one", reviewer="ana")
    gone = db.move(undone, 1, genus.id, reviewer="ana")
    db.undo(gone.review_id, reviewer="ana")
    (family1,) = db.taxonomy().find(_lineage(1)["family"], "family")
    db.move(half, 1, family1.id, reviewer="ana")  # a reviewer's placement, but half its members come back apart
    _run2, (a2, b2, m2, u2, p2, h2) = _new_run(db, [
        {"members": ["BD000000"], "parent_lineage": {"order": _lineage(0)["order"]}},
        {"members": ["BD000002", "BD000003"], "parent_lineage": {"order": _lineage(0)["order"]}},
        {"members": ["BD000004", "BD000005"], "parent_lineage": {"order": _lineage(0)["order"]}},
        {"members": ["BD000006", "BD000007"], "parent_lineage": {"order": _lineage(0)["order"]}},
        {"members": ["BD000008", "BD000009"], "parent_lineage": {"order": _lineage(1)["order"]}},
        {"members": ["BD000011", "BD000012"], "parent_lineage": {"order": _lineage(1)["order"]}}])
    a, b = db.proposal(a2), db.proposal(b2)
    assert (a.status, a.provisional_name, a.parent_name) == ("assigned", "Megaselia scalaris", _lineage(0)["genus"])
    assert (b.status, b.provisional_name, b.taxon_id) == ("assigned", "Megaselia sp. BD-1", made.taxon_id)
    assert {(e["kind"], e["source_id"]) for e in proposal_history(db, a2)} >= {("recognised", assigned)}
    assert [r.id for r in db.proposal_queue(status="pending")[0]] == [m2, u2, p2, h2]  # neither is queued
    m, u = db.proposal(m2), db.proposal(u2)
    assert (m.parent_taxon_id, m.provisional_name) == (genus.id, "the humpbacked one")
    assert db.proposal(moved).status == "superseded"
    assert (u.parent_rank, u.parent_name) == ("order", _lineage(0)["order"])  # the move was undone: not carried
    # the machine's own placement is not a reviewer's (plain), nor is a move of a candidate whose members now
    # come back beside others (half): the new grouping is not the one the reviewer placed
    assert db.proposal(p2).parent_rank == "order" and db.proposal(h2).parent_rank == "order"
    assert db.proposal(plain).status == db.proposal(half).status == "superseded"
    edge = next(e for e in proposal_history(db, m2) if e["kind"] == "recluster")
    assert edge["detail"]["carried"] == ["placement", "name"]
    # each carried decision is logged on the new proposal as the database's, saying whose it repeats; undoable there
    logged = [(r["action"], r["reviewer"], r["note"], carried(r).source, carried(r).reviewer) for r in db.reviews(a2)]
    assert logged == [("assign", "biodiscover", None, assigned, "ana")]
    assert [(r["action"], r["reviewer"], carried(r).reviewer) for r in db.reviews(m2)] == [
        ("rename", "biodiscover", "ana"), ("move", "biodiscover", "ana")]
    undo = db.undo(db.reviews(a2)[0]["id"], reviewer="bo")
    assert db.proposal(a2).status == "pending" and undo.proposal_id == a2
    from biodiscover.storage.db.check import check_database
    assert check_database(db.path).ok


def test_a_processid_taken_from_another_collection_with_another_barcode_is_named(tmp_path: Path) -> None:
    """e31 review F22: a re-sequenced or mislabelled well whose processid another plate held became the new plate's
    specimen with only "5 changed" said. The ingest report names each such processid and the collection that held
    it (capped, then how many more); a new barcode in the same collection, or another collection's copy with the
    same barcode and another country, is an ordinary change."""
    week3 = make_specimens(6)
    with Database.create(tmp_path / "bd.sqlite") as handle:
        handle.ingest(week3, collection="week3", backup=False)
        resequenced = [Specimen(processid=s.processid, dna_barcode="TGCA" * 60, order=s.order) for s in week3[:3]]
        moved_country = Specimen(**{**{f: getattr(week3[3], f) for f in ("processid", "order", "family", "genus",
                                                                          "dna_barcode")}, "country": "Peru"})
        report = handle.ingest([*resequenced, moved_country], collection="week3b", backup=False)
        assert (report.changed, report.moved) == (4, 3)
        assert report.moved_from == (("BD000000", "week3"), ("BD000001", "week3"), ("BD000002", "week3"))
        assert report.moved_lines(shown=2) == [
            "BD000000 was in collection week3 with another barcode: stored as a new version in week3b (the old one "
            "kept, no longer current)",
            "BD000001 was in collection week3 with another barcode: stored as a new version in week3b (the old one "
            "kept, no longer current)",
            "… and 1 more processid taken from another collection with another barcode"]
        again = handle.ingest([Specimen(processid="BD000000", dna_barcode="GATC" * 60)], collection="week3b",
                              backup=False)
        assert (again.changed, again.moved, again.moved_lines()) == (1, 0, [])
        assert report.to_json()["moved_from"][0] == ["BD000000", "week3"]


def test_a_full_disk_during_a_named_write_reads_as_a_sentence(tmp_path: Path) -> None:
    """e31 review F14: each write names what it stores, and the message pasted that phrase into "cannot X the
    database": "cannot register reference taxa the database: the disk is full". A real SQLite file capped at its
    size (``max_page_count`` on the pooled connection the handle writes through) fills as a disk does."""
    path = tmp_path / "full.sqlite"
    db = Database.open_or_create(path)
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA max_page_count = {conn.exec_driver_sql('PRAGMA page_count').scalar()}")
    lineages = [{"order": "Coleoptera", "family": f"Fam{i}", "genus": f"Genus{i}", "species": f"Genus{i} sp{i}"}
                for i in range(3000)]
    with pytest.raises(DatabaseError) as raised:
        register_lineages(db, lineages, source="reference:x")
    assert str(raised.value) == f"{path}: cannot register reference taxa in the database: the disk is full"
    db.close()
    from biodiscover.storage.db.integrity import cannot

    assert [cannot(d) for d in ("read", "write to", "write proposals", "record a review (accept)")] == [
        "cannot read the database", "cannot write to the database", "cannot write proposals in the database",
        "cannot record a review (accept) in the database"]
