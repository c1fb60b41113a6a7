"""Schema revisions: create, inspect and upgrade a database with Alembic.

Why Alembic run from code: users never see an ``alembic.ini``; ``biodiscover db
upgrade`` (and :func:`create_schema` for a new file) call Alembic with the
migration scripts shipped inside this package. Every upgrade of an existing
database is preceded by a backup, runs in batch mode with foreign keys OFF
(SQLite rebuilds tables to alter them) and ends with ``foreign_key_check``.

A database written by a *newer* biodiscover carries a revision these scripts do
not know: :func:`inspect_revision` finds that with a read-only connection and
the caller refuses with :class:`~biodiscover.storage.errors.DatabaseError`, leaving the
file byte-for-byte untouched.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from biodiscover.storage.db.backup import KEEP_AUTOMATIC, backup_database
from biodiscover.storage.errors import DatabaseError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def known_revisions() -> tuple[str, ...]:
    """Every revision the shipped scripts know, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


@dataclass(frozen=True)
class RevisionState:
    """Where a database file stands relative to this code's schema."""

    revision: str | None
    head: str
    has_tables: bool

    @property
    def is_current(self) -> bool:
        return self.revision == self.head

    @property
    def is_newer(self) -> bool:
        return self.revision is not None and self.revision not in known_revisions()


def inspect_revision(path: Path) -> RevisionState:
    """Read the Alembic revision with a read-only connection (never writes the file)."""
    from biodiscover.storage.db.engine import connect_readonly
    from biodiscover.storage.db.integrity import explain_sqlite_error

    path = Path(path)
    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise explain_sqlite_error(path, exc, "open") from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        revision = None
        if "alembic_version" in tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
    except sqlite3.Error as exc:
        # permissions (a read-only folder) and damage get different advice: restoring a
        # backup over a file that is merely unreadable would lose newer work
        raise explain_sqlite_error(path, exc, "read") from None
    finally:
        conn.close()
    return RevisionState(revision, head_revision(), bool(tables - {"alembic_version"}))


def refuse_newer(path: Path, state: RevisionState) -> None:
    if state.is_newer:
        raise DatabaseError(
            f"{path}: schema revision {state.revision!r} was written by a newer biodiscover "
            f"(this one knows up to {state.head!r}); upgrade biodiscover to open it — the file was left untouched"
        )


def run_migrations(engine: Engine, target: str = "head") -> None:
    """Run Alembic on ``engine`` with foreign keys off, then verify them."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")
        try:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
            # Alembic commits each SQLite migration itself (no transactional DDL); only a call with nothing to
            # run leaves open the read of alembic_version, which this ends: its deletion changes nothing.
            if conn.in_transaction():
                conn.commit()  # pragma: no mutate only ever ends a read-only transaction (see above)
            problems = raw.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            raw.execute("PRAGMA foreign_keys = ON")
    if problems:
        raise DatabaseError(f"{engine.url.database}: migration left {len(problems)} foreign-key violations "
                            f"(first: {problems[0]}); restore the backup taken before it")


def upgrade_database(path: Path, engine_factory: Callable[[Path], Engine]) -> Path | None:
    """Upgrade ``path`` to the head revision after a backup; returns the backup (None if current)."""
    path = Path(path)
    state = inspect_revision(path)
    refuse_newer(path, state)
    if state.has_tables:  # a damaged file is said so even when there is nothing to migrate
        from biodiscover.storage.db.integrity import damaged_database_error, quick_problems

        damage = quick_problems(path)
        if damage:
            raise damaged_database_error(path, "; ".join(damage[:3]))
    if state.is_current:
        log.info("%s is already at schema revision %s", path, state.head)
        return None
    if state.revision is None and state.has_tables:
        raise DatabaseError(f"{path}: not a biodiscover database (it has tables but no schema revision)")
    backup = backup_database(path, reason="pre-upgrade", keep=KEEP_AUTOMATIC) if state.has_tables else None
    engine = engine_factory(path)
    try:
        run_migrations(engine)
    finally:
        engine.dispose()
    log.info("upgraded %s from %s to %s (backup: %s)", path, state.revision, state.head, backup)
    return backup
