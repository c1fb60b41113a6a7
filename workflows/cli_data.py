"""Data verbs: ``synth``, ``split``, ``validate``, ``demo`` (until the pipeline exists)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the data verbs to the root app."""
