"""A file written as it is encoded (``_files.BackgroundWrite``): whole or not at all.

An encoder gives a 280 MB timeline a chunk at a time; a thread writes each one aside while
the next is made, and the target is replaced only once the last one is written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from asynctrace._export import _files
from asynctrace._export._files import BackgroundWrite, Chunks


def _left_aside(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


def test_chunks_are_written_in_order_and_the_target_replaced_at_close(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_bytes(b"the stream of the run")
    file = BackgroundWrite(target)
    for chunk in (b"one,", b"two,", b"three"):
        file.write(chunk)
    assert target.read_bytes() == b"the stream of the run"  # until close, the old file stays
    file.close()
    assert file.join() is None
    assert target.read_bytes() == b"one,two,three"
    assert _left_aside(tmp_path) == []


def test_a_rewind_takes_back_every_chunk_written_before_it(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    file = BackgroundWrite(target)
    file.write(b"half of a file the placer gave up on" * 1000)
    file.rewind()
    file.write(b"the other way's")
    file.close()
    assert file.join() is None
    assert target.read_bytes() == b"the other way's"


def test_an_abort_leaves_the_target_as_it_was_and_nothing_aside(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    target.write_bytes(b"before")
    file = BackgroundWrite(target)
    file.write(b"half")
    file.abort()
    assert file.join() is None
    assert target.read_bytes() == b"before"
    assert _left_aside(tmp_path) == []


def test_the_chunks_are_written_by_a_thread_as_they_come(tmp_path: Path) -> None:
    """The kernel's copy of a chunk overlaps the encoding of the next one: the first chunk (a
    megabyte, as the encoders give them) is in the file aside before the last one is given."""
    target = tmp_path / "run.json"
    file = BackgroundWrite(target)
    try:
        file.write(b"x" * 2**20)
        (aside,) = _left_aside(tmp_path)
        for _ in range(500):  # at most 5 s
            if os.path.getsize(tmp_path / aside) == 2**20:
                break
            time.sleep(0.01)
        assert os.path.getsize(tmp_path / aside) == 2**20
    finally:
        file.close()
    assert file.join() is None


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_device_is_given_nothing_before_close_and_its_error_is_returned_once() -> None:
    file = BackgroundWrite("/dev/full")
    file.write(b"taken back")
    file.rewind()  # written in place: nothing given to it yet, so nothing to take back
    file.write(b"x" * 10)
    file.close()
    error = file.join()
    assert isinstance(error, OSError)


def test_chunks_kept_in_memory_are_taken_back_the_same_way() -> None:
    chunks = Chunks()
    chunks.write(b"a")
    chunks.rewind()
    chunks.write(b"b")
    assert list(chunks) == [b"b"]


def test_every_byte_is_written_when_the_kernel_takes_fewer_than_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.writev`` may write fewer bytes than asked: the rest is written by the next calls,
    across and inside chunks."""
    writev = os.writev
    calls = []

    def three_bytes_at_most(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        taken, left = [], 3
        for buffer in buffers:
            taken.append(bytes(buffer[:left]))
            left -= len(taken[-1])
        return writev(fd, [piece for piece in taken if piece])

    monkeypatch.setattr(_files.os, "writev", three_bytes_at_most)
    target = tmp_path / "out.txt"
    _files.write_whole(target, b"ab", b"", b"cdefg", b"h")
    assert target.read_bytes() == b"abcdefgh"
    assert len(calls) == 3 and calls[0] == 3  # the empty chunk is not asked for
