"""The emulated GPU: every step takes exactly what the profile's fitted models say.

It computes nothing: the workers sleep for these durations and emit placeholder tokens, so the
server's scheduling, transport and HTTP layers run for real against known hardware timings
(the simulator's ground truth with ``--noise 0``).
"""

from __future__ import annotations

from kairos.core.latency.profile import Profile
from kairos.serve.engines import ENGINES


class EmulatedEngine:
    __slots__ = ("profile",)

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def prefill_time(self, sum_tokens: int, sum_sq_tokens: int) -> float:
        return self.profile.prefill.time(sum_tokens, sum_sq_tokens)

    def decode_step_time(self, batch_size: int, kv_tokens: int) -> float:
        return self.profile.decode.step_time(batch_size, kv_tokens)

    def kv_transfer_time(self, tokens: int) -> float:
        return self.profile.kv_transfer.time(tokens)


@ENGINES.register("emulated")
def _make(profile: Profile) -> EmulatedEngine:
    return EmulatedEngine(profile)
