"""``biodiscover demo``: the whole product on a synthetic collection, end to end.

Why a demo pipeline at all: a new user has no BIOSCAN-5M on disk and no GPU, yet
should see every stage work — data → encoders → reference → triage → candidate
species in SQLite → a score against the truth — in a few minutes, and be told how
to open the review UI and export the result. Every stage calls the same pipeline
function the corresponding verb calls; nothing here is demo-only logic except
choosing the data and scoring against the synthetic truth.

Layout of the work directory::

    <workdir>/data/                    synthetic BIOSCAN-5M-like dataset (metadata + images + truth)
    <workdir>/new-collection/          the "new collection": test + test_unseen + part of other_heldout,
                                       identifications removed, images as <processid>.jpg
    <workdir>/model/                   model bundle: encoders + discovery engine
    <workdir>/biodiscover.sqlite       runs, assignments, candidate species, reviews
    <workdir>/demo-summary.json        the score against the synthetic truth

Stages whose output already exists are reused, so an interrupted demo resumes; the reference stage counts as
finished only when ``reference-stage.json`` matches the bundle as it left it (a rerun then goes straight to triage).

The demo never deletes a database that holds reviews: a re-run (``--fresh`` too)
triages into the first ``biodiscover[-N].sqlite`` without reviews and says which;
a database without reviews is replaced only after a verified backup
(``<db>.backups/``, kept by ``--fresh``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np
import pandas as pd

from biodiscover.storage.progress import Progress, log_progress, within
from biodiscover.storage.records import RANKS, Specimen, is_filler_name

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("synth", "collection", "train", "reference", "triage", "score")

#: Columns a lab would send with a new plate: no identification, no split.
COLLECTION_COLUMNS: tuple[str, ...] = (
    "processid", "sampleid", "dna_barcode", "country", "province_state", "coord-lat", "coord-lon",
    "image_measurement_value", "area_fraction", "scale_factor",
)


@dataclass(frozen=True)
class DemoConfig:
    """Size of the demo; the defaults finish in minutes on a 2-core CPU."""

    n_species: int = 150
    n_specimens: int = 3000
    seed: int = 0
    preset: str = "small"
    #: Share of other_heldout specimens put in the new collection; the rest train the novelty detector.
    heldout_in_collection: float = 0.5
    #: Share of the collection whose barcode "failed" (removed): named from the photograph alone.
    no_barcode_fraction: float = 0.1


@dataclass
class DemoSummary:
    """What the demo did and how it scored against the synthetic truth."""

    workdir: str
    db: str
    model: str
    run_id: int | None
    specimens: int
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    #: what happened to databases already in the work directory (kept with reviews, or replaced after a backup)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Strict JSON (NaN rates, e.g. an empty denominator, become null)."""
        from biodiscover.storage.jsonable import jsonable

        return jsonable(asdict(self))


def _split_specimens(data_root: Path) -> dict[str, list[Specimen]]:
    from biodiscover.storage.bioscan import load_specimens

    out: dict[str, list[Specimen]] = {}
    for s in load_specimens(data_root):
        out.setdefault(s.split or "", []).append(s)
    return out


def _heldout_parts(heldout: Sequence[Specimen], share: float, seed: int) -> tuple[list[Specimen], list[Specimen]]:
    """Split other_heldout by *species* so the novelty detector never sees the collection's species."""
    species = sorted({s.species or s.processid for s in heldout})
    rng = np.random.default_rng(seed)
    rng.shuffle(species)
    into = set(species[: int(round(len(species) * share))])
    coll = [s for s in heldout if (s.species or s.processid) in into]
    rest = [s for s in heldout if (s.species or s.processid) not in into]
    return coll, rest


def _fail_barcodes(specimens: Sequence[Specimen], fraction: float, seed: int) -> list[Specimen]:
    """Remove the barcode of a seeded ``fraction`` of specimens that have a photograph.

    Sequencing fails for a share of every real plate; those specimens can only be
    named from their photograph, which is what the image classifier is for.
    """
    import dataclasses

    rng = np.random.default_rng(seed + 17)
    out = []
    for s in specimens:
        fail = s.image_path is not None and rng.random() < fraction
        out.append(dataclasses.replace(s, dna_barcode=None) if fail else s)
    return out


