"""SVG snapshots of the review app at 80×24 on a fixed synthetic database.

The database is rebuilt from a fixed seed for every run (same proposals, same
evidence), Input cursors do not blink, and workers are awaited before the
picture is taken, so the SVGs are deterministic. Refresh after an intended
change with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at
the report before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input
from textual.worker import WorkerCancelled

from biodiscover.storage.db import Database
from fixtures.review_db import build_review_db
from biodiscover.tui.app import ReviewApp

SIZE = (80, 24)


@pytest.fixture(scope="module")
def snapshot_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_review_db(tmp_path_factory.mktemp("tui-snap") / "review.sqlite", max_proposals=24).path


async def _settle(pilot) -> None:
    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()
    for inp in pilot.app.screen.query(Input):
        inp.cursor_blink = False


def _app(path: Path) -> ReviewApp:
    return ReviewApp(Database.open(path), reviewer="snap", halfcell_images=True, poll_seconds=3600)


def test_queue_snapshot(snap_compare, snapshot_db: Path) -> None:
    assert snap_compare(_app(snapshot_db), terminal_size=SIZE, run_before=_settle)


def test_detail_evidence_snapshot(snap_compare, snapshot_db: Path) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)
        await pilot.press("3")
        await _settle(pilot)

    assert snap_compare(_app(snapshot_db), terminal_size=SIZE, run_before=run_before)


def test_detail_dna_snapshot(snap_compare, snapshot_db: Path) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)
        await pilot.press("2")
        await _settle(pilot)

    assert snap_compare(_app(snapshot_db), terminal_size=SIZE, run_before=run_before)


def test_accept_dialog_snapshot(snap_compare, snapshot_db: Path) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("a")
        await _settle(pilot)

    assert snap_compare(_app(snapshot_db), terminal_size=SIZE, run_before=run_before)


def test_help_snapshot(snap_compare, snapshot_db: Path) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await _settle(pilot)

    assert snap_compare(_app(snapshot_db), terminal_size=SIZE, run_before=run_before)


# -- issue 15: the DNA tab on a partial barcode, the photo grid, the evidence after a split -------------------------

def test_dna_partial_barcode_snapshot(snap_compare, tmp_path: Path) -> None:
    """Two partial reads 0.0 % apart under the nearest known species' barcode: gaps before column 58, no
    variable column, the five fixed differences marked ``|``."""
    from fixtures.review_db import partial_barcode_db

    path, _pid = partial_barcode_db(tmp_path / "partial.sqlite")

    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter", "2")
        await _settle(pilot)
        await pilot.press("right_square_bracket")
        await _settle(pilot)

    assert snap_compare(_app(path), terminal_size=SIZE, run_before=run_before)


@pytest.fixture(scope="module")
def photo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tui-photos")
    return build_review_db(root / "review.sqlite", images_dir=root / "images", max_proposals=4).path


def test_photo_grid_snapshot(snap_compare, photo_db: Path) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter", "4")
        await _settle(pilot)

    assert snap_compare(_app(photo_db), terminal_size=(120, 36), run_before=run_before)


def test_evidence_after_split_snapshot(snap_compare, snapshot_db: Path, tmp_path: Path) -> None:
    """Split three members off the first candidate: the evidence tab shows the numbers of what is left."""
    import shutil

    path = tmp_path / "split.sqlite"
    shutil.copy(snapshot_db, path)

    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("enter")
        await _settle(pilot)
        await pilot.press("x")
        await _settle(pilot)
        await pilot.press("n", "space", "down", "space", "down", "space", "enter")
        await _settle(pilot)
        await pilot.press("3")
        await _settle(pilot)
        pilot.app.clear_notifications()  # the toast carries nothing the snapshot is about
        await _settle(pilot)

    assert snap_compare(_app(path), terminal_size=SIZE, run_before=run_before)
