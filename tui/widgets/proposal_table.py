"""Proposal table: one page of the queue at a time, so 100k proposals cost one page.

The database pages and sorts (indexed query); this table only shows the page
it is given and says which slice of the total it is. Moving the cursor past the
last row (or ``]`` / ``[``) asks the screen for the next / previous page.

The two name columns (parent / provisional name, nearest known species) share
whatever width the terminal has beyond the numeric columns, and a name that
still does not fit ends in ``…``: a silently cut ``Dreum sp. BIOUG9`` reads as
another species than ``Dreum sp. BIOUG95524``.

Beside each row's status mark (``· ✓ ✗ =``) stand its marks (``storage.db.QueueMark``): ⚑ / ⚐ where a known
species met elsewhere may be the candidate's own, within / beyond the 3 % one species usually spans (with the gap
itself where the terminal is wide), ≡ where a live candidate of another run is probably the same species (the
distance to it where wide: ``≡0.2%``), ✎ where reviewers wrote a note, ⚠ where its data is at fault (reads not
usable as COI, ``⚠COI`` where wide, or members matching a record the reference dropped, ``⚠key``). Why: on a real
plate the flagged candidates were visible only through ``f known=elsewhere``, a candidate with a note looked like any
other (e25 finding 7), one of junk reads like the most distinct new species (e25 finding 4), and a weekly batch's
species met again sat in rows far apart (e26 batch, defect 1). An identity below the run's order cut-off ends in ↓
(``82.8↓``, in the ident% column's one spare cell): the nearest known species says nothing of the order (e33 review
F4: beetles nearest a moth at 82.8 %).

The last column, "from", names the collection each candidate's run triaged (``Database.run_collections``), when the
database's candidates come from more than one and the terminal has room for it beside the names at their smallest
(from 90 columns on): what all the names share at either end is left out (``2026-w01-costa-rica`` and
``2026-w02-norway`` read ``w01-costa-rica`` and ``w02-norway``), and ``f from=costa`` filters on the whole name. Why:
a reviewer of a batch database holding five weeks' plates could not tell which plate a candidate came from.
"""

from __future__ import annotations

import re
from typing import Any, Container, Mapping, Sequence

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import DataTable

from biodiscover.storage.db.proposals import MARK_KINDS
from biodiscover.tui.evidence import TWIN_MARK, below_order_mark, flag_mark, shown_name

STATUS_MARK = {"pending": ("·", "yellow"), "accepted": ("✓", "green"), "rejected": ("✗", "red"),
               "assigned": ("=", "cyan"),
               "merged": ("⇢", "grey50"), "superseded": ("↻", "grey50"), "withdrawn": ("–", "grey50")}
#: (key, header, width); ``None`` marks the columns sized by :func:`column_widths` (the two names, and the status
#: with the marks, which shows each mark's figure where the terminal is wide).
COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("id", "#", 5), ("status", "", None), ("taxon", "candidate", None),
    ("size", "n", 4), ("novelty", "nov", 4), ("identity", "ident%", 6), ("nearest", "nearest known", None),
    ("from", "from", None),
)
#: The collection column (:func:`column_widths`): shown from this width on, when the names keep their smallest
#: widths beside it, and never wider than the most.
FROM_MIN, FROM_MAX = 8, 16
#: Smallest widths of the name columns (they fit 80 columns) and the most they grow to. The nearest known species
#: gave a cell to the twin mark's slot (≡): at 80 columns it is cut one letter sooner, the candidate's name is not.
NAME_MIN = {"taxon": 21, "nearest": 18}
NAME_MAX = {"taxon": 40, "nearest": 48}
#: Each mark kind's room (``storage.db.proposals.MARK_KINDS``): (narrow, wide) cells; a kind not listed (a mark
#: added in storage before its drawing) takes one cell and shows as ``•``.
MARK_ROOM: dict[str, tuple[int, int]] = {"elsewhere": (1, 6), "twin": (1, 5), "note": (1, 1), "data": (1, 4)}
#: From this many columns on, marks show their figures (``⚑2.9%``): at 80 the names need every cell.
WIDE_MARKS = 120
_CELL_PADDING = 2  # DataTable's default cell_padding=1 on both sides
_SCROLLBAR = 3  # vertical scrollbar (2) and one spare column


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending in ``…`` when something was cut."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


