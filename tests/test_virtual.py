"""Tests for the virtual-time event loop (asynctrace/_core/_virtual.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from asynctrace._core._virtual import (
    VirtualTimeDeadlock,
    VirtualTimeLoop,
    install_virtual_time,
    virtual_time,
)

T = TypeVar("T")

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with virtual_time():
        return asyncio.run(main())


def now() -> float:
    return asyncio.get_running_loop().time()


# -- the clock -------------------------------------------------------------------------------


def test_time_starts_at_zero() -> None:
    loop = VirtualTimeLoop()
    try:
        assert loop.time() == 0.0
    finally:
        loop.close()


def test_blog_gather_example_runs_on_exact_virtual_time() -> None:
    out: list[tuple[str, float]] = []

    async def task1() -> None:
        out.append(("task1 start", now()))
        await asyncio.sleep(2)
        out.append(("task1 end", now()))

    async def task2() -> None:
        out.append(("task2 start", now()))
        await asyncio.sleep(1)
        out.append(("task2 end", now()))

    async def task3() -> None:
        out.append(("task3 start", now()))
        await asyncio.sleep(3)
        out.append(("task3 end", now()))

    async def main() -> float:
        await asyncio.gather(task1(), task2())
        await task3()
        return now()

    started = time.perf_counter()
    end = run(main)
    real = time.perf_counter() - started

    assert end == 5.0
    assert out == [
        ("task1 start", 0.0),
        ("task2 start", 0.0),
        ("task2 end", 1.0),
        ("task1 end", 2.0),
        ("task3 start", 2.0),
        ("task3 end", 5.0),
    ]
    assert real < 2.0


def test_wait_for_expires_at_exact_virtual_time() -> None:
    async def main() -> float:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 2.5)
        return now()

    assert run(main) == 2.5


def test_asyncio_timeout_expires_at_exact_virtual_time() -> None:
    async def main() -> float:
        await asyncio.sleep(0.5)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await asyncio.sleep(10)
        return now()

    assert run(main) == 2.0


def test_call_later_and_call_at_fire_at_their_virtual_times() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        done = loop.create_future()
        loop.call_later(0.25, lambda: fired.append(("later", loop.time())))
        loop.call_at(7.0, lambda: fired.append(("at", loop.time())))
        loop.call_at(7.5, done.set_result, None)
        await done
        return fired

    assert run(main) == [("later", 0.25), ("at", 7.0)]


def test_jump_lands_exactly_on_the_deadline() -> None:
    # 0.1 + (0.41 - 0.1) == 0.4099999999999999: adding the wait to the clock is not enough.
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.1)
        fired = loop.create_future()
        loop.call_at(0.41, lambda: fired.set_result(loop.time()))
        return await fired, now()

    assert run(main) == (0.41, 0.41)


def test_timer_beyond_asyncio_select_cap_lands_exactly() -> None:
    three_days = 3 * 24 * 3600.0

    async def main() -> float:
        await asyncio.sleep(three_days)
        return now()

    assert run(main) == three_days


def test_taskgroup_queue_lock_and_event_work_on_virtual_time() -> None:
    async def main() -> list[tuple[str, float]]:
        log: list[tuple[str, float]] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        lock = asyncio.Lock()
        finished = asyncio.Event()

        async def producer() -> None:
            for i in range(3):
                await asyncio.sleep(1)
                await queue.put(i)
            await finished.wait()

        async def consumer() -> None:
            for _ in range(3):
                item = await queue.get()
                async with lock:
                    await asyncio.sleep(0.5)
                    log.append((f"got {item}", now()))
            finished.set()

        async with asyncio.TaskGroup() as group:
            group.create_task(producer())
            group.create_task(consumer())
        log.append(("end", now()))
        return log

    assert run(main) == [("got 0", 1.5), ("got 1", 2.5), ("got 2", 3.5), ("end", 3.5)]


# -- threads ---------------------------------------------------------------------------------


def test_to_thread_inside_wait_for_does_not_time_out() -> None:
    def blocking() -> str:
        time.sleep(0.05)
        return "done"

    async def main() -> tuple[str, float]:
        result = await asyncio.wait_for(asyncio.to_thread(blocking), 1)
        return result, now()

    result, at = run(main)
    assert result == "done"
    # The loop waited for the thread in real time and advanced its clock by what it waited.
    assert 0.0 < at < 1.0


def test_clock_runs_in_real_time_while_a_thread_job_runs() -> None:
    async def main() -> tuple[float, float, float, float]:
        loop = asyncio.get_running_loop()
        before = now()

        def job() -> tuple[float, float]:
            start = loop.time()
            time.sleep(0.05)
            return start, loop.time()

        start, end = await loop.run_in_executor(None, job)
        return before, start, end, now()

    before, start, end, after = run(main)
    # The clock moved while the thread slept, though by less than 0.05 s if the loop was busy
    # (time the loop spends running code is not virtual time).
    assert before <= start < end <= after < 1.0


def test_idle_executor_workers_do_not_stop_fast_forward() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            assert await loop.run_in_executor(pool, sum, [1, 2]) == 3
            await asyncio.to_thread(int, "4")
            started = now()
            await asyncio.sleep(100)
            return now() - started

    started = time.perf_counter()
    assert run(main) == 100.0
    assert time.perf_counter() - started < 2.0


def test_call_soon_threadsafe_from_a_thread_wakes_the_loop() -> None:
    async def main() -> tuple[int, int, float]:
        loop = asyncio.get_running_loop()
        plain = loop.create_future()
        timed = loop.create_future()

        def worker() -> None:
            time.sleep(0.02)
            loop.call_soon_threadsafe(plain.set_result, 1)
            time.sleep(0.02)
            loop.call_soon_threadsafe(timed.set_result, 2)

        thread = threading.Thread(target=worker)
        thread.start()
        first = await plain  # no timer at all: must not be taken for a deadlock
        second = await asyncio.wait_for(timed, 5)  # must not jump to the 5 s deadline
        at = now()
        thread.join()
        return first, second, at

    first, second, at = run(main)
    assert (first, second) == (1, 2)
    assert 0.0 < at < 5.0


def test_ended_thread_no_longer_stops_fast_forward() -> None:
    async def main() -> float:
        thread = threading.Thread(target=time.sleep, args=(0.02,))
        thread.start()
        await asyncio.sleep(0.001)  # in real time: the thread could still call back
        thread.join()
        started = now()
        await asyncio.sleep(1000)
        return now() - started

    started = time.perf_counter()
    assert run(main) == 1000.0
    assert time.perf_counter() - started < 2.0


# -- deadlock --------------------------------------------------------------------------------


def test_never_set_event_raises_deadlock_fast() -> None:
    async def waiter(event: asyncio.Event) -> None:
        await event.wait()

    async def main() -> None:
        event = asyncio.Event()
        task = asyncio.create_task(waiter(event), name="the-waiter")
        await asyncio.sleep(3)
        await task

    started = time.perf_counter()
    with pytest.raises(VirtualTimeDeadlock) as caught:
        run(main)
    assert time.perf_counter() - started < 2.0
    message = str(caught.value)
    assert message.startswith(
        "asynctrace virtual time: deadlock at t=3.000 s: no task can run, no timer is scheduled"
        " and no thread work is pending; waiting: "
    )
    assert (
        "the-waiter (test_never_set_event_raises_deadlock_fast.<locals>.waiter) on Event.wait"
        in message
    )
    assert "(test_never_set_event_raises_deadlock_fast.<locals>.main) on the-waiter (" in message
    assert "asyncio.timeout()" in message
    assert isinstance(caught.value, RuntimeError)


def test_deadlock_names_queue_lock_and_gather_waits() -> None:
    async def getter(queue: asyncio.Queue[int]) -> None:
        await queue.get()

    async def locker(lock: asyncio.Lock) -> None:
        async with lock:
            pass

    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        lock = asyncio.Lock()
        await lock.acquire()
        await asyncio.gather(
            asyncio.create_task(getter(queue), name="g"),
            asyncio.create_task(locker(lock), name="l"),
        )

    with pytest.raises(VirtualTimeDeadlock) as caught:
        run(main)
    message = str(caught.value)
    assert "deadlock at t=0.000 s" in message
    assert "g (test_deadlock_names_queue_lock_and_gather_waits.<locals>.getter) on Queue.get" in (
        message
    )
    assert (
        "l (test_deadlock_names_queue_lock_and_gather_waits.<locals>.locker) on Lock.acquire"
        in (message)
    )
    assert ".<locals>.main) on gather" in message


@pytest.mark.skipif(sys.platform == "win32", reason="loop.add_signal_handler is Unix only")
def test_signal_handler_waits_for_a_signal_instead_of_deadlock() -> None:
    import signal

    # Started before the loop exists, so the loop does not count it as the program's thread work.
    sender = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    sender.start()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, "SIGUSR1")
        try:
            return await got
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    try:
        assert run(main) == "SIGUSR1"
    finally:
        # If the loop failed early, the signal MUST NOT kill the test run with its default action.
        previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        sender.cancel()
        sender.join()
        signal.signal(signal.SIGUSR1, previous)


def test_loop_can_run_again_after_a_deadlock() -> None:
    loop = VirtualTimeLoop()
    try:
        with pytest.raises(VirtualTimeDeadlock):
            loop.run_until_complete(loop.create_future())
        loop.run_until_complete(asyncio.sleep(4))
        assert loop.time() == 4.0
    finally:
        loop.close()


# -- real I/O --------------------------------------------------------------------------------


def test_socket_echo_over_loopback_still_works() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> tuple[bytes, float]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping\n")
            # A pending 5 s deadline MUST NOT be jumped to while the reply is on its way.
            reply = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await writer.wait_closed()
        started = now()
        await asyncio.sleep(50)  # sockets closed: fast-forward again
        return reply, now() - started

    started = time.perf_counter()
    assert run(main) == (b"ping\n", 50.0)
    assert time.perf_counter() - started < 2.0


def test_socket_reply_slower_than_a_jump_is_waited_for() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = conn.recv(100)
            time.sleep(0.05)  # the reply is late: a loop that jumped would time out first
            conn.sendall(data)

    # Started before the loop exists, so only the registered socket makes the loop wait.
    server = threading.Thread(target=serve)
    server.start()

    async def main() -> tuple[bytes, float]:
        host, port = listener.getsockname()[:2]
        reader, writer = await asyncio.open_connection(host, port)
        started = now()
        writer.write(b"ping\n")
        reply = await asyncio.wait_for(reader.readline(), 5)
        waited = now() - started
        writer.close()
        await writer.wait_closed()
        return reply, waited

    try:
        reply, waited = run(main)
    finally:
        listener.close()
        server.join()
    assert reply == b"ping\n"
    assert 0.0 < waited < 5.0  # waited in real time, never jumped to the deadline


def test_subprocess_pipes_work() -> None:
    async def main() -> tuple[bytes, int | None, float]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hello')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        await asyncio.sleep(0.05)  # let the child watcher's thread end
        started = now()
        await asyncio.sleep(500)
        return out, proc.returncode, now() - started

    started = time.perf_counter()
    out, returncode, slept = run(main)
    assert (out.strip(), returncode, slept) == (b"hello", 0, 500.0)
    assert time.perf_counter() - started < 10.0


# -- making loops virtual -------------------------------------------------------------------


def _loop_type_of_asyncio_run() -> str:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__name__

    return asyncio.run(main())


def test_virtual_time_makes_new_loops_virtual_without_the_deprecated_policy_api() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the policy API warns from Python 3.14
        with virtual_time():
            assert _loop_type_of_asyncio_run() == "VirtualTimeLoop"
            with asyncio.Runner() as runner:
                assert runner.get_loop().__class__ is VirtualTimeLoop
            loop = asyncio.new_event_loop()
            loop.close()
            assert loop.__class__ is VirtualTimeLoop
        assert _loop_type_of_asyncio_run() != "VirtualTimeLoop"

        with pytest.raises(ZeroDivisionError), virtual_time():
            1 / 0  # noqa: B018 - the point is the exception
        assert _loop_type_of_asyncio_run() != "VirtualTimeLoop"


def test_an_explicit_loop_factory_is_the_programs_choice() -> None:
    if sys.version_info < (3, 12):
        pytest.skip("asyncio.run(loop_factory=...) is new in Python 3.12")

    async def main() -> str:
        return type(asyncio.get_running_loop()).__name__

    with virtual_time():
        name = asyncio.run(main(), loop_factory=asyncio.SelectorEventLoop)  # type: ignore[call-arg,unused-ignore]
    assert name != "VirtualTimeLoop"


def test_the_policy_class_is_made_when_asked_for_and_makes_virtual_loops() -> None:
    # In a fresh interpreter: the class is made once per process, so another test that listed
    # the exports first would have made it (and used up asyncio's warning) already.
    program = """
