"""Which predictor the policies consult in a simulation, to measure what prediction error costs.

- ``fitted``: the profile's models with online correction (what a real deployment has).
- ``uncorrected``: the profile's models, never corrected (correction switched off).
- ``oracle``: knows the truth's latency model exactly: the profile scaled by the true slowdown,
  no correction needed. The per-step noise (``ClusterConfig.noise``) is irreducible, so the
  oracle predicts its mean (1), like any scheduler that decides before the step runs.

Only the simulator can build an oracle: it is the only runtime that knows the truth.
"""

from __future__ import annotations

from kairos.core.latency.correction import OnlineCorrection
from kairos.core.latency.predictor import Predictor
from kairos.core.latency.profile import Profile
from kairos.sim.config import ClusterConfig

PREDICTORS = ("fitted", "uncorrected", "oracle")


def build_predictor(kind: str, profile: Profile, config: ClusterConfig) -> Predictor:
    if kind == "fitted":
        return Predictor.from_profile(profile)
    predictor = Predictor.from_profile(profile, prefill_beta=0.0, decode_beta=0.0)
    if kind == "uncorrected":
        return predictor
    if kind == "oracle":
        # beta = 0 freezes the factor; MAPE is still tracked against the noisy truth.
        predictor.prefill_correction = OnlineCorrection(0.0, config.truth_scale)
        predictor.decode_correction = OnlineCorrection(0.0, config.truth_scale)
        return predictor
    raise ValueError(f"unknown predictor {kind!r}; choose from {', '.join(PREDICTORS)}")
