"""Types of the optional C accelerator ``asynctrace/_speedups.c`` (see ``_coro.TaskRoot`` and
``_decorator._wrap_c``)."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, overload

class TaskRootBase:
    """TaskRoot's slots and its ``send``/``__next__`` in C; subclassed by ``_coro.TaskRoot``."""

    _coro: Any
    _info: Any
    _native: bool
    _sid: int
    _parent: int
    _track: int
    _start: float
    _top: Any
    _aw_t: float | None
    _aw_sid: int
    _aw_parent: int
    _aw_what: Any
    _aw_lasti: int
    _aw_status: tuple[str, str, str] | None
    _task_name: Callable[[], str] | None
    _shown: Any
    _outer: Any
    def send(self, value: Any = None) -> Any: ...
    def __next__(self) -> Any: ...

class CallSpan:
    """``_coro.CallSpan`` in C: made by :func:`enter`, closed by :func:`leave`."""

    _coro: Any
    _info: Any
    _outer: Any
    _parent: int
    _sid: int
    _start: float
    _track: int
    _native: bool
    def leave(self) -> None:
        """A traced body returned: its span ends now (once; nothing after :meth:`fail`)."""
    def fail(self) -> None:
        """A traced body raises the exception being handled: its span ends now (once)."""

class TracedBody:
    """How a body that ``asynctrace run`` compiled traced opens its span (``_tracedbody.c``)."""

    info: Any
    def __init__(self, info: Any, /) -> None: ...
    def enter(self) -> CallSpan:
        """The span of the call whose body runs now; one already over while nothing records."""

class EndedTask:
    """``_coro.EndedTask`` in C, not tracked by the garbage collector."""

    _sid: int
    def __init__(self, sid: int, /) -> None: ...

def enter(coro: Any, info: Any, /) -> CallSpan: ...
def leave(span: CallSpan, status: tuple[str, str, str] | None, /) -> None: ...
def configure(
    append: Callable[[tuple[Any, ...]], None],
    clock: Callable[[], float],
    next_id: Callable[[], int],
    blocked_threshold: float,
    record_awaits: bool,
    run_sid: int,
    /,
) -> None: ...
def constants(
    sleep_code: Any,
    aenter_code: Any,
    not_started: float,
    reduce_awaited: Callable[[Any], Any],
    k_await: int,
    coroutine_type: type,
    current_root: Any,
    current_gather: Any,
    k_coro: int,
    k_task: int,
    /,
) -> None: ...
def start_task(
    coro: Any, kwargs: dict[str, Any], create: Callable[..., Any], /, *leading: Any
) -> Any: ...
def task_constants(
    task_root: type,
    python_start: Callable[..., Any],
    eager_task_name: Callable[[], str],
    eager_ended: Any,
    coro_globals: dict[str, Any],
    instrument_globals: dict[str, Any],
    /,
) -> None: ...
def _state() -> tuple[Any, Any, int, int, int]: ...
def _native_clock() -> float: ...

class Records:
    """The recorder's records (``_records.c``): a list of tuples to its readers."""

    def append(self, record: tuple[Any, ...], /) -> None: ...
    def extend(self, records: Iterable[tuple[Any, ...]], /) -> None: ...
    def copy(self, start: int = 0, stop: int = ..., /) -> Records: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: int, /) -> tuple[Any, ...]: ...
    @overload
    def __getitem__(self, index: slice, /) -> list[tuple[Any, ...]]: ...
    def __delitem__(self, index: int | slice, /) -> None: ...
    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...

def configure_spans(span_type: type, kinds: tuple[str, ...], /) -> None: ...
def configure_build(fn_info_type: type, /) -> None: ...
def build_spans(
    records: Records,
    origin: float,
    codes: dict[int, Any],
    fallback: Callable[[tuple[Any, ...]], None],
    function_of: Callable[[Any], tuple[str, dict[str, object]]],
    await_name_of: Callable[[Any], str | None],
    functions: dict[Any, tuple[str, dict[str, object]]],
    await_names: dict[Any, str | None],
    spans: dict[int, Any],
    /,
) -> None: ...
def link_spans(spans: list[Any], /) -> tuple[list[Any], dict[Any, Any], bool] | None: ...

class _Labels(Protocol):
    def get(self, label: str, /) -> Any: ...

def critical_walk(
    span: Any, by_id: dict[Any, Any], tasks: _Labels, max_depth: int, /
) -> list[Any]: ...

class Roots:
    """Task roots held weakly (``_records.c``): a root leaves when it is cleared or freed;
    ``len()`` counts those alive."""

    def add(self, root: Any, /) -> None: ...
    def live(self) -> list[Any]: ...
    def __len__(self) -> int: ...
