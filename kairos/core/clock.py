"""Time is injected: policies get ``now`` as an argument, runtimes own a Clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since an arbitrary, fixed origin."""
        ...


class SimClock:
    """Simulated time, advanced only by the event loop (never backwards)."""

    __slots__ = ("_t",)

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def advance_to(self, t: float) -> None:
        if t < self._t:
            raise ValueError(f"simulated time cannot go backwards: {t} < {self._t}")
        self._t = t


class WallClock:
    """Monotonic wall-clock time, with its origin at construction."""

    __slots__ = ("_origin",)

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin
