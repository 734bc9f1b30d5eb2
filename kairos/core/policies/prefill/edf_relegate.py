"""Deadline scheduling with a length term and relegation (Niyama-style hybrid).

Key ``arrival + T + alpha * L_u``: deadline order, nudged toward short prompts. A request that
cannot make its deadline even if started now (``now + p > D``) is relegated behind every
feasible one, so late work stops pushing on-time work late. ``alpha`` defaults to the
predictor's per-token prefill cost, which makes the key close to deadline plus service time.
"""

from __future__ import annotations

from kairos.core.decisions import PrefillDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import PREFILL_POLICIES
from kairos.core.policies.prefill.fcfs import take_in_order
from kairos.core.snapshot import PrefillView


class EDFRelegatePrefill:
    name = "edf-relegate"

    def __init__(self, predictor: Predictor, *, alpha: float | None = None) -> None:
        if alpha is not None and alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.predictor = predictor
        self.alpha = predictor.prefill.c1 if alpha is None else alpha

    def schedule(self, view: PrefillView, now: float) -> PrefillDecision:
        pred = self.predictor
        alpha = self.alpha
        keyed = []
        for r in view.waiting:
            u = r.prompt_tokens - r.cached_tokens
            deadline = r.arrival + r.ttft_slo
            relegated = now + pred.prefill_time_one(u) > deadline
            keyed.append((relegated, deadline + alpha * u, r.arrival, r))
        keyed.sort(key=lambda item: item[:3])
        return PrefillDecision(batch=take_in_order(view, (item[3] for item in keyed)))


@PREFILL_POLICIES.register("edf-relegate")
def _make(predictor: Predictor, **options: object) -> EDFRelegatePrefill:
    return EDFRelegatePrefill(predictor, **options)  # type: ignore[arg-type]
