"""Kairos decode: slack-guided adaptive batching (spec section 5).

Token k of request i is due at ``f_i + tau_i * (k - 1)``; its banked slack is
``sigma_i = f_i + tau_i * g_i - now`` (g = tokens so far). Each boundary:
1. Memory pressure: evict the running request with the most slack (each request at most
   ``max_preemptions`` times while another victim exists); it keeps its first-token time.
2. Step budget ``(1 - margin) * min(tau)``. Waiting requests are admitted shortest context
   first while the predicted step time of the grown batch (transfers in flight included)
   stays within the budget and KV memory keeps ``growth_steps`` steps of headroom:
   shortest-first maximises tokens per step under a time budget (unit-value knapsack).
3. Hopeless last: a waiting request that has waited more than ``hopeless_after * tau`` since
   its first token can no longer meet its TPOT, so it only fills budget the fresh ones leave.
   (Measured: admitting in queue order under a tight SLO lets every request burn its slack
   while it waits, and joint attainment fell to 3% where continuous batching kept 24%.)
4. Reservation: the oldest request waiting longer than ``reserve_after * tau`` is admitted
   even over the budget (memory permitting), one per boundary, so nothing starves. The spec
   blocks all admissions until it fits instead; that stalls the instance under overload.
5. An idle instance always admits one request, even one over the budget (work conservation).
Placement: the instance with the most room between its predicted step time and its budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from kairos.core.decisions import DecodeDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import DECODE_POLICIES
from kairos.core.request import Request
from kairos.core.snapshot import DecodeView


class KairosDecode:
    name = "kairos"

    def __init__(
        self,
        predictor: Predictor,
        *,
        margin: float = 0.05,
        growth_steps: int = 16,
        hopeless_after: float = 20.0,
        reserve_after: float = 2000.0,
        max_preemptions: int = 2,
    ) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        if growth_steps < 0 or max_preemptions < 0 or reserve_after <= 0:
            raise ValueError("growth_steps and max_preemptions must be >= 0, reserve_after > 0")
        self.predictor = predictor
        self.margin = margin
        self.growth_steps = growth_steps
        self.reserve_after = reserve_after
        self.hopeless_after = hopeless_after
        self.max_preemptions = max_preemptions

    def slack(self, view: DecodeView, r: Request, now: float) -> float:
        return view.first_token_time(r) + r.tpot_slo * view.generated(r) - now

    def schedule(self, view: DecodeView, now: float) -> DecodeDecision:
        preempt = self._preempt(view, now)
        waiting = view.waiting
        if not waiting:
            return DecodeDecision(preempt=preempt)
        gone = {r.id for r in preempt}
        running = [r for r in view.running if r.id not in gone]
        batch = len(running) + view.transferring
        # K of the batch that will run: running plus transfers in flight.
        in_flight = view.kv_capacity_tokens - view.kv_free_tokens - view.kv_tokens
        kv = sum(r.prompt_tokens + view.generated(r) for r in running) + in_flight
        free = view.kv_free_tokens + sum(r.prompt_tokens + view.generated(r) for r in preempt)
        taus = [r.tpot_slo for r in running]
        reserved, fresh, hopeless = self._classify(view, now)
        admit: list[Request] = []
        for group, over_budget in ((reserved, True), (fresh, False), (hopeless, False)):
            for r in group:
                ctx = r.prompt_tokens + view.generated(r)
                budget = (1.0 - self.margin) * min(min(taus, default=r.tpot_slo), r.tpot_slo)
                fits_time = self.predictor.decode_step_time(batch + 1, kv + ctx) <= budget
                fits_memory = ctx + (batch + 1) * self.growth_steps <= free
                if batch >= view.max_batch_size or not fits_memory:
                    break
                if not (fits_time or over_budget or batch == 0):
                    break  # sorted by context: a longer one would not fit either
                admit.append(r)
                batch += 1
                kv += ctx
                free -= ctx
                taus.append(r.tpot_slo)
        return DecodeDecision(admit=admit, preempt=preempt)

    def _classify(
        self, view: DecodeView, now: float
    ) -> tuple[list[Request], list[Request], list[Request]]:
        """(reserved, fresh, hopeless) waiting requests; the last two shortest context first."""
        reserved: list[Request] = []
        fresh: list[Request] = []
        hopeless: list[Request] = []
        oldest_wait = 0.0
        for r in view.waiting:
            waited = (now - view.first_token_time(r)) / r.tpot_slo
            if waited > self.reserve_after and waited > oldest_wait:
                reserved, oldest_wait = [r], waited
            (hopeless if waited > self.hopeless_after else fresh).append(r)
        if reserved:
            group = hopeless if reserved[0] in hopeless else fresh
            group.remove(reserved[0])
        fresh.sort(key=lambda r: r.prompt_tokens + view.generated(r))
        hopeless.sort(key=lambda r: r.prompt_tokens + view.generated(r))
        return reserved, fresh, hopeless

    def _preempt(self, view: DecodeView, now: float) -> list[Request]:
        free = view.kv_free_tokens
        running = list(view.running)
        victims: list[Request] = []
        while free < len(running) - len(victims) and len(victims) < len(running):
            chosen = {r.id for r in victims}
            pool = [r for r in running if r.id not in chosen]
            fresh = [r for r in pool if r.preemptions < self.max_preemptions] or pool
            victim = max(fresh, key=lambda r: self.slack(view, r, now))
            victims.append(victim)
            free += victim.prompt_tokens + view.generated(victim)
        return victims

    def room(self, view: DecodeView) -> float:
        """Budget left on an instance if everything placed there were running."""
        taus = [r.tpot_slo for r in view.running] + [r.tpot_slo for r in view.waiting]
        if not taus and not view.transferring:
            return float("inf")
        batch = len(view.running) + view.transferring + len(view.waiting)
        kv = view.kv_capacity_tokens - view.kv_free_tokens + view.waiting_tokens
        budget = (1.0 - self.margin) * min(taus, default=float("inf"))
        return min(budget, 1.0) - self.predictor.decode_step_time(batch, kv)

    def place(self, request: Request, instances: Sequence[DecodeView], now: float) -> int:
        best, best_room = 0, -float("inf")
        for i, inst in enumerate(instances):
            room = self.room(inst)
            if room > best_room:
                best, best_room = i, room
        return best


@DECODE_POLICIES.register("kairos")
def _make(predictor: Predictor, **options: object) -> KairosDecode:
    return KairosDecode(predictor, **options)  # type: ignore[arg-type]
