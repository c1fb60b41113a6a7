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


#: What the screen's columns, marks and cells mean, as the help says it (e33 review F9: the help listed the keys and
#: explained none of "nov", "ident%", ⚑, ⚐, ⚠key, "conf", "P · order", "ctr%" or a histogram's "378/0").
GLOSSARY: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("queue", (
        ("· ✓ ✗ =", "pending, accepted, rejected, assigned to a known species"),
        ("n", "the candidate's members (specimens)"),
        ("nov", "novelty: the members' mean P(their species is absent from the reference)"),
        ("ident%", "identity of the nearest known species to a member read at full length (the header's)"),
        ("nearest known", "that species; the Evidence tab lists the next few, with their keys' countries"),
        ("82.8↓", "that identity lies below the run's order cut-off (the header gives it): the species says "
                  "nothing of the candidate's order: one the reference lacks, or a distant family or genus of its own"),
        ("⚑ / ⚐", "a known species whose keys all come from other countries may be this one: ⚑ within the 3 % one "
                  "species usually spans, ⚐ beyond it (the gap, ⚑2.9%, from 120 columns)"),
        ("≡", "a live candidate of another run is probably the same species (≡0.2%: that far)"),
        ("⚠COI / ⚠key", "reads not usable as COI / members match a record the reference dropped"),
        ("✎", "reviewers wrote a note"),
    )),
    ("members tab", (
        ("deepest rank", "what the member itself was named to (unnamed: no rank)"),
        ("conf", "P(right) of that name"),
        ("P · order", "P(right) and label one rank under the candidate's place, under the level (not named)"),
        ("nov", "the member's novelty"),
        ("ctr%", "its distance from the candidate's consensus barcode"),
    )),
    ("evidence tab", (
        ("378/0", "a histogram row: pairs of members that far apart / members that far from the nearest known"),
        ("82.8%↓", "a known species below the run's order cut-off, as the queue's 82.8↓ and the known species "
                   "list's (i) 82.8 %↓ (the line under the list, and that list's title, give the cut-off)"),
    )),
)


def glossary_text() -> Text:
    """:data:`GLOSSARY` as the help's last section."""
    text = Text("What the columns and marks mean\n", style="bold underline")
    for where, terms in GLOSSARY:
        text.append(f"  {where}\n", style="bold")
        for term, meaning in terms:
            text.append(f"    {term:<14}", style="bold cyan")
            text.append(f"{meaning}\n")
    return text


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
            yield Static(glossary_text(), id="help-glossary")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
