"""One timestamp format for the whole database (ISO-8601 UTC, microseconds, ``Z``)."""

from __future__ import annotations

from datetime import datetime, UTC


def utcnow() -> str:
    """Now as ``2026-01-02T03:04:05.123456Z`` — sortable as text, readable in any SQLite shell."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(ts: str | None) -> datetime | None:
    if ts is None:
        return None
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
