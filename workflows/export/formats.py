"""The format table: every export format, one line each.

Adding a format is one new module in this package (defining ``FORMAT``, an
:class:`~biodiscover.workflows.export.registry.ExportFormat`) and one line here;
the CLI's ``--format`` help, the format list and the unknown-format error are
read from the registry this fills.
"""

from __future__ import annotations

from biodiscover.workflows.export import csv, dwca, fasta, html, json
from biodiscover.workflows.export.registry import REGISTRY

for _format in (
    csv.FORMAT,
    dwca.FORMAT,
    fasta.FORMAT,
    html.FORMAT,
    json.FORMAT,
):
    REGISTRY.register(_format)
