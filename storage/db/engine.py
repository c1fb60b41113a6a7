"""SQLite connections that never let 'database is locked' reach a user.

Why each setting:

* ``journal_mode=WAL`` — readers (the review TUI) never block the writer (a
  batch run) and vice versa; ``synchronous=NORMAL`` is durable across process
  crashes in WAL mode (only an OS crash can lose the last commit).
* ``foreign_keys=ON`` — SQLite ignores foreign keys unless told, per connection.
* ``busy_timeout`` — a connection waits for the write lock instead of failing.
* ``BEGIN IMMEDIATE`` for every write transaction — the write lock is taken at
  the start, where the busy handler can wait for it; a deferred transaction that
  upgrades from read to write gets SQLITE_BUSY at once, which no timeout fixes.
* :func:`write_transaction` retries a whole transaction with exponential backoff
  if the lock is still held after the busy timeout; after ``max_wait`` seconds
  it raises :class:`~biodiscover.storage.errors.DatabaseError` with a readable message.
* Batch writers commit in chunks (see ``CHUNK_ROWS``) so a reviewer's single
  write waits at most one chunk.

Reads use a plain (deferred) ``BEGIN``, so a long read never holds the write lock.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from biodiscover.storage.errors import DatabaseError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Rows per committed chunk for batch writers (ingest, assignments, proposals).
CHUNK_ROWS = 2000
SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class EngineConfig:
    """Connection knobs; the defaults suit a laptop and a shared network of processes."""

    busy_timeout_ms: int = 5000
    #: Total time a write keeps retrying before giving up with a clear error.
    max_wait_s: float = 120.0
    synchronous: str = "NORMAL"
    cache_size_kib: int = 65536


def _is_busy(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in msg or "database is busy" in msg or "database table is locked" in msg


def make_engine(path: Path, config: EngineConfig = EngineConfig(), *, readonly: bool = False) -> Engine:
    """A SQLAlchemy engine on ``path`` with the pragmas above set on every connection."""
    path = Path(path)
    if readonly:
        url = f"sqlite:///{readonly_uri(path)}&uri=true"
    else:
        url = f"sqlite:///{path.resolve()}"
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": config.busy_timeout_ms / 1000},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        # no PRAGMA busy_timeout: connect_args' "timeout" is sqlite3_busy_timeout on every connection
        cur.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute(f"PRAGMA synchronous = {config.synchronous}")
            cur.execute("PRAGMA analysis_limit = 400")  # keeps PRAGMA optimize (ANALYZE) to milliseconds
        cur.execute(f"PRAGMA cache_size = -{int(config.cache_size_kib)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.info.get("bd_begin", "BEGIN"))

    return engine


def write_transaction(engine: Engine, fn: Callable[[Connection], T], *, config: EngineConfig = EngineConfig(),
                      what: str = "write") -> T:
    """Run ``fn(conn)`` inside ``BEGIN IMMEDIATE … COMMIT``, retrying while the DB is busy.

    ``fn`` must only touch the database (it may run more than once if a busy
    error rolls the first attempt back). Any other exception rolls back and
    propagates unchanged.
    """
    deadline = time.monotonic() + config.max_wait_s
    delay = 0.02
    attempt = 0
    while True:
        attempt += 1
        try:
            with engine.connect() as conn:
                conn.info["bd_begin"] = "BEGIN IMMEDIATE"
                try:
                    with conn.begin():
                        return fn(conn)
                finally:
                    conn.info.pop("bd_begin", None)
        except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
            if not _is_busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise DatabaseError(
                    f"{engine.url.database}: the database stayed locked by another process for over "
                    f"{config.max_wait_s:.0f} s (trying to {what}); try again when the other job finishes"
                ) from None
            log.debug("%s: database busy (attempt %d), retrying in %.2fs", what, attempt, delay)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A deferred read transaction: a consistent snapshot that takes no write lock."""
    with engine.connect() as conn:
        with conn.begin():
            yield conn


def folder_of(path: Path) -> Path:
    """The folder holding ``path`` (``.`` for a bare file name): where SQLite puts -wal and -shm."""
    return path.parent if str(path.parent) else Path(".")


def readonly_uri(path: Path, *, immutable: bool = False) -> str:
    """A ``file:`` URI that opens ``path`` read-only, also where its folder is read-only.

    A WAL database needs its ``-shm`` file even to read; where the folder is not
    writable and no ``-wal`` file is left (every writer closed cleanly), the file is
    opened ``immutable`` — nothing can be pending in a journal that does not exist —
    instead of failing with "unable to open database file", which is not corruption.
    """
    import os
    from urllib.parse import quote

    path = Path(path).resolve()
    uri = f"file:{quote(str(path))}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    if immutable or (not os.access(folder_of(path), os.W_OK | os.X_OK) and not wal.exists()):
        uri += "&immutable=1"
    return uri


def connect_readonly(path: Path, *, timeout: float = 30, immutable: bool = False) -> sqlite3.Connection:
    """A read-only sqlite3 connection (see :func:`readonly_uri`); SQLite's errors are raised as they come
    (:func:`biodiscover.storage.db.integrity.explain_sqlite_error` turns them into one user error)."""
    return sqlite3.connect(readonly_uri(path, immutable=immutable), uri=True, timeout=timeout)


_PERMISSION_CODES = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")
_CORRUPT_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def sqlite_error_kind(exc: BaseException) -> str | None:
    """``damaged``, ``permission``, ``busy``, ``full``, ``io`` — or None for anything else (a bug)."""
    orig = getattr(exc, "orig", exc)
    name = str(getattr(orig, "sqlite_errorname", "") or "")
    low = str(orig).lower()
    if name.startswith(_CORRUPT_CODES) or "malformed" in low or "not a database" in low:
        return "damaged"
    if name.startswith(_PERMISSION_CODES) or "readonly" in low or "unable to open" in low:
        return "permission"
    if _is_busy(orig):
        return "busy"
    if name.startswith("SQLITE_FULL") or "disk is full" in low:
        return "full"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in low:
        return "io"
    return None
