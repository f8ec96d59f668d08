"""The conformance run's own logic, on small suites made in the test (not the SDKs').

A synthetic suite reads the mode the plugin runs it in and behaves as an SDK's test would
when sessionware changed something: fails, errors in setup or teardown, gets skipped,
fails as an expected failure, or cannot even be collected. The runner must call each of
those a difference, and leave alone what does not pass bare (skips, expected failures,
the environment's failures). See ``conformance.compare`` for the rule.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conformance.__main__ import run_logs
from conformance.compare import Rerun, differences, gained, summarize
from conformance.rerun import MAX_RERUN, rerun_differences
from conformance.suites import Mode, Part, RunResult, run_modes, run_part

pytestmark = pytest.mark.slow  # each run is a fresh interpreter running pytest

SUITE = """
import os

import pytest

MODE = os.environ["SESSIONWARE_CONFORMANCE_MODE"]
INSTRUMENTED = MODE != "bare"


def test_passes_everywhere():
    pass


def test_fails_under_sessionware():
    assert not INSTRUMENTED


def test_fails_in_strict_mode_only():
    assert MODE != "strict"


def test_fails_for_want_of_something_on_this_machine():
    raise OSError("no such device")


def test_skipped_bare_only():
    if not INSTRUMENTED:
        pytest.skip("needs what sessionware brings")


def test_skipped_under_sessionware():
    if INSTRUMENTED:
        pytest.skip("skipped only under sessionware")


@pytest.mark.xfail(reason="a known bug of the SDK")
def test_expected_to_fail_everywhere():
    assert False


@pytest.mark.xfail(reason="flaky")
def test_passing_anyway_bare_only():
    assert not INSTRUMENTED


@pytest.fixture
def setup_breaks():
    if INSTRUMENTED:
        raise RuntimeError("setup broke")
    yield


def test_setup_errors_under_sessionware(setup_breaks):
    pass


@pytest.fixture
def teardown_breaks():
    yield
    if MODE == "strict":
        raise RuntimeError("teardown broke")


def test_teardown_errors_in_strict_mode(teardown_breaks):
    pass
"""

NOT_COLLECTED = """
import os

if os.environ["SESSIONWARE_CONFORMANCE_MODE"] != "bare":
    raise ImportError("this module cannot be imported under sessionware")


def test_not_collected_under_sessionware():
    pass
"""

HANGS = """
import subprocess
import sys
import time
from pathlib import Path


def test_finishes_first():
    pass


def test_hangs(tmp_path_factory):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(__file__).with_name("child.pid").write_text(str(child.pid))
    time.sleep(120)
"""

FLAKY = """
import os
from pathlib import Path

MODE = os.environ["SESSIONWARE_CONFORMANCE_MODE"]


def runs(name):
    # How many times this test has run in this mode, this one included.
    counter = Path(__file__).with_name(f"{name}-{MODE}.count")
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    return count


def test_flaky_without_sessionware():
    count = runs("flaky")
    assert count != (2 if MODE == "bare" else 1)  # fails bare in the first re-run


def test_fails_once_under_sessionware():
    count = runs("once")
    assert MODE == "bare" or count > 1


def test_always_fails_under_sessionware():
    assert MODE == "bare"
