"""Static SLO-tuned batch cap: FCFS continuous batching, batch size at most ``B*``.

``B* = max{B : t_D(B, B * typical_context) <= (1 - margin) * tau}``: the largest batch whose
predicted step time meets the TPOT SLO at a typical context. It is the strongest simple decode
baseline; tune ``typical_context`` to the workload (mean prompt plus half the mean output).
"""

from __future__ import annotations

from collections.abc import Sequence

from kairos.core.decisions import DecodeDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import DECODE_POLICIES
from kairos.core.policies.decode.fcfs import continuous_batching, most_free_memory
from kairos.core.request import Request
from kairos.core.snapshot import DecodeView


def batch_cap(predictor: Predictor, tpot: float, typical_context: int, limit: int) -> int:
    """The largest batch (at least 1, at most ``limit``) meeting ``tpot`` at that context."""
    cap = 1
    for b in range(1, limit + 1):
        if predictor.decode_step_time(b, b * typical_context) > tpot:
            break
        cap = b
    return cap


class StaticCapDecode:
    name = "static-cap"

    def __init__(
        self, predictor: Predictor, *, typical_context: int = 2048, margin: float = 0.05
    ) -> None:
        if typical_context < 1:
            raise ValueError(f"typical_context must be >= 1, got {typical_context}")
        self.predictor = predictor
        self.typical_context = typical_context
        self.margin = margin
        self._caps: dict[tuple[float, int], int] = {}

    def cap(self, tpot: float, limit: int) -> int:
        key = (tpot, limit)
        if key not in self._caps:
            budget = (1.0 - self.margin) * tpot
            self._caps[key] = batch_cap(self.predictor, budget, self.typical_context, limit)
        return self._caps[key]

    def schedule(self, view: DecodeView, now: float) -> DecodeDecision:
        taus = [r.tpot_slo for r in view.running] + [r.tpot_slo for r in view.waiting]
        limit = self.cap(min(taus), view.max_batch_size) if taus else view.max_batch_size
        return continuous_batching(view, limit)

    def place(self, request: Request, instances: Sequence[DecodeView], now: float) -> int:
        return most_free_memory(instances)


@DECODE_POLICIES.register("static-cap")
def _make(predictor: Predictor, **options: object) -> StaticCapDecode:
    return StaticCapDecode(predictor, **options)  # type: ignore[arg-type]
