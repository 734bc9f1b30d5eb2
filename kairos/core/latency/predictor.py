"""The predictor policies consult: fitted models times an online correction factor."""

from __future__ import annotations

from numpy.typing import ArrayLike

from kairos.core.latency.correction import OnlineCorrection
from kairos.core.latency.decode import DecodeModel, FloatArray
from kairos.core.latency.kv_transfer import KVTransferModel
from kairos.core.latency.prefill import PrefillModel
from kairos.core.latency.profile import Profile


class Predictor:
    """Corrected predictions; the runtime reports measured times through ``observe_*``."""

    __slots__ = ("decode", "decode_correction", "kv_transfer", "prefill", "prefill_correction")

    def __init__(
        self,
        prefill: PrefillModel,
        decode: DecodeModel,
        kv_transfer: KVTransferModel,
        *,
        beta: float = 0.1,
    ) -> None:
        self.prefill = prefill
        self.decode = decode
        self.kv_transfer = kv_transfer
        self.prefill_correction = OnlineCorrection(beta)
        self.decode_correction = OnlineCorrection(beta)

    @classmethod
    def from_profile(cls, profile: Profile, *, beta: float = 0.1) -> Predictor:
        return cls(profile.prefill, profile.decode, profile.kv_transfer, beta=beta)

    def prefill_time(self, sum_tokens: float, sum_sq_tokens: float) -> float:
        return self.prefill_correction.factor * self.prefill.time(sum_tokens, sum_sq_tokens)

    def prefill_time_one(self, tokens: int) -> float:
        return self.prefill_correction.factor * self.prefill.time_one(tokens)

    def decode_step_time(self, batch_size: int, kv_tokens: int) -> float:
        return self.decode_correction.factor * self.decode.step_time(batch_size, kv_tokens)

    def decode_step_times(self, batch_size: ArrayLike, kv_tokens: ArrayLike) -> FloatArray:
        """``decode_step_time`` element-wise (the same floats)."""
        return self.decode_correction.factor * self.decode.step_times(batch_size, kv_tokens)

    def observe_prefill(self, actual: float, sum_tokens: float, sum_sq_tokens: float) -> None:
        self.prefill_correction.observe(actual, self.prefill.time(sum_tokens, sum_sq_tokens))

    def observe_decode(self, actual: float, predicted_raw: float) -> None:
        self.decode_correction.observe(actual, predicted_raw)

    def mape(self) -> dict[str, float | None]:
        return {"prefill": self.prefill_correction.mape, "decode": self.decode_correction.mape}
