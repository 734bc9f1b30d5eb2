"""Online correction of a latency model: ``k <- (1 - r) * k + r * actual / predicted_raw``.

The rate ``r`` starts as a running mean (``1 / (n + 2)`` after ``n`` samples, the profile's
factor counting as one) and settles at ``beta``: the first samples move the factor as fast as
they can, later ones average over about ``2 / beta`` of them. A new engine converges in a few
steps whatever ``beta`` is, so ``beta`` only sets how much step noise reaches the factor.

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
        if self.beta > 0.0:  # beta = 0: frozen (the uncorrected and oracle predictors)
            rate = max(self.beta, 1.0 / (self.samples + 1))
            self.factor += rate * (actual / predicted_raw - self.factor)

    @property
    def mape(self) -> float | None:
        """Mean absolute percentage error (as a fraction) of the corrected predictions so far."""
        return self.abs_pct_error_sum / self.samples if self.samples else None
