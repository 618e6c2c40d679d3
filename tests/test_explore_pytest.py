"""Schedule exploration through pytest: the marker, the options, replay by seed, atrace on
every schedule, pytest-asyncio and anyio, bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import asynctrace._core._virtual

# Kept across pytester's in-process runs: one copy of each module that holds state.
import asynctrace._testing._pytest_explore
import asynctrace.testing

assert asynctrace.testing.explore is not None

RACES = Path(__file__).parent / "race_programs"

INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
"""


def project(pytester: pytest.Pytester, mode: str = "strict", **files: str) -> None:
    pytester.makeini(INI.format(mode=mode))
    shutil.copytree(RACES, pytester.path / "race_programs")
    pytester.makepyfile(**files)


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("warning", "warnings")}


def _seed(result: pytest.RunResult) -> int:
    found = re.search(r"asynctrace explore: schedule seed=(\d+) fails", result.stdout.str())
    assert found, result.stdout.str()
    return int(found.group(1))


BANK = """
import pytest
from race_programs import bank

@pytest.mark.asynctrace(explore=100)
async def test_lost_update():
    await bank.race()

@pytest.mark.asynctrace(explore=100)
async def test_locked():
    await bank.fixed()
"""


def test_a_race_fails_with_its_seed_and_the_fix_passes(pytester: pytest.Pytester) -> None:
    project(pytester, test_bank=BANK)
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"failed": 1, "passed": 1}
    seed = _seed(result)
    out = result.stdout.str()
    assert "race_programs/bank.py:41: in _two" in out  # the failing run's own traceback
    assert "E   AssertionError: lost update: balance is 80, expected 50" in out
    assert f"replay it with --asynctrace-seed={seed}" in out
    assert "shrunk (" in out and "it fails when:" in out
    assert "withdraw#1: the 0.01 s wait at ledger_call (bank.py:19) took" in out
    assert re.search(r"^>> +\d+ t=", out, re.M)  # the first divergence, marked
    assert "site-packages/_pytest" not in out  # no pytest internals in the report
    failing = re.search(r"and (\S+\.seed-\d+\.failing\.trace\.json)", out)
    assert failing and Path(failing.group(1)).is_file()

    replay = pytester.runpytest_inprocess(f"--asynctrace-seed={seed}", "-k", "lost_update")
    assert outcomes(replay) == {"failed": 1, "deselected": 1}
    assert _seed(replay) == seed
    assert f"schedule seed={seed} fails (replayed by its seed)" in replay.stdout.str()
    assert outcomes(pytester.runpytest_inprocess("--asynctrace-seed=0")) == {"passed": 2}


def test_marker_seed_replays_that_schedule_only(pytester: pytest.Pytester) -> None:
    project(pytester, test_bank=BANK)
    seed = _seed(pytester.runpytest_inprocess("-k", "lost_update"))
    project_file = pytester.path / "test_bank.py"
    project_file.write_text(
        BANK.replace("explore=100)\nasync def test_lost", f"seed={seed})\nasync def test_lost")
    )
    result = pytester.runpytest_inprocess("-k", "lost_update")
    assert outcomes(result) == {"failed": 1, "deselected": 1}
    assert f"schedule seed={seed} fails (replayed by its seed)" in result.stdout.str()


def test_session_option_explores_every_virtual_time_test(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        test_cache="""
        import pytest
        from race_programs import cache

        @pytest.mark.asynctrace(virtual_time=True)
        async def test_cache():
            await cache.race()

        @pytest.mark.asynctrace(virtual_time=True)
        def test_sync_left_alone():
            import asyncio
            asyncio.run(cache.race())
        """,
    )
    assert outcomes(pytester.runpytest_inprocess()) == {"passed": 2}
    result = pytester.runpytest_inprocess("--asynctrace-explore=100")
    assert outcomes(result) == {"failed": 1, "passed": 1}
    assert "cache holds 'stale', expected 'fresh'" in result.stdout.str()


ATRACE = """
import asyncio
import pytest

async def fetch_user():
    await asyncio.sleep(0.010)

async def fetch_orders():
    await asyncio.sleep(0.013)

@pytest.mark.asynctrace(explore=50)
async def test_user_first(atrace):
    await asyncio.gather(fetch_user(), fetch_orders())
    atrace.assert_order("fetch_user", "fetch_orders", by="end")
"""


