"""Help screen: every binding of the app and its screens, with the keys in force.

Built from the ``BINDINGS`` of the classes themselves plus the user's keymap,
so it can never drift from what the keys actually do.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


KEY_NAMES = {"question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]", "escape": "esc",
             "backspace": "⌫", "enter": "⏎", "number_sign": "#", "colon": ":"}


def key_display(keys: str) -> str:
    """``question_mark,f1`` → ``?/f1``: what a user types, not Textual's key names."""
    return "/".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys.split(","))


def binding_table(groups: Iterable[tuple[str, Iterable[Binding]]], keymap: Mapping[str, str]) -> Text:
    """One section per group: ``keys  description  (id)``."""
    text = Text()
    for title, bindings in groups:
        rows = [b for b in bindings if b.description]
        if not rows:
            continue
        text.append(f"{title}\n", style="bold underline")
        for b in rows:
            keys = key_display(keymap.get(b.id, b.key) if b.id else b.key)
            text.append(f"  {keys:<10}", style="bold cyan")
            text.append(f"{b.description:<26}")
            text.append(f"{b.id or ''}\n", style="grey50")
        text.append("\n")
    text.append("Remap keys by id in ~/.config/biodiscover/keymap.toml or with --keymap FILE.\n", style="grey70")
    text.append("Ctrl+P opens the command palette (\"proposal: accept\", \"queue: sort by size\", …).", style="grey70")
    return text


def collect_bindings(classes: Iterable[tuple[str, type]]) -> list[tuple[str, list[Binding]]]:
    """(group title, Binding list) for each class, resolving BINDINGS tuples into Binding objects."""
    out = []
    for title, cls in classes:
        bindings = []
        for b in getattr(cls, "BINDINGS", []):
            bindings.append(b if isinstance(b, Binding) else Binding(*b))
        out.append((title, bindings))
    return out


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss_help", "Close help", id="help.close")]

    def __init__(self, groups: list[tuple[str, list[Binding]]], keymap: Mapping[str, str]) -> None:
        super().__init__(classes="dialog-screen")
        self.groups = groups
        self.keymap = dict(keymap)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Static(Text("biodiscover review: keys", style="bold"), classes="dialog-title")
            yield Static(binding_table(self.groups, self.keymap), id="help-body")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
