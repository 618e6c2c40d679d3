"""Writing an output file whole: a reader, or a kill, never leaves half of it.

A regular file (or a new one) is written aside in its directory and renamed over the target,
so the previous file (such as the stream of the run) stays intact until the new one is
complete, and a failed write leaves nothing behind.  Anything else (``/dev/stdout``, a FIFO,
``/dev/full``) is written in place: renaming over it would replace the device.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_whole(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` whole; raises OSError as ``open``/``write`` do."""
    target = Path(path)
    if target.exists() and not target.is_file():
        target.write_bytes(data)
        return
    aside = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        aside.write_bytes(data)
        os.replace(aside, target)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
