"""The predictor policies consult: fitted models times an online correction factor."""

from __future__ import annotations

from numpy.typing import ArrayLike

from kairos.core.latency.correction import OnlineCorrection
from kairos.core.latency.decode import DecodeModel, FloatArray
from kairos.core.latency.kv_transfer import KVTransferModel
from kairos.core.latency.prefill import PrefillModel
from kairos.core.latency.profile import Profile

# Correction rates (``OnlineCorrection``). Decode's is ten times slower: its admissions are
# irreversible, so a factor that noise dips below the truth grows the batch past the budget for
# good, and a decode instance reports many steps a second to average over. Measured with
# ``kairos sim --trace azure-conv --rate-scale 4.4 --duration 900 --ttft-slo 0.5 --tpot-slo
# 0.015 --noise 0.15 --truth-scale 1.25 --prefill-policy kairos --decode-policy kairos``: TPOT
# attainment 15.0% at 0.1, 26.2% at 0.01, 27.3% with the oracle; at --rate-scale 5.5 --noise
# 0.05 (no --truth-scale) 82.1% at 0.1 and 83.1% at 0.01.
PREFILL_BETA = 0.1
DECODE_BETA = 0.01


class Predictor:
    """Corrected predictions; the runtime reports measured times through ``observe_*``."""

    __slots__ = ("decode", "decode_correction", "kv_transfer", "prefill", "prefill_correction")

    def __init__(
        self,
        prefill: PrefillModel,
        decode: DecodeModel,
        kv_transfer: KVTransferModel,
        *,
        prefill_beta: float = PREFILL_BETA,
        decode_beta: float = DECODE_BETA,
    ) -> None:
        self.prefill = prefill
        self.decode = decode
        self.kv_transfer = kv_transfer
        self.prefill_correction = OnlineCorrection(prefill_beta)
        self.decode_correction = OnlineCorrection(decode_beta)

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        prefill_beta: float = PREFILL_BETA,
        decode_beta: float = DECODE_BETA,
    ) -> Predictor:
        return cls(
            profile.prefill,
            profile.decode,
            profile.kv_transfer,
            prefill_beta=prefill_beta,
            decode_beta=decode_beta,
        )

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
