"""Proposal detail: members, DNA, distances, nearest known species, images, geography, history.

Loaded in one thread worker (``Database.proposal_detail``); tabs keep it usable
at 80×24. Decisions work here exactly as in the queue; after accept / reject the
screen moves on to the next pending proposal of the queue so a taxonomist can
review a run without going back and forth.
"""

from __future__ import annotations

from typing import Any, Mapping

from rich.text import Text
from textual import work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from biodiscover.storage.evidence import below_order_words
from biodiscover.storage.records import RANKS, determination, is_filler_name, placement_words
from biodiscover.tui import evidence as ev
from biodiscover.tui.decisions import DECISION_BINDINGS, DecisionsMixin
from biodiscover.tui.widgets.dna_panel import DnaPanel
from biodiscover.tui.widgets.geography import GeographySummary
from biodiscover.tui.widgets.histogram import DistanceHistogram
from biodiscover.tui.widgets.image_panel import ImagePanel

TABS: tuple[str, ...] = ("members", "dna", "evidence", "images", "history")


def _pct(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.1f}%" if value <= 1 else f"{value:.1f}%"


STATUS_STYLE = {"pending": "yellow", "accepted": "green", "rejected": "red", "assigned": "cyan"}


def where_now(db: Any, s: Any) -> str | None:
    """Where a merged candidate's members are now: ``merged into #54, whose members are now in #190 Diptera gen. sp.
    cand190 (pending; re-clustered by run 10)``, following merges and re-clusterings (``Database.successor``) to the
    candidate that holds them; None for a candidate not merged. Why: a merged twin's header kept a reopened
    rejection's banner and said nothing of #190 (e31 F9)."""
    if s.status != "merged" or s.merged_into is None:
        return None
    into, seen = db.proposal(s.merged_into), {s.id}
    said = f"merged into #{into.id}"
    holder, reclustered = into, None
    while holder.id not in seen and len(seen) < 64:  # merged again, or re-clustered: follow it to the live one
        seen.add(holder.id)
        if holder.status == "merged" and holder.merged_into is not None:
            holder = db.proposal(holder.merged_into)
        elif (moved := db.successor(holder.id)) is not None:
            holder, reclustered = moved.proposal, moved
        else:
            break
    if holder.id == into.id:
        return f"{said} {into.name} ({into.status})"
    how = f"; {reclustered.by}" if reclustered is not None else ""
    return f"{said}, whose members are now in #{holder.id} {holder.name} ({holder.status}{how})"


