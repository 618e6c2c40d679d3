"""The JSON timeline written with the C accelerator means what the Python way writes.

``chrome_json`` writes span slices straight from the spans in C (``_cjson.timeline_events``)
and leaves to Python the spans it does not take; ``dumps(to_chrome(...))`` is the reference.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asynctrace._export import _chrome, _chrome_text, _json
from asynctrace._export._chrome_text import us_text
from asynctrace._export._json import dumps
from asynctrace._export._sanitize import MAX_CHARS
from asynctrace._model._spans import KINDS, STATUSES, Span, Trace
from asynctrace._stream._chrome_stream import ChromeStream

needs_c = pytest.mark.skipif(
    _chrome._events_encoder() is None and not os.environ.get("CI"),
    reason="built without a C compiler",
)

names = st.one_of(
    st.sampled_from(["main", "fetch", "asyncio.sleep(0)", "Task-2 (task1)", "gather(a, b)"]),
    st.text(max_size=12),  # control characters, lone surrogates, anything
    st.just("n" * (MAX_CHARS + 5)),
)
keys = st.one_of(
    st.sampled_from(
        [
            "code.file.path",
            "code.line.number",
            "asynctrace.awaited",
            "code.function.name",
            "asynctrace.task.name",
            "status",  # reserved: renamed by _args
            "span_id",
            "unclamped_end",
            "k" * (MAX_CHARS + 1),
        ]
    ),
    st.text(min_size=1, max_size=8),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),  # encoders differ on those
    st.text(max_size=10),
    st.just("v" * (MAX_CHARS + 3)),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.tuples(st.text(max_size=3)),
    st.just(frozenset({1})),  # not JSON: written as its str()
)


@st.composite
def traces(draw: st.DrawFn) -> Trace:
    times = st.one_of(st.integers(0, 40).map(lambda k: k / 8), st.floats(0, 3))
    spans = []
    count = draw(st.integers(1, 14))
    for sid in range(1, count + 1):
        a, b = sorted((draw(times), draw(times)))
        kind = "run" if sid == 1 else draw(st.sampled_from(KINDS))
        parent = None if sid == 1 else draw(st.integers(1, sid - 1))
        track = 1 if sid == 1 else draw(st.integers(1, sid))
        name = draw(names)
        attributes: dict[str, Any] = draw(st.dictionaries(keys, values, max_size=4))
        if draw(st.booleans()):  # the common case: repeats the name, or the parent's file
            attributes["asynctrace.awaited" if kind == "await" else "code.function.name"] = name
        if draw(st.booleans()):
            attributes["code.file.path"] = "prog.py"
        status = draw(st.sampled_from(STATUSES))
        error = draw(st.one_of(st.none(), names)) if status != "ok" else None
        spans.append(
            Span(
                sid,
                parent,
                kind,
                name,
                a,
                b,
                track,
                status=status,
                error=error,
                attributes=attributes,
                start_seq=sid,
                end_seq=count + sid,
            )
        )
    return Trace(spans)


def _meaning(data: bytes) -> Any:
    return json.loads(data)


@needs_c
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), st.booleans())
def test_the_c_timeline_means_what_the_python_one_does(trace: Trace, full: bool) -> None:
    reference = _meaning(dumps(_chrome.to_chrome(trace, full_args=full)))
    assert _meaning(b"".join(_chrome.chrome_json(trace, full_args=full))) == reference


def _events_made_in_python(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the spans whose slice event ``_chrome._slice_event`` makes, from now on."""
    made: list[int] = []
    real = _chrome._slice_event

    def counted(span: Span, *args: Any, **kwargs: Any) -> dict[str, Any]:
        made.append(span.span_id)
        return real(span, *args, **kwargs)

    monkeypatch.setattr(_chrome, "_slice_event", counted)
    return made


@needs_c
def test_the_common_spans_are_written_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _events_made_in_python(monkeypatch)  # only for the spans C does not take
    spans = [
        Span(1, None, "run", "prog.py", 0.0, 3.0, 1),
        Span(
            2,
            1,
            "task",
            "main",
            0.0,
            3.0,
            2,
            attributes={
                "asynctrace.task.name": "Task-1",
                "code.function.name": "main",
                "code.file.path": "prog.py",
            },
        ),
        Span(
            3,
            2,
            "await",
            "asyncio.sleep(1)",
            0.5,
            1.5,
            2,
            attributes={
                "code.file.path": "prog.py",
                "code.line.number": 7,
                "asynctrace.awaited": "asyncio.sleep(1)",
            },
        ),
        Span(4, 2, "blocked", "blocked", 2.0, 2.5, 2),  # its name is formatted in Python
        Span(5, 2, "await", "x", 2.5, 2.6, 2, attributes={"tags": ["a", "b"]}),  # a list
    ]
    _chrome.chrome_json(Trace(spans))
    assert made == [4, 5]


