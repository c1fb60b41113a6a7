"""User keymaps: remap any binding by its id from a TOML file.

The file maps binding ids to keys, for example::

    # ~/.config/biodiscover/keymap.toml
    "proposal.accept" = "A"
    "proposal.reject" = "x,delete"

It is handed to :meth:`textual.app.App.set_keymap` (as Posting does), so every
screen picks it up. A malformed file, or an id that no binding has, is an
:class:`~biodiscover.storage.errors.InputError` naming the file and the entry, because a
silently ignored remap leaves a taxonomist pressing keys that do nothing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Iterable

from biodiscover.storage.errors import InputError
from biodiscover.storage.settings import config_dir


def default_keymap_path() -> Path:
    """``$XDG_CONFIG_HOME/biodiscover/keymap.toml`` (``~/.config`` when unset)."""
    return config_dir() / "keymap.toml"


def load_keymap(path: Path, known_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Read ``path`` into {binding id: keys}; refuse unknown ids when ``known_ids`` is given."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: keymap file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    keymap: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: entry {key!r} must be a non-empty string of keys, got {value!r}")
        keymap[str(key)] = value.strip()
    if known_ids is not None:
        known = set(known_ids)
        unknown = sorted(set(keymap) - known)
        if unknown:
            raise InputError(f"{path}: unknown binding id(s) {', '.join(unknown)}; "
                             f"known ids: {', '.join(sorted(known))}")
    return keymap