def write_collection(specimens: Sequence[Specimen], out_dir: Path) -> tuple[Path, Path]:
    """Write a lab-style collection: CSV without identifications + ``images/<processid>.jpg``.

    Each barcode is the read as submitted (``barcode_as_submitted``), not the 660 nt the reader cut it to: a
    lab hands in what its sequencer called, and the plate then exercises what a real one does (triage
    analyses the first 660 nt; the exports send the whole read on).
    """
    from biodiscover.storage.validation import barcode_as_submitted

    out_dir.mkdir(parents=True, exist_ok=True)
    images = out_dir / "images"
    images.mkdir(exist_ok=True)
    rows = []
    for s in specimens:
        row = s.to_row()
        row["dna_barcode"] = barcode_as_submitted(s)
        rows.append({c: row.get(c) for c in COLLECTION_COLUMNS})
        if s.image_path is not None and Path(s.image_path).exists():
            target = images / f"{s.processid}.jpg"
            if not target.exists():
                shutil.copyfile(s.image_path, target)
    csv = out_dir / "collection.csv"
    pd.DataFrame(rows, columns=list(COLLECTION_COLUMNS)).to_csv(csv, index=False, na_rep="")
    return csv, images


def _named_lineage(row: pd.Series) -> dict[str, str | None]:
    """Labels the run *committed to*: every rank down to the deepest confident one (fillers are no name)."""
    deepest = row.get("deepest_rank")
    depth = RANKS.index(deepest) if isinstance(deepest, str) and deepest in RANKS else -1
    labels = {r: (row.get(f"label_{r}") if i <= depth else None) for i, r in enumerate(RANKS)}
    return {r: (None if is_filler_name(v) else v) for r, v in labels.items()}


def score_run(db_path: Path, run_id: int, truth: pd.DataFrame, processids: Sequence[str],
              reference: Sequence[Specimen], image_only: Collection[str] = ()) -> dict[str, Any]:
    """Compare a run's assignments and candidate species with the synthetic truth.

    ``reference`` are the keys the model searched: a true species absent from them
    is novel, and naming it to species is over-classification. ``image_only``:
    specimens without a barcode; they are scored apart (``ranks_image_only``) and
    left out of the novelty and candidate scores, which need a barcode.
    """
    from biodiscover.discovery.metrics import clustering_scores, novelty_scores, rank_errors
    from biodiscover.workflows.export import load_run_export

    run = load_run_export(db_path, run_id)
    assign = run.assignments.drop_duplicates("processid").set_index("processid")
    pids = [p for p in processids if p in assign.index]
    t = truth.drop_duplicates("processid").set_index("processid").loc[pids]
    a = assign.loc[pids]
    ref_taxa = {r: {getattr(s, r) for s in reference if getattr(s, r)} for r in RANKS}
    is_novel = [sp not in ref_taxa["species"] for sp in t["species"]]
    no_dna = set(image_only)
    scores: dict[str, Any] = {"specimens": len(pids), "truly_novel": int(sum(is_novel)),
                              "image_only": sum(p in no_dna for p in pids)}
    dna_idx = [i for i, p in enumerate(pids) if p not in no_dna]
    novelty = a["novelty"].astype(float).tolist()
    nov_truth = [is_novel[i] for i in dna_idx]
    if 0 < sum(nov_truth) < len(nov_truth):
        scores["novelty"] = novelty_scores(nov_truth, [0.0 if novelty[i] != novelty[i] else novelty[i]
                                                       for i in dna_idx])
    truth_lineages = [{r: (None if pd.isna(t[r].iat[i]) else str(t[r].iat[i])) for r in RANKS} for i in range(len(t))]
    predicted = [_named_lineage(a.iloc[i]) for i in range(len(a))]
    scores["ranks"] = {r: e.as_dict() for r, e in rank_errors(truth_lineages, predicted, ref_taxa).items()}
    img_idx = [i for i, p in enumerate(pids) if p in no_dna]
    if img_idx:
        scores["ranks_image_only"] = {r: e.as_dict() for r, e in rank_errors(
            [truth_lineages[i] for i in img_idx], [predicted[i] for i in img_idx], ref_taxa).items()}
    novel_pids = [pids[i] for i in dna_idx if is_novel[i]]
    if novel_pids:
        member_of = run.members.drop_duplicates("processid").set_index("processid")["proposal_id"].to_dict()
        pred = [f"candidate-{member_of[p]}" if p in member_of else f"unproposed-{p}" for p in novel_pids]
        scores["candidates"] = clustering_scores(t.loc[novel_pids, "species"].astype(str).tolist(), pred)
        scores["candidates"]["proposals"] = int(run.proposals["proposal_id"].nunique()) if len(run.proposals) else 0
        scores["candidates"]["novel_in_a_proposal"] = sum(p in member_of for p in novel_pids) / len(novel_pids)
    return scores


