"""Waiting queues with O(1) removal from anywhere, iterated in order."""

from __future__ import annotations

from collections.abc import Iterator

from kairos.core.decode_state import RequestQueue
from kairos.core.queue_columns import Columns
from kairos.core.request import Request

__all__ = ["ChainedQueue", "RequestQueue"]


class ChainedQueue:
    """Two queues read as one, the first first (a prefill instance's own resumed prompts,
    then the global queue). Read-only: the owner removes from the underlying queues."""

    __slots__ = ("first", "second")

    def __init__(self, first: RequestQueue, second: RequestQueue) -> None:
        self.first = first
        self.second = second

    @property
    def columns(self) -> Columns | None:
        """Both queues' columns, the first's rows first (None unless both keep them)."""
        a, b = self.first.columns, self.second.columns
        return None if a is None or b is None else Columns.chain(a, b)

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
