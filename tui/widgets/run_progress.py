"""Counts of the queue and progress of a batch run writing to the same database.

The app polls the database from a thread worker on a timer and hands the
result here; this widget only formats it.
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static

STATUS_STYLES = {"pending": "yellow", "accepted": "green", "rejected": "red", "assigned": "cyan"}


def render_counts(counts: Mapping[str, int]) -> Text:
    """``pending 12 · accepted 3 · rejected 1 · assigned 2`` (what a reviewer decides between; assigned =
    identified as a known species, shown once there is one)."""
    text = Text()
    shown = ("pending", "accepted", "rejected") + (("assigned",) if counts.get("assigned") else ())
    for i, status in enumerate(shown):
        if i:
            text.append(" · ", style="grey50")
        text.append(f"{status} ", style="grey70")
        text.append(f"{int(counts.get(status, 0)):,}", style=f"bold {STATUS_STYLES[status]}")
    return text


def _get(run: Any, key: str) -> Any:
    """Read ``key`` from a mapping or from an object (``storage.db.runs.RunProgress``)."""
    return run.get(key) if isinstance(run, Mapping) else getattr(run, key, None)


def render_run(run: Any) -> Text:
    """``run``: a ``RunProgress`` (or a mapping with the same keys), or None."""
    if not run:
        return Text("no batch run", style="grey50")
    status = str(_get(run, "status") or "?")
    style = {"running": "bold cyan", "completed": "green", "failed": "bold red",
             "interrupted": "yellow"}.get(status, "")
    text = Text()
    text.append(f"run {_get(run, 'id')} ", style="grey70")
    text.append(status, style=style)
    done, total = _get(run, "done"), _get(run, "total")
    if total and status == "completed" and int(done or 0) == int(total):
        # all done: the count once (``1,200/1,200`` took the room the counts needed at 80 columns)
        text.append(f" {int(total):,}", style="grey70")
    elif total:
        text.append(f" {int(done or 0):,}/{int(total):,}", style="grey70")
    if _get(run, "stale"):
        text.append(" (no heartbeat)", style="bold red")
    return text


class QueueStatus(Horizontal):
    """One line: counts on the left, the watched run and its bar on the right."""

    DEFAULT_CSS = """
    QueueStatus { height: 1; }
    QueueStatus > #counts { width: 1fr; }
    QueueStatus > #run { width: auto; max-width: 34; margin-left: 1; }
    QueueStatus > ProgressBar { width: 12; margin-left: 1; }
    QueueStatus > ProgressBar Bar { width: 6; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="counts")
        yield Static("", id="run")
        yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="run-bar")

    def show(self, counts: Mapping[str, int], run: Any) -> None:
        self.query_one("#counts", Static).update(render_counts(counts))
        self.query_one("#run", Static).update(render_run(run))
        bar = self.query_one(ProgressBar)
        total = _get(run, "total") if run else None
        # The bar is for a job in progress; a finished run needs only its line.
        bar.display = bool(total) and _get(run, "status") == "running"
        if total:
            bar.update(total=float(total), progress=float(_get(run, "done") or 0))
