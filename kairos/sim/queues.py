"""Waiting queues with O(1) removal from anywhere, iterated in order."""

from __future__ import annotations

from collections.abc import Iterator

from kairos.core.request import Request


class RequestQueue:
    """Insertion-ordered requests; preempted ones re-enter at the front (vLLM's rule)."""

    __slots__ = ("_front", "_main", "count", "tokens")

    def __init__(self) -> None:
        self._front: dict[int, Request] = {}
        self._main: dict[int, Request] = {}
        self.tokens = 0  # total context of the queued requests
        self.count = 0  # len(self), readable without a method call on hot paths

    def append(self, r: Request, context: int) -> None:
        self._main[r.id] = r
        self.tokens += context
        self.count += 1

    def append_front(self, r: Request, context: int) -> None:
        self._front[r.id] = r
        self.tokens += context
        self.count += 1

    def remove(self, r: Request, context: int) -> None:
        if self._front.pop(r.id, None) is None:
            del self._main[r.id]
        self.tokens -= context
        self.count -= 1

    def __iter__(self) -> Iterator[Request]:
        if self._front:
            yield from list(self._front.values())[::-1]
        yield from self._main.values()

    def __len__(self) -> int:
        return self.count

    def __contains__(self, r: object) -> bool:
        rid = getattr(r, "id", None)
        return rid in self._main or rid in self._front


class ChainedQueue:
    """Two queues read as one, the first first (a prefill instance's own resumed prompts,
    then the global queue). Read-only: the owner removes from the underlying queues."""

    __slots__ = ("first", "second")

    def __init__(self, first: RequestQueue, second: RequestQueue) -> None:
        self.first = first
        self.second = second

    @property
    def count(self) -> int:
        return self.first.count + self.second.count

    def __iter__(self) -> Iterator[Request]:
        yield from self.first
        yield from self.second

    def __len__(self) -> int:
        return self.first.count + self.second.count

    def __contains__(self, r: object) -> bool:
        return r in self.first or r in self.second