import warnings
warnings.simplefilter("error")
import asynctrace
warnings.simplefilter("default")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    policy_class = asynctrace.VirtualTimePolicy
print(sorted({w.category.__name__ for w in caught}))
loop = policy_class().new_event_loop()
print(type(loop).__name__)
loop.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr  # importing asynctrace warned of nothing
    # asyncio's own deprecation of its policy classes, from 3.14, for what is asked of it
    warned = "['DeprecationWarning']" if sys.version_info >= (3, 14) else "[]"
    assert done.stdout.splitlines() == [warned, "VirtualTimeLoop"]


class _FakeRecorder:
    def __init__(self, reading: float, *, empty: bool = False) -> None:
        self.clock: Callable[[], float] = lambda: reading
        self.clock_names: list[str] = []
        self.empty = empty

    def is_empty(self) -> bool:
        return self.empty

    def use_clock(self, clock: Callable[[], float], name: str) -> None:
        self.clock = clock
        self.clock_names.append(name)


def test_install_virtual_time_switches_the_recorder_to_the_loop_clock() -> None:
    recorder = _FakeRecorder(reading=10.0)
    installed = install_virtual_time(recorder)
    try:

        async def main() -> float:
            assert recorder.clock() == 10.0  # continues from the reading before the switch
            await asyncio.sleep(2)
            return recorder.clock()

        assert asyncio.run(main()) == 12.0
        assert recorder.clock_names == ["virtual"]
    finally:
        installed.restore()
    assert _loop_type_of_asyncio_run() != "VirtualTimeLoop"
    installed.restore()  # idempotent
    assert _loop_type_of_asyncio_run() != "VirtualTimeLoop"


