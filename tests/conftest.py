"""Shared pytest fixtures: paths to shipped fixtures and the optional real dev data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Real data lives beside the checkout in ../shared; a user's clone has none.
SHARED_DATA = Path(os.environ.get("BIODISCOVER_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def real_dev_csv() -> Path:
    """The real BOLD dev file, or a clean skip where ../shared is absent."""
    path = SHARED_DATA / "bold-insects-dev.csv.gz"
    if not path.exists():
        pytest.skip(f"real dev data not present at {path}")
    return path


@pytest.fixture(scope="session")
def real_images_dir() -> Path:
    path = SHARED_DATA / "bioscan-images"
    if not path.is_dir():
        pytest.skip(f"real specimen photos not present at {path}")
    return path
