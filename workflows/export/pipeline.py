"""``biodiscover export``: read one run from the database, refuse what must not be written, write it.

Every format goes the same way: the run's tables are read once (read-only, one
consistent snapshot), cleaned of control characters (:func:`clean_export`), the
format renders its bytes in memory, and :mod:`~biodiscover.workflows.export.output`
writes them without destroying anything biodiscover did not write.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from biodiscover.storage.errors import InputError
from biodiscover.workflows.export.formats import REGISTRY
from biodiscover.workflows.export.metadata import ExportOptions
from biodiscover.workflows.export.output import check_output, write_file, write_folder
from biodiscover.workflows.export.registry import ExportFormat
from biodiscover.workflows.export.safety import clean_export
from biodiscover.workflows.export.tables import ExportResult, RunExport, live_candidates

log = logging.getLogger(__name__)


def _format(fmt: str | ExportFormat) -> ExportFormat:
    return fmt if isinstance(fmt, ExportFormat) else REGISTRY.get(str(fmt))


def _check_suffix(spec: ExportFormat, out: Path) -> None:
    """Refuse an ``--out`` whose ending hides what the file is, for a format that requires its ending."""
    if spec.requires_suffix and spec.suffix and out.suffix.lower() != spec.suffix:
        raise InputError(f"{out}: the {spec.name} export writes a {spec.suffix} file; name it "
                         f"{out.with_suffix(spec.suffix).name if out.suffix else out.name + spec.suffix}")


def write_export(data: RunExport, fmt: str | ExportFormat, out: Path, *, force: bool = False,
                 options: ExportOptions | None = None) -> ExportResult:
    """Write ``data`` as ``fmt`` to ``out`` (an existing output is replaced only with ``force``)."""
    spec = _format(fmt)
    out = Path(out)
    _check_suffix(spec, out)
    check_output(out, force=force, folder=spec.output == "folder", fmt=spec.name)
    data = clean_export(data)
    rendered = spec.render(data, options or ExportOptions())
    if spec.output == "folder":
        if not isinstance(rendered, dict):
            raise TypeError(f"export format {spec.name!r} writes a folder: render must return {{name: bytes}}")
        files = write_folder(out, rendered, force=force, fmt=spec.name)
    else:
        if not isinstance(rendered, (bytes, bytearray)):
            raise TypeError(f"export format {spec.name!r} writes one file: render must return bytes")
        files = write_file(out, bytes(rendered), force=force, fmt=spec.name)
    log.info("exported run %s as %s to %s (%d files)", data.run.get("id"), spec.name, out, len(files))
    live = len(live_candidates(data.proposals))
    later = data.run.get("superseded") or {}
    # each status counted on its own (the proposals that are not candidates were all counted as "rejected")
    status = data.proposals["status"].value_counts() if "status" in data.proposals else pd.Series(dtype=int)
    return ExportResult(spec.name, out, files, len(data.assignments), live, int(status.get("rejected", 0)),
                        int(status.get("assigned", 0)), int(status.get("accepted", 0)),
                        partial=data.partial, superseded=int(later.get("candidates", 0)),
                        superseded_by=tuple(later.get("by_runs", ())))


def incomplete_message(run: dict) -> str:
    done, total = run.get("done"), run.get("total")
    count = f": {done:,} of {total:,} specimens" if isinstance(done, int) and isinstance(total, int) else ""
    return (f"run {run.get('id')} did not complete (status {run.get('status')}{count}); pass --partial to export "
            "what it holds, marked as partial")


def export_run(db: Path, run_id: int, fmt: str | ExportFormat, out: Path, *, force: bool = False,
               partial: bool = False, options: ExportOptions | None = None) -> ExportResult:
    """``biodiscover export``: read run ``run_id`` from the database at ``db`` and write it.

    A run that did not complete (killed, failed, still running) holds only part
    of its collection; it is refused unless ``partial``, and then every format
    says it is partial. A batch's run id (``biodiscover run``) is refused naming its collections' triage runs
    (:func:`refuse_batch_run`), and a run that holds nothing is refused even with ``partial``.
    """
    spec = _format(fmt)
    _check_suffix(spec, Path(out))
    check_output(Path(out), force=force, folder=spec.output == "folder", fmt=spec.name)
    refuse_batch_run(db, run_id)
    data = load_run_export(db, run_id)
    if data.partial and not partial:
        raise InputError(incomplete_message(data.run))
    if data.assignments.empty and data.proposals.empty:
        # an export of nothing, exit 0, read as a published dataset of 0 specimens
        raise InputError(f"run {run_id} holds no specimens (status {data.run.get('status')}"
                         + (f": {data.run['message']}" if data.run.get("message") else "") + "); nothing to export")
    return write_export(data, spec, Path(out), force=force, options=options)


def refuse_batch_run(db: Path, run_id: int) -> None:
    """Refuse the run id of a ``biodiscover run`` batch, or of one of its collections' records, naming the triage
    runs to export instead. Why: ``export --run 16`` on a batch said "did not complete (status failed: 6 of 6
    specimens)" (collections, counted as specimens) and, with ``--partial``, wrote 0 specimens with exit 0."""
    from biodiscover.storage.db.database import Database
    from biodiscover.workflows.batch import BATCH_RUN_KIND, ITEM_RUN_KIND

    database = Database.open(Path(db), readonly=True)
    try:
        run = database.run_progress(int(run_id))
        if run.kind == ITEM_RUN_KIND:
            triage = run.result.get("triage_run_id")
            where = Path(str(run.parameters.get("path") or "a collection")).name
            raise InputError(f"run {run_id} is the batch record of {where}, not a triage run: "
                             + (f"export its triage run, --run {triage}" if triage is not None
                                else f"it made no triage run (status {run.status})"))
        if run.kind != BATCH_RUN_KIND:
            return
        stored = run.result.get("triage_runs")
        every = isinstance(stored, dict)
        if isinstance(stored, dict):
            runs = sorted({int(r) for r in stored.values() if isinstance(r, int)})
        else:  # a batch written before it stored them: the triage runs of the collections it triaged itself
            runs = sorted({int(i.result["triage_run_id"]) for i in database.find_runs(
                ITEM_RUN_KIND, {"batch_run_id": int(run_id)}, status="completed")
                if isinstance(i.result.get("triage_run_id"), int)})
    finally:
        database.close()
    listed = ", ".join(str(r) for r in runs[:-1]) + f" and {runs[-1]}" if len(runs) > 1 else \
        "".join(str(r) for r in runs)
    what = "its collections' triage runs are" if every else \
        "the collections it triaged itself are in triage run" + ("s" if len(runs) > 1 else "")
    raise InputError(f"run {run_id} is a batch (biodiscover run), not a triage run: "
                     + (f"{what} {listed}; export each with --run" if runs
                        else "it triaged no collection; nothing to export"))


