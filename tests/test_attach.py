"""``asynctrace attach PID``: a program started with plain python, recorded and left as found.

The targets (tests/attach_programs/) run on the interpreter without asynctrace on its path
(``sys._base_executable``): the injected script brings it.  Attaching needs Python 3.14+
(``sys.remote_exec``); on older versions only the refusal is tested.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import asynctrace

PROGRAMS = Path(__file__).parent / "attach_programs"
ROOT = Path(__file__).parent.parent
NEEDS_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="attach needs sys.remote_exec (Python 3.14+)"
)
PLAIN_PYTHON = getattr(sys, "_base_executable", sys.executable)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env


class Target:
    """A program started with plain python, waited for until it prints ``ready``."""

    def __init__(
        self,
        *args: str,
        python: str = PLAIN_PYTHON,
        user: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [python, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(**(env or {})),
            cwd=PROGRAMS,
            user=user,
        )
        self.pid = self.proc.pid

    def ready(self) -> Target:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "ready\n", line + self.proc.stderr.read()  # type: ignore[union-attr]
        return self

    def finish(self, timeout: float = 60) -> tuple[str, str, int]:
        """(stdout after ``ready``, stderr, exit status); it writes little to stderr."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        # Not communicate(): it would miss what readline() read ahead into the buffer.
        out = self.proc.stdout.read()
        err = self.proc.stderr.read()
        return out, err, self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def targets() -> Iterator[list[Target]]:
    made: list[Target] = []
    yield made
    for target in made:
        target.kill()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A TMPDIR short enough for the attacher's socket (else it uses /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="at-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def started(targets: list[Target], *args: str, **options: Any) -> Target:
    """A target, ready, killed at the end of the test if still running."""
    target = Target(*args, **options)
    targets.append(target)
    return target.ready()


def twins(targets: list[Target], *args: str) -> tuple[Target, Target]:
    """The same program twice, both ready: one to leave alone, one to attach to."""
    plain, attached = Target(*args), Target(*args)
    targets += [plain, attached]
    plain.ready()
    attached.ready()
    return plain, attached


def record(target: Target, path: Path, *options: object) -> asynctrace.Trace:
    """Attach with ``--json path``; the trace."""
    result = attach(target.pid, *options, "--json", path, "--no-timeline")
    assert result.returncode == 0, result.stderr
    return asynctrace.load(path)


def refused_and_untouched(server: Target, items: int, *words: str) -> None:
    """An attach to a queue_server.py of ``items`` is refused; the server ends as ever."""
    one_error_line(attach(server.pid, "--duration", 1), *words)
    out, err, status = server.finish()
    assert (out.endswith(f"total {items * (items - 1) // 2}\n"), err, status) == (True, "", 3)


def attach(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asynctrace", "attach", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asynctrace: error: "), result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


