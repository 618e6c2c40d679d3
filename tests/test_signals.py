"""Ctrl-C and SIGTERM during `asynctrace run`: the program ends as under python, and the trace
of everything recorded up to then is still written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asynctrace._export._chrome_read import read_chrome_json

SERVER = """
import asyncio

async def handle(n):
    await asyncio.sleep(3600)

async def main():
    print("ready", flush=True)
    await asyncio.gather(*(handle(i) for i in range(3)))

asyncio.run(main())
"""


def run_and_signal(cmd: list[str], sig: int) -> tuple[int, str, str]:
    """Start ``cmd``, wait for its "ready", send ``sig``; (exit status, stdout, stderr)."""
    process = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background process may inherit SIGINT ignored; a terminal's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    time.sleep(0.2)
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    return process.returncode, ready + out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_program_as_python_and_keeps_the_trace(tmp_path: Path, sig: int) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    json_path = tmp_path / "t.json"
    plain = run_and_signal([sys.executable, str(script)], sig)
    traced = run_and_signal(
        [
            sys.executable,
            "-m",
            "asynctrace",
            "run",
            "--no-timeline",
            "--json",
            str(json_path),
            str(script),
        ],
        sig,
    )
    assert traced[0] == plain[0] == -sig
    assert traced[1] == plain[1] == "ready\n"
    ours = [line for line in traced[2].splitlines() if line.startswith("asynctrace:")]
    assert ours == [f"asynctrace: JSON timeline: {json_path} (open it in https://ui.perfetto.dev)"]
    program_err = [line for line in traced[2].splitlines() if not line.startswith("asynctrace:")]
    assert program_err == plain[2].splitlines()
    trace = read_chrome_json(str(json_path))
    handlers = [s for s in trace if s.name == "handle" and s.kind == "task"]
    assert len(handlers) == 3
    # Ctrl-C: asyncio.run cancels the tasks; SIGTERM: nothing more runs, they stay open.
    expected = "cancelled" if sig == signal.SIGINT else "unfinished"
    assert {s.status for s in handlers} == {expected}
    sleeps = [s for s in trace if s.name == "asyncio.sleep(3600)"]
    assert {s.status for s in sleeps} == {expected}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_still_writes_the_html_page_and_sends_otlp(tmp_path: Path, sig: int) -> None:
    """Every output, not just the JSON: the HTML page, the OTLP/JSON file and OTLP export."""
    import json
    import os

    sys.path.insert(0, str(Path(__file__).parent))
    import otlp_receiver

    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    html, otlp_json = tmp_path / "t.html", tmp_path / "t.otlp.json"
    receiver = otlp_receiver.receiver("http/protobuf")
    try:
        status, _out, err = run_and_signal(
            [
                sys.executable, "-m", "asynctrace", "run", "--no-timeline", "--no-json",
                "--html", str(html), "--otlp-json", str(otlp_json),
                f"--otlp={receiver.endpoint}", "--otlp-protocol", "http/protobuf", str(script),
            ],
            sig,
        )  # fmt: skip
        received = [s for s in receiver.spans if s.name == "handle"]
    finally:
        receiver.stop()
    assert status == -sig, err
    assert "asynctrace: HTML timeline:" in err
    assert html.read_text().count("handle") >= 3
    expected = "cancelled" if sig == signal.SIGINT else "unfinished"
    assert len(received) == 3
    assert {s.attributes.get("asynctrace.status") for s in received} == {expected}
    document = json.loads(otlp_json.read_text())
    spans = [
        span
        for resource in document["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    assert [span["name"] for span in spans].count("handle") == 3
