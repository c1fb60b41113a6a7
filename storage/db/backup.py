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
    from biodiscover.storage.db.engine import check_sqlite_file, connect_readonly, explain_sqlite_error

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
    integrity: list[str] = []
    try:
        src = connect_readonly(db_path)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst, pages=4096)
                # a backup is one self-contained file: reading it later must not need -wal/-shm files
                dst.execute("PRAGMA journal_mode = DELETE")
                integrity = [r[0] for r in dst.execute("PRAGMA integrity_check(5)")]
            finally:
                dst.close()
        finally:
            src.close()
        if integrity != ["ok"]:
            tmp.unlink(missing_ok=True)
            from biodiscover.storage.db.check import damaged_database_error

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
    from biodiscover.storage.db.check import quick_problems

    for candidate in list_backups(db_path):
        try:
            if not quick_problems(candidate, immutable=True):
                return candidate
        except DatabaseError:
            continue
    return None


def _prune(db_path: Path, reason: str, keep: int, *, protect: Path) -> None:
    """Delete all but the newest ``keep`` backups of ``reason``; ``protect`` (just verified) always stays."""
    folder = backups_dir(db_path)
    old = sorted((p for p in folder.glob(f"{db_path.stem}-{reason}-*.sqlite") if p != protect), key=_stamp)
    for path in old[: max(0, len(old) - max(keep - 1, 0))]:
        path.unlink(missing_ok=True)
        log.debug("pruned old backup %s", path)