def load_run_export(db: Path, run_id: int) -> RunExport:
    """Read one run's specimens, assignments, candidates, members and reviews from the database, and what
    reviewers decided in earlier runs about its specimens.

    Goes through the storage API (``Database.open(readonly=True)`` refuses a
    corrupt file or a newer schema without writing a byte; ``run_tables`` reads
    one consistent snapshot, so a batch job writing at the same time neither
    blocks nor is blocked). Candidates are the run's *live* proposals;
    merged / superseded / withdrawn versions are history.
    """
    from biodiscover.storage.db.database import Database

    database = Database.open(Path(db), readonly=True)
    try:
        tables = database.run_tables(int(run_id))
        progress = database.run_progress(int(run_id))
        met_here = database.assigned_countries()
        earlier = database.earlier_decisions(int(run_id))
        concepts = database.provisional_concepts()
        set_aside = database.run_set_aside(int(run_id))
        own = [int(i) for i in tables["proposals"]["proposal_id"]] if not tables["proposals"].empty else []
        elsewhere, twins = database.closest_elsewhere(own), database.twins(own)
        # Photographs of candidate members (the report shows them); the specimen table has no image column.
        members = tables["members"]
        photos = {s.processid: str(s.image_path) for s in database.specimens(sorted(set(members["processid"])))
                  if s.image_path} if not members.empty else {}
    finally:
        database.close()
    run = dict(tables["run"])
    run.update(done=progress.done, total=progress.total, message=progress.message, set_aside=set_aside)
    specimens = tables["specimens"]
    if photos and "processid" in specimens:
        specimens = specimens.assign(image_path=specimens["processid"].map(photos))
    return RunExport(run=run, specimens=specimens, assignments=tables["assignments"],
                     proposals=tables["proposals"], members=tables["members"],
                     reviews=tables.get("reviews", pd.DataFrame()), met_here=met_here,
                     earlier=earlier["decisions"], earlier_reviews=earlier["reviews"], retired=earlier["retired"],
                     merged=earlier["merged"], concepts=concepts, elsewhere=elsewhere, twins=twins)
