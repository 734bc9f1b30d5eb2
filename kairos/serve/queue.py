"""An ordered request queue with O(1) removal and a front lane for preempted requests."""

from __future__ import annotations

from collections.abc import Iterator

from kairos.core.request import Request


class RequestQueue:
    """Insertion-ordered requests; preempted ones re-enter at the front (vLLM's rule).

    ``tokens`` is the total context the queued requests were enqueued with, so the decode
    views can answer ``waiting_tokens`` without a pass over the queue.
    """

    __slots__ = ("_context", "_front", "_main", "tokens")

    def __init__(self) -> None:
        self._front: dict[int, Request] = {}
        self._main: dict[int, Request] = {}
        self._context: dict[int, int] = {}
        self.tokens = 0

    def append(self, r: Request, context: int) -> None:
        self._main[r.id] = r
        self._context[r.id] = context
        self.tokens += context

    def append_front(self, r: Request, context: int) -> None:
        self._front[r.id] = r
        self._context[r.id] = context
        self.tokens += context

    def discard(self, rid: int) -> Request | None:
        """Remove a request by id if it is queued; returns it (or None)."""
        r = self._front.pop(rid, None) or self._main.pop(rid, None)
        if r is not None:
            self.tokens -= self._context.pop(rid)
        return r

    def __iter__(self) -> Iterator[Request]:
        if self._front:
            # Most recently preempted first, as in the simulator.
            yield from list(self._front.values())[::-1]
        yield from self._main.values()

    def __len__(self) -> int:
        return len(self._front) + len(self._main)

    def __contains__(self, r: object) -> bool:
        rid = getattr(r, "id", None)
        return rid in self._main or rid in self._front
