"""OTLP transports: one encoded request to a collector, over gRPC or HTTP, retried while it may
still succeed, its failure said in a few words.

Problem: the SDK's exporters take only the SDK's span objects and encode them with its encoder
(about 20 us a span, see ``_otlp_proto.py``); what went wrong reaches their caller only as log
lines to be read back.

Solution: a request already encoded is sent as it is, over gRPC by a unary call on raw bytes
(the channel's, no serializer), over HTTP by a POST (``requests``, a dependency of the OTLP/HTTP
exporter: pooled connections, proxies from the environment, TLS).  What may pass on its own (a
connection refused or lost, HTTP 429, 502, 503, 504, gRPC UNAVAILABLE and the like) is tried
again after 1 s, 2 s, 4 s ... (+-20%) while that still ends before the deadline, as the SDK's
exporters do, unless the export has failed meanwhile (another request in flight was refused):
then at once.  A failure raises :class:`SendFailed` with its reason: ``connection refused``,
``HTTP 500 Internal Server Error``, ``gRPC UNAVAILABLE: ...``, ``no answer within 5 s``.
"""

from __future__ import annotations

import gzip
import random
import re
import threading
import time
import zlib
from collections.abc import Callable
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from .. import __version__
from ._otlp_config import OtlpSettings

__all__ = ["Rejected", "SendFailed", "Transport", "make_transport"]

_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRIED_HTTP = frozenset((429, 502, 503, 504))
_RETRIED_GRPC = frozenset(
    ("CANCELLED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "OUT_OF_RANGE",
     "UNAVAILABLE", "DATA_LOSS")
)  # fmt: skip
_MAX_REASON = 160


class SendFailed(Exception):
    """The request was not confirmed; ``str()`` is the reason, short, for one line."""


class Rejected(NamedTuple):
    """Spans a receiver took the request for but refused (``partial_success``), and why."""

    spans: int
    message: str


class Transport(Protocol):
    def send(self, body: bytes, deadline: float) -> Rejected | None:
        """Deliver one serialized ``ExportTraceServiceRequest`` before ``deadline``
        (``time.monotonic()``), or raise :class:`SendFailed`; what the receiver said it
        rejected of it (OTLP's partial success), if anything."""

    def close(self) -> None: ...


def _rejected(answer: bytes) -> Rejected | None:
    """The partial success in an ``ExportTraceServiceResponse``, if it rejected anything."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    try:
        partial = ExportTraceServiceResponse.FromString(answer).partial_success
    except Exception:  # not a response (a proxy's page): the request was taken
        return None
    if partial.rejected_spans <= 0 and not partial.error_message:
        return None
    return Rejected(max(0, partial.rejected_spans), _short(partial.error_message))


def make_transport(settings: OtlpSettings, given_up: threading.Event) -> Transport:
    """The transport for ``settings.protocol`` (imports grpc or requests); once ``given_up``
    is set (the export failed: another request's answer), it tries nothing again."""
    if settings.protocol == "grpc":
        return _Grpc(settings, given_up)
    return _Http(settings, given_up)


def _retrying(
    attempt: Callable[[], bytes | tuple[str, bool]], deadline: float, given_up: threading.Event
) -> bytes:
    """Call ``attempt()`` (which returns the receiver's answer, or ``(reason, retry)`` on a
    failure) until it succeeds, or raise SendFailed when it may not be retried before
    ``deadline``, or ``given_up`` is set before the next try."""
    for tried in range(6):
        outcome = attempt()
        if isinstance(outcome, bytes):
            return outcome
        reason, retry = outcome
        backoff = 2**tried * random.uniform(0.8, 1.2)
        if not retry or time.monotonic() + backoff >= deadline or given_up.wait(backoff):
            raise SendFailed(_short(reason))
    raise SendFailed(_short(reason))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g} s"


# OpenSSL's reason for a failed handshake, as Python's ssl (under requests) and as gRPC's
# BoringSSL say it: "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ...",
# "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: self signed certificate"
_PYTHON_TLS = re.compile(r"\[SSL: [A-Z_]+\] ([^'\"(]+)")
_GRPC_TLS = re.compile(r"OPENSSL_internal:([A-Z_]+)(?:: ([^:'\"]+))?")