@NEEDS_314
def test_attached_twice_the_server_shows_its_tasks_and_runs_as_if_never_attached(
    targets: list[Target], tmp_path: Path
) -> None:
    plain, attached = twins(targets, "queue_server.py", "1400", "0.005")
    for round_ in (1, 2):
        path = tmp_path / f"attach{round_}.json"
        result = attach(attached.pid, "--duration", 2, "--json", path, "--width", 100)
        assert result.returncode == 0, result.stderr
        assert "3 tasks running" in result.stderr
        assert "producer()" in result.stderr  # the terminal timeline
        trace = asynctrace.load(path)
        (run,) = trace.spans_matching(kind="run")
        assert run.name == "queue_server.py"
        assert 1.9 < run.duration < 4
        tasks = {span.name: span for span in trace.spans if span.kind == "task"}
        assert {"producer", "consumer", "main"} <= set(tasks), sorted(tasks)
        for name in ("producer", "consumer", "main"):
            assert tasks[name].status == "unfinished"  # existing tasks, still running
            assert tasks[name].start == pytest.approx(0, abs=0.05)
        awaits = [span for span in trace.spans if span.kind == "await"]
        names = {
            task: {span.name for span in awaits if span.track == tasks[task].span_id}
            for task in ("producer", "consumer")
        }
        assert names == {"producer": {"asyncio.sleep(0.005)"}, "consumer": {"Queue.get"}}
        for span in awaits:  # each at its line of the program
            assert str(span.attributes["code.file.path"]).endswith("queue_server.py")
            assert span.attributes["code.line.number"] in (15, 22, 32)
        sleeps = [s for s in awaits if s.name == "asyncio.sleep(0.005)"]
        assert len(sleeps) > 100  # every await from the attach on, not one snapshot
        # main awaits them in a gather that began before the attach: a span from the attach on
        (gather,) = trace.spans_matching(kind="gather")
        assert gather.name == "gather(producer, consumer)" and gather.status == "unfinished"
        assert gather.parent_id == tasks["main"].span_id
        assert tasks["producer"].parent_id == tasks["consumer"].parent_id == gather.span_id
    expected = plain.finish()
    assert expected[2] == 3 and expected[0].endswith("total 979300\n")
    assert attached.finish() == expected


@NEEDS_314
def test_detach_leaves_the_program_as_found_even_when_the_attacher_is_killed(
    targets: list[Target], tmp_path: Path, short_tmp: Path
) -> None:
    plain, probe = twins(targets, "probe_server.py", "6")
    trace = record(probe, tmp_path / "probe.json", "--duration", 1)
    jobs = [s for s in trace.spans if s.kind == "task" and s.name == "job"]
    assert len(jobs) >= 5
    ended = [job for job in jobs if job.status == "ok"]
    assert ended
    for job in ended:
        assert [c.name for c in job.children if c.kind == "await"] == ["asyncio.sleep(0.05)"]
    # An attacher killed while recording: the program detaches by itself and tidies up.
    scratch = short_tmp
    killed = subprocess.Popen(
        [sys.executable, "-m", "asynctrace", "attach", str(probe.pid)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert killed.stderr is not None
    assert "recording until Ctrl-C" in killed.stderr.readline()
    assert list(scratch.iterdir())
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    deadline = time.monotonic() + 10
    while list(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(scratch.iterdir())  # the program saw the end of the socket, and detached
    out, err, status = probe.finish()
    assert "changed: []\nwrapped tasks: 0\n" in out
    assert (out, err, status) == plain.finish()


@NEEDS_314
def test_ctrl_c_stops_the_recording_and_writes_the_outputs(
    targets: list[Target], tmp_path: Path
) -> None:
    probe = started(targets, "probe_server.py", "4")
    html = tmp_path / "page.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "asynctrace", "attach", str(probe.pid), "--html", str(html)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    assert "recording until Ctrl-C" in proc.stderr.readline()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, rest
    assert "detached from process" in rest and "HTML timeline" in rest
    assert "job" in html.read_text()
    assert "changed: []" in probe.finish()[0]


@NEEDS_314
@pytest.mark.parametrize(
    ("env", "args"),
    [({"PYTHON_DISABLE_REMOTE_DEBUG": "1"}, []), ({}, ["-X", "disable-remote-debug"])],
    ids=["variable", "option"],
)
def test_remote_debugging_off_is_refused(
    targets: list[Target], env: dict[str, str], args: list[str]
) -> None:
    target = started(targets, *args, "queue_server.py", "200", env=env)
    refused_and_untouched(target, 200, "remote debugging off", "restart it")


@NEEDS_314
def test_a_program_without_a_running_loop_is_refused_and_left_alone(
    targets: list[Target], tmp_path: Path
) -> None:
    busy = "import time\nprint('ready', flush=True)\nend = time.time() + 4\n" + (
        "while time.time() < end: time.sleep(0.01)\nprint('bye')\n"
    )
    target = started(targets, "-c", busy)
    one_error_line(attach(target.pid, "--duration", 1), "no asyncio event loop is running")
    assert target.finish() == ("bye\n", "", 0)


@NEEDS_314
def test_an_idle_loop_that_never_runs_python_code_is_refused_and_tidied_later(
    targets: list[Target], short_tmp: Path
) -> None:
    idle = (
        "import asyncio, signal\n"
        "async def main():\n"
        "    woken = asyncio.Event()\n"
        "    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, woken.set)\n"
        "    print('ready', flush=True)\n"
        "    await woken.wait()\n"
        "    print('woken')\n"
        "asyncio.run(main())\n"
    )
    target = started(targets, "-c", idle)
    scratch = short_tmp
    result = attach(target.pid, "--duration", 1, env={**os.environ, "TMPDIR": str(scratch)})
    one_error_line(result, "ran no Python code", "Nothing was changed")
    assert list(scratch.iterdir())  # the script is still to run: it stays for the program
    target.proc.send_signal(signal.SIGUSR1)
    assert target.finish() == ("woken\n", "", 0)
    assert not list(scratch.iterdir())  # it ran, found nobody, and removed the directory


@NEEDS_314
def test_other_targets_are_refused_in_one_line() -> None:
    not_python = subprocess.Popen(["sleep", "30"])
    try:
        one_error_line(attach(not_python.pid), "not a Python 3.14+ program")
    finally:
        not_python.kill()
        not_python.wait()
    gone = subprocess.Popen(["true"])
    gone.wait()
    one_error_line(attach(gone.pid), "no process")
    one_error_line(attach(os.getpid() + 10**6), "no process")


@NEEDS_314
def test_a_target_of_another_python_version_is_refused(targets: list[Target]) -> None:
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    other = next(
        (v for v in ("3.15", "3.14", "3.13") if v != mine and shutil.which(f"python{v}")), None
    )
    if other is None:
        assert os.environ.get("CI") != "true", "CI runs the chroot with 3.13, 3.14 and 3.15"
        pytest.skip("no other Python 3.13+ on PATH")
    target = started(targets, "queue_server.py", "200", python=f"python{other}")
    one_error_line(attach(target.pid), f"runs Python {other}", f"python{other} -m asynctrace")
    assert target.finish()[2] == 3


@NEEDS_314
def test_permission_refused(targets: list[Target]) -> None:
    # as root, attach as nobody to a process of root; else to init, another user's process
    root = os.geteuid() == 0
    target_pid = started(targets, "queue_server.py", "400").pid if root else 1
    nobody = {"user": 65534} if os.geteuid() == 0 else {}
    result = subprocess.run(
        [sys.executable, "-m", "asynctrace", "attach", str(target_pid)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **nobody,  # type: ignore[call-overload]
    )
    one_error_line(result, "permission refused", "as root")


@NEEDS_314
@pytest.mark.skipif(os.geteuid() != 0, reason="root attaching to another user's program")
def test_root_attaches_to_another_users_program(targets: list[Target], tmp_path: Path) -> None:
    target = started(targets, "queue_server.py", "500", user=65534)
    trace = record(target, tmp_path / "nobody.json", "--duration", 1)
    assert {"producer", "consumer"} <= {s.name for s in trace.spans}
    out, err, status = target.finish()
    assert (out.endswith("total 124750\n"), err, status) == (True, "", 3)


def test_usage_mistakes_are_one_line() -> None:
    one_error_line(attach("abc"), "'abc' is not a process id")
    one_error_line(attach("123", "--duration", "-1"), "--duration", "positive number")
    if sys.version_info >= (3, 14):  # before, the version is refused first
        one_error_line(attach("123", "--json", "server.py"), "--json", "Python file")
        gone = str(os.getpid() + 10**6)
        one_error_line(attach("--otlp", gone), f"no process {gone}")  # the PID, not an endpoint
    one_error_line(attach(), "PID")


def test_a_python_without_remote_exec_says_what_attach_needs() -> None:
    """Python before 3.14 (here, or simulated on 3.14+ by taking remote_exec away)."""
    code = (
        "import sys\n"
        "if hasattr(sys, 'remote_exec'): del sys.remote_exec\n"
        "from asynctrace._commands._cli import main\n"
        f"main(['attach', '{os.getpid()}'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    one_error_line(result, "needs Python 3.14", "python3.14 -m asynctrace attach")


@NEEDS_314
def test_existing_tasks_that_end_while_attached(targets: list[Target], tmp_path: Path) -> None:
    plain, attached = twins(targets, "ending_tasks.py")
    trace = record(attached, tmp_path / "ending.json", "--duration", 2.6)
    tasks = {span.name: span for span in trace.spans if span.kind == "task"}
    assert tasks["fails"].status == "error" and tasks["fails"].error == "ValueError: boom"
    assert tasks["blocks"].status == "ok"
    (blocked,) = trace.spans_matching(kind="blocked")
    assert blocked.track == tasks["blocks"].span_id and 0.25 < blocked.duration < 1
    expected = plain.finish()
    assert "Task exception was never retrieved" in expected[1]  # not retrieved by the tracer
    assert attached.finish() == expected


@NEEDS_314
def test_a_loop_that_ends_while_attached_is_told_to_detach(
    targets: list[Target], short_tmp: Path
) -> None:
    target = started(targets, "loop_ends.py")
    result = attach(target.pid, "--duration", 3, env={**os.environ, "TMPDIR": str(short_tmp)})
    assert result.returncode == 1, result.stderr
    assert "did not answer for 5 s" in result.stderr and "told to detach" in result.stderr
    assert target.finish() == ("changed: False\n", "", 0)
    assert not list(short_tmp.iterdir())  # the abort script ran and removed the directory


@NEEDS_314
def test_a_program_traced_already_is_refused(targets: list[Target]) -> None:
    run = ["-m", "asynctrace", "run", "--no-json", "--no-timeline", "queue_server.py", "400"]
    target = started(targets, *run, python=sys.executable)
    refused_and_untouched(target, 400, "being traced already")


@NEEDS_314
def test_otlp_and_html_outputs_are_made_by_the_attacher(
    targets: list[Target], tmp_path: Path
) -> None:
    import otlp_receiver

    target = started(targets, "queue_server.py", "400")
    html = tmp_path / "page.html"
    receiver = otlp_receiver.receiver("http/protobuf")
    try:
        result = attach(
            target.pid, "--duration", 1, "--html", html, "--no-timeline",
            f"--otlp={receiver.endpoint}", "--otlp-protocol", "http/protobuf",
        )  # fmt: skip
        spans = receiver.spans
    finally:
        receiver.stop()
    assert result.returncode == 0, result.stderr
    assert "OTLP:" in result.stderr and "HTML timeline" in result.stderr
    assert {s.resource["service.name"] for s in spans} == {"queue_server"}
    names = {s.name for s in spans}
    assert {"producer", "consumer", "Queue.get", "asyncio.sleep(0.005)"} <= names
    assert "producer" in html.read_text()


@NEEDS_314
def test_awaits_on_existing_tasks_name_them(targets: list[Target], tmp_path: Path) -> None:
    target = started(targets, "awaits_tasks.py")
    trace = record(target, tmp_path / "tasks.json", "--duration", 2)
    (main,) = [s for s in trace.spans if s.kind == "task" and s.name == "main"]
    awaits = [s.name for s in trace.spans if s.kind == "await" and s.track == main.span_id]
    # worker-1 at the attach (from the call graph), worker-2 after it (from the yield)
    assert awaits == ["worker-1 (worker)", "worker-2 (worker)"]
    assert target.finish() == ("1\n2\n3\n", "", 0)
