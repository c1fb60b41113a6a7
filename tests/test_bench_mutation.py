"""benchmarks/bench_mutation.py tells a hang the mutation caused from a machine that is only slow now.

Under load 10-17 a mutant's tests could pass their budget without any hang and were counted as
kills: the kill rate erred high. A timeout is now re-run with a larger budget and, if it hangs again,
checked against the unmutated tests in that budget; only then is it a kill ("timeout"), else it is
"timeout-unresolved" and left out of the rate (RESULTS-safety.md). The pytest runs here are real
(a tiny tree of its own, so they take seconds); the decision is checked with runners that play
back what a loaded machine returns, which no test can make happen on demand.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("bench_mutation")


def _tiny_tree(bench: ModuleType, tmp_path: Path, tests: str) -> tuple[Path, dict[str, str]]:
    """A tree with one test file, ``tests/test_t.py``, and the environment the tool runs a mutant's tests in."""
    tree, shim = tmp_path / "tree", tmp_path / "shim"
    (tree / "tests").mkdir(parents=True)
    shim.mkdir()
    (shim / "bd_mut_plugin.py").write_text(bench.PLUGIN)
    (tree / "tests" / "test_t.py").write_text(tests)
    return tree, {**os.environ, "PYTHONPATH": str(shim), "BD_MUT_TIMES": str(tmp_path / "times.tsv")}


def test_a_test_stopped_by_pytest_timeout_is_a_timeout_not_a_kill_and_a_failure_is_a_kill(bench, tmp_path: Path
                                                                                             ) -> None:
    tree, env = _tiny_tree(bench, tmp_path, "import time\n"
                                             "def test_sleeps():\n    time.sleep(60)\n"
                                             "def test_fails():\n    assert 1 + 1 == 3\n")
    status, secs, detail = bench.run_mutant(tree, env, ["tests/test_t.py::test_sleeps"], limit=300, per_test_s=1)
    assert status == "timeout"
    assert "tests/test_t.py::test_sleeps" in detail and "1s" in detail
    assert secs < 60  # stopped by pytest-timeout, not by sleeping out the minute
    status, _, detail = bench.run_mutant(tree, env, ["tests/test_t.py::test_fails"], limit=300, per_test_s=30)
    assert (status, detail) == ("killed", "tests/test_t.py::test_fails")


def test_a_run_whose_test_process_exits_0_before_pytests_summary_is_a_kill(bench, tmp_path: Path) -> None:
    """A mutant can make the test process itself leave with status 0 halfway (seed 2606's ``pid == 0`` ->
    ``!=`` in the forked aligner: pytest ran the child's branch and ``os._exit(0)``). Exit 0 alone said
    "survived"; a run that passes prints pytest's summary."""
    tree, env = _tiny_tree(bench, tmp_path, "import os\nimport pytest\n"
                                             "def test_passes():\n    assert True\n"
                                             "def test_skips():\n    pytest.skip('not here')\n"
                                             "def test_leaves():\n    os._exit(0)\n")
    assert bench.run_mutant(tree, env, ["tests/test_t.py::test_passes"], limit=300, per_test_s=30)[0] == "survived"
    assert bench.run_mutant(tree, env, ["tests/test_t.py::test_skips"], limit=300, per_test_s=30)[0] == "survived"
    status, _, detail = bench.run_mutant(tree, env, ["tests/test_t.py::test_passes", "tests/test_t.py::test_leaves"],
                                         limit=300, per_test_s=30)
    assert status == "killed" and detail.startswith("the test process exited 0 before pytest's summary")


class PlayBack:
    """Returns the given results in order and records the budgets it was asked to run with."""

    def __init__(self, *results: tuple[str, float, str]) -> None:
        self.results, self.budgets = list(results), []  # type: ignore[var-annotated]

    def __call__(self, limit: float, per_test_s: float) -> tuple[str, float, str]:
        self.budgets.append((limit, per_test_s))
        return self.results.pop(0)