def summary_text(detail: Any, twin_reason: str | None = None, now: str | None = None) -> Text:
    """The header; ``twin_reason``: the reason a decided twin (the ≡ line's first) was decided so; ``now``: where a
    merged candidate's members are now (:func:`where_now`)."""
    s = detail.summary
    text = Text()
    text.append(f"#{s.id} ", style="bold")
    text.append(f"{s.status} ", style=STATUS_STYLE.get(s.status, ""))
    text.append(f"v{s.version}  ", style="grey50")
    text.append(s.name, style="bold green" if s.provisional_name else "italic")
    text.append("\n")
    # rank fillers ("unassigned Gaeaxidae") name no taxon: left out of the lineage a taxonomist reads
    marked: frozenset[str] = getattr(detail, "provisional_taxa", frozenset())  # a genus a reviewer added: ◆
    lineage = [(rank, name) for rank, name in detail.parent_lineage if not is_filler_name(name)]
    if len(lineage) > 1 and lineage[-1][0] == "species" and lineage[-1][1].startswith(f"{lineage[-2][1]} "):
        # an assigned candidate's place is its species, whose name holds its genus: "… › Acrolophinae › Acrolophus
        # kearfotti (species)", one line at 80 columns, not "… › Acrolophus › Acrolophus kearfotti" on two
        del lineage[-2]
    names = [ev.marked(name, name in marked) for _, name in lineage] or ([s.parent_name] if s.parent_name else [])
    rank = detail.parent_lineage[-1][0] if detail.parent_lineage else s.parent_rank
    if names:
        text.append(" › ".join(names), style="cyan")
        text.append(f" ({rank})\n" if rank else "\n", style="grey50")
    else:  # placed nowhere: what its members' labels say, not "?" (the stored name stays "Unplaced …")
        text.append(ev.unplaced_line(detail.members) + "\n", style="grey70")
    determined = [determination(getattr(m, "labels", None) or {}, getattr(m, "deepest_rank", None),
                                getattr(m, "deepest_taxon", None)) for m in detail.members]
    recorded = all(getattr(m, "novelty", None) is not None for m in detail.members)  # the run assessed each
    if recorded and s.parent_name and s.parent_rank in RANKS[:-1] and \
            sum(1 for d in determined if d.get(s.parent_rank) == s.parent_name) < len(determined):
        # a place some member's own determination does not reach (e33 F6: #44 at subfamily by 1 of 4 members)
        text.append(placement_words(s.parent_rank, s.parent_name, determined) + "\n", style="grey70")
    below = getattr(detail, "agreed_below", None)
    if below is not None and s.status == "pending":
        r, name, lo, hi = below
        span = ev.p_against(lo, hi, getattr(detail, "naming_level", None))
        text.append(f"members' labels agree down to {r} {name} (P(right) {span}): v moves it there\n",
                    style="grey70")
    text.append(f"n={s.size}  novelty {'–' if s.novelty is None else f'{s.novelty:.2f}'}  ")
    if s.status == "assigned":  # the identity to the assigned species' own keys, not to the old nearest one
        ident = detail.evidence.identity_to(s.provisional_name)  # its keys, not the old nearest species'
        text.append("identity to its keys ")
        text.append(_pct(ident) if ident is not None else "– (no member was aligned to them)", style="magenta")
    else:
        shown, ident = ev.nearest_header(detail.evidence, s.nearest_species, s.nearest_identity)
        text.append("nearest known ")
        text.append(shown, style="magenta")
        text.append(f" ({_pct(ident)})\n")
        # a moth at 82.8 % to beetles: a name that says nothing of their order (e33 review F4); what they may be on
        # a line of its own (80 columns), and nothing of a lacking order where the candidate is placed (e36 F4)
        below = below_order_words(ident, getattr(detail, "order_cutoff", None), placed=bool(s.parent_name),
                                  sep=":\n  ")
        if below:
            text.append(f"⚠ that is {below}\n", style="yellow")
    if s.status != "assigned":  # a gap to the old nearest species says nothing about the species it now is
        gap = ev.barcode_gap(detail.evidence, s.nearest_identity)
        text.append(("⚠ " if gap.verdict == "not COI" else "") + gap.sentence(),
                    style=ev.GAP_STYLE.get(gap.verdict, ""))
    elsewhere = ev.elsewhere_line(detail.evidence, ev.placed_genus(s.parent_rank, s.parent_name), short=True,
                                  met_here=detail.met_here)
    if elsewhere and s.status != "assigned":
        flagged = ev.flagged_species(detail.evidence, ev.placed_genus(s.parent_rank, s.parent_name), detail.met_here)
        mark, style = ev.flagged_mark(flagged)  # the queue's mark: ⚐ beyond the span one species usually has
        text.append(f"\n{mark} {elsewhere}", style=style)
        together = ev.congeners_line(detail.evidence, flagged, short=True)
        if together:
            text.append(f"\n{mark} {together}", style=style)
    for line in ev.quality_lines(detail.evidence, short=True):
        text.append(f"\n⚠ {line}", style="bold red")
    twins = ev.twins_line(getattr(detail, "twins", ()), twin_reason)
    if twins:  # another run's candidate within the species threshold: the same species met again
        text.append(f"\n{ev.TWIN_MARK} {twins}", style="bold cyan")
    warning = ev.rejected_warning(detail.history, s.id, s.status)
    if warning:
        text.append(f"\n⚠ {warning}", style="bold yellow")
    if now:
        text.append(f"\n→ {now}", style="bold")
    return text


