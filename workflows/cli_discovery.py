"""Verbs: triage, evaluate."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's verbs to the root app."""
