"""OTLP sending: traces to one endpoint from a worker thread, confirmed, bounded, reported once.

Problem: an OTLP endpoint may be down, slow, refusing or far away; the program must neither
wait on it nor hear of it, except for one line when spans were lost.

Solution: :class:`OtlpExport` makes a trace's spans (:func:`~_otlp.otlp_spans`) or the
program's SDK spans (:func:`~_otlp_proto.from_sdk`) into what OTLP writes of each and encodes
them (:func:`~_otlp_proto.encode_request`) on a daemon thread, in batches, and sends
(``_otlp_transport``) on :data:`_IN_FLIGHT` more, :class:`_Senders`, so that a far receiver's
round trips overlap each other and the making of the next request; it counts the spans each
request really confirmed, says in one line why it failed (with secrets scrubbed), stops sending
after a failure, bounds what waits in its queue, and waits a bounded time at close.  Loggers of
the libraries it sends with (grpc, urllib3) are silenced for its threads.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from ._otlp import otlp_spans
from ._otlp_config import OtlpSettings
from ._otlp_proto import OtlpSpan, encode_request, from_sdk
from ._otlp_transport import Rejected, SendFailed, Transport, make_transport

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    from .._model._spans import Trace


@dataclass(frozen=True)
class ExportReport:
    """What an :class:`OtlpExport` delivered: spans confirmed by the receiver, out of total.

    ``endpoint`` is where they went, as safe to show as the failure line's (no credentials).
    """

    total: int
    sent: int
    reason: str | None = None
    endpoint: str = ""

    @property
    def not_sent(self) -> int:
        """Spans not confirmed by the receiver."""
        return self.total - self.sent


@dataclass
class _Job:
    """A trace to convert and send, or (``ready``) SDK spans to send as they are."""

    trace: Trace | None
    trace_id: int
    span_id_base: int
    parent_context: SpanContext | None
    link_all: bool
    ready: Sequence[ReadableSpan] = ()

    @property
    def size(self) -> int:
        return len(self.ready) if self.trace is None else len(self.trace.spans)


_STOP = object()

# Requests sent at once.  Fanout's whole process (43 requests) against a receiver that answers
# after 100 ms: one at a time 4.9 s, 2 at once 2.7 s, 4: 1.6 s, 8: 1.0 s, 16: 0.8-1.0 s (the
# making of the requests, 0.8 s, is then what is left); with no delay, 8 cost nothing measurable.
# 8: a collector 100 ms away costs a quarter second more than one on this machine, and what is
# alive stays 10 encoded requests (about 1.2 MB), one connection each over HTTP.
_IN_FLIGHT = 8


class OtlpExport:
    """Send traces to one OTLP endpoint from a worker thread, with a bounded wait at close.

    :meth:`submit` returns at once (the spans are built and sent on the worker thread);
    :meth:`close` waits at most ``settings.timeout + grace`` seconds, then writes at most one
    warning line to ``stream`` if spans were not confirmed, and returns the
    :class:`ExportReport`.  Nothing raises into the caller: a failure is counted and reported.
    The worker is a daemon thread, so an endpoint that never answers cannot hold the process.

    Args:
        settings: from :func:`~asynctrace._opentelemetry._otlp_config.otlp_settings`.
        stream: where the warning goes (default ``sys.stderr`` at close time).
        batch_size: spans per request.
        grace: seconds added to the timeout for the close's wait.
        transport: what sends each encoded request instead of the OTLP ones (tests); the
            sending threads share it.
        max_queued: spans waiting to be sent at most; a batch that would pass it is counted
            as not sent (an endpoint slower than the program must not grow memory).
    """

    def __init__(
        self,
        settings: OtlpSettings,
        *,
        stream: TextIO | None = None,
        batch_size: int = 512,
        grace: float = 1.0,
        transport: Transport | None = None,
        max_queued: int = 200_000,
    ) -> None:
        self.settings = settings
        self._max_queued = max_queued
        self._queued = 0
        self._overflowed = False
        self._stream = stream
        self._batch_size = max(1, batch_size)
        self._grace = grace
        self._transport = transport
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._total = 0
        self._sent = 0
        self._reason: str | None = None
        self._given_up = threading.Event()  # set with _reason: a retry in flight gives up
        self._rejected: str | None = None  # why the receiver refused spans it was sent
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._report: ExportReport | None = None

    def submit(
        self,
        trace: Trace,
        *,
        trace_id: int,
        span_id_base: int,
        parent_context: SpanContext | None = None,
        link_all: bool = False,
    ) -> None:
        """Queue a trace for sending; returns at once.  Called from any thread.

        ``link_all``: the trace is one batch of a run sent as it goes; a span's parent is
        linked even when it is not in this batch (see :func:`~_otlp.otlp_spans`).
        """
        self._queue_job(_Job(trace, trace_id, span_id_base, parent_context, link_all))

    def submit_spans(self, spans: Sequence[ReadableSpan]) -> None:
        """Queue SDK spans (the program's own) for sending as they are; returns at once."""
        self._queue_job(_Job(None, 0, 0, None, False, spans))

    def _queue_job(self, job: _Job) -> None:
        if self._report is not None:
            return
        count = job.size
        with self._lock:
            self._total += count
            if self._queued + count > self._max_queued:
                self._overflowed = True
                return
            self._queued += count
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="asynctrace-otlp", daemon=True
                )
                self._thread.start()
        self._queue.put(job)

    def close(self, timeout: float | None = None) -> ExportReport:
        """Wait (bounded) for the queued traces, warn once if spans were not sent, and report.

        Args:
            timeout: the longest wait in seconds; default ``settings.timeout + grace``.
        """
        if self._report is not None:
            return self._report
        wait = self.settings.timeout + self._grace if timeout is None else timeout
        if self._thread is not None:
            self._queue.put(_STOP)
            self._done.wait(wait)
        with self._lock:
            reason = self._reason
            if reason is None and self._overflowed:
                reason = "the endpoint could not keep up with the program"
            if reason is None and self._rejected is not None:
                reason = f"the receiver rejected them: {self._rejected}"
            if not self._done.is_set() and self._thread is not None:
                reason = (
                    f"still sending after {wait:g} s (a large trace: raise"
                    f" OTEL_EXPORTER_OTLP_TIMEOUT)"
                    if self._sent
                    else f"no answer within {wait:g} s"
                )
            shown = self._scrub(self.settings.display_endpoint)
            report = ExportReport(self._total, self._sent, reason, shown)
        self._report = report
        if report.not_sent:
            stream = self._stream if self._stream is not None else sys.stderr
            line = (
                f"asynctrace: OTLP export to {self.settings.display_endpoint} failed:"
                f" {report.reason or 'not confirmed'}; {report.not_sent} of {report.total}"
                f" spans not sent\n"
            )
            try:
                stream.write(self._scrub(line))
                stream.flush()
            except (OSError, ValueError):
                pass
        return report

    def export(
        self,
        trace: Trace,
        *,
        trace_id: int,
        span_id_base: int,
        parent_context: SpanContext | None = None,
    ) -> ExportReport:
        """:meth:`submit` then :meth:`close`: send one trace, waiting a bounded time."""
        self.submit(
            trace, trace_id=trace_id, span_id_base=span_id_base, parent_context=parent_context
        )
        return self.close()

    # The rest runs on the worker thread, and what _Senders calls on the sending threads.

    def _run(self) -> None:
        silencer = _Silencer()
        silencer.watch(threading.get_ident())
        transports: list[Transport] = []
        senders: _Senders | None = None
        try:
            import opentelemetry.sdk.trace  # noqa: F401  (its loggers, to silence)

            if self._transport is not None:
                transports = [self._transport] * _IN_FLIGHT
            elif _nothing_listens(self.settings.endpoint):
                self._fail("connection refused")  # the jobs are counted, not sent
            else:
                # One a thread: a requests.Session is not promised safe to share between
                # threads.  A gRPC channel is, but one way for both costs little: insecure
                # channels to one target share a connection, and over TLS each makes its own,
                # the handshakes at once.
                for _ in range(_IN_FLIGHT):
                    transports.append(make_transport(self.settings, self._given_up))
            silencer.install()  # after make_transport: its libraries' loggers exist now
            if transports:
                senders = _Senders(self, transports, silencer)
            while True:
                job = self._queue.get()
                if job is _STOP:
                    break
                assert isinstance(job, _Job)
                if senders is not None:
                    self._encode(job, senders)
                with self._lock:
                    self._queued -= job.size
        except Exception as error:  # MUST NOT reach the program: it is reported
            self._fail(f"{type(error).__name__}: {error}")
        finally:
            try:
                if senders is not None:
                    senders.finish()
                for transport in dict.fromkeys(transports):  # a shared one closed once
                    transport.close()
            except Exception:  # closing a failed transport: nothing to add
                pass
            silencer.remove()
            self._done.set()

    def _encode(self, job: _Job, senders: _Senders) -> None:
        """Make ``job`` into requests, batch by batch, for ``senders``; after a failure the
        rest is not made, only counted (as not sent)."""
        # made batch by batch: one batch of them alive at a time
        spans: Iterator[OtlpSpan] = map(from_sdk, job.ready)
        if job.trace is not None:
            spans = otlp_spans(
                job.trace,
                resource=self.settings.resource(),
                trace_id=job.trace_id,
                span_id_base=job.span_id_base,
                parent_context=job.parent_context,
                link_all=job.link_all,
            )
        deadline = time.monotonic() + self.settings.timeout
        while not self.failed and (batch := list(itertools.islice(spans, self._batch_size))):
            if self._past(deadline):
                return
            request = encode_request(batch)
            count = len(batch)
            del batch  # freed before the next is made
            senders.put(request, count, deadline)

    def _confirm(self, count: int, rejected: Rejected | None) -> None:
        """Count a request's spans as sent, less those the receiver rejected."""
        with self._lock:
            if rejected is not None:  # the rest of the batch was taken: go on
                count -= min(rejected.spans, count)
                if self._rejected is None:
                    self._rejected = self._scrub(rejected.message or "no reason given")
            self._sent += count

    def _past(self, deadline: float) -> bool:
        """Whether ``deadline`` has passed; the export then fails for want of an answer."""
        if time.monotonic() < deadline:
            return False
        self._fail(f"no answer within {self.settings.timeout:g} s")
        return True

    @property
    def failed(self) -> bool:
        """Whether a request failed (the rest is then counted, not sent)."""
        return self._reason is not None

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = self._scrub(reason)
                self._given_up.set()

    def _scrub(self, text: str) -> str:
        return self.settings.scrub(text)