#: Members table: (key, header, width at 80 columns, extra share of any wider terminal). ``ctr%``: the member's
#: p-distance from the candidate's consensus barcode in percent (``tui.evidence.centre_distances`` says why not
#: the stored membership, which read 0.49 on a candidate 0.9 % wide). A BOLD process id runs to
#: 14 characters (``GBMIN123456-19``): a reviewer of a real plate read ``BLPAA10046-…`` at 13.
MEMBER_COLUMNS: tuple[tuple[str, str, int, int], ...] = (
    ("pid", "processid", 15, 0), ("rank", "deepest rank", 16, 2), ("conf", "conf", 5, 0),
    ("under", "P ·", 15, 1), ("nov", "nov", 5, 0),
    ("bin", "BIN", 13, 0), ("country", "country", 11, 1), ("size", "area", 6, 0), ("p", "ctr%", 5, 0),
)


#: Columns a plate may leave empty for every member (no BINs, no photographs; no rank under a candidate's place):
#: dropped then (:func:`member_columns`).
OPTIONAL_COLUMNS: tuple[str, ...] = ("under", "bin", "size")


def member_columns(members: Any, under: str | None = None) -> tuple[str, ...]:
    """The keys of :data:`MEMBER_COLUMNS` worth a column for ``members``: an optional column (BIN, area) only when
    some member has a value, the label under the candidate's place only when there is a rank ``under`` it
    (:func:`~biodiscover.tui.evidence.rank_under`). On a real plate without BINs or photographs the two empty
    columns took 19 cells while the deepest rank was cut (``order: Lepidopte…``) at 80 columns."""
    has = {"bin": any(m.dna_bin for m in members),
           "size": any(m.image_measurement_value is not None for m in members), "under": under is not None}
    return tuple(key for key, *_ in MEMBER_COLUMNS if key not in OPTIONAL_COLUMNS or has[key])


#: dropped first where the columns would not fit the screen: each member's novelty is in the split dialog and its
#: range in the Evidence tab, while the label under the candidate's place is shown nowhere else
DROPPABLE_COLUMNS: tuple[str, ...] = ("nov",)


def fitting(keys: tuple[str, ...], total: int) -> tuple[str, ...]:
    """``keys`` less the :data:`DROPPABLE_COLUMNS` while their base widths overrun ``total`` cells, when the label
    under the place is one of them (which, at 80 columns, cut ``order: Lepidoptera`` to ``order: Lepidopt…``)."""
    if "under" not in keys:  # the columns as they were, all eight of which fit 80 columns
        return keys
    for key in DROPPABLE_COLUMNS:
        # 6 spare cells: 3 of them go to the deepest rank, which then reads ``order: Lepidoptera`` whole
        if sum(w for k, _, w, _ in MEMBER_COLUMNS if k in keys) + 4 + 6 <= total:
            break
        keys = tuple(k for k in keys if k != key)
    return keys


