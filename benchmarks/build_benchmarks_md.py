"""Assemble BENCHMARKS.md: the summary (benchmarks/SUMMARY.md) then every area's results file.

Why generated: each benchmark script's owner keeps its results file next to the
script (``benchmarks/RESULTS-<area>.md``, with the command, data and machine);
BENCHMARKS.md is the one document a reader opens, so it must hold all of them
without a second, hand-edited copy drifting away from the first.

    python benchmarks/build_benchmarks_md.py          # rewrite BENCHMARKS.md
    python benchmarks/build_benchmarks_md.py --check  # exit 1 when BENCHMARKS.md is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: reading order: data → storage → encoders → discovery → clustering → images → workflows → TUI
ORDER = ("read", "synth", "db", "encoders", "discovery", "clustering", "images", "run", "tui")


def _demote(text: str) -> str:
    """One heading level down, so each area sits under the document's own title (code blocks untouched)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and re.match(r"#{1,5} ", line) else line)
    return "\n".join(out).rstrip() + "\n"


def build() -> str:
    parts = [(HERE / "SUMMARY.md").read_text(encoding="utf-8").rstrip() + "\n"]
    files = {p.stem.removeprefix("RESULTS-"): p for p in HERE.glob("RESULTS-*.md")}
    for area in (*ORDER, *sorted(set(files) - set(ORDER))):
        if area in files:
            body = files[area].read_text(encoding="utf-8")
            parts.append(f"\n---\n\n<!-- generated from benchmarks/{files[area].name}: edit that file, "
                         f"then run benchmarks/build_benchmarks_md.py -->\n\n{_demote(body)}")
    return "".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that BENCHMARKS.md is up to date")
    args = ap.parse_args()
    target = HERE.parent / "BENCHMARKS.md"
    text = build()
    if args.check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is stale: run python benchmarks/build_benchmarks_md.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
