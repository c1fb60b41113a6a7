"""`biodiscover ingest` and `biodiscover db …` verbs, and the schema/migration contract."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from biodiscover.storage.db import Database
from biodiscover.storage.records import BIOSCAN_COLUMNS
from fixtures.db_views import count_specimens, runs, specimen_versions


CLI = Callable[..., subprocess.CompletedProcess[str]]  # conftest's in-process ``cli`` fixture


def write_collection(path: Path, n: int, *, bad: int = 0, country: str = "Canada") -> Path:
    lines = ["processid,order,family,genus,dna_barcode,country"]
    for i in range(n):
        lines.append(f"CLI{i:04d},Diptera,Phoridae,Megaselia,{'ACGT' * 60},{country}")
    for i in range(bad):
        lines.append(f"BAD{i:04d},Diptera,Phoridae,Megaselia,ACGT,{country}")  # barcode far too short
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingest_twice_changes_nothing_and_quarantines_bad_rows(tmp_path: Path, cli: CLI, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = write_collection(tmp_path / "plate.csv", 25, bad=2)
    db = tmp_path / "bd.sqlite"
    first = cli("ingest", "--input", str(src), "--db", str(db), "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["new"], report["quarantined"], report["skipped"]) == (25, 2, False)
    assert Path(report["quarantine_file"]).is_file()
    dump = list(sqlite3.connect(db).iterdump())
    second = cli("ingest", "--input", str(src), "--db", str(db))
    assert second.returncode == 0 and "nothing changed" in second.stdout
    assert list(sqlite3.connect(db).iterdump()) == dump
    changed = write_collection(tmp_path / "plate.csv", 25, country="Peru")
    third = cli("ingest", "--input", str(changed), "--db", str(db), "--json")
    assert json.loads(third.stdout)["changed"] == 25
    with Database.open(db) as handle:
        assert len(handle.specimens()) == 25 and count_specimens(db, current_only=False) == 50
        assert [v["country"] for v in specimen_versions(db, "CLI0003")] == ["Canada", "Peru"]


def test_db_check_backup_upgrade_verbs(tmp_path: Path, cli: CLI) -> None:
    db = tmp_path / "bd.sqlite"
    cli("ingest", "--input", str(write_collection(tmp_path / "p.csv", 5)), "--db", str(db))
    res = cli("db", "check", "--db", str(db), "--json")
    payload = json.loads(res.stdout)
    assert res.returncode == 0 and payload["ok"] and payload["stats"]["specimens"] == 5
    out = tmp_path / "copy.sqlite"
    assert cli("db", "backup", "--db", str(db), "--out", str(out)).returncode == 0
    with Database.open(out) as copy:
        assert len(copy.specimens()) == 5
    assert cli("db", "upgrade", "--db", str(db)).returncode == 0
    # an orphan the schema cannot express: a specimen with two current versions
    con = sqlite3.connect(db)
    con.execute("DROP INDEX ix_specimens_current_processid")
    con.execute("UPDATE specimens SET processid = 'CLI0000', version = 2 WHERE processid = 'CLI0001'")
    con.commit()
    con.close()
    res = cli("db", "check", "--db", str(db))
    assert res.returncode == 1 and "more than one current version" in res.stdout


def test_empty_file_is_upgraded_into_a_database(tmp_path: Path, cli: CLI) -> None:
    db = tmp_path / "empty.sqlite"
    db.touch()
    assert cli("db", "upgrade", "--db", str(db)).returncode == 0
    with Database.open(db) as handle:
        assert handle.queue_counts()["live"] == 0


@pytest.mark.filterwarnings("ignore:Cannot correctly sort tables")
def test_migrations_match_the_models(tmp_path: Path) -> None:
    """A model change without a migration fails here (Alembic autogenerate finds no difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with Database.create(tmp_path / "bd.sqlite") as db:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_specimens_table_has_every_bioscan_column(tmp_path: Path) -> None:
    with Database.create(tmp_path / "bd.sqlite"):
        pass
    cols = {r[1] for r in sqlite3.connect(tmp_path / "bd.sqlite").execute("PRAGMA table_info(specimens)")}
    assert {c.replace("-", "_") for c in BIOSCAN_COLUMNS} <= cols


def test_read_only_handle_reads_but_refuses_writes(tmp_path: Path) -> None:
    from biodiscover.storage.errors import DatabaseError

    path = tmp_path / "bd.sqlite"
    with Database.create(path) as db:
        run = db.start_run("x", {}, None, backup=False)
    with Database.open(path, readonly=True) as ro:
        assert ro.run_progress(run).status == "running"
        with pytest.raises(DatabaseError, match="read-only"):
            ro.finish_run(run)


def test_real_dev_rows_round_trip(tmp_path: Path, real_dev_csv: Path) -> None:
    import gzip
    import itertools

    head = tmp_path / "dev500.csv"
    with gzip.open(real_dev_csv, "rt") as fh:
        head.write_text("".join(itertools.islice(fh, 501)))
    with Database.create(tmp_path / "bd.sqlite") as db:
        report, reader = db.ingest_file(head, backup=False)
        assert report.new == report.total > 400
        assert report.total + len(reader.quarantine) == 500
        first = db.specimens()[0]
        (stored,) = specimen_versions(db.path, first.processid)
        assert stored["dna_barcode"] == first.dna_barcode and stored["version"] == 1 and stored["current"]
        assert db.taxonomy().roots(), "provided identifications become taxa"


def test_upgrade_from_revision_0001_backs_up_then_migrates(tmp_path: Path, cli: CLI) -> None:
    """A database made by an older biodiscover (revision 0001) is refused until upgraded; data survive."""
    from biodiscover.storage.db.engine import make_engine
    from biodiscover.storage.db.schema import inspect_revision, run_migrations
    from biodiscover.storage.errors import DatabaseError

    path = tmp_path / "old.sqlite"
    engine = make_engine(path)
    run_migrations(engine, "0001")
    engine.dispose()
    # rows as a revision-0001 biodiscover wrote them (today's code writes today's columns)
    con = sqlite3.connect(path)
    t = "2026-11-23T00:00:00.000000Z"
    con.execute("INSERT INTO collections (name, created_at) VALUES ('old', ?)", (t,))
    con.execute("INSERT INTO ingests (collection_id, started_at, finished_at, status, n_records, n_new, n_changed, "
                "n_unchanged) VALUES (1, ?, ?, 'completed', 1, 1, 0, 0)", (t, t))
    con.execute("INSERT INTO specimens (processid, version, current, record_hash, collection_id, ingest_id, "
                "dna_barcode) VALUES ('OLD1', 1, 1, 'h', 1, 1, ?)", ("ACGT" * 60,))
    for kind, status, message in (("batch_item", "completed", "triage run 7: 10 specimens, 0 quarantined"),
                                  ("batch_item", "failed", "triage run 8: crashed"),
                                  ("triage", "completed", "10 specimens")):
        con.execute("INSERT INTO runs (kind, parameters, status, started_at, heartbeat_at, done, message) "
                    "VALUES (?, '{}', ?, ?, ?, 0, ?)", (kind, status, t, t, message))
    con.commit()
    con.close()
    assert inspect_revision(path).revision == "0001"
    with pytest.raises(DatabaseError, match="run `biodiscover db upgrade"):
        Database.open(path)
    res = cli("db", "upgrade", "--db", str(path))
    assert res.returncode == 0 and "upgraded" in res.stdout, res.stderr
    backups = list((tmp_path / "old.sqlite.backups").glob("old-pre-upgrade-*.sqlite"))
    assert len(backups) == 1 and inspect_revision(backups[0]).revision == "0001"
    with Database.open(path) as db:
        assert db.specimens(["OLD1"])[0].dna_barcode == "ACGT" * 60
        # 0003: a legacy batch item's triage run id moved from its message into runs.result
        assert [r.result for r in sorted(runs(db), key=lambda r: r.id)] == [{"triage_run_id": 7}, {}, {}]
    idx = {r[1] for r in sqlite3.connect(path).execute("PRAGMA index_list(proposals)")}
    assert "ix_proposals_size" in idx and check_ok(path)


def check_ok(path: Path) -> bool:
    from biodiscover.storage.db import check_database

    return check_database(path).ok


def test_ingest_a_bioscan_dataset_root(tmp_path: Path, cli: CLI) -> None:
    """`--input` may be a BIOSCAN-5M layout root (metadata/…csv); here one made by storage.synth."""
    synth = pytest.importorskip("biodiscover.storage.synth.generator")
    from biodiscover.storage.synth.config import SynthConfig

    synth.generate(SynthConfig(n_species=8, n_specimens=40, images=False, seed=3), tmp_path / "ds")
    res = cli("ingest", "--input", str(tmp_path / "ds"), "--db", str(tmp_path / "bd.sqlite"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["new"] + report["quarantined"] == 40 and report["source"].endswith(".csv")
    again = cli("ingest", "--input", str(tmp_path / "ds"), "--db", str(tmp_path / "bd.sqlite"), "--json")
    assert json.loads(again.stdout)["skipped"] is True


def test_upgrade_stores_the_novelty_decision_old_readers_assumed(tmp_path: Path) -> None:
    """Revision 0003 adds assignments.is_novel and runs.novelty_threshold; rows written before it get
    what the report and exports assumed for them (novelty >= 0.5; no novelty = not novel)."""
    import sqlalchemy as sa

    from biodiscover.storage.db.schema import run_migrations

    path = tmp_path / "old.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    run_migrations(engine, "0002")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO runs (id, kind, parameters, status, started_at, heartbeat_at, done) "
                             "VALUES (1, 'triage', '{}', 'completed', :t, :t, 3), "
                             "(2, 'batch', '{}', 'completed', :t, :t, 0)"), {"t": "2026-01-01T00:00:00.000000Z"})
        conn.exec_driver_sql("INSERT INTO assignments (run_id, processid, novelty) "
                             "VALUES (1, 'A', 0.2), (1, 'B', 0.5), (1, 'C', NULL)")
    engine.dispose()
    assert Database.upgrade(path) is not None
    with Database.open(path) as db:
        frame = db.assignments(1).set_index("processid")
        assert frame["is_novel"].tolist() == [False, True, False]
        assert db.run_progress(1).novelty_threshold == 0.5 and db.run_progress(2).novelty_threshold is None
        assert db.run_tables(1)["run"]["novelty_threshold"] == 0.5


def test_upgrade_to_0005_keeps_old_assignments_and_gives_assigned_candidates_their_species_name(
        tmp_path: Path) -> None:
    """Revision 0005 adds what each specimen was named from (modality, identity, overlap, best key, reason; NULL
    in rows written before: that evidence was not kept) and, once, gives every candidate assigned to an accepted
    species that species' current name and parent — a database written before d9c3439 kept the name the species
    had when the candidate was assigned to it, after the species was renamed."""
    from biodiscover.storage.db.schema import inspect_revision
    from biodiscover.storage.records import Specimen
    from fixtures.db_views import downgrade

    path = tmp_path / "old.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(processid=f"BD{i:06d}", order="Diptera", family="Phoridae", genus="Megaselia",
                            dna_barcode="ACGT" * 60 + "A" * i, split="test") for i in range(8)],
                  collection="plate-1", backup=False)
        run = db.start_run("triage", {}, "sha256:model", backup=False)
        p0, p1 = db.write_proposals(run, [
            {"members": ["BD000000", "BD000003"], "parent_lineage": {"genus": "Megaselia"}},
            {"members": ["BD000006"], "parent_lineage": {"genus": "Megaselia"}}])
        db.write_assignments(run, [{"processid": "BD000000", "deepest_rank": "genus", "deepest_taxon": "Megaselia",
                                    "modality": "dna", "identity": 0.93, "overlap": 658, "top_hit": "K1"}])
        accepted = db.accept(p0, 1, reviewer="ana", name="Megaselia sp. BD-0001")
        db.assign(p1, 1, "Megaselia sp. BD-0001", reviewer="bo")
        db.rename(p0, db.proposal(p0).version, "Megaselia sp. Kruger-1", reviewer="ana")
        assert db.proposal(p1).provisional_name == "Megaselia sp. Kruger-1"
    # what such a database looked like under 0004: the assigned candidate still under the species' first name
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE proposals SET provisional_name = 'Megaselia sp. BD-0001', parent_name = 'Old' "
                             "WHERE id = :p"), {"p": p1})
    engine.dispose()
    downgrade(path, "0004")
    assert inspect_revision(path).revision == "0004"
    cols = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(assignments)")}
    assert not {"modality", "identity", "overlap", "top_hit", "reason"} & cols
    assert Database.upgrade(path) is not None
    with Database.open(path) as db:
        assigned = db.proposal(p1)
        assert (assigned.provisional_name, assigned.parent_name) == ("Megaselia sp. Kruger-1", "Megaselia")
        assert assigned.version == 2 and assigned.taxon_id == accepted.taxon_id  # the decision did not move
        row = db.assignments(run).set_index("processid").loc["BD000000"]
        assert row["deepest_taxon"] == "Megaselia" and row[["modality", "identity", "top_hit"]].isna().all()
        db.write_assignments(run, [{"processid": "BD000003", "modality": "image", "top_hit": "K9",
                                    "reason": "named from its photograph"}])
        new = db.assignments(run).set_index("processid").loc["BD000003"]
        assert (new["modality"], new["top_hit"], new["reason"]) == ("image", "K9", "named from its photograph")