def member_widths(total: int, keys: tuple[str, ...] | None = None,
                  need: Mapping[str, int] | None = None) -> dict[str, int]:
    """Column widths for a members table ``total`` cells wide (cell_padding=0, one spare cell per column) that
    shows the columns ``keys`` (all of :data:`MEMBER_COLUMNS` by default): what the others leave goes first to
    the columns whose cells ``need`` more (key → cells, in that order: ``subfamily: Eudaminae`` or ``0.34
    Lepidoptera`` whole), then to the columns that can use it (deepest rank, country)."""
    columns = [c for c in MEMBER_COLUMNS if keys is None or c[0] in keys]
    base = sum(w for _, _, w, _ in columns) + 4  # scrollbar and pane padding
    spare = max(0, total - base)
    widths = {key: w for key, _, w, _ in columns}
    for key, cells in (need or {}).items():
        if key in widths and cells > widths[key]:
            extra = min(cells - widths[key], spare)
            widths[key] += extra
            spare -= extra
    shares = sum(x for *_, x in columns)
    return {key: widths[key] + min(spare * x // shares, 24) for key, _, _, x in columns}


def area_text(value: float | None) -> str:
    """A member's body area (px in image) in at most five characters, the area column's room at 80 columns:
    whole up to 99999 (a 5-digit area was cut to ``1234…``), in thousands above (``110817`` → ``111k``), in
    millions from 999500 (``2.5M``)."""
    if value is None:
        return "–"
    if round(value) < 100_000:
        return f"{value:.0f}"
    return f"{value / 1000:.0f}k" if round(value / 1000) < 1000 else f"{value / 1e6:.1f}M"


def _cell(text: str, width: int) -> str:
    """A cell that always leaves one blank cell before the next column (``…`` when cut)."""
    room = width - 1
    return text if len(text) <= room else text[: room - 1] + "…"


def _when(stamp: Any) -> str:
    """``2026-11-23T09:41:39.123Z`` → ``2026-11-23 09:41:39 UTC`` (the database stores UTC)."""
    text = str(stamp or "")
    if len(text) < 19:
        return text
    return text[:10] + " " + text[11:19] + (" UTC" if text.endswith("Z") or "+00:00" in text else "")


class DetailScreen(DecisionsMixin, Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", id="detail.back"),
        *DECISION_BINDINGS,
        Binding("j", "step(1)", "Next", id="detail.next"),
        Binding("k", "step(-1)", "Prev", id="detail.previous", show=False),
        Binding("1", "tab('members')", "Members", id="detail.tab_members", show=False),
        Binding("2", "tab('dna')", "DNA", id="detail.tab_dna", show=False),
        Binding("3", "tab('evidence')", "Evidence", id="detail.tab_evidence", show=False),
        Binding("4", "tab('images')", "Images", id="detail.tab_images", show=False),
        Binding("5", "tab('history')", "History", id="detail.tab_history", show=False),
        Binding("t", "taxonomy", "Taxa", id="detail.taxonomy", show=False),
        Binding("number_sign,colon", "goto", "Open candidate #N", id="detail.goto", show=False),
    ]

    def __init__(self, proposal_id: int, position: int | None = None) -> None:
        super().__init__(classes="detail")
        self.proposal_id = proposal_id
        #: Row of this proposal in the queue's query (for next / previous), None when opened elsewhere.
        self.position = position
        self.detail: Any | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading…", id="detail-summary")
        with TabbedContent(id="detail-tabs", initial="members"):
            with TabPane("1 Members", id="members"):
                yield DataTable(id="members-table", cursor_type="row", zebra_stripes=True, cell_padding=0)
            with TabPane("2 DNA", id="dna"):
                yield Static("", id="dna-note")
                yield DnaPanel(id="dna-panel")
            with TabPane("3 Evidence", id="evidence"):
                with VerticalScroll(id="evidence-scroll"):
                    yield Static("", id="nearest")
                    yield DistanceHistogram(id="histogram")
                    yield GeographySummary("", id="geography")
            with TabPane("4 Images", id="images"):
                yield ImagePanel(id="image-panel", force_halfcell=self.app.halfcell_images)
            with TabPane("5 History", id="history"):
                with VerticalScroll(id="history-scroll"):
                    yield Static("", id="history-text")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._set_member_columns(tuple(key for key, *_ in MEMBER_COLUMNS if key != "under"))
        self.query_one("#members-table", DataTable).focus()
        self.reload()

    def _set_member_columns(self, keys: tuple[str, ...], under: str | None = None,
                            need: dict[str, int] | None = None) -> None:
        """(Re)build the members table's columns: ``keys`` of :data:`MEMBER_COLUMNS`, sized to the screen
        (cell_padding=0 and one spare character per column: all eight fit 80 columns); ``under``: the rank the
        "under its place" column names (``family · P``)."""
        self._member_keys = (keys, under, need)
        self._member_widths = member_widths(self.app.size.width, keys, need)
        table = self.query_one("#members-table", DataTable)
        table.clear(columns=True)
        for key, label, _, _ in MEMBER_COLUMNS:
            if key in keys:
                table.add_column(f"{label} {under}" if key == "under" else label, key=key,
                                 width=self._member_widths[key])

    # -- data ----------------------------------------------------------------------------------------------
    def current_proposal(self) -> Any | None:
        return None if self.detail is None else self.detail.summary

    def show_undone(self, proposal_id: int | None) -> None:
        # Called from the decision worker's thread: the undone proposal is shown by the reload that follows.
        if proposal_id is not None:
            self.proposal_id = proposal_id

    def reload(self, *, advance: bool = False) -> None:
        if advance:
            self.action_step(1, after_decision=True)
            return
        self.load_detail(self.proposal_id)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False, description="load proposal")
    def load_detail(self, proposal_id: int) -> None:
        try:
            detail = self.app.db.proposal_detail(proposal_id)
        except Exception as exc:  # noqa: BLE001 - show, keep the app alive
            said = str(exc)  # the database's messages name the proposal already: not "proposal 1: proposal 1 in …"
            said = said if said.startswith(f"proposal {proposal_id} ") else f"proposal {proposal_id}: {said}"
            self.app.call_from_thread(self.app.notify, said, severity="error")
            self.app.call_from_thread(self.decision_shown)
            return
        if get_current_worker().is_cancelled:  # the reviewer already moved on
            return
        try:
            dna = ev.dna_alignment(detail.evidence, detail.members)
        except Exception as exc:  # noqa: BLE001 - an alignment failure must not hide the proposal
            self.app.call_from_thread(self.app.notify, f"DNA alignment: {exc}", severity="warning")
            dna = ev.DnaView(None, [], "alignment failed")
        try:
            centre = ev.centre_distances(detail.evidence, detail.members)
        except Exception as exc:  # noqa: BLE001 - a distance failure must not hide the proposal
            self.app.call_from_thread(self.app.notify, f"distance from the consensus: {exc}", severity="warning")
            centre = {}
        twins = getattr(detail, "twins", ())
        reason = None
        if twins and twins[0].proposal.status == "rejected":
            try:  # why the reviewer decided the twin so ("known species: …"): the header says it beside the ≡
                decision = self.app.db.decision_in_force(twins[0].proposal.id)
                reason = decision.get("note") if decision else None
            except Exception:  # noqa: BLE001 - a missing reason must not hide the proposal
                reason = None
        try:
            now = where_now(self.app.db, detail.summary)
        except Exception:  # noqa: BLE001 - where its members went must not hide the proposal
            now = None
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, detail, dna, centre, reason, now)

    def _show(self, detail: Any, dna: Any = None, centre: Mapping[str, float] | None = None,
              twin_reason: str | None = None, now: str | None = None) -> None:
        self.decision_shown()
        other = self.detail is None or self.detail.summary.id != detail.summary.id
        self.detail = detail
        self.proposal_id = detail.summary.id
        self.query_one("#detail-summary", Static).update(summary_text(detail, twin_reason, now))
        under = ev.rank_under(detail.summary.parent_rank, detail.members)
        keys = fitting(member_columns(detail.members, under), self.app.size.width)
        # what the deepest rank and the label under the place need to read whole, one blank cell after each
        need = {"rank": 1 + max((len(ev.deepest_text(m)) for m in detail.members),
                                default=0),
                "under": 1 + max((len(ev.label_at(m, under)) for m in detail.members), default=0)}
        if (keys, under, need) != self._member_keys:
            self._set_member_columns(keys, under, need)
        table = self.query_one("#members-table", DataTable)
        table.clear()
        w = self._member_widths
        for m in detail.members:
            cells = (m.processid, ev.deepest_text(m),
                     "–" if m.confidence is None else f"{m.confidence:.2f}", ev.label_at(m, under),
                     "–" if m.novelty is None else f"{m.novelty:.2f}", m.dna_bin or "–", m.country or "–",
                     area_text(m.image_measurement_value), ev.centre_text((centre or {}).get(m.processid)))
            table.add_row(*(_cell(c, w[key]) for c, (key, *_) in zip(cells, MEMBER_COLUMNS) if key in keys),
                          key=m.processid)
        dna = dna if dna is not None else ev.dna_alignment(detail.evidence, detail.members)
        self.query_one(DnaPanel).set_sequences("", dna.rows, dna.reference)
        self.query_one("#dna-note", Static).update(dna.note)
        s = detail.summary
        nearest = Text()
        listed = ev.near_species_lines(detail.evidence, detail.met_here, detail.order_cutoff)
        if listed:  # the nearest few, each with its keys and their countries (format 4)
            nearest.append("nearest known species, first the header's (nearest a full-length read) · best identity "
                           "of a member · its keys by country:", style="grey70")
        else:  # a record that lists none: the one nearest species it holds
            nearest.append("nearest known species: ", style="grey70")
            nearest.append(f"{s.nearest_species or '–'}", style="bold magenta")
            nearest.append(f"  identity {_pct(s.nearest_identity)}")
        for i, (near_species, line) in enumerate(listed):
            nearest.append("\n  ")
            nearest.append(near_species.species, style="bold magenta" if i == 0 else "magenta")
            nearest.append(f"  {line}")
        # the mark said once in words, as the header says it of the nearest one (e33 review F4)
        below = next((words for near_species, _ in listed
                      if (words := below_order_words(near_species.identity, detail.order_cutoff,
                                                     placed=bool(s.parent_name)))), None)
        if below:
            nearest.append(f"\n  {ev.BELOW_ORDER_MARK} {below}", style="yellow")
        elsewhere = ev.elsewhere_line(detail.evidence, ev.placed_genus(s.parent_rank, s.parent_name),
                                      met_here=detail.met_here)
        if elsewhere and s.status != "assigned":  # answered: the header says the same
            flagged = ev.flagged_species(detail.evidence, ev.placed_genus(s.parent_rank, s.parent_name),
                                         detail.met_here)
            mark, style = ev.flagged_mark(flagged)
            nearest.append(f"\n{mark} ", style=style)
            nearest.append(elsewhere, style="yellow")
            together = ev.congeners_line(detail.evidence, flagged)
            if together:
                nearest.append(f"\n{mark} ", style=style)
                nearest.append(together, style="yellow")
        gap = ev.barcode_gap(detail.evidence, s.nearest_identity)
        for line in ([gap.sentence()] if gap.verdict == "not COI" else []) + ev.quality_lines(detail.evidence):
            nearest.append("\n⚠ ", style="bold red")
            nearest.append(line, style="red")
        for label, value in [*ev.why_lines(detail.evidence, detail.members, ev.split_from(detail.history, s.id)),
                             *ev.extra_lines(detail.evidence, detail.closest_candidate, detail.bin_holders,
                                             detail.closest_collection, s.run_id)]:
            nearest.append(f"\n{label}: ", style="grey70")
            nearest.append(value)
        self.query_one("#nearest", Static).update(nearest)
        within, near = ev.distances(detail.evidence)
        self.query_one(DistanceHistogram).set_distances(within, near)
        pairs, bbox = ev.places(detail.evidence, detail.members)
        self.query_one(GeographySummary).set_places(pairs, bbox)
        near = detail.evidence.nearest_known
        reference = None
        if near is not None and (near.species or near.processid):
            reference = (near.species or near.processid or "?", ev.resolve(near.image, self.app.image_root))
        photos = ev.images(detail.members, detail.evidence, self.app.image_root)
        self.query_one(ImagePanel).set_images(photos, reference)
        if other and not photos and (reference is None or reference[1] is None) and \
                self.query_one(TabbedContent).active == "images":
            # a plate without photographs: the next candidate opened on an empty Images tab every time
            self.action_tab("members")
        self.query_one("#history-text", Static).update(self._history(detail))
        self.sub_title = f"proposal #{s.id}"

    @staticmethod
    def _history(detail: Any) -> Text:
        """Reviews and automatic events (re-clustering, a rejection remembered) in one timeline, oldest first,
        each with who did it and what changed (old → new name, from → to parent)."""
        text = Text()
        entries = ev.history_entries(detail.reviews, detail.history, detail.summary.id, detail.summary)
        if not entries:
            text.append("no reviews yet", style="grey50")
        for when, what, who, note in entries:
            text.append(f"{_when(when)}  ", style="grey50")
            text.append(what, style="bold" if who else "grey70")
            if who:
                text.append(f"  by {who}", style="cyan")
            if note:
                text.append(f"  “{note}”", style="italic")
            text.append("\n")
        return text

    # -- navigation ----------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()
        queue = self.app.queue_screen
        if queue is not None:
            queue.reload(shown=None if self.position is None else (self.proposal_id, self.position))

    def action_tab(self, tab: str) -> None:
        """Show a tab and focus what it holds, so arrows scroll the alignment and n/p page the images
        (left on the tab bar, the arrows would switch tabs instead)."""
        self.query_one(TabbedContent).active = tab
        target = {"members": "#members-table", "dna": "#dna-panel", "evidence": "#evidence-scroll",
                  "images": "#image-panel", "history": "#history-scroll"}.get(tab)
        if target is not None:
            self.query_one(target).focus()

    def action_goto(self) -> None:
        """``#`` / ``:`` then a number: open that candidate here (:meth:`ReviewApp.ask_goto`)."""
        self.app.ask_goto()

    def action_taxonomy(self) -> None:
        s = self.current_proposal()
        self.app.open_taxonomy(s.parent_taxon_id if s else None)

    def action_step(self, direction: int, after_decision: bool = False) -> None:
        """Open the next / previous proposal of the queue's current query."""
        queue = self.app.queue_screen
        if queue is None or self.position is None:
            if after_decision:  # opened from the taxonomy tree: stay, show the decision
                self.load_detail(self.proposal_id)
            else:
                self.app.notify("opened outside the queue: no next proposal", severity="warning")
            return
        self._step(queue.query_state, self.proposal_id, self.position, direction, after_decision)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False, description="next proposal")
    def _step(self, query: Any, current_id: int, position: int, direction: int, after_decision: bool) -> None:
        """Step by queue *position* (one indexed query each), so it costs the same on row 5 or 99,999.

        After a decision the proposal usually leaves the queue (status filter), so
        the next one has moved up into its position.
        """
        db = self.app.db
        try:
            rows, total = db.proposal_queue(**query.kwargs(), offset=position, limit=1)
            still_here = bool(rows) and rows[0].id == current_id
            new = position if (after_decision and not still_here) else position + direction
            target = None
            if 0 <= new < total:
                rows, _ = db.proposal_queue(**query.kwargs(), offset=new, limit=1)
                target = rows[0] if rows else None
        except Exception as exc:  # noqa: BLE001 - show, keep the app alive
            self.app.call_from_thread(self.app.notify, f"next proposal: {exc}", severity="error")
            self.app.call_from_thread(self.load_detail, current_id)
            return
        if target is None:
            msg = "end of the queue: no more proposals" if direction > 0 else "first proposal of the queue"
            self.app.call_from_thread(self.app.notify, msg)
            if after_decision:
                self.app.call_from_thread(self.load_detail, current_id)
            return
        self.position = new
        self.app.call_from_thread(self.load_detail, target.id)
