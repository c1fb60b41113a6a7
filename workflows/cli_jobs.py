"""Verbs: run (batch discovery), export; the lead adds demo here (marked below).

Each verb is a thin call into one pipeline function (``workflows.batch.run_batch``,
``workflows.export.export_run``); this module only parses options, draws
progress and prints summaries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from workflows.export import FORMATS


def _export(
    db: Path = typer.Option(..., "--db", help="SQLite database written by triage / run."),
    run: int = typer.Option(..., "--run", help="Run id to export (see `biodiscover run` / `triage` output)."),
    fmt: str = typer.Option(..., "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    out: Path = typer.Option(..., "--out", "-o",
                             help="Output: a folder for csv/fasta, a file for dwca (.zip), html, json."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Export one run: CSV, Darwin Core Archive, FASTA per candidate, HTML report, or JSON."""
    from workflows.export import export_run

    result = export_run(db, run, fmt, out, force=force)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        typer.echo(f"exported run {run} as {fmt}: {result.specimens} specimens, {result.proposals} candidate "
                   f"species -> {result.out} ({len(result.files)} file{'s' if len(result.files) != 1 else ''})")


def _run(
    collections: str = typer.Option(..., "--collections", "-c",
                                    help="A folder of collection files (csv, csv.gz, tsv, fasta) or a glob."),
    model: Path = typer.Option(..., "--model", "-m", help="Model bundle directory."),
    db: Path = typer.Option(..., "--db", help="SQLite database (created if missing)."),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address (default: local)."),
    log_file: Optional[Path] = typer.Option(None, "--log", help="Log file (default: <db>.run-<time>.log)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Batch discovery over many collections; resumable: re-run the same command after a stop."""
    from workflows.batch import BatchConfig, run_batch
    from workflows.executors import ExecutorConfig

    config = BatchConfig(collections=collections, model=model, db=db, log_file=log_file,
                         executor=ExecutorConfig(kind=executor, address=ray_address))  # type: ignore[arg-type]
    progress = None if as_json else _RichProgress()
    try:
        summary = run_batch(config, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    if as_json:
        typer.echo(json.dumps(summary.to_json()))
    else:
        typer.echo(summary.table())
        typer.echo(f"log: {summary.log_file}")
    raise typer.Exit(summary.exit_code)


class _RichProgress:
    """Per-collection and per-stage progress bars (CLI only; the library just emits events)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           transient=False)
        self._p.start()
        self._overall: int | None = None
        self._stage: int | None = None

    def __call__(self, event) -> None:  # workflows.batch.BatchEvent
        if event.kind == "batch_start":
            self._overall = self._p.add_task("collections", total=event.total)
        elif event.kind == "stage":
            label = f"  {event.collection}: {event.stage}"
            if self._stage is None:
                self._stage = self._p.add_task(label, total=event.total or None)
            self._p.update(self._stage, description=label, completed=event.done, total=event.total or None)
        elif event.kind in ("collection_done", "collection_skipped", "collection_failed"):
            if self._overall is not None:
                self._p.advance(self._overall)
            self._p.console.print(f"{event.kind.split('_')[1]:>8}  {event.collection}  {event.message}")

    def close(self) -> None:
        self._p.stop()


def register(app: typer.Typer) -> None:
    """Attach this module's verbs to the root app."""
    app.command("run")(_run)
    app.command("export")(_export)
    app.command("demo")(_demo)


def _demo(
    workdir: Path = typer.Option(Path("demo-workdir"), "--workdir", help="Where the demo writes data, model and DB."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of reusing finished stages."),
) -> None:
    """Synthetic collection -> train (small) -> reference -> triage -> candidate species in SQLite -> score."""
    from workflows.demo import run_demo

    def say(stage: str, frac: float, msg: str) -> None:
        typer.echo(f"[{stage:>10}] {100 * frac:5.1f}%  {msg}", err=True)

    summary = run_demo(workdir, progress=say, fresh=fresh)
    typer.echo(json.dumps(summary.scores, indent=2, default=str))
    typer.echo(f"\nreview:  biodiscover review --db {summary.db}")
    typer.echo(f"export:  biodiscover export --db {summary.db} --run {summary.run_id} --format html --out report.html")