class _Senders:
    """Send an export's requests from a thread for each transport, as many at once as there are
    threads, begun in order, while their worker makes the next: the receiver's round trips
    overlap each other and the making of a request.

    At most one request waits while the others are sent (``put`` blocks until there is room):
    what is alive is at most ``len(transports) + 2`` encoded requests (sent, waiting, just
    made), not more spans.  A request not begun before a failure is dropped (its spans are
    counted as not sent); one already sent is counted as its receiver answers; the first
    failure is the export's reason.
    """

    def __init__(
        self, export: OtlpExport, transports: Sequence[Transport], silencer: _Silencer
    ) -> None:
        self._export = export
        self._silencer = silencer
        self._requests: queue.Queue[tuple[bytes, int, float] | None] = queue.Queue(maxsize=1)
        self._threads = [
            threading.Thread(
                target=self._run,
                args=(transport,),
                name=f"asynctrace-otlp-send-{number}",
                daemon=True,
            )
            for number, transport in enumerate(transports, 1)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, request: bytes, count: int, deadline: float) -> None:
        """Queue one request of ``count`` spans, to be sent before ``deadline``."""
        self._requests.put((request, count, deadline))

    def finish(self) -> None:
        """Wait for the requests queued to be sent (or dropped after a failure)."""
        for _ in self._threads:
            self._requests.put(None)  # one each: a thread takes no more after it
        for thread in self._threads:
            thread.join()

    def _run(self, transport: Transport) -> None:
        self._silencer.watch(threading.get_ident())
        export = self._export
        while (item := self._requests.get()) is not None:
            request, count, deadline = item
            if export.failed or export._past(deadline):
                continue
            try:
                rejected = transport.send(request, deadline)
            except SendFailed as failure:
                # A refused or failing endpoint fails every request the same way: stop here.
                export._fail(str(failure))
            except Exception as error:  # MUST NOT reach the program: it is reported
                export._fail(f"{type(error).__name__}: {error}")
            else:
                export._confirm(count, rejected)


