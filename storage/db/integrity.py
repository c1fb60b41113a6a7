"""Is this database file whole — and if not, which backup to restore, and was it damage at all?

The one place that tells a damaged file from a file you may not read or write:

* :func:`check_sqlite_file` — the SQLite magic, read before SQLite touches the file;
* :func:`page_problems` — page-count sanity from the header (a copy cut short, a file padded);
* :func:`quick_problems` — page-count sanity + ``PRAGMA quick_check``, the check every writer
  runs first (:meth:`Database.open <biodiscover.storage.db.Database.open>`): writing to a damaged
  file spreads the damage, and the automatic backups taken before the write would then copy it
  and prune the good ones;
* :func:`newest_good_backup` — the newest backup in ``<db>.backups/`` that still passes that check;
* :func:`damaged_database_error` — the one message for a damaged file: it names ``db check`` and
  that backup;
* :func:`explain_sqlite_error` — any SQLite failure as one user error: damage, permissions (a
  read-only file or folder is *not* damage: "restore a backup" there would overwrite newer work
  with older), a lock, a full disk, an I/O error.

It sits between :mod:`~biodiscover.storage.db.engine` (connections) and
:mod:`~biodiscover.storage.db.backup` (taking backups), so neither imports the other's caller.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from biodiscover.storage.db.engine import SQLITE_MAGIC, folder_of, connect_readonly, sqlite_error_kind
from biodiscover.storage.errors import DatabaseError


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not a SQLite database, without letting SQLite touch it."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
    except PermissionError:
        raise DatabaseError(f"{path}: not readable by you (permission denied); check its permissions — "
                            "the file itself is not known to be damaged") from None
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot read the database file ({exc.strerror})") from None
    if len(head) == 0:
        return  # an empty file is a fresh database
    if not head.startswith(SQLITE_MAGIC):
        # Almost always a wrong --db (a CSV, a bundle file), not damage: "restore a backup" would send the
        # user looking for backups of a file that never was a database. Real damage keeps its own message.
        raise DatabaseError(f"{path}: not a biodiscover database (not a SQLite database at all); check that "
                            "--db names the database file")


def backups_dir(db_path: Path) -> Path:
    """Where backups of ``db_path`` go by default: ``<db>.backups/`` beside it."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".backups")


def _stamp(path: Path) -> str:
    """The UTC time stamp at the end of a backup's name (sorts in time order across reasons)."""
    return path.stem.rsplit("-", 1)[-1]


def list_backups(db_path: Path) -> list[Path]:
    """Backups of ``db_path`` in its backups folder, newest first."""
    folder = backups_dir(Path(db_path))
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{Path(db_path).stem}-*.sqlite") if p.is_file()]
    return sorted(found, key=lambda p: (_stamp(p), p.stat().st_mtime), reverse=True)


def newest_good_backup(db_path: Path) -> Path | None:
    """The newest backup of ``db_path`` that passes page-count sanity and ``quick_check`` (None if none)."""
    for candidate in list_backups(db_path):
        try:
            if not quick_problems(candidate, immutable=True):
                return candidate
        except DatabaseError:
            continue
    return None


