"""Image panel: one member photograph at a time, rendered in the terminal.

textual-image picks the best protocol the terminal supports (TGP, Sixel, else
Unicode half blocks); ``force_halfcell`` pins the half-block renderer, which every
terminal and SVG snapshot can show. ``n``/``p`` cycle through the members that
have an image; a missing or unreadable file is reported in the caption, never
raised, because a broken image must not stop a review.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static


class ImagePanel(Vertical, can_focus=True):
    """Shows ``images[index]``; captions say which member and how many images there are."""

    BINDINGS = [
        Binding("n", "next_image", "Next image", id="image.next"),
        Binding("p", "previous_image", "Prev image", id="image.previous"),
    ]
    # The picture takes the height the tab has (a 24×12-cell thumbnail of a 341×256 photo showed
    # nothing a taxonomist could use) and a width from its aspect ratio, capped for wide terminals.
    DEFAULT_CSS = """
    ImagePanel { height: 1fr; min-height: 3; }
    ImagePanel > .image-caption { height: 1; color: $text-muted; }
    ImagePanel > .image-view { height: 1fr; min-height: 6; max-height: 40; width: auto; max-width: 100%; }
    """

    index: reactive[int] = reactive(0)

    def __init__(self, *, force_halfcell: bool = False, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.images: list[tuple[str, Path]] = []
        self.force_halfcell = force_halfcell

    def compose(self) -> ComposeResult:
        yield Static("no images", classes="image-caption")

    def set_images(self, images: list[tuple[str, Path]]) -> None:
        """``images``: (processid, path) pairs of members that have a photograph."""
        self.images = [(pid, Path(p)) for pid, p in images]
        self.index = 0
        self._show()

    def action_next_image(self) -> None:
        if self.images:
            self.index = (self.index + 1) % len(self.images)
            self._show()

    def action_previous_image(self) -> None:
        if self.images:
            self.index = (self.index - 1) % len(self.images)
            self._show()

    @property
    def caption(self) -> str:
        return str(self.query_one(".image-caption", Static).render())

    def _show(self) -> None:
        caption = self.query_one(".image-caption", Static)
        for old in self.query(".image-view"):
            old.remove()
        if not self.images:
            caption.update("no images for these members")
            return
        pid, path = self.images[self.index]
        label = f"image {self.index + 1}/{len(self.images)}: {pid}"
        if not path.is_file():
            caption.update(f"{label} (missing file {path.name})")
            return
        try:
            from PIL import Image as PILImage

            with PILImage.open(path) as im:
                im.load()
                picture = im.convert("RGB")
        except Exception as exc:  # unreadable image: say so, keep reviewing
            caption.update(f"{label} (unreadable: {type(exc).__name__})")
            return
        try:
            widget = self._image_widget(picture)
        except Exception as exc:  # noqa: BLE001 - textual-image unusable here: say so, keep reviewing
            caption.update(f"{label} (cannot draw images in this terminal: {type(exc).__name__})")
            return
        caption.update(f"{label}  [n/p]")
        self.mount(widget)

    def _image_widget(self, picture: object) -> Static:
        from textual_image.widget import HalfcellImage

        if self.force_halfcell:
            return HalfcellImage(picture, classes="image-view")
        from textual_image.widget import Image

        cls = Image
        try:
            return cls(picture, classes="image-view")
        except Exception:  # protocol detection can fail on odd terminals: half blocks always work
            return HalfcellImage(picture, classes="image-view")
