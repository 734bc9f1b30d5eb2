"""Decode step time: ``t_D(B, K) = d0 + d1 * B + d2 * K``.

``B`` is the batch size and ``K`` the total KV tokens the batch attends over. The linear form
matters beyond accuracy: while a batch does not change, K grows by B every step, so step times
form an arithmetic progression and many steps can be advanced in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from kairos.core.latency.arith import run_time, steps_within

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class DecodeModel:
    d0: float
    d1: float
    d2: float

    def __post_init__(self) -> None:
        if self.d0 <= 0 or self.d1 < 0 or self.d2 < 0:
            raise ValueError(f"decode coefficients must be d0 > 0, d1 >= 0, d2 >= 0, got {self}")

    def step_time(self, batch_size: int, kv_tokens: int) -> float:
        return self.d0 + self.d1 * batch_size + self.d2 * kv_tokens

    def step_times(self, batch_size: ArrayLike, kv_tokens: ArrayLike) -> FloatArray:
        """``step_time`` element-wise (the same operations, so the same floats)."""
        return self.d0 + self.d1 * np.asarray(batch_size) + self.d2 * np.asarray(kv_tokens)

    def steps_time(self, batch_size: int, kv_tokens: int, steps: int) -> float:
        """Total time of ``steps`` steps of an unchanging batch (K grows by B each step)."""
        return run_time(self.step_time(batch_size, kv_tokens), self.d2 * batch_size, steps)

    def steps_within(self, batch_size: int, kv_tokens: int, budget: float) -> int:
        """The largest n with ``steps_time(B, K, n) <= budget`` (0 if the first step overruns)."""
        return steps_within(self.step_time(batch_size, kv_tokens), self.d2 * batch_size, budget)
