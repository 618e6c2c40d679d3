"""asynctrace: see and test what an asyncio program really does.

Every task, coroutine, ``gather`` and await is recorded as a span; see ``docs/``.
"""

from ._decorator import trace
from ._spans import Span, Trace
from ._tracing import Tracing, instrument, tracing, uninstrument

__all__ = ["Span", "Trace", "Tracing", "instrument", "trace", "tracing", "uninstrument"]
__version__ = "0.1.0"
