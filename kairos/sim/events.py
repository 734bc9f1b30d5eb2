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
    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Any, Any]] = []
        self._seq = 0

    def push(self, time: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, kind, self._seq, a, b))

    def pop(self) -> tuple[float, int, int, Any, Any]:
        return heapq.heappop(self._heap)

    def peek_time(self) -> float:
        return self._heap[0][0] if self._heap else float("inf")

    def __len__(self) -> int:
        return len(self._heap)
