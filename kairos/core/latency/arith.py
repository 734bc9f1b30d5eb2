"""Closed forms for runs of decode steps whose durations grow linearly.

While a decode batch is unchanged, step j (0-based) takes ``first + inc * j``: K grows by B
tokens each step and the step time is linear in K.
"""

from __future__ import annotations

import math


def run_time(first: float, inc: float, steps: int) -> float:
    """Total time of ``steps`` steps."""
    return steps * first + inc * steps * (steps - 1) * 0.5


def steps_within(first: float, inc: float, budget: float) -> int:
    """The largest n with ``run_time(first, inc, n) <= budget``."""
    if budget <= 0.0:
        return 0
    if inc <= 0.0:
        n = int(budget / first)
    else:
        b = first - 0.5 * inc
        n = int((-b + math.sqrt(b * b + 2.0 * inc * budget)) / inc)
    # The square root can be off by one ulp at the boundary; settle it exactly.
    while n > 0 and run_time(first, inc, n) > budget:
        n -= 1
    while run_time(first, inc, n + 1) <= budget:
        n += 1
    return n
