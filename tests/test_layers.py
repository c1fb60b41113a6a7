"""The layering rule of DESIGN.md, enforced: core packages never import UI/CLI code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_cli_help_lists_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workflows.cli", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "biodiscover" in result.stdout
