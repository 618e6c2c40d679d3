"""The JSON encoders of the files asynctrace writes (orjson, the C accelerator, json) agree."""

from __future__ import annotations

import json
import math
import os
import random
import struct
from typing import Any

import pytest

from asynctrace._export import _json

ENCODERS = _json.available_encoders()


class _Shown:
    def __str__(self) -> str:
        return "shown ü"


DOCUMENTS: list[Any] = [
    {"traceEvents": [{"ph": "X", "ts": 1, "dur": 2.5, "args": {"a": None, "b": True}}]},
    ["plain", "ü 日本 ⏳", 'quote " backslash \\ slash /', "\x00\x01\x1b\n\r\t\b\f\x7f", ""],
    [0, -1, 2**63 - 1, -(2**63), 1.0, -0.5, 1e-7, 1e16, 123456.789, 0.1 + 0.2, 5e-324],
    {"set": {1}, "object": _Shown(), "tuple": (1, "two"), "nested": [[[]], {}]},
    {"bool-like": [True, False], "int subclass": [True + 0]},
]


def test_every_build_here_has_the_c_encoder() -> None:
    # CI builds the accelerator; without it (no compiler) asynctrace falls back to json
    if os.environ.get("CI") and not os.environ.get("ASYNCTRACE_NO_SPEEDUPS"):
        assert "c" in ENCODERS
    assert list(ENCODERS)[-1] == "json"


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("doc", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_encoders_write_the_same_meaning(
    name: str, doc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_json, "_encoder", lambda: ENCODERS[name])
    data = _json.dumps(doc)
    expected = json.loads(json.dumps(doc, default=str))
    assert json.loads(data) == expected
    assert b", " not in data and b": " not in data  # compact


@pytest.mark.parametrize("name", list(ENCODERS))
def test_hard_values_fall_back_without_losing_anything(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_json, "_encoder", lambda: ENCODERS[name])
    lone = _json.dumps({"name": "\ud800 lone", "key \udc80": 1})
    assert json.loads(lone) == {"name": "\ufffd lone", "key \ufffd": 1}
    lone.decode("utf-8")  # strict UTF-8: an escaped lone surrogate would be refused by orjson
    assert json.loads(_json.dumps({"big": 2**70})) == {"big": 2**70}
    assert json.loads(_json.dumps({1: "int key"})) == {"1": "int key"}
    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    assert json.loads(_json.dumps(deep)) == deep
    non_finite = json.loads(_json.dumps([math.inf, math.nan]).replace(b"NaN", b"null"))
    assert non_finite in ([None, None], [math.inf, None])  # orjson/C: null; json: Infinity


def test_control_characters_are_escaped_not_written() -> None:
    for name, encode in ENCODERS.items():
        data = encode({"s": "".join(map(chr, range(32))) + '"\\'})
        assert not any(b < 0x20 for b in data), name
        assert json.loads(data) == {"s": "".join(map(chr, range(32))) + '"\\'}


@pytest.mark.skipif("c" not in ENCODERS, reason="built without a C compiler")
def test_the_c_encoder_writes_floats_as_repr_does() -> None:
    # times in microseconds from whole nanoseconds are written without dtoa (see _cjson.c):
    # the same text as repr(), including where that shortcut stops (2**42) and for -0.0
    rnd = random.Random(7)
    floats = [0.0, -0.0, 0.5, -2.0, 0.001, 0.1, 1e-06, 4e12, -4e12, 2**42 + 0.5, 1e16, 5e-324]
    for _ in range(20_000):
        ns = rnd.randrange(-(10**17), 10**17) // rnd.choice([1, 10, 1000, 10**6, 10**9])
        floats += [ns / 1000, ns / 1e9, struct.unpack("d", rnd.getrandbits(64).to_bytes(8))[0]]
    encode = ENCODERS["c"]
    for value in floats:
        if math.isfinite(value):
            assert encode(value) == repr(value).encode(), value


@pytest.mark.skipif("c" not in ENCODERS, reason="built without a C compiler")
def test_the_c_encoder_writes_ints_as_str_does() -> None:
    rnd = random.Random(11)
    ints = [0, 9, 10, 99, 100, 101, -1, -10, -100, 2**63 - 1, -(2**63), 2**64, -(10**30)]
    ints += [rnd.getrandbits(64) - 2**63 >> rnd.randrange(64) for _ in range(20_000)]
    encode = ENCODERS["c"]
    for value in ints:
        assert encode(value) == str(value).encode(), value
