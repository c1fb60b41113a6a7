"""Verbs: ``db upgrade | backup | check | drop-run`` (a typer sub-app) and ``ingest``.

Thin wrappers over :mod:`biodiscover.storage.db`; every failure a user can fix is a
:class:`~biodiscover.storage.errors.BiodiscoverError` that ``biodiscover.cli.main.main`` prints as
one ``error:`` line (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from biodiscover.storage.errors import InputError

# storage.db (SQLAlchemy, Alembic, networkx: ~1 s of CPU) is imported inside each verb: every
# `biodiscover` process imports this module, and `triage --results` needs no database.

db_app = typer.Typer(name="db", help="Database maintenance: upgrade the schema, back up, check integrity.",
                     no_args_is_help=True)

DB_OPTION = typer.Option(..., "--db", help="The biodiscover SQLite database file.")


@db_app.command("upgrade")
def upgrade(db: Path = DB_OPTION) -> None:
    """Migrate the database to this version's schema (a backup is written first)."""
    from biodiscover.storage.db import Database

    backup = Database.upgrade(db)
    if backup is None:
        typer.echo(f"{db}: already at the current schema")
    else:
        typer.echo(f"{db}: upgraded (backup before the upgrade: {backup})")


@db_app.command("backup")
def backup(db: Path = DB_OPTION,
           out: Optional[Path] = typer.Option(None, "--out",
                                              help="Backup file (default: <db>.backups/<name>-manual-<time>.sqlite)."),
           ) -> None:
    """Write a consistent online copy of the database (safe while other jobs write)."""
    from biodiscover.storage.db import backup_database

    if not db.is_file():
        raise InputError(f"{db}: no database here")
    path = backup_database(db, out)
    typer.echo(str(path))


@db_app.command("check")
def check(db: Path = DB_OPTION, as_json: bool = typer.Option(False, "--json", help="Machine-readable report.")) -> None:
    """integrity_check + foreign_key_check + orphan checks; exit 1 when a problem is found."""
    from biodiscover.storage.db import check_database

    report = check_database(db)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        typer.echo(f"{db}: {status}")
        for p in report.problems:
            typer.echo(f"  problem: {p}")
        for w in report.warnings:
            typer.echo(f"  warning: {w}")
        if report.stats:
            typer.echo("  " + ", ".join(f"{k} {v}" for k, v in report.stats.items()))
    if not report.ok:
        raise typer.Exit(code=1)


@db_app.command("drop-run")
def drop_run(db: Path = DB_OPTION, run: int = typer.Option(..., "--run", help="The failed triage run to remove."),
             yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
             ) -> None:
    """Remove a failed triage run that holds no specimens (one `db check` names); the database is backed up first.

    Any other run is refused: only a record that stored nothing goes.
    """
    from biodiscover.storage.db import Database

    if not db.is_file():
        raise InputError(f"{db}: no database here")
    with Database.open(db) as handle:
        empty = {r.id: r for r in handle.empty_failed_runs()}
        if run in empty and not yes:
            typer.confirm(f"Remove {empty[run].summary()}?", abort=True)
        backup = handle.drop_empty_run(run)
    typer.echo(f"{db}: run {run} removed (backup before: {backup})")


def ingest(
    input: Path = typer.Option(..., "--input",
                               help="Collection CSV/TSV/FASTA (plain or .gz), a BIOSCAN-5M root, or an image folder."),
    db: Path = typer.Option(..., "--db", help="Database file (created if missing)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of <processid>.jpg images."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Collection name (default: the file name)."),
    quarantine: Optional[Path] = typer.Option(None, "--quarantine", help="Where to write rows that were set aside "
                                              "(CSV; default: <input>.quarantine.csv beside the input, or "
                                              "<input file name>.quarantine.csv when that holds the report of "
                                              "another input of the same name); its folder must exist; never "
                                              "the input."),
    force: bool = typer.Option(False, "--force",
                               help="Replace an existing --quarantine file biodiscover did not write."),
    backup_first: bool = typer.Option(True, "--backup/--no-backup", help="Back the database up before a bulk ingest."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Store a collection in the database: idempotent (same file twice changes nothing), versioned, resumable.

    Rows that break a rule are set aside (stored with the ingest and written to
    the quarantine CSV before the ingest counts as done); ingesting the same file
    again reports them again.
    """
    from biodiscover.storage.db import Database
    from biodiscover.storage.validation import (
        check_output_path,
        is_quarantine_report,
        quarantine_path_for,
        write_quarantine,
    )

    from biodiscover.storage.collections import check_input

    check_input(input)
    if images is not None and not images.is_dir():
        raise InputError(f"{images}: image folder does not exist")
    if images is not None:
        check_input(images)
    qtarget = quarantine if quarantine is not None else quarantine_path_for(input, fallback=db.absolute().parent)
    check_output_path(qtarget, what="quarantine report", force=force, ours=is_quarantine_report, inputs=(input, images),
                      others={"database": db})
    with Database.open_or_create(db) as handle:
        done = {"n": 0}

        def progress(n: int) -> None:
            if not as_json and n - done["n"] >= 50_000:
                typer.echo(f"  {n} records …", err=True)
                done["n"] = n

        report, reader = handle.ingest_file(input, images=images, collection=collection, backup=backup_first,
                                            on_progress=progress, quarantine_file=qtarget, force=force)
        qfile = report.quarantine_file
        if (report.skipped and (report.quarantined or report.photos_set_aside) and report.ingest_id is not None
                and not (qfile and Path(qfile).is_file())):
            # the first ingest's report is gone (or was never written): write it again from the database
            qfile = str(write_quarantine(handle.ingest_quarantine(report.ingest_id), qtarget, force=force).absolute())
    for rec in reader.quarantine:  # a problem of the file itself (a gzip cut short): the count below omits it
        if rec.whole_file:
            typer.echo(f"error: {rec.message}", err=True)
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "quarantine_file": qfile}, indent=2))
        return
    if report.skipped:
        typer.echo(f"{input}: already ingested into {report.collection} (ingest {report.ingest_id}); nothing changed")
        if report.quarantined or report.photos_set_aside:
            typer.echo(f"{_set_aside(report, were=True)} by that ingest: {qfile}")
        return
    typer.echo(f"{input} → {db} [{report.collection}]: {report.total} records, {report.new} new, "
               f"{report.changed} changed (new version kept beside the old), {report.unchanged} unchanged")
    for line in report.moved_lines():
        typer.echo(line)
    if report.quarantined or report.photos_set_aside:
        typer.echo(f"{_set_aside(report)}: {qfile}")


def _set_aside(report: Any, *, were: bool = False) -> str:
    """``3 rows set aside`` / ``1 photo set aside (its specimen kept without)`` / both, for an ingest report
    (``were``: ``3 rows were set aside``, said of an earlier ingest)."""
    verb = "were set aside" if were else "set aside"
    parts = [f"{report.quarantined} rows {verb}"] if report.quarantined else []
    if report.photos_set_aside:
        photos = "photo" if report.photos_set_aside == 1 else "photos"
        kept = "its specimen" if report.photos_set_aside == 1 else "their specimens"
        parts.append(f"{report.photos_set_aside} {photos} {verb} ({kept} kept without)")
    return ", ".join(parts)


def register(app: typer.Typer) -> None:
    """Attach ``db`` (sub-app) and ``ingest`` to the root app."""
    app.add_typer(db_app, name="db")
    app.command("ingest")(ingest)
