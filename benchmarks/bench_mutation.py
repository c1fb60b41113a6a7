"""Mutation testing of the code that holds the data promises (issue 12): ``storage/`` and ``workflows/export/``.

Why hand-rolled and not mutmut: the repository keeps its packages as top-level
folders mapped to ``biodiscover.*`` by setuptools ``package-dir``, and the tests run
the real CLI in subprocesses; mutmut 3 wants a ``src``-style package it can copy
and import in-process. Here each mutant is written into a copy of the working
tree, and a shim package on ``PYTHONPATH`` (``<shim>/biodiscover/storage`` → the
copy's ``storage``) makes every process, subprocesses included, import the copy
(checked before anything runs, also for a process that has dropped its privileges).

A mutant is one small change at one site, the kind a slip of the keyboard makes:

* comparison flipped (``==``/``!=``, ``<``/``>=``, ``<=``/``>``, ``in``/``not in``, ``is``/``is not``);
* ``and``/``or`` swapped; a ``not`` removed;
* ``True``/``False`` swapped; an integer constant + 1;
* ``+``/``-`` swapped;
* ``return <value>`` → ``return None``;
* a call statement deleted (``conn.execute(...)``, ``fh.flush()``), logging calls excepted
  (removing a log line changes no data).

Which tests run against a mutant (why it is affordable on two shared cores): the test
pool (``POOL``) runs once, unmutated, under ``coverage`` with one context per test — in the
pytest process and in every subprocess it starts (a ``sitecustomize`` in the shim
starts coverage there and names the running test). A mutant then runs only the tests
that executed its line, fastest first, ``-x``: the first failure kills it. A line no
test executed is a survivor without running anything ("not covered"). A line executed
only at import time (module constants, signatures) runs every test that executed
any line of its module, and every test of a pool file importing the module; a module-level constant
(``MAX_NUCLEOTIDES = 660``) also every test that ran a line of a module importing it. A module-, class-,
package- or session-scoped fixture is set up inside whichever test asks for it first: its setup gets a
context of its own, and its lines count for every test that uses the fixture (such a test, run alone, pays
for the setup: its budget includes it). A forked child (``os.fork``, multiprocessing's fork workers) keeps
the parent's tracer and test context and is saved when it leaves by ``os._exit``, so code only a child runs
is covered too (seed 7333: ``reference.py``'s ``_aligned_beside`` child was "not covered").

A line whose every mutant is provably equivalent (a chunk size far under SQLite's limit, a probe whose value
is never used) carries ``# pragma: no mutate <reason>`` (mutmut's convention): no site starting on it is
drawn, so the sample and the site count leave it out; the results list every such line with its reason
(``pragma_no_mutate``). Never for a mutant that is merely harmless: that gets a test.

Timeouts (why a timeout is not simply a kill): a mutant whose tests run past
``--timeout-factor`` times their unmutated time (at least 120 s), or one test of which
pytest-timeout stops, may be a hang the mutation caused — or only a machine whose load
went from 1 to 15 since the coverage run. So a timeout is re-run once with
``--retry-factor`` times the budget; if it finishes, its result counts (killed or
survived); if it hangs again, the unmutated tests run with that same budget: they pass
in it → a hang the mutation caused ("timeout", a kill, as in mutmut); they do not →
"timeout-unresolved", counted neither as a kill nor in the kill rate, and reported
apart (``status_counts``; ``kill_rate_if_unresolved_survived`` is the rate with them as
survivors).

The mutants are a seeded uniform sample of every site in scope, run in random order,
so a run stopped by ``--max-minutes`` is still an unbiased sample; the kill rate is
reported with a 95 % Wilson interval.

Needs ``coverage`` (in the dev extra: ``pip install -e ".[dev]"``)::

    nice -n 10 .venv/bin/python benchmarks/bench_mutation.py --sample 150 --seed 0 --max-minutes 60 \
        --out benchmarks/mutation-results.json
    .venv/bin/python benchmarks/bench_mutation.py --modules storage/db/check.py --sample 0   # every site of one module
    # two workers over one sample: the second takes it from the far end, reusing the first's coverage run
    ... --keep-coverage /tmp/cov ...;  ... --reverse --coverage-from /tmp/cov --out w2.json ...
    .venv/bin/python benchmarks/bench_mutation.py --merge w1.json w2.json --out benchmarks/mutation-results.json
    # does a new test kill an old survivor? (MODULE:INDEX from the results file)
    .venv/bin/python benchmarks/bench_mutation.py --mutant storage/db/runs.py:42 --pool tests/test_db.py
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tokenize
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: what is mutated: every module under these folders, less generated or test-only code
SCOPE: tuple[str, ...] = ("storage", "workflows/export")
EXCLUDE = ("storage/synth/", "storage/db/migrations/")
#: the tests drawn from: those written against storage, the database, the readers, the data promises and the
#: exports. Left out to keep the coverage run affordable on two shared cores (it ran 20 min for 50 tests under
#: load 8 with them): the hostile-corpus walk and tampered-bundle cases (each a dozen CLI runs), the demo, the TUI,
#: batch/Ray, encoders and discovery science. A mutant only they would kill counts as a survivor: the rate errs low.
POOL: tuple[str, ...] = (
        "tests/test_bundle.py", "tests/test_data_boundaries.py", "tests/test_data_promises.py", "tests/test_db.py",
        "tests/test_db_cli.py", "tests/test_db_processes.py", "tests/test_evidence.py", "tests/test_export.py",
        "tests/test_export_db.py", "tests/test_export_golden.py", "tests/test_export_publish.py",
        "tests/test_export_registry.py", "tests/test_export_safety.py", "tests/test_progress.py",
        "tests/test_proposals.py", "tests/test_readers.py", "tests/test_splits.py", "tests/test_storage_parts.py",
        "tests/test_validation.py")
#: ``--area discovery`` (issue 11): every module of ``discovery/`` with the tests written against it: naming,
#: search and index, clustering, proposals and their evidence, metrics, the barcode-gap verdict and the image
#: classifier (``test_multimodal`` trains real encoders: about two minutes a run under load, paid only by the
#: mutants of lines it alone reaches). Left out: the real-data test (it needs ../shared and ten minutes a
#: mutant), the tampered-bundle CLI cases (four minutes of subprocesses, guarding storage/bundle.py first) and
#: the Ray executors; a mutant only they would kill counts as a survivor, so the rate errs low.
DISCOVERY_SCOPE = ("discovery",)
DISCOVERY_POOL = ("tests/test_naming.py", "tests/test_naming_reasons.py", "tests/test_naming_simulation.py",
                  "tests/test_naming_parts.py", "tests/test_discovery_engine.py", "tests/test_discovery_edges.py",
                  "tests/test_reference_build.py",
                  "tests/test_reference.py", "tests/test_reference_parts.py", "tests/test_discovery_parts.py",
                  "tests/test_index_parts.py",
                  "tests/test_clustering.py", "tests/test_clustering_parts.py", "tests/test_proposals.py",
                  "tests/test_proposal_engine_evidence.py", "tests/test_evidence.py",
                  "tests/test_triage_clustering.py", "tests/test_metrics.py", "tests/test_metrics_models.py",
                  "tests/test_barcode_gap.py", "tests/test_multimodal_parts.py", "tests/test_multimodal.py",
                  "tests/test_discovery_cli.py",
                  # the reference audit's and the homology null's own tests (seed 7333: three survivors they kill)
                  "tests/test_audit.py", "tests/test_homology.py")
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
    #: killed | timeout (a hang the mutation caused: killed) | survived | not covered (survived) |
    #: timeout-unresolved (hung even with the larger budget, and so did the unmutated tests: not judged) | error
    status: str = "pending"
    seconds: float = 0.0
    tests: int = 0  # how many tests ran against it
    killed_by: str = ""


def _is_docstring(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    return isinstance(parent, ast.Expr) and isinstance(parent.value, ast.Constant) and \
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


#: a line whose every mutant is provably equivalent carries this comment and a short reason after it
#: (mutmut's convention); no site whose node starts on that line is drawn. Listed with their reasons in
#: RESULTS-safety.md; never for a "harmless" mutant (those get a test).
PRAGMA = "# pragma: no mutate"


def pragma_lines(source: str) -> dict[int, str]:
    """line -> the reason written after ``# pragma: no mutate`` on it (the comment is required to give one)."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.string.startswith(PRAGMA):
            out[tok.start[0]] = tok.string[len(PRAGMA):].strip(" :;-—")
    return out


