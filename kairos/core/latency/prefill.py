"""Prefill batch time: ``t_P(S) = c0 + c1 * sum(L_u) + c2 * sum(L_u^2)`` (DistServe's form).

The linear term is the GEMMs (proportional to batch tokens), the quadratic term is attention
(each request attends over its own prompt).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PrefillModel:
    c0: float
    c1: float
    c2: float

    def __post_init__(self) -> None:
        if self.c0 < 0 or self.c1 < 0 or self.c2 < 0:
            raise ValueError(f"prefill coefficients must be non-negative, got {self}")

    def time(self, sum_tokens: float, sum_sq_tokens: float) -> float:
        """Seconds for a batch given the sum and sum of squares of its uncached lengths."""
        return self.c0 + self.c1 * sum_tokens + self.c2 * sum_sq_tokens

    def time_one(self, tokens: int) -> float:
        return self.c0 + self.c1 * tokens + self.c2 * tokens * tokens

    def time_batch(self, lengths: Iterable[int]) -> float:
        s = s2 = 0
        for n in lengths:
            s += n
            s2 += n * n
        return self.time(s, s2)
