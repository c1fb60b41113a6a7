"""Online backups with SQLite's backup API (consistent even while others write).

Why the backup API rather than copying the file: a WAL database is the main file
*plus* the ``-wal`` file; a plain copy taken mid-write can be torn. The backup API
copies a consistent snapshot page by page and never blocks writers for long.
Backups are written to a temporary name and renamed, so a crash never leaves a
half backup that looks whole.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from biodiscover.storage.errors import DatabaseError

log = logging.getLogger(__name__)

#: Automatic backups (before migrations and bulk jobs) kept per database.
KEEP_AUTOMATIC = 3


def backups_dir(db_path: Path) -> Path:
    """Where backups of ``db_path`` go by default: ``<db>.backups/`` beside it."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".backups")


def backup_database(db_path: Path, dest: Path | None = None, *, reason: str = "manual",
                    keep: int | None = None) -> Path:
    """Copy ``db_path`` to ``dest`` (default ``<db>.backups/<stem>-<reason>-<UTC time>.sqlite``).

    ``keep`` prunes older backups with the same ``reason`` to that many.
    """
    db_path = Path(db_path)
    if not db_path.is_file():
        raise DatabaseError(f"{db_path}: no database to back up")
    from biodiscover.storage.db.engine import check_sqlite_file

    check_sqlite_file(db_path)
    if dest is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        dest = backups_dir(db_path) / f"{db_path.stem}-{reason}-{stamp}.sqlite"
    dest = Path(dest)
    if dest.exists():
        raise DatabaseError(f"{dest}: backup target already exists; choose another path")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"{dest.parent}: cannot create the backup folder ({exc.strerror})") from None
    tmp = dest.with_name(dest.name + ".partial")
    try:
        src = sqlite3.connect(f"file:{db_path.resolve()}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst, pages=4096)
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise DatabaseError(f"{db_path}: backup to {dest} failed ({exc})") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatabaseError(f"{dest}: cannot write the backup ({exc.strerror})") from None
    log.info("backed up %s to %s", db_path, dest)
    if keep is not None:
        _prune(db_path, reason, keep)
    return dest


def _prune(db_path: Path, reason: str, keep: int) -> None:
    folder = backups_dir(db_path)
    old = sorted(folder.glob(f"{db_path.stem}-{reason}-*.sqlite"))
    for path in old[: max(0, len(old) - keep)]:
        path.unlink(missing_ok=True)
        log.debug("pruned old backup %s", path)
