"""What keeps hostile data inert on its way into an export.

Why one module: every format writes text that came from a collection file or a
reviewer (processids, names, places, notes), and every one of those strings can
be hostile: a spreadsheet formula (``=HYPERLINK(…)``), a NUL byte, a terminal
escape, a path (``../../etc/passwd``). The rules live here once and every writer
goes through them:

* :func:`clean_text` drops control characters (C0 except tab/newline, DEL, C1, bidi overrides):
  a NUL, an escape sequence or a right-to-left override never reaches an output file;
* :func:`clean_export` applies it to every text cell of a :class:`RunExport`
  (nested evidence and review notes included) before any writer runs;
* :func:`neutralise_cell` prefixes ``'`` to text a spreadsheet would evaluate
  (OWASP CSV injection) in the tabular formats (CSV, Darwin Core); it and
  ``FORMULA_PREFIXES`` are :mod:`biodiscover.storage.safetext`'s, re-exported here;
* :func:`safe_member_name` / :func:`safe_join` turn data into file names that
  cannot leave the output folder.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from biodiscover.storage.errors import InputError
from biodiscover.storage.safetext import FORMULA_PREFIXES as FORMULA_PREFIXES
from biodiscover.storage.safetext import TEXT_CONTROL
from biodiscover.storage.safetext import neutralise_cell as neutralise_cell

if TYPE_CHECKING:  # pragma: no cover
    from biodiscover.workflows.export.tables import RunExport

#: Control characters no output may carry: C0 except tab / newline / carriage return, DEL, C1, and the invisible
#: ones that make text display as something else (bidi overrides and isolates, line separators): the validation's
#: rule less the line breaks (:data:`biodiscover.storage.safetext.TEXT_CONTROL`, its one owner).
CONTROL_CHARS = TEXT_CONTROL
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_MEMBER_NAME = 100


def clean_text(value: Any) -> Any:
    """``value`` without control characters when it is a string (other values unchanged)."""
    if isinstance(value, str) and CONTROL_CHARS.search(value):
        return CONTROL_CHARS.sub("", value)
    return value


def _clean_nested(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(k) if isinstance(k, str) else k: _clean_nested(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clean_nested(v) for v in value)
    return value


def clean_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and nested dicts / lists) carry no control characters."""
    if frame.empty:
        return frame
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(_clean_nested)
    out.columns = [clean_text(c) if isinstance(c, str) else c for c in out.columns]
    return out


def clean_export(data: "RunExport") -> "RunExport":
    """``data`` with every text value cleaned (:func:`clean_text`); done once before any writer runs."""
    import dataclasses

    return dataclasses.replace(
        data, run=_clean_nested(dict(data.run)), specimens=clean_frame(data.specimens),
        assignments=clean_frame(data.assignments), proposals=clean_frame(data.proposals),
        members=clean_frame(data.members), reviews=clean_frame(data.reviews),
        earlier=clean_frame(data.earlier), earlier_reviews=clean_frame(data.earlier_reviews),
        retired=clean_frame(data.retired), runs=tuple(_clean_nested(dict(r)) for r in data.runs))


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Apply :func:`neutralise_cell` to every text cell (and header) of a frame."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def safe_member_name(name: str, *, suffix: str = "", fallback: str = "unnamed") -> str:
    """A file / archive member name derived from data that cannot escape its folder.

    Unicode is NFKC-normalised and reduced to ``[A-Za-z0-9._-]``; path separators,
    ``..``, drive letters, control characters and leading dots disappear;
    Windows device names get a ``_`` prefix; the result is at most
    ``MAX_MEMBER_NAME`` characters plus ``suffix``.
    """
    text = unicodedata.normalize("NFKC", str(name))
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    text = re.sub(r"\.{2,}", ".", text).strip("._-")
    if not text:
        text = fallback
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text[:MAX_MEMBER_NAME] + suffix


def safe_join(root: Path, member: str) -> Path:
    """``root / member`` after checking the result stays inside ``root`` (else ``InputError``)."""
    root_resolved = root.resolve()
    target = (root_resolved / member).resolve()
    if target == root_resolved or root_resolved not in target.parents:
        raise InputError(f"refusing to write {member!r}: it would land outside {root}")
    return target


def unique_names(names: list[str]) -> list[str]:
    """``names`` made unique case-insensitively (``x.fasta``, ``x-1.fasta``): one file system may fold case."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        key = n.lower()
        if key in seen:
            seen[key] += 1
            stem, dot, ext = n.rpartition(".")
            n = f"{stem}-{seen[key]}.{ext}" if dot else f"{n}-{seen[key]}"
        else:
            seen[key] = 0
        out.append(n)
    return out
