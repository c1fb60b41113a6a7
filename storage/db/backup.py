"""Online backups with SQLite's backup API (consistent even while others write).

Why the backup API rather than copying the file: a WAL database is the main file
*plus* the ``-wal`` file; a plain copy taken mid-write can be torn. The backup API
copies a consistent snapshot page by page and never blocks writers for long.
Backups are written to a temporary name and renamed, so a crash never leaves a
half backup that looks whole.

Every backup is verified when taken (``PRAGMA integrity_check`` on the copy
before it is renamed into place): a copy of a damaged database is refused, never
stored, so it can never push a good backup out through pruning. Pruning keeps
the newest ``keep`` backups of a reason and never deletes the backup just taken
(which is then the newest good one); :func:`newest_good_backup` finds the newest
backup that still passes a quick check, for the message that tells a user which
file to restore.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime, UTC
from pathlib import Path

from biodiscover.storage.db.engine import connect_readonly
from biodiscover.storage.db.integrity import (  # noqa: F401  (newest_good_backup: re-exported)
    backups_dir,
    check_sqlite_file,
    damaged_database_error,
    explain_sqlite_error,
    list_backups,
    newest_good_backup,
)
from biodiscover.storage.errors import DatabaseError

log = logging.getLogger(__name__)

#: Automatic backups (before migrations and bulk jobs) kept per database.
KEEP_AUTOMATIC = 3
#: pages copied per step of SQLite's online backup; the loop runs to the end, so every value makes the same file
BACKUP_STEP_PAGES = 4096  # pragma: no mutate the copy is the same file whatever the step


def backup_database(db_path: Path, dest: Path | None = None, *, reason: str = "manual",
                    keep: int | None = None) -> Path:
    """Copy ``db_path`` to ``dest`` (default ``<db>.backups/<stem>-<reason>-<UTC time>.sqlite``).

    ``keep`` prunes older backups with the same ``reason`` to that many.
    """
    db_path = Path(db_path)
    if not db_path.is_file():
        raise DatabaseError(f"{db_path}: no database to back up")
    check_sqlite_file(db_path)
    if dest is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        dest = backups_dir(db_path) / f"{db_path.stem}-{reason}-{stamp}.sqlite"
    dest = Path(dest)
    if dest.exists():
        raise DatabaseError(f"{dest}: backup target already exists; choose another path")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"{dest.parent}: cannot create the backup folder ({exc.strerror})") from None
    if not os.access(dest.parent, os.W_OK | os.X_OK):
        raise DatabaseError(f"{dest}: cannot write the backup: folder {dest.parent} is not writable "
                            f"(the database {db_path} was not touched)")
    tmp = dest.with_name(dest.name + ".partial")
    integrity: list[str] = []
    try:
        try:
            dst = sqlite3.connect(tmp)
            dst.execute("BEGIN IMMEDIATE")  # opens the file for writing now, so its failure is named as such
            dst.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the destination, not the database, is the problem: say so
            tmp.unlink(missing_ok=True)
            raise DatabaseError(f"{dest}: cannot write the backup ({exc}; the database {db_path} was not touched)") \
                from None
        src = connect_readonly(db_path)
        try:
            try:
                src.backup(dst, pages=BACKUP_STEP_PAGES)
                # a backup is one self-contained file: reading it later must not need -wal/-shm files
                dst.execute("PRAGMA journal_mode = DELETE")
                integrity = [r[0] for r in dst.execute("PRAGMA integrity_check(5)")]
            finally:
                src.close()
        finally:
            dst.close()
        if integrity != ["ok"]:
            tmp.unlink(missing_ok=True)
            raise damaged_database_error(db_path, f"its copy fails integrity_check: {'; '.join(integrity[:3])}; "
                                                  "no backup was stored")
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise explain_sqlite_error(db_path, exc, "back up") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatabaseError(f"{dest}: cannot write the backup ({exc.strerror})") from None
    log.info("backed up %s to %s (integrity_check ok)", db_path, dest)
    if keep is not None:
        _prune(db_path, reason, keep, protect=dest)
    return dest


def _prune(db_path: Path, reason: str, keep: int, *, protect: Path) -> None:
    """Delete all but the newest ``keep`` backups of ``reason``; ``protect`` (just verified) always stays."""
    prefix = f"{db_path.stem}-{reason}-"
    same = [p for p in list_backups(db_path) if p.name.startswith(prefix) and p != protect]  # newest first
    for path in same[max(keep - 1, 0):]:
        path.unlink(missing_ok=True)
        log.debug("pruned old backup %s", path)
