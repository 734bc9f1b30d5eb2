"""Online correction of a latency model: ``k <- (1 - b) * k + b * actual / predicted_raw``.

It also keeps the running absolute percentage error of the *corrected* prediction, which is the
predictor accuracy every run reports.
"""

from __future__ import annotations


class OnlineCorrection:
    __slots__ = ("abs_pct_error_sum", "beta", "factor", "samples")

    def __init__(self, beta: float = 0.1, factor: float = 1.0) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"correction rate beta must be in [0, 1], got {beta}")
        if not factor > 0:
            raise ValueError(f"correction factor must be positive, got {factor}")
        self.beta = beta
        self.factor = factor
        self.samples = 0
        self.abs_pct_error_sum = 0.0

    def observe(self, actual: float, predicted_raw: float) -> None:
        """Record one measurement against the raw (uncorrected) model prediction."""
        if predicted_raw <= 0 or actual <= 0:
            return
        self.abs_pct_error_sum += abs(actual - self.factor * predicted_raw) / actual
        self.samples += 1
        self.factor = (1.0 - self.beta) * self.factor + self.beta * (actual / predicted_raw)

    @property
    def mape(self) -> float | None:
        """Mean absolute percentage error (as a fraction) of the corrected predictions so far."""
        return self.abs_pct_error_sum / self.samples if self.samples else None
