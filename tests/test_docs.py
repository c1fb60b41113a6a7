"""The documents a new user relies on stay true to the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    test_section = readme.split("## Run the tests", 1)[1]
    command = _bash_blocks(test_section)[0].strip()
    assert command.endswith("-m pytest -q -n auto")
    assert command in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_demo_command_runs_the_demo_verb() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    demo = _bash_blocks(readme.split("## Run the demo", 1)[1])[0].strip()
    assert demo.startswith("python3 -m venv .venv") and demo.endswith(".venv/bin/biodiscover demo")


def test_benchmarks_md_is_assembled_from_the_results_files() -> None:
    """BENCHMARKS.md = benchmarks/SUMMARY.md + every benchmarks/RESULTS-*.md (no hand-edited copy)."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "build_benchmarks_md.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
