"""Moore-Hodgson: the largest set of jobs that can all finish by their deadlines (1||sum U_j).

Walk jobs in deadline order keeping a running finish time; whenever the job just added would
be late, drop the longest job kept so far. The kept set is optimal (Moore 1968), in O(n log n).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def moore_hodgson(
    jobs: Sequence[tuple[float, float, T]], start: float
) -> tuple[list[tuple[float, float, T]], list[tuple[float, float, T]]]:
    """Split ``jobs`` (``(deadline, duration, item)``, sorted by deadline) into on-time and late.

    Sequential processing from ``start`` is assumed. Both lists keep deadline order.
    """
    finish = start
    kept: list[tuple[float, int]] = []  # max-heap of (-duration, index)
    dropped: set[int] = set()
    for i, (deadline, duration, _) in enumerate(jobs):
        finish += duration
        heapq.heappush(kept, (-duration, i))
        if finish > deadline:
            neg, j = heapq.heappop(kept)
            finish += neg
            dropped.add(j)
    on_time = [job for i, job in enumerate(jobs) if i not in dropped]
    late = [jobs[i] for i in sorted(dropped)]
    return on_time, late