def test_a_trace_that_starts_on_virtual_time_reads_the_loops_own_times() -> None:
    """Nothing recorded before the first loop: the trace's clock is the loop's own, from 0.0,
    whatever the monotonic reading was (as an offset it rounded a 99 s sleep to 98.99...)."""
    recorder = _FakeRecorder(reading=60613.73912345, empty=True)
    installed = install_virtual_time(recorder)
    try:

        async def main() -> list[float]:
            readings = [recorder.clock()]
            for n in range(1, 101):
                await asyncio.sleep(n)
                readings.append(recorder.clock())
            return readings

        readings = asyncio.run(main())
    finally:
        installed.restore()
    assert readings[0] == 0.0
    assert [b - a for a, b in itertools.pairwise(readings)] == [float(n) for n in range(1, 101)]


# -- pytest-asyncio --------------------------------------------------------------------------

_ASYNC_TESTS = """
import asyncio
import pytest

@pytest.mark.asyncio
async def test_sleeps_an_hour():
    loop = asyncio.get_running_loop()
    assert type(loop).__name__ == "VirtualTimeLoop"
    await asyncio.sleep(3600)
    assert loop.time() == 3600.0

@pytest.mark.asyncio
async def test_waits_forever():
    await asyncio.Event().wait()
"""


@pytest.mark.parametrize("how", ["loop_factories_hook", "event_loop_policy_fixture"])
def test_pytest_asyncio_runs_on_virtual_time(pytester: pytest.Pytester, how: str) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    if how == "loop_factories_hook":
        conftest = """
from asynctrace._core._virtual import VirtualTimeLoop

def pytest_asyncio_loop_factories(config, item):
    return {"virtual": VirtualTimeLoop}
"""
    else:
        conftest = """
import pytest
from asynctrace import VirtualTimePolicy

@pytest.fixture(scope="session")
def event_loop_policy():
    return VirtualTimePolicy()
"""
    pytester.makeconftest(conftest)
    pytester.makepyfile(_ASYNC_TESTS)
    started = time.perf_counter()
    result = pytester.runpytest("-W", "ignore::DeprecationWarning")
    assert time.perf_counter() - started < 30.0
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*VirtualTimeDeadlock: asynctrace virtual time: deadlock at t=0.000 s*Event.wait*"]
    )
