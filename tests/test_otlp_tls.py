"""OTLP over TLS: gRPC and HTTPS to receivers with a certificate made for the test."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctrace._opentelemetry._otlp_config import otlp_settings

sys.path.insert(0, str(Path(__file__).parent))
import otlp_receiver
from test_otlp import blog_trace, send


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> otlp_receiver.Tls:
    """A self-signed certificate for localhost (openssl, as a private CA's would be)."""
    directory = tmp_path_factory.mktemp("tls")
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True,
    )  # fmt: skip
    return otlp_receiver.Tls(str(certificate), str(key))


@pytest.fixture(params=["grpc", "http/protobuf"])
def tls_receiver(request: pytest.FixtureRequest, tls: otlp_receiver.Tls) -> Iterator[Any]:
    make = otlp_receiver.GrpcReceiver if request.param == "grpc" else otlp_receiver.HttpReceiver
    receiver = make(tls=tls)
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "grpc_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_spans_arrive_over_tls_with_the_ca_certificate_given(
    tls_receiver: Any, tls: otlp_receiver.Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", tls.certificate)
    settings = otlp_settings(tls_receiver.endpoint, tls_receiver.protocol)
    assert not settings.insecure and settings.certificate == tls.certificate
    report, err, _, _ = send(settings, blog_trace())
    assert (report.sent, report.reason, err) == (9, None, "")
    assert len(tls_receiver.spans) == 9


def test_a_certificate_not_trusted_is_one_line_and_no_retry(
    tls_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backoffs: list[float] = []  # the export thread's waits before trying again
    sleep = time.sleep

    def noted(seconds: float) -> None:
        if threading.current_thread().name.startswith("asynctrace-otlp"):
            backoffs.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(time, "sleep", noted)
    settings = otlp_settings(tls_receiver.endpoint, tls_receiver.protocol, timeout=5.0)
    report, err, _, _ = send(settings, blog_trace())
    assert backoffs == []  # not tried again
    assert (report.sent, report.not_sent) == (0, 9) and tls_receiver.spans == []
    assert report.reason is not None and "certificate verify failed" in report.reason.lower()
    assert "no answer" not in report.reason  # not retried until the timeout
    assert err.count("\n") == 1
