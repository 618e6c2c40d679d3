"""The JSON timeline: shape Perfetto needs, nesting after rounding, flows, counter, round trip."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import asynctrace
from asynctrace._export import _json
from asynctrace._export._chrome import MARKER_CAT, activity, to_chrome, write_chrome_json
from asynctrace._export._chrome_read import read_chrome_json
from asynctrace._model._spans import Span, Trace


def blog_trace() -> Trace:
    """The blog's gather example, as the recorder builds it (virtual clock, seconds).

    main gathers task1 (sleep 2) and task2 (sleep 1), then awaits the coroutine task3 (sleep 3).
    """

    def at(file_line: int) -> dict[str, object]:
        return {"code.file.path": "gather.py", "code.line.number": file_line}

    def task(
        sid: int, parent: int, name: str, task_name: str, a: float, b: float, s: int, e: int
    ) -> Span:
        attrs = {**at(3), "code.function.name": name, "asynctrace.task.name": task_name}
        return Span(sid, parent, "task", name, a, b, sid, attributes=attrs, start_seq=s, end_seq=e)

    def wait(
        sid: int, parent: int, track: int, what: str, a: float, b: float, s: int, e: int
    ) -> Span:
        attrs = {**at(5), "asynctrace.awaited": what}
        return Span(
            sid, parent, "await", what, a, b, track, attributes=attrs, start_seq=s, end_seq=e
        )

    spans = [
        Span(1, None, "run", "gather.py", 0.0, 5.0, 1, start_seq=0, end_seq=19),
        task(2, 1, "main", "Task-1", 0.0, 5.0, 1, 18),
        Span(
            3,
            2,
            "gather",
            "gather(task1, task2)",
            0.0,
            2.0,
            2,
            attributes=at(12),
            start_seq=2,
            end_seq=13,
        ),
        wait(4, 3, 2, "gather(task1, task2)", 0.0, 2.0, 5, 12),
        task(5, 3, "task1", "Task-2", 0.0, 2.0, 3, 11),
        wait(6, 5, 5, "asyncio.sleep(2)", 0.0, 2.0, 6, 10),
        task(7, 3, "task2", "Task-3", 0.0, 1.0, 4, 9),
        wait(8, 7, 7, "asyncio.sleep(1)", 0.0, 1.0, 7, 8),
        Span(
            9,
            2,
            "coroutine",
            "task3",
            2.0,
            5.0,
            2,
            attributes={**at(8), "code.function.name": "task3"},
            start_seq=14,
            end_seq=17,
        ),
        wait(10, 9, 2, "asyncio.sleep(3)", 2.0, 5.0, 15, 16),
    ]
    return Trace(spans, clock="virtual", epoch_ns=1_700_000_000_000_000_000)


def wide_trace(tasks: int, awaits: int, *, jitter: bool = True) -> Trace:
    """``tasks`` gathered tasks with ``awaits`` awaits each, on monotonic-looking times."""
    spans = [
        Span(1, None, "run", "fanout.py", 0.0, 1.0, 1, start_seq=0),
        Span(2, 1, "task", "main", 0.0, 1.0, 2, attributes={"asynctrace.task.name": "Task-1"}),
        Span(3, 2, "gather", "gather(work, ...)", 1e-6, 0.9, 2, start_seq=1),
        Span(4, 3, "await", "gather(work, ...)", 2e-6, 0.9, 2, start_seq=2),
    ]
    sid, seq = 5, 3
    path = "/home/someone/src/project/fanout.py"
    for i in range(tasks):
        a = 3e-6 + i * 1.3e-7 if jitter else 0.0
        b = 0.5 + i * 1.7e-7
        tid = sid
        attrs = {
            "asynctrace.task.name": f"Task-{i + 2}",
            "code.file.path": path,
            "code.line.number": 5,
            "code.function.name": "work",
        }
        spans.append(Span(tid, 3, "task", "work", a, b, tid, attributes=attrs, start_seq=seq))
        sid, seq = sid + 1, seq + 1
        step = (b - a) / awaits
        for k in range(awaits):
            s0 = a + k * step + 1.1e-7
            spans.append(
                Span(
                    sid,
                    tid,
                    "await",
                    "asyncio.sleep(0)",
                    s0,
                    s0 + step * 0.6,
                    tid,
                    attributes={
                        "asynctrace.awaited": "asyncio.sleep(0)",
                        "code.file.path": path,
                        "code.line.number": 7,
                    },
                    start_seq=seq,
                    end_seq=seq + 1,
                )
            )
            sid, seq = sid + 2, seq + 2
    return Trace(spans)


def x_events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc["traceEvents"] if e["ph"] == "X"]


def span_events(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {e["args"]["span_id"]: e for e in x_events(doc) if e["cat"] != MARKER_CAT}


def check_nesting(doc: dict[str, Any]) -> int:
    """Assert X events on every tid nest strictly, as Perfetto reads them (integer ns)."""
    by_tid: dict[int, list[tuple[int, int, int]]] = {}
    for i, e in enumerate(x_events(doc)):
        ts = round(e["ts"] * 1000)
        by_tid.setdefault(e["tid"], []).append((ts, ts + round(e["dur"] * 1000), i))
    checked = 0
    for slices in by_tid.values():
        slices.sort(key=lambda s: (s[0], -s[1], s[2]))
        stack: list[tuple[int, int, int]] = []
        for s in slices:
            while stack and stack[-1][1] <= s[0]:
                stack.pop()
            if stack:
                assert s[1] <= stack[-1][1], f"slice {s} overlaps its parent {stack[-1]}"
            stack.append(s)
            checked += 1
    return checked


def test_document_shape_and_metadata() -> None:
    doc = to_chrome(blog_trace())
    assert doc["displayTimeUnit"] == "ms"
    other = doc["otherData"]
    assert other["clock"] == "virtual"
    assert other["epoch_ns"] == 1_700_000_000_000_000_000
    assert other["dropped"] == 0 and other["spans"] == 10 and other["asynctrace"]
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    assert {
        "ph": "M",
        "pid": 1,
        "tid": 0,
        "name": "process_name",
        "args": {"name": "asynctrace: gather.py"},
    } in meta
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert names == {
        1: "run gather.py",
        2: "Task-1 main()",
        3: "Task-2 task1()",
        4: "Task-3 task2()",
    }
    sort = {e["tid"]: e["args"]["sort_index"] for e in meta if e["name"] == "thread_sort_index"}
    assert sort == {1: 1, 2: 2, 3: 3, 4: 4}
    assert all(e["pid"] == 1 for e in doc["traceEvents"])


def test_slices_names_times_and_args() -> None:
    ev = span_events(to_chrome(blog_trace()))
    assert ev[10]["name"] == "await asyncio.sleep(3)"
    assert ev[5]["name"] == "task1()" and ev[9]["name"] == "task3()"
    assert ev[3]["name"] == "gather(task1, task2)"
    # trace time 0 is ts 1 us (otherData.origin_us): Perfetto drops negative timestamps
    assert (ev[10]["ts"], ev[10]["dur"], ev[10]["tid"]) == (2_000_001, 3_000_000, 2)
    assert ev[5]["tid"] == 3 and ev[7]["tid"] == 4
    assert ev[6]["cat"] == "await"
    # compact: what the event already says (cat, row, slice name, status ok) is not repeated
    # ... and neither is a file path equal to the parent's
    assert ev[6]["args"] == {
        "span_id": 6,
        "parent_id": 5,
        "start_seq": 6,
        "end_seq": 10,
        "code.line.number": 5,
    }
    assert ev[1]["args"]["parent_id"] is None
    full = span_events(to_chrome(blog_trace(), full_args=True))
    assert full[6]["args"] == {
        "span_id": 6,
        "parent_id": 5,
        "kind": "await",
        "status": "ok",
        "name": "asyncio.sleep(2)",
        "track": 5,
        "start_seq": 6,
        "end_seq": 10,
        "code.file.path": "gather.py",
        "code.line.number": 5,
        "asynctrace.awaited": "asyncio.sleep(2)",
    }


def test_blocked_and_error_names() -> None:
    spans = [
        Span(1, None, "task", "t", 0.0, 4.0, 1, attributes={"asynctrace.task.name": "Task-1"}),
        Span(2, 1, "blocked", "blocked", 0.5, 3.5, 1),
        Span(3, 1, "await", "Queue.get", 3.5, 4.0, 1, status="error", error="ValueError: boom"),
    ]
    ev = span_events(to_chrome(Trace(spans)))
    assert ev[2]["name"] == "blocked 3.000 s"
    assert ev[3]["name"] == "await Queue.get"
    assert ev[3]["args"]["error"] == "ValueError: boom" and ev[3]["args"]["status"] == "error"


def test_nesting_holds_after_rounding_and_clamps_overlaps(tmp_path: Path) -> None:
    spans = [
        Span(1, None, "task", "t", 0.0, 1e-3, 1, attributes={"asynctrace.task.name": "Task-1"}),
        # child ends 0.4 ns after its parent: rounds past it unless clamped
        Span(2, 1, "coroutine", "c", 1.0000004e-4, 1.0000004e-3, 1, start_seq=1),
        # overlaps c without nesting in it (hand-made traces can do this)
        Span(3, 1, "coroutine", "d", 5e-4, 2e-3, 1, start_seq=2),
        Span(4, 3, "await", "x", 9e-4, 1.5e-3, 1, start_seq=3),
    ]
    doc = to_chrome(Trace(spans))
    assert check_nesting(doc) == 4
    ev = span_events(doc)
    assert ev[3]["ts"] + ev[3]["dur"] <= ev[2]["ts"] + ev[2]["dur"]
    assert ev[3]["args"]["unclamped_end"] == 2001
    path = tmp_path / "t.json"
    write_chrome_json(Trace(spans), path)
    back = read_chrome_json(path)
    assert back.by_id[3].end == pytest.approx(2e-3, abs=1e-6)  # the true end survives


def test_nesting_on_a_large_trace() -> None:
    doc = to_chrome(wide_trace(300, 10))
    assert check_nesting(doc) > 3300


def test_tids_small_and_in_creation_order() -> None:
    trace = wide_trace(50, 1)
    doc = to_chrome(trace)
    names = [e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "thread_name"]
    assert names[:3] == ["run fanout.py", "Task-1 main()", "Task-2 work()"]
    tids = sorted({e["tid"] for e in x_events(doc)})
    assert tids == list(range(1, 53))


def flows(doc: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(e["ph"], e["id"]): e for e in doc["traceEvents"] if e["ph"] in "sf"}


def enclosing(doc: dict[str, Any], tid: int, ts: float) -> list[dict[str, Any]]:
    return [
        e
        for e in x_events(doc)
        if e["tid"] == tid and e["ts"] <= ts < e["ts"] + max(e["dur"], 1e-3)
    ]


def test_flows_reference_existing_slices() -> None:
    doc = to_chrome(blog_trace())
    fl = flows(doc)
    ids = {i for _, i in fl}
    assert len(ids) == 5  # spawn main (from the run), task1, task2; join task1, task2
    for i in ids:
        s, f = fl["s", i], fl["f", i]
        assert s["cat"] == f["cat"] and s.get("name") == f.get("name")
        assert s["ts"] < f["ts"]  # Perfetto does not order flow events at equal times
        assert enclosing(doc, s["tid"], s["ts"]), f"flow {i} starts outside any slice"
        if f.get("bp") == "e":
            assert enclosing(doc, f["tid"], f["ts"]), f"flow {i} ends outside any slice"
    spawns = [fl["f", i] for i in ids if fl["f", i]["cat"] == "spawn"]
    assert sorted(f["tid"] for f in spawns) == [2, 3, 4]
    for f in spawns:  # binds to the next slice to begin on the row: the task's own
        assert "bp" not in f and f["ts"] == 0.999 and f["ts"] > 0
        after = [e for e in x_events(doc) if e["tid"] == f["tid"] and e["ts"] > f["ts"]]
        first = min(after, key=lambda e: (e["ts"], -e["dur"]))
        assert first["cat"] == "task" and first["ts"] == 1
    joins = [fl["f", i] for i in ids if fl["f", i]["cat"] == "join"]
    assert [f["tid"] for f in joins] == [2, 2]
    assert all(f["ts"] == pytest.approx(2_000_001, abs=0.01) for f in joins)  # where main resumes
    assert all(f["bp"] == "e" for f in joins)
    starts = sorted(fl["s", i]["ts"] for i in ids if fl["s", i]["cat"] == "join")
    assert starts == pytest.approx([1_000_001, 2_000_001], abs=0.01)  # where each task ended
    assert all(e["ts"] >= 0 for e in doc["traceEvents"] if "ts" in e)
    # ten spans, a spawn marker on the run's row and on main's (for both tasks), one resume
    assert check_nesting(doc) == 10 + 3


def test_a_task_spawned_later_has_its_arrow_start_when_it_starts() -> None:
    # main starts a task a second, then gathers two: each spawning moment its own marker on
    # main's row (an arrow from the first one would say the later tasks began then)
    async def job() -> None:
        await asyncio.sleep(0.5)

    @asynctrace.trace
    async def main() -> None:
        tasks = []
        for _ in range(3):
            tasks.append(asyncio.create_task(job()))
            await asyncio.sleep(1)
        await asyncio.gather(job(), job())
        await asyncio.gather(*tasks)

    with asynctrace.tracing(virtual_time=True) as tracing:
        asyncio.run(main())
    doc = to_chrome(tracing.trace)
    fl = flows(doc)
    by_tid = {e["tid"]: e for e in x_events(doc) if e["cat"] == "task"}
    main_tid = next(tid for tid, e in by_tid.items() if e["name"] == "main()")
    spawned = [
        (fl["s", i], f) for (ph, i), f in fl.items() if ph == "f" and f["cat"] == "spawn"
        and fl["s", i]["tid"] == main_tid
    ]  # fmt: skip
    assert len(spawned) == 5
    for s, f in spawned:  # 2 ns before the task's slice, which the "f" binds to
        assert by_tid[f["tid"]]["ts"] - s["ts"] == pytest.approx(0.002, abs=1e-6)
    markers = [
        e["name"] for e in x_events(doc)
        if e["cat"] == MARKER_CAT and e["tid"] == main_tid and e["name"].startswith("start ")
    ]  # fmt: skip
    assert [m.split()[::2] for m in markers[:3]] == [["start", "job()"]] * 3  # start Task-N job()
    assert len(set(markers[:3])) == 3 and markers[3:] == ["start 2 tasks"]


def counter_at(doc: dict[str, Any], t_us: float) -> dict[str, int]:
    points = [e for e in doc["traceEvents"] if e["ph"] == "C"]
    assert points == sorted(points, key=lambda e: e["ts"])
    value: dict[str, int] = {}
    for e in points:
        if e["ts"] <= t_us:
            value = e["args"]
    return value


def test_counter_for_the_gather_example() -> None:
    doc = to_chrome(blog_trace())
    assert counter_at(doc, 500_001) == {"running": 2, "waiting": 1}  # task1, task2; main joins
    assert counter_at(doc, 1_500_001) == {"running": 1, "waiting": 1}
    assert counter_at(doc, 3_000_001) == {"running": 1, "waiting": 0}  # main in sleep(3)
    assert counter_at(doc, 5_000_001) == {"running": 0, "waiting": 0}
    assert activity(blog_trace())[0] == (0.0, 2, 1)


def semaphore_jobs_trace() -> Trace:
    """Six jobs of 1 s behind ``Semaphore(2)``, gathered by main, under the virtual clock (on
    a thread of its own: a test may leave an event loop in this one)."""

    async def job(sem: asyncio.Semaphore) -> None:
        async with sem:
            await asyncio.sleep(1)

    async def main() -> None:
        sem = asyncio.Semaphore(2)
        await asyncio.gather(*(job(sem) for _ in range(6)))

    with asynctrace.tracing(virtual_time=True, otel=False) as tracing:
        runner = threading.Thread(target=asyncio.run, args=(main(),))
        runner.start()
        runner.join()
    return tracing.trace


def test_tasks_queued_on_a_semaphore_are_counted_waiting_as_in_the_terminal() -> None:
    """The file's counters say two jobs run and five tasks wait (four jobs in the semaphore's
    queue, main on the gather), as the terminal's header does: a wait on a lock, queue or
    semaphore is no concurrency."""
    trace = semaphore_jobs_trace()
    doc = to_chrome(trace)
    start_us = min(e["ts"] for e in doc["traceEvents"] if e.get("cat") == "task")
    assert counter_at(doc, start_us + 500_000) == {"running": 2, "waiting": 5}
    assert counter_at(doc, start_us + 2_500_000) == {"running": 2, "waiting": 1}
    header = asynctrace.format_timeline(trace, width=100).splitlines()[1]
    assert "overlap 3.000 s" in header, header


def test_counter_is_bounded_on_big_traces() -> None:
    doc = to_chrome(wide_trace(3000, 1))
    points = [e for e in doc["traceEvents"] if e["ph"] == "C"]
    assert 2 <= len(points) <= 2000
    assert max(p["args"]["running"] for p in points) == 3000  # the peak survives downsampling


@pytest.mark.parametrize("full_args", [False, True])
def test_round_trip(tmp_path: Path, full_args: bool) -> None:
    trace = blog_trace()
    trace.by_id[10].attributes["asynctrace.awaited"] = "differs from the name"
    del trace.by_id[8].attributes["asynctrace.awaited"]  # absent stays absent
    trace.by_id[7].attributes["code.function.name"] = "task2"  # same as the name
    trace.by_id[9].name = "weird()"  # display name "weird()()" still reads back
    trace.by_id[5].attributes["code.file.path"] = "other.py"  # differs from its parent's
    del trace.by_id[4].attributes["code.file.path"]  # absent though the parent has one
    trace.by_id[8].status = "cancelled"
    trace.by_id[6].status, trace.by_id[6].error = "error", "ValueError: boom"
    trace.by_id[6].attributes["kind"] = "user attribute named like a reserved key"
    path = tmp_path / "trace.json"
    write_chrome_json(trace, path, full_args=full_args)
    back = read_chrome_json(path)
    assert (back.clock, back.epoch_ns, back.dropped) == ("virtual", trace.epoch_ns, 0)
    assert len(back) == len(trace)
    for old in trace:
        new = back.by_id[old.span_id]
        assert (new.name, new.kind, new.parent_id, new.status, new.track, new.error) == (
            old.name,
            old.kind,
            old.parent_id,
            old.status,
            old.track,
            old.error,
        )
        assert (new.start_seq, new.end_seq) == (old.start_seq, old.end_seq)
        assert new.start == pytest.approx(old.start, abs=1e-6)
        assert new.end == pytest.approx(old.end, abs=1e-6)
        assert new.attributes == old.attributes


def test_round_trip_monotonic_times(tmp_path: Path) -> None:
    trace = wide_trace(20, 5)
    path = tmp_path / "w.json"
    write_chrome_json(trace, path)
    back = read_chrome_json(path)
    for old in trace:
        new = back.by_id[old.span_id]
        assert abs(new.start - old.start) < 1e-6 and abs(new.end - old.end) < 1e-6


def test_unicode_markup_and_control_characters_survive(tmp_path: Path) -> None:
    hostile = 'fetch("<b>ü</b>")\x1b[2J\x00\n\u202e⏳ 日本'
    spans = [
        Span(1, None, "task", hostile, 0.0, 1.0, 1, attributes={"asynctrace.task.name": "T\x07"}),
        Span(2, 1, "await", "\ud800lone surrogate", 0.0, 0.5, 1),
    ]
    path = tmp_path / "u.json"
    write_chrome_json(Trace(spans), path)
    raw = path.read_bytes()
    assert b"\x1b" not in raw and b"\x00" not in raw and b"\x07" not in raw
    json.loads(raw)  # valid JSON
    back = read_chrome_json(path)
    assert back.by_id[1].name == hostile
    # strict readers (Perfetto's JSON parser, orjson) refuse an escaped lone surrogate
    assert back.by_id[2].name == "\ufffdlone surrogate"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "does not exist"),
        (b"not json {", "is not JSON"),
        (b'{"hello": 1}', "not a Chrome trace"),
        (
            b'{"traceEvents": [{"ph": "X", "name": "f", "ts": 0, "dur": 1, "pid": 1, "tid": 1}]}',
            "not one written by asynctrace",
        ),
        (
            b'{"traceEvents": [{"ph": "X", "ts": 0, "dur": 1, "args": {"span_id": 1}}]}',
            "malformed span",
        ),
        (b"[]", "not one written by asynctrace"),
    ],
)
def test_bad_input_gives_one_clear_sentence(
    tmp_path: Path, content: bytes | None, fragment: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=fragment) as info:
        read_chrome_json(path)
    message = str(info.value)
    assert str(path) in message and "written by asynctrace" in message and "\n" not in message


def test_empty_trace_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    write_chrome_json(Trace([]), path)
    assert len(read_chrome_json(path)) == 0


def test_size_for_22000_spans(tmp_path: Path) -> None:
    trace = wide_trace(2000, 10)
    assert len(trace) == 22004
    path = tmp_path / "big.json"
    write_chrome_json(trace, path)  # its speed is measured by bench/, not here
    assert path.stat().st_size < 6_200_000  # a tenth of VizTracer's 62 MB


def test_every_encoder_writes_the_same_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = blog_trace()
    trace.by_id[6].attributes["odd"] = {1, 2}  # not JSON: written as its str()
    documents = {}
    for name, encode in _json.available_encoders().items():  # orjson, the C one, json
        monkeypatch.setattr(_json, "_encoder", lambda encode=encode: encode)
        write_chrome_json(trace, tmp_path / f"{name}.json")
        documents[name] = json.loads((tmp_path / f"{name}.json").read_bytes())
    assert len(documents) >= 2
    first, *others = documents.values()
    assert all(other == first for other in others)
    assert span_events(first)[6]["args"]["odd"] == "{1, 2}"


@st.composite
def random_traces(draw: st.DrawFn) -> Trace:
    """Spans on three rows with arbitrary (sub-nanosecond, overlapping, tied) times."""
    times = st.floats(0, 2, allow_nan=False).map(lambda x: round(x, draw(st.integers(3, 12))))
    spans = []
    for sid in range(1, draw(st.integers(1, 25)) + 1):
        a, b = sorted((draw(times), draw(times)))
        track = 1 if sid == 1 else draw(st.sampled_from([1, 2, 3]))
        kind = "task" if sid in (1, 2, 3) else draw(st.sampled_from(["await", "coroutine"]))
        parent = None if sid == 1 else draw(st.integers(1, sid - 1))
        spans.append(Span(sid, parent, kind, f"s{sid}", a, b, track, start_seq=sid, end_seq=sid))
    return Trace(spans)


@settings(max_examples=150, deadline=None)
@given(random_traces())
def test_any_trace_nests_and_round_trips(
    tmp_path_factory: pytest.TempPathFactory, trace: Trace
) -> None:
    doc = to_chrome(trace)
    check_nesting(doc)
    assert all(e["ts"] >= 0 for e in doc["traceEvents"] if "ts" in e)
    path = tmp_path_factory.mktemp("h") / "t.json"
    write_chrome_json(trace, path)
    back = read_chrome_json(path)
    for old in trace:
        new = back.by_id[old.span_id]
        assert abs(new.start - old.start) <= 1e-6 and abs(new.end - old.end) <= 1e-6
        assert (new.parent_id, new.kind, new.track, new.name) == (
            old.parent_id,
            old.kind,
            old.track,
            old.name,
        )
