"""Queue screen: the proposals of a run, one page at a time, with counts and run progress.

Sorting and filtering are done by the database (``Database.proposal_queue``);
this screen keeps the current query, asks for a page in a thread worker and
shows it. A timer polls counts and the watched run so a batch job writing to
the same file shows up live.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from textual import on, work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from biodiscover.storage.db.models import PROPOSAL_STATUSES
from biodiscover.storage.db.proposals import FLAG_SORT, SORT_KEYS, TWIN_SORT
from biodiscover.storage.records import listed
from biodiscover.tui.decisions import DECISION_BINDINGS, DecisionsMixin
from biodiscover.tui.screens.dialogs import TextDialog
from biodiscover.tui.widgets.proposal_table import ProposalTable
from biodiscover.tui.widgets.run_progress import QueueStatus

#: what ``s`` steps through; ``flag``: the ⚑ gap, those within the 3 % first (``storage.db.proposals.FLAG_SORT``);
#: ``twin``: each group of twins of different runs together (``storage.db.proposals.TWIN_SORT``)
SORT_CYCLE: tuple[str, ...] = ("id", "size", "novelty", "identity", "parent", "flag", "twin")
#: sorts that read best largest first (the rest smallest first: lowest identity, smallest ⚑ gap)
DESCENDING_FIRST: tuple[str, ...] = ("size", "novelty")
STATUS_CYCLE: tuple[str | None, ...] = ("pending", None, "accepted", "rejected", "assigned")
PAGE_SIZE = 100


@dataclass(frozen=True)
class QueueQuery:
    """The query the queue shows; each field maps to a ``proposal_queue`` argument."""

    status: str | None = "pending"
    parent: int | str | None = None
    parent_label: str | None = None
    min_size: int | None = None
    min_novelty: float | None = None
    max_identity: float | None = None
    min_identity: float | None = None
    search: str | None = None
    sort: str = "id"
    descending: bool = False
    run_id: int | None = None
    #: only candidates a known species met from elsewhere may be (``storage.evidence.known_elsewhere``)
    known_elsewhere: bool = False
    #: only candidates with a twin in another run (``Database.twins``: probably the same species, met again)
    twins: bool = False
    #: only candidates of runs whose collection's name holds this (``from=costa``; any case)
    collection: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return dict(status=self.status, parent=self.parent, parent_subtree=isinstance(self.parent, int),
                    run_id=self.run_id, min_size=self.min_size, min_novelty=self.min_novelty,
                    min_identity=self.min_identity, max_identity=self.max_identity, search=self.search,
                    sort=self.sort, descending=self.descending, known_elsewhere=self.known_elsewhere,
                    twins=self.twins, collection=self.collection)

    def describe(self) -> str:
        """One line for the queue header: the filter (as the filter dialog reads it) and the sort."""
        return "  ".join([f"status={self.status or 'all'}", *self.filter_terms(quote=False)[1:],
                          f"sort={self.sort}{' ↓' if self.descending else ' ↑'}"])

    def filter_terms(self, *, quote: bool = True) -> list[str]:
        """The query as filter-dialog terms (status first); identity in percent, as the table shows it."""
        parts = [f"status={self.status or 'all'}"]
        if self.parent is not None:
            label = str(self.parent_label or self.parent)
            parts.append(f"parent={shlex.quote(label) if quote else label}")
        for name, op, value in (("size", ">=", self.min_size), ("novelty", ">=", self.min_novelty),
                                ("identity", ">=", self.min_identity), ("identity", "<=", self.max_identity)):
            if value is not None:
                shown = f"{value * 100:g}" if name == "identity" else value
                parts.append(f"{name}{op}{shown}")
        if self.known_elsewhere:
            parts.append("known=elsewhere")
        if self.twins:
            parts.append("twin=yes")
        if self.collection is not None:
            parts.append(f"from={shlex.quote(self.collection) if quote else self.collection}")
        if self.search:
            parts.append(" ".join(shlex.quote(w) for w in self.search.split()) if quote else f"'{self.search}'")
        return parts

    def filter_text(self) -> str:
        """What the filter dialog opens with, so a filter is edited rather than typed again."""
        return " ".join(self.filter_terms())


#: the sort keys a filter's ``sort=`` takes: every key the database sorts by
SORT_KEYS_TYPED: tuple[str, ...] = (*SORT_KEYS, FLAG_SORT, TWIN_SORT)


def _finite(value: str) -> float:
    """A filter's number; NaN or infinity raise ValueError (``novelty>=nan`` compared false with every candidate:
    an empty queue, not an error)."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(value)
    return v


