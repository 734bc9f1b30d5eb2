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

    Sequential processing from ``start`` is assumed. Both lists keep deadline order. Of
    equally long jobs, the earliest kept one is dropped first.
    """
    dropped = late_jobs([d for d, _, _ in jobs], [p for _, p, _ in jobs], start)
    if not dropped:
        return list(jobs), []
    out = set(dropped)
    return [job for i, job in enumerate(jobs) if i not in out], [jobs[i] for i in dropped]


def late_jobs(deadlines: Sequence[float], durations: Sequence[float], start: float) -> list[int]:
    """The positions Moore-Hodgson leaves out (ascending), for jobs given as two lists in
    deadline order: the policies' hot path, with no tuples to build."""
    finish = start
    kept: list[tuple[float, int]] = []  # max-heap of (-duration, index)
    dropped: list[int] = []
    push, push_pop = heapq.heappush, heapq.heappushpop
    for i, (deadline, duration) in enumerate(zip(deadlines, durations, strict=True)):
        finish += duration
        if finish > deadline:  # push it, then drop the longest kept (perhaps itself)
            neg, j = push_pop(kept, (-duration, i))
            finish += neg
            dropped.append(j)
        else:
            push(kept, (-duration, i))
    dropped.sort()
    return dropped
