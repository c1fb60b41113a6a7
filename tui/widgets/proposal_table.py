"""Proposal table: one page of the queue at a time, so 100k proposals cost one page.

The database pages and sorts (indexed query); this table only shows the page
it is given and says which slice of the total it is. Moving the cursor past the
last row (or ``]`` / ``[``) asks the screen for the next / previous page.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

STATUS_MARK = {"pending": ("·", "yellow"), "accepted": ("✓", "green"), "rejected": ("✗", "red"),
               "merged": ("⇢", "grey50"), "superseded": ("↻", "grey50"), "withdrawn": ("–", "grey50")}
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("id", "#", 5), ("status", "", 1), ("taxon", "parent / name", 22),
    ("size", "n", 4), ("novelty", "nov", 4), ("identity", "ident", 5), ("nearest", "nearest known", 20),
)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def row_cells(p: Any) -> list[Any]:
    """Cells for a ``storage.db.ProposalSummary``."""
    mark, style = STATUS_MARK.get(p.status, ("?", ""))
    identity = None if p.nearest_identity is None else p.nearest_identity * (100 if p.nearest_identity <= 1 else 1)
    return [
        Text(str(p.id), justify="right"),
        Text(mark, style=style),
        # A decided candidate is known by its provisional name (which names the parent), a pending one by its parent.
        Text(p.provisional_name, style="green") if p.provisional_name else Text(p.parent_name or "–"),
        Text(str(p.size), justify="right"),
        Text(_fmt(p.novelty), justify="right"),
        Text("–" if identity is None else f"{identity:.1f}", justify="right"),
        p.nearest_species or "–",
    ]


class ProposalTable(DataTable):
    """A ``DataTable`` over one page; ``rows`` keeps the summaries in display order."""

    class PageRequest(Message):
        """The cursor ran off the page: ``direction`` is +1 (next) or -1 (previous)."""

        def __init__(self, direction: int) -> None:
            super().__init__()
            self.direction = direction

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.rows_shown: list[Any] = []
        self.page_offset = 0
        self.total = 0

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def show_page(self, rows: Sequence[Any], offset: int, total: int, keep_id: int | None = None,
                  cursor: int | None = None) -> None:
        """Replace the page; put the cursor on ``keep_id`` if present, else on row ``cursor``."""
        self.rows_shown = list(rows)
        self.page_offset, self.total = offset, total
        self.clear()
        for p in self.rows_shown:
            self.add_row(*row_cells(p), key=str(p.id))
        if not self.rows_shown:
            return
        target = 0 if cursor is None else max(0, min(cursor, len(self.rows_shown) - 1))
        if keep_id is not None:
            for i, p in enumerate(self.rows_shown):
                if p.id == keep_id:
                    target = i
                    break
        self.move_cursor(row=target, animate=False)

    @property
    def current(self) -> Any | None:
        if not self.rows_shown or self.cursor_row is None or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row]

    def action_cursor_down(self) -> None:
        if self.rows_shown and self.cursor_row >= len(self.rows_shown) - 1 and self.page_offset + len(self.rows_shown) < self.total:
            self.post_message(self.PageRequest(+1))
            return
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.rows_shown and self.cursor_row == 0 and self.page_offset > 0:
            self.post_message(self.PageRequest(-1))
            return
        super().action_cursor_up()
