"""Verbs: review.

``biodiscover review --db DB [--run ID]`` opens the Textual review app
(:mod:`biodiscover.tui.app`). The CLI is the composition root, the one place that
starts the TUI; the import sits inside the verb so other verbs do not load textual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from biodiscover.storage.errors import InputError


def register(app: typer.Typer) -> None:
    """Attach this module's verbs to the root app."""

    @app.command("review")
    def review(
        db: Path = typer.Option(..., "--db", help="The biodiscover database (from triage / run / ingest)."),
        run: Optional[int] = typer.Option(None, "--run", help="Show only the proposals of this run."),
        reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Name written in the review log and the "
                                               "exports (default: $BIODISCOVER_REVIEWER, else reviewer = \"…\" "
                                               "in ~/.config/biodiscover/config.toml, else your login name)."),
        keymap: Optional[Path] = typer.Option(None, "--keymap", help="TOML file remapping bindings by id "
                                              "(default: ~/.config/biodiscover/keymap.toml if present)."),
        images: Optional[Path] = typer.Option(None, "--images", help="Folder that relative image paths "
                                              "are resolved against."),
    ) -> None:
        """Review candidate species in a terminal UI: accept, reject, merge, split, move, rename, note, undo."""
        if images is not None and not images.is_dir():
            raise InputError(f"{images}: --images is not a folder")
        from biodiscover.tui.app import run_review  # here, not at the top: other verbs need no textual

        run_review(db, run_id=run, reviewer=reviewer, keymap_path=keymap, image_root=images)
