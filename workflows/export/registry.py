"""The format registry: one entry per export format, from which the CLI help and the format list come.

Why a registry: a format used to be listed in three places plus hand-written CLI
help, and they drifted. Now a format is one module in this package whose ``FORMAT`` registers itself
here, plus one import line in the table of
:mod:`biodiscover.workflows.export.formats`; ``biodiscover export --help``, the
``--format`` choices, the error for an unknown format and ``FORMATS`` are all
read from :data:`REGISTRY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Mapping, Union

from biodiscover.storage.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from biodiscover.workflows.export.metadata import ExportOptions
    from biodiscover.workflows.export.tables import RunExport

#: What a format's ``render`` returns: the bytes of one file, or {file name: bytes} of a folder.
Rendered = Union[bytes, Mapping[str, bytes]]


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    ``render(data, options)`` builds the output in memory from a cleaned
    :class:`~biodiscover.workflows.export.tables.RunExport`: bytes for a ``file``
    format, ``{name: bytes}`` for a ``folder`` format (names must come from
    :func:`~biodiscover.workflows.export.safety.safe_member_name` when built from
    data). Writing to disk — overwrite rules, manifest, permissions — is done
    once for every format by :mod:`biodiscover.workflows.export.output`.
    """

    name: str
    summary: str
    output: Literal["file", "folder"]
    render: Callable[["RunExport", "ExportOptions"], Rendered]
    #: usual file name ending of a file format (``.zip``), for help and for ``--out`` defaults
    suffix: str | None = None
    #: the output names the dataset's creator and licence (a publisher such as GBIF needs both): the CLI
    #: warns when the metadata lacks them
    publishes_metadata: bool = False
    #: ``--out`` must end in ``suffix``: an archive named otherwise (``e.txt`` holding a zip) is opened by the
    #: wrong program and refused by a publisher, so the export refuses it rather than write it
    requires_suffix: bool = False

    def help_line(self) -> str:
        where = f"a {self.suffix} file" if self.output == "file" and self.suffix else \
            ("a folder" if self.output == "folder" else "one file")
        return f"{self.name}: {self.summary} ({where})"


class FormatRegistry:
    """Formats by name, listed in name order (so the list does not depend on which module imported first)."""

    def __init__(self, formats: Any = ()) -> None:
        self._formats: dict[str, ExportFormat] = {}
        for fmt in formats:
            self.register(fmt)

    def register(self, fmt: ExportFormat) -> ExportFormat:
        if not fmt.name or not fmt.name.replace("-", "").isalnum() or fmt.name != fmt.name.lower():
            raise ValueError(f"export format name {fmt.name!r}: lower-case letters, digits and '-' only")
        if fmt.name in self._formats and self._formats[fmt.name] is not fmt:
            raise ValueError(f"export format {fmt.name!r} is registered twice")
        if fmt.output not in ("file", "folder"):
            raise ValueError(f"export format {fmt.name!r}: output must be 'file' or 'folder'")
        self._formats[fmt.name] = fmt
        self._formats = dict(sorted(self._formats.items()))
        return fmt

    def get(self, name: str) -> ExportFormat:
        try:
            return self._formats[name]
        except KeyError:
            raise InputError(f"unknown export format {name!r} (known: {', '.join(self.names())})") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._formats)

    def __iter__(self) -> Iterator[str]:
        return iter(self._formats)

    def __contains__(self, name: object) -> bool:
        return name in self._formats

    def __len__(self) -> int:
        return len(self._formats)

    def epilog(self) -> str:
        """The formats, one paragraph each, for the end of ``export --help``."""
        return "\n\n".join(["Formats:", *(f.help_line() for f in self._formats.values())])

    def out_help(self) -> str:
        """``--out`` help: which formats write a folder and which one file."""
        folders = [n for n, f in self._formats.items() if f.output == "folder"]
        files = [f"{n} ({f.suffix})" if f.suffix else n for n, f in self._formats.items() if f.output == "file"]
        parts = []
        if folders:
            parts.append(f"a folder for {', '.join(folders)}")
        if files:
            parts.append(f"a file for {', '.join(files)}")
        return "Output: " + "; ".join(parts) + "."


#: The one registry; the format modules imported by :mod:`biodiscover.workflows.export.formats` fill it.
REGISTRY = FormatRegistry()