def _stream_lines(path: Path) -> list[Any]:
    lines = path.read_bytes().split(b"\n")[1:]
    return [json.loads(line.rstrip(b",")) for line in lines if line not in (b"", b"]")]


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_the_stream_means_the_same_written_in_c_or_python(
    tmp_path_factory: pytest.TempPathFactory, trace: Trace
) -> None:
    written = {}
    for way in ("c", "python"):
        path = tmp_path_factory.mktemp(way) / "run.json"
        stream = ChromeStream(
            str(path), process="asynctrace: t", clock="virtual", epoch_ns=0, run_track=1
        )
        assert stream.open()
        encoder = _chrome._events_encoder
        if way == "python":
            _chrome._events_encoder = lambda: None  # type: ignore[assignment]
        try:
            *rest, run = trace.spans
            assert stream.write(rest[: len(rest) // 2], {})
            assert stream.finish(rest[len(rest) // 2 :], run)
        finally:
            _chrome._events_encoder = encoder  # type: ignore[assignment]
        written[way] = _stream_lines(path)
        json.loads(path.read_bytes())  # a finished stream is plain JSON
    assert written["c"] == written["python"]


@needs_c
def test_values_past_64_bits_are_written_the_python_way() -> None:
    """A hand-made trace's sequence number past 64 bits: the C placer refuses it, and the
    file is written the Python way, with the same meaning."""
    spans = [
        Span(1, None, "run", "prog.py", 0.0, 3.0, 1, start_seq=2**70, end_seq=2**71),
        Span(2, 1, "task", "main", 0.5, 3.5, 2, start_seq=1, end_seq=2),
    ]
    trace = Trace(spans)
    whole = b"".join(_chrome.chrome_json(trace))
    assert _meaning(whole) == _meaning(dumps(_chrome.to_chrome(trace)))


@needs_c
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), st.booleans())
def test_the_c_timeline_is_the_python_one_byte_for_byte(trace: Trace, full: bool) -> None:
    # with the C encoder for the Python way's document too: the same bytes, not only meaning
    c_dumps = _json.available_encoders()["c"]
    python_way = _chrome.to_chrome(trace, full_args=full)
    try:
        reference = c_dumps(python_way)
    except (TypeError, ValueError):  # a lone surrogate or a key past 64 bits: json's way
        return
    assert b"".join(_chrome.chrome_json(trace, full_args=full)) == reference


@needs_c
@settings(max_examples=100, deadline=None)
@given(traces())
def test_rows_are_grouped_alike_in_c_and_python(trace: Trace) -> None:
    in_c = _chrome._group_rows(trace.spans)
    c_module = _chrome._cjson
    _chrome._cjson = lambda: None  # type: ignore[assignment]
    try:
        in_python = _chrome._group_rows(trace.spans)
    finally:
        _chrome._cjson = c_module  # type: ignore[assignment]
    assert in_c == in_python
    assert list(in_c[0]) == list(in_python[0])  # the rows in the same order


@needs_c
def test_more_attribute_keys_than_the_c_writer_keeps() -> None:
    # each key's text is kept for the call in a table of 512: past it, keys are still written
    spans = [Span(1, None, "run", "prog.py", 0.0, 3.0, 1)]
    for sid in range(2, 2000):
        attributes = {f"key {sid}": sid, "code.line.number": sid}
        spans.append(
            Span(sid, 1, "await", "x", sid / 1000, sid / 1000 + 0.001, 1, attributes=attributes)
        )
    trace = Trace(spans)
    reference = _json.available_encoders()["c"](_chrome.to_chrome(trace))
    assert b"".join(_chrome.chrome_json(trace)) == reference


def _many_awaits(count: int) -> Trace:
    """A run with ``count`` awaits on ten tasks: a timeline of several megabytes."""
    spans = [Span(1, None, "run", "prog.py", 0.0, count, 1, start_seq=1, end_seq=4 * count)]
    tasks = range(2, 12)
    for task in tasks:
        spans.append(
            Span(
                task,
                1,
                "task",
                f"worker{task}",
                0.0,
                count,
                task,
                start_seq=task,
                end_seq=3 * count,
            )
        )
    for sid in range(12, 12 + count):
        task = tasks[sid % 10]
        attributes = {"code.file.path": "prog.py", "code.line.number": sid % 50}
        spans.append(
            Span(
                sid,
                task,
                "await",
                "asyncio.sleep(0)",
                sid - 12,
                sid - 11.5,
                task,
                attributes=attributes,
                start_seq=sid,
                end_seq=count + sid,
            )
        )
    return Trace(spans)


class _Given(list[bytes]):
    """A ChunkWriter that keeps what it was given, rewinds included."""

    def write(self, chunk: bytes, /) -> None:
        self.append(chunk)

    def rewind(self) -> None:
        self.append(b"<rewind>")


@pytest.mark.parametrize("way", ["c", "python"])
def test_a_big_timeline_is_given_in_chunks_of_a_megabyte_or_so(way: str) -> None:
    """The file is written as it is encoded (issue 12: a 280 MB file was made in memory
    first): the chunks given to the writer make the whole document, none of them the size of
    the file."""
    trace = _many_awaits(30_000)
    given = _Given()
    if way == "c" and _chrome._cjson() is None:
        pytest.skip("built without a C compiler")
    c_module = _chrome._cjson
    if way == "python":
        _chrome._cjson = lambda: None  # type: ignore[assignment]
    try:
        _chrome.write_timeline(trace, given)
    finally:
        _chrome._cjson = c_module  # type: ignore[assignment]
    whole = b"".join(given)
    assert b"<rewind>" not in whole
    assert _meaning(whole) == _meaning(dumps(_chrome.to_chrome(trace)))
    assert len(whole) > 4_000_000
    assert max(len(chunk) for chunk in given) < 2_000_000
    assert len(given) > 4


@needs_c
def test_a_refusal_after_chunks_were_written_starts_the_file_again(tmp_path: Path) -> None:
    """The C placer gives up on a value past 64 bits in the last row, after megabytes were
    written: they are taken back, and the file is the Python way's, whole."""
    trace = _many_awaits(30_000)
    last_row = max(span.track for span in trace.spans)
    [span for span in trace.spans if span.track == last_row][-1].start_seq = 2**70
    given = _Given()
    _chrome.write_timeline(trace, given)
    assert given.index(b"<rewind>") > 1  # chunks were given before the refusal
    after = b"".join(given[given.index(b"<rewind>") + 1 :])
    assert _meaning(after) == _meaning(dumps(_chrome.to_chrome(trace)))
    path = tmp_path / "run.json"
    _chrome.write_chrome_json(trace, path)
    assert path.read_bytes() == after


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), st.booleans())
def test_the_python_rows_are_the_whole_document_byte_for_byte(trace: Trace, full: bool) -> None:
    # without C, _chrome_text writes the slices as text: the bytes of the document, encoded
    c_module = _chrome._cjson
    _chrome._cjson = lambda: None  # type: ignore[assignment]
    try:
        written = b"".join(_chrome.chrome_json(trace, full_args=full))
    finally:
        _chrome._cjson = c_module  # type: ignore[assignment]
    assert written == dumps(_chrome.to_chrome(trace, full_args=full))


