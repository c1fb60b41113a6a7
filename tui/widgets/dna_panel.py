"""DNA panel: the members' barcodes aligned with the nearest known species' barcode as a reference row.

Why a line-API ``ScrollView`` rather than a big ``Static``: a candidate can hold
hundreds of members × 660 nt; drawing only the visible strip keeps scrolling
instant in both directions.

What is drawn (all rows in one alignment's coordinates, computed by the
caller — the screen aligns with pyfamsa — so a partial barcode starts where it
really starts, after a run of gaps, instead of shifting every column):

* the nearest known species' barcode (the reference row), when the run recorded it;
* the members' consensus (majority base per column);
* a ruler: ``^`` where the members differ among themselves, ``|`` where the
  consensus differs from the reference (the sites that tell the candidate from
  the known species), ``:`` every 10 columns;
* one row per member; a base that differs from the reference (or, without a
  reference, from the consensus) is highlighted.

Gaps (``-``) and ambiguous bases (``N``) never count as differences.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
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
#: Added on a base that differs from the row it is compared with.
VARIANT_STYLE = Style(bgcolor="grey23", bold=True, underline=True)
LABEL_STYLE = Style(color="grey70")
REFERENCE_LABEL_STYLE = Style(color="magenta", bold=True)
RULER_STYLE = Style(color="grey50")
MARK_STYLE = Style(color="yellow1", bold=True)
FIXED_STYLE = Style(color="magenta", bold=True)
CALLED = frozenset("ACGT")
#: Bases kept in view beside the labels: a label column as wide as the longest label (a species name such as
#: ``Tiaopsis sp. BIOUG57720-B08``) leaves at least this many; only a label longer than that is cut (``…``).
MIN_BASES = 40
#: The label column never gets narrower than this (a BOLD processid), however narrow the panel.
MIN_LABEL = 12


def variable_sites(consensus: str, sequences: list[str]) -> list[int]:
    """0-based columns where at least one sequence has a called base (ACGT) unlike ``consensus``."""
    sites: set[int] = set()
    cons = consensus.upper()
    for seq in sequences:
        for i, (a, b) in enumerate(zip(seq.upper(), cons)):
            if a != b and a in CALLED and b in CALLED:
                sites.add(i)
    return sorted(sites)


def column_consensus(rows: list[str]) -> str:
    """Majority called base per column of aligned ``rows`` (``-`` where no row has a base, ``N`` on a tie
    of nothing called); the same coordinates as the rows, unlike a consensus with gap columns removed."""
    if not rows:
        return ""
    out = []
    for i in range(max(len(r) for r in rows)):
        counts = Counter(r[i].upper() for r in rows if i < len(r) and r[i].upper() in CALLED)
        if counts:
            out.append(min(counts, key=lambda b: (-counts[b], b)))
        else:
            out.append("-" if all(i >= len(r) or r[i] == "-" for r in rows) else "N")
    return "".join(out)


@dataclass(frozen=True)
class DnaRows:
    """What the panel draws: an optional reference row, the consensus and (label, aligned sequence) rows."""

    consensus: str
    rows: tuple[tuple[str, str], ...]
    reference: tuple[str, str] | None = None


class DnaPanel(ScrollView, can_focus=True):
    """Reference + consensus + member sequences; ``[``/``]`` page sideways, arrows scroll, Home/End jump."""

    BINDINGS = [
        Binding("right_square_bracket", "page_right", "Page →", id="dna.page_right"),
        Binding("left_square_bracket", "page_left", "← Page", id="dna.page_left"),
        Binding("right", "scroll_right", "Scroll →", id="dna.right", show=False),
        Binding("left", "scroll_left", "← Scroll", id="dna.left", show=False),
        Binding("home", "scroll_home", "Start of barcode", id="dna.home", show=False),
        Binding("end", "scroll_end", "End of barcode", id="dna.end", show=False),
    ]
    DEFAULT_CSS = """
    DnaPanel { height: 1fr; scrollbar-size: 1 1; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._data = DnaRows("", ())
        self._label_width = 10
        self._longest_label = 9
        self._sites: frozenset[int] = frozenset()
        self._fixed: frozenset[int] = frozenset()
        self._length = 0

    @property
    def data(self) -> DnaRows:
        return self._data

    @property
    def variable_site_count(self) -> int:
        """Columns where the members differ among themselves."""
        return len(self._sites)

    @property
    def fixed_difference_count(self) -> int:
        """Columns where the members' consensus differs from the reference row."""
        return len(self._fixed)

    @property
    def header_rows(self) -> int:
        return 3 if self._data.reference is not None else 2

    def set_sequences(self, consensus: str, rows: list[tuple[str, str]],
                      reference: tuple[str, str] | None = None) -> None:
        """Replace the content; every sequence (and ``reference``: (label, sequence)) in one alignment's
        coordinates. ``consensus`` may be empty: it is then computed from ``rows``."""
        clean = tuple((str(label), s or "") for label, s in rows)
        cons = consensus or column_consensus([s for _, s in clean])
        self._data = DnaRows(cons, clean, reference)
        self._sites = frozenset(variable_sites(cons, [s for _, s in clean]))
        self._fixed = frozenset(variable_sites(reference[1], [cons])) if reference is not None else frozenset()
        labels = ["consensus", "sites"] + [label for label, _ in clean] + ([reference[0]] if reference else [])
        self._longest_label = max(len(label) for label in labels)
        seqs = [cons, *(s for _, s in clean)] + ([reference[1]] if reference else [])
        self._length = max(len(s) for s in seqs)
        self._fit_labels()
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def _fit_labels(self) -> None:
        """The label column: the longest label whole, as long as :data:`MIN_BASES` bases stay in view (a fixed
        24 cut species names such as ``Tiaopsis sp. BIOUG57720-B08`` at 80 columns)."""
        room = self.scrollable_content_region.width
        cap = max(MIN_LABEL, room - MIN_BASES) if room else self._longest_label
        self._label_width = min(self._longest_label, cap) + 1
        self.virtual_size = Size(self._label_width + self._length, self.header_rows + len(self._data.rows))

    def on_resize(self) -> None:
        self._fit_labels()

    # -- sideways paging ---------------------------------------------------------------------------------------
    def _page_width(self) -> int:
        return max(10, self.scrollable_content_region.width - self._label_width - 2)

    def action_page_right(self) -> None:
        self.scroll_to(x=min(self.max_scroll_x, self.scroll_x + self._page_width()), animate=False)

    def action_page_left(self) -> None:
        self.scroll_to(x=max(0, self.scroll_x - self._page_width()), animate=False)

    # -- drawing -----------------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if not self._data.consensus and not self._data.rows:
            return Strip([Segment(" no barcodes for this proposal".ljust(width), OTHER_STYLE)]) if y == 0 \
                else Strip.blank(width)
        # The header rows (reference, consensus, ruler) stay put while member rows scroll under them.
        head = self.header_rows
        row = y if y < head else scroll_y + y
        seq_width = max(0, width - self._label_width)
        start, stop = scroll_x, scroll_x + seq_width
        ref = self._data.reference
        against = ref[1] if ref is not None else self._data.consensus
        label_style = LABEL_STYLE
        if ref is not None and row == 0:
            label, label_style = ref[0], REFERENCE_LABEL_STYLE
            segments = self._bases(ref[1], start, stop, None)
        elif row == head - 2:
            label = "consensus"
            segments = self._bases(self._data.consensus, start, stop, ref[1] if ref is not None else None)
        elif row == head - 1:
            # The ruler's label says which alignment columns are in view ("bp 46–110"): a site is reported by
            # position, and the panel scrolls sideways.
            label = f"bp {start + 1}–{min(stop, self._length)}" if self._length else "sites"
            marks = "".join("^" if i in self._sites else "|" if i in self._fixed else
                            (":" if (i + 1) % 10 == 0 else " ") for i in range(start, min(stop, self._length)))
            segments = [Segment(ch, MARK_STYLE if ch == "^" else FIXED_STYLE if ch == "|" else RULER_STYLE)
                        for ch in marks]
        elif row - head < len(self._data.rows):
            label, seq = self._data.rows[row - head]
            segments = self._bases(seq, start, stop, against)
        else:
            return Strip.blank(width)
        room = self._label_width - 1
        label = label if len(label) <= room else label[: room - 1] + "…"
        strip = Strip([Segment(label.ljust(self._label_width), label_style), *segments])
        return strip.extend_cell_length(width).crop(0, width)

    @staticmethod
    def _bases(seq: str, start: int, stop: int, against: str | None) -> list[Segment]:
        out: list[Segment] = []
        for i in range(start, min(stop, len(seq))):
            base = seq[i].upper()
            style = BASE_STYLES.get(base, OTHER_STYLE)
            if against is not None and i < len(against):
                ref = against[i].upper()
                if base != ref and base in CALLED and ref in CALLED:
                    style = style + VARIANT_STYLE
            out.append(Segment(base, style))
        return out
