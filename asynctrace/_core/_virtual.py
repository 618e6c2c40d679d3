"""Virtual time: an asyncio event loop whose clock jumps to the next timer.

Problem: a program that sleeps, times out and retries takes as long to trace or test as it takes
to run, and its timeline measured with a real clock is noisy (``sleep(1)`` ends after 1.0013 s).

Solution: :class:`VirtualTimeLoop` keeps its own clock, starting at ``0.0``.  When the loop would
block in the selector because the next thing to do is a timer, and nothing else can make progress,
the loop does not wait: it sets its clock to that timer's deadline and goes on.  A program that
sleeps 3 s finishes in milliseconds and ``loop.time()`` reads exactly ``3.0``.  Time spent running
Python code does not advance the clock: only waiting does.

What counts as "nothing else can make progress" (checked only when the loop would block):

- Ready callbacks or I/O events that are already there (a non-blocking real ``select``, which also
  sees the loop's own self-pipe, so ``call_soon_threadsafe`` wakes the loop): run them; no jump.
- Thread work: ``run_in_executor`` (and so ``asyncio.to_thread`` and ``getaddrinfo``) futures that
  are not done, or threads started since the loop was created that are still alive (user threads
  calling ``call_soon_threadsafe``, the child watcher's ``waitpid`` threads, the executor shutdown
  thread).  The loop waits for them in REAL time, at most until the next timer, and the virtual
  clock advances by the real time waited.  ``wait_for(to_thread(f), 5)`` therefore never times out
  falsely.  Idle workers of executors the loop submitted to are not counted.
- User file descriptors (sockets, servers, subprocess pipes; the loop's own self-pipe excluded):
  while any is registered, waiting is real, bounded by the next timer, and the virtual clock
  advances by the real time waited.  This is the sound choice: data from a peer may arrive at any
  moment, and jumping to a ``wait_for`` deadline before it does would raise a timeout that the
  real program never sees.  The price: a program that sleeps while it has an open socket or a
  listening server sleeps in real time.  The fast-forward resumes as soon as they are closed.
- Otherwise, with a timer pending: jump to it.  With no timer either: the program is deadlocked
  (it would hang forever on a normal loop), and the loop raises :class:`VirtualTimeDeadlock`
  naming the tasks that wait and what they wait on; unless a handler was installed with
  ``loop.add_signal_handler``: then it waits in real time for a signal, as a normal loop would.

The clock MUST only move forward, and MUST land exactly on a timer's deadline when it jumps (so
``sleep(2)`` started at ``0.0`` ends at ``2.0``, not ``1.9999999999999998``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import selectors
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar, TypeVarTuple

_Ts = TypeVarTuple("_Ts")

_T = TypeVar("_T")

__all__ = [
    "LoopClocks",
    "VirtualTimeDeadlock",
    "VirtualTimeLoop",
    # and VirtualTimePolicy, made on first use (module __getattr__)
    "install_virtual_time",
    "virtual_time",
]

# While only foreign threads justify a real wait, poll this often (real seconds) so that the loop
# notices a thread that ended without calling back, and resumes fast-forwarding.
_THREAD_POLL = 0.01
# The head timer counts as the deadline waited for if it is at most this far past now + timeout;
# further away, asyncio capped the timeout (MAXIMUM_SELECT_TIMEOUT, one day) and the loop only
# moves by the capped amount.
_SLACK = 1e-6
_MAX_LISTED_TASKS = 10

_Event = tuple[selectors.SelectorKey, int]


class VirtualTimeDeadlock(RuntimeError):
    """No task can ever run again: nothing is ready, scheduled, pending in a thread, or in I/O."""


class _VirtualSelector(selectors.DefaultSelector):
    """The platform selector, asking its loop before it blocks.

    Called only from the loop's thread, from ``BaseEventLoop._run_once``.
    """

    vt_loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[_Event]:
        loop = self.vt_loop
        if loop is None or (timeout is not None and timeout <= 0):
            return super().select(timeout)
        return loop._vt_select(super().select, timeout)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time: ``time()`` starts at 0.0 and jumps over waits.

    See the module docstring for when it jumps and when it waits in real time.
    """

    # Set by LoopClocks: (the clocks, this loop's offset in them), and its hook at close.
    _vt_trace: tuple[LoopClocks, float] | None = None
    _vt_closing: Callable[[VirtualTimeLoop], None] | None = None

    def __init__(self) -> None:
        self._vt_now = 0.0
        # (virtual time, monotonic time, cap) while the loop waits in real time, else None; one
        # tuple, so that another thread reading time() never mixes two states.
        self._vt_real: tuple[float, float, float] | None = None
        self._vt_jobs: set[asyncio.Future[Any]] = set()
        self._vt_executors: weakref.WeakSet[Executor] = weakref.WeakSet()
        # Threads alive before the loop existed (pytest-xdist's, a debugger's) are not the
        # program's thread work; only threads started later can call back into this loop.
        self._vt_old_threads = frozenset(threading.enumerate())
        selector = _VirtualSelector()
        super().__init__(selector)
        # Whatever the loop registered for itself (the self-pipe) is not user I/O.
        self._vt_own_fds = len(selector.get_map())
        self._vt_selector = selector
        selector.vt_loop = self

    def time(self) -> float:
        """Return the virtual time in seconds (0.0 when the loop was made).

        Any thread may call it: while the loop waits in real time (for a thread or for I/O) the
        clock runs at real speed, so a thread job's start and end read meaningful times.
        """
        real = self._vt_real
        if real is None:
            return self._vt_now
        base, since, cap = real
        return base + min(time.monotonic() - since, cap)

    def close(self) -> None:
        """Close the loop like asyncio does; the trace keeps the time it reached."""
        closing = self._vt_closing
        if closing is not None:
            self._vt_closing = None
            closing(self)
        super().close()

    def run_in_executor(
        self,
        executor: Executor | None,
        func: Callable[[*_Ts], _T],
        *args: *_Ts,
    ) -> asyncio.Future[_T]:
        """Run ``func`` in ``executor`` like asyncio does, and wait for it in real time."""
        fut = super().run_in_executor(executor, func, *args)
        if executor is not None:
            self._vt_executors.add(executor)
        # Done (or cancelled) is when the program stops waiting for it: its result is then
        # already queued on this loop, so the loop cannot jump past it.
        self._vt_jobs.add(fut)
        fut.add_done_callback(self._vt_jobs.discard)
        return fut

    # -- called by _VirtualSelector.select, on the loop's thread ------------------------------

    def _vt_select(
        self, select: Callable[[float | None], list[_Event]], timeout: float | None
    ) -> list[_Event]:
        events = select(0)
        if events:
            return events
        jobs = bool(self._vt_jobs)
        user_io = len(self._vt_selector.get_map()) > self._vt_own_fds
        if jobs or user_io:
            return self._vt_wait_real(select, timeout, timeout)
        if self._vt_foreign_threads():
            limit = _THREAD_POLL if timeout is None else min(timeout, _THREAD_POLL)
            return self._vt_wait_real(select, timeout, limit)
        # A thread's last act may have been to wake the loop (call_soon_threadsafe) after the
        # first look and before it was seen to end: look once more before jumping.
        events = select(0)
        if events:
            return events
        if timeout is not None:
            self._vt_jump(timeout)
            return []
        if getattr(self, "_signal_handlers", None):
            # loop.add_signal_handler(): a signal from outside can still end the wait.
            return self._vt_wait_real(select, None, None)
        raise VirtualTimeDeadlock(self._vt_deadlock_message())

    def _vt_wait_real(
        self,
        select: Callable[[float | None], list[_Event]],
        timeout: float | None,
        limit: float | None,
    ) -> list[_Event]:
        start = time.monotonic()
        self._vt_real = (self._vt_now, start, float("inf") if timeout is None else timeout)
        events = None
        try:
            events = select(limit)
        finally:
            waited = time.monotonic() - start
            if timeout is not None and (waited >= timeout or (events == [] and limit == timeout)):
                self._vt_jump(timeout)
            else:
                self._vt_now += waited
            self._vt_real = None  # after _vt_now moved: readers never see the clock go back
        return events

    def _vt_jump(self, timeout: float) -> None:
        target = self._vt_now + timeout
        # Land exactly on the deadline: now + (when - now) can miss it by one ulp.
        scheduled = getattr(self, "_scheduled", None)
        if scheduled:
            when: float = scheduled[0].when()
            if when <= target + _SLACK:
                target = when
        self._vt_now = max(self._vt_now, target)

    def _vt_foreign_threads(self) -> bool:
        current = threading.current_thread()
        new = [
            t
            for t in threading.enumerate()
            if t is not current
            and t not in self._vt_old_threads
            and not t.name.startswith("asynctrace-")  # ours: the flusher, the OTLP sender
        ]
        if not new:
            return False
        workers: set[threading.Thread] = set()
        executors = list(self._vt_executors)
        default = getattr(self, "_default_executor", None)
        if default is not None:
            executors.append(default)
        for executor in executors:
            # Idle pool workers live until shutdown; their jobs are counted in _vt_jobs.
            workers.update(getattr(executor, "_threads", ()))
            manager = getattr(executor, "_executor_manager_thread", None)
            if manager is not None:
                workers.add(manager)
        return any(t not in workers for t in new)

    def _vt_deadlock_message(self) -> str:
        tasks = sorted(asyncio.all_tasks(self), key=lambda t: _natural_key(t.get_name()))
        waits = [f"{_task_label(t)} on {_waits_on(t)}" for t in tasks[:_MAX_LISTED_TASKS]]
        if len(tasks) > _MAX_LISTED_TASKS:
            waits.append(f"and {len(tasks) - _MAX_LISTED_TASKS} more")
        waiting = ", ".join(waits) if waits else "no task (a callback or future is waiting)"
        return (
            f"asynctrace virtual time: deadlock at t={self._vt_now:.3f} s: no task can run, "
            f"no timer is scheduled and no thread work is pending; waiting: {waiting}. "
            "Make sure something sets what they wait on, or bound the wait with "
            "asyncio.timeout() or asyncio.wait_for()."
        )


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _qualname(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    return name if isinstance(name, str) else type(obj).__qualname__


def _task_label(task: asyncio.Task[Any]) -> str:
    return f"{task.get_name()} ({_qualname(task.get_coro())})"


def _waits_on(task: asyncio.Task[Any]) -> str:
    """Name what ``task`` awaits: ``Event.wait``, ``Queue.get``, ``Task-3 (worker)``, ``gather``."""
    try:
        outer = task.get_coro()
        frame: object = outer
        for _ in range(100):  # a bound, in case an awaitable's chain loops
            inner = getattr(frame, "cr_await", None) or getattr(frame, "gi_yieldfrom", None)
            if inner is None or not hasattr(inner, "send"):
                break
            if not (hasattr(inner, "cr_await") or hasattr(inner, "gi_yieldfrom")):
                break  # a future's iterator: the future itself is the task's waiter
            frame = inner
        if frame is not outer:
            return _qualname(frame)
        # The task's own coroutine awaits a future directly; Task keeps it as _fut_waiter.
        waiter = getattr(task, "_fut_waiter", None)
        if isinstance(waiter, asyncio.Task):
            return _task_label(waiter)
        if waiter is None:
            return "?"
        return "gather" if type(waiter).__name__ == "_GatheringFuture" else "Future"
    except Exception:  # a message helper MUST NOT hide the deadlock it describes
        return "?"


class VirtualLoops:
    """While installed, every new asyncio event loop is a :class:`VirtualTimeLoop`.

    Problem: loops are made in several places (``asyncio.run`` and ``asyncio.Runner`` through
    ``asyncio.new_event_loop``, pytest-asyncio's and anyio's runners through a policy instance of
    their own), and event loop policies are deprecated from Python 3.14 (removed in 3.16).

    Solution: patch ``new_event_loop`` of asyncio's base policy class, which every one of those
    paths calls, and no policy API.  A loop factory given explicitly
    (``asyncio.run(main(), loop_factory=...)``) is the program's choice and is left alone.

    Args:
        on_new_loop: called with each loop made, on the thread that makes it.
        factory: makes each loop (an ``ExploringLoop`` runs one explored schedule).
    """

    def __init__(
        self,
        on_new_loop: Callable[[VirtualTimeLoop], None] | None = None,
        factory: Callable[[], VirtualTimeLoop] = VirtualTimeLoop,
    ) -> None:
        self._on_new_loop = on_new_loop
        self._factory = factory
        self._cls: Any = getattr(asyncio.events, "BaseDefaultEventLoopPolicy", None) or getattr(
            asyncio.events, "_BaseDefaultEventLoopPolicy", None
        )
        self._saved: Any = None
        self._patch: Any = None

    def install(self) -> None:
        """Make new loops virtual (idempotent while installed)."""
        if self._cls is None or self._patch is not None:
            return
        from . import _instrument

        _instrument.install()  # first, so that its own patches cannot replace this one later
        self._saved = self._cls.__dict__["new_event_loop"]
        on_new_loop, factory = self._on_new_loop, self._factory

        def new_event_loop(policy: Any) -> asyncio.AbstractEventLoop:
            loop = factory()
            if on_new_loop is not None:
                on_new_loop(loop)
            return loop

        self._patch = new_event_loop
        self._cls.new_event_loop = new_event_loop

    def restore(self) -> None:
        """Put asyncio's own ``new_event_loop`` back (if this patch is still the one in place)."""
        if self._patch is not None and self._cls.__dict__.get("new_event_loop") is self._patch:
            self._cls.new_event_loop = self._saved
        self._patch = None


def _make_policy_class() -> type:
    """``VirtualTimePolicy``, made when first asked for: asyncio's policy classes are deprecated
    from Python 3.14, and merely naming them at import would warn every user."""

    class VirtualTimePolicy(asyncio.DefaultEventLoopPolicy):
        """An event loop policy whose new loops are :class:`VirtualTimeLoop`.

        Deprecated with asyncio's policies (Python 3.14); prefer :func:`virtual_time` or, from
        Python 3.12, ``asyncio.run(main(), loop_factory=asynctrace.VirtualTimeLoop)``.
        """

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return VirtualTimeLoop()

    return VirtualTimePolicy


def __getattr__(name: str) -> Any:
    if name == "VirtualTimePolicy":
        cls = _make_policy_class()
        globals()[name] = cls
        return cls
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


class _Recorder(Protocol):
    """What :class:`VirtualTimeInstall` needs of ``_record.Recorder``."""

    clock: Callable[[], float]

    def is_empty(self) -> bool: ...

    def use_clock(self, clock: Callable[[], float], name: str) -> None: ...


class LoopClocks:
    """The recorder's clock under virtual time, with event loops in several threads at once.

    Problem: each virtual-time loop has a clock of its own, and the recorder has one clock.
    Switching the recorder to the newest loop's clock would make a loop running in another
    thread record its spans on a clock that is not its own.

    Solution: a reading is the running loop's own time plus that loop's offset, fixed when the
    loop was made so that it continues from the trace's reading then.  Off any loop (the main
    thread after ``asyncio.run`` returned, the end of the run), the reading is the latest that
    any loop reached; before the first loop, the recorder's own clock.  A thread job reads the
    clock of the loop that sent it (:meth:`pinned`).  Any thread may call it; nothing is locked.
    """

    def __init__(self, before: Callable[[], float]) -> None:
        self._before = before
        # id -> loop, read with one atomic list() of a dict (a WeakSet's iteration is not).
        self._loops: dict[int, weakref.ref[VirtualTimeLoop]] = {}
        self._floor: float | None = None  # the latest reading of the loops already closed

    def __call__(self) -> float:
        loop = asyncio.events._get_running_loop()
        if loop is not None:
            trace = getattr(loop, "_vt_trace", None)
            if trace is not None and trace[0] is self:
                return loop.time() + trace[1]  # type: ignore[no-any-return]
        return self.outside()

    def outside(self) -> float:
        """The reading off the loops: the latest any of them reached (or the clock before)."""
        readings = [self._floor] if self._floor is not None else []
        for ref in list(self._loops.values()):
            loop = ref()
            trace = None if loop is None else loop._vt_trace
            if loop is None or trace is None:
                continue
            if trace[0] is self:
                readings.append(loop.time() + trace[1])
        return max(readings) if readings else self._before()

    def add(self, loop: VirtualTimeLoop) -> None:
        """Give ``loop`` its offset: its time 0.0 is the trace's reading now."""
        loop._vt_trace = (self, self() - loop.time())
        loop._vt_closing = self._closed
        self._loops[id(loop)] = weakref.ref(loop)

    def _closed(self, loop: VirtualTimeLoop) -> None:
        trace = loop._vt_trace
        if trace is not None and trace[0] is self:
            reading = loop.time() + trace[1]
            if self._floor is None or reading > self._floor:
                self._floor = reading
        self._loops.pop(id(loop), None)

    def pinned(self) -> Callable[[], float]:
        """This clock as read on the running loop, from any thread (for its thread jobs)."""
        loop = asyncio.events._get_running_loop()
        trace = getattr(loop, "_vt_trace", None)
        if loop is None or trace is None or trace[0] is not self:
            return self
        offset: float = trace[1]
        return lambda: loop.time() + offset


class VirtualTimeInstall:
    """What :func:`install_virtual_time` did, undone by :meth:`restore`."""

    def __init__(
        self, recorder: _Recorder, factory: Callable[[], VirtualTimeLoop] = VirtualTimeLoop
    ) -> None:
        self.clocks: LoopClocks | None = None

        def on_new_loop(loop: VirtualTimeLoop) -> None:
            first = self.clocks is None
            if self.clocks is None:
                # Nothing recorded yet: the trace starts at the first loop's 0.0, so that its
                # times are the loop's own (a monotonic reading as the offset would round
                # them: a 99 s sleep lasting 98.999999999993 s).
                self.clocks = LoopClocks(_zero if recorder.is_empty() else recorder.clock)
            self.clocks.add(loop)
            if first:
                recorder.use_clock(self.clocks, "virtual")

        self._loops = VirtualLoops(on_new_loop, factory)
        self._loops.install()

    def restore(self) -> None:
        """Make new loops ordinary again; idempotent."""
        self._loops.restore()


def _zero() -> float:
    return 0.0


def install_virtual_time(
    recorder: _Recorder, factory: Callable[[], VirtualTimeLoop] = VirtualTimeLoop
) -> VirtualTimeInstall:
    """Run loops made from now on (``asyncio.run``) on virtual time, recorded on their clock.

    Each loop's spans read that loop's own clock (see :class:`LoopClocks`); ``factory`` makes
    the loops.  Call ``.restore()`` on the result to make new loops ordinary again.
    """
    return VirtualTimeInstall(recorder, factory)


@contextlib.contextmanager
def virtual_time() -> Iterator[None]:
    """Loops created inside the block (``asyncio.run``, ``asyncio.Runner``,
    ``asyncio.new_event_loop``) run on virtual time; loops made after it are ordinary again.

    Uses no event loop policy API (deprecated from Python 3.14), on every version.
    """
    loops = VirtualLoops()
    loops.install()
    try:
        yield
    finally:
        loops.restore()
