"""The simulator's ground truth for step times: the profile, optionally slowed and noisy.

Only the simulated workers consult this; policies see the predictor, which learns the truth
through the online correction.
"""

from __future__ import annotations

import math

import numpy as np

from kairos.core.latency.predictor import Predictor
from kairos.core.latency.profile import Profile


class Truth:
    __slots__ = ("_rng", "noise", "predictor", "profile", "scale")

    def __init__(
        self, profile: Profile, predictor: Predictor, *, noise: float, scale: float, seed: int
    ) -> None:
        self.profile = profile
        self.predictor = predictor
        self.noise = noise
        self.scale = scale
        self._rng = np.random.default_rng(seed)

    def _factor(self) -> float:
        if not self.noise:
            return self.scale
        # Log-normal with mean 1, so noise does not bias the averages.
        return self.scale * math.exp(self.noise * self._rng.standard_normal() - self.noise**2 / 2)

    def prefill_time(self, sum_tokens: int, sum_sq_tokens: int) -> float:
        """True duration of a prefill batch."""
        return self.profile.prefill.time(sum_tokens, sum_sq_tokens) * self._factor()

    def decode_scale(self) -> float:
        return self._factor() if self.noise else self.scale
