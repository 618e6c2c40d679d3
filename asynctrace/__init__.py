"""asynctrace: see and test what an asyncio program really does.

Every task, coroutine, ``gather`` and await is recorded as a span; see ``docs/``.
"""

from ._decorator import trace
from ._spans import Span, Trace
from ._tracing import Tracing, instrument, tracing, uninstrument
from ._virtual import VirtualTimeDeadlock, VirtualTimeLoop, VirtualTimePolicy, virtual_time

__all__ = [
    "Span",
    "Trace",
    "Tracing",
    "VirtualTimeDeadlock",
    "VirtualTimeLoop",
    "VirtualTimePolicy",
    "instrument",
    "trace",
    "tracing",
    "uninstrument",
    "virtual_time",
]
__version__ = "0.1.0"