def goto_number(text: str) -> int | None:
    """The candidate number typed after ``#`` / ``:`` (``31``, ``#31``, ``:31``, ``cand31``); None for anything
    else."""
    m = re.fullmatch(r"\s*(?:#|:|cand)?\s*(\d+)\s*", text)
    return int(m.group(1)) if m else None


def parse_filter(text: str, base: QueueQuery) -> QueueQuery:
    """``size>=5 novelty>=0.9 identity<=97 parent=Megaselia status=all known=elsewhere sort=flag words…`` → a new
    query.

    Identity may be given in percent (97) or as a fraction (0.97). ``known=elsewhere``: only candidates whose
    nearest known species may be their own, met from another part of its range (the detail's ⚑ line).
    ``twin=yes``: only candidates another run's candidate is probably the same species as (the detail's ≡ line).
    ``from=NAME`` (or ``collection=NAME``): only candidates of the runs whose collection's name holds NAME, any case
    (``from=costa``; the queue's "from" column shows part of each name).
    ``sort=KEY`` sorts as ``s`` would (its usual direction; ``S`` reverses); the sort is kept when none is given.
    Raises ValueError naming the term it could not read.
    """
    q = replace(base, parent=None, parent_label=None, min_size=None, min_novelty=None, max_identity=None,
                min_identity=None, search=None, known_elsewhere=False, twins=False, collection=None)
    words: list[str] = []
    try:
        terms = shlex.split(text)
    except ValueError:  # shlex says only "No closing quotation"
        raise ValueError(f"cannot read the filter: a quote is not closed ({text!r})") from None
    for term in terms:
        for op in (">=", "<=", "="):
            if op in term:
                key, _, value = term.partition(op)
                key = key.strip().lower()
                break
        else:
            words.append(term)
            continue
        try:
            if key == "status":
                # a typo ("pendign") would select nothing and look like an empty queue
                value = value.lower()
                if value not in ("all", "live", "", *PROPOSAL_STATUSES):
                    raise ValueError
                q = replace(q, status=None if value in ("all", "live", "") else value)
            elif key == "parent":
                # The taxon picked in the tree (an id: its whole subtree) stays that taxon when the
                # filter is edited; a typed name matches the parent name.
                same = isinstance(base.parent, int) and value == base.parent_label
                q = replace(q, parent=base.parent if same else value, parent_label=value)
            elif key == "size" and op == ">=":
                q = replace(q, min_size=int(value))
            elif key == "novelty" and op == ">=":
                q = replace(q, min_novelty=_finite(value))
            elif key == "known" and op == "=" and value.lower() == "elsewhere":
                q = replace(q, known_elsewhere=True)
            elif key == "twin" and op == "=" and value.lower() in ("yes", "y", "true", "1"):
                q = replace(q, twins=True)
            elif key in ("from", "collection") and op == "=" and value.strip():
                q = replace(q, collection=value.strip())
            elif key == "sort" and op == "=" and value.lower() in SORT_KEYS_TYPED:
                q = replace(q, sort=value.lower(), descending=value.lower() in DESCENDING_FIRST)
            elif key == "identity":
                v = _finite(value)
                v = v / 100 if v > 1 else v
                q = replace(q, max_identity=v) if op == "<=" else replace(q, min_identity=v)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"cannot read filter term {term!r} (try size>=5 novelty>=0.9 identity<=97 "
                             f"parent=NAME from=COLLECTION known=elsewhere twin=yes sort={'|'.join(SORT_CYCLE)} "
                             f"status=pending|accepted|rejected|assigned|all)") from None
    if words:
        q = replace(q, search=" ".join(words))
    return q


