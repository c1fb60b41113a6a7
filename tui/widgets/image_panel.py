"""Image panel: the members' photographs in a grid, the nearest known species' photograph beside them.

A taxonomist compares habitus side by side: several members at once (do they
look like one species?) and the nearest known species next to them (do they look
different from it?). ``n``/``p`` move the selection through the members (the
grid pages along), ``z`` zooms the selected photograph to the whole panel and
back.

textual-image draws with the best protocol the terminal supports — the kitty
graphics protocol (TGP), Sixel, else Unicode half blocks — and the caption says
which (:func:`protocol_name`); ``force_halfcell`` pins half blocks, which every
terminal and SVG snapshot can show. In a 256-colour terminal (tmux without
truecolour) a pale background used to come out pink: the terminal's colour
cube has no pale greys but some pale pinks, and the nearest cube colour was
taken channel by channel. Photographs are therefore mapped to the xterm-256
palette here first, by distance in RGB, so pale greys land on the grey ramp
(:func:`to_xterm256`). A missing or unreadable file is reported in its
caption, never raised: a broken image must not stop a review.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: Cells one grid photograph takes (width, height); the grid has as many columns as fit.
TILE = (24, 11)
_PALETTE: Any = None


def xterm256_palette() -> list[int]:
    """The 240 fixed colours of the xterm-256 palette (6×6×6 cube and the grey ramp) as flat RGB."""
    steps = [0, 95, 135, 175, 215, 255]
    cube = [(r, g, b) for r in steps for g in steps for b in steps]
    greys = [(8 + 10 * i,) * 3 for i in range(24)]
    return [c for rgb in cube + greys for c in rgb]


def to_xterm256(picture: Any) -> Any:
    """``picture`` (PIL RGB) with every pixel replaced by its nearest xterm-256 colour (no dithering)."""
    global _PALETTE
    from PIL import Image

    if _PALETTE is None:
        flat = xterm256_palette()
        _PALETTE = Image.new("P", (1, 1))
        _PALETTE.putpalette(flat + flat[:3] * (256 - len(flat) // 3))
    return picture.convert("RGB").quantize(palette=_PALETTE, dither=Image.Dither.NONE).convert("RGB")


def protocol_name(force_halfcell: bool = False) -> str:
    """The drawing protocol textual-image chose for this terminal, in words."""
    if force_halfcell:
        return "half blocks"
    try:
        from textual_image.renderable import Image as Auto
        from textual_image.renderable.halfcell import Image as Halfcell
        from textual_image.renderable.sixel import Image as Sixel
        from textual_image.renderable.tgp import Image as Tgp
    except Exception:  # noqa: BLE001 - textual-image unusable: half blocks are what we draw
        return "half blocks"
    return {Tgp: "kitty graphics", Sixel: "sixel", Halfcell: "half blocks"}.get(Auto, "unicode blocks")


class ImagePanel(Vertical, can_focus=True):
    """Shows member photographs (a grid or one zoomed) and a reference photograph."""

    BINDINGS = [
        Binding("n", "next_image", "Next photo", id="image.next"),
        Binding("p", "previous_image", "Prev photo", id="image.previous"),
        Binding("z", "zoom", "Zoom", id="image.zoom"),
    ]
    DEFAULT_CSS = """
    ImagePanel { height: 1fr; min-height: 3; }
    ImagePanel > .image-caption { height: 1; color: $text-muted; }
    ImagePanel > #image-body { height: 1fr; }
    ImagePanel .image-reference { width: 26; height: 1fr; border-right: solid $primary-background; }
    ImagePanel .image-grid { grid-gutter: 0 1; grid-rows: 11; height: 1fr; }
    ImagePanel .tile { height: 11; }
    ImagePanel .tile-caption { height: 1; color: $text-muted; }
    ImagePanel .tile.selected .tile-caption { color: $accent; text-style: bold; }
    ImagePanel .tile-view { height: 10; width: auto; max-width: 100%; }
    ImagePanel .zoom-view { height: 1fr; width: auto; max-width: 100%; }
    """

    index: reactive[int] = reactive(0)

    def __init__(self, *, force_halfcell: bool = False, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.images: list[tuple[str, Path]] = []
        self.reference: tuple[str, Path | None] | None = None
        self.force_halfcell = force_halfcell
        self.zoomed = False
        self._columns = 2

    def compose(self) -> ComposeResult:
        yield Static("no images", classes="image-caption")
        yield Horizontal(id="image-body")

    def set_images(self, images: list[tuple[str, Path]], reference: tuple[str, Path | None] | None = None) -> None:
        """``images``: (processid, path) of members with a photograph; ``reference``: (label, path or None)
        of the nearest known species."""
        self.images = [(pid, Path(p)) for pid, p in images]
        self.reference = None if reference is None else (reference[0], Path(reference[1]) if reference[1] else None)
        self.index = 0
        self.zoomed = False
        self._show()

    def action_next_image(self) -> None:
        if self.images:
            self.index = (self.index + 1) % len(self.images)
            self._show()

    def action_previous_image(self) -> None:
        if self.images:
            self.index = (self.index - 1) % len(self.images)
            self._show()

    def action_zoom(self) -> None:
        if self.images:
            self.zoomed = not self.zoomed
            self._show()

    @property
    def caption(self) -> str:
        return str(self.query_one(".image-caption", Static).render())

    @property
    def page(self) -> list[int]:
        """Indices of the member photographs on screen (the page holding the selection)."""
        if self.zoomed:
            return [self.index] if self.images else []
        per = self._per_page()
        first = (self.index // per) * per
        return list(range(first, min(first + per, len(self.images))))

    def _per_page(self) -> int:
        width = max(TILE[0], (self.size.width or 80) - (27 if self.reference is not None else 0))
        height = max(TILE[1], (self.size.height or 20) - 1)
        self._columns = max(1, width // (TILE[0] + 1))
        return self._columns * max(1, height // TILE[1])

    def on_resize(self) -> None:
        if self.images or self.reference is not None:
            self._show()

    def _show(self) -> None:
        caption = self.query_one(".image-caption", Static)
        body = self.query_one("#image-body", Horizontal)
        body.remove_children()
        if not self.images and self.reference is None:
            caption.update("no images for these members")
            return
        how = protocol_name(self.force_halfcell)
        if self.images:
            pid = self.images[self.index][0]
            keys = "z: back to the grid" if self.zoomed else "n/p: select  z: zoom"
            caption.update(f"photo {self.index + 1}/{len(self.images)}: {pid}  ·  {keys}  ·  drawn with {how}")
        else:
            caption.update(f"no photographs of these members  ·  drawn with {how}")
        if self.reference is not None:
            body.mount(self._reference_column(self.reference))
        if self.zoomed:
            pid, path = self.images[self.index]
            body.mount(self._picture(path, "zoom-view", pid))
            return
        tiles = [Vertical(Static(("▶ " if i == self.index else "") + self.images[i][0], classes="tile-caption"),
                          self._picture(self.images[i][1], "tile-view", self.images[i][0]),
                          classes="tile selected" if i == self.index else "tile") for i in self.page]
        grid = Grid(*tiles, classes="image-grid")
        grid.styles.grid_size_columns = self._columns
        body.mount(grid)

    def _reference_column(self, reference: tuple[str, Path | None]) -> Vertical:
        label, path = reference
        picture = Static("no photograph of it in the reference", classes="tile-caption") if path is None \
            else self._picture(path, "tile-view", label)
        return Vertical(Static("nearest known species:", classes="tile-caption"),
                        Static(label, classes="tile-caption"), picture, classes="image-reference")

    def _picture(self, path: Path, classes: str, label: str) -> Widget:
        if not path.is_file():
            return Static(f"(missing file {path.name})", classes="tile-caption")
        try:
            from PIL import Image as PILImage

            with PILImage.open(path) as im:
                im.load()
                picture = im.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - unreadable image: say so, keep reviewing
            return Static(f"(unreadable: {type(exc).__name__})", classes="tile-caption")
        if self._few_colours():
            picture = to_xterm256(picture)
        try:
            return self._image_widget(picture, classes)
        except Exception as exc:  # noqa: BLE001 - textual-image unusable here: say so, keep reviewing
            return Static(f"(cannot draw images in this terminal: {type(exc).__name__})", classes="tile-caption")

    def _few_colours(self) -> bool:
        """True in a 256-colour (or fewer) terminal, where half blocks go through the colour cube."""
        try:
            system = self.app.console.color_system
        except Exception:  # noqa: BLE001 - no app (unit use): assume truecolour
            return False
        return system not in ("truecolor", "windows")

    def _image_widget(self, picture: PILImage.Image, classes: str) -> Widget:
        from textual_image.widget import HalfcellImage

        if self.force_halfcell:
            return HalfcellImage(picture, classes=classes)
        from textual_image.widget import Image

        try:
            return Image(picture, classes=classes)
        except Exception:  # noqa: BLE001 - protocol detection can fail on odd terminals: half blocks always work
            return HalfcellImage(picture, classes=classes)
