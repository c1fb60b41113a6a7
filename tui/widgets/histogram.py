"""Distance histogram: within-candidate distances vs distances to the nearest known species.

Hand-drawn with Unicode blocks (no plotting library) so it fits an 80×24
terminal and renders identically in SVG snapshots. What a taxonomist reads off
it is the *barcode gap*: a good candidate has its within-candidate distances
(green) well left of its distances to the nearest known species (magenta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from rich.text import Text
from textual.widgets import Static

WITHIN_STYLE = "green3"
NEAREST_STYLE = "magenta"
EIGHTHS = " ▏▎▍▌▋▊▉█"


@dataclass(frozen=True)
class Binned:
    """Histogram counts over shared bin edges (``len(edges) == len(within) + 1``)."""

    edges: tuple[float, ...]
    within: tuple[int, ...]
    nearest: tuple[int, ...]


#: bin widths a reader takes in at a glance (fractions: 0.5 % … 100 %). The narrowest is 0.5 % (about
#: three bases of a 658-bp barcode): finer bins only split one barcode difference across rows, and a
#: single specimen's one distance used to be drawn as six rows all labelled "0.7%".
NICE_STEPS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0)


def bin_distances(within: Sequence[float], nearest: Sequence[float], bins: int = 6) -> Binned:
    """Count both series over shared bins of one round width, at most ``bins`` of them.

    The width is the narrowest of ``NICE_STEPS`` that covers the joint range in ``bins`` bins, and
    the edges are multiples of it, so every row's label is a distinct round distance.
    """
    values = [float(v) for v in (*within, *nearest) if v is not None and math.isfinite(float(v))]
    if not values:
        return Binned((), (), ())
    lo, hi = min(values), max(values)
    for step in NICE_STEPS:
        start = math.floor(lo / step + 1e-9) * step
        n = math.floor((hi - start) / step + 1e-9) + 1
        if n <= bins:
            break
    edges = tuple(start + i * step for i in range(n + 1))

    def count(series: Sequence[float]) -> tuple[int, ...]:
        out = [0] * n
        for v in series:
            if v is None or not math.isfinite(float(v)):
                continue
            out[min(n - 1, max(0, math.floor((float(v) - start) / step + 1e-9)))] += 1
        return tuple(out)

    return Binned(edges, count(within), count(nearest))


def _bar(n: int, peak: int, width: int) -> str:
    if peak <= 0 or n <= 0:
        return ""
    eighths = max(1, round(n / peak * width * 8))
    return "█" * (eighths // 8) + (EIGHTHS[eighths % 8] if eighths % 8 else "")


def render_histogram(binned: Binned, width: int = 36, percent: bool = True) -> Text:
    """A two-series horizontal histogram; one line per bin, labelled by its lower edge."""
    text = Text()
    if not binned.edges:
        text.append("no distances recorded", style="grey50")
        return text
    peak = max((*binned.within, *binned.nearest, 1))
    # Without distances to the nearest known species (not recorded), one series gets the whole width
    # rather than an empty column and "n/0" counts that read as "zero specimens near a known species".
    both = sum(binned.nearest) > 0
    half = max(4, (width - 10) // 2) if both else max(4, width - 10)
    text.append("distance   ", style="grey70")
    text.append("within".ljust(half + 1) if both else "within a candidate (pairs)", style=WITHIN_STYLE)
    if both:
        text.append("to nearest known", style=NEAREST_STYLE)
    text.append("\n")
    for i, (w, n) in enumerate(zip(binned.within, binned.nearest)):
        edge = binned.edges[i] * (100 if percent else 1)
        label = f"{edge:5.1f}%" if percent else f"{edge:6.3f}"
        text.append(f"{label:>8} │", style="grey70")
        text.append(_bar(w, peak, half).ljust(half), style=WITHIN_STYLE)
        if both:
            text.append("│", style="grey35")
            text.append(_bar(n, peak, half).ljust(half), style=NEAREST_STYLE)
        counts = f" {w}/{n}" if both else f" {w}"
        text.append(counts + ("\n" if i < len(binned.within) - 1 else ""), style="grey50")
    if not both:
        text.append("\ndistances to the nearest known species: not recorded", style="grey50")
    return text


class DistanceHistogram(Static):
    """Shows :func:`render_histogram` of the distances it is given (fractions 0–1)."""

    DEFAULT_CSS = """
    DistanceHistogram { height: auto; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self.binned = Binned((), (), ())

    def set_distances(self, within: Sequence[float], nearest: Sequence[float], bins: int = 6) -> None:
        self.binned = bin_distances(within, nearest, bins)
        self.update(render_histogram(self.binned))
