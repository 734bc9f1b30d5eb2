"""The outcome of one request, from which every latency metric is derived (in one place)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request. Read-only by convention.

    (Not ``frozen``: a frozen dataclass's constructor costs three times as much, and a
    simulation builds one record per request.)

    ``token_times`` holds the emission time of every output token, the first included, so
    TTFT = t[0] - arrival, TPOT = (t[-1] - t[0]) / (n - 1) (0 when n == 1), ITL = diff(t),
    E2E = t[-1] - arrival (spec section 7; vLLM and DistServe definitions).
    """

    id: int
    arrival: float
    input_tokens: int
    ttft_slo: float
    tpot_slo: float
    status: str  # "finished", "rejected" or "failed"
    token_times: FloatArray = field(repr=False)
    prefill_instance: int | None = None
    decode_instance: int | None = None
    preemptions: int = 0
    prefill_start: float | None = None
    predicted_prefill: float | None = None
    error: str | None = None

    @property
    def output_tokens(self) -> int:
        return len(self.token_times)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def ttft(self) -> float | None:
        return float(self.token_times[0]) - self.arrival if len(self.token_times) else None

    @property
    def tpot(self) -> float | None:
        n = len(self.token_times)
        if not self.finished or n == 0:
            return None
        if n == 1:
            return 0.0
        return float(self.token_times[-1] - self.token_times[0]) / (n - 1)

    @property
    def e2e(self) -> float | None:
        if not self.finished or not len(self.token_times):
            return None
        return float(self.token_times[-1]) - self.arrival

    @property
    def itl(self) -> FloatArray:
        return np.diff(self.token_times)

    @property
    def ttft_met(self) -> bool:
        ttft = self.ttft
        return self.finished and ttft is not None and ttft <= self.ttft_slo

    @property
    def tpot_met(self) -> bool:
        tpot = self.tpot
        return tpot is not None and tpot <= self.tpot_slo

    @property
    def slo_met(self) -> bool:
        return self.ttft_met and self.tpot_met

    def to_json(self) -> dict[str, Any]:
        """One row of ``requests.jsonl`` (token times summarised, not listed)."""
        ttft, tpot, e2e = self.ttft, self.tpot, self.e2e
        return {
            "id": self.id,
            "status": self.status,
            "arrival": self.arrival,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "ttft_slo_ms": self.ttft_slo * 1e3,
            "tpot_slo_ms": self.tpot_slo * 1e3,
            "ttft_ms": None if ttft is None else ttft * 1e3,
            "tpot_ms": None if tpot is None else tpot * 1e3,
            "e2e_ms": None if e2e is None else e2e * 1e3,
            "max_itl_ms": float(self.itl.max()) * 1e3 if self.output_tokens > 1 else None,
            "ttft_met": self.ttft_met,
            "tpot_met": self.tpot_met,
            "slo_met": self.slo_met,
            "prefill_instance": self.prefill_instance,
            "decode_instance": self.decode_instance,
            "preemptions": self.preemptions,
            "prefill_start": self.prefill_start,
            "predicted_prefill_ms": None
            if self.predicted_prefill is None
            else self.predicted_prefill * 1e3,
            "error": self.error,
        }
