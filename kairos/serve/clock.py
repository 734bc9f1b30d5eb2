"""The server's clock: ``time.monotonic()`` itself, with no per-process origin.

``kairos.core.clock.WallClock`` puts its origin at construction, which differs per process.
CLOCK_MONOTONIC is system-wide, so the proxy and every worker read the same time line and
their timestamps can be compared directly (arrival in the proxy, token times in a worker).
"""

from __future__ import annotations

import time


class MonotonicClock:
    """Implements ``kairos.core.clock.Clock``."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()