def test_a_timeout_is_a_kill_only_if_it_hangs_again_with_three_times_the_budget_and_the_unmutated_tests_fit(
        bench) -> None:
    # a hang: again past 3x the budget, and the unmutated tests pass in it now
    mutated = PlayBack(("timeout", 120, "timeout: the run passed 120s"), ("timeout", 360, "timeout: ..."))
    unmutated = PlayBack(("survived", 40, ""))
    status, secs, detail = bench.judge(mutated, unmutated, limit=120, per_test_s=60, retry_factor=3)
    assert status == "timeout" and secs == 520 and "hang" in detail
    assert mutated.budgets == [(120, 60), (360, 180)] and unmutated.budgets == [(360, 180)]

    # load: the re-run with the larger budget finishes, and its result counts (either way)
    for second in ("survived", "killed"):
        status, secs, _ = bench.judge(PlayBack(("timeout", 120, "t"), (second, 200, "tests/x.py::t")),
                                      PlayBack(), limit=120, per_test_s=60, retry_factor=3)
        assert (status, secs) == (second, 320)

    # load again: the unmutated tests do not finish in the larger budget either: not judged
    status, _, detail = bench.judge(PlayBack(("timeout", 120, "t"), ("timeout", 360, "t")),
                                    PlayBack(("timeout", 360, "t")), limit=120, per_test_s=60, retry_factor=3)
    assert status == "timeout-unresolved" and "unmutated" in detail

    # anything but a timeout is final at once: no re-run, no check
    unused = PlayBack()
    assert bench.judge(PlayBack(("killed", 5, "tests/x.py::t")), unused, limit=120, per_test_s=60)[0] == "killed"
    assert unused.budgets == []


def test_unresolved_timeouts_are_counted_apart_and_left_out_of_the_kill_rate(bench) -> None:
    statuses = ["killed"] * 6 + ["timeout", "survived", "not covered", "timeout-unresolved", "error"]
    results = [bench.Mutant("storage/x.py", i, i + 1, "bool", "x", status=s) for i, s in enumerate(statuses)]
    args = argparse.Namespace(sample=11, seed=5)
    summary = bench.summarise(results, 100, args, False, {})
    assert summary["mutants"] == 9  # neither the error nor the unresolved timeout is judged
    assert (summary["killed"], summary["timeout_unresolved"], summary["errors"]) == (7, 1, 1)
    assert summary["kill_rate"] == round(7 / 9, 4)
    assert summary["kill_rate_if_unresolved_survived"] == round(7 / 10, 4)
    assert summary["status_counts"] == {"error": 1, "killed": 6, "not covered": 1, "survived": 1, "timeout": 1,
                                        "timeout-unresolved": 1}
    assert summary["per_module"]["storage/x.py"] == {"mutants": 9, "killed": 7, "timeout_unresolved": 1}
    assert [s["status"] for s in summary["survivors"]] == ["survived", "not covered"]


def test_results_carry_no_machine_paths(bench) -> None:
    """The results are committed: a failing run's output keeps its text but not this machine's venv, checkout
    or the mutants' scratch tree."""
    text = (f"  {sys.prefix}/lib/python3.11/site-packages/hdbscan/prediction.py:753: RuntimeWarning\n"
            f"  /tmp/bd-mutation-abc123/shim/biodiscover/discovery/multimodal.py:155: RuntimeWarning\n"
            f"  {REPO}/tests/test_x.py:3: failed")
    assert bench.portable(text) == ("  <venv>/lib/python3.11/site-packages/hdbscan/prediction.py:753: RuntimeWarning\n"
                                    "  <work>/shim/biodiscover/discovery/multimodal.py:155: RuntimeWarning\n"
                                    "  <repo>/tests/test_x.py:3: failed")