def test_atrace_assertions_are_checked_on_every_schedule(pytester: pytest.Pytester) -> None:
    project(pytester, test_atrace=ATRACE)
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"failed": 1}
    out = result.stdout.str()
    assert "TraceAssertionError" in out and "out of order by end" in out
    divergence = out.split(">>")[1].splitlines()[0]
    assert "fetch_orders#1: asyncio.sleep(0.013) ends" in divergence.split("|")[1]
    # what it shrank to: fetch_user took longer, or fetch_orders shorter, than asked
    assert re.search(
        r"fetch_user#1: the 0.01 s wait at fetch_user \(test_atrace.py:5\) took \S+ s \(\+"
        r"|fetch_orders#1: the 0.013 s wait at fetch_orders \(test_atrace.py:8\) took \S+ s \(-",
        out,
    )


@pytest.mark.parametrize("runner", ["pytest-asyncio", "anyio", "plugin"])
def test_each_runner_explores_the_test_body(pytester: pytest.Pytester, runner: str) -> None:
    head = {
        "pytest-asyncio": "@pytest.mark.asyncio",
        "anyio": "@pytest.mark.anyio\n@pytest.mark.parametrize('anyio_backend', ['asyncio'])",
        "plugin": "",
    }[runner]
    args = ", anyio_backend" if runner == "anyio" else ""
    project(
        pytester,
        test_runner=f"""
import pytest
from race_programs import deadline
RUNS = []

{head}
@pytest.mark.asynctrace(explore=100)
async def test_deadline(atrace{args}):
    RUNS.append(1)
    await deadline.race()

def test_ran_many_times():
    assert len(RUNS) > 1
""",
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"failed": 1, "passed": 1}
    assert "leaked reservation" in result.stdout.str()


def test_a_deadlock_under_some_schedule_fails_with_its_seed(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        test_deadlock="""
        import asyncio
        import pytest

        @pytest.mark.asynctrace(explore=100)
        async def test_it():
            ready = asyncio.Event()

            async def setter():
                await asyncio.sleep(0.010)
                ready.set()

            async def waiter():
                await asyncio.sleep(0.011)
                if not ready.is_set():
                    await asyncio.Event().wait()

            await asyncio.gather(setter(), waiter())
        """,
    )
    result = pytester.runpytest_inprocess("--timeout=60" if _has_timeout() else "-q")
    assert outcomes(result) == {"failed": 1}
    out = result.stdout.str()
    assert "VirtualTimeDeadlock: asynctrace virtual time: deadlock at t=" in out
    assert "replay it with --asynctrace-seed=" in out


def _has_timeout() -> bool:
    import importlib.util

    return importlib.util.find_spec("pytest_timeout") is not None


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("explore=0", "explore=0 is not a number of runs; give an integer of 1 or more"),
        ("explore=10, jitter=-0.5", "jitter=-0.5 is not a fraction of a duration"),
        ("seed='7'", "seed='7' is not a schedule's seed; give an integer of 0 or more"),
        ("explore=5, virtual_time=False", "schedules are explored on the virtual clock"),
    ],
)
def test_bad_marker_values_are_one_line(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    project(
        pytester,
        test_bad=f"""
        import pytest

        @pytest.mark.asynctrace({marker})
        async def test_it():
            pass
        """,
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"errors": 1}
    result.stdout.fnmatch_lines([f"*{message}*"])
    assert "Traceback" not in result.stdout.str()


def test_explore_on_a_sync_test_says_it_must_be_async(pytester: pytest.Pytester) -> None:
    project(
        pytester,
        test_sync="""
        import pytest

        @pytest.mark.asynctrace(explore=10)
        def test_it():
            pass
        """,
    )
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"failed": 1}
    result.stdout.fnmatch_lines(["*is not an async def test; exploring schedules runs*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--asynctrace-explore=0", "--asynctrace-explore='0' is not a number of runs"),
        ("--asynctrace-seed=x", "--asynctrace-seed='x' is not an integer seed, 0 or more"),
    ],
)
def test_bad_options_are_one_line(pytester: pytest.Pytester, option: str, message: str) -> None:
    project(pytester, test_bank=BANK)
    result = pytester.runpytest_inprocess(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_the_docs_lost_update_prints_what_docs_testing_shows(pytester: pytest.Pytester) -> None:
    page = (Path(__file__).parent.parent / "docs" / "testing.md").read_text(encoding="utf-8")
    section = page.split("### Exploring schedules", 1)[1]
    blocks = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)
    test_file, printed = blocks[0], blocks[1]
    pytester.makeini(INI.format(mode="strict"))
    pytester.makepyfile(test_bank=test_file)
    result = pytester.runpytest_inprocess()
    assert outcomes(result) == {"failed": 1}
    shown = printed.split("asynctrace explore:", 1)[1].split("JSON timelines:")[0]
    out = result.stdout.str().split("asynctrace explore:", 1)[1].split("JSON timelines:")[0]
    assert out == shown
