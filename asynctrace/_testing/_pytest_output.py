"""What the pytest plugin writes: JSON timelines, the failure report section, OTLP traces.

Every function here runs after the test's recording stopped, on pytest's thread.  A failure
to write is reported once on stderr and MUST NOT change the test's outcome.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from .._model._spans import Trace
from .._tracing import report
from ..testing import TraceAssertionError

_MAX_NAME = 150
_CLOCKS = {
    "virtual": "asynctrace's virtual time (loop time; waits take no real time)",
    "looptime": "looptime's fake loop time",
    "monotonic": "real time (monotonic clock)",
}


def timeline_name(nodeid: str) -> str:
    """A file name for a test's timeline: the test id with path and odd characters as ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", nodeid.replace("::", "."))
    return name.strip("_.")[:_MAX_NAME] + ".trace.json"


def write_json(nodeid: str, trace: Trace, directory: Path, written: set[str]) -> str | None:
    """Write the test's Chrome Trace JSON timeline into ``directory``; its path, or None.

    ``written`` holds the paths this session wrote: two test ids that clean up to the same
    file name get ``-2``, ``-3``...
    """
    try:
        from .._export._chrome import write_chrome_json

        directory.mkdir(parents=True, exist_ok=True)
        path = directory / timeline_name(nodeid)
        stem, n = str(path)[: -len(".trace.json")], 2
        while str(path) in written:
            path = Path(f"{stem}-{n}.trace.json")
            n += 1
        written.add(str(path))
        write_chrome_json(trace, path)
        return str(path)
    except Exception as exc:  # the timeline is ours: MUST NOT change the test's outcome
        report(f"could not write the JSON timeline of {nodeid}: {exc}")
        return None


def failure_section(
    trace: Trace, json_path: str | None, error: BaseException | None, *, virtual: bool = False
) -> str:
    """The ``asynctrace`` section of a failed test's report: clock, timeline path, timeline.

    ``virtual`` says that the test asked for virtual time: if no virtual-time loop ran in it,
    the trace's clock is the monotonic one, and the section says why rather than only which.
    """
    clock = f"clock: {trace.clock} ({_CLOCKS.get(trace.clock, 'unknown clock')})"
    if virtual and trace.clock != "virtual":
        clock = (
            "clock: virtual time was asked for, but no event loop ran in this test on it, so"
            f" the spans are on the {trace.clock} clock ({_CLOCKS.get(trace.clock, 'unknown')})"
        )
    lines = [clock, f"JSON timeline: {json_path or 'not written'}"]
    if isinstance(error, TraceAssertionError):
        lines.append("the spans involved are drawn in the error above")
    elif len(trace.spans) <= 1:
        lines.append("no spans were recorded besides the test's run span")
    else:
        try:
            from .._export._terminal import render_timeline

            lines += ["", render_timeline(trace, width=100, color=False, max_rows=30)]
        except Exception as exc:  # a report helper MUST NOT hide the failure it describes
            lines.append(f"(no timeline: {exc})")
    return "\n".join(lines)


def otlp_settings_for(endpoint: str) -> Any:
    """Resolve ``--asynctrace-otlp[=ENDPOINT]`` ('' for the default) into OTLP settings.

    Raises:
        pytest.UsageError: the value is a test path that argparse took, or a bad endpoint.
    """
    if endpoint and "://" not in endpoint and os.path.exists(endpoint):
        msg = (
            f"--asynctrace-otlp took {endpoint!r}, which is a path, as its endpoint; write "
            "--asynctrace-otlp=ENDPOINT, or put --asynctrace-otlp after the test paths"
        )
        raise pytest.UsageError(msg)
    from .._opentelemetry._otlp_config import otlp_settings

    protocol = None
    if endpoint.rstrip("/").endswith("/v1/traces") and not any(
        os.environ.get(f"OTEL_EXPORTER_OTLP_{k}PROTOCOL") for k in ("", "TRACES_")
    ):
        protocol = "http/protobuf"  # the OTLP/HTTP path; gRPC has no path
    try:
        return otlp_settings(endpoint or None, protocol, default_service="pytest")
    except ValueError as exc:
        raise pytest.UsageError(f"--asynctrace-otlp: {exc}") from None


class OtlpSink:
    """One OTLP exporter for the session, made at the first trace; each test its own trace id.

    Never touches the global OpenTelemetry tracer provider: SDK spans are built after the test
    and sent from the exporter's worker thread.
    """

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._export: Any = None

    def submit(self, nodeid: str, trace: Trace) -> None:
        """Queue the test's trace; returns at once."""
        try:
            from .._opentelemetry._otlp import new_span_id_base, new_trace_id
            from .._opentelemetry._otlp_send import OtlpExport

            if self._export is None:
                self._export = OtlpExport(self.settings)
            self._export.submit(trace, trace_id=new_trace_id(), span_id_base=new_span_id_base())
        except Exception as exc:  # an exporter MUST NOT fail the test
            report(f"OTLP export of {nodeid} failed: {exc}")

    def close(self) -> None:
        """Wait a bounded time for the queued traces; warns once on stderr if some were lost."""
        if self._export is not None:
            self._export.close()
            self._export = None
