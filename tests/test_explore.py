"""Schedule exploration without pytest: the loop's perturbations, explore(), shrinking, replay,
the first divergence, the JSON timelines, and `asynctrace run --seed`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from asynctrace import Tracing, VirtualTimeDeadlock, VirtualTimeLoop
from asynctrace._schedules._explore import ExploringLoop, Schedule
from asynctrace.testing import ExploreFailure, explore
from tests.race_programs import bank, cache, deadline

RACES = {"lost update": bank, "first fetch fills the cache": cache, "wait_for timeout": deadline}


def _run(schedule: Schedule, main: object) -> tuple[object, ExploringLoop]:
    loop = ExploringLoop(schedule)
    try:
        return loop.run_until_complete(main()), loop  # type: ignore[operator]
    finally:
        loop.close()


# --- the loop -----------------------------------------------------------------------------


async def _sleepers() -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        woke.append((name, loop.time()))

    await asyncio.gather(*(sleeper(f"s{i}", 0.1) for i in range(6)))
    return woke


def test_seed_zero_is_the_plain_virtual_time_schedule() -> None:
    woke, loop = _run(Schedule(0), _sleepers)
    plain = VirtualTimeLoop()
    try:
        assert woke == plain.run_until_complete(_sleepers())
    finally:
        plain.close()
    assert {t for _, t in woke} == {0.1}
    assert loop.applied == []


def test_durations_move_within_the_jitter_and_the_same_seed_moves_them_the_same() -> None:
    times = set()
    for seed in range(2, 30):
        woke, loop = _run(Schedule(seed, jitter=0.2), _sleepers)
        assert all(0.08 - 1e-12 <= t <= 0.12 + 1e-12 for _, t in woke), woke
        assert len(loop.applied) == 6
        times.update(t for _, t in woke)
        again, _ = _run(Schedule(seed, jitter=0.2), _sleepers)
        assert again == woke
    assert len(times) > 100  # they really vary


def test_seed_one_keeps_durations_and_reverses_every_tie() -> None:
    woke, loop = _run(Schedule(1), _sleepers)
    assert woke == [(f"s{i}", 0.1) for i in reversed(range(6))]
    assert {p.kind for p in loop.applied} == {"reversed"}


def test_jitter_zero_keeps_durations_but_varies_the_order_of_timers_due_together() -> None:
    orders = set()
    for seed in range(1, 20):
        woke, _ = _run(Schedule(seed, jitter=0.0), _sleepers)
        assert {t for _, t in woke} == {0.1}
        orders.add(tuple(name for name, _ in woke))
    assert len(orders) > 5


def test_asyncio_debug_mode_runs_the_same_schedule() -> None:
    plain, _ = _run(Schedule(5), _sleepers)
    loop = ExploringLoop(Schedule(5))
    loop.set_debug(True)
    try:
        assert loop.run_until_complete(_sleepers()) == plain
    finally:
        loop.close()


@pytest.mark.parametrize("traced", [False, True])
def test_deadlines_stay_exact(traced: bool) -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            return loop.time()
        raise AssertionError("no timeout")

    for seed in range(2, 10):
        # Traced, asyncio.Timeout's _on_timeout is asynctrace's patch: still a deadline.
        with Tracing(otel=False, flush_interval=0) if traced else contextlib.nullcontext():
            now, loop = _run(Schedule(seed), main)
        assert now == 0.05
        assert sorted(p.kind for p in loop.applied) == ["deadline", "duration"]


def test_call_soon_order_stays_fifo_under_every_schedule() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        await asyncio.sleep(0.01)
        for i in range(20):
            loop.call_soon(seen.append, i)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return seen

    for seed in range(10):
        seen, _ = _run(Schedule(seed), main)
        assert seen == list(range(20))


def test_only_restricts_the_schedule_to_those_keys_drawn_the_same() -> None:
    _, full = _run(Schedule(3), _sleepers)
    keep = full.applied[2]
    _, part = _run(Schedule(3, only=frozenset({keep.key})), _sleepers)
    assert part.applied == [keep]


# --- explore(): the races, found, shrunk, replayed; their fixes pass -------------------------


@pytest.mark.parametrize("name", RACES)
def test_each_race_is_found_within_the_default_runs_and_replays_by_seed(name: str) -> None:
    program = RACES[name]
    asyncio.run(program.race())  # passes on a real loop and on the plain schedule
    explore(program.race, seed=0)
    with pytest.raises(ExploreFailure) as found:
        explore(program.race)
    failure = found.value
    assert failure.seed > 0
    assert isinstance(failure.error, AssertionError)
    assert failure.__cause__ is failure.error
    text = str(failure)
    assert f"schedule seed={failure.seed} fails" in text
    assert f"replay it with explore(..., seed={failure.seed})" in text
    for _ in range(2):
        with pytest.raises(ExploreFailure) as replayed:
            explore(program.race, seed=failure.seed)
        replay = str(replayed.value).splitlines()
        assert replay[0].startswith(f"schedule seed={failure.seed} fails (replayed by its seed)")
        assert replay[1:] == text.splitlines()[1:]


@pytest.mark.parametrize("name", RACES)
def test_each_fixed_program_passes_every_schedule(name: str) -> None:
    assert explore(RACES[name].fixed) == 100


def test_the_wait_for_race_shrinks_to_the_one_slow_reservation() -> None:
    with pytest.raises(ExploreFailure) as found:
        explore(deadline.race)
    (only,) = found.value.perturbations
    # wait_for runs the coroutine in a task of its own before 3.12, in the caller's from 3.12
    assert only.task == ("reserve#1" if sys.version_info < (3, 12) else "race#1")
    assert only.where.startswith("reserve (deadline.py:")
    assert only.delay == 0.08 and only.delay * only.factor >= 0.1
    assert f"{only.task}: the 0.08 s wait at reserve (deadline.py:" in str(found.value)


def test_the_cache_race_shows_the_replica_answering_first() -> None:
    with pytest.raises(ExploreFailure) as found:
        explore(cache.race)
    text = str(found.value)
    assert (
        "'_fill_first#2: fetch_replica ends' comes before '_fill_first#1: fetch_primary ends' "
        "(in the passing run, after it)"
    ) in text
    slower = {p.task: p.delay * p.factor for p in found.value.perturbations}
    assert slower.get("_fill_first#1", 0.010) > slower.get("_fill_first#2", 0.014)


def test_the_lost_update_shows_both_withdrawals_side_by_side() -> None:
    with pytest.raises(ExploreFailure) as found:
        explore(bank.race)
    text = str(found.value)
    assert "passing: the same seed, nothing perturbed" in text
    assert f"failing: seed={found.value.seed}" in text
    marked = [line for line in text.splitlines() if line.startswith(">>")]
    assert len(marked) == 1 and "|" in marked[0]
    assert "withdraw#2 starts" in text.split(">>")[1]  # the second one starts too early
    assert any(p.task == "withdraw#1" and p.factor > 1 for p in found.value.perturbations)


def test_json_timelines_of_both_runs_mark_the_first_divergence(tmp_path: Path) -> None:
    with pytest.raises(ExploreFailure) as found:
        explore(cache.race, json_dir=tmp_path)
    paths = found.value.timelines
    assert set(paths) == {"passing", "failing"}
    for role, path in paths.items():
        assert Path(path).parent == tmp_path and f".{role}.trace.json" in path
        doc = json.loads(Path(path).read_text())
        marks = [e for e in doc["traceEvents"] if e.get("ph") == "i"]
        assert len(marks) == 1 and marks[0]["name"].startswith("first divergence")
        flagged = [
            e for e in doc["traceEvents"] if "asynctrace.explore.divergence" in e.get("args", {})
        ]
        assert len(flagged) == 1
    assert f"JSON timelines: {paths['passing']} and {paths['failing']}" in str(found.value)


def test_a_deadlock_under_some_schedule_is_reported_with_its_seed() -> None:
    async def main() -> None:
        ready = asyncio.Event()

        async def setter() -> None:
            await asyncio.sleep(0.010)
            ready.set()

        async def waiter() -> None:
            await asyncio.sleep(0.011)
            if not ready.is_set():
                await asyncio.Event().wait()  # waits on an event nobody sets

        await asyncio.gather(setter(), waiter())

    with pytest.raises(ExploreFailure) as found:
        explore(main)
    assert isinstance(found.value.error, VirtualTimeDeadlock)
    assert "VirtualTimeDeadlock: asynctrace virtual time: deadlock at t=" in str(found.value)
    with pytest.raises(ExploreFailure):
        explore(main, seed=found.value.seed)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runs": 0}, "explore(): explore=0 is not a number of runs; give an integer of 1 or more"),
        ({"jitter": -0.1}, "explore(): jitter=-0.1 is not a fraction of a duration"),
        ({"jitter": 1.0}, "explore(): jitter=1.0 is not a fraction of a duration"),
        ({"seed": "7"}, "explore(): seed='7' is not a schedule's seed; give an integer of 0"),
    ],
)
def test_bad_options_are_one_clear_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as bad:
        explore(bank.race, **kwargs)  # type: ignore[arg-type]
    assert str(bad.value).startswith(message)
    assert "\n" not in str(bad.value)


def test_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="is not callable; pass an async function"):
        explore("bank.race")  # type: ignore[arg-type]


def test_tracing_seed_runs_loops_under_that_schedule() -> None:
    with Tracing(seed=4, otel=False, flush_interval=0) as tracing:
        woke = asyncio.run(_sleepers())
    assert tracing.virtual_time
    assert woke == _run(Schedule(4), _sleepers)[0]
    with pytest.raises(ValueError, match="seed=-1 is not a schedule's seed"):
        Tracing(seed=-1)


# --- asynctrace run --seed --------------------------------------------------------------------

SCRIPT = """
import asyncio, sys
sys.path.insert(0, {root!r})
from tests.race_programs import bank
try:
    asyncio.run(bank.race())
    print("ok")
