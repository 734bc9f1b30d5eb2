"""Kairos decode: slack-guided adaptive batching (spec section 5).

Token k of request i is due at ``f_i + tau_i * (k - 1)``; its banked slack is
``sigma_i = f_i + tau_i * g_i - now`` (g = tokens so far). Each boundary:
1. Memory pressure: evict the running request with the most slack (each request at most
   ``max_preemptions`` times while another victim exists); it keeps its first-token time.
2. Step budget ``(1 - margin) * min(tau)``. Waiting requests are admitted shortest context
   first while the predicted step time of the grown batch (transfers in flight included)
   stays within the budget and KV memory keeps ``growth_steps`` steps of headroom:
   shortest-first maximises tokens per step under a time budget (unit-value knapsack).
3. Reservation: a waiting request whose first token is older than ``reserve_after * tau``
   blocks every other admission until it fits, so long contexts cannot starve.
4. An idle instance always admits one request, even one over the budget (work conservation).
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
        reserve_after: float = 40.0,
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
        candidates = self._candidates(view, now)
        admit: list[Request] = []
        for r in candidates:
            ctx = r.prompt_tokens + view.generated(r)
            budget = (1.0 - self.margin) * min(taus, default=r.tpot_slo)
            budget = min(budget, (1.0 - self.margin) * r.tpot_slo)
            fits_time = self.predictor.decode_step_time(batch + 1, kv + ctx) <= budget
            fits_memory = ctx + (batch + 1) * self.growth_steps <= free
            idle = batch == 0
            if batch >= view.max_batch_size or not fits_memory or not (fits_time or idle):
                # Sorted by context: a longer candidate would not fit either.
                break
            admit.append(r)
            batch += 1
            kv += ctx
            free -= ctx
            taus.append(r.tpot_slo)
        return DecodeDecision(admit=admit, preempt=preempt)

    def _candidates(self, view: DecodeView, now: float) -> list[Request]:
        pending = list(view.waiting)
        overdue = [
            r for r in pending if now - view.first_token_time(r) > self.reserve_after * r.tpot_slo
        ]
        if overdue:
            # Reservation: the longest-waiting overdue request goes first and alone.
            return [min(overdue, key=view.first_token_time)]
        pending.sort(key=lambda r: r.prompt_tokens + view.generated(r))
        return pending

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