def _shape(tables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What a table promises about its rows, from SQLAlchemy ``Table`` objects or a reflection of them."""
    out = {}
    for name, t in tables.items():
        unique = {tuple(sorted(c.name for c in con.columns)) for con in t.constraints
                  if isinstance(con, sa.UniqueConstraint)}
        unique |= {tuple(sorted(c.name for c in ix.columns)) for ix in t.indexes if ix.unique}
        unique |= {(c.name,) for c in t.columns if c.unique}
        out[name] = {
            "columns": {c.name: (bool(c.nullable) and not c.primary_key) for c in t.columns},
            "primary_key": sorted(c.name for c in t.primary_key.columns),
            "unique": sorted(unique),
            "indexes": sorted((ix.name, tuple(c.name for c in ix.columns)) for ix in t.indexes),
            "foreign_keys": sorted((fk.parent.name, fk.column.table.name, fk.column.name)
                                   for fk in t.foreign_keys),
        }
    return out


def test_the_models_promise_exactly_the_keys_and_constraints_the_migrated_file_has(tmp_path: Path) -> None:
    """Alembic's autogenerate (above) does not compare primary keys and misses some unique and foreign-key
    changes; code that reads or writes through the models (``SQLModel`` sessions, ``sa.insert(Model)``)
    relies on them matching the file. Every table's columns, NOT NULLs, primary key, unique sets, indexes and
    foreign keys as the models declare them must be those of a freshly migrated database."""
    from biodiscover.storage.db import models

    with Database.create(tmp_path / "bd.sqlite") as db:
        reflected = sa.MetaData()
        reflected.reflect(db.engine)
    tables = {n: t for n, t in reflected.tables.items() if n != "alembic_version"}
    declared = dict(models.SQLModel.metadata.tables)
    assert sorted(tables) == sorted(declared)
    assert _shape(declared) == _shape(tables)