class QueueScreen(DecisionsMixin, Screen[None]):
    """The review queue (the app's first screen)."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="queue.open"),
        *DECISION_BINDINGS,
        Binding("s", "cycle_sort", "Sort", id="queue.sort"),
        Binding("S", "reverse_sort", "Reverse sort", id="queue.reverse", show=False),
        Binding("f", "filter", "Filter", id="queue.filter"),
        Binding("tab", "cycle_status", "Status", id="queue.status", show=False),
        Binding("t", "taxonomy", "Taxa", id="queue.taxonomy"),
        Binding("number_sign,colon", "goto", "Open candidate #N", id="queue.goto", show=False),
        Binding("right_square_bracket", "page(1)", "Next page", id="queue.next_page", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", id="queue.previous_page", show=False),
        Binding("ctrl+r", "refresh", "Reload", id="queue.reload", show=False),
    ]

    def __init__(self, query: QueueQuery | None = None) -> None:
        super().__init__(id="queue")
        self.query_state = query or QueueQuery()
        self.page_offset = 0
        self._keep_id: int | None = None
        self._keep_row: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield QueueStatus(id="queue-status")
        yield Static("", id="queue-query")
        yield ProposalTable(id="proposals")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.reload()
        self.poll_status()
        self.set_interval(self.app.poll_seconds, self.poll_status)

    # -- data ----------------------------------------------------------------------------------------------
    def current_proposal(self) -> Any | None:
        return self.query_one(ProposalTable).current

    def reload(self, *, advance: bool = False, shown: tuple[int, int] | None = None) -> None:
        """Fetch the page again; keep the cursor on the same proposal, or the same row after a decision.

        ``shown``: (proposal id, queue position) of the proposal the detail showed last — back from it, the
        cursor lands there, on whichever page holds it: a reviewer who walked on with ``j``/``k`` is not sent
        back to where they opened the first one."""
        table = self.query_one(ProposalTable)
        cur = table.current
        self._keep_id = None if (advance or cur is None) else cur.id
        self._keep_row = table.cursor_row
        if shown is not None:
            self._keep_id = shown[0]
            self.page_offset = max(0, shown[1]) // PAGE_SIZE * PAGE_SIZE
            self._keep_row = max(0, shown[1]) - self.page_offset
        self.load_page()
        self.poll_status()

    @work(thread=True, exclusive=True, group="queue-page", exit_on_error=False, description="load queue page")
    def load_page(self) -> None:
        q, offset = self.query_state, self.page_offset
        try:
            rows, total = self.app.db.proposal_queue(**q.kwargs(), offset=offset, limit=PAGE_SIZE)
            if not rows and offset > 0 and total > 0:  # the page emptied under us (decisions, filters)
                offset = max(0, (total - 1) // PAGE_SIZE * PAGE_SIZE)
                rows, total = self.app.db.proposal_queue(**q.kwargs(), offset=offset, limit=PAGE_SIZE)
            provisional = self.app.db.provisional_taxa()
            marks = self.app.db.proposal_marks([r.id for r in rows])
            collections = self.app.db.run_collections()
            cutoffs = self.app.db.run_order_cutoffs()
            # one run's review with nothing left: later runs may hold its specimens now (it read "0 of 0 … none
            # left to review" where week 2's 33 pending candidates were run 10's, e31 F11)
            later = self.app.db.run_superseded(q.run_id)["by_runs"] if not rows and q.run_id is not None else []
        except Exception as exc:  # noqa: BLE001 - show any DB failure, keep the app alive
            self.app.call_from_thread(self.app.notify, f"queue: {exc}", severity="error")
            self.app.call_from_thread(self.decision_shown)
            return
        if not get_current_worker().is_cancelled:  # a newer query replaced this one
            self.app.call_from_thread(self._show_page, rows, offset, total, provisional, marks, collections, later,
                                      cutoffs)

    def _show_page(self, rows: list[Any], offset: int, total: int, provisional: frozenset[int] = frozenset(),
                   marks: Mapping[int, Any] | None = None, collections: Mapping[int, str] | None = None,
                   later: Sequence[int] = (), cutoffs: Mapping[int, float] | None = None) -> None:
        self.decision_shown()
        self.page_offset = offset
        table = self.query_one(ProposalTable)
        table.show_page(rows, offset, total, keep_id=self._keep_id, cursor=self._keep_row, provisional=provisional,
                        marks=marks, collections=collections, cutoffs=cutoffs)
        shown = f"{offset + 1}–{offset + len(rows)} of {total:,}" if rows else f"0 of {total:,}"
        line = f"{shown}   {self.query_state.describe()}"
        if not rows:
            line += "   " + self.empty_hint(later)
        self.query_one("#queue-query", Static).update(line)

    def empty_hint(self, later: Sequence[int] = ()) -> str:
        """What to do when the page is empty: an empty screen does not say whether the run is done; ``later``: the
        runs that re-clustered this run's candidates (``Database.run_superseded``), where its specimens are now."""
        q = self.query_state
        if q.filter_terms()[1:]:
            return "nothing matches: f edits the filter"
        moved = ""
        if later and q.run_id is not None:
            many = "s" if len(later) > 1 else ""
            moved = (f"; its specimens were triaged again by run{many} {listed(list(later))}: review --run "
                     f"{later[-1]}")
        if q.status == "pending":
            return "none left to review" + (f"{moved} (Tab shows decided ones)" if moved else
                                            ": Tab shows decided ones")
        return "Tab: other statuses" + moved
        return "Tab: other statuses"

    @work(thread=True, exclusive=True, group="queue-status", exit_on_error=False, description="poll counts")
    def poll_status(self) -> None:
        db = self.app.db
        try:
            counts = db.queue_counts(self.query_state.run_id)
            run = db.run_progress(self.app.run_id) if self.app.run_id is not None else db.latest_run()
        except Exception as exc:  # noqa: BLE001 - a failed poll must not kill the review
            self.app.call_from_thread(self.app.notify, f"status: {exc}", severity="warning")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.query_one(QueueStatus).show, counts, run)

    # -- navigation ----------------------------------------------------------------------------------------
    @on(ProposalTable.PageRequest)
    def _page_request(self, event: ProposalTable.PageRequest) -> None:
        self.action_page(event.direction, cursor_end=event.direction < 0)

    def action_page(self, direction: int, cursor_end: bool = False) -> None:
        table = self.query_one(ProposalTable)
        new = self.page_offset + direction * PAGE_SIZE
        if new < 0 or new >= max(table.total, 1):
            return
        self.page_offset = new
        self._keep_id = None
        self._keep_row = PAGE_SIZE - 1 if cursor_end else 0
        self.load_page()

    def action_open(self) -> None:
        p = self.current_proposal()
        if p is not None:
            from biodiscover.tui.screens.detail import DetailScreen

            table = self.query_one(ProposalTable)
            self.app.push_screen(DetailScreen(p.id, position=table.page_offset + table.cursor_row))

    @on(ProposalTable.RowSelected)
    def _row_selected(self, _: ProposalTable.RowSelected) -> None:
        self.action_open()

    def set_query(self, query: QueueQuery) -> None:
        self.query_state = query
        self.page_offset = 0
        self._keep_id, self._keep_row = None, 0
        self.load_page()
        self.poll_status()

    def action_cycle_sort(self) -> None:
        i = SORT_CYCLE.index(self.query_state.sort) if self.query_state.sort in SORT_CYCLE else -1
        key = SORT_CYCLE[(i + 1) % len(SORT_CYCLE)]
        # Useful default directions: biggest, most novel first; lowest identity (most distinct), smallest ⚑ gap first.
        self.set_query(replace(self.query_state, sort=key, descending=key in DESCENDING_FIRST))

    def action_sort_by(self, key: str) -> None:
        self.set_query(replace(self.query_state, sort=key, descending=key in DESCENDING_FIRST))

    def action_reverse_sort(self) -> None:
        self.set_query(replace(self.query_state, descending=not self.query_state.descending))

    def action_cycle_status(self) -> None:
        i = STATUS_CYCLE.index(self.query_state.status) if self.query_state.status in STATUS_CYCLE else -1
        self.set_query(replace(self.query_state, status=STATUS_CYCLE[(i + 1) % len(STATUS_CYCLE)]))

    def action_show_status(self, status: str) -> None:
        self.set_query(replace(self.query_state, status=None if status == "all" else status))

    def action_filter(self) -> None:
        def _apply(text: str) -> None:
            try:
                self.set_query(parse_filter(text, self.query_state))
            except ValueError as exc:
                self.app.notify(str(exc), severity="error", timeout=8)

        self.app.push_screen(TextDialog("Filter (size>=5 identity<=97 parent=NAME from=COLLECTION known=elsewhere "
                                        "twin=yes sort=flag|twin status=all text):",
                                        self.query_state.filter_text(), "empty clears filters",
                                        allow_empty=True),
                             lambda t: _apply(t) if t is not None else None)

    def action_goto(self) -> None:
        """``#`` / ``:`` then a number: open that candidate (:meth:`ReviewApp.ask_goto`)."""
        self.app.ask_goto()

    def action_taxonomy(self) -> None:
        from biodiscover.tui.screens.taxonomy import TaxonomyScreen

        p = self.current_proposal()
        self.app.push_screen(TaxonomyScreen(focus_taxon=p.parent_taxon_id if p else None))

    def action_refresh(self) -> None:
        self.reload()

    def show_parent(self, taxon_id: int, label: str) -> None:
        """Jump target from the taxonomy screen: every live proposal below ``taxon_id``."""
        self.set_query(replace(self.query_state, parent=taxon_id, parent_label=label, status=None))