"""


def make_suite(root: Path, **files: str) -> Path:
    tree = root / "synthetic-1.0"
    (tree / "tests").mkdir(parents=True)
    for name, text in files.items():
        (tree / "tests" / f"{name}.py").write_text(text)
    return tree


def node(name: str, module: str = "test_suite") -> str:
    return f"tests/{module}.py::{name}"


def test_a_test_passing_bare_and_not_under_sessionware_is_a_difference_whatever_it_does_instead(
    tmp_path: Path,
):
    tree = make_suite(tmp_path, test_suite=SUITE, test_not_collected=NOT_COLLECTED)
    said: list[str] = []

    results = run_modes(
        Part("synthetic", "tests/", ("tests",)),
        tree,
        [Mode.BARE, Mode.PRODUCTION, Mode.STRICT],
        run_logs(tmp_path),
        extra_env={},
        jobs=3,
        workers=0,
        timeout=300,
        say=said.append,
    )

    bare = results[Mode.BARE]
    assert bare.outcomes[node("test_passing_anyway_bare_only")] == "xpassed"
    assert bare.outcomes[node("test_expected_to_fail_everywhere")] == "xfailed"
    in_production = {
        node("test_fails_under_sessionware"): "failed",
        node("test_skipped_under_sessionware"): "skipped",
        node("test_passing_anyway_bare_only"): "xfailed",
        node("test_setup_errors_under_sessionware"): "error",
        node("test_not_collected_under_sessionware", "test_not_collected"): "missing",
    }
    assert differences(bare, results[Mode.PRODUCTION]) == in_production
    assert differences(bare, results[Mode.STRICT]) == {
        **in_production,
        node("test_fails_in_strict_mode_only"): "failed",
        node("test_teardown_errors_in_strict_mode"): "error",
    }
    # Not compared: what fails bare (the machine's), skips and expected failures bare.
    assert gained(bare, results[Mode.PRODUCTION]) == [node("test_skipped_bare_only")]

    row, status = summarize("| synthetic 1.0 `tests/` |", results, say=said.append)

    assert status == 1
    assert "8 pass (1 fail bare)" in row  # passed + xpassed; the environment's failure counted
    assert "**5 differ** (4 pass), 1 pass only here" in row
    assert "**7 differ** (2 pass), 1 pass only here" in row
    assert (
        f"  DIFFERS in strict: {node('test_teardown_errors_in_strict_mode')}: passed bare, error here" in said
    )


def test_a_run_with_no_difference_passes_and_one_without_a_bare_outcome_cannot_conclude():
    bare = RunResult(Mode.BARE, {"t::a": "passed", "t::b": "failed", "t::c": "skipped"}, 1.0)
    same = RunResult(Mode.STRICT, {"t::a": "passed", "t::b": "failed", "t::c": "passed"}, 1.0)

    row, status = summarize("| s |", {Mode.BARE: bare, Mode.STRICT: same}, say=print)

    assert status == 0
    assert row.startswith("| s | 1 pass (1 fail bare)") and "2 pass, 1 pass only here" in row
    assert summarize("| s |", {Mode.BARE: RunResult(Mode.BARE, {}, 1.0)})[1] == 2


def test_a_killed_run_is_compared_on_the_tests_it_finished_and_not_concluded():
    bare = RunResult(Mode.BARE, {"t::a": "passed", "t::b": "passed", "t::c": "passed"}, 1.0)
    reached_two = RunResult(Mode.STRICT, {"t::a": "passed", "t::b": "passed"}, 9.0, exit_code=-1)
    broke_one = RunResult(Mode.PRODUCTION, {"t::a": "failed"}, 9.0, exit_code=-1)
    results = {Mode.BARE: bare, Mode.STRICT: reached_two}

    assert differences(bare, reached_two) == {}
    row, status = summarize("| s |", results, say=print)
    assert status == 2 and "killed after 9 s: --run-timeout; 2 tests finished" in row
    assert differences(bare, broke_one) == {"t::a": "failed"}
    assert summarize("| s |", {**results, Mode.PRODUCTION: broke_one}, say=print)[1] == 1


def test_a_run_killed_at_its_timeout_reports_what_it_finished_and_leaves_no_process(tmp_path: Path):
    tree = make_suite(tmp_path, test_hangs=HANGS)
    logs = run_logs(tmp_path)

    result = run_part(
        Part("synthetic", "hangs", ("tests",)), tree, Mode.BARE, logs, extra_env={}, workers=0, timeout=20
    )

    assert result.exit_code == -1
    assert result.outcomes == {node("test_finishes_first", "test_hangs"): "passed"}
    child = int((tree / "tests" / "child.pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)  # killed with the run's process group


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_each_run_has_logs_of_its_own(tmp_path: Path):
    tree = make_suite(tmp_path, test_suite="def test_one():\n    pass\n")
    part = Part("synthetic", "tests/", ("tests",))
    first, second = run_logs(tmp_path), run_logs(tmp_path)  # the same second, the same process

    assert first != second and first.parent == second.parent == tmp_path / "logs"
    for logs in (first, second):
        result = run_part(part, tree, Mode.BARE, logs, extra_env={}, workers=0, timeout=300)
        assert result.log is not None and result.log.parent == logs
    # The second run cleared nothing of the first's: both outcomes stay readable.
    assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in second.iterdir())
    assert all(any(f.suffix == ".json" for f in folder.iterdir()) for folder in (first, second))


def test_a_difference_failing_bare_when_re_run_is_flaky_and_one_passing_on_re_runs_still_differs(
    tmp_path: Path,
):
    tree = make_suite(tmp_path, test_flaky=FLAKY)
    part, logs, said = Part("synthetic", "tests/", ("tests",)), run_logs(tmp_path), list[str]()
    results = run_modes(
        part, tree, [Mode.BARE, Mode.STRICT], logs, extra_env={}, jobs=2, workers=0, timeout=300
    )
    assert len(differences(results[Mode.BARE], results[Mode.STRICT])) == 3

    reruns = rerun_differences(
        part, tree, results, logs, extra_env={}, workers=0, timeout=300, times=2, say=said.append
    )

    flaky, once, always = (
        node(f"test_{name}", "test_flaky")
        for name in (
            "flaky_without_sessionware",
            "fails_once_under_sessionware",
            "always_fails_under_sessionware",
        )
    )
    assert reruns == {Mode.STRICT: {flaky: Rerun(2, 1, 0), once: Rerun(2, 0, 0), always: Rerun(2, 0, 2)}}
    row, status = summarize("| synthetic 1.0 `tests/` |", results, reruns=reruns, say=said.append)
    assert status == 1 and "**2 differ** (0 pass), 1 flaky bare too" in row
    again = "passed bare, failed here (re-run 2 times: failed {} here, {} bare)"
    assert f"  flaky bare too, in strict: {flaky}: {again.format(0, 1)}" in said
    assert f"  DIFFERS in strict: {once}: {again.format(0, 0)}" in said
    assert f"  DIFFERS in strict: {always}: {again.format(2, 0)}" in said
    # Only the flaky one: no difference left.
    only_flaky = {mode: {flaky: reruns[Mode.STRICT][flaky]} for mode in reruns}
    bare = results[Mode.BARE]
    strict = RunResult(Mode.STRICT, {**results[Mode.STRICT].outcomes, once: "passed", always: "passed"}, 1.0)
    assert summarize("| s |", {Mode.BARE: bare, Mode.STRICT: strict}, reruns=only_flaky, say=print)[1] == 0


def test_a_mode_with_too_many_differences_is_not_re_run_and_the_others_are(tmp_path: Path):
    tree = make_suite(tmp_path, test_flaky=FLAKY)
    always = node("test_always_fails_under_sessionware", "test_flaky")
    passing = {f"tests/gone.py::test_{i}": "passed" for i in range(MAX_RERUN)}
    results = {
        Mode.BARE: RunResult(Mode.BARE, {always: "passed", **passing}, 1.0),
        Mode.PRODUCTION: RunResult(Mode.PRODUCTION, {}, 1.0, exit_code=3),  # stopped at once
        Mode.STRICT: RunResult(Mode.STRICT, {always: "failed", **passing}, 1.0),
    }
    said: list[str] = []

    reruns = rerun_differences(
        Part("synthetic", "tests/", ("tests",)),
        tree,
        results,
        run_logs(tmp_path),
        extra_env={},
        workers=0,
        timeout=300,
        times=1,
        say=said.append,
    )

    assert reruns == {Mode.STRICT: {always: Rerun(1, 0, 1)}}
    assert f"  production: {MAX_RERUN + 1} differences, more than {MAX_RERUN}: not re-run" in said
