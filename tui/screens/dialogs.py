"""Modal dialogs used by the review actions: text entry, confirm, pick one, pick many.

Each dialog returns a plain value through ``dismiss`` (``None`` when cancelled
with Escape) and never touches the database: the calling screen decides what
to write. Options are (value, label) pairs the caller already fetched.
"""

from __future__ import annotations

from typing import Callable, Generic, Sequence, TypeVar

from rich.segment import Segment

from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Key
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widgets import Button, Input, Label, OptionList, SelectionList
from textual.widgets.option_list import Option

V = TypeVar("V")
R = TypeVar("R")


class TypedBox(Input):
    """A text box whose Ctrl-U (clear what is left of the cursor) and Enter act in the order they were typed.

    Why: Textual runs an Input's key bindings when the key comes back up to the app, after the letters queued
    behind it, which the box takes at once. Typed in one burst (as tmux, a paste or a quick hand delivers them),
    "Ctrl-U cand31 Enter" in the filter box typed ``cand31``, then cleared it, then applied an empty filter: a real
    plate's reviewer found that Ctrl-U "sometimes did not clear" the filter (e25 finding 9)."""

    async def _on_key(self, event: Key) -> None:
        if event.key in ("ctrl+u", "enter"):
            event.stop()
            event.prevent_default()
            if event.key == "ctrl+u":
                self.action_delete_left_all()
            else:
                await self.action_submit()
            return
        await super()._on_key(event)