def test_an_import_time_line_runs_every_test_of_its_module_not_only_the_first_importer(bench) -> None:
    """Which test "executed" a module-level line, a class-body default or a def's default is an accident of
    import order (seed 2612: existing tests killed engine.py:51 and ingest.py:167, but the tool never ran
    them), so such a line gets every test that ran any line of the module; a function-body line only its own."""
    source = ("import os\n"
              "LIMIT = 660\n"
              "class Config:\n"
              "    timeout: int = 5000\n"
              "    def method(self,\n"
              "               flag: bool = True) -> int:\n"
              "        return 1\n"
              "@staticmethod\n"
              "def f(x,\n"
              "      backup=True):\n"
              "    def inner(y=3):\n"
              "        return y\n"
              "    return x\n")
    assert bench.import_time_lines(source) == {1, 2, 3, 4, 5, 6, 8, 9, 10}
    lines = {4: {"", "t_first"}, 7: {"t_call"}, 10: {"t_cli"}, 12: {"t_inner"}}
    times = {"t_first": 1.0, "t_call": 2.0, "t_cli": 3.0, "t_inner": 0.5}
    assert bench.select_tests(lines, 4, times, import_time=True) == ["t_inner", "t_first", "t_call", "t_cli"]
    assert bench.select_tests(lines, 7, times, import_time=False) == ["t_call"]
    assert bench.select_tests(lines, 12, times, import_time=False) == ["t_inner"]
    assert bench.select_tests(lines, 2, times, import_time=True) == []  # never ran: not covered


def test_a_line_marked_no_mutate_gives_no_site_and_its_reason_is_kept(bench) -> None:
    """``# pragma: no mutate <reason>`` takes every site starting on that line out of the draw (and only
    those), and the same index still names the same mutant when it is applied."""
    source = ("def f(ids):\n"
              "    for i in range(0, len(ids), 900):  # pragma: no mutate chunk size far under SQLite's limit\n"
              "        yield ids[i:i + 900]\n"
              "    return x == 1\n")
    assert bench.pragma_lines(source) == {2: "chunk size far under SQLite's limit"}
    found = bench.sites(source)
    assert all(line != 2 for line, _, _ in found)
    assert [(line, kind) for line, kind, _ in found] == [(4, "return"), (4, "compare:0"), (4, "int"),
                                                           (3, "binop"), (3, "int")]
    # the index skips the pragma'd sites when the mutant is applied too: site 4 is `900 -> 901` on line 3
    mutated = bench._Apply(source, 4).mutated_source()
    assert "ids[i:i + 901]" in mutated and "range(0, len(ids), 900)" in mutated


def test_a_constant_is_also_tried_against_the_tests_of_the_modules_and_test_files_that_import_it(bench) -> None:
    """``records.py:94`` (``MAX_NUCLEOTIDES``) is read by ``validation.py``: its mutant must run the tests that ran
    validation's lines, not only those of records.py; and every import-time line runs every test of a pool file
    importing the module, which may use only what a class body made (seed 6151: ``evidence.py:91``'s
    ``frozen=True``, killed by a test that runs no line of evidence.py)."""
    sources = {"storage/records.py": "MAX_NUCLEOTIDES = 660\nMIN = 200\ndef f():\n    return 1\n",
               "storage/validation.py": "from .records import MAX_NUCLEOTIDES\ndef clean(s):\n"
                                        "    return s[:MAX_NUCLEOTIDES]\n",
               "storage/db/ingest.py": "from .. import records\ndef g():\n    return records.MAX_NUCLEOTIDES\n",
               "storage/other.py": "from biodiscover.storage.records import MIN\n"}
    lines = {"storage/records.py": {1: {""}, 4: {"t_records"}},
             "storage/validation.py": {3: {"t_validation"}},
             "storage/db/ingest.py": {3: {"t_ingest"}},
             "storage/other.py": {1: {"t_other"}}}
    times = {"t_records": 1.0, "t_validation": 1.0, "t_ingest": 1.0, "t_other": 1.0,
             "tests/test_v.py::t_file": 1.0, "tests/test_w.py::t_module": 1.0, "tests/test_x.py::t_none": 1.0}
    tests = {"tests/test_v.py": "from biodiscover.storage.records import MAX_NUCLEOTIDES\n",
             "tests/test_w.py": "def test_module():\n    from biodiscover.storage import records\n",
             "tests/test_x.py": "from biodiscover.storage import recordsx\nimport biodiscover.storage.db\n"}
    assert bench.module_names(sources["storage/records.py"]) == {1: {"MAX_NUCLEOTIDES"}, 2: {"MIN"}}
    files = {"tests/test_v.py::t_file", "tests/test_w.py::t_module"}
    assert bench.importer_tests("storage/records.py", 1, sources, lines, times, tests) == {
        "t_validation", "t_ingest", *files}
    assert bench.importer_tests("storage/records.py", 2, sources, lines, times, tests) == {"t_other", *files}
    assert bench.importer_tests("storage/records.py", 3, sources, lines, times, tests) == files  # a def header
    assert bench.imports_module("import biodiscover.storage.records as r\n", "biodiscover.storage.records")
    assert not bench.imports_module("from .records import f\n", "biodiscover.storage.records")


