"""Where a user's biodiscover settings live, and who is reviewing.

Why in ``storage``: the review app (``tui``) and the exports (``workflows``) both
read the user's configuration folder and may not import each other; ``storage``
is the floor both stand on. One place decides the folder and the reviewer's name.

Files in ``$XDG_CONFIG_HOME/biodiscover/`` (``~/.config/biodiscover/``):

* ``config.toml`` — ``reviewer = "Ana Silva"`` (the name written in the review log);
* ``keymap.toml`` — key remaps of the review app (:mod:`biodiscover.tui.keymap`);
* ``export.key`` — the key that signs export manifests (:mod:`biodiscover.workflows.export.output`).
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from biodiscover.storage.errors import InputError

REVIEWER_ENV = "BIODISCOVER_REVIEWER"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/biodiscover`` (``~/.config/biodiscover`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "biodiscover"


def config_path() -> Path:
    return config_dir() / "config.toml"


@dataclass(frozen=True)
class Reviewer:
    """The name written in the review log and where it came from (``--reviewer``, the environment,
    the config file, or the login name — the last is flagged, as ``root`` names nobody)."""

    name: str
    source: str


def resolve_reviewer(explicit: str | None = None) -> Reviewer:
    """``--reviewer`` > ``$BIODISCOVER_REVIEWER`` > ``reviewer`` in ``config.toml`` > the login name."""
    if explicit and explicit.strip():
        return Reviewer(explicit.strip(), "--reviewer")
    env = os.environ.get(REVIEWER_ENV, "").strip()
    if env:
        return Reviewer(env, f"${REVIEWER_ENV}")
    path = config_path()
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{path}: cannot read the settings ({exc})") from None
        name = raw.get("reviewer")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InputError(f"{path}: reviewer must be a non-empty string, got {name!r}")
        if name:
            return Reviewer(name.strip(), str(path))
    try:
        login = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        login = "reviewer"
    return Reviewer(login, "login name")
