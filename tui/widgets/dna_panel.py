"""DNA panel: member barcodes aligned under the consensus, coloured by base.

Why a line-API ``ScrollView`` rather than a big ``Static``: a candidate can hold
hundreds of members × 660 nt; drawing only the visible strip keeps scrolling
instant in both directions. Bases that differ from the consensus are shown on a
highlighted background and columns where any member differs are marked ``^``
on the ruler line, so a taxonomist sees at a glance where the variable sites
are. Sequences are expected already aligned to the consensus (same coordinates,
as the proposal evidence provides them); the widget does not align.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

#: Foreground colour per nucleotide; anything else (N, IUPAC codes, gaps) is dim.
BASE_STYLES: dict[str, Style] = {
    "A": Style(color="green3"),
    "C": Style(color="dodger_blue1"),
    "G": Style(color="orange1"),
    "T": Style(color="red1"),
}
OTHER_STYLE = Style(color="grey50")
#: Added on a base that differs from the consensus.
VARIANT_STYLE = Style(bgcolor="grey23", bold=True, underline=True)
LABEL_STYLE = Style(color="grey70")
RULER_STYLE = Style(color="grey50")
MARK_STYLE = Style(color="yellow1", bold=True)


def variable_sites(consensus: str, sequences: list[str]) -> list[int]:
    """0-based columns where at least one sequence has a called base (ACGT) unlike the consensus."""
    sites: set[int] = set()
    cons = consensus.upper()
    for seq in sequences:
        for i, (a, b) in enumerate(zip(seq.upper(), cons)):
            if a != b and a in "ACGT" and b in "ACGT":
                sites.add(i)
    return sorted(sites)


@dataclass(frozen=True)
class DnaRows:
    """What the panel draws: a consensus and (label, aligned sequence) rows."""

    consensus: str
    rows: tuple[tuple[str, str], ...]


class DnaPanel(ScrollView, can_focus=True):
    """Consensus + member sequences; scroll with arrows / Home / End / PageUp / PageDown."""

    DEFAULT_CSS = """
    DnaPanel { height: 1fr; scrollbar-size: 1 1; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._data = DnaRows("", ())
        self._label_width = 10
        self._sites: frozenset[int] = frozenset()
        self._length = 0

    @property
    def data(self) -> DnaRows:
        return self._data

    @property
    def variable_site_count(self) -> int:
        return len(self._sites)

    def set_sequences(self, consensus: str, rows: list[tuple[str, str]]) -> None:
        """Replace the content; labels are processids, sequences aligned to ``consensus``."""
        self._data = DnaRows(consensus or "", tuple((str(l), s or "") for l, s in rows))
        self._sites = frozenset(variable_sites(self._data.consensus, [s for _, s in self._data.rows]))
        labels = ["consensus", "sites"] + [l for l, _ in self._data.rows]
        self._label_width = min(24, max(len(l) for l in labels)) + 1
        self._length = max([len(self._data.consensus)] + [len(s) for _, s in self._data.rows])
        self.virtual_size = Size(self._label_width + self._length, 2 + len(self._data.rows))
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if not self._data.consensus and not self._data.rows:
            return Strip([Segment(" no barcodes for this proposal".ljust(width), OTHER_STYLE)]) if y == 0 else Strip.blank(width)
        # The label column stays put while the sequence scrolls under it.
        seq_width = max(0, width - self._label_width)
        start, stop = scroll_x, scroll_x + seq_width
        if row == 0:
            label, segments = "consensus", self._bases(self._data.consensus, start, stop, None)
        elif row == 1:
            # The ruler's label says which alignment columns are in view ("bp 46–110"): a variable
            # site is reported by position, and the panel scrolls sideways.
            label = f"bp {start + 1}–{min(stop, self._length)}" if self._length else "sites"
            marks = "".join("^" if i in self._sites else (":" if (i + 1) % 10 == 0 else " ")
                            for i in range(start, min(stop, self._length)))
            segments = [Segment(ch, MARK_STYLE if ch == "^" else RULER_STYLE) for ch in marks]
        elif row - 2 < len(self._data.rows):
            label, seq = self._data.rows[row - 2]
            segments = self._bases(seq, start, stop, self._data.consensus)
        else:
            return Strip.blank(width)
        head = Segment(label[: self._label_width - 1].ljust(self._label_width), LABEL_STYLE)
        strip = Strip([head, *segments])
        return strip.extend_cell_length(width).crop(0, width)

    @staticmethod
    def _bases(seq: str, start: int, stop: int, consensus: str | None) -> list[Segment]:
        out: list[Segment] = []
        for i in range(start, min(stop, len(seq))):
            base = seq[i].upper()
            style = BASE_STYLES.get(base, OTHER_STYLE)
            if consensus is not None and i < len(consensus):
                ref = consensus[i].upper()
                if base != ref and base in "ACGT" and ref in "ACGT":
                    style = style + VARIANT_STYLE
            out.append(Segment(base, style))
        return out