def test_a_broader_fixtures_lines_count_for_every_test_using_it_and_a_forked_childs_for_the_forking_test(
        bench, tmp_path: Path) -> None:
    """Two blind spots seed 7333 met, through a real coverage run of a tiny tree: a module-scoped fixture runs
    inside the first test that asks for it, so its lines counted only for that test (a later test reading what
    it made was never run against a mutant of that code); and a forked child was never measured
    (``reference.py``'s ``_aligned_beside``: its mutants were "not covered"). Now the fixture's lines count for
    each of its users (and a user's budget holds the setup it did not run), the child's calls count for the
    test that forked, the lines of the forking frame that only the child runs included (the child keeps the
    parent's tracer and is saved when it leaves by ``os._exit``)."""
    work = tmp_path / "work"
    tree, shim = work / "tree", work / "shim"
    (tree / "storage").mkdir(parents=True)
    (tree / "tests").mkdir()
    (work / "cov").mkdir()
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(bench.SITECUSTOMIZE)
    (shim / "bd_mut_plugin.py").write_text(bench.PLUGIN)
    module = ("import os\n"
              "def build():\n"
              "    return [1, 2]\n"
              "def in_child():\n"
              "    return 7\n"
              "def fork_and_wait():\n"
              "    pid = os.fork()\n"
              "    if pid == 0:\n"
              "        code = in_child()\n"
              "        os._exit(code)\n"
              "    return os.waitpid(pid, 0)[1] >> 8\n")
    (tree / "storage" / "mod.py").write_text(module)
    (tree / "tests" / "test_t.py").write_text(
        "import pytest\n"
        "from storage import mod\n"
        "@pytest.fixture(scope='module')\n"
        "def built():\n"
        "    return mod.build()\n"
        "def test_first(built):\n    assert built\n"
        "def test_second(built):\n    assert built == [1, 2]\n"
        "def test_fork():\n    assert mod.fork_and_wait() == 7\n")
    lines, times, failed = bench.coverage_run(work, tree, shim, ["tests/test_t.py"], ["storage/mod.py"])
    assert failed == []
    first, second, fork = (f"tests/test_t.py::{name}" for name in ("test_first", "test_second", "test_fork"))
    mod_lines = lines["storage/mod.py"]
    assert mod_lines[3] == {first, second}  # build()'s body, run once inside test_first
    assert mod_lines[5] == {fork}  # in_child()'s body, run only in the forked child
    assert mod_lines[9] == mod_lines[10] == {fork}  # the forking frame's branch that only the child takes
    assert bench.select_tests(mod_lines, 9, times) == [fork]
    users, extra = bench.fixture_users(work / "cov" / "fixtures.tsv")
    assert users["fixture:tests/test_t.py::built"] == {first, second}  # (plugins' session fixtures too)
    assert second in extra and first not in extra  # test_second run alone sets the fixture up itself

