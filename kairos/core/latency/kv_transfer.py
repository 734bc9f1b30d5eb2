"""KV transfer time: ``t_KV(L) = delta0 + L * bytes_per_token / bandwidth``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class KVTransferModel:
    delta0: float
    bytes_per_token: int
    bandwidth: float  # bytes per second

    def __post_init__(self) -> None:
        if self.delta0 < 0 or self.bytes_per_token <= 0 or self.bandwidth <= 0:
            raise ValueError(f"invalid KV transfer model {self}")

    def time(self, tokens: int) -> float:
        return self.delta0 + tokens * self.bytes_per_token / self.bandwidth

    def times(self, tokens: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """``time`` element-wise over integer token counts (the same floats)."""
        return self.delta0 + tokens * self.bytes_per_token / self.bandwidth
