"""What every part of :class:`~biodiscover.storage.db.Database` relies on: its path, engine and transactions.

Why a base class: the database API is split by concept into mixins (``ingest``, ``runs``,
``proposals``, ``reviews``), one module each, and they all call the handle's transactions.
Declaring those here lets the type checker see the calls (they hid behind 41
``type: ignore[attr-defined]`` comments) without a mixin importing ``database`` (an import
circle). :class:`~biodiscover.storage.db.database.Database` implements every method.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from collections.abc import Iterator, Sequence
from typing import Any, Callable, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

T = TypeVar("T")

#: ids per ``IN (…)`` list. SQLite before 3.32 refuses more than 999 bound parameters in a statement (32,766
#: since); every chunk size up to that limit reads the same rows.
IN_CHUNK = 900  # pragma: no mutate the chunk size: any value up to SQLite's 999-parameter limit reads the same rows


def chunked(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (the last one shorter): the ``IN (…)`` lists of one lookup."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


class DatabaseCore:
    """The handle's state and transactions, as the API mixins see them."""

    path: Path
    engine: Engine
    readonly: bool

    def _write(self, fn: Callable[[Connection], T], what: str = "write") -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction (retried while the file is busy)."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        """A read transaction (one consistent snapshot)."""
        raise NotImplementedError

    def _auto_backup(self, reason: str) -> Path | None:
        """A backup before a bulk job, unless the database holds nothing worth saving yet."""
        raise NotImplementedError

    def optimize(self) -> None:
        """Refresh the query planner's statistics after bulk writes."""
        raise NotImplementedError


def dbapi(conn: Connection) -> Any:
    """The sqlite3 connection under ``conn``, for the few hot paths that skip SQLAlchemy's per-statement cost.

    Typed ``Any`` as sqlite3's own connection is; SQLAlchemy's type says it may be None (a closed
    connection), which inside a transaction it never is.
    """
    raw = conn.connection.dbapi_connection
    if raw is None:
        raise RuntimeError("the connection is closed")
    return raw


def inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key an ``INSERT`` made."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the insert returned no primary key")
    return int(key[0])


def table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a model class (SQLModel sets ``__table__`` when the class is made, untyped)."""
    value = model.__dict__.get("__table__")
    if not isinstance(value, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return value
