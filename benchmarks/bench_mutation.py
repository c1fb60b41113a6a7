"""Mutation testing of the storage code that holds the data promises (issue 12).

Why hand-rolled and not mutmut: the repository keeps its packages as top-level
folders mapped to ``biodiscover.*`` by setuptools ``package-dir``, and the tests run
the real CLI in subprocesses; mutmut 3 wants a ``src``-style package it can copy
and import in-process. Here each mutant is written into a copy of the working
tree, and a shim package on ``PYTHONPATH`` (``<shim>/biodiscover/storage`` → the
copy's ``storage``) makes every process, subprocesses included, import the copy.

A mutant is one small change at one site, the kind a slip of the keyboard makes:

* comparison flipped (``==``/``!=``, ``<``/``>=``, ``<=``/``>``, ``in``/``not in``, ``is``/``is not``);
* ``and``/``or`` swapped; a ``not`` removed;
* ``True``/``False`` swapped; an integer constant + 1;
* ``+``/``-`` swapped;
* ``return <value>`` → ``return None``;
* a call statement deleted (``conn.execute(...)``, ``fh.flush()``), logging calls excepted
  (removing a log line changes no data).

For each module a seeded sample of its mutants runs against that module's tests
(``-x``: the first failing test kills it; a hang past the time limit counts as
killed). Killed / total is the kill rate; survivors are listed with their site so
each can be judged (harmless, or a missing test).

    python benchmarks/bench_mutation.py --per-module 12 --seed 0 --out benchmarks/mutation-survivors.json
    python benchmarks/bench_mutation.py --modules storage/db/ingest.py --per-module 0   # all mutants of one module
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: module -> tests that guard it (fast, specific first: -x stops at the first failure)
_P = "tests/test_data_promises.py::"
TESTS: dict[str, list[str]] = {
    "storage/safetext.py": [_P + "test_9_fasta_headers_never_carry_control_characters", "tests/test_hostile.py",
                            _P + "test_9_quarantine_neutralises_formulas_and_controls_never_reach_outputs"],
    "storage/validation.py": ["tests/test_validation.py", "tests/test_readers.py", "tests/test_hostile.py",
                              _P + "test_7_a_decompression_bomb_is_a_set_aside_photo",
                              _P + "test_12_a_ten_megabyte_barcode_is_invalid_not_a_candidate"],
    "storage/collections.py": ["tests/test_readers.py", "tests/test_validation.py", "tests/test_hostile.py",
                               _P + "test_7_a_file_without_line_breaks_is_refused_without_holding_it_whole",
                               _P + "test_7_the_wrong_place_is_named_not_blamed_on_the_data"],
    "storage/fasta.py": ["tests/test_readers.py", _P + "test_9_fasta_headers_never_carry_control_characters",
                         "tests/test_hostile.py"],
    "storage/bioscan.py": ["tests/test_readers.py", "tests/test_validation.py",
                           _P + "test_5_build_reference_sets_aside_bad_barcodes_and_duplicated_processids"],
    "storage/db/engine.py": ["tests/test_db.py", "tests/test_db_processes.py",
                             _P + "test_8_a_read_only_database_is_reported_as_permissions_not_damage"],
    "storage/db/integrity.py": [_P + "test_2_a_file_cut_short_is_damaged_before_sqlite_reads_a_page",
                                _P + "test_2_backups_are_verified_and_pruning_never_loses_the_newest_good_one",
                                _P + "test_2_sqlites_multi_line_complaint_is_still_one_error_line",
                                "tests/test_db_processes.py",
                                _P + "test_8_a_read_only_database_is_reported_as_permissions_not_damage",
                                _P + "test_2_every_writing_verb_refuses_a_damaged_database"],
    "storage/db/database.py": ["tests/test_db.py", "tests/test_db_cli.py", "tests/test_db_processes.py",
                               _P + "test_8_a_read_only_database_is_reported_as_permissions_not_damage",
                               _P + "test_2_every_writing_verb_refuses_a_damaged_database"],
    "storage/db/backup.py": [_P + "test_2_backups_are_verified_and_pruning_never_loses_the_newest_good_one",
                             "tests/test_db_cli.py", _P + "test_7_the_wrong_place_is_named_not_blamed_on_the_data",
                             "tests/test_db_processes.py", "tests/test_demo.py::"
                             "test_rerun_never_deletes_a_database_that_holds_reviews"],
    "storage/db/check.py": ["tests/test_db_cli.py", "tests/test_db_processes.py",
                            _P + "test_4_a_report_that_cannot_be_written_leaves_the_ingest_unfinished",
                            _P + "test_11_sigkill_mid_ingest_of_a_file_then_the_rerun_completes_it"],
    "storage/db/schema.py": ["tests/test_db_cli.py", "tests/test_db_processes.py", "tests/test_db.py"],
    "storage/db/ingest.py": ["tests/test_db.py", "tests/test_db_cli.py",
                             _P + "test_4_a_report_that_cannot_be_written_leaves_the_ingest_unfinished",
                             _P + "test_11_a_photo_added_to_a_specimen_later_is_a_new_version",
                             "tests/test_hostile.py", "tests/test_db_processes.py",
                             _P + "test_11_sigkill_mid_ingest_of_a_file_then_the_rerun_completes_it"],
    "storage/db/runs.py": ["tests/test_db.py", "tests/test_batch.py", "tests/test_export_db.py",
                           "tests/test_db_processes.py"],
}
LOG_NAMES = {"log", "logger", "logging"}
CMP_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE,
            ast.LtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass
class Mutant:
    module: str
    index: int
    line: int
    kind: str
    before: str
    after: str = ""
    status: str = "pending"  # killed | survived | timeout | error
    seconds: float = 0.0
    killed_by: str = ""


def _is_docstring(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    return isinstance(parent, ast.Expr) and isinstance(getattr(parent, "value", None), ast.Constant) and \
        isinstance(parent.value.value, str)


def _is_log_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
        return False
    func = node.value.func
    while isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id in LOG_NAMES:
            return True
        func = func.value
    return False


def _in_annotation(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, (ast.arg, ast.AnnAssign)) and getattr(parent, "annotation", None) is child:
            return True
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) and parent.returns is child:
            return True
        child, parent = parent, parents.get(parent)
    return False


def _order(tree: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[tuple[ast.AST, str, str]]:
    """(node, kind, description) of every mutation site, in ``ast.walk`` order (stable for a source)."""
    out: list[tuple[ast.AST, str, str]] = []
    for node in ast.walk(tree):
        if _in_annotation(node, parents):
            continue
        if isinstance(node, ast.Compare):
            out += [(node, f"compare:{i}", f"{type(op).__name__} -> {CMP_SWAP[type(op)].__name__}")
                    for i, op in enumerate(node.ops) if type(op) in CMP_SWAP]
        elif isinstance(node, ast.BoolOp):
            out.append((node, "boolop", f"{type(node.op).__name__} swapped"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append((node, "not", "not removed"))
        elif isinstance(node, ast.Constant) and not _is_docstring(node, parents):
            if isinstance(node.value, bool):
                out.append((node, "bool", f"{node.value} -> {not node.value}"))
            elif isinstance(node.value, int):
                out.append((node, "int", f"{node.value} -> {node.value + 1}"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            out.append((node, "binop", f"{type(node.op).__name__} swapped"))
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            out.append((node, "return", "return value -> None"))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _is_log_call(node):
            out.append((node, "delete", "call statement deleted"))
    return out


def _parse(source: str) -> tuple[ast.AST, dict[ast.AST, ast.AST]]:
    tree = ast.parse(source)
    return tree, {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def sites(source: str) -> list[tuple[int, str, str]]:
    """(line, kind, description) of every mutation site."""
    return [(getattr(node, "lineno", 0), kind, desc) for node, kind, desc in _order(*_parse(source))]


class _Apply:
    """Apply the ``target``-th site of :func:`sites` to a fresh parse of ``source``."""

    def __init__(self, source: str, target: int) -> None:
        self.target = target
        self.tree, self.parents = _parse(source)
        self.order = [(node, kind) for node, kind, _ in _order(self.tree, self.parents)]

    def mutated_source(self) -> str:
        node, kind = self.order[self.target]
        if kind.startswith("compare:"):
            i = int(kind.split(":")[1])
            node.ops[i] = CMP_SWAP[type(node.ops[i])]()  # type: ignore[attr-defined]
        elif kind == "boolop":
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()  # type: ignore[attr-defined]
        elif kind == "not":
            self._replace(node, node.operand)  # type: ignore[attr-defined]
        elif kind == "bool":
            node.value = not node.value  # type: ignore[attr-defined]
        elif kind == "int":
            node.value = node.value + 1  # type: ignore[attr-defined]
        elif kind == "binop":
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()  # type: ignore[attr-defined]
        elif kind == "return":
            node.value = ast.Constant(None)  # type: ignore[attr-defined]
        elif kind == "delete":
            self._replace(node, ast.Pass())
        return ast.unparse(ast.fix_missing_locations(self.tree))

    def _replace(self, old: ast.AST, new: ast.AST) -> None:
        parent = self.parents[old]
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return
        raise RuntimeError("node not found in its parent")


def make_copy(dest: Path) -> Path:
    """Tracked and untracked-but-not-ignored files of the working tree, plus a shim importing the copy."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    tree = dest / "tree"
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    shim = dest / "shim" / "biodiscover"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    for area in ("cli", "discovery", "encoders", "storage", "tui", "workflows"):
        (shim / area).symlink_to(tree / area)
    return tree


def run_tests(tree: Path, shim: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    env = {**os.environ, "PYTHONPATH": str(shim), "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                              "--timeout", "900", *tests], cwd=tree, env=env, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, ""
    failed = [ln.split(" ")[1] for ln in res.stdout.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    status = "survived" if res.returncode == 0 else "killed" if res.returncode in (1, 2) else "error"
    return status, time.perf_counter() - t0, failed[0] if failed else res.stdout[-2000:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", nargs="*", default=sorted(TESTS), help="modules to mutate (paths in the repo)")
    ap.add_argument("--per-module", type=int, default=12, help="seeded sample per module (0 = every mutant)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per mutant before it counts as killed (hang)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "mutation-results.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bd-mutation-"))
    tree = make_copy(work)
    shim = work / "shim"
    results: list[Mutant] = []
    print(f"copy of the working tree in {tree}", flush=True)
    # the selected tests must pass on the unmutated copy, or a 'kill' would mean nothing
    for module in args.modules:
        for _attempt in (1, 2):  # once more before calling it broken: the shared machine can starve a test
            status, secs, detail = run_tests(tree, shim, TESTS[module], args.timeout)
            print(f"baseline {module}: {status} in {secs:.0f}s", flush=True)
            if status == "survived":
                break
        else:
            raise SystemExit(f"tests for {module} fail without any mutation: {detail}")
    for module in args.modules:
        path = tree / module
        original = path.read_text()
        found = sites(original)
        rng = random.Random(f"{args.seed}:{module}")
        chosen = sorted(rng.sample(range(len(found)), min(args.per_module, len(found)))) if args.per_module \
            else list(range(len(found)))
        for index in chosen:
            line, kind, desc = found[index]
            m = Mutant(module, index, line, kind, original.splitlines()[line - 1].strip(), desc)
            mutated = _Apply(original, index).mutated_source()
            try:
                path.write_text(mutated)
                m.status, m.seconds, m.killed_by = run_tests(tree, shim, TESTS[module], args.timeout)
            finally:
                path.write_text(original)
            if m.status == "timeout":
                m.killed_by = "timeout (hang)"
            results.append(m)
            print(f"{m.status:>8} {module}:{line} {kind} ({desc}) {m.seconds:.0f}s {m.killed_by[:80]}", flush=True)
    killed = sum(m.status in ("killed", "timeout") for m in results)
    errors = sum(m.status == "error" for m in results)
    summary = {"mutants": len(results), "killed": killed, "errors": errors,
               "kill_rate": round(killed / max(1, len(results) - errors), 4),
               "per_module": {mod: {"mutants": sum(m.module == mod for m in results),
                                    "killed": sum(m.module == mod and m.status in ("killed", "timeout")
                                                  for m in results)} for mod in args.modules},
               "seed": args.seed, "per_module_sample": args.per_module,
               "survivors": [asdict(m) for m in results if m.status == "survived"],
               "all": [asdict(m) for m in results]}
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("mutants", "killed", "errors", "kill_rate", "per_module")}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
