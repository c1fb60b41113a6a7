"""Data verbs: ``validate`` (``synth`` and ``split`` live in ``cli_synth``).

``biodiscover validate INPUT`` reads a collection or a BIOSCAN-5M dataset the way
every other verb will, and reports what it would set aside: a table of problem
kinds, the first few records by file and line, and a quarantine CSV with every
bad row and its reason (and every photo set aside from a record kept without it).
Exit code 0 = every row valid, 1 = some rows quarantined or photos set aside,
2 = the input cannot be used at all (one ``error:`` line, no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from biodiscover.storage.collections import check_input, read_collection
from biodiscover.storage.errors import InputError
from biodiscover.storage.records import plural
from biodiscover.storage.validation import (
    KIND_LABELS,
    PROBLEM_KINDS,
    QuarantinedRecord,
    check_output_path,
    is_quarantine_report,
    quarantine_path_for,
    write_quarantine,
)

#: How many quarantined records the human-readable report lists.
SHOWN_RECORDS = 10


def shown_records(records: list[QuarantinedRecord]) -> list[str]:
    """The quarantined records a person is shown on screen, one line each (the first
    :data:`SHOWN_RECORDS`): ``validate`` lists them under its counts, ``triage`` as ``error:`` lines."""
    return [rec.message for rec in records[:SHOWN_RECORDS]]


def report_records(path: Path) -> list[QuarantinedRecord]:
    """The first :data:`SHOWN_RECORDS` records of a quarantine report biodiscover wrote (its cells are already
    safe for a terminal), for a command that only has the report, not the records."""
    import csv
    from itertools import islice

    with Path(path).open(encoding="utf-8", newline="") as fh:
        return [QuarantinedRecord(file=r["file"], line=int(r["line"]) if r["line"].isdigit() else None,
                                  processid=r["processid"] or None, kind=r["kind"], reason=r["reason"])
                for r in islice(csv.DictReader(fh), SHOWN_RECORDS)]


def validate(
    input: Path = typer.Argument(...,
                                 help="Collection CSV/TSV/FASTA (plain or .gz), a BIOSCAN-5M dataset root, or an image "
                                      "folder."),
    images: Optional[Path] = typer.Option(None, "--images",
                                          help="Folder of <processid>.jpg images to attach and check."),
    quarantine: Optional[Path] = typer.Option(
        None, "--quarantine", help="Where to write the quarantine CSV (default: <input>.quarantine.csv beside the "
                                   "input when rows are set aside; <input file name>.quarantine.csv when that "
                                   "holds the report of another input of the same name, e.g. plate.csv and "
                                   "plate.fasta). Its folder must exist; never the input."
    ),
    force: bool = typer.Option(False, "--force",
                               help="Replace an existing --quarantine file that biodiscover did not write."),
    require_images: bool = typer.Option(False, "--require-images", help="Quarantine records without an image."),
    check_images: bool = typer.Option(True, "--check-images/--no-check-images", help="Open every image with PIL."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary instead of the table."),
) -> None:
    """Check a collection; set aside invalid rows with their reasons (exit 0 ok, 1 some quarantined, 2 unusable).

    A barcoded record whose photo is unreadable is valid without the photo; the photo is
    listed in the quarantine report and makes the exit code 1 too.
    """
    check_input(input)
    if images is not None and not images.is_dir():
        raise InputError(f"{images}: image folder does not exist")
    if images is not None:
        check_input(images)
    target = quarantine if quarantine is not None else quarantine_path_for(input)
    check_output_path(target, what="quarantine report", force=force, ours=is_quarantine_report,  # before reading
                      inputs=(input, images))
    result = read_collection(input, images=images, require_images=require_images, check_images=check_images)
    summary = result.summary
    qpath: Path | None = None
    if result.quarantine or quarantine is not None:
        qpath = write_quarantine(result.quarantine, target, force=force).absolute()

    if as_json:
        payload = {
            "input": str(input),
            "format": result.format,
            **summary.as_dict(),
            "quarantine_file": str(qpath) if qpath else None,
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        photos = f", {plural(summary.photos_set_aside, 'photo')} set aside" if summary.photos_set_aside else ""
        typer.echo(f"{input} ({result.format}): {summary.rows} records, {summary.ok} valid, {summary.quarantined} "
                   f"quarantined{photos}")
        if summary.problems:
            width = max(len(KIND_LABELS.get(k, k)) for k in summary.problems)
            typer.echo(f"  {'problem'.ljust(width)}  count")
            for kind in PROBLEM_KINDS:
                if summary.problems.get(kind):
                    typer.echo(f"  {KIND_LABELS.get(kind, kind).ljust(width)}  {summary.problems[kind]}")
            for line in shown_records(result.quarantine):
                typer.echo(f"  {line}")
            if len(result.quarantine) > SHOWN_RECORDS:
                typer.echo(f"  … {len(result.quarantine) - SHOWN_RECORDS} more")
        if qpath is not None:
            typer.echo(f"quarantine written to {qpath}")
    if result.quarantine:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Attach the data verbs to the root app."""
    app.command("validate")(validate)
