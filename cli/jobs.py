"""Verbs: run (batch discovery), export; the lead adds demo here (marked below).

Each verb is a thin call into one pipeline function (``workflows.batch.run_batch``,
``workflows.export.export_run``); this module only parses options, draws
progress and prints summaries.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, cast

import typer

from biodiscover.storage.errors import BiodiscoverError, Interrupted, OutputNotWritten, PartlyDone, StoppedAfterWork
from biodiscover.storage.records import LEVEL_MIN, listed, plural
from biodiscover.workflows.export import FORMATS

if TYPE_CHECKING:
    from rich.progress import TaskID
    from rich.table import Table

    from biodiscover.workflows.batch import BatchEvent
    from biodiscover.workflows.demo import DemoSummary


def export_command() -> Callable[..., None]:  # the typer callback of ``export``
    """The ``export`` verb, built now so its help lists the formats registered now (see
    ``workflows.export.formats``: a new format shows up here with no edit to this module)."""

    def _export(
        db: Path = typer.Option(..., "--db", help="SQLite database written by triage / run."),
        run: list[int] = typer.Option(..., "--run", help="Run id to export (see `biodiscover run` / `triage` output). "
                                      "Repeat it (--run 5 --run 6 --run 7) to export several runs as one: every "
                                      "specimen once, as the latest of them named it, every candidate once, each "
                                      "specimen's run and collection named (csv: run_id, collection; dwca: "
                                      "datasetID, datasetName). A batch's id (`biodiscover run`) exports all its "
                                      "collections' triage runs; the id of a batch's record of one collection is "
                                      "refused, naming its triage run."),
        fmt: list[str] = typer.Option(..., "--format", "-f", help=f"One of: {', '.join(FORMATS)} (see below). "
                                      "Repeat it, each with its own --out in the same order (-f csv -o hand_csv "
                                      "-f dwca -o hand.zip), to write several formats from one read of the "
                                      "database; every output is checked before anything is written."),
        out: list[Path] = typer.Option(..., "--out", "-o", help=FORMATS.out_help() + " One per --format, in the "
                                       "order the formats are given."),
        force: bool = typer.Option(False, "--force", help="Replace a previous export (only files biodiscover wrote "
                                   "and nobody changed since; anything else is refused and named)."),
        partial: bool = typer.Option(False, "--partial", help="Export a run that did not complete (killed, failed, "
                                     "still running); the output says it is partial."),
        metadata: Optional[Path] = typer.Option(None, "--metadata", help="TOML or JSON file with title, creator(s), "
                                                "contact and licence for the dataset (eml.xml, report, JSON); a "
                                                "creator or contact: name (or given + surname, where splitting the "
                                                "name at its last space is wrong), organization, position (a "
                                                "role such as a collections desk), email, orcid."),
        creator: Optional[list[str]] = typer.Option(None, "--creator", help='Dataset creator "Name <e-mail>" '
                                                    "(repeatable; overrides --metadata)."),
        licence: Optional[str] = typer.Option(None, "--licence", "--license", help="CC0-1.0, CC-BY-4.0 or "
                                              "CC-BY-NC-4.0 (the licences GBIF accepts)."),
        title: Optional[str] = typer.Option(None, "--title", help="Dataset title (default: the run's)."),
        as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary: one JSON object "
                                     "per format written, one per line (JSON lines)."),
    ) -> None:
        """Export one run, or several as one (a week's batch as one archive): one of the formats listed under
        --format, or several (-f and -o repeated in pairs)."""
        from biodiscover.storage.errors import InputError
        from biodiscover.workflows.export import ExportOptions, build_metadata, export_formats
        from biodiscover.workflows.export.output import output_state

        if len(fmt) != len(out):
            raise InputError(f"{plural(len(fmt), 'format')} and {plural(len(out), 'output')} given: give each "
                             "--format its own --out, in the same order (-f csv -o hand_csv -f dwca -o hand.zip)")
        before = {o: output_state(o) for o in out}
        done: list[Any] = []

        def written(result: Any) -> None:  # each output's line as it is whole: five formats take a while
            done.append(result)
            _say_exported(result, run, meta, as_json)

        try:
            meta = build_metadata(metadata, creators=creator, licence=licence, title=title)
            export_formats(db, run, list(zip(fmt, out)), force=force, partial=partial, options=ExportOptions(meta),
                           written=written)
        except KeyboardInterrupt:  # what it left at --out, and whether the re-run needs --force
            raise _interrupted(list(zip(fmt, out)), before, done) from None
        except BiodiscoverError as exc:  # an output that failed after others were written whole: which stay
            if not done or len(done) == len(out) or isinstance(exc, Interrupted):
                raise
            head = f"cannot write {exc.out}: {exc.reason}" if isinstance(exc, OutputNotWritten) else str(exc)
            raise PartlyDone(f"{head}; {_left_behind(list(zip(fmt, out)), before, done)}") from None

    return _export


def _interrupted(outputs: list[tuple[str, Path]], before: dict[Path, Any], done: list[Any]) -> Exception:
    """Ctrl-C during an export: what it left at the output being written (``interrupted_export``) and, of several
    formats, which were written whole and what to re-run for the others (the same command would refuse the whole
    ones without --force)."""
    from biodiscover.workflows.export.output import interrupted_export

    left = outputs[len(done):]
    if not done:  # the first output was being written: as one format's export says it
        return interrupted_export(left[0][1], before[left[0][1]])
    if not left:  # a Ctrl-C in the last one's summary line: every output is whole
        return StoppedAfterWork(f"stopped (Ctrl-C) after the export was written: {listed([str(r.out) for r in done])}; "
                                "nothing to re-run")
    return Interrupted(f"interrupted: {_left_behind(outputs, before, done)}")


def _left_behind(outputs: list[tuple[str, Path]], before: dict[Path, Any], done: list[Any]) -> str:
    """Of several outputs, some written (``done``): those written whole, what the one being written left there, and
    the pairs to re-run. What a Ctrl-C and a failed write between formats both say: a failed one had said "nothing
    of this export was kept" with the earlier ones on disk (e34 attack E4)."""
    from biodiscover.workflows.export.output import interrupted_export

    left = outputs[len(done):]
    now = left[0][1]
    part = (f"nothing of {now} was written" if str(interrupted_export(now, before[now])).startswith(
        "interrupted: nothing was written") else f"{now} may hold part of its export (--force writes it whole)")
    rest = " ".join(f"-f {f} -o {o}" for f, o in left)
    whole = listed([str(r.out) for r in done])
    return f"{whole} written whole; {part}; for the rest re-run the command with only {rest}"


def _say_exported(result: Any, run: list[int], meta: Any, as_json: bool) -> None:
    """The export's summary line (or JSON), the notes of candidates later runs re-clustered and of runs of different
    models, the eml.xml warning."""
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        which = f"runs {listed(result.runs)}" if len(result.runs) > 1 else f"run {run[0]}"
        typer.echo(f"exported {which} as {result.format}{' (partial)' if result.partial else ''}: "
                   f"{plural(result.specimens, 'specimen')}, {result.counts_text()} -> "
                   f"{result.out} ({plural(len(result.files), 'file')})")
        for note in (result.superseded_note(listed(result.runs) if len(result.runs) > 1 else run[0]),
                     result.models_note()):
            if note:
                typer.echo(note, err=True)
    if FORMATS.get(result.format).publishes_metadata and not meta.complete:
        typer.echo(f"warning: eml.xml has no {' or '.join(meta.missing())}; GBIF needs both: pass --metadata FILE "
                   "or --creator / --licence before publishing", err=True)


def _run(
    collections: str = typer.Option(..., "--collections", "-c",
                                    help="A folder of collection files (csv, csv.gz, tsv, fasta) or a glob. Links "
                                         "are followed, each file once (a link beside its target is one "
                                         "collection); a file outside the folder is named in a warning: line. A "
                                         "collection's photographs (<processid>.jpg) are read from a folder "
                                         "<name>_images beside it: plate-03_images for plate-03.csv."),
    model: Path = typer.Option(..., "--model", "-m", help="Model bundle directory."),
    db: Path = typer.Option(..., "--db", help="SQLite database (created if missing)."),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address (default: local)."),
    shards: int = typer.Option(0, "--shards", min=0,
                               help="Ray: split the reference index over N shard actors (0 = one per Ray CPU, "
                                    "1 = every worker holds the whole index)."),
    log_file: Optional[Path] = typer.Option(None, "--log", help="Log file (default: <db>.run-<time>.log beside "
                                            "the database; the newest 10 such logs are kept, older ones deleted)."),
    level: Optional[float] = typer.Option(None, "--level", min=LEVEL_MIN, max=1.0,
                                          help="P(right) a rank needs to be named (default: the bundle's, see "
                                               "`biodiscover info`), recorded with each collection's triage run; a "
                                               "collection done at another level is triaged again."),
    force: bool = typer.Option(False, "--force", help="Triage every collection again, even one done before with "
                                                      "the same bytes, model and level (by `run` or `triage`); "
                                                      "re-clusters its pending candidates under new numbers."),
    absent_share: str = typer.Option("plate", "--absent-share",
                                     help="plate: each collection's share of taxa absent from the reference is "
                                          "estimated from it alone; season: pulled toward the share the "
                                          "database's other plates of this model read (see `triage --help`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Batch discovery over many collections; resumable: re-run the same command
    after a stop.

    One row per collection: its triage run, specimens, rows set aside (quar.),
    named to species (prov.: of them to a provisional species reviewers
    accepted), named to genus, novel, candidate species. A collection done
    before (same bytes, model and level; by `run` or by `triage`) is skipped
    and shows the figures of its run, reviewed since or not; --force triages it
    again. A collection triaged again re-clusters the earlier run's pending
    candidates under new numbers: a line under the table names them (and one an
    earlier run of the plate with another model). Under the table: one
    error: line per failed collection; for a collection with rows set aside,
    the warning: line triage prints for the first (file, line, processid,
    reason), then how many more and the quarantine report; then what triage
    advises for each collection (how many a lower --level names, countries the
    reference holds no key from, reviewed keys added), and the batch's own run
    id, which `export --run` takes for all its collections.

    Exit 0 when every collection is done, exit 1 when one failed or had rows set
    aside by this run (see the table and the log; rows a collection skipped as
    done had set aside by its earlier run are still listed, and exit 0 says so),
    exit 2 when nothing could start (no collection, no model, an unusable
    database).
    """
    from biodiscover.workflows.batch import BatchConfig, run_batch
    from biodiscover.workflows.executors import ExecutorConfig

    # typer hands the option over as str; an unknown kind is refused (naming the known ones) by make_executor
    kind = cast("Literal['local', 'ray']", executor)
    config = BatchConfig(collections=collections, model=model, db=db, log_file=log_file, level=level, force=force,
                         absent_share=absent_share,
                         executor=ExecutorConfig(kind=kind, address=ray_address, shards=shards))
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
    """Per-collection and per-stage progress bars (CLI only; the library just emits events).

    While the bars are drawn, log records on the console go through rich's console (above the bars): a raw
    ``ERROR …`` line had been glued onto a bar and cut at the terminal's width.

    Not in a terminal (``run > run.out 2> run.err``, cron, nohup: its documented nightly use) rich draws the bars
    only when stopped, so a 20,000-specimen run wrote nothing anywhere for 13.5 minutes (review e32 R15): there,
    one plain line on stderr per new step, as ``triage`` writes them (``storage.progress.describe``), flushed as
    it happens."""

    def __init__(self) -> None:
        import logging

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           transient=False)
        self._plain = not self._p.console.is_terminal
        self._said = ""
        self._overall: TaskID | None = None
        self._stage: TaskID | None = None
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []
        if self._plain:
            return
        self._p.start()
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and handler.stream in (sys.__stderr__, sys.__stdout__):
                self._streams.append((handler, handler.setStream(sys.stderr)))  # rich's proxy while it draws

    def _line(self, event: BatchEvent) -> str:
        """The plain line of an event (empty: nothing to say)."""
        from biodiscover.storage.progress import describe

        if event.kind == "batch_start":
            return describe("collections", 0, event.total)
        if event.kind == "batch_resume":
            return event.message
        if event.kind == "stage":
            return describe(f"{event.collection}: {event.stage}", event.done, event.total or None)
        if event.kind in ("collection_done", "collection_skipped", "collection_failed"):
            said = "(the error is under the table)" if event.kind == "collection_failed" else event.message
            return f"{event.kind.split('_')[1]:>8}  {event.collection}  {said}"
        return ""

    def __call__(self, event: BatchEvent) -> None:
        if self._plain:
            line = self._line(event)
            if line and line != self._said:  # a repeated count (the heartbeat's poll) is said once
                self._said = line
                print(line, file=sys.stderr, flush=True)
            return
        if event.kind == "batch_start":
            self._overall = self._p.add_task("collections", total=event.total)
        elif event.kind == "batch_resume":
            self._p.console.print(event.message, markup=False, highlight=False, soft_wrap=True)
        elif event.kind == "stage":
            label = f"  {event.collection}: {event.stage}"
            if self._stage is None:
                self._stage = self._p.add_task(label, total=event.total or None)
            self._p.update(self._stage, description=label, completed=event.done, total=event.total or None)
        elif event.kind in ("collection_done", "collection_skipped", "collection_failed"):
            if self._overall is not None:
                self._p.advance(self._overall)
            if event.kind == "collection_failed" and self._stage is not None:  # not left reading "read 0/1"
                self._p.update(self._stage, description=f"  {event.collection}: failed")
            # a failure's error is printed once, under the table
            self._p.console.print(self._line(event), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if not self._plain:
            self._p.stop()
        for handler, stream in self._streams:
            handler.setStream(stream)


def register(app: typer.Typer) -> None:
    """Attach this module's verbs to the root app."""
    app.command("run")(_run)
    app.command("export", epilog=FORMATS.epilog())(export_command())
    app.command("demo")(_demo)


def _demo(
    workdir: Path = typer.Option(Path("demo-workdir"), "--workdir", help="Where the demo writes data, model and DB."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of reusing finished stages."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of tables."),
    species: int = typer.Option(150, "--species", min=10, help="Species in the synthetic dataset."),
    specimens: int = typer.Option(3000, "--specimens", min=100, help="Specimens in the synthetic dataset."),
    preset: str = typer.Option("small", "--preset",
                               help="Encoder preset: tiny (seconds), small (minutes), base (GPU)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic dataset and of training."),
) -> None:
    """Synthetic collection -> train (small) -> reference -> triage -> candidate species in SQLite -> score.

    Finished stages are reused, so an interrupted demo resumes where it stopped
    (use --fresh after changing the size, preset or seed).
    """
    from biodiscover.workflows.demo import STAGES, DemoConfig, run_demo

    config = DemoConfig(n_species=species, n_specimens=specimens, preset=preset, seed=seed)
    progress = _StageProgress(STAGES)
    try:
        summary = run_demo(workdir, config, progress=progress, fresh=fresh)
    finally:
        progress.close()
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2, default=str))
        return
    from rich.console import Console

    console = Console()
    for table in demo_tables(summary):
        console.print(table)
    # plain echo: commands must not be wrapped, people copy them
    for note in summary.notes:
        typer.echo(f"database: {note}")
    typer.echo(f"summary:  {Path(summary.workdir) / 'demo-summary.json'}")
    typer.echo(f"review:   biodiscover review --db {summary.db}")
    typer.echo(f"export:   biodiscover export --db {summary.db} --run {summary.run_id} --format html "
               f"--out {Path(summary.workdir) / 'report.html'}")


class _StageProgress:
    """One bar per demo stage, drawn from the library's ``progress(stage, done, total, message)`` calls."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        # stderr: stdout carries the result (tables or --json)
        console = Console(stderr=True)
        self._p = Progress(TextColumn("{task.fields[stage]:>10}"), BarColumn(), TaskProgressColumn(),
                           TimeElapsedColumn(), TextColumn("{task.description}"), transient=False,
                           console=console)
        self._stages = stages
        self._tasks: dict[str, TaskID] = {}
        # Redirected (`demo > log 2>&1`), rich draws bars only when stopped, so the log stayed empty until
        # the end: there, one plain line per stage step instead, written as it happens.
        self._plain = not console.is_terminal
        self._said: dict[str, str] = {}
        if not self._plain:
            self._p.start()

    def __call__(self, stage: str, done: float, total: float | None = None, message: str = "") -> None:
        if self._plain:
            from biodiscover.storage.progress import describe

            if self._said.get(stage) != message:
                self._said[stage] = message
                print(describe(stage, done, total, message), file=sys.stderr, flush=True)
            return
        frac = done / total if total else 0.0
        if stage not in self._tasks:
            self._tasks[stage] = self._p.add_task(message, total=1.0, stage=stage)
        self._p.update(self._tasks[stage], completed=max(0.0, min(1.0, frac)), description=message)

    def close(self) -> None:
        if not self._plain:
            self._p.stop()


def demo_tables(summary: DemoSummary) -> list[Table]:
    """The demo's score against the synthetic truth as tables a person reads at a glance."""
    from rich.table import Table

    def pct(x: float | None) -> str:
        return "—" if x is None or x != x else f"{100 * float(x):.1f}%"  # x != x: NaN

    scores = summary.scores
    head = Table(title=f"demo run {summary.run_id}: {scores.get('specimens', 0)} specimens, "
                       f"{scores.get('truly_novel', 0)} of an unknown species, "
                       f"{scores.get('image_only', 0)} without a barcode", title_justify="left")
    head.add_column("what")
    head.add_column("value", justify="right")
    nov = scores.get("novelty", {})
    if nov:
        head.add_row("novelty AUROC (unknown species vs known)", f"{nov['auroc']:.3f}")
        head.add_row("known specimens flagged novel at 95% recall", pct(nov.get("fpr95")))
    cand = scores.get("candidates", {})
    if cand:
        head.add_row("candidate species proposed", str(cand.get("proposals", 0)))
        head.add_row("candidate species vs true species: AMI", f"{cand['ami']:.3f}")
        head.add_row("novel specimens in a proposal", pct(cand.get("novel_in_a_proposal")))
        head.add_row("true species split / merged", f"{pct(cand.get('split_rate'))} / {pct(cand.get('merge_rate'))}")
    for stage, sec in summary.seconds.items():
        head.add_row(f"time: {stage}", f"{sec:.1f} s")
    tables = [head]
    for key, title in (("ranks", "naming at the deepest confident rank, all specimens (TAXXI; share of specimens)"),
                       ("ranks_image_only", f"of which {scores.get('image_only', 0)} without a barcode: a "
                                            "photograph alone names a rank where its calibrated P(right) passes "
                                            "the level")):
        if not scores.get(key):
            continue
        ranks = Table(title=title, title_justify="left")
        for col in ("rank", "named right", "named wrong", "not named (known taxon)", "named, taxon unknown"):
            ranks.add_column(col, justify="right" if col != "rank" else "left")
        for rank, e in scores[key].items():
            ranks.add_row(rank, pct(e.get("tp_rate")), pct(e.get("mc_rate")), pct(e.get("uc_rate")),
                          pct(e.get("oc_rate")))
        tables.append(ranks)
    return tables