_QUALIFIED = re.compile(r"^(?P<head>.+?)(?P<tail> (?:gen\. )?sp\. \S+)$")


def fit_name(name: str, width: int) -> str:
    """A candidate's name cut to ``width``, keeping its number (``cand16``, ``BD-0007``): that is what tells two
    candidates of one taxon apart; and keeping its open-nomenclature qualifier (``gen. sp.``, ``sp.``), so every row
    reads alike: the taxon is shortened instead (``Coenosii… gen. sp. cand24``). Only where not even a letter of
    the taxon would be left does the qualifier go (``Lepidoptera cand17``).

    Why: first (the demo at 80 columns) "Gebeixinae gen. sp. c…" hid the number; then (e33 review F8) the qualifier
    went first, and a season's queue read "Coenosiinae cand24" beside "Syrphinae gen. sp. cand23", as if the two
    were named differently (e36 season review, finding 7)."""
    m = _QUALIFIED.match(name)
    if len(name) <= width or m is None:
        return fit(name, width)
    tail = m["tail"]
    if len(tail) + 2 <= width:  # a letter of the taxon and its …
        return fit(m["head"], width - len(tail)) + tail
    number = " " + tail.split()[-1]
    if len(number) + 4 > width:
        return fit(name, width)
    return fit(m["head"], width - len(number)) + number


def marks_width(wide: bool) -> int:
    """The status-and-marks column's width: the status mark, then one slot per mark kind (a blank between them
    where ``wide``), so each kind stays in its own place down the column."""
    rooms = [MARK_ROOM.get(kind, (1, 1))[wide] for kind in MARK_KINDS]
    return 1 + sum(rooms) + (len(rooms) if wide else 0)