def _nothing_listens(endpoint: str) -> bool:
    """Whether ``endpoint`` is on this machine and refuses connections on every address of
    it: nothing listens there now (a collector not started), and the transport's retries on a
    refused connection (1 s, then 2 s, ...) would only wait out the timeout, at the program's
    exit.  Only a loopback host is asked, where a refusal comes at once (a remote collector is
    never sent a connection that carries nothing), and never one a proxy stands before: the
    transport then finds out, retrying."""
    parts = urlsplit(endpoint)
    host, port = parts.hostname, parts.port
    if host is None or port is None or not _loopback(host) or _proxied(host):
        return False
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.settimeout(1.0)
                probe.connect(address)
        except ConnectionRefusedError:
            continue
        except OSError:  # no such address family here, a timeout: not known to be down
            return False
        return False  # something listens
    return bool(addresses)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress  # here: on the worker thread, not at the program's start

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: its addresses may be anywhere
        return False


_PROXY_VARIABLES = ("grpc_proxy", "https_proxy", "http_proxy", "all_proxy")


def _proxied(host: str) -> bool:
    """Whether a proxy variable that the gRPC or HTTP client reads may send ``host`` through a
    proxy (``no_proxy`` not naming it)."""
    names = {*_PROXY_VARIABLES, *(name.upper() for name in _PROXY_VARIABLES)}
    if not any(os.environ.get(name) for name in names):
        return False
    from urllib.request import proxy_bypass

    return not proxy_bypass(host)


class _Silencer(logging.Filter):
    """Silences the loggers of OpenTelemetry and of the libraries that send (grpc, urllib3,
    requests) for records made on the export's threads (its worker and its senders, each
    :meth:`watch`-ed): a failure is said in one line, by :meth:`OtlpExport.close`.  Records
    from other threads (the program's own OpenTelemetry setup, its own HTTP calls) pass
    untouched.
    """

    _PREFIXES = ("opentelemetry", "grpc", "urllib3", "requests")

    def __init__(self) -> None:
        super().__init__()
        self._thread_ids: set[int | None] = set()
        self._loggers: list[logging.Logger] = []

    def watch(self, thread_id: int | None) -> None:
        """Silence the records made on this thread too."""
        self._thread_ids.add(thread_id)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread not in self._thread_ids

    def install(self) -> None:
        """On every logger of those libraries that exists now (a filter is not inherited:
        install once their modules are imported)."""
        names = [n for n in logging.root.manager.loggerDict if n.startswith(self._PREFIXES)]
        for name in [*self._PREFIXES, *names]:
            logger = logging.getLogger(name)
            # First in line: a library's own filters (the SDK's DuplicateFilter) come after.
            logger.filters.insert(0, self)
            self._loggers.append(logger)

    def remove(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()