class TextDialog(ModalScreen[str | None]):
    """One line of text (accept-with-name, rename, note). Enter submits, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", *, allow_empty: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.allow_empty = allow_empty

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield TypedBox(self.value, placeholder=self.placeholder, id="dialog-input")
            yield Label("Enter: ok   Esc: cancel", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.app.screen is not self:  # a second Enter typed quickly: this box is answered and gone, and
            return  # dismissing again would close the screen under it (the queue, leaving a blank app)
        value = event.value.strip()
        if not value and not self.allow_empty:
            self.notify("empty: type something or press Esc", severity="warning")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Yes/no. ``y`` / Enter confirm, ``n`` / Escape cancel."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="dialog.yes"),
        Binding("n,escape", "answer(False)", "No", id="dialog.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="primary")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class _OptionsDialog(ModalScreen[R | None], Generic[R, V]):
    """A titled choice over ``(value, label)`` options that returns ``R``; Escape cancels (None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, title: str, options: Sequence[tuple[V, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.options = list(options)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PickDialog(_OptionsDialog[V, V]):
    """Pick one option; typing in the box filters the list (merge target, new parent taxon).

    ``offer``: more options, last, made from what is typed (a new provisional genus called that and a described
    one the reference lacks), none when the name is in the list already; ``refuse``: a reason to keep the dialog
    open instead of returning a value (a name already taken), shown as a warning.
    """

    def __init__(self, title: str, options: Sequence[tuple[V, str]], *,
                 offer: Callable[[str], Sequence[tuple[V, str]]] | None = None,
                 refuse: Callable[[V], str | None] | None = None,
                 name_of: Callable[[V], str] | None = None) -> None:
        super().__init__(title, options)
        self.offer = offer
        self.refuse = refuse
        #: an option's own name: the options whose name is what was typed come first (typed "Tenebrionidae", the
        #: move list of a real batch's review kept "genus Crypticus (Tenebrionidae › …)" on top, and Enter took it)
        self.name_of = name_of
        self._offered: list[V] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(placeholder="type to filter", id="dialog-filter")
            yield OptionList(*self._make(""), id="dialog-options")
            yield Label("Enter: pick the highlighted one   ↓↑: move   Esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        # The first option is highlighted from the start, so Enter picks what the reviewer sees on top (the
        # nearest known species, the same-parent candidate), never nothing or the second one.
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = 0

    def _make(self, typed: str) -> list[Option]:
        needle = typed.lower()
        shown = [i for i, (_, label) in enumerate(self.options) if needle in label.lower()]
        if self.name_of is not None and needle.strip():
            exact = [i for i in shown if self.name_of(self.options[i][0]).lower() == needle.strip()]
            shown = exact + [i for i in shown if i not in set(exact)]
        out = [Option(self.options[i][1], id=str(i)) for i in shown]
        offered = list(self.offer(typed)) if self.offer is not None else []
        self._offered = [value for value, _ in offered]
        return out + [Option(label, id=f"offer{i}") for i, (_, label) in enumerate(offered)]

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(self._make(event.value))
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one(OptionList)
        if options.option_count == 1 or (options.option_count and options.highlighted is not None):
            self._pick(options.get_option_at_index(options.highlighted or 0).id)

    def key_down(self, event: Key) -> None:
        """↓ in the filter box moves the highlight down one, as the hint says (↓↑: move), and the focus into the
        list; onto the first option when none is highlighted. A second ↓ that comes before the list has taken the
        focus moves down one more, as it would in the list. Why: the first ↓ used to enter the list and leave the
        highlight where it was, so one ↓ and Enter withdrew the first of two notes where the reviewer meant the
        second (e31 F12); and focus moves on the next turn of the event loop, so in a real terminal two quick ↓
        both reached the box (a move list's provisional genus picked for the described one, found in tmux)."""
        options = self.query_one(OptionList)
        if self.query_one(Input).has_focus:
            event.stop()
            event.prevent_default()
            if options.highlighted is None and options.option_count:
                options.highlighted = 0
            elif options.option_count:
                options.action_cursor_down()
            options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._pick(event.option.id)

    def _pick(self, option_id: str | None) -> None:
        if option_id is None:
            return
        value = self._offered[int(option_id[5:])] if option_id.startswith("offer") else \
            self.options[int(option_id)][0]
        problem = self.refuse(value) if self.refuse is not None and value is not None else None
        if problem:
            self.notify(problem, severity="warning", timeout=6)
            return
        if value is not None:
            self.dismiss(value)


class TickList(SelectionList[int]):
    """A selection list whose box reads ``▐X▌`` ticked and ``▐ ▌`` not: Textual draws ``▐X▌`` on every row and
    tells them apart by colour alone (a reviewer of a real plate saw every row ticked)."""

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        index = self.scroll_offset[1] + y
        if index >= self.option_count or self.get_option_at_index(index).value in self._selected:
            return line
        segments = list(line)
        if len(segments) > 1 and segments[1].text == "X":
            segments[1] = Segment(" ", segments[1].style)
        return Strip(segments, line.cell_length)


class PickManyDialog(_OptionsDialog[list[V], V]):
    """Tick several options with Space (members to split off); Enter confirms.

    Textual's checkbox tells a ticked row from an unticked one by colour alone, so the box is blank when unticked
    (:class:`TickList`), a ticked row's text starts with a ✓ and a line under the list counts and names the ticked
    values: readable on a monochrome terminal.
    """

    BINDINGS = [Binding("enter", "confirm", "Confirm", id="dialog.confirm", priority=True),
                Binding("n", "none", "Untick all", id="dialog.none")]

    def __init__(self, title: str, options: Sequence[tuple[V, str]], *, ticked: Sequence[V] = ()) -> None:
        """``ticked``: the values ticked when the dialog opens (a proposed split, which the reviewer may change)."""
        super().__init__(title, options)
        self.ticked = [i for i, (value, _) in enumerate(self.options) if value in set(ticked)]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield TickList(*[(self._prompt(label, i in self.ticked), i, i in self.ticked)
                             for i, (_, label) in enumerate(self.options)], id="dialog-selection")
            yield Label(self._count(self.ticked), id="dialog-count")
            yield Label("Space: tick   n: untick all   Enter: confirm   Esc: cancel", classes="dialog-hint")

    @staticmethod
    def _prompt(label: str, ticked: bool) -> str:
        return f"{'✓' if ticked else ' '} {label}"

    def _count(self, ticked: list[int]) -> str:
        names = ", ".join(str(self.options[i][0]) for i in ticked)
        return f"{len(ticked)} of {len(self.options)} ticked" + (f": {names}" if names else "")

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[int]) -> None:
        rows = event.selection_list
        ticked = sorted(rows.selected)
        for i, (_, label) in enumerate(self.options):
            rows.replace_option_prompt_at_index(i, self._prompt(label, i in ticked))
        self.query_one("#dialog-count", Label).update(self._count(ticked))

    def action_none(self) -> None:
        self.query_one(SelectionList).deselect_all()

    def action_confirm(self) -> None:
        picked = sorted(self.query_one(SelectionList).selected)
        if not picked:
            self.notify("tick at least one with Space, or press Esc", severity="warning")
            return
        self.dismiss([self.options[i][0] for i in picked])
