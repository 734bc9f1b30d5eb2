"""Shortest-job-first prefill: fewest uncached prompt tokens first (ties by arrival).

Optimal for mean TTFT with no deadlines in view, but a long prompt can starve under load.
"""

from __future__ import annotations

from kairos.core.decisions import PrefillDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import PREFILL_POLICIES
from kairos.core.policies.prefill.fcfs import take_in_order
from kairos.core.snapshot import PrefillView


class SJFPrefill:
    name = "sjf"

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def schedule(self, view: PrefillView, now: float) -> PrefillDecision:
        ordered = sorted(view.waiting, key=lambda r: (r.prompt_tokens - r.cached_tokens, r.arrival))
        return PrefillDecision(batch=take_in_order(view, ordered))


@PREFILL_POLICIES.register("sjf")
def _make(predictor: Predictor) -> SJFPrefill:
    return SJFPrefill(predictor)