def page_problems(path: Path) -> list[str]:
    """Page-count sanity from the file header, without SQLite: a truncated or padded file.

    The header holds the page size (bytes 16-17) and, when valid (bytes 24-27
    equal 92-95), the database size in pages (28-31). A healthy file is a whole
    number of pages and no shorter than that size.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(100)
    except OSError:
        return []  # unreadable is reported by whoever opens it, as a permission problem
    if len(head) < 100:
        return [f"the file is {size} bytes, shorter than a SQLite header"] if size else []
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return [f"the header's page size {page_size} is not a power of two between 512 and 65536"]
    problems = []
    if size % page_size:
        problems.append(f"the file is {size:,} bytes, not a whole number of {page_size}-byte pages "
                        "(cut short or appended to)")
    header_pages = int.from_bytes(head[28:32], "big")
    wal = path.with_name(path.name + "-wal")
    in_use = wal.exists() and wal.stat().st_size > 0  # mid-checkpoint the header may run ahead of the file
    if header_pages and not in_use and head[24:28] == head[92:96] and size // page_size < header_pages:
        problems.append(f"the file holds {size // page_size:,} pages but its header says {header_pages:,} "
                        "(cut short)")
    return problems


def quick_problems(path: Path, *, max_errors: int = 5, immutable: bool = False) -> list[str]:
    """Page-count sanity + ``PRAGMA quick_check`` (skips index-content checks; O(file size) reads).

    ``immutable``: for files nobody writes (backups), so reading leaves no ``-shm`` behind.
    """
    path = Path(path)
    problems = page_problems(path)
    if problems:
        return problems
    try:
        conn = connect_readonly(path, immutable=immutable)
    except sqlite3.Error as exc:
        if sqlite_error_kind(exc) == "permission":
            raise explain_sqlite_error(path, exc, "read") from None
        return [f"the file cannot be opened: {exc}"]
    try:
        rows = [r[0] for r in conn.execute(f"PRAGMA quick_check({int(max_errors)})")]
        if rows != ["ok"]:
            problems.extend(" ".join(str(r).split()) for r in rows)  # SQLite's lines can hold line breaks
    except sqlite3.DatabaseError as exc:
        if sqlite_error_kind(exc) == "permission":
            raise explain_sqlite_error(path, exc, "read") from None
        problems.append(f"the file cannot be read: {exc}")
    finally:
        conn.close()
    return problems


def damaged_database_error(path: Path, detail: str) -> DatabaseError:
    """The one message for a damaged database: what failed, ``db check``, and the newest good backup."""
    path = Path(path)
    detail = " ".join(detail.split())  # one line, whatever SQLite put in it
    good = newest_good_backup(path)
    if good is not None:
        restore = (f"the newest good backup is {good} (move the damaged file aside, then copy the backup "
                   f"to {path.name})")
    else:
        restore = f"no good backup was found in {backups_dir(path)}"
    return DatabaseError(f"{path}: the database is damaged ({detail}); nothing was written. "
                         f"Run `biodiscover db check --db {path}` for details; {restore}")


#: what a caller's ``doing`` may be when the database itself is its object ("cannot read the database"); any other
#: phrase names what was being stored ("cannot register reference taxa in the database")
DATABASE_VERBS = frozenset({"read", "open", "create", "write", "write to", "back up", "optimize"})


def cannot(doing: str) -> str:
    """"cannot read the database", "cannot write proposals in the database": ``doing`` as its caller phrased it.

    Why: every ``Database._write`` names what it stores, and "cannot {doing} the database" read "cannot register
    reference taxa the database: the disk is full" (e31 review F14)."""
    return f"cannot {doing} the database" if doing in DATABASE_VERBS else f"cannot {doing} in the database"


def explain_sqlite_error(path: Path, exc: BaseException, doing: str) -> DatabaseError:
    """One user-facing error for a SQLite failure, telling permissions, locks, a full disk and damage apart.

    Why it matters: "restore it from a backup" is the right advice for a damaged
    file and the wrong one for a read-only folder — following it there would
    overwrite newer work with older.
    """
    path = Path(path)
    orig = getattr(exc, "orig", exc)
    msg = str(orig)
    kind = sqlite_error_kind(exc)
    if kind == "damaged":
        return damaged_database_error(path, f"SQLite says: {msg}")
    if kind == "permission":
        folder = folder_of(path)
        if not os.access(path, os.R_OK):
            why = "the file is not readable by you"
        elif not os.access(folder, os.W_OK | os.X_OK):
            why = f"its folder {folder} is not writable (SQLite needs it for the -wal and -shm files)"
        elif not os.access(path, os.W_OK):
            why = "the file is read-only for you"
        else:
            side = [p.name for p in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
                    if p.exists() and not os.access(p, os.R_OK | os.W_OK)]
            why = (f"{', '.join(side)} beside it belongs to another user" if side
                   else "the operating system refused access")
        return DatabaseError(f"{path}: {cannot(doing)}: {why} (permissions, not damage: "
                             f"the file was left untouched; SQLite said: {msg})")
    if kind == "busy":
        return DatabaseError(f"{path}: the database is locked by another process; try again when it finishes")
    if kind == "full":
        return DatabaseError(f"{path}: {cannot(doing)}: the disk is full")
    if kind == "io":
        return DatabaseError(f"{path}: {cannot(doing)}: input/output error from the disk ({msg})")
    return DatabaseError(f"{path}: {cannot(doing)} ({msg})")
