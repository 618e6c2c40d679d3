"""Where and how to send OTLP: flags resolved over the standard ``OTEL_*`` variables.

Problem: OTLP export is configured by a dozen ``OTEL_EXPORTER_OTLP_*`` variables, their
``_TRACES_`` variants and the CLI's flags; the SDK exporters read the variables themselves, each
a little differently (the Python exporters read ``_TIMEOUT`` as seconds where the specification
says milliseconds), silently fall back on bad values, and name an unnamed service
``unknown_service:python``.

Solution: :func:`otlp_settings` resolves everything once, up front, into a frozen
:class:`OtlpSettings` (flag > ``OTEL_EXPORTER_OTLP_TRACES_*`` > ``OTEL_EXPORTER_OTLP_*`` >
default), raises one-sentence :class:`ValueError`\\ s for bad values, and the exporter is then
built with every value explicit.  Header values (auth tokens) never appear in a ``repr``, an
error message or a log line; user info in an endpoint URL (``http://user:pass@host``) becomes a
``Basic`` authorization header and is taken out of the URL.  Nothing here imports
OpenTelemetry except :meth:`resource`.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .._export._sanitize import clean

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

Protocol = Literal["grpc", "http/protobuf"]
Compression = Literal["none", "gzip", "deflate"]

#: Default total wait for one export, in seconds: short, so that a dead endpoint delays the
#: end of ``asynctrace run`` by a few seconds, not the SDK's 10 s per batch.
DEFAULT_TIMEOUT = 5.0
_DEFAULT_ENDPOINTS: dict[Protocol, str] = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318/v1/traces",
}
_PROTOCOLS: dict[str, Protocol] = {
    "grpc": "grpc",
    "http/protobuf": "http/protobuf",
    "http": "http/protobuf",
}
_COMPRESSIONS: tuple[Compression, ...] = ("none", "gzip", "deflate")
_P = "OTEL_EXPORTER_OTLP_"


@dataclass(frozen=True)
class OtlpSettings:
    """Resolved OTLP export settings; build with :func:`otlp_settings`.

    ``endpoint`` is the URL the exporter is given: for ``http/protobuf`` the full URL with the
    signal path (``.../v1/traces``), for ``grpc`` ``scheme://host:port``.  ``timeout`` is the
    total wait for one export in seconds.  ``headers`` are kept out of ``repr``.
    """

    endpoint: str
    protocol: Protocol
    service_name: str
    timeout: float = DEFAULT_TIMEOUT
    compression: Compression = "none"
    insecure: bool = True
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None
    resource_attributes: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def display_endpoint(self) -> str:
        """The endpoint without user info, query or fragment: safe for a log line."""
        return redact_url(self.endpoint)

    def scrub(self, text: str) -> str:
        """``text`` (an exporter's error, a warning line) with every header secret as ``***``.

        Header values, the credentials after an auth scheme (``Bearer <token>``), the user and
        password inside a ``Basic`` value, and any URL user info are replaced.
        """
        for secret in _secrets(self.headers):
            text = text.replace(secret, "***")
        return _URL_USERINFO.sub(r"\1***@", text) if "@" in text else text

    def resource(self) -> Resource:
        """The OpenTelemetry SDK ``Resource`` (imports the SDK)."""
        return make_resource(self.service_name, self.resource_attributes)


def otlp_settings(
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | str | None = None,
    service_name: str | None = None,
    timeout: float | None = None,
    *,
    compression: str | None = None,
    insecure: bool | None = None,
    certificate: str | None = None,
    default_service: str = "asynctrace",
    environ: Mapping[str, str] | None = None,
) -> OtlpSettings:
    """Resolve the OTLP settings: each flag given here overrides the environment variables.

    Args:
        endpoint: ``--otlp ENDPOINT``; for ``http/protobuf`` a URL without a path gets
            ``/v1/traces``; ``host:port`` means ``http://host:port``.
        protocol: ``grpc``, ``http/protobuf`` (or ``http``).
        headers: extra headers, a mapping or ``k1=v1,k2=v2``; merged over the variables' headers.
        service_name: the ``service.name`` resource attribute.
        timeout: total wait for one export, in seconds (the variables are in milliseconds).
        compression: ``gzip``, ``deflate`` or ``none``.
        insecure: gRPC without TLS; by default, TLS for ``https://`` endpoints only.
        certificate: path of a PEM file of CA certificates to trust.
        default_service: the service name when neither the flag, ``OTEL_SERVICE_NAME`` nor
            ``OTEL_RESOURCE_ATTRIBUTES`` names one: the script's or module's name.
        environ: the variables to read (default ``os.environ``).

    Raises:
        ValueError: a flag or variable has a bad value; the message names it, the value (never
            a header value) and the fix.
    """
    env = os.environ if environ is None else environ

    def var(name: str) -> tuple[str, str] | None:
        """(variable name, value) of the traces-specific variable, else the generic one."""
        for key in (f"{_P}TRACES_{name}", f"{_P}{name}"):
            value = env.get(key, "").strip()
            if value:
                return key, value
        return None

    proto = _resolve_protocol(protocol, var("PROTOCOL"))
    url, basic_auth = _split_userinfo(_resolve_endpoint(endpoint, proto, env))
    resource_attributes = _resource_attributes(env)
    service = _service_name(service_name, env, resource_attributes, default_service)

    merged: dict[str, str] = {}
    found = var("HEADERS")
    if found is not None:
        merged.update(parse_headers(found[1], found[0]))
    if headers is not None:
        flag = parse_headers(headers, "headers") if isinstance(headers, str) else headers
        merged.update({k.strip().lower(): v for k, v in flag.items()})
    if basic_auth is not None:
        # User info in the URL means HTTP Basic auth (as `requests` reads it) for both
        # protocols; an explicit authorization header wins.
        merged.setdefault("authorization", basic_auth)

    if timeout is not None:
        seconds = _check_timeout(timeout, "timeout", str(timeout), "seconds")
    elif (found := var("TIMEOUT")) is not None:
        try:
            millis = float(found[1])
        except ValueError:
            millis = math.nan
        seconds = _check_timeout(millis, found[0], found[1], "milliseconds") / 1000.0
    else:
        seconds = DEFAULT_TIMEOUT

    comp_source = ("compression", compression) if compression is not None else var("COMPRESSION")
    comp: Compression = "none"
    if comp_source is not None:
        name, raw = comp_source
        if raw.strip().lower() not in _COMPRESSIONS:
            msg = f"{name}={raw!r} is not a supported compression; use gzip, deflate or none"
            raise ValueError(msg)
        comp = _COMPRESSIONS[_COMPRESSIONS.index(raw.strip().lower())]

    scheme = urlsplit(url).scheme
    secure_flag: bool
    if insecure is not None:
        secure_flag = bool(insecure)
    elif scheme == "https":
        secure_flag = False
    elif (found := var("INSECURE")) is not None:
        secure_flag = _parse_bool(found[1], found[0])
    else:
        secure_flag = scheme == "http"

    cert = certificate
    if cert is None and (found := var("CERTIFICATE")) is not None:
        cert = found[1]
    files: dict[str, str | None] = {"certificate": cert}
    for key in ("CLIENT_KEY", "CLIENT_CERTIFICATE"):
        found = var(key)
        files[key.lower()] = found[1] if found else None
    for name, path in files.items():
        if path is not None and not os.path.isfile(path):
            msg = (
                f"the OTLP {name.replace('_', ' ')} file {path!r} does not exist; give the path"
                f" of a PEM file or unset {_P}{name.upper()}"
            )
            raise ValueError(msg)

    return OtlpSettings(
        endpoint=url,
        protocol=proto,
        service_name=service,
        timeout=seconds,
        compression=comp,
        insecure=secure_flag,
        certificate=files["certificate"],
        client_key=files["client_key"],
        client_certificate=files["client_certificate"],
        resource_attributes=resource_attributes,
        headers=tuple(merged.items()),
    )


def otlp_resource(
    service_name: str | None = None,
    *,
    default_service: str = "asynctrace",
    environ: Mapping[str, str] | None = None,
) -> Resource:
    """The ``Resource`` for an OTLP JSON file: only the service name and resource variables.

    Unlike :func:`otlp_settings` this reads no exporter variable, so a run that only writes
    ``--otlp-json`` is not stopped by, say, a bad ``OTEL_EXPORTER_OTLP_PROTOCOL``.
    """
    env = os.environ if environ is None else environ
    attrs = _resource_attributes(env)
    return make_resource(_service_name(service_name, env, attrs, default_service), attrs)


def make_resource(service_name: str, attributes: tuple[tuple[str, str], ...] = ()) -> Resource:
    """An SDK ``Resource`` with these attributes, ``service.name`` and ``telemetry.sdk.*``.

    Built directly, not with ``Resource.create``, which would read the process environment
    again and could fall back on ``unknown_service:python``.
    """
    from opentelemetry.sdk.resources import Resource

    attrs: dict[str, str] = {
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": _sdk_version(),
    }
    attrs.update(dict(attributes))
    attrs["service.name"] = service_name
    # a name from a non-UTF-8 command line carries lone surrogates, which protobuf refuses
    return Resource({key: clean(value) for key, value in attrs.items()})


def parse_headers(text: str, source: str) -> dict[str, str]:
    """Parse ``k1=v1,k2=v2`` (W3C baggage style, values percent-decoded) into lower-case keys.

    Errors name ``source`` and the entry's position, never the text: it carries secrets.
    """
    headers: dict[str, str] = {}
    for number, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = unquote(key).strip().lower()
        if not sep or not key or any(c.isspace() for c in key):
            msg = (
                f"{source} entry {number} is not key=value (value hidden: headers carry"
                f" secrets); write it as key1=value1,key2=value2"
            )
            raise ValueError(msg)
        headers[key] = unquote(value).strip()
    return headers


_URL_USERINFO = re.compile(r"(//)[^/\s@'\"]+@")


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """(``url`` without user info, the ``Basic`` authorization value it carried or None).

    The endpoint is shown in messages and given to gRPC as its target: it MUST NOT keep
    credentials (gRPC would otherwise fail to resolve ``user:pass@host`` and log it).
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    credentials = f"{unquote(user)}:{unquote(password)}".encode()
    basic = "Basic " + base64.b64encode(credentials).decode("ascii")
    return urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment)), basic


