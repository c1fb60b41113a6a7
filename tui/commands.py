"""Command palette (Ctrl+P): ``noun: verb`` entries for every action of the current screen.

Entries are offered only when the screen they act on is the one the palette was
opened from, so "proposal: accept" never fires on the taxonomy tree.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

#: (palette text, action on the screen, help line)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("proposal: accept", "accept", "Accept as a new provisional species (name editable)"),
    ("proposal: reject", "reject", "Reject this candidate"),
    ("proposal: assign to a known species", "assign",
     "Its members are a known species: search the reference's species"),
    ("proposal: merge", "merge", "Merge another pending proposal into this one (any parent; says where it lands)"),
    ("proposal: split", "split", "Split chosen members off into a new proposal"),
    ("proposal: move", "move", "Move to another parent taxon"),
    ("proposal: rename", "rename", "Rename the provisional name"),
    ("proposal: note", "note", "Add a note to the review log"),
    ("proposal: undo", "undo", "Undo your last decision of this session"),
    ("proposal: reopen", "reopen",
     "Take back the decision on an accepted, rejected or assigned candidate, of any session (R): pending again"),
    ("proposal: open", "open", "Open the detail of the selected proposal"),
    ("proposal: next", "step(1)", "Next proposal of the queue"),
    ("proposal: previous", "step(-1)", "Previous proposal of the queue"),
    ("queue: sort by size", "sort_by('size')", "Largest candidates first"),
    ("queue: sort by novelty", "sort_by('novelty')", "Most novel first"),
    ("queue: sort by identity", "sort_by('identity')", "Lowest identity to the nearest known species first"),
    ("queue: sort by parent", "sort_by('parent')", "Group by parent taxon"),
    ("queue: sort by id", "sort_by('id')", "Order of discovery"),
    ("queue: sort by ⚑ gap", "sort_by('flag')",
     "Flagged (a known species met elsewhere may be it) first, those within the 3 % one species spans first"),
    ("queue: sort by twins", "sort_by('twin')",
     "The candidates of different runs that are probably one species together (≡), the rest last"),
    ("proposal: go to a candidate number", "goto", "Open #31 (also # or : in the queue and a candidate's screen)"),
    ("queue: reverse sort", "reverse_sort", "Flip the sort direction"),
    ("queue: filter", "filter",
     "size>=5 novelty>=0.9 identity<=97 parent=NAME from=COLLECTION known=elsewhere twin=yes sort=flag|twin "
     "text"),
    ("queue: show pending", "show_status('pending')", "Only proposals waiting for a decision"),
    ("queue: show accepted", "show_status('accepted')", "Only accepted proposals"),
    ("queue: show rejected", "show_status('rejected')", "Only rejected proposals"),
    ("queue: show assigned", "show_status('assigned')", "Only proposals assigned to a known species"),
    ("queue: show all", "show_status('all')", "Pending, accepted and rejected"),
    ("queue: reload", "refresh", "Fetch the page and counts again"),
    ("taxonomy: open tree", "taxonomy", "The taxonomy graph, provisional taxa marked"),
    ("taxonomy: next provisional", "next_provisional", "Jump to the next provisional taxon"),
    ("taxonomy: proposals below", "show_proposals", "Queue filtered to this taxon"),
)


def _has_action(screen: object, action: str) -> bool:
    return hasattr(screen, f"action_{action.split('(')[0]}")


class ReviewCommands(Provider):
    """The app's palette provider."""

    def _available(self) -> list[tuple[str, str, str]]:
        return [c for c in COMMANDS if _has_action(self.screen, c[1])]

    async def discover(self) -> Hits:
        for text, action, help_text in self._available():
            yield DiscoveryHit(text, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, action, help_text in self._available():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self.screen.run_action, action), help=help_text)
