"""Verbs: triage, evaluate, build-reference.

Thin typer wrappers: parse options, show progress on stderr, print a summary
(or ``--json``); the work is in ``workflows.triage``, ``workflows.evaluate``
and ``workflows.reference``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from biodiscover.storage.errors import InputError
from biodiscover.storage.progress import Progress, describe, no_progress
from biodiscover.storage.records import LEVEL_MIN, plural

if TYPE_CHECKING:
    from biodiscover.storage.validation import QuarantinedRecord
    from biodiscover.workflows.triage import TriageSummary


def _progress(quiet: bool) -> Progress:
    """Progress lines on stderr: the message when there is one, else ``stage: done/total`` (repeats dropped)."""
    if quiet:
        return no_progress
    last: dict[str, str] = {}

    def report(stage: str, done: float, total: float | None = None, message: str = "") -> None:
        line = message or describe(stage, done, total)
        if last.get("line") != line:
            typer.echo(line, err=True)
            last["line"] = line

    return report


def _say_triaged(summary: TriageSummary, as_json: bool) -> None:
    """triage's summary on stdout (as JSON with --json); the first records set aside on stderr."""
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    named = ", ".join(f"{k} {v}" for k, v in summary.named_to.items())
    run = f"triage run {summary.run_id}" if summary.run_id is not None else "triage (no --db: nothing stored)"
    photos = (f", {plural(summary.photos_set_aside, 'photo')} set aside (specimens kept without)"
              if summary.photos_set_aside else "")
    typer.echo(f"{run}: {summary.triaged} of {summary.specimens} specimens triaged "
               f"({summary.quarantined} quarantined{photos}, {summary.no_usable_barcode} without a usable "
               "barcode)")
    typer.echo(f"deepest confident rank: {named}")
    # a photograph-only name from a bundle fitted before its scores were calibrated is not held to --level
    # (multimodal.photo_only_reason); with the calibration it is, as a barcode's
    typer.echo("evidence: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_modality.items()))
               + (f" ({summary.photos_at_thresholds} named at the image classifier's own thresholds, not the "
                  "level: the bundle predates their calibration; see each reason)"
                  if summary.photos_at_thresholds else ""))
    typer.echo(f"novel: {summary.novel}; candidate species: {summary.proposals}")
    # what to know before reading the names: the list ``run`` prints under its table, so one list decides what a
    # triage says and in which words (a line added for ``run`` had not reached ``triage``: e33)
    for line in summary.advisories():
        typer.echo(line)
    if summary.quarantine_file:
        typer.echo(f"quarantine report: {summary.quarantine_file}")
        from biodiscover.cli.data import report_records, shown_records
        from biodiscover.workflows.triage import set_aside_lines

        # every row of the report: records and photos set aside, and problems of the file itself
        listed = summary.quarantined + summary.photos_set_aside + summary.file_problems
        shown = shown_records(report_records(Path(summary.quarantine_file)))
        for line in set_aside_lines(shown, listed, summary.quarantine_file):
            typer.echo(line, err=True)
    typer.echo("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in summary.seconds.items()))


def register(app: typer.Typer) -> None:
    """Attach this module's verbs to the root app."""

    @app.command("triage")
    def triage_cmd(
        input: Optional[Path] = typer.Option(None, "--input", "-i",
                                             help="Collection: CSV/TSV/FASTA (plain or .gz) or a BIOSCAN-5M dataset "
                                                  "root."),
        model: Path = typer.Option(..., "--model", "-m", help="Model bundle directory (see build-reference / train)."),
        db: Optional[Path] = typer.Option(None, "--db",
                                          help="SQLite database to write the run, assignments and proposals to."),
        images: Optional[Path] = typer.Option(None, "--images", help="Folder of <processid>.jpg images."),
        collection: Optional[str] = typer.Option(None, "--collection", help="Collection name (default: file name)."),
        results: Optional[Path] = typer.Option(None, "--results",
                                               help="Also write per-specimen results: a table for .csv / .tsv, "
                                                    "JSON lines for .jsonl (fields named as the csv export's "
                                                    "assignments.csv names them); its folder must exist, and "
                                                    "it is neither the input, its quarantine report nor the "
                                                    "database."),
        no_cluster: bool = typer.Option(False, "--no-cluster", help="Skip candidate-species clustering."),
        clustering: str = typer.Option("threshold_hdbscan", "--clustering",
                                       help="Candidate-species method: a module of discovery/clustering_methods "
                                            "(built in: threshold_hdbscan, threshold) or package.module:Class; "
                                            "recorded with the run."),
        cluster_threshold: Optional[float] = typer.Option(
            None, "--cluster-threshold", min=0.0, max=1.0,
            help="Barcode p-distance at which candidates split (default: the cut the bundle learned from the "
                 "reference's barcode gap)."),
        no_images: bool = typer.Option(False, "--no-images", help="Ignore photographs (DNA evidence only)."),
        no_provisional: bool = typer.Option(False, "--no-provisional",
                                            help="Do not use the members of candidates reviewers accepted or "
                                                 "assigned in the database as references."),
        force: bool = typer.Option(False, "--force", help="Replace a --results or quarantine file that biodiscover "
                                                          "did not write (never the input)."),
        again: bool = typer.Option(False, "--again", help="Triage a collection the database already holds the same "
                                                          "triage of (same bytes, model and settings, nothing "
                                                          "reviewed since; refused without it): its pending "
                                                          "candidates come back under new numbers."),
        level: Optional[float] = typer.Option(None, "--level", min=LEVEL_MIN, max=1.0,
                                              help="P(right) a rank needs to be named (default: the bundle's, "
                                                   "see `biodiscover info`)."),
        absent_share: str = typer.Option(
            "plate", "--absent-share",
            help="plate: the share of taxa absent from the reference is estimated from this collection alone, "
                 "pulled toward even odds; season: pulled toward the share the database's other plates of this "
                 "model read (weekly plates of one trap, named alike week to week)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    ) -> None:
        """Name each specimen to its deepest confident rank, flag novel species, propose candidate species.

        Photographs (--images, or image paths in the collection) are used when the
        bundle has an image classifier: fused with the barcode, or alone for
        specimens whose barcode is missing or unusable.

        A collection is read at its own share of taxa absent from the reference
        (estimated from its specimens, printed at the end): triage a plate as one
        collection, not a specimen at a time. Weekly plates of one season in one
        database: --absent-share season. The same triage again into one database
        (same bytes, model and settings, nothing reviewed since) is refused: --again.
        A triage that re-clusters an earlier run's pending candidates (after a
        review, --again, an edited file, another model) names them in one line
        (re-clustered 14 pending candidates of run 1 … (#4→#33, …): none
        reviewed), and whose reviews carry over; another line, when an earlier
        run of the plate used another model.
        """
        from biodiscover.discovery.clustering import ClusteringConfig, make_clusterer
        from biodiscover.workflows.triage import run_triage

        try:  # an unknown method is a usage error, found before any work
            method = ClusteringConfig(method=clustering, distance_threshold=cluster_threshold)
            if not no_cluster:
                make_clusterer(method)
        except (ValueError, TypeError) as exc:
            raise InputError(f"--clustering {clustering}: {exc}") from None
        if input is None and images is None:
            raise InputError("give --input COLLECTION (and/or --images DIR)")
        if db is None and results is None:
            raise InputError("give --db DB (and/or --results FILE): triage needs somewhere to write")
        summary = run_triage(input, model, db, images=images, collection=collection, cluster=not no_cluster,
                             results_out=results, progress=_progress(quiet), use_images=not no_images,
                             use_provisional=not no_provisional, force=force, level=level, clustering=method,
                             absent_share=absent_share, again=again)
        try:
            _say_triaged(summary, as_json)
        except KeyboardInterrupt:  # the run is stored: "interrupted … re-run" would triage the collection again
            from biodiscover.workflows.triage import stopped_after_storing

            raise stopped_after_storing(summary.run_id, db, results) from None

    @app.command("evaluate")
    def evaluate_cmd(
        data: Path = typer.Option(..., "--data", "-d",
                                  help="Labelled dataset root (BIOSCAN-5M layout) or metadata file."),
        model: Path = typer.Option(..., "--model", "-m", help="Model bundle directory."),
        out: Path = typer.Option(..., "--out", "-o", help="Report JSON path (a .md table is written beside it)."),
        known_split: str = typer.Option("test", help="Split(s) of known-species queries ('a+b' for several)."),
        novel_split: str = typer.Option("test_unseen", help="Split(s) of novel-species queries ('a+b' for several, "
                                        "e.g. test_unseen+other_heldout to add absent genera)."),
        no_cluster: bool = typer.Option(False, "--no-cluster", help="Skip candidate-species clustering metrics."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    ) -> None:
        """Every metric of DESIGN.md for a bundle: JSON report, a markdown table and an HTML page with the
        reliability plot."""
        from biodiscover.workflows.evaluate import evaluate, write_report

        report = evaluate(data, model, known_split=known_split, novel_split=novel_split, cluster=not no_cluster,
                          progress=_progress(quiet))
        js, md = write_report(report, out)
        typer.echo(md.read_text())
        typer.echo(f"report: {js}, {md} and {js.with_suffix('.html')} (reliability plot)")

    @app.command("build-reference")
    def build_reference_cmd(
        data: Path = typer.Option(..., "--data", "-d",
                                  help="Labelled dataset root (BIOSCAN-5M layout) or metadata file."),
        out: Path = typer.Option(..., "--out", "-o", help="Bundle directory to write."),
        keys: str = typer.Option("train+key_unseen", help="Splits whose specimens are the reference keys."),
        calibration: str = typer.Option("val+val_unseen", help="Extra labelled splits searched as they are: more "
                                        "examples for the naming model (absence is simulated from the keys; '' = none; "
                                        "key splits are never also calibration)."),
        calibration_keys: str = typer.Option("train", help="Keys the image classifier calibrates against "
                                             "('' = same as --keys)."),
        outliers: str = typer.Option("other_heldout", help="Extra labelled splits of absent genera (outlier "
                                     "exposure for the naming model)."),
        level: float = typer.Option(0.98, "--level", min=LEVEL_MIN, max=1.0,
                                    help="P(right) a rank needs to be named; triage can override it. A calibrated "
                                         "model names at most (1-level)/level of absent taxa at even odds, pooled: "
                                         "a clade can exceed it (the printed forecast is per order; `info --level` "
                                         "shows it at other levels)."),
        max_outliers: int = typer.Option(3000, help="At most this many outlier specimens (seeded sample)."),
        seed: int = typer.Option(0, help="Seed of the random choices (the --max-outliers sample), for a "
                                          "reproducible bundle."),
        force: bool = typer.Option(False, "--force", help="Replace an existing bundle (its encoders too)."),
        images: Optional[bool] = typer.Option(None, "--images/--no-images",
                                              help="Fit the image classifier (default: when --out holds trained "
                                                   "encoders and the dataset has images)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    ) -> None:
        """Fit the discovery engine: DNA reference index, naming model learned from the reference, barcode gap.

        Needs no GPU and no training. Run it on the bundle `biodiscover train` wrote
        to also fit the image classifier with its encoders; otherwise it writes a
        DNA-only bundle.
        """
        import dataclasses

        from biodiscover.discovery.engine import EngineConfig
        from biodiscover.discovery.naming import NamingConfig, describe_expected, describe_support, expected_mix_note
        from biodiscover.storage.validation import count_set_aside
        from biodiscover.workflows.reference import build_reference, reference_quarantine_path

        set_aside: list[QuarantinedRecord] = []
        config = dataclasses.replace(EngineConfig(), naming=NamingConfig(level=level))
        model = build_reference(data, out, keys=keys, calibration=calibration,
                                calibration_keys=calibration_keys or None, outliers=outliers,
                                max_outliers=max_outliers, seed=seed, overwrite=force, progress=_progress(quiet),
                                images=images, config=config, quarantine=set_aside)
        naming = model.naming_
        typer.echo(f"bundle {out}: {len(model.ref_ids_)} keys; naming level {level}")
        for line in describe_support(naming.support_, level):
            typer.echo(f"  {line}")
        typer.echo(expected_mix_note(level))
        for line in describe_expected(naming.expected_.get(f"{level}", {}), level):
            typer.echo(f"  {line}")
        if set_aside:
            rows, photos = count_set_aside(set_aside)
            said = [f"{rows} rows set aside (invalid or duplicated)"] if rows else []
            said += [f"{plural(photos, 'photo')} set aside (specimens kept without)"] if photos else []
            typer.echo(f"{', '.join(said)}: {reference_quarantine_path(out)}")