def column_widths(total: int, collections: bool = False) -> dict[str, int]:
    """Width of every column for a table ``total`` cells wide (the name columns share the spare room); with
    ``collections`` (candidates of more than one collection) the "from" column takes up to half the spare room,
    :data:`FROM_MIN` to :data:`FROM_MAX`, where that leaves the names their smallest widths; else it is left out
    (no ``from`` key)."""
    fixed = {key: width for key, _, width in COLUMNS if width is not None}
    fixed["status"] = marks_width(total >= WIDE_MARKS)
    used = sum(fixed.values()) + _CELL_PADDING * (len(COLUMNS) - 1) + _SCROLLBAR + sum(NAME_MIN.values())
    spare = max(0, total - used)
    if collections and spare >= FROM_MIN + _CELL_PADDING:
        fixed["from"] = min(FROM_MAX, max(FROM_MIN, (spare - _CELL_PADDING) // 2))
        spare -= fixed["from"] + _CELL_PADDING
    taxon = min(NAME_MAX["taxon"], NAME_MIN["taxon"] + spare // 2)
    nearest = min(NAME_MAX["nearest"], NAME_MIN["nearest"] + spare - (taxon - NAME_MIN["taxon"]))
    return {**fixed, "taxon": taxon, "nearest": nearest}


_NAME_PART = re.compile(r"[^-_. ]+[-_. ]*")


def short_collections(names: Mapping[int, str]) -> dict[int, str]:
    """Run id → its collection's name less the words every name of ``names`` starts or ends with (``2026-w01-costa``
    and ``2026-w02-norway`` → ``w01-costa``, ``w02-norway``), each name keeping one word at least; the whole names
    where that would make two of them alike. The part a column of a few cells has room for is the part that tells
    the collections apart."""
    parts = {rid: _NAME_PART.findall(name) or [name] for rid, name in names.items()}
    if len(set(names.values())) < 2:
        return dict(names)
    words = [[w.rstrip("-_. ") for w in p] for p in parts.values()]
    room = min(len(w) for w in words) - 1
    head = 0
    while head < room and len({w[head] for w in words}) == 1:
        head += 1
    tail = 0
    while tail < room - head and len({w[-1 - tail] for w in words}) == 1:
        tail += 1
    short = {rid: "".join(p[head:len(p) - tail]).rstrip("-_. ") for rid, p in parts.items()}
    distinct = len(set(short.values())) == len(set(names.values()))
    return short if distinct else dict(names)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def mark_text(kind: str, value: float | None, wide: bool) -> Text:
    """One mark as the queue draws it, padded to its room (:data:`MARK_ROOM`): ``elsewhere`` ⚑ within the 3 % one
    species usually spans (``storage.evidence.SPECIES_SPAN``, the grading the ⚑ line gives), ⚐ beyond it, the gap
    after it where ``wide``; ``note`` ✎. The two flags differ in shape, not only in colour."""
    room = MARK_ROOM.get(kind, (1, 1))[wide]
    if kind == "elsewhere":
        mark, style = flag_mark(value)
        shown = mark + (f"{value * 100:.1f}%" if wide and value is not None else "")
        return Text(shown[:room].ljust(room), style=style)
    if kind == "twin":  # another run's candidate is probably this species (``storage.db.Database.twins``)
        shown = TWIN_MARK + (f"{value * 100:.1f}%" if wide and value is not None else "")
        return Text(shown[:room].ljust(room), style="bold cyan")
    if kind == "note":
        return Text("✎".ljust(room), style="cyan")
    if kind == "data":  # reads not usable as COI (``COI`` where wide) or a record the reference dropped (``key``)
        shown = "⚠" + (("COI" if value else "key") if wide else "")
        return Text(shown[:room].ljust(room), style="bold red")
    return Text("•".ljust(room))


def status_cell(status: str, marks: Sequence[Any] = (), wide: bool = False) -> Text:
    """The status mark (``· ✓ ✗ =``) and the row's marks (``storage.db.QueueMark``), each kind in its own slot."""
    mark, style = STATUS_MARK.get(status, ("?", ""))
    text = Text(mark, style=style)
    have = {m.kind: m for m in marks}
    for kind in MARK_KINDS:
        if wide:
            text.append(" ")
        m = have.get(kind)
        text.append_text(mark_text(kind, m.value, wide) if m is not None
                         else Text(" " * MARK_ROOM.get(kind, (1, 1))[wide]))
    text.rstrip()
    return text


def row_cells(p: Any, widths: dict[str, int] | None = None, provisional: Container[int] = (),
              marks: Sequence[Any] = (), collection: str | None = None,
              order_cutoff: float | None = None) -> list[Any]:
    """Cells for a ``storage.db.ProposalSummary``; names cut with ``…`` to ``widths``; a candidate placed in one of
    the ``provisional`` taxa (ids) has its genus marked ◆; ``marks``: its ``storage.db.QueueMark`` s;
    ``collection``: what the "from" column shows (:func:`short_collections`), where ``widths`` has that column;
    ``order_cutoff``: its run's (``Database.run_order_cutoffs``): an identity below it ends in ↓ (``82.8↓``: a moth
    nearest to beetles, e33 review F4), any other in a blank, so the figures stay aligned in the ident% column."""
    w = widths or column_widths(80)
    identity = None if p.nearest_identity is None else p.nearest_identity * (100 if p.nearest_identity <= 1 else 1)
    below = below_order_mark(None if identity is None else identity / 100, order_cutoff, blank=" ")
    name = shown_name(p, provisional)
    return [
        Text(str(p.id), justify="right"),
        status_cell(p.status, marks, wide=w["status"] > marks_width(False)),
        # The one name of the candidate (storage.records.candidate_name): the provisional name once given,
        # else the working name "<parent> sp. cand<id>" every export uses too.
        Text(fit_name(name, w["taxon"]), style="green" if p.provisional_name else ""),
        Text(str(p.size), justify="right"),
        Text(_fmt(p.novelty), justify="right"),
        # padded by hand, not justified right: Rich strips a right-justified cell's trailing blank
        Text(("–" if identity is None else f"{identity:.1f}").rjust(w["identity"] - 1) + below),
        Text(fit(p.nearest_species or "–", w["nearest"])),
        *([Text(fit(collection or "–", w["from"]), style="grey70")] if "from" in w else []),
    ]


class ProposalTable(DataTable[Any]):
    """A ``DataTable`` over one page; ``rows`` keeps the summaries in display order."""

    class PageRequest(Message):
        """The cursor ran off the page: ``direction`` is +1 (next) or -1 (previous)."""

        def __init__(self, direction: int) -> None:
            super().__init__()
            self.direction = direction

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.rows_shown: list[Any] = []
        self.provisional: Container[int] = ()
        #: proposal id → its marks (``storage.db.QueueMark``), for the rows shown
        self.marks: Mapping[int, Sequence[Any]] = {}
        #: run id → what the "from" column shows of its collection (:func:`short_collections`)
        self.collections: Mapping[int, str] = {}
        #: run id → its order cut-off (``Database.run_order_cutoffs``): an identity below it is marked ↓
        self.cutoffs: Mapping[int, float] = {}
        self.page_offset = 0
        self.total = 0
        self.widths = column_widths(80)

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label, _ in COLUMNS:
            if key in self.widths:
                self.add_column(label, key=key, width=self.widths[key])

    def _fit_columns(self, width: int) -> bool:
        """Size the columns for ``width`` cells (the "from" column where more than one collection is named);
        True when they changed (the table is then empty: the caller draws the page)."""
        widths = column_widths(width, collections=len(set(self.collections.values())) > 1)
        if widths == self.widths:
            return False
        self.widths = widths
        self.clear(columns=True)
        self._add_columns()
        return True

    def on_resize(self, event: events.Resize) -> None:
        current = self.current
        if self._fit_columns(event.size.width):
            self.show_page(self.rows_shown, self.page_offset, self.total,
                           keep_id=current.id if current is not None else None, provisional=self.provisional,
                           marks=self.marks)

    def show_page(self, rows: Sequence[Any], offset: int, total: int, keep_id: int | None = None,
                  cursor: int | None = None, provisional: Container[int] = (),
                  marks: Mapping[int, Sequence[Any]] | None = None,
                  collections: Mapping[int, str] | None = None,
                  cutoffs: Mapping[int, float] | None = None) -> None:
        """Replace the page; put the cursor on ``keep_id`` if present, else on row ``cursor``; ``provisional``:
        the ids of the provisional taxa (a candidate in one is marked, :func:`row_cells`); ``marks``: proposal id →
        its marks; ``collections``: run id → its collection's name (``Database.run_collections``; None keeps the
        last page's); ``cutoffs``: run id → its order cut-off (``Database.run_order_cutoffs``; None keeps the last
        page's)."""
        if collections is not None and (short := short_collections(collections)) != self.collections:
            self.collections = short
            self._fit_columns(self.size.width)
        self.rows_shown = list(rows)
        self.provisional, self.marks = provisional, dict(marks or {})
        if cutoffs is not None:
            self.cutoffs = dict(cutoffs)
        self.page_offset, self.total = offset, total
        self.clear()
        for p in self.rows_shown:
            self.add_row(*row_cells(p, self.widths, provisional, self.marks.get(p.id, ()),
                                    self.collections.get(p.run_id), self.cutoffs.get(p.run_id)), key=str(p.id))
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
        if (self.rows_shown and self.cursor_row >= len(self.rows_shown) - 1
                and self.page_offset + len(self.rows_shown) < self.total):
            self.post_message(self.PageRequest(+1))
            return
        super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if self.rows_shown and self.cursor_row == 0 and self.page_offset > 0:
            self.post_message(self.PageRequest(-1))
            return
        super().action_cursor_up()
