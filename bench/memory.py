"""One mode of one workload in a fresh process, reporting its peak resident memory.

``python -m bench.memory WORKLOAD MODE [--quick]`` prints one JSON line: ``baseline_kb`` (the
process's peak RSS once everything is imported, the tracer started and the workload built) and
``peak_kb`` (the peak RSS after the run, the stop and the export), both read from ``VmHWM`` in
``/proc/self/status``.  A fresh process per mode keeps one mode's memory out of another's
high-water mark.  (``getrusage().ru_maxrss`` cannot be used: Linux carries it over ``exec``
from the parent, so every child would report the bench's own peak.)
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys

from bench.modes import make_modes
from bench.workloads import workloads


def _maxrss_kb() -> int:
    """The process's peak resident set size in KiB (``VmHWM``; ``ru_maxrss`` elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("--")]
    if len(names) != 2:
        sys.stderr.write("usage: python -m bench.memory WORKLOAD MODE [--quick]\n")
        return 2
    workload = workloads(quick)[names[0]]
    modes = {m.key: m for m in make_modes(scale=workload.name == "scale")}
    mode = modes[names[1]]
    reason = mode.available()
    if reason is not None:
        print(json.dumps({"skipped": reason}))
        return 0
    mode.preload()
    main_fn = mode.build(workload)
    loop = asyncio.new_event_loop()
    gc.collect()
    mode.start(workload)
    baseline = _maxrss_kb()
    try:
        loop.run_until_complete(main_fn())
        metrics = mode.finish()
    finally:
        loop.close()
        mode.close()
    peak = _maxrss_kb()
    print(
        json.dumps(
            {
                "baseline_kb": baseline,
                "peak_kb": peak,
                "spans": metrics.get("spans"),
                "dropped": metrics.get("dropped"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
