"""Verbs: ``synth`` (write a synthetic BIOSCAN-5M-like dataset) and ``split``
(partition a user's labelled records by the BIOSCAN-5M rules).

Thin wrappers: the work is in ``storage.synth.generate`` and
``storage.splits.split_collection``; this module only parses options, draws the
progress bar and prints the summary.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from biodiscover.storage.errors import InputError
from biodiscover.storage.records import DEFAULT_IMAGE_PACKAGE, SPLITS
from biodiscover.storage.splits import split_collection
from biodiscover.storage.synth import CONFIG_NAME, SynthConfig, generate


def _summary_table(title: str, records: dict[str, int], species: dict[str, int] | None = None) -> Table:
    table = Table(title=title)
    table.add_column("split")
    table.add_column("records", justify="right")
    if species is not None:
        table.add_column("species", justify="right")
    for name in SPLITS:
        if name in records:
            row = [name, f"{records[name]:,}"]
            if species is not None:
                row.append(f"{species.get(name, 0):,}" if name != "pretrain" else "—")
            table.add_row(*row)
    return table


def synth(
    out: Path = typer.Option(..., "--out", help="Dataset root to create (metadata/ and images/cropped_256/)."),
    species: int = typer.Option(60, "--species", min=1, help="Number of species in the synthetic taxonomy."),
    specimens: int = typer.Option(1200, "--specimens", min=1, help="Number of specimens (rows)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same dataset."),
    images: bool = typer.Option(True, "--images/--no-images", help="Draw images (off: metadata and truth only)."),
    image_size: int = typer.Option(256, "--image-size", min=32, help="Shorter image side in pixels."),
    named_fraction: float = typer.Option(0.6, "--named-fraction", min=0.0, max=1.0,
                                         help="Fraction of species with a scientific name (rest: BOLD placeholders)."),
    workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", min=1, help="Processes drawing images."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out directory."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Generate a synthetic BIOSCAN-5M-like dataset with known true species (metadata/truth.csv)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InputError(f"{out}: directory is not empty; use --force to write into it")
        previous = out / "metadata" / CONFIG_NAME
        if previous.is_file() and (out / "images" / DEFAULT_IMAGE_PACKAGE).is_dir():
            # A previous synthetic dataset: its images would mix with the new ones.
            shutil.rmtree(out / "images" / DEFAULT_IMAGE_PACKAGE)
    try:
        config = SynthConfig(n_species=species, n_specimens=specimens, seed=seed, images=images,
                             image_size=image_size, named_fraction=named_fraction)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=as_json) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: float, total: float | None = None, message: str = "") -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = generate(config, out, progress=progress, workers=workers)
    if as_json:
        typer.echo(json.dumps({
            "root": str(result.root), "metadata": str(result.metadata_path), "truth": str(result.truth_path),
            "specimens": result.n_specimens, "species": result.n_species, "images": result.n_images,
            "splits": result.split_counts, "seconds": round(result.seconds, 2),
        }, indent=2))
        return
    out_console = Console()
    out_console.print(_summary_table(f"synthetic dataset {result.root}", result.split_counts))
    out_console.print(
        f"{result.n_specimens:,} specimens of {result.n_species:,} species, {result.n_images:,} images, "
        f"in {result.seconds:.1f} s\nmetadata: {result.metadata_path}\ntruth:    {result.truth_path}"
    )


def split(
    input: Path = typer.Argument(..., help="Labelled records: CSV/TSV (BIOSCAN columns, any subset) or FASTA."),
    out: Path = typer.Option(..., "--out", help="Output CSV: the same valid rows with split and chunk filled."),
    seed: int = typer.Option(1, "--seed", help="Seed of the partition (BIOSCAN-5M used 1)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out file."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Partition labelled records into BIOSCAN-5M splits (seen / unseen / heldout / pretrain)."""
    from biodiscover.storage.validation import check_output_path, is_quarantine_report
    from biodiscover.workflows.export.output import remember_written, sha256_file, written_by_us

    if not input.exists():
        raise InputError(f"{input}: no such file")
    if out.is_dir():
        raise InputError(f"{out}: is a folder; --out takes the CSV file to write, e.g. {out / 'splits.csv'}")
    # e31 review F26: --out the input (even with --force) replaced the user's records with the valid ones alone,
    # and a second split called its own earlier table "not written by biodiscover": it is recorded as an export's is
    # split makes the table's folder, as it always has (test_splits); triage, validate and export refuse a missing one
    check_output_path(out, what="split table", force=force, ours=written_by_us, inputs=(input,), new_folder=True)
    qpath = out.with_name(out.name.removesuffix(".csv") + ".quarantine.csv")
    check_output_path(qpath, what="quarantine report", force=force, ours=is_quarantine_report, inputs=(input,),
                      new_folder=True)
    summary, read = split_collection(input, out, seed=seed)
    remember_written(out.resolve(), sha256_file(out))
    quarantine_path = read.write_quarantine(qpath, force=force) if read.quarantine else None
    if as_json:
        typer.echo(json.dumps({"output": str(out), "records": summary.records, "species": summary.species,
                               "quarantined": len(read.quarantine),
                               "quarantine": str(quarantine_path) if quarantine_path else None}, indent=2))
        return
    console = Console()
    console.print(_summary_table(f"splits of {input}", summary.records, summary.species))
    console.print(f"wrote {out}")
    if quarantine_path:
        console.print(f"{len(read.quarantine):,} invalid rows set aside in {quarantine_path}")


def register(app: typer.Typer) -> None:
    """Attach this module's verbs to the root app."""
    app.command("synth")(synth)
    app.command("split")(split)
