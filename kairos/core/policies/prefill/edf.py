"""Earliest-deadline-first prefill: order by ``arrival + TTFT SLO``.

Optimal when everything can be on time; under overload it wastes the instance on requests
that are already late (the domino effect), which relegation and Kairos address.
"""

from __future__ import annotations

from kairos.core.decisions import PrefillDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import PREFILL_POLICIES
from kairos.core.policies.prefill.fcfs import take_in_order
from kairos.core.snapshot import PrefillView


class EDFPrefill:
    name = "edf"

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def schedule(self, view: PrefillView, now: float) -> PrefillDecision:
        ordered = sorted(view.waiting, key=lambda r: (r.arrival + r.ttft_slo, r.arrival))
        return PrefillDecision(batch=take_in_order(view, ordered))


@PREFILL_POLICIES.register("edf")
def _make(predictor: Predictor) -> EDFPrefill:
    return EDFPrefill(predictor)
