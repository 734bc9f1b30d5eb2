"""A deterministic event heap: ties are broken by (time, priority, insertion order)."""

from __future__ import annotations

import heapq
from typing import Any

# Lower runs first at equal times: a finished transfer or batch frees resources before
# the arrivals and boundaries of the same instant look at them.
KV_DONE = 0
PREFILL_DONE = 1
DECODE_BOUNDARY = 2


class EventQueue:
    __slots__ = ("_seq", "heap")

    def __init__(self) -> None:
        # Public so the event loop can pop without a method call; push only through push().
        self.heap: list[tuple[float, int, int, Any, Any]] = []
        self._seq = 0

    def push(self, time: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (time, kind, self._seq, a, b))

    def pop(self) -> tuple[float, int, int, Any, Any]:
        return heapq.heappop(self.heap)

    def peek_time(self) -> float:
        return self.heap[0][0] if self.heap else float("inf")

    def __len__(self) -> int:
        return len(self.heap)