def _order(tree: ast.AST, parents: dict[ast.AST, ast.AST],
           skip: frozenset[int] = frozenset()) -> list[tuple[ast.AST, str, str]]:
    """(node, kind, description) of every mutation site, in ``ast.walk`` order (stable for a source); nodes
    starting on a ``skip`` line (:func:`pragma_lines`) are no sites."""
    out: list[tuple[ast.AST, str, str]] = []
    for node in ast.walk(tree):
        if _in_annotation(node, parents) or getattr(node, "lineno", None) in skip:
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
    return [(getattr(node, "lineno", 0), kind, desc)
            for node, kind, desc in _order(*_parse(source), skip=frozenset(pragma_lines(source)))]


def import_time_lines(source: str) -> set[int]:
    """Lines that run when the module is imported, not when a function is called: module and class bodies,
    decorators, and a def's header (its defaults). Which test "executed" such a line is an accident of import
    order (the first test to import the module, or a CLI subprocess), so their tests are those of the module."""
    out: set[int] = set()

    def header(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        for d in node.decorator_list:
            out.update(range(d.lineno, (d.end_lineno or d.lineno) + 1))
        out.update(range(node.lineno, node.body[0].lineno))

    def body(stmts: list[ast.stmt]) -> None:
        for st in stmts:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                header(st)
            elif isinstance(st, ast.ClassDef):
                header(st)
                body(st.body)
            else:
                out.update(range(st.lineno, (st.end_lineno or st.lineno) + 1))

    body(ast.parse(source).body)
    return out


class _Apply:
    """Apply the ``target``-th site of :func:`sites` to a fresh parse of ``source``."""

    def __init__(self, source: str, target: int) -> None:
        self.target = target
        self.tree, self.parents = _parse(source)
        skip = frozenset(pragma_lines(source))
        self.order = [(node, kind) for node, kind, _ in _order(self.tree, self.parents, skip)]

    def mutated_source(self) -> str:
        node, kind = self.order[self.target]
        # each kind names one node type (see _order); the isinstance checks tell the type checker which
        if kind.startswith("compare:") and isinstance(node, ast.Compare):
            i = int(kind.split(":")[1])
            node.ops[i] = CMP_SWAP[type(node.ops[i])]()
        elif kind == "boolop" and isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif kind == "not" and isinstance(node, ast.UnaryOp):
            self._replace(node, node.operand)
        elif kind == "bool" and isinstance(node, ast.Constant):
            node.value = not node.value
        elif kind == "int" and isinstance(node, ast.Constant) and isinstance(node.value, int):
            node.value = node.value + 1
        elif kind == "binop" and isinstance(node, ast.BinOp):
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        elif kind == "return" and isinstance(node, ast.Return):
            node.value = ast.Constant(None)
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



SITECUSTOMIZE = """\
# written by benchmarks/bench_mutation.py: coverage in every process, one context per test
import os
if os.environ.get("COVERAGE_PROCESS_START"):
    import coverage
    _cov = coverage.process_startup() or coverage.Coverage.current()  # coverage's own .pth may have started it
    if _cov is not None and os.environ.get("BD_MUT_CONTEXT"):
        _cov.switch_context(os.environ["BD_MUT_CONTEXT"])

    def _bd_mut_forked_child() -> None:
        # a forked child (os.fork, multiprocessing's fork workers) keeps the parent's tracer and context, but leaves
        # by os._exit, which skips coverage's atexit save: save first (coverage starts a file of the child's own)
        cov = coverage.Coverage.current()
        if cov is None:
            return
        leave = os._exit

        def _exit(code: int) -> None:
            try:
                cov.stop()
                cov.save()
            except Exception:
                pass
            leave(code)

        os._exit = _exit

    os.register_at_fork(after_in_child=_bd_mut_forked_child)
"""
PLUGIN = """\
# written by benchmarks/bench_mutation.py: names the running test for coverage (here and in subprocesses), and
# gives a module-, class-, package- or session-scoped fixture's setup a context of its own ("fixture:<id>") with
# the tests that use it, so its lines count for every one of them (they run in whichever test comes first)
import os, time
import pytest

_names = []  # the context stack: the running test, then any broader fixture being set up inside it


def _cov():
    try:
        import coverage
        return coverage.Coverage.current()
    except ImportError:
        return None


def _switch(name):
    if name:
        os.environ["BD_MUT_CONTEXT"] = name
    else:
        os.environ.pop("BD_MUT_CONTEXT", None)
    cov = _cov()
    if cov is not None:
        cov.switch_context(name)


def _fixture_id(fixturedef):
    return f"fixture:{fixturedef.baseid}::{fixturedef.argname}"


def _log(row):
    if os.environ.get("BD_MUT_FIXTURES"):
        with open(os.environ["BD_MUT_FIXTURES"], "a") as fh:
            fh.write("\\t".join(row) + "\\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.scope == "function" or not _names:
        yield
        return
    name = _fixture_id(fixturedef)
    _names.append(name)
    _switch(name)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _log(["setup", name, f"{time.perf_counter() - t0:.3f}", _names[0]])
        _names.pop()
        _switch(_names[-1])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _names[:] = [item.nodeid]
    _switch(item.nodeid)
    for argname in item.fixturenames:
        defs = getattr(item, "_fixtureinfo", None) and item._fixtureinfo.name2fixturedefs.get(argname)
        if defs and defs[-1].scope != "function":
            _log(["uses", item.nodeid, _fixture_id(defs[-1])])
    t0 = time.perf_counter()
    yield
    with open(os.environ["BD_MUT_TIMES"], "a") as fh:
        fh.write(f"{item.nodeid}\\t{time.perf_counter() - t0:.3f}\\n")
    _names.clear()
    _switch("")
"""


def in_scope(modules: list[str] | None) -> list[str]:
    if modules:
        return modules
    found = []
    for folder in SCOPE:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if not rel.startswith(EXCLUDE) and path.name != "__init__.py":
                found.append(rel)
    return found


def make_copy(work: Path) -> tuple[Path, Path]:
    """Tracked and untracked-but-not-ignored files of the working tree, plus a shim importing the copy.

    Everything is readable by every user: the permission tests run the CLI as ``nobody``, which must import
    the mutated copy too (an unreadable shim would silently fall back to the editable install)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    work.chmod(0o755)
    tree = work / "tree"
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    shim = work / "shim"
    (shim / "biodiscover").mkdir(parents=True)
    (shim / "biodiscover" / "__init__.py").write_text("")
    for area in ("cli", "discovery", "encoders", "storage", "tui", "workflows"):
        (shim / "biodiscover" / area).symlink_to(tree / area)
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (shim / "bd_mut_plugin.py").write_text(PLUGIN)
    cov = work / "cov"
    cov.mkdir()
    cov.chmod(0o777)
    for d in [work, *work.rglob("*")]:
        if d.is_dir() and not d.is_symlink():
            d.chmod(0o777 if d == cov else 0o755)
    return tree, shim


def env_for(work: Path, shim: Path, coverage_on: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(shim), "PYTHONDONTWRITEBYTECODE": "1",
           "BD_MUT_TIMES": str(work / "cov" / "times.tsv"), "BD_MUT_FIXTURES": str(work / "cov" / "fixtures.tsv")}
    env.pop("BD_MUT_CONTEXT", None)
    if coverage_on:
        env["COVERAGE_PROCESS_START"] = str(work / "coveragerc")
    else:
        env.pop("COVERAGE_PROCESS_START", None)
    return env


def check_shim(tree: Path, shim: Path, env: dict[str, str]) -> None:
    """Every process, also one without privileges, must import the copy: else a 'survivor' means nothing."""
    code = "import biodiscover.storage.db.check as m, biodiscover.workflows.export as e; print(m.__file__, e.__file__)"
    prefixes: list[list[str]] = [[]]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        prefixes.append(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    for prefix in prefixes:
        res = subprocess.run([*prefix, sys.executable, "-c", code], cwd=tree, env=env, capture_output=True,
                             text=True)
        if res.returncode != 0 or not all(f.startswith(str(shim)) for f in res.stdout.split()):
            raise SystemExit(f"the shim is not what {prefix or 'a plain process'} imports: {res.stdout}{res.stderr}")


def pytest_cmd(tests: list[str], per_test_s: float = 900) -> list[str]:
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "bd_mut_plugin",
            "--timeout", str(int(per_test_s)), *tests]


def coverage_run(work: Path, tree: Path, shim: Path, pool: list[str], scope: list[str]) -> tuple[
        dict[str, dict[int, set[str]]], dict[str, float], list[str]]:
    """Run the pool once, unmutated, under coverage: (module -> line -> test ids, test id -> seconds, tests that
    failed unmutated and are therefore never used; more than five such failures abort the run)."""
    import coverage

    include = [f"{root}/{folder}/*" for folder in SCOPE for root in (tree, f"{shim}/biodiscover")]
    (work / "coveragerc").write_text("[run]\nparallel = True\nbranch = False\n"
                                     f"data_file = {work / 'cov' / '.coverage'}\n"
                                     f"include =\n    " + "\n    ".join(include) + "\n")
    env = env_for(work, shim, coverage_on=True)
    cmd = [c for c in pytest_cmd(pool) if c != "-x"]
    res = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    failed = {ln.split(" ")[1] for ln in res.stdout.splitlines() if ln.startswith(("FAILED ", "ERROR "))}
    if res.returncode not in (0, 1) or len(failed) > 5:
        raise SystemExit(f"the pool fails without any mutation (rc {res.returncode}): {failed or res.stdout[-3000:]}")
    cov = coverage.Coverage(data_file=str(work / "cov" / ".coverage"), config_file=str(work / "coveragerc"))
    cov.combine([str(work / "cov")], keep=False)
    cov.get_data().write()
    (work / "cov" / "failed.json").write_text(json.dumps(sorted(failed)))
    return read_coverage(work / "cov", scope)


def read_coverage(cov_dir: Path, scope: list[str]) -> tuple[dict[str, dict[int, set[str]]], dict[str, float],
                                                            list[str]]:
    """The combined ``.coverage``, ``times.tsv`` and ``failed.json`` of a coverage run (also another run's,
    copied: paths are mapped by their ``/shim/biodiscover/`` or ``/tree/`` part)."""
    import coverage

    data = coverage.CoverageData(basename=str(cov_dir / ".coverage"))
    data.read()
    failed = set(json.loads((cov_dir / "failed.json").read_text())) if (cov_dir / "failed.json").exists() else set()
    users, extra = fixture_users(cov_dir / "fixtures.tsv")
    lines: dict[str, dict[int, set[str]]] = {m: {} for m in scope}
    for fname in data.measured_files():
        rel = next((fname.split(marker, 1)[1] for marker in ("/shim/biodiscover/", "/tree/") if marker in fname),
                   None)
        if rel not in lines:
            continue
        for line, contexts in data.contexts_by_lineno(fname).items():
            lines[rel].setdefault(line, set()).update(
                t for ctx in contexts for t in (users.get(ctx, set()) if ctx.startswith("fixture:") else {ctx}))
    times: dict[str, float] = {}
    for row in (cov_dir / "times.tsv").read_text().splitlines():
        test, secs = row.rsplit("\t", 1)
        if test not in failed:  # a test that fails unmutated (a flake on a starved machine) can kill nothing
            times[test] = float(secs) + extra.get(test, 0.0)
    return lines, times, sorted(failed)


def fixture_users(path: Path) -> tuple[dict[str, set[str]], dict[str, float]]:
    """From the plugin's ``fixtures.tsv``: (``fixture:<id>`` context -> the tests using that fixture, test -> the
    setup seconds of the broader fixtures it uses but did not set up itself).

    Why: a module-scoped fixture runs inside the first test that asks for it, so coverage saw its lines only
    there; a mutant of that code must also run the later tests that read what it made (seeds 4242, 7333), and
    such a test run alone pays for the setup, which its budget must hold. An older coverage folder without the
    file: no fixture contexts, nothing added."""
    users: dict[str, set[str]] = {}
    setup: dict[str, tuple[float, str]] = {}
    if path.exists():
        for row in path.read_text().splitlines():
            kind, *rest = row.split("\t")
            if kind == "uses" and len(rest) == 2:
                users.setdefault(rest[1], set()).add(rest[0])
            elif kind == "setup" and len(rest) == 3:  # the test it ran in uses it (also by getfixturevalue)
                setup[rest[0]] = max(setup.get(rest[0], (0.0, "")), (float(rest[1]), rest[2]))
                users.setdefault(rest[0], set()).add(rest[2])
    extra: dict[str, float] = {}
    for name, tests in users.items():
        secs, first = setup.get(name, (0.0, ""))
        for test in tests - {first}:
            extra[test] = extra.get(test, 0.0) + secs
    return users, extra


def select_tests(module_lines: dict[int, set[str]], line: int, times: dict[str, float],
                 import_time: bool = False) -> list[str]:
    """The tests that executed ``line``; for an import-time line (:func:`import_time_lines`) that ran, every
    test that executed any line of the module."""
    tests = {t for t in module_lines.get(line, set()) if t in times}
    if module_lines.get(line) and (import_time or not tests):  # not tests: only "" (collection / import time)
        tests = {t for ctx in module_lines.values() for t in ctx if t in times}
    return sorted(tests, key=lambda t: (times[t], t))


def module_names(source: str) -> dict[int, set[str]]:
    """line -> the names a module-level assignment on it binds: the constants other modules may import."""
    out: dict[int, set[str]] = {}
    for st in ast.parse(source).body:
        targets = st.targets if isinstance(st, ast.Assign) else \
            [st.target] if isinstance(st, (ast.AnnAssign, ast.AugAssign)) else []
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        for line in range(st.lineno, (st.end_lineno or st.lineno) + 1) if names else ():
            out.setdefault(line, set()).update(names)
    return out


def dotted(rel: str) -> str:
    """``storage/db/engine.py`` -> ``biodiscover.storage.db.engine`` (setuptools' package-dir mapping)."""
    return "biodiscover." + rel.removesuffix(".py").replace("/", ".")


def imports_name(source: str, rel: str | None, target: str, names: set[str]) -> bool:
    """Does this source import one of ``names`` from the module ``target`` (dotted), directly (``from target
    import NAME``, ``*``) or through the module (``from package import module`` then ``module.NAME``)?
    ``rel``: the source's path in the repository, for relative imports (None: a test file, absolute only)."""
    package = dotted(rel).split(".")[:-1] if rel else []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            anchor = package[:len(package) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        if base == target and any(a.name in names or a.name == "*" for a in node.names):
            return True
        if any(f"{base}.{a.name}" == target for a in node.names) and any(
                isinstance(n, ast.Attribute) and n.attr in names for n in ast.walk(tree)):
            return True
    return False


def imports_module(source: str, target: str) -> bool:
    """Does this (test) source import the module ``target`` (dotted) or anything from it? Absolute imports."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name == target or a.name.startswith(target + ".")
                                                for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and not node.level:
            base = node.module or ""
            if base == target or any(f"{base}.{a.name}" == target for a in node.names):
                return True
    return False


def importer_tests(module: str, line: int, sources: dict[str, str], lines: dict[str, dict[int, set[str]]],
                   times: dict[str, float], test_sources: dict[str, str]) -> set[str]:
    """For an import-time line, the tests beyond those that ran a line of its module: every test of a pool file
    that imports the module (a test may use only what the class body made, e.g. a frozen dataclass's
    ``__setattr__``, and so run no line of the module: seed 6151's ``evidence.py:91``), and, for a module-level
    constant, every test that ran a line of an in-scope module importing the name (``records.py:94``,
    ``MAX_NUCLEOTIDES``, is read by ``validation.py``)."""
    target, found = dotted(module), set()
    for test_file, src in test_sources.items():
        if imports_module(src, target):
            found |= {t for t in times if t.split("::", 1)[0] == test_file}
    names = module_names(sources[module]).get(line, set())
    for other, src in sources.items():
        if names and other != module and imports_name(src, other, target, names):
            found |= {t for ctx in lines.get(other, {}).values() for t in ctx if t in times}
    return found


#: how pytest-timeout reports a test it stopped: "Failed: Timeout (>60.0s) from pytest-timeout." (2.x, signal
#: method), "Failed: Timeout >60.0s" (older), a "+++++ Timeout +++++" banner (thread method)
PER_TEST_TIMEOUT_MARKS = ("from pytest-timeout", "Failed: Timeout >", "+++++ Timeout +++++")


#: pytest -q's last line once every selected test has run and none failed: "10 passed in 18.23s", "3 passed,
#: 1 skipped in 2.01s", "1 skipped in 0.40s"
PYTEST_SUMMARY = re.compile(r"^=*\s*\d+ (passed|skipped)\b.* in [\d.]+s", re.MULTILINE)


def run_mutant(tree: Path, env: dict[str, str], tests: list[str], limit: float,
               per_test_s: float = 900) -> tuple[str, float, str]:
    """One pytest run: ``killed`` | ``survived`` | ``timeout`` (the whole run past ``limit``, or a test stopped by
    pytest-timeout at ``per_test_s``: either may be load, see :func:`judge`) | ``error``."""
    t0 = time.perf_counter()
    try:
        res = subprocess.run(pytest_cmd(tests, per_test_s), cwd=tree, env=env, capture_output=True, text=True,
                             timeout=limit)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, f"timeout: the run passed {limit:.0f}s"
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    failed = [ln.split(" ")[1] for ln in lines]
    if res.returncode != 0 and any(mark in res.stdout for mark in PER_TEST_TIMEOUT_MARKS):
        stopped = next((ln.split(" ")[1] for ln in lines if "Timeout" in ln), failed[0] if failed else "")
        return "timeout", time.perf_counter() - t0, f"timeout: {stopped} passed {per_test_s:.0f}s".replace("  ", " ")
    status = "survived" if res.returncode == 0 else "killed" if res.returncode in (1, 2) else "error"
    if status == "error" and failed:  # a test module that no longer imports (pytest exits 3/4): detected
        status = "killed"
    if status == "survived" and not PYTEST_SUMMARY.search(res.stdout):
        # exit 0 without pytest's summary: the test process itself left mid-run. Seed 2606's reference.py:124
        # (``pid == 0`` -> ``!=`` in the forked aligner) made pytest run the child's branch and ``os._exit(0)``
        return "killed", time.perf_counter() - t0, "the test process exited 0 before pytest's summary: " + \
            portable(res.stdout[-300:])
    return status, time.perf_counter() - t0, failed[0] if failed else portable(res.stdout[-2000:])


def portable(text: str) -> str:
    """``text`` without this machine's paths (the venv, the checkout, the mutants' scratch tree): the results
    are committed."""
    text = text.replace(sys.prefix, "<venv>").replace(str(REPO), "<repo>")
    return re.sub(r"\S*/bd-mutation-[^/\s]+/", "<work>/", text)


Runner = Callable[[float, float], tuple[str, float, str]]


def judge(mutated: Runner, unmutated: Runner, limit: float, per_test_s: float,
          retry_factor: float = 3.0) -> tuple[str, float, str]:
    """The status of one mutant, with a timeout told apart from load (see the module docstring).

    ``mutated(limit, per_test_s)`` runs the tests on the mutant, ``unmutated(...)`` on the original source; both
    return :func:`run_mutant`'s triple. Seconds are the total spent, checks included."""
    status, secs, detail = mutated(limit, per_test_s)
    if status != "timeout":
        return status, secs, detail
    big, big_test = limit * retry_factor, per_test_s * retry_factor
    status2, secs2, detail2 = mutated(big, big_test)
    spent = secs + secs2
    if status2 != "timeout":  # the first budget was too short for this machine now: the re-run's result counts
        return status2, spent, f"{detail2} (re-run after a {detail})"
    base_status, base_secs, base_detail = unmutated(big, big_test)
    spent += base_secs
    if base_status == "survived":
        return "timeout", spent, (f"timeout (hang): again with {big:.0f}s, while the unmutated tests pass in "
                                  f"{base_secs:.0f}s now")
    return "timeout-unresolved", spent, (f"timeout-unresolved: hung with {big:.0f}s, and the unmutated tests gave "
                                         f"{base_status} ({base_detail[:80]}) in {base_secs:.0f}s")


def wilson(k: int, n: int) -> tuple[float, float]:
    """The kill rate's 95 % interval (``discovery.metrics.wilson_interval``), to four places."""
    from biodiscover.discovery.metrics import wilson_interval

    lo, hi = wilson_interval(k, n)
    return (round(lo, 4), round(hi, 4))


def summarise(results: list[Mutant], total_sites: int, args: argparse.Namespace, stopped_early: bool,
              extra: dict[str, object]) -> dict[str, object]:
    """Counts and the kill rate. ``mutants`` = the judged ones: neither errors nor unresolved timeouts (load, not
    the mutation, may have stopped those); ``kill_rate_if_unresolved_survived`` counts those as survivors."""
    done = [m for m in results if m.status not in ("error", "timeout-unresolved")]
    unresolved = sum(m.status == "timeout-unresolved" for m in results)
    killed = sum(m.status in ("killed", "timeout") for m in done)
    per_module: dict[str, dict[str, int]] = {}
    for m in results:
        row = per_module.setdefault(m.module, {"mutants": 0, "killed": 0})
        row["mutants"] += m in done
        row["killed"] += m.status in ("killed", "timeout")
        if m.status == "timeout-unresolved":
            row["timeout_unresolved"] = row.get("timeout_unresolved", 0) + 1
    return {"sites_in_scope": total_sites, "sampled": args.sample, "seed": args.seed, "mutants": len(done),
            "errors": sum(m.status == "error" for m in results), "timeout_unresolved": unresolved, "killed": killed,
            "kill_rate": round(killed / max(1, len(done)), 4), "kill_rate_95ci": wilson(killed, len(done)),
            "kill_rate_if_unresolved_survived": round(killed / max(1, len(done) + unresolved), 4),
            "status_counts": dict(sorted(Counter(m.status for m in results).items())),
            "not_covered": sum(m.status == "not covered" for m in done), "stopped_early": stopped_early,
            "per_module": per_module, **extra,
            "survivors": [asdict(m) for m in results if m.status in ("survived", "not covered")],
            "all": [asdict(m) for m in results]}


def _runners(tree: Path, env: dict[str, str], tests: list[str], module: str, source: str,
             index: int) -> tuple[Runner, Runner]:
    """(the tests on the mutant, the tests on the original source) for :func:`judge`; the source is restored
    after every run, so a stopped run leaves the copy unmutated."""
    path = tree / module
    mutated = _Apply(source, index).mutated_source()

    def on_mutant(limit: float, per_test_s: float) -> tuple[str, float, str]:
        try:
            path.write_text(mutated)
            return run_mutant(tree, env, tests, limit, per_test_s)
        finally:
            path.write_text(source)

    def unmutated(limit: float, per_test_s: float) -> tuple[str, float, str]:
        return run_mutant(tree, env, tests, limit, per_test_s)

    return on_mutant, unmutated


def rerun(mutants: list[str], tests: list[str], retry_factor: float = 3.0) -> None:
    """Re-run chosen mutants (``module:index`` as in the results file) against ``tests``, on a fresh copy."""
    work = Path(tempfile.mkdtemp(prefix="bd-mutation-"))
    tree, shim = make_copy(work)
    env = env_for(work, shim, coverage_on=False)
    check_shim(tree, shim, env)
    for spec in mutants:
        module, index = spec.rsplit(":", 1)
        source = (tree / module).read_text()
        line, kind, desc = sites(source)[int(index)]
        runs = _runners(tree, env, tests, module, source, int(index))
        status, secs, detail = judge(*runs, limit=3600, per_test_s=900, retry_factor=retry_factor)
        print(f"{status:>8} {module}:{line} {kind} ({desc}) {secs:.0f}s {detail[:100]}", flush=True)
    shutil.rmtree(work, ignore_errors=True)


def merge_results(files: list[Path], out: Path) -> None:
    """Join workers' results over the same sample (one from each end): each mutant once, summary recomputed."""
    docs = [json.loads(f.read_text()) for f in files]
    seen: dict[tuple[str, int], Mutant] = {}
    for doc in docs:
        for row in doc["all"]:
            m = Mutant(**row)
            if m.status == "error" and m.killed_by.startswith("tests/"):  # as run_mutant now classifies it
                m.status, m.killed_by = "killed", m.killed_by + " (does not import)"
            seen.setdefault((m.module, m.index), m)
    args = argparse.Namespace(sample=docs[0]["sampled"], seed=docs[0]["seed"])
    extra = {k: docs[0][k] for k in ("scope", "pool", "pool_tests", "failed_unmutated", "coverage_run_s",
                                      "pragma_no_mutate")
             if k in docs[0]}
    extra["workers"] = [{"file": f.name, "mutants": len(d["all"]), "wall_s": d.get("wall_s")} for f, d in
                        zip(files, docs)]
    summary = summarise(list(seen.values()), docs[0]["sites_in_scope"], args,
                        any(d.get("stopped_early") for d in docs), extra)
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("sites_in_scope", "mutants", "errors", "timeout_unresolved", "killed",
                                              "kill_rate", "kill_rate_95ci", "not_covered", "status_counts")},
                     indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", nargs="*", help="modules to mutate (paths in the repo; default: all in scope)")
    ap.add_argument("--sample", type=int, default=150, help="seeded uniform sample of sites (0 = every site)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop starting mutants after this (0 = no limit)")
    ap.add_argument("--timeout-factor", type=float, default=4.0)
    ap.add_argument("--retry-factor", type=float, default=3.0,
                    help="a timeout is re-run once with this many times the budget before it is judged")
    ap.add_argument("--coverage-from", type=Path, help="a --keep-coverage folder of a run on the same code")
    ap.add_argument("--keep-coverage", type=Path, help="copy the coverage run's data here for --coverage-from")
    ap.add_argument("--reverse", action="store_true", help="take the sample from its far end (a second worker)")
    ap.add_argument("--start", type=int, default=0, help="skip this many of the sample (a third worker: the middle)")
    ap.add_argument("--merge", nargs="*", type=Path, help="only merge these result files (workers' halves) into --out")
    ap.add_argument("--mutant", nargs="*", help="only re-run these MODULE:INDEX mutants against --pool (no coverage "
                    "run): does a new test kill an old survivor?")
    ap.add_argument("--pool", nargs="*", help="test files or ids to draw from (default: POOL)")
    ap.add_argument("--area", choices=("data", "discovery"), default="data",
                    help="data: storage/ and workflows/export/ (issue 12); discovery: discovery/ (issue 11)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "mutation-results.json")
    args = ap.parse_args()
    if args.area == "discovery":  # one tool, two areas: the module constants the helpers read
        global SCOPE, POOL
        SCOPE, POOL = DISCOVERY_SCOPE, DISCOVERY_POOL
    if args.merge:
        merge_results(args.merge, args.out)
        return
    if args.mutant:
        rerun(args.mutant, args.pool or list(POOL), args.retry_factor)
        return
    t_start = time.perf_counter()
    scope = in_scope(args.modules)
    work = Path(tempfile.mkdtemp(prefix="bd-mutation-"))
    tree, shim = make_copy(work)
    print(f"copy of the working tree in {tree}", flush=True)
    check_shim(tree, shim, env_for(work, shim, coverage_on=False))
    pool = args.pool or list(POOL)
    every_module = sorted(set(in_scope(None)) | set(scope))  # a constant's importers may lie outside --modules
    if args.coverage_from:  # another run's coverage of the same tree: a second worker skips the coverage run
        lines, times, failed_unmutated = read_coverage(args.coverage_from, every_module)
    else:
        lines, times, failed_unmutated = coverage_run(work, tree, shim, pool, every_module)
        if args.keep_coverage:
            shutil.copytree(work / "cov", args.keep_coverage, dirs_exist_ok=True)
    t_cov = time.perf_counter() - t_start
    print(f"coverage run: {len(times)} tests in {t_cov:.0f}s", flush=True)
    every: list[tuple[str, int]] = []
    sources: dict[str, str] = {}
    import_lines: dict[str, set[int]] = {}
    for module in every_module:
        sources[module] = (tree / module).read_text()
    test_sources = {f: (tree / f).read_text() for f in sorted({p.split("::", 1)[0] for p in pool})
                    if f.endswith(".py") and (tree / f).is_file()}
    for module in scope:
        import_lines[module] = import_time_lines(sources[module])
        every += [(module, i) for i in range(len(sites(sources[module])))]
    rng = random.Random(args.seed)
    chosen = rng.sample(every, min(args.sample, len(every))) if args.sample else list(every)
    if args.reverse:  # a second worker takes the same sample from the other end; merge_results() joins them
        chosen.reverse()
    chosen = chosen[args.start:]
    env = env_for(work, shim, coverage_on=False)
    results: list[Mutant] = []
    stopped_early = False
    extra = {"scope": scope if args.modules else list(SCOPE), "pool": pool, "pool_tests": len(times),
             "failed_unmutated": failed_unmutated, "coverage_run_s": round(t_cov),
             "pragma_no_mutate": [{"module": m, "line": ln, "reason": why} for m in scope
                                  for ln, why in sorted(pragma_lines(sources[m]).items())]}
    for module, index in chosen:
        if args.max_minutes and time.perf_counter() - t_start > args.max_minutes * 60:
            stopped_early = True
            break
        line, kind, desc = sites(sources[module])[index]
        m = Mutant(module, index, line, kind, sources[module].splitlines()[line - 1].strip(), desc)
        tests = select_tests(lines[module], line, times, line in import_lines[module])
        if tests and line in import_lines[module]:  # a constant: also the tests of whoever imports it
            more = importer_tests(module, line, sources, lines, times, test_sources) - set(tests)
            tests = sorted({*tests, *more}, key=lambda t: (times[t], t))
        m.tests = len(tests)
        if not tests:
            m.status = "not covered"
        else:
            limit = max(120.0, args.timeout_factor * sum(times[t] for t in tests) + 30)
            # one test stuck far past its unmutated time: pytest-timeout stops it; judge() tells a hang from load
            per_test = max(60.0, args.timeout_factor * max(times[t] for t in tests))
            runs = _runners(tree, env, tests, module, sources[module], index)
            m.status, m.seconds, m.killed_by = judge(*runs, limit=limit, per_test_s=per_test,
                                                     retry_factor=args.retry_factor)
        results.append(m)
        print(f"{len(results):>4} {m.status:>11} {module}:{line} {kind} ({desc}) {m.tests} tests {m.seconds:.0f}s "
              f"{m.killed_by[:90]}", flush=True)
        args.out.write_text(json.dumps(summarise(results, len(every), args, False, extra), indent=2))
    summary = summarise(results, len(every), args, stopped_early,
                        {**extra, "wall_s": round(time.perf_counter() - t_start)})
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("sites_in_scope", "mutants", "errors", "timeout_unresolved", "killed",
                                              "kill_rate", "kill_rate_95ci", "kill_rate_if_unresolved_survived",
                                              "not_covered", "status_counts", "stopped_early")}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