def test_the_common_spans_are_written_as_text_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    made = _events_made_in_python(monkeypatch)  # only for those the text writer does not take
    monkeypatch.setattr(_chrome, "_cjson", lambda: None)
    spans = [
        Span(1, None, "run", "prog.py", 0.0, 3.0, 1),
        Span(2, 1, "task", "main", 0.0, 3.0, 2, attributes={"code.file.path": "prog.py"}),
        Span(3, 2, "await", "sleep", 0.5, 1.5, 2, attributes={"code.line.number": 7, "x": 0.5}),
        Span(4, 2, "blocked", "blocked", 2.0, 2.5, 2),  # its name is formatted in Python
        Span(5, 2, "await", "x", 2.5, 2.6, 2, attributes={"tags": ["a", "b"]}),  # a list
        Span(6, 2, "await", "y", 2.6, 2.7, 2, attributes={"small": 1e-9}),  # 1e-09 or 1e-9
    ]
    trace = Trace(spans)
    assert b"".join(_chrome.chrome_json(trace)) == dumps(_chrome.to_chrome(trace))
    assert made == [4, 5, 6]


@given(st.one_of(st.integers(-(10**18), 10**18), st.integers(-3000, 3000)))
def test_microseconds_are_written_as_the_encoders_write_them(ns: int) -> None:
    try:
        text = us_text(ns)
    except ValueError:  # past the decimals written here: the old way writes the file
        assert abs(ns) >= 4 * 10**15
        return
    assert text.encode() == dumps(_chrome._us(ns))


