"""`biodiscover demo` end to end on a tiny synthetic collection: every stage really runs.

synth (real images) → collection without identifications → encoder training (tiny
preset, real Lightning loop) → reference bundle → triage into a real SQLite file →
score against the synthetic truth; then resume, refusal of foreign or mismatched
work directories, and the CLI's tables.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from biodiscover.storage.errors import InputError
from biodiscover.cli.main import main
from biodiscover.workflows.demo import CONFIG_FILE, DemoConfig, run_demo

TINY = DemoConfig(n_species=24, n_specimens=420, preset="tiny", seed=3)


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo") / "work"
    seen: list[tuple[str, float, str]] = []
    def progress(stage: str, done: float, total: float | None = None, message: str = "") -> None:
        assert total == 1.0  # the demo reports every stage as a fraction of itself
        seen.append((stage, done, message))

    summary = run_demo(workdir, TINY, progress=progress)
    return workdir, summary, seen


def test_every_stage_runs_and_reports_progress(demo) -> None:
    workdir, summary, seen = demo
    assert set(summary.seconds) == {"synth", "collection", "train", "reference", "triage", "score"}
    stages = [st for st, _, _ in seen]
    for stage in ("synth", "collection", "train", "reference", "triage"):
        assert stage in stages
        assert max(f for st, f, _ in seen if st == stage) == pytest.approx(1.0)
    # training reports progress batch by batch, through both phases
    train_msgs = [m for st, f, m in seen if st == "train" and 0 < f < 1]
    assert any(m.startswith("pretraining") for m in train_msgs)
    assert any(m.startswith("aligning") for m in train_msgs)
    # building the reference says the most P(right) a photograph alone can be named at, per rank: here none
    # reaches the level 0.98 (the triage below names no photograph alone: test_run_in_sqlite_and_scores_against_truth)
    most = [m for st, _, m in seen if st == "reference" and m.startswith("a photograph alone is named at the level")]
    assert len(most) == 1, most
    at_most = dict(part.split(" ") for part in most[0].split(", at most: ")[1].split(", "))
    assert list(at_most) == ["order", "family", "subfamily", "genus", "species"]
    assert all(0 < float(p) < 0.98 for p in at_most.values()), most
    for path in ("data/metadata/truth.csv", "model/bundle.json", "biodiscover.sqlite", "demo-summary.json",
                 "new-collection/collection.csv", CONFIG_FILE):
        assert (workdir / path).exists(), path


def test_collection_hides_identifications_and_holds_novel_species(demo) -> None:
    workdir, summary, _ = demo
    coll = pd.read_csv(workdir / "new-collection" / "collection.csv")
    assert not {"species", "genus", "family", "split"} & set(coll.columns)
    assert len(coll) == summary.specimens == summary.scores["specimens"]
    images = list((workdir / "new-collection" / "images").glob("*.jpg"))
    assert len(images) == len(coll)
    assert 0 < summary.scores["truly_novel"] < summary.specimens
    # a share of the plate "failed sequencing": no barcode, photograph only
    no_barcode = coll["dna_barcode"].isna().sum()
    assert summary.scores["image_only"] == no_barcode > 0


def test_run_in_sqlite_and_scores_against_truth(demo) -> None:
    workdir, summary, _ = demo
    con = sqlite3.connect(workdir / "biodiscover.sqlite")
    try:
        n_assign = con.execute("SELECT COUNT(*) FROM assignments WHERE run_id = ?", (summary.run_id,)).fetchone()[0]
        n_prop = con.execute("SELECT COUNT(*) FROM proposals WHERE run_id = ?", (summary.run_id,)).fetchone()[0]
    finally:
        con.close()
    assert n_assign == summary.specimens
    assert n_prop == summary.scores["candidates"]["proposals"] > 0
    scores = summary.scores
    # DNA is informative in the synthetic world: the novel species must be separable and grouped.
    assert scores["novelty"]["auroc"] > 0.9
    assert scores["candidates"]["ami"] > 0.6
    assert scores["candidates"]["novel_in_a_proposal"] > 0.8
    # orders and families of known taxa with a barcode are named, and rarely wrongly
    family, image_only = scores["ranks"]["family"], scores["ranks_image_only"]
    assert (family["tp"] - image_only["family"]["tp"]) / (family["n_known"] - image_only["family"]["n_known"]) > 0.9
    assert family["mc_rate"] < 0.05
    # specimens without a barcode get a call from the photograph (the bundle's image classifier), named at the
    # level 0.98 by the P(right) calibrated from its scores: the tiny calibration (27 photographs, all right at
    # order) reads at most 28/29 = 0.966 there, so none is named, and the reason says so, P(right) and score
    assert image_only["order"]["tp"] + image_only["order"]["mc"] == 0
    with sqlite3.connect(workdir / "biodiscover.sqlite") as con:
        pids = pd.read_csv(workdir / "new-collection" / "collection.csv").query("dna_barcode.isna()").processid
        rows = con.execute(f"SELECT deepest_rank, novelty, modality, reason FROM assignments WHERE processid IN "
                           f"({','.join('?' * len(pids))})", list(pids)).fetchall()
    assert len(rows) == len(pids) and all(nov is None and modality == "image" for _, nov, modality, _ in rows)
    assert all(rank is None and reason.startswith("photograph only: not named: order ") and "(calibrated from the "
               "image score " in reason and reason.endswith("below the level 0.98") for rank, _, _, reason in rows)
    written = _strict((workdir / "demo-summary.json").read_text())
    assert written["run_id"] == summary.run_id
    assert written["scores"]["specimens"] == summary.specimens


def test_each_candidates_nearest_known_species_is_that_of_the_key_it_was_measured_against(demo) -> None:
    """The species a reviewer is shown beside the nearest key's barcode and identity is that key's own, also
    where a photograph's call changed the member's labels at the ranks the DNA did not name (it named another
    species beside the barcode: 17 of the demo's 22 candidates)."""
    workdir, summary, _ = demo
    ref = pd.read_csv(workdir / "data" / "metadata" / "BIOSCAN_5M_Insect_Dataset_metadata.csv").set_index("processid")
    with sqlite3.connect(workdir / "biodiscover.sqlite") as con:
        rows = con.execute("SELECT nearest_species, evidence FROM proposals WHERE run_id = ?",
                           (summary.run_id,)).fetchall()
        labels = dict(con.execute("SELECT processid, label_species FROM assignments WHERE run_id = ?",
                                  (summary.run_id,)).fetchall())
    assert rows
    relabelled = 0
    for nearest, text in rows:
        ev = json.loads(text)
        key = ev["nearest_known"]["processid"]
        assert nearest == ev["nearest_known"]["species"] == ref.loc[key, "species"]
        assert ev["nearest_known"]["genus"] == ref.loc[key, "genus"]
        for member, hit in ev["member_hits"].items():
            assert (hit["species"], hit["genus"]) == tuple(ref.loc[hit["processid"], ["species", "genus"]])
            # its key's barcode is kept too: a split whose nearest key this becomes can still show it
            assert ev["hit_barcodes"][hit["processid"]] == ref.loc[hit["processid"], "dna_barcode"]
            relabelled += labels[member] != hit["species"]
    assert relabelled > 0  # the photographs did change some members' species label: the case is exercised


def test_resume_reuses_finished_stages(demo) -> None:
    """Data, encoders and the reference engine are each built once: a rerun goes straight to triage and says the
    engine was reused, with the same scores."""
    workdir, summary, _ = demo
    bundle = workdir / "model" / "bundle.json"
    truth = workdir / "data" / "metadata" / "truth.csv"
    engine = workdir / "model" / "tables" / "discovery_engine.json"

    def stamps() -> tuple[int, ...]:
        return tuple(p.stat().st_mtime_ns for p in (truth, workdir / "model" / "weights", engine, bundle))

    before = stamps()
    said: list[tuple[str, str]] = []
    again = run_demo(workdir, TINY, progress=lambda stage, done, total, msg="": said.append((stage, msg)))
    assert stamps() == before
    assert ("reference", f"reused: the engine in {workdir / 'model'} was built from this data and bundle") in said
    assert again.scores["truly_novel"] == summary.scores["truly_novel"]
    assert again.scores["specimens"] == summary.specimens


def test_a_reference_stage_is_reused_only_while_the_bundle_is_as_the_stage_left_it(demo, tmp_path) -> None:
    """The mark is the bundle manifest's digest (it lists every file's digest): retraining or a reference build
    stopped part way changes it, and the stage is redone; no mark (a stage stopped before it finished) → redone."""
    import shutil

    from biodiscover.workflows.demo import REFERENCE_STAGE_FILE, _reference_stage_done

    workdir, _, _ = demo
    copy, model = tmp_path / "work", tmp_path / "work" / "model"
    model.mkdir(parents=True)
    shutil.copy(workdir / "model" / "bundle.json", model / "bundle.json")
    assert not _reference_stage_done(copy, model)  # no mark
    shutil.copy(workdir / REFERENCE_STAGE_FILE, copy / REFERENCE_STAGE_FILE)
    assert _reference_stage_done(copy, model)
    manifest = json.loads((model / "bundle.json").read_text())
    manifest["created"] = "2030-01-01T00:00:00+00:00"  # any rewrite of the bundle
    (model / "bundle.json").write_text(json.dumps(manifest))
    assert not _reference_stage_done(copy, model)
    (copy / REFERENCE_STAGE_FILE).write_text("{not json")
    assert not _reference_stage_done(copy, model)


def test_mismatched_settings_and_foreign_folders_are_refused(demo, tmp_path) -> None:
    workdir, _, _ = demo
    with pytest.raises(InputError, match=r"other settings.*n_species"):
        run_demo(workdir, DemoConfig(n_species=25, n_specimens=420, preset="tiny", seed=3))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("do not delete")
    with pytest.raises(InputError, match="not made by `biodiscover demo`"):
        run_demo(foreign, TINY, fresh=True)
    assert (foreign / "thesis.txt").read_text() == "do not delete"


def test_cli_prints_tables_and_next_steps(demo, capsys) -> None:
    workdir, summary, _ = demo
    code = main(["demo", "--workdir", str(workdir), "--species", "24", "--specimens", "420", "--preset", "tiny",
                 "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "novelty AUROC" in out and "candidate species proposed" in out
    # the photograph-only table's title says what names them: it read "named from the photograph alone" above a
    # table naming none at the level (e36 rev3 F6)
    flat = " ".join(out.split())
    assert "without a barcode: a photograph alone names a rank where its calibrated P(right) passes the level" \
        in flat, out
    assert f"biodiscover review --db {workdir / 'biodiscover.sqlite'}" in out
    assert f"--run {summary.run_id}" in out
    code = main(["demo", "--workdir", str(workdir), "--species", "30", "--preset", "tiny"])
    assert code == 2
    assert "other settings" in capsys.readouterr().err


def test_rerun_never_deletes_a_database_that_holds_reviews(demo) -> None:
    """Issue 12 item 1: review candidates as the demo invites, run the demo again (the real CLI, in this process):
    the reviewed database is byte-for-byte untouched and the new run goes into a new file, said on stdout.
    A database without reviews is replaced only after a backup that passes integrity_check."""
    import hashlib

    from biodiscover.storage.db import Database
    from fixtures.inprocess import run_cli

    workdir, _, _ = demo
    reviewed = workdir / "biodiscover.sqlite"
    with Database.open(reviewed) as db:
        rows, _total = db.proposal_queue(limit=3)
        for row in rows:
            db.accept(row.id, expected_version=row.version, reviewer="ana")
        db.note(rows[0].id, "checked the photos", reviewer="ana")
        n_reviews = len(db.reviews())
    assert n_reviews == len(rows) + 1 > 1
    digest = hashlib.sha256(reviewed.read_bytes()).hexdigest()
    res = run_cli("demo", "--workdir", str(workdir), "--species", "24", "--specimens", "420", "--preset", "tiny",
                  "--seed", "3")
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"database: {reviewed} holds {n_reviews} reviews: kept untouched" in res.stdout
    assert f"review:   biodiscover review --db {workdir / 'biodiscover-2.sqlite'}" in res.stdout
    assert hashlib.sha256(reviewed.read_bytes()).hexdigest() == digest
    with Database.open(reviewed, readonly=True) as db:
        assert len(db.reviews()) == n_reviews
    # again: the new file has no reviews, so it is replaced — after a verified backup
    again = run_demo(workdir, TINY)
    assert again.db == str(workdir / "biodiscover-2.sqlite") and "backed up in" in again.notes[-1]
    backups = list((workdir / "biodiscover-2.sqlite.backups").glob("biodiscover-2-pre-demo-*.sqlite"))
    assert len(backups) == 1
    with sqlite3.connect(f"file:{backups[0]}?immutable=1", uri=True) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT count(*) FROM assignments").fetchone()[0] > 0
    assert hashlib.sha256(reviewed.read_bytes()).hexdigest() == digest


def test_a_rerun_over_a_database_of_an_earlier_schema_upgrades_it_and_keeps_its_reviews(demo, tmp_path) -> None:
    """A demo folder from an earlier biodiscover holds a database at an older schema revision: the rerun stopped
    at "run db upgrade". It is upgraded (backed up first) and then handled as any other: kept when it holds
    reviews, replaced after a backup when not."""
    import shutil

    from biodiscover.storage.db import Database
    from biodiscover.storage.db.schema import head_revision, inspect_revision
    from fixtures.db_views import downgrade

    workdir = tmp_path / "work"
    shutil.copytree(demo[0], workdir, ignore=shutil.ignore_patterns("biodiscover-2.sqlite*"))
    db_path = workdir / "biodiscover.sqlite"
    with Database.open(db_path) as db:
        reviews = len(db.reviews())
        if not reviews:
            row = db.proposal_queue(limit=1)[0][0]
            db.accept(row.id, expected_version=row.version, reviewer="ana")
            reviews = 1
    downgrade(db_path, "0004")
    assert inspect_revision(db_path).revision == "0004"
    summary = run_demo(workdir, TINY)
    assert inspect_revision(db_path).revision == head_revision()
    assert any(n.startswith(f"{db_path} upgraded from schema 0004") for n in summary.notes), summary.notes
    assert summary.db == str(workdir / "biodiscover-2.sqlite")  # it holds reviews: kept, the run went next door
    with Database.open(db_path, readonly=True) as db:
        assert len(db.reviews()) == reviews
    assert list((workdir / "biodiscover.sqlite.backups").glob("biodiscover-pre-upgrade-*.sqlite"))


def test_ctrl_c_during_training_exits_130_and_the_rerun_resumes(tmp_path) -> None:
    """A real process: SIGINT while the encoders train → exit 130 with the resume hint, no model
    written from a half-trained state; the same command then finishes the demo."""
    import os
    import signal
    import subprocess
    import sys
    import time

    workdir = tmp_path / "interrupted"
    cmd = [sys.executable, "-c", "import sys; from biodiscover.cli.main import main; sys.exit(main(sys.argv[1:]))",
           "demo", "--workdir", str(workdir), "--species", "24", "--specimens", "420", "--preset", "tiny",
           "--seed", "3"]
    # SIGINT back to its default in the child: a suite started as a background job without job control
    # (`cmd &` in a script) inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    # Ctrl-C as soon as training has checkpointed: on a quiet machine the tiny preset finishes pretraining,
    # alignment and the bundle within a second of that (a 1 s wait here let a fresh-clone CI run write the
    # bundle before the signal came)
    while time.monotonic() < deadline and not (workdir / "model.checkpoints" / "pretrain").exists():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: finished steps are kept" in err
    assert not (workdir / "model" / "bundle.json").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (workdir / "model" / "bundle.json").exists() and (workdir / "demo-summary.json").exists()


def test_redirected_demo_writes_progress_as_it_happens(tmp_path) -> None:
    """`biodiscover demo > log 2>&1`: the first stage's line is in the log while the demo still runs (rich
    drew its bars only when stopped, and stdout was block-buffered, so the log stayed empty to the end)."""
    import sys

    from fixtures.redirected import run_until

    log_path = tmp_path / "log"
    cmd = [sys.executable, "-m", "biodiscover.cli", "demo", "--workdir", str(tmp_path / "w"), "--species", "24",
           "--specimens", "420", "--preset", "tiny", "--seed", "3"]
    running = run_until(cmd, log_path, log_path, "synth: dataset in", env={"COLUMNS": "200"}, timeout=300)
    assert running, "the demo finished before its first progress line reached the log"
    lines = log_path.read_text(errors="replace").splitlines()
    assert lines[0] == "synth: tables" and any(x.startswith("synth: dataset in ") for x in lines), lines
