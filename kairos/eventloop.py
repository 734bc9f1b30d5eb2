"""One event-loop runner for every asyncio entry point (the proxies, the bench).

uvloop (libuv) where installed: the proxy's per-token path is event-loop bound (a worker
socket read, waking the response, an SSE write per token), and uvloop cuts its fixed cost.
The standard loop otherwise (uvloop has no Windows build).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the fastest loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
