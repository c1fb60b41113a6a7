"""The :class:`Database` handle: open/create a biodiscover SQLite file safely.

Opening is careful because the file holds a taxonomist's decisions:

1. the header is checked for the SQLite magic *before* SQLite touches the file
   (a corrupt or foreign file is refused, not "repaired");
2. the schema revision is read through a read-only connection; a database from a
   newer biodiscover, or one that needs ``biodiscover db upgrade``, is refused
   without a byte written;
3. only then is a read-write engine made (WAL, foreign keys, busy timeout; see
   :mod:`biodiscover.storage.db.engine`).

The domain API lives in mixins, one module per concept — :mod:`~biodiscover.storage.db.ingest`,
:mod:`~biodiscover.storage.db.runs`, :mod:`~biodiscover.storage.db.proposals`, :mod:`~biodiscover.storage.db.reviews`
— and is documented there. Typical use::

    db = Database.open_or_create(Path("work.sqlite"))
    db.ingest(specimens, collection="plate-42", source=path)
    run = db.start_run("triage", {"k": 8}, model_fingerprint="sha256:…")
    db.write_assignments(run, rows); db.write_proposals(run, proposals)
    db.finish_run(run, "completed")
    rows, total = db.proposal_queue(sort="size", descending=True, limit=50)
    db.accept(rows[0].id, expected_version=rows[0].version, reviewer="ana")

A :class:`Database` is safe to share between threads (a connection pool with
``check_same_thread=False``); each process opens its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from biodiscover.storage.db.backup import KEEP_AUTOMATIC, backup_database
from biodiscover.storage.db.engine import (
    EngineConfig,
    make_engine,
    read_transaction,
    sqlite_error_kind,
    write_transaction,
)
from biodiscover.storage.db.integrity import (
    check_sqlite_file,
    damaged_database_error,
    explain_sqlite_error,
    quick_problems,
)
from biodiscover.storage.db.ingest import IngestMixin
from biodiscover.storage.db.proposals import ProposalsMixin
from biodiscover.storage.db.reviews import ReviewsMixin
from biodiscover.storage.db.runs import RunsMixin
from biodiscover.storage.db.schema import inspect_revision, refuse_newer, run_migrations, upgrade_database
from biodiscover.storage.errors import DatabaseError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Database(IngestMixin, RunsMixin, ProposalsMixin, ReviewsMixin):
    """A biodiscover database file. Create with :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, path: Path, engine: Engine, config: EngineConfig, readonly: bool = False) -> None:
        self.path = Path(path)
        self.engine = engine
        self.config = config
        self.readonly = readonly

    # -- opening --------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str, *, readonly: bool = False, config: EngineConfig = EngineConfig(),
             verify: bool = True) -> "Database":
        """Open an existing database at the current schema revision (refuses anything else).

        ``verify`` runs the quick integrity check (page-count sanity + ``PRAGMA
        quick_check``, :func:`~biodiscover.storage.db.integrity.quick_problems`) first and refuses a
        damaged file with one error naming ``db check`` and the newest good backup:
        writing to a damaged file spreads the damage, reading it gives wrong answers.
        """
        path = Path(path)
        if not path.exists():
            raise DatabaseError(f"{path}: no database here (biodiscover ingest or triage creates one)")
        if not path.is_file():
            raise DatabaseError(f"{path}: is not a file")
        check_sqlite_file(path)
        if not readonly:
            _require_writable(path)
        if path.stat().st_size == 0:
            raise DatabaseError(f"{path}: empty file, not a biodiscover database")
        state = inspect_revision(path)
        refuse_newer(path, state)
        if state.revision is None:
            raise DatabaseError(f"{path}: not a biodiscover database (no schema revision)")
        if not state.is_current:
            raise DatabaseError(f"{path}: schema revision {state.revision!r} is older than {state.head!r}; "
                                f"run `biodiscover db upgrade --db {path}` (it backs the file up first)")
        if verify:
            damage = quick_problems(path)
            if damage:
                raise damaged_database_error(path, "; ".join(damage[:3]))
        return cls(path, make_engine(path, config, readonly=readonly), config, readonly)

    @classmethod
    def create(cls, path: Path | str, *, config: EngineConfig = EngineConfig()) -> "Database":
        """Create a new database file with the current schema (refuses an existing file)."""
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            raise DatabaseError(f"{path}: already exists; open it instead of creating it")
        parent = path.parent if str(path.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise DatabaseError(f"{path}: cannot create the database, {parent} is a file, not a folder")
        if not parent.is_dir():
            raise DatabaseError(f"{path}: cannot create the database, folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DatabaseError(f"{path}: cannot create the database, folder {parent} is not writable")
        existed = path.exists()
        engine = make_engine(path, config)
        try:
            run_migrations(engine)
        except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
            engine.dispose()
            if not existed:
                for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                    leftover.unlink(missing_ok=True)
            msg = str(getattr(exc, "orig", exc))
            raise DatabaseError(f"{path}: cannot create the database ({msg})") from None
        except Exception:
            engine.dispose()
            raise
        log.info("created database %s", path)
        return cls(path, engine, config)

    @classmethod
    def open_or_create(cls, path: Path | str, *, config: EngineConfig = EngineConfig()) -> "Database":
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            return cls.open(path, config=config)
        return cls.create(path, config=config)

    @staticmethod
    def upgrade(path: Path | str, *, config: EngineConfig = EngineConfig()) -> Path | None:
        """Bring ``path`` to the current schema (backup first); returns the backup path or None."""
        path = Path(path)
        if not path.exists():
            raise DatabaseError(f"{path}: no database here")
        check_sqlite_file(path)
        _require_writable(path)
        return upgrade_database(path, lambda p: make_engine(p, config))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    # -- transactions ---------------------------------------------------------------------------------------
    def _write(self, fn: Callable[[Connection], T], what: str = "write") -> T:
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only; cannot {what}")
        try:
            return write_transaction(self.engine, fn, config=self.config, what=what)
        except (sa.exc.DBAPIError, sqlite3.DatabaseError) as exc:
            raise self._user_error(exc, what) from None

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with read_transaction(self.engine) as conn:
                yield conn
        except (sa.exc.DBAPIError, sqlite3.DatabaseError) as exc:
            raise self._user_error(exc, "read") from None

    def _user_error(self, exc: BaseException, what: str) -> BaseException:
        """A SQLite failure a user can act on (damage, permissions, full disk) as one DatabaseError.

        Constraint violations and programming errors are bugs and keep their traceback.
        """
        orig = getattr(exc, "orig", exc)
        if isinstance(orig, (sqlite3.IntegrityError, sqlite3.ProgrammingError)) or sqlite_error_kind(exc) is None:
            return exc
        return explain_sqlite_error(self.path, exc, what)

    # -- maintenance ----------------------------------------------------------------------------------------
    def backup(self, dest: Path | None = None, *, reason: str = "manual", keep: int | None = None) -> Path:
        """Online backup of this database (see :mod:`biodiscover.storage.db.backup`)."""
        return backup_database(self.path, dest, reason=reason, keep=keep)

    def _auto_backup(self, reason: str) -> Path | None:
        """Backup before a bulk job, unless the database holds nothing worth saving yet."""
        with self._read() as conn:
            has_data = conn.exec_driver_sql(
                "SELECT EXISTS(SELECT 1 FROM specimens) OR EXISTS(SELECT 1 FROM proposals)").scalar()
        if not has_data:
            return None
        return backup_database(self.path, reason=reason, keep=KEEP_AUTOMATIC)

    def count_reviews(self) -> int:
        """Entries in the review log (a database holding any is never deleted by the demo)."""
        with self._read() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM reviews").scalar() or 0)

    def optimize(self) -> None:
        """Refresh the query planner's statistics (``PRAGMA optimize``, sampled: milliseconds).

        Called after bulk writes: without statistics SQLite picked a 20k-row sort
        over a 250-row index walk for a filtered queue page (benchmarks/RESULTS-db.md).
        """
        if self.readonly:
            return
        self._write(lambda conn: conn.exec_driver_sql("PRAGMA optimize = 0x10002"), "optimize")

    def taxonomy(self) -> "TaxonomyGraph":
        from biodiscover.storage.db.taxonomy import TaxonomyGraph

        return TaxonomyGraph.load(self)


def _require_writable(path: Path) -> None:
    if not os.access(path, os.R_OK):
        raise DatabaseError(f"{path}: not readable (check its permissions)")
    if not os.access(path, os.W_OK):
        # the way out a user has: no command that writes can open it read-only (e34 attack T8: review was told to)
        raise DatabaseError(f"{path}: not writable (check its permissions, or copy it to a folder you can write; "
                            "export and db check read it as it is)")
    if not os.access(path.parent if str(path.parent) else Path("."), os.W_OK | os.X_OK):
        raise DatabaseError(f"{path}: its folder is not writable, and SQLite needs it for the WAL journal")


if TYPE_CHECKING:
    from biodiscover.storage.db.taxonomy import TaxonomyGraph