CONFIG_FILE = "demo-config.json"


def _prepare_workdir(workdir: Path, config: DemoConfig, fresh: bool) -> None:
    """Create, reuse or (``fresh``) wipe the work directory — never a folder the demo did not make.

    Reusing finished stages is only right when they were made with the same
    config; a different size, preset or seed is refused rather than silently
    mixed with the old data.
    """
    from biodiscover.storage.errors import InputError

    marker = workdir / CONFIG_FILE
    wanted = asdict(config)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"--workdir {workdir}: exists and is not a folder")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not marker.is_file():
            raise InputError(f"--workdir {workdir}: folder is not empty and was not made by `biodiscover demo` "
                             f"(no {CONFIG_FILE}); choose an empty or new folder")
        if fresh:
            _wipe_but_databases(workdir)
        else:
            try:
                found = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"{marker}: unreadable ({exc}); rerun with --fresh") from exc
            if found != wanted:
                changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
                raise InputError(f"--workdir {workdir} holds a demo made with other settings "
                                 f"({', '.join(changed)}); rerun with --fresh or use another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(wanted, indent=2), encoding="utf-8")


REFERENCE_STAGE_FILE = "reference-stage.json"


def _reference_stage(model: Path) -> dict[str, Any]:
    """What makes a built engine reusable: the bundle exactly as the stage left it, and the code that built it.

    The manifest lists every file of the bundle with its digest, so its own digest changes with any rewrite
    (retraining, a reference build stopped half way); the engine format and the package version change when
    the engine is fitted differently.
    """
    import hashlib
    from importlib.metadata import version

    from biodiscover.discovery.engine import ENGINE_FORMAT
    from biodiscover.storage.bundle import MANIFEST

    return {"manifest_sha256": hashlib.sha256((model / MANIFEST).read_bytes()).hexdigest(),
            "engine_format": ENGINE_FORMAT, "biodiscover": version("biodiscover")}


def _mark_reference_stage(workdir: Path, model: Path) -> None:
    """Written only after ``build_reference`` returned: a stage stopped part way leaves no mark, and is redone."""
    (workdir / REFERENCE_STAGE_FILE).write_text(json.dumps(_reference_stage(model), indent=2), encoding="utf-8")


def _reference_stage_done(workdir: Path, model: Path) -> bool:
    """True when the bundle still holds the engine this demo built (same data: the config marker guarantees it)."""
    from biodiscover.storage.bundle import MANIFEST

    marker = workdir / REFERENCE_STAGE_FILE
    if not (marker.is_file() and (model / MANIFEST).is_file()):
        return False
    try:
        return bool(json.loads(marker.read_text(encoding="utf-8")) == _reference_stage(model))
    except (OSError, ValueError):
        return False


DB_NAME = "biodiscover.sqlite"


def _is_database_file(path: Path) -> bool:
    """A demo database, its journal files or its backups folder: what ``--fresh`` keeps."""
    name = path.name
    return name.startswith("biodiscover") and ".sqlite" in name


def _wipe_but_databases(workdir: Path) -> None:
    """``--fresh``: remove everything the demo made except databases and their backups (they may hold reviews)."""
    for child in workdir.iterdir():
        if _is_database_file(child):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _choose_database(workdir: Path) -> tuple[Path, list[str]]:
    """The database this run triages into, and what happened to the ones already there.

    Why: a reviewer's decisions live in the demo's database (the demo invites them
    to review). A database holding reviews is never touched; the next free name
    is used instead. One without reviews is replaced, after a verified backup.
    """
    from biodiscover.storage.db import Database
    from biodiscover.storage.db.backup import KEEP_AUTOMATIC, backup_database
    from biodiscover.storage.db.schema import inspect_revision

    notes: list[str] = []
    n = 1
    while True:
        db = workdir / (DB_NAME if n == 1 else f"biodiscover-{n}.sqlite")
        if not db.exists() or db.stat().st_size == 0:
            return db, notes
        state = inspect_revision(db)
        if state.has_tables and state.revision is not None and not state.is_current and not state.is_newer:
            # the demo's own file from an earlier biodiscover: brought to this schema (backed up first) so its
            # reviews can be counted and kept; a second demo used to stop at "run db upgrade"
            backup = Database.upgrade(db)
            notes.append(f"{db} upgraded from schema {state.revision} to {state.head} (backup: {backup})")
        with Database.open(db, readonly=True) as handle:
            reviews = handle.count_reviews()
        if reviews:
            notes.append(f"{db} holds {reviews} review{'s' if reviews != 1 else ''}: kept untouched")
            n += 1
            continue
        backup = backup_database(db, reason="pre-demo", keep=KEEP_AUTOMATIC)
        for part in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            part.unlink(missing_ok=True)
        notes.append(f"{db} (no reviews) replaced by this run; the previous one is backed up in {backup}")
        return db, notes


def run_demo(workdir: Path, config: DemoConfig = DemoConfig(), *, progress: Progress | None = None,
             fresh: bool = False) -> DemoSummary:
    """Run every stage (reusing finished ones unless ``fresh``) and return the summary."""
    from biodiscover.encoders.config import load_preset
    from biodiscover.encoders.training import StageProgress, train_bundle
    from biodiscover.storage.synth import SynthConfig, generate
    from biodiscover.storage.synth.generator import load_truth
    from biodiscover.workflows.reference import build_reference
    from biodiscover.workflows.triage import run_triage

    say = progress or log_progress(log)
    workdir = Path(workdir)
    _prepare_workdir(workdir, config, fresh)
    data, coll_dir, model = workdir / "data", workdir / "new-collection", workdir / "model"
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    if not (data / "metadata" / "truth.csv").exists():
        synth = SynthConfig(n_species=config.n_species, n_specimens=config.n_specimens, seed=config.seed)
        generate(synth, data, progress=within(say, "synth"))
    say("synth", 1.0, 1.0, f"dataset in {data}")
    seconds["synth"] = time.perf_counter() - t

    t = time.perf_counter()
    by_split = _split_specimens(data)
    heldout_coll, _heldout_rest = _heldout_parts(by_split.get("other_heldout", []),
                                                config.heldout_in_collection, config.seed)
    collection = _fail_barcodes(by_split.get("test", []) + by_split.get("test_unseen", []) + heldout_coll,
                                config.no_barcode_fraction, config.seed)
    csv, images = write_collection(collection, coll_dir)
    say("collection", 1.0, 1.0, f"{len(collection)} specimens (test + test_unseen + {len(heldout_coll)} other_heldout)")
    seconds["collection"] = time.perf_counter() - t

    t = time.perf_counter()
    if not (model / "bundle.json").exists():
        say("train", 0.0, 1.0, f"encoders ({config.preset} preset)")
        train_bundle(data, model, load_preset(config.preset),
                     resume=(model.with_name(model.name + ".checkpoints")).exists(),
                     progress=False, callbacks=[StageProgress(within(say, "train", 0.0, 0.95))])
    say("train", 1.0, 1.0, f"encoders ({config.preset}) in {model}")
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    if _reference_stage_done(workdir, model):
        say("reference", 1.0, 1.0, f"reused: the engine in {model} was built from this data and bundle")
    else:
        # The collection's other_heldout species are excluded, so the novelty detector meets them first in triage.
        # overwrite=False: the engine is stored *into* the trained bundle, keeping its encoders
        build_reference(data, model, outliers="other_heldout", overwrite=False,
                        exclude_processids={s.processid for s in heldout_coll},
                        progress=within(say, "reference", 0.5, 0.0))
        _mark_reference_stage(workdir, model)
        say("reference", 1.0, 1.0, "reference index, per-rank P(right) naming model, novelty")
    seconds["reference"] = time.perf_counter() - t

    t = time.perf_counter()
    db, notes = _choose_database(workdir)
    for note in notes:
        log.info("%s", note)
    summary = run_triage(csv, model, db, images=images, collection="demo-plate",
                         progress=within(say, "triage"))
    say("triage", 1.0, 1.0, f"run {summary.run_id}: {summary.novel} novel, {summary.proposals} candidate species")
    seconds["triage"] = time.perf_counter() - t

    t = time.perf_counter()
    truth = load_truth(data)
    reference = by_split.get("train", []) + by_split.get("key_unseen", [])
    scores = (score_run(db, summary.run_id, truth, [s.processid for s in collection], reference,
                        image_only={s.processid for s in collection if not s.dna_barcode})
              if summary.run_id is not None else {})
    seconds["score"] = time.perf_counter() - t
    result = DemoSummary(workdir=str(workdir), db=str(db), model=str(model), run_id=summary.run_id,
                         specimens=len(collection), seconds=seconds, scores=scores, notes=notes)
    (workdir / "demo-summary.json").write_text(json.dumps(result.to_json(), indent=2, allow_nan=False),
                                               encoding="utf-8")
    return result
