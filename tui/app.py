"""The review app: ``biodiscover review --db DB``.

A taxonomist works through the candidate species of a run. The app only
presents and forwards: queries and decisions go to :class:`biodiscover.storage.db.Database`
from thread workers, so the UI never waits on SQLite, and every decision is
committed the moment it is made (it survives the app being killed).

Bindings carry ids (``proposal.accept`` …) so a keymap file can remap them
(:mod:`biodiscover.tui.keymap`); the command palette offers the same actions as
``noun: verb`` entries (:mod:`biodiscover.tui.commands`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App
from textual.binding import Binding

from biodiscover.storage.db import Database
from biodiscover.storage.settings import REVIEWER_ENV, config_path, resolve_reviewer
from biodiscover.tui.commands import ReviewCommands
from biodiscover.tui.keymap import default_keymap_path, load_keymap
from biodiscover.tui.screens.help import HelpScreen, collect_bindings

log = logging.getLogger(__name__)

#: the longest keys typed ahead of a new screen wait for it to take the focus (``ReviewApp.on_event``), and how
#: often they look: a dialog takes it within a frame or two; a screen that focuses nothing gets them after this
HOLD_SECONDS = 0.5
HOLD_POLL = 0.01


class ReviewApp(App[None]):
    """Queue → detail → decisions, with a taxonomy tree and help."""

    CSS_PATH = "app.tcss"
    TITLE = "biodiscover review"
    COMMANDS = App.COMMANDS | {ReviewCommands}
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+p", "command_palette", "Commands", id="app.palette", show=False),
    ]

    def __init__(self, db: Database, *, run_id: int | None = None, reviewer: str | None = None,
                 keymap: dict[str, str] | None = None, image_root: Path | None = None,
                 poll_seconds: float = 2.0, halfcell_images: bool = False) -> None:
        super().__init__()
        self.db = db
        self.run_id = run_id
        who = resolve_reviewer(reviewer)
        #: the name written in the review log (``--reviewer`` > $BIODISCOVER_REVIEWER > config.toml > login)
        self.reviewer = who.name
        self.reviewer_source = who.source
        self.image_root = image_root
        self.poll_seconds = poll_seconds
        self.halfcell_images = halfcell_images
        #: review ids written in this session, newest last (``u`` undoes the last one).
        self.session_reviews: list[int] = []
        #: review id → (action, proposal id), to say what an undo takes back.
        self.session_actions: dict[int, tuple[str, int | None]] = {}
        self.user_keymap = dict(keymap or {})
        self.queue_screen: Any | None = None
        #: keys typed ahead of a screen that has not taken the focus yet (``on_event``), and since when
        self._held: list[events.Key] = []
        self._held_since: float | None = None

    def on_mount(self) -> None:
        from biodiscover.tui.screens.queue import QueueQuery, QueueScreen

        if self.user_keymap:
            self.set_keymap(self.user_keymap)
        self.sub_title = f"{self.db.path.name}" + (f" · run {self.run_id}" if self.run_id is not None else "") + \
            f" · reviewer {self.reviewer}"
        if self.reviewer_source == "login name":
            # A login name (often "root" on a lab server) names nobody in a published identification.
            self.notify(f"decisions are signed “{self.reviewer}” (your login name): set --reviewer, "
                        f"${REVIEWER_ENV} or reviewer = \"Your Name\" in {config_path()}", severity="warning",
                        timeout=12)
        self.queue_screen = QueueScreen(QueueQuery(run_id=self.run_id))
        self.push_screen(self.queue_screen)
        self._prewarm()

    @work(thread=True, exit_on_error=False, description="load the alignment code")
    def _prewarm(self) -> None:
        """Import what the detail screen aligns with while the reviewer reads the queue: discovery's modules
        bring scikit-learn and hdbscan, seconds of imports the first opened candidate would otherwise wait on."""
        import biodiscover.discovery.proposals  # noqa: F401

    # -- keys typed ahead of a dialog --------------------------------------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        """A key that comes back up from a screen no longer on top is typed again, at the screen now on top, once
        that screen has taken the focus (and the keys typed meanwhile wait behind it).

        Why: Textual hands each key to the focused widget first and runs the bindings when it comes back up to the
        app. Keys typed quickly after ``f`` (``f``, Ctrl-U, ``cand31``, Enter, as a terminal delivers them) all
        reached the queue's table before ``f`` opened the filter box; coming back up, the letters found no
        binding and were lost while Ctrl-U and Enter acted on the box (an emptied or unchanged filter applied), and
        a second Enter then opened a candidate from the queue (a real plate's review, e25 finding 9; the same for
        any dialog a key opens over the queue or a candidate). Posted again before the box had the focus, the
        letters were lost again (``sort=flag`` read ``=flag`` in tmux). Each key is stamped with the screen it was
        aimed at."""
        if isinstance(event, events.Key):
            if not event.is_forwarded:
                if self._held:  # keys wait for the screen now on top to take the focus: this one waits behind
                    self._hold(event)
                    return
                event._aimed_at = self.screen  # type: ignore[attr-defined]  # read back by getattr below
            else:
                aimed = getattr(event, "_aimed_at", None)
                if aimed is not None and aimed is not self.screen and aimed in self.screen_stack:
                    event.stop()
                    self._hold(event)
                    return
        await super().on_event(event)

    def _hold(self, event: events.Key) -> None:
        self._held.append(events.Key(event.key, event.character))
        if self._held_since is None:
            self._held_since = time.monotonic()
            self.set_timer(HOLD_POLL, self._release_held)

    def _release_held(self) -> None:
        """Type the held keys again, in order, once the screen on top has a focused widget (or after
        ``HOLD_SECONDS``, for a screen that focuses nothing)."""
        if self._held_since is not None and self.screen.focused is None and \
                time.monotonic() - self._held_since < HOLD_SECONDS:
            self.set_timer(HOLD_POLL, self._release_held)
            return
        held, self._held, self._held_since = self._held, [], None
        for key in held:
            self.post_message(key)

    # -- help ----------------------------------------------------------------------------------------------
    @staticmethod
    def binding_groups() -> list[tuple[str, list[Binding]]]:
        from biodiscover.tui.screens.detail import DetailScreen
        from biodiscover.tui.screens.queue import QueueScreen
        from biodiscover.tui.screens.taxonomy import TaxonomyScreen
        from biodiscover.tui.widgets.dna_panel import DnaPanel
        from biodiscover.tui.widgets.image_panel import ImagePanel

        return collect_bindings([("Everywhere", ReviewApp), ("Queue", QueueScreen), ("Proposal", DetailScreen),
                                 ("DNA tab", DnaPanel), ("Images tab", ImagePanel), ("Taxonomy", TaxonomyScreen)])

    @classmethod
    def binding_ids(cls) -> set[str]:
        return {b.id for _, bs in cls.binding_groups() for b in bs if b.id}

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.binding_groups(), self.user_keymap))

    # -- navigation between screens (the screens never import each other) -------------------------------------
    def open_detail(self, proposal_id: int, position: int | None = None) -> None:
        """Show one proposal (from the queue with its position, for next / previous; from elsewhere without)."""
        from biodiscover.tui.screens.detail import DetailScreen

        self.push_screen(DetailScreen(proposal_id, position=position))

    def ask_goto(self) -> None:
        """``#`` / ``:`` then a number, in the queue or a candidate's screen: open that candidate, at its place in
        the queue when the queue holds it (so ``j``/``k`` step on from there); from a candidate's screen it takes
        that screen's place (Esc goes back to the queue). Why: at hundreds of candidates a reviewer with a number in
        hand (``#31`` in a note, a report, a colleague's mail) scrolled or filtered for it (e25 finding 9); typed in
        a candidate's screen, ``#`` did nothing and the ``2`` of ``#2`` switched to the DNA tab, so the note meant
        for #2 went on the candidate still open (e29 F3)."""
        from biodiscover.tui.screens.dialogs import TextDialog
        from biodiscover.tui.screens.queue import goto_number

        def _go(text: str | None) -> None:
            if text is None:
                return
            number = goto_number(text)
            if number is None:
                self.notify(f"not a candidate number: {text!r} (type 31, #31 or cand31)", severity="error", timeout=8)
                return
            queue = self.queue_screen
            self._goto(number, None if queue is None else queue.query_state)

        self.push_screen(TextDialog("Go to candidate number:", "", "31, #31 or cand31"), _go)

    @work(thread=True, exclusive=True, group="goto", exit_on_error=False, description="go to a candidate")
    def _goto(self, number: int, query: Any) -> None:
        try:
            self.db.proposal(number)  # says "no proposal 31 in …" for a number the database lacks
            # a candidate a later run re-clustered: the one holding its members now, saying so (a vial's "cand11")
            moved = self.db.successor(number)
            if moved is not None:
                now = moved.proposal
                self.call_from_thread(
                    self.notify, f"#{number} was {moved.by}: its members are in #{now.id} "
                                 f"{now.name} ({now.status}) now, open here; #{number}'s record is in its history",
                    timeout=10)
                number = now.id
            position = None if query is None else self.db.queue_position(number, **query.kwargs())
        except Exception as exc:  # noqa: BLE001 - show, keep the app alive
            self.call_from_thread(self.notify, str(exc), severity="error", timeout=8)
            return
        self.call_from_thread(self._open_number, number, position, query)

    def _open_number(self, number: int, position: int | None, query: Any) -> None:
        from biodiscover.tui.screens.detail import DetailScreen

        if position is None:
            where = "" if query is None else f" ({query.describe()})"
            self.notify(f"#{number} is not in this queue{where}: j/k do not step from it; Tab or f shows it among "
                        "others", timeout=8)
        if isinstance(self.screen, DetailScreen):
            self.switch_screen(DetailScreen(number, position=position))
        else:
            self.open_detail(number, position)  # back from it, the queue's cursor lands on it (its action_back)

    def open_taxonomy(self, focus_taxon: int | None = None) -> None:
        from biodiscover.tui.screens.taxonomy import TaxonomyScreen

        self.push_screen(TaxonomyScreen(focus_taxon=focus_taxon))


def run_review(db_path: Path, *, run_id: int | None = None, reviewer: str | None = None,
               keymap_path: Path | None = None, image_root: Path | None = None) -> None:
    """Open ``db_path`` and run the app until the user quits (the CLI's ``review`` verb)."""
    known = ReviewApp.binding_ids()
    keymap: dict[str, str] = {}
    if keymap_path is not None:
        keymap = load_keymap(keymap_path, known)
    elif default_keymap_path().is_file():
        keymap = load_keymap(default_keymap_path(), known)
    db = Database.open(db_path)
    # textual-image probes the terminal (Sixel / TGP support, cell size) when first imported; done
    # inside the running app, the terminal's answer arrives as key presses (a stray "?" opened help).
    try:
        import textual_image.widget  # noqa: F401

        halfcell = False
    except Exception as exc:  # noqa: BLE001 - e.g. a terminal reporting 0 columns: half blocks still work
        log.warning("terminal image support unavailable (%s); using half-block images", exc)
        halfcell = True
    try:
        if run_id is not None:
            db.run_progress(run_id)  # refuses an unknown run before the screen opens
        ReviewApp(db, run_id=run_id, reviewer=reviewer, keymap=keymap, image_root=image_root,
                  halfcell_images=halfcell).run()
    finally:
        db.close()
