"""One progress protocol for every long job: ``progress(stage, done, total, message)``.

Why one shape: triage reported ``(stage, done, total)``, the demo ``(stage,
fraction, message)``, build-reference, evaluate and the engine's fit a bare
message, training ``(message, fraction)`` — one idea in many shapes, each with
its own adapter in the CLI. Library code calls a :class:`Progress` and never
draws; ``cli`` and ``tui`` turn the calls into bars or lines.

``stage`` names the step (``"read"``, ``"triage"``, ``"train"``); ``done`` of
``total`` units of it are finished (``total`` None: a step without a count,
where only ``message`` says something); ``message`` is a line a person reads.
It lives in ``storage``, the floor, because every layer reports progress.
"""

from __future__ import annotations

import logging
from typing import Callable, Protocol

__all__ = ["Progress", "describe", "log_progress", "messages", "no_progress", "within"]


class Progress(Protocol):
    """Positional arguments only, so an implementation names its parameters as it likes."""

    def __call__(self, stage: str, done: float, total: float | None = None, message: str = "", /) -> None: ...


def no_progress(stage: str, done: float, total: float | None = None, message: str = "") -> None:
    """The default: report nothing."""


def describe(stage: str, done: float, total: float | None = None, message: str = "") -> str:
    """One line for a call: ``stage: message``, else ``stage: done/total``, else the stage."""
    if message:
        return f"{stage}: {message}"
    if total is None:
        return stage

    def number(x: float) -> str:
        return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"

    return f"{stage}: {number(done)}/{number(total)}"


def log_progress(logger: logging.Logger) -> Progress:
    """Progress as INFO log lines (a library run without a user interface); count-less calls without a
    message say nothing."""

    def report(stage: str, done: float, total: float | None = None, message: str = "") -> None:
        if message or total is not None:
            logger.info("%s", describe(stage, done, total, message))

    return report


def within(progress: Progress, stage: str, start: float = 0.0, share: float = 1.0) -> Progress:
    """A sub-job's progress reported as part of ``stage`` of ``progress`` (whose total is 1.0).

    The sub-job's fraction done is mapped into ``[start, start + share]``; a call
    without a count stays at ``start``. The sub-job's own stage name becomes the
    message when it has none (the demo's "synth" bar says "images" while the
    generator draws them).
    """

    def report(sub: str, done: float, total: float | None = None, message: str = "") -> None:
        fraction = min(1.0, max(0.0, done / total)) if total else 0.0
        progress(stage, start + share * fraction, 1.0, message or sub)

    return report


def messages(progress: Progress, stage: str) -> Callable[[str], None]:
    """``say(message)`` for code that only has lines to report, as count-less calls of ``stage``."""

    def say(message: str) -> None:
        progress(stage, 0, None, message)

    return say