def _secrets(headers: tuple[tuple[str, str], ...]) -> list[str]:
    """The strings that would give a header's secret away, longest first (3 chars or more)."""
    found: set[str] = set()
    for _, value in headers:
        words = value.split()
        found.update((value, quote(value), *words[1:]))
        if len(words) == 2 and words[0].lower() == "basic":
            try:
                decoded = base64.b64decode(words[1], validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                continue
            found.update((decoded, *decoded.split(":", 1)))
    return sorted((v for v in found if len(v) >= 3), key=len, reverse=True)


def redact_url(url: str) -> str:
    """``url`` without user info, query and fragment, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _resolve_protocol(flag: str | None, found: tuple[str, str] | None) -> Protocol:
    if flag is not None:
        name, raw = "--otlp-protocol", flag
    elif found is not None:
        name, raw = found
    else:
        return "grpc"
    proto = _PROTOCOLS.get(raw.strip().lower())
    if proto is None:
        msg = f"{name}={raw!r} is not a supported OTLP protocol; use grpc or http/protobuf"
        raise ValueError(msg)
    return proto


def _resolve_endpoint(flag: str | None, proto: Protocol, env: Mapping[str, str]) -> str:
    traces = env.get(f"{_P}TRACES_ENDPOINT", "").strip()
    generic = env.get(f"{_P}ENDPOINT", "").strip()
    if flag is not None and flag.strip():
        name, raw = "--otlp", flag.strip()
        url = _check_url(raw, name)
        if proto == "http/protobuf" and urlsplit(url).path in ("", "/"):
            url = url.rstrip("/") + "/v1/traces"
    elif traces:
        # The signal-specific variable is used as is, path included (OTLP specification).
        url = _check_url(traces, f"{_P}TRACES_ENDPOINT")
    elif generic:
        url = _check_url(generic, f"{_P}ENDPOINT")
        if proto == "http/protobuf":
            url = url.rstrip("/") + "/v1/traces"
    else:
        return _DEFAULT_ENDPOINTS[proto]
    if proto == "grpc":
        parts = urlsplit(url)
        url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return url


def _check_url(raw: str, name: str) -> str:
    url = raw if "://" in raw else f"http://{raw}"
    shown = redact_url(url) if "@" in url else raw
    fix = "use a URL such as http://localhost:4317 (gRPC) or http://localhost:4318 (HTTP)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        msg = f"{name}={shown!r} is not a valid OTLP endpoint (bad port); {fix}"
        raise ValueError(msg) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        msg = f"{name}={shown!r} is not a valid OTLP endpoint; {fix}"
        raise ValueError(msg)
    if port == 0:
        msg = f"{name}={shown!r} has port 0; {fix}"
        raise ValueError(msg)
    return url


def _check_timeout(value: float, name: str, raw: str, unit: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        msg = f"{name}={raw!r} is not a positive number of {unit}; give e.g. " + (
            "5 (seconds)" if unit == "seconds" else "5000 (milliseconds)"
        )
        raise ValueError(msg)
    return float(value)


def _parse_bool(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        msg = f"{name}={raw!r} is not a boolean; use true or false"
        raise ValueError(msg)
    return value == "true"


def _resource_attributes(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    raw = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    attrs: dict[str, str] = {}
    for entry in raw.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = unquote(key).strip()
        if not sep or not key:
            msg = (
                f"OTEL_RESOURCE_ATTRIBUTES has the entry {entry.strip()!r}, which is not"
                f" key=value; write it as key1=value1,key2=value2"
            )
            raise ValueError(msg)
        attrs[key] = unquote(value).strip()
    return tuple(attrs.items())


def _service_name(
    flag: str | None,
    env: Mapping[str, str],
    attributes: tuple[tuple[str, str], ...],
    default: str,
) -> str:
    if flag is not None and flag.strip():
        return flag.strip()
    if env.get("OTEL_SERVICE_NAME", "").strip():
        return env["OTEL_SERVICE_NAME"].strip()
    from_attrs = dict(attributes).get("service.name", "").strip()
    return from_attrs or default.strip() or "asynctrace"


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opentelemetry-sdk")
    except PackageNotFoundError:  # pragma: no cover - the SDK is a dependency
        return "unknown"
