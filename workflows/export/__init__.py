"""Exports of one discovery run, or of several as one: one module per format, registered in one table.

``biodiscover export --db DB --run ID [--run ID …] --format FMT --out PATH`` calls
:func:`export_runs`. The formats (``csv``, ``dwca``, ``fasta``, ``html``, ``json``)
are listed once, one import line each in :mod:`~biodiscover.workflows.export.formats`;
each is a module of this package that registers itself and whose docstring says what it writes. The shared parts:

* :mod:`~biodiscover.workflows.export.tables` — :class:`RunExport`, the tables every
  format writes from, and the candidate name / review trail / model description
  more than one format needs;
* :mod:`~biodiscover.workflows.export.safety` — control characters removed,
  formulas neutralised, file names made safe;
* :mod:`~biodiscover.workflows.export.output` — overwrite rules, the signed manifest
  with checksums, atomic writes with the user's umask;
* :mod:`~biodiscover.workflows.export.metadata` — creator, contact, licence;
* :mod:`~biodiscover.workflows.export.pipeline` — read, refuse partial runs, join several runs into one export
  (``--run`` repeated, or a batch's id), write.
"""

from __future__ import annotations

from biodiscover.workflows.export.dwca import DNA_ROWTYPE, IDENTIFICATION_ROWTYPE, OCCURRENCE_ROWTYPE, occurrence_rows
from biodiscover.workflows.export.formats import REGISTRY
from biodiscover.workflows.export.metadata import DatasetMetadata, ExportOptions, build_metadata
from biodiscover.workflows.export.output import MANIFEST, check_output
from biodiscover.workflows.export.pipeline import (combine_exports, export_formats, export_run, export_runs,
                                                   load_run_export, triage_runs_of, write_export)
from biodiscover.workflows.export.registry import ExportFormat, FormatRegistry
from biodiscover.workflows.export.safety import clean_text, neutralise_cell, safe_join, safe_member_name
from biodiscover.workflows.export.tables import (ExportResult, RunExport, candidate_label, live_candidates,
                                                  model_description, review_trails)

#: The registered formats (a live view of :data:`REGISTRY`: iterate, ``in``, ``len``).
FORMATS = REGISTRY

__all__ = [
    "DNA_ROWTYPE", "FORMATS", "IDENTIFICATION_ROWTYPE", "MANIFEST", "OCCURRENCE_ROWTYPE", "REGISTRY",
    "DatasetMetadata", "ExportFormat", "ExportOptions", "ExportResult", "FormatRegistry", "RunExport",
    "build_metadata", "candidate_label", "check_output", "clean_text", "combine_exports", "export_formats",
    "export_run", "export_runs", "live_candidates", "load_run_export", "model_description", "neutralise_cell",
    "occurrence_rows", "review_trails", "safe_join", "safe_member_name", "triage_runs_of", "write_export",
]
