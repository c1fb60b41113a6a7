"""The format table: every export format, one line each.

Adding a format is one new module in this package whose ``FORMAT`` registers
itself (``FORMAT = REGISTRY.register(ExportFormat(...))``) and one import line
here; the CLI's ``--format`` help, the format list (in this order) and the
unknown-format error are all read from the registry these lines fill. The
imports are static so the layering check sees every format module (ruff's
unused-import rule is off for this file: importing is what registers).
"""

from __future__ import annotations

from biodiscover.workflows.export import csv
from biodiscover.workflows.export import dwca
from biodiscover.workflows.export import fasta
from biodiscover.workflows.export import html
from biodiscover.workflows.export import json
from biodiscover.workflows.export.registry import REGISTRY
