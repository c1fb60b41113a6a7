"""``biodiscover export``: read one run from the database, refuse what must not be written, write it.

Every format goes the same way: the run's tables are read once (read-only, one
consistent snapshot), cleaned of control characters (:func:`clean_export`), the
format renders its bytes in memory, and :mod:`~biodiscover.workflows.export.output`
writes them without destroying anything biodiscover did not write.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from biodiscover.storage.bundle import model_named
from biodiscover.storage.errors import InputError
from biodiscover.storage.records import listed, plural
from biodiscover.workflows.export.dwca import named_later
from biodiscover.workflows.export.formats import REGISTRY
from biodiscover.workflows.export.metadata import ExportOptions
from biodiscover.workflows.export.output import check_output, write_file, write_folder
from biodiscover.workflows.export.registry import ExportFormat
from biodiscover.workflows.export.safety import clean_export
from biodiscover.workflows.export.tables import (ExportResult, RunExport, live_candidates, proposal_counts,
                                               with_key_sources)

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
                        superseded_by=tuple(later.get("by_runs", ())),
                        runs=_run_ids(data), not_coi=proposal_counts(data.proposals)["not_coi"],
                        models=_run_models(data))


def _run_models(data: RunExport) -> tuple[tuple[int, str], ...]:
    """Each exported run and its model (``model_named``) when the runs used more than one model, else ()."""
    if len({r.get("model_fingerprint") for r in data.runs}) < 2:
        return ()
    return tuple((int(r["id"]), model_named((r.get("parameters") or {}).get("model"), r.get("model_fingerprint")))
                 for r in data.runs)


def _run_ids(data: RunExport) -> tuple[int, ...]:
    """The triage runs an export holds: its ``runs``, else its one run (none for tables built in code)."""
    if data.runs:
        return tuple(int(r["id"]) for r in data.runs)
    return (int(data.run["id"]),) if isinstance(data.run.get("id"), int) else ()


def incomplete_message(run: dict, *, among: int = 1) -> str:
    """The refusal of a run that did not complete; ``among``: how many runs the export joins."""
    done, total = run.get("done"), run.get("total")
    count = f": {done:,} of {total:,} specimens" if isinstance(done, int) and isinstance(total, int) else ""
    where = f" of collection {run['collection']}" if among > 1 and run.get("collection") else ""
    return (f"run {run.get('id')}{where} did not complete (status {run.get('status')}{count}); pass --partial to "
            + ("export what it holds, marked as partial" if among == 1 else
               f"export the {among} runs with what it holds, marked as partial"))


def export_run(db: Path, run_id: int, fmt: str | ExportFormat, out: Path, *, force: bool = False,
               partial: bool = False, options: ExportOptions | None = None) -> ExportResult:
    """``biodiscover export``: read run ``run_id`` from the database at ``db`` and write it (a batch's id: its
    collections' triage runs as one export, :func:`export_runs`)."""
    return export_runs(db, [run_id], fmt, out, force=force, partial=partial, options=options)


def export_runs(db: Path, run_ids: Sequence[int], fmt: str | ExportFormat, out: Path, *, force: bool = False,
                partial: bool = False, options: ExportOptions | None = None) -> ExportResult:
    """``biodiscover export --run A [--run B …]``: read the runs from the database at ``db`` and write them as one
    export (a week's batch as one archive).

    A batch's id (``biodiscover run``) stands for its collections' triage runs (:func:`triage_runs_of`); a batch
    item record's id is refused naming its triage run. Where the ids come to one triage run, that run is exported as
    it always was (the same bytes); several are joined by :func:`combine_exports`. A run that did not complete
    (killed, failed, still running) holds only part of its collection; it is refused unless ``partial``, and then
    every format says it is partial (and which run). An export of nothing is refused even with ``partial``.
    """
    return export_formats(db, run_ids, [(fmt, out)], force=force, partial=partial, options=options)[0]


def export_formats(db: Path, run_ids: Sequence[int], outputs: Sequence[tuple[str | ExportFormat, Path]], *,
                   force: bool = False, partial: bool = False, options: ExportOptions | None = None,
                   written: Callable[[ExportResult], None] | None = None) -> list[ExportResult]:
    """``biodiscover export -f A -o X [-f B -o Y …]``: :func:`export_runs` for each (format, output) pair, from one
    read of the database; ``written`` is told of each output once it is whole.

    Every output is checked (its ending, and that it is new or, with ``force``, a previous export nobody changed)
    before the database is read, so one refusal writes nothing. Why one read: a hand-over of the five formats was
    five commands, each reading and recomputing the same run (8–14 s each for 1,125 specimens, 48–88 s each for
    20,000: e32 review R4, R20)."""
    specs = [(_format(fmt), Path(out)) for fmt, out in outputs]
    _one_place_each(specs)
    for spec, out in specs:
        _check_suffix(spec, out)
        check_output(out, force=force, folder=spec.output == "folder", fmt=spec.name)
    data = read_export(db, run_ids, partial=partial)
    results = []
    for spec, out in specs:
        results.append(write_export(data, spec, out, force=force, options=options))
        if written is not None:
            written(results[-1])
    return results


def _one_place_each(specs: Sequence[tuple[ExportFormat, Path]]) -> None:
    """Refuse two outputs at one place, however spelled (``d``, ``sub/../d``, ``link/d`` with link → .), and an
    output inside another format's folder, in either order.

    Why real paths: ``-o d`` and ``-o sub/../d`` passed an ``absolute()`` comparison, and with --force the fasta
    export deleted the csv files both lines said were written; why not inside: ``-f csv -o e2 -f html -o
    e2/r.html`` was written, and the same command with --force then refused for ever (r.html is no csv file: e34
    attack E2, E3)."""
    from biodiscover.storage.validation import real_place

    real = [(spec, out, real_place(out)) for spec, out in specs]
    for i, (spec, out, place) in enumerate(real):
        for other, given, there in real[:i]:
            if place == there:
                raise InputError(f"{out}{'' if out == given else f' is {given}'}: given as the output of both "
                                 f"{other.name} and {spec.name}; give each format its own --out")
        for other, given, there in real:
            if other.output == "folder" and place != there and place.is_relative_to(there):
                raise InputError(f"{out} lies inside {given}, the {other.name} export's folder; give it another "
                                 "place")


def read_export(db: Path, run_ids: Sequence[int], *, partial: bool = False) -> RunExport:
    """What :func:`export_runs` writes: the runs ``run_ids`` name (:func:`triage_runs_of`), one read as it always
    was, several joined (:func:`combine_exports`); a run that did not complete refused unless ``partial``, and an
    export of nothing refused."""
    runs = triage_runs_of(db, run_ids)
    if len(runs) > 1:
        return _read_several(db, runs, partial=partial)
    run_id = runs[0]
    data = load_run_export(db, run_id)
    if data.partial and not partial:
        raise InputError(incomplete_message(data.run))
    if data.assignments.empty and data.proposals.empty:
        # an export of nothing, exit 0, read as a published dataset of 0 specimens
        raise InputError(f"run {run_id} holds no specimens (status {data.run.get('status')}"
                         + (f": {data.run['message']}" if data.run.get("message") else "") + "); nothing to export")
    return data


def triage_runs_of(db: Path, run_ids: Sequence[int]) -> list[int]:
    """The triage runs ``--run`` names, in id order, each once: a batch's id (``biodiscover run``) stands for its
    collections' triage runs; any other run for itself. An unknown id is one error naming it (``no run 99 in …``).

    A batch item record (one collection's entry in a batch) is refused naming its triage run: its id is bookkeeping
    the user never sees in ``run``'s table, and exporting it as its triage run would hide which id was meant. A
    batch that triaged no collection is refused: an export of nothing. Why a batch's id is its runs: a taxonomist
    publishing a week's batch of five plates wants one archive, and ``export --run 16`` on the batch once said "did
    not complete (status failed: 6 of 6 specimens)" (collections, counted as specimens).

    A batch stopped (Ctrl-C, a kill) and resumed by a later batch (the same ``run`` again) stands for the
    collections of both, as the resuming batch's id does: the screen said "resuming batch run 1", so to the
    taxonomist the resumption is batch 1 going on, and its id was the only one she was shown; ``--run 1`` had
    silently exported the one week of four it finished before the stop. A stopped batch that nothing resumed is
    refused, naming the runs it finished: it holds part of its collections, and the same ``run`` again finishes
    it."""
    from biodiscover.storage.db.database import Database
    from biodiscover.workflows.batch import BATCH_RUN_KIND, ITEM_RUN_KIND

    found: set[int] = set()
    database = Database.open(Path(db), readonly=True)
    try:
        for run_id in run_ids:
            run = database.run_progress(int(run_id))
            if run.kind == ITEM_RUN_KIND:
                triage = run.result.get("triage_run_id")
                where = Path(str(run.parameters.get("path") or "a collection")).name
                raise InputError(f"run {run_id} is the batch record of {where}, not a triage run: "
                                 + (f"export its triage run, --run {triage}" if triage is not None
                                    else f"it made no triage run (status {run.status})"))
            if run.kind != BATCH_RUN_KIND:
                found.add(int(run_id))
                continue
            runs: set[int] = set()
            last = run
            while True:  # the batch, then each batch that went on from it after a stop
                runs |= _batch_triage_runs(database, last)
                after = last.result.get("resumed_by")
                if not isinstance(after, int):
                    break
                last = database.run_progress(after)
            if last.status not in ("completed", "failed"):  # failed: it finished, some collection failed
                how = "was stopped before it finished" if last.status == "interrupted" else \
                    f"has not finished (status {last.status})"
                which = f"batch run {run_id}" + (f" (resumed by batch run {last.id}, which {how})" if last is not run
                                                 else f" {how}")
                raise InputError(f"{which}: run the same `biodiscover run` again to finish it"
                                 + (f", or export the {plural(len(runs), 'triage run')} it finished: "
                                    + " ".join(f"--run {r}" for r in sorted(runs)) if runs else ""))
            if not runs:
                raise InputError(f"run {run_id} is a batch (biodiscover run) that triaged no collection; nothing "
                                 "to export")
            found |= runs
    finally:
        database.close()
    return sorted(found)


def _batch_triage_runs(database: Any, batch: Any) -> set[int]:
    """The triage runs of a batch's collections: those it stored when it finished (the ones it skipped as done
    before included), else, for a batch stopped or written before it stored them, those of the collections it
    triaged itself."""
    from biodiscover.workflows.batch import ITEM_RUN_KIND

    stored = batch.result.get("triage_runs")
    if isinstance(stored, dict):
        return {int(r) for r in stored.values() if isinstance(r, int)}
    return {int(i.result["triage_run_id"]) for i in database.find_runs(
        ITEM_RUN_KIND, {"batch_run_id": int(batch.id)}, status="completed")
        if isinstance(i.result.get("triage_run_id"), int)}


def _read_several(db: Path, run_ids: Sequence[int], *, partial: bool) -> RunExport:
    """:func:`read_export` of several triage runs: each read as its own export would read it, refused as one run
    is, then joined (:func:`combine_exports`)."""
    parts = [load_run_export(db, r) for r in run_ids]
    stopped = [p.run for p in parts if p.partial]
    if stopped and not partial:
        raise InputError(incomplete_message(stopped[0], among=len(parts)))
    if all(p.assignments.empty and p.proposals.empty for p in parts):
        raise InputError(f"runs {listed(list(run_ids))} hold no specimens; nothing to export")
    return combine_exports(parts)


def combine_exports(parts: Sequence[RunExport]) -> RunExport:
    """Several runs' exports (:func:`load_run_export`, one database) as one :class:`RunExport` every format writes.

    * every specimen once, as the latest of the runs that named it (a completed one before one that did not
      complete): its specimen and assignment rows, and the earlier decisions, retirements and merges of its records
      that run's own export writes (so its determination is the one that run's archive gives it);
    * every live candidate once (a live proposal belongs to one run), with all its members: a candidate a reviewer
      merged across runs is the one that holds them, and its members from an earlier week now have their records
      and barcodes in the same export; ``proposals`` gains ``run_id`` and ``collection``;
    * ``runs``: each run's record (with ``specimens``: how many this export takes from it); ``run``: the runs
      together (ids, collections; the model, novelty threshold and parameters where all runs agree; candidates
      re-clustered by runs outside this export).
    """
    parts = sorted(parts, key=lambda p: int(p.run["id"]))
    rank = {int(p.run["id"]): (not p.partial, int(p.run["id"])) for p in parts}
    latest: dict[str, int] = {}
    for p in parts:
        rid = int(p.run["id"])
        for pid in p.assignments.get("processid", ()):
            if pid not in latest or rank[rid] > rank[latest[pid]]:
                latest[pid] = rid

    def own(p: RunExport, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame``'s rows of the specimens whose latest run is ``p``'s."""
        if frame.empty or "processid" not in frame:
            return frame
        rid = int(p.run["id"])
        return frame[[latest.get(x) == rid for x in frame["processid"]]]

    def joined(frames: Sequence[pd.DataFrame], key: str | list[str] | None = None) -> pd.DataFrame:
        kept = [f for f in frames if not f.empty]
        if not kept:
            return frames[0] if frames else pd.DataFrame()
        out = pd.concat(kept, ignore_index=True)
        return out.drop_duplicates(key, ignore_index=True) if key is not None and not out.empty else out

    # a rejection a later run of the export recognised (rejected again) is listed once, as the later one: the
    # queue's count (``storage.db.proposals.REJECTED_AGAIN``); its specimens are the later one's members
    held = {int(i) for p in parts for i in p.proposals.get("proposal_id", ())}
    again = {int(i) for p in parts for i, later in p.rejected_again.items() if held & {int(x) for x in later}}
    proposals = []
    for p in parts:
        frame = p.proposals.copy()
        if again and "proposal_id" in frame:
            frame = frame[~frame["proposal_id"].isin(again)]
        at = 1 if "proposal_id" in frame else 0
        frame.insert(at, "run_id", pd.array([int(p.run["id"])] * len(frame), dtype="Int64"))
        frame.insert(at + 1, "collection", [p.run.get("collection")] * len(frame))
        proposals.append(frame)
    specimens = joined([own(p, p.specimens) for p in parts])
    assignments = joined([own(p, p.assignments) for p in parts])
    counts = assignments["run_id"].value_counts().to_dict() if "run_id" in assignments else {}
    runs = tuple({**p.run, "specimens": int(counts.get(p.run["id"], 0)), "given_as": _given_as(p, latest)}
                 for p in parts)
    inside = {int(r["id"]) for r in runs}
    elsewhere = [p.run.get("superseded") or {} for p in parts]
    later = sorted({int(b) for s in elsewhere for b in s.get("by_runs", ()) if int(b) not in inside})
    first = parts[0].run

    def agreed(key: str) -> Any:
        values = [r.get(key) for r in runs]
        return values[0] if all(v == values[0] for v in values) else None

    run = {"id": "+".join(str(r["id"]) for r in runs), "runs": [int(r["id"]) for r in runs], "kind": "triage",
           "status": "completed" if not any(p.partial for p in parts) else "partial",
           "model_fingerprint": agreed("model_fingerprint"), "parameters": agreed("parameters") or {},
           "novelty_threshold": agreed("novelty_threshold"), "database_id": first.get("database_id"),
           "collection": listed(list(dict.fromkeys(r.get("collection") or f"run {r['id']}" for r in runs))),
           "started_at": min((str(r["started_at"]) for r in runs if r.get("started_at")), default=None),
           "finished_at": max((str(r["finished_at"]) for r in runs if r.get("finished_at")), default=None),
           "superseded": {"candidates": sum(int(s.get("candidates", 0)) for s in elsewhere
                                            if any(int(b) not in inside for b in s.get("by_runs", ()))),
                          "by_runs": later}}
    members = joined([p.members for p in parts], ["proposal_id", "processid"])
    if again and "proposal_id" in members:
        members = members[~members["proposal_id"].isin(again)].reset_index(drop=True)
    data = RunExport(
        run=run, specimens=specimens, assignments=assignments, proposals=joined(proposals, "proposal_id"),
        members=members,
        reviews=joined([p.reviews for p in parts], "id" if any("id" in p.reviews for p in parts) else None),
        met_here=parts[0].met_here, earlier=joined([own(p, p.earlier) for p in parts]),
        earlier_reviews=joined([p.earlier_reviews for p in parts],
                               "id" if any("id" in p.earlier_reviews for p in parts) else None),
        retired=joined([own(p, p.retired) for p in parts]), merged=joined([own(p, p.merged) for p in parts]),
        merges=joined([p.merges for p in parts], "source_id"), concepts=parts[0].concepts,
        elsewhere={k: v for p in parts for k, v in p.elsewhere.items()},
        twins={k: v for p in parts for k, v in p.twins.items()}, runs=runs)
    return dataclasses.replace(data, named_later=named_later(data),
                               rejected_again={i: later for p in parts for i, later in p.rejected_again.items()
                                               if i in again}, other_barcodes=_other_barcodes(parts, latest))


def _other_barcodes(parts: Sequence[RunExport], latest: Mapping[str, int]) -> dict[str, str]:
    """``RunExport.other_barcodes``: each processid the export gives as its latest run's whose earlier run of the
    export read another barcode of it, with that run's collection and name for it."""
    def reads(p: RunExport) -> dict[str, Any]:
        f = p.specimens
        return dict(zip(f["processid"], f["dna_barcode"])) if {"processid", "dna_barcode"} <= set(f) else {}

    by_run = {int(p.run["id"]): p for p in parts}
    given = {pid: reads(by_run[rid]).get(pid) for pid, rid in latest.items()}
    out: dict[str, str] = {}
    for p in parts:
        rid = int(p.run["id"])
        named = dict(zip(p.assignments["processid"], p.assignments["deepest_taxon"])) \
            if {"processid", "deepest_taxon"} <= set(p.assignments) else {}
        for pid, barcode in reads(p).items():
            if latest.get(pid, rid) != rid and barcode != given.get(pid) and pid not in out:
                name = named.get(pid)
                out[pid] = (f"also in {p.run.get('collection') or 'run ' + str(rid)} (run {rid}) with another "
                            f"barcode: named {name if isinstance(name, str) and name else 'at no rank'} there")
    return out


def _given_as(part: RunExport, latest: Mapping[str, int]) -> dict[int, int]:
    """Of ``part``'s specimens, how many the export gives as a later run's (that run triaged them again) → by that
    run's id: what the run's line says beside its own count (a re-run's first run read "0 specimens")."""
    rid = int(part.run["id"])
    out: dict[int, int] = {}
    for pid in part.assignments.get("processid", ()):
        if latest.get(pid, rid) != rid:
            out[latest[pid]] = out.get(latest[pid], 0) + 1
    return dict(sorted(out.items()))


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
        reviewed_keys = database.reviewed_keys(int(run_id))
        merges = database.merges(int(run_id))
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
    return RunExport(run=run, specimens=specimens, assignments=with_key_sources(tables["assignments"], reviewed_keys),
                     proposals=tables["proposals"], members=tables["members"],
                     reviews=tables.get("reviews", pd.DataFrame()), met_here=met_here,
                     earlier=earlier["decisions"], earlier_reviews=earlier["reviews"], retired=earlier["retired"],
                     merged=earlier["merged"], merges=merges, concepts=concepts, elsewhere=elsewhere, twins=twins,
                     rejected_again=tables["rejected_again"])
