"""Review decisions shared by the queue and the detail screen.

Each key asks what it needs (a dialog), then writes at once through the storage
API in a thread worker (the UI never waits on SQLite), then tells the screen to
reload. The version the reviewer *saw* goes with every write, so a proposal
that changed underneath (another reviewer, a newer run) is refused by storage
with :class:`~biodiscover.storage.errors.StaleProposalError`; that message is shown as an
error notification and the screen reloads to show the new state.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from textual import work
from textual.binding import Binding
from textual.screen import Screen

from biodiscover.storage.errors import BiodiscoverError, StaleProposalError
from biodiscover.tui.screens.dialogs import ConfirmDialog, PickDialog, PickManyDialog, TextDialog

log = logging.getLogger(__name__)

DECISION_BINDINGS: list[Binding] = [
    Binding("a", "accept", "Accept", id="proposal.accept"),
    Binding("r", "reject", "Reject", id="proposal.reject"),
    Binding("m", "merge", "Merge with another", id="proposal.merge", show=False),
    Binding("x", "split", "Split off members", id="proposal.split", show=False),
    Binding("v", "move", "Move to other taxon", id="proposal.move", show=False),
    Binding("e", "rename", "Rename", id="proposal.rename", show=False),
    Binding("o", "note", "Add note", id="proposal.note", show=False),
    Binding("u", "undo", "Undo", id="proposal.undo"),
]


def proposal_label(p: Any) -> str:
    """A merge candidate as one line (all are pending under the same parent): what a taxonomist
    compares before merging two candidates."""
    name = f" {p.provisional_name}" if p.provisional_name else ""
    ident = p.nearest_identity
    near = "" if not p.nearest_species else \
        f" · nearest {p.nearest_species}" + ("" if ident is None else f" {ident * 100 if ident <= 1 else ident:.1f}%")
    return f"#{p.id}{name} · {p.parent_name or '?'} · n={p.size}{near}"


def member_label(m: Any) -> str:
    """A member in the split dialog: aligned columns that fit the 80-column dialog."""
    prob = "–" if m.probability is None else f"{m.probability:.2f}"
    nov = "–" if m.novelty is None else f"{m.novelty:.2f}"
    country = m.country or "–"
    country = country if len(country) <= 12 else country[:11] + "…"
    return f"{m.processid:<13} {m.dna_bin or 'no BIN':<12} {country:<12} memb {prob} nov {nov}"


class DecisionsMixin:
    """Mixed into a :class:`Screen` that implements ``current_proposal`` and ``reload``."""

    app: Any

    def current_proposal(self) -> Any | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def reload(self, *, advance: bool = False) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    #: True from the moment a decision is sent until the screen shows the state after it. Keys for
    #: a new decision in between would act on the proposal still on screen, which the reviewer has
    #: already moved past in their head; they are refused with a message instead.
    deciding: bool = False

    # -- helpers -------------------------------------------------------------------------------------------
    def _busy(self) -> bool:
        if self.deciding:
            self.app.notify("still saving the last decision…", severity="warning", timeout=2)
        return self.deciding

    def decision_shown(self) -> None:
        """Called by the screen once it shows data loaded after the last decision."""
        self.deciding = False

    def _target(self) -> Any | None:
        if self._busy():
            return None
        p = self.current_proposal()
        if p is None:
            self.app.notify("no proposal selected", severity="warning")
        return p

    def _write(self, what: str, fn: Callable[[], Any], done: Callable[[Any], str], advance: bool = False) -> None:
        """Send one decision (UI thread): refuse while another is in flight, else write in a worker."""
        if self._busy():
            return
        self.deciding = True
        self._write_worker(what, fn, done, advance)

    @work(thread=True, group="decisions", exit_on_error=False, description="review decision")
    def _write_worker(self, what: str, fn: Callable[[], Any], done: Callable[[Any], str], advance: bool) -> None:
        """Run one storage write off the UI thread; report the outcome as a notification."""
        try:
            result = fn()
        except StaleProposalError as exc:
            self.app.call_from_thread(self.app.notify, f"{what} refused: {exc}", title="Proposal changed",
                                      severity="error", timeout=8)
            self.app.call_from_thread(self.reload)
            return
        except (BiodiscoverError, ValueError) as exc:
            self.app.call_from_thread(self.app.notify, f"{what} failed: {exc}", severity="error", timeout=8)
            self.app.call_from_thread(self.decision_shown)
            return
        if getattr(result, "review_id", None) is not None:
            self.app.session_reviews.append(result.review_id)
            self.app.session_actions[result.review_id] = (result.action, result.proposal_id)
        self.app.call_from_thread(self.app.notify, done(result), timeout=3)
        self.app.call_from_thread(self.reload, advance=advance)

    def _ask(self, screen: Screen[Any], then: Callable[[Any], None]) -> None:
        def _answer(value: Any) -> None:
            if value is not None and value is not False:
                then(value)
        self.app.push_screen(screen, _answer)

    # -- actions -------------------------------------------------------------------------------------------
    def action_accept(self) -> None:
        p = self._target()
        if p is None:
            return
        self._suggest_then_accept(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _suggest_then_accept(self, p: Any) -> None:
        try:
            name = p.provisional_name or self.app.db.suggest_name(p.id)
        except BiodiscoverError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error")
            return
        db, who = self.app.db, self.app.reviewer
        self.app.call_from_thread(self._ask, TextDialog(f"Accept #{p.id} as new species, name:", name),
                                  lambda n: self._write(
                                      "accept", lambda: db.accept(p.id, p.version, n, reviewer=who),
                                      lambda r: f"#{p.id} accepted as {r.name}", True))

    def action_reject(self) -> None:
        p = self._target()
        if p is None:
            return
        db, who = self.app.db, self.app.reviewer
        self._write("reject", lambda: db.reject(p.id, p.version, reviewer=who),
                    lambda r: f"#{p.id} rejected", True)

    def action_rename(self) -> None:
        p = self._target()
        if p is None:
            return
        db, who = self.app.db, self.app.reviewer
        self._ask(TextDialog(f"Rename #{p.id}:", p.provisional_name or ""),
                  lambda n: self._write("rename", lambda: db.rename(p.id, p.version, n, reviewer=who),
                                        lambda r: f"#{p.id} renamed to {n}"))

    def action_note(self) -> None:
        p = self._target()
        if p is None:
            return
        db, who = self.app.db, self.app.reviewer
        self._ask(TextDialog(f"Note on #{p.id}:", "", "what you saw"),
                  lambda t: self._write("note", lambda: db.note(p.id, t, reviewer=who, expected_version=p.version),
                                        lambda r: f"note added to #{p.id}"))

    def action_undo(self) -> None:
        if self._busy():
            return
        if not self.app.session_reviews:
            self.app.notify("nothing to undo in this session", severity="warning")
            return
        review_id = self.app.session_reviews[-1]
        action, proposal_id = self.app.session_actions.get(review_id, ("decision", None))
        what = f"{action} of #{proposal_id}" if proposal_id is not None else f"review {review_id}"
        db, who = self.app.db, self.app.reviewer

        def _done(r: Any) -> str:
            if self.app.session_reviews and self.app.session_reviews[-1] == r.review_id:
                self.app.session_reviews.pop()  # the undo row itself is not undone by the next u
            if review_id in self.app.session_reviews:
                self.app.session_reviews.remove(review_id)
            # Show what came back, so the reviewer sees the proposal they are deciding on again.
            self.show_undone(proposal_id)
            return f"undid {what} (review {review_id})"

        self._ask(ConfirmDialog(f"Undo your last decision: {what}?"),
                  lambda _: self._write("undo", lambda: db.undo(review_id, reviewer=who), _done))

    def show_undone(self, proposal_id: int | None) -> None:
        """Hook: the detail screen switches to the proposal an undo restored (the queue keeps its page)."""

    def action_merge(self) -> None:
        p = self._target()
        if p is not None:
            self._merge_options(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _merge_options(self, p: Any) -> None:
        db, who = self.app.db, self.app.reviewer
        rows, _ = db.proposal_queue(status="pending", parent=p.parent_taxon_id if p.parent_taxon_id is not None
                                    else p.parent_name, sort="size", descending=True, limit=500)
        others = [(o, proposal_label(o)) for o in rows if o.id != p.id]
        if not others:
            self.app.call_from_thread(self.app.notify, f"no other pending proposal under {p.parent_name}",
                                      severity="warning")
            return
        self.app.call_from_thread(
            self._ask, PickDialog(f"Merge #{p.id} with (its members go into #{p.id}):", others),
            lambda o: self._write("merge", lambda: db.merge([p.id, o.id], [p.version, o.version], reviewer=who),
                                  lambda r: f"#{o.id} merged into #{p.id}"))

    def action_split(self) -> None:
        p = self._target()
        if p is not None:
            self._split_options(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _split_options(self, p: Any) -> None:
        db, who = self.app.db, self.app.reviewer
        detail = db.proposal_detail(p.id)
        if len(detail.members) < 2:
            self.app.call_from_thread(self.app.notify, f"#{p.id} has one member; nothing to split",
                                      severity="warning")
            return
        options = [(m.processid, member_label(m)) for m in detail.members]
        self.app.call_from_thread(
            self._ask, PickManyDialog(f"Split from #{p.id}: tick the members of the new proposal", options),
            lambda ids: self._write("split", lambda: db.split(p.id, p.version, ids, reviewer=who),
                                    lambda r: f"{len(ids)} members split from #{p.id} into #{r.new_proposal_id}"))

    def action_move(self) -> None:
        p = self._target()
        if p is not None:
            self._move_options(p)

    @work(thread=True, group="decisions", exit_on_error=False)
    def _move_options(self, p: Any) -> None:
        db, who = self.app.db, self.app.reviewer
        options = self.app.parent_taxon_options(exclude=p.parent_taxon_id)
        if not options:
            self.app.call_from_thread(self.app.notify, "no other taxon to move to", severity="warning")
            return
        self.app.call_from_thread(
            self._ask, PickDialog(f"Move #{p.id} (now under {p.parent_name}) to:", options),
            lambda tid: self._write("move", lambda: db.move(p.id, p.version, tid, reviewer=who),
                                    lambda r: f"#{p.id} moved"))
