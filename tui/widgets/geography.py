"""Geography summary: where a candidate's members were caught.

Takes (place, count) pairs and an optional bounding box as the proposal
evidence gives them; it sorts and formats, nothing more.
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.widgets import Static


def render_geography(places: Sequence[tuple[str, int]], bbox: Sequence[float] | None = None,
                     limit: int = 5) -> Text:
    """``places`` as "Canada  12 ███"; the rest summed into "+N more"; bbox as lat/lon ranges."""
    text = Text()
    ordered = sorted(((p or "unknown", int(c)) for p, c in places), key=lambda pc: (-pc[1], pc[0]))
    if not ordered:
        text.append("no locality recorded", style="grey50")
    else:
        total = sum(c for _, c in ordered)
        width = max(len(p) for p, _ in ordered[:limit])
        for place, count in ordered[:limit]:
            bar = "█" * max(1, round(count / total * 12))
            text.append(f"{place:<{width}} {count:>4} ", style="grey85")
            text.append(bar + "\n", style="cyan")
        rest = ordered[limit:]
        if rest:
            text.append(f"+{len(rest)} more places ({sum(c for _, c in rest)} specimens)\n", style="grey50")
    if bbox is not None and len(bbox) == 4 and all(v is not None for v in bbox):
        lat0, lat1, lon0, lon1 = (float(v) for v in bbox)
        text.append(f"lat {lat0:.2f}…{lat1:.2f}  lon {lon0:.2f}…{lon1:.2f}", style="grey70")
    text.rstrip()
    return text


class GeographySummary(Static):
    DEFAULT_CSS = """
    GeographySummary { height: auto; }
    """

    def set_places(self, places: Sequence[tuple[str, int]], bbox: Sequence[float] | None = None) -> None:
        self.update(render_geography(places, bbox))