def _tls_failure(text: str) -> str | None:
    """``TLS: <OpenSSL's reason>`` when ``text`` tells of a failed TLS handshake (not worth
    trying again: a certificate not trusted, a protocol refused), else None."""
    found = _PYTHON_TLS.search(text)
    if found is not None:
        return f"TLS: {found.group(1).strip()}"
    found = _GRPC_TLS.search(text)
    if found is not None:
        code = found.group(1).lower().replace("_", " ")
        return f"TLS: {code}: {found.group(2).strip()}" if found.group(2) else f"TLS: {code}"
    return None


class _Grpc:
    def __init__(self, settings: OtlpSettings, given_up: threading.Event) -> None:
        import grpc  # type: ignore[import-untyped,unused-ignore]

        self._given_up = given_up
        self._grpc = grpc
        self._timeout = settings.timeout
        parts = urlsplit(settings.endpoint)
        host = parts.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        target = f"{host}:{parts.port or 443}"
        self.compression = compression = {
            "none": grpc.Compression.NoCompression,
            "gzip": grpc.Compression.Gzip,
            "deflate": grpc.Compression.Deflate,
        }[settings.compression]
        if settings.insecure:
            self._channel = grpc.insecure_channel(target, compression=compression)
        else:
            credentials = grpc.ssl_channel_credentials(
                _read(settings.certificate),
                _read(settings.client_key),
                _read(settings.client_certificate),
            )
            self._channel = grpc.secure_channel(target, credentials, compression=compression)
        self._export = self._channel.unary_unary(_EXPORT)  # bytes in, bytes out
        self._metadata = tuple(settings.headers)

    def send(self, body: bytes, deadline: float) -> Rejected | None:
        def attempt() -> bytes | tuple[str, bool]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _no_answer(self._timeout), False
            try:
                answer: bytes = self._export(body, timeout=remaining, metadata=self._metadata)
            except self._grpc.RpcError as error:
                code = error.code()
                name = getattr(code, "name", str(code))
                details = str(error.details() or "")
                if name == "DEADLINE_EXCEEDED":
                    return _no_answer(self._timeout), False
                tls = _tls_failure(details)
                if tls is not None:
                    return tls, False
                if name == "UNAVAILABLE" and "connection refused" in details.lower():
                    return "connection refused", True
                return f"gRPC {name}: {details}", name in _RETRIED_GRPC
            return answer

        return _rejected(_retrying(attempt, deadline, self._given_up))

    def close(self) -> None:
        self._channel.close()


class _Http:
    def __init__(self, settings: OtlpSettings, given_up: threading.Event) -> None:
        import requests

        self._given_up = given_up
        self._requests = requests
        self._url = settings.endpoint
        self._timeout = settings.timeout
        self._session = requests.Session()
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"asynctrace/{__version__}",
            **dict(settings.headers),
        }
        self._compression = settings.compression
        if settings.compression != "none":
            self._headers["Content-Encoding"] = settings.compression
        self._verify: str | bool = settings.certificate or True
        # a client certificate, with its key in the same file or in its own
        self._cert: str | tuple[str, str] | None = settings.client_certificate
        if settings.client_certificate and settings.client_key:
            self._cert = (settings.client_certificate, settings.client_key)

    def send(self, body: bytes, deadline: float) -> Rejected | None:
        if self._compression == "gzip":
            body = gzip.compress(body)
        elif self._compression == "deflate":
            body = zlib.compress(body)
        errors = self._requests.exceptions

        def attempt() -> bytes | tuple[str, bool]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _no_answer(self._timeout), False
            try:
                response = self._session.post(
                    self._url,
                    data=body,
                    headers=self._headers,
                    timeout=remaining,
                    verify=self._verify,
                    cert=self._cert,
                )
            except errors.Timeout:
                return _no_answer(self._timeout), False
            except errors.ConnectionError as error:  # an SSLError too
                text = str(error)
                tls = _tls_failure(text)
                if tls is not None:
                    return tls, False
                if "connection refused" in text.lower():
                    return "connection refused", True
                return f"connection failed: {_errno_text(text)}", True
            except errors.RequestException as error:  # a bad certificate file, an odd URL
                return f"{type(error).__name__}: {error}", False
            if response.ok:
                return bytes(response.content)
            code = response.status_code
            return f"HTTP {code} {response.reason or ''}".strip(), code in _RETRIED_HTTP

        return _rejected(_retrying(attempt, deadline, self._given_up))

    def close(self) -> None:
        self._session.close()


def _errno_text(text: str) -> str:
    """The system's words in a connection error (``[Errno -2] Name or service not known``),
    rather than the layers of wrappers around them; else the whole text."""
    found = _ERRNO.search(text)
    return found.group(1).strip() if found is not None else text


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()]+)")


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()