def _python_way(trace: Trace, full: bool = False) -> bytes:
    """The file written without the C accelerator (by ``_chrome_text``)."""
    c_module = _chrome._cjson
    _chrome._cjson = lambda: None  # type: ignore[assignment]
    try:
        return b"".join(_chrome.chrome_json(trace, full_args=full))
    finally:
        _chrome._cjson = c_module  # type: ignore[assignment]


@pytest.mark.parametrize("full", [False, True])
def test_the_text_of_equal_attributes_is_reused_only_when_it_is_the_same(full: bool) -> None:
    # each span's attributes equal the one before's as dicts, written otherwise: another
    # order, a value of another class (True == 1 == 1.0, 0.0 == -0.0, Decimal), another parent
    attributes: list[dict[str, Any]] = [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "x"},
        {"b": "x", "a": 1},
        {"a": True, "b": "x"},
        {"a": 1.0, "b": "x"},
        {"a": 1, "b": "x"},
        {"a": Decimal(1), "b": "x"},
        {"a": 0.0},
        {"a": -0.0},
        {"code.file.path": "prog.py", "asynctrace.awaited": "sleep"},
        {"code.file.path": "prog.py", "asynctrace.awaited": "sleep"},
    ]
    spans = [
        Span(1, None, "run", "prog.py", 0.0, 9.0, 1),
        Span(2, 1, "task", "main", 0.0, 9.0, 2, attributes={"code.file.path": "prog.py"}),
        Span(3, 1, "task", "main", 0.0, 9.0, 3, attributes={"code.file.path": "other.py"}),
    ]
    for sid, attrs in enumerate(attributes, 4):
        parent = 2 if sid < 14 else 3  # the last span's parent has another file
        start = sid / 10
        end = start + 0.05
        spans.append(Span(sid, parent, "await", "sleep", start, end, parent, attributes=attrs))
    trace = Trace(spans)
    written = _python_way(trace, full)
    assert written == dumps(_chrome.to_chrome(trace, full_args=full))
    args = [e["args"] for e in json.loads(written)["traceEvents"] if e.get("cat") == "await"]
    assert [[key for key in a if key in "ab"] for a in args[1:3]] == [["a", "b"], ["b", "a"]]
    assert [a["a"] for a in args[:9]] == [1, 1, 1, True, 1.0, 1, "1", 0.0, -0.0]
    assert [str(a["a"]) for a in args[7:9]] == ["0.0", "-0.0"]
    # the same file as the parent's is left out (compact), another parent's is not
    assert ("code.file.path" in args[9], args[10]["code.file.path"]) == (full, "prog.py")


def test_rows_whose_starts_do_not_rise_are_sorted() -> None:
    # a tie, a start before the one before it (a hand-made trace), flow markers: the spans'
    # own order is not the file's, which is (start, the longer first, record order)
    spans = [
        Span(1, None, "run", "prog.py", 0.0, 3.0, 1),
        Span(2, 1, "task", "main", 0.0, 3.0, 2),
        Span(3, 2, "await", "b", 1.0, 1.5, 2),
        Span(4, 2, "await", "a", 0.5, 2.5, 2),
        Span(5, 2, "await", "c", 1.0, 2.0, 2),
        Span(6, 2, "task", "child", 0.75, 1.25, 6),
    ]
    trace = Trace(spans)
    written = _python_way(trace)
    assert written == dumps(_chrome.to_chrome(trace))
    slices = [e for e in json.loads(written)["traceEvents"] if e["ph"] == "X" and e["tid"] == 2]
    assert [e["name"] for e in slices if e["cat"] == "await"] == ["await a", "await c", "await b"]


def test_the_events_are_encoded_in_chunks_joined_by_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_chrome_text, "_CHUNK_EVENTS", 2)  # a chunk after every row
    spans = [Span(1, None, "run", "prog.py", 0.0, 3.0, 1)]
    for sid in range(2, 12):
        name = "gather(a × 2)" if sid % 3 else "fetch"  # some chunks are not ASCII
        spans.append(Span(sid, 1, "task", name, sid / 10, 2.0, sid % 4 + 2))
    trace = Trace(spans)
    assert _python_way(trace) == dumps(_chrome.to_chrome(trace))
