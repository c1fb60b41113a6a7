"""``html``: one self-contained report page (plots, candidates with photos, evidence and review notes).

Built by :func:`biodiscover.workflows.report.build_html`; every value from the
data is escaped and every image embedded, so the file opens offline and alone.
"""

from __future__ import annotations

from biodiscover.workflows.export.metadata import ExportOptions
from biodiscover.workflows.export.registry import REGISTRY, ExportFormat
from biodiscover.workflows.export.tables import RunExport


def render(data: RunExport, options: ExportOptions) -> bytes:
    from biodiscover.workflows.report import build_html

    return build_html(data, options).encode("utf-8")


FORMAT = REGISTRY.register(ExportFormat(
    "html", "self-contained report: plots, candidates with photos, evidence and review notes",
    "file", render, suffix=".html"))