except AssertionError as e:
    print("failed:", e)
"""


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "bankrun.py"
    script.write_text(SCRIPT.format(root=str(Path(__file__).parent.parent)))
    return subprocess.run(
        [sys.executable, "-m", "asynctrace", "run", "--no-json", *args, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_run_seed_replays_the_schedule_that_explore_names(tmp_path: Path) -> None:
    with pytest.raises(ExploreFailure) as found:
        explore(bank.race)
    seed = found.value.seed
    failing = _cli(tmp_path, "--virtual-time", "--seed", str(seed))
    assert failing.stdout == "failed: lost update: balance is 80, expected 50\n"
    assert failing.returncode == 0
    assert _cli(tmp_path, "--seed", "0").stdout == "ok\n"


def test_run_with_a_bad_seed_is_one_line_and_status_2(tmp_path: Path) -> None:
    bad = _cli(tmp_path, "--seed", "x")
    assert bad.returncode == 2
    assert "'x' is not a schedule's seed; give a whole number of 0 or more" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_run_that_never_ends_under_some_schedule_is_stopped_and_reported() -> None:
    async def main() -> None:
        state = {"ready": False}

        async def loader() -> None:
            await asyncio.sleep(0.010)
            state["ready"] = True

        async def poller() -> None:
            await asyncio.sleep(0.011)
            if not state["ready"]:
                return  # gave up early: nothing will set it now
            state["polled"] = True

        asyncio.get_running_loop().create_task(loader())
        await poller()
        while not state.get("polled"):  # waits for what the poller gave up on
            await asyncio.sleep(1.0)

    with pytest.raises(ExploreFailure) as found:
        explore(main)
    assert type(found.value.error).__name__ == "ScheduleTimeLimit"
    text = str(found.value)
    assert "of virtual time without ending, past the limit of 1.110 s" in text
    with pytest.raises(ExploreFailure) as replayed:
        explore(main, seed=found.value.seed)
    assert type(replayed.value.error).__name__ == "ScheduleTimeLimit"
