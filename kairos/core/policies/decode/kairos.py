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
6. First tokens due (vLLM's P/D, where the decode instance emits the first token): a waiting
   request with no token yet still has its TTFT at stake here. Once waiting one more boundary
   would make its first token (hand-off plus two steps, predicted) miss the TTFT deadline, it
   is admitted earliest deadline first, over the budget by as much as the banked slack of the
   running requests still ahead of their deadlines covers for ``slack_horizon`` steps; a
   request whose TTFT is already lost waits for budget like any other. Holding these back
   kept every admitted request within its TPOT but cost 10% of TTFT attainment in
   ``kairos sim --first-token decode``, and lost the real vLLM experiment on TTFT
   (docs/vllm.md).
Placement: the instance with the most room between its predicted step time and its budget.

Limits (measured): where a decode instance runs near its capacity under the budget, the cap
loses to continuous batching. On Azure conv at x5.5 (``kairos sim --trace azure-conv
--rate-scale 5.5 --duration 900 --ttft-slo 0.5 --tpot-slo 0.015 --noise 0.05``), the
instance made 7,031 tokens/s against about 7,100 possible within 14.25 ms steps. The
requests it held back waited (median longest gap 326 ms) and missed TPOT: Kairos decode got
82.1% of TPOTs, FCFS decode 86.2%. FCFS's 17 ms p99 steps absorb the burst. Every variant
tried scored closer to FCFS the more it behaved like FCFS, and none passed it (TPOT
attainment): a budget above tau reached 85.8%, admitting every fresh request once one had
waited tau/2 reached 85.0%, and lending banked slack to admissions stayed at 80.0-82.5%.
Those same variants lost the cases the cap exists for: at a 0.75x SLO Kairos decode kept
17.2% of TPOTs, and the elastic variant kept 2.8% (FCFS 2.7%).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

from kairos.core.decisions import DecodeDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import DECODE_POLICIES
from kairos.core.request import Request
from kairos.core.snapshot import DecodeView

# (context tokens, position in the waiting queue, request): heap order = shortest first.
Job = tuple[int, int, Request]


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
        ttft_guard_steps: float = 2.0,
        slack_horizon: float = 16.0,
    ) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        if growth_steps < 0 or max_preemptions < 0 or reserve_after <= 0:
            raise ValueError("growth_steps and max_preemptions must be >= 0, reserve_after > 0")
        if ttft_guard_steps < 0 or slack_horizon <= 0:
            raise ValueError("ttft_guard_steps must be >= 0 and slack_horizon > 0")
        self.predictor = predictor
        self.margin = margin
        self.growth_steps = growth_steps
        self.reserve_after = reserve_after
        self.hopeless_after = hopeless_after
        self.max_preemptions = max_preemptions
        # Steps of warning before a first token would be late: one for the next boundary,
        # one for prediction error.
        self.ttft_guard_steps = ttft_guard_steps
        self.slack_horizon = slack_horizon

    def slack(self, view: DecodeView, r: Request, now: float) -> float:
        return r.decode_anchor + r.tpot_slo * view.generated(r) - now

    def schedule(self, view: DecodeView, now: float) -> DecodeDecision:
        preempt = self._preempt(view, now)
        waiting = view.waiting
        if not waiting:
            return DecodeDecision(preempt=preempt)
        gone = {r.id for r in preempt}
        freed = sum(r.prompt_tokens + view.generated(r) for r in preempt)
        batch = len(view.running) - len(preempt) + view.transferring
        # K of the batch that will run: everything held or reserved (running and transfers
        # in flight) less what preemption frees.
        kv = view.kv_capacity_tokens - view.kv_free_tokens - freed
        free = view.kv_free_tokens + freed
        tau_min = min((r.tpot_slo for r in view.running if r.id not in gone), default=None)
        step = self.predictor.decode_step_time
        keep = 1.0 - self.margin
        # When the budget is spent (not even a one-token request fits; the common case under
        # load) only a reservation or a due first token can be admitted: no heaps are built.
        spent = bool(batch) and tau_min is not None and step(batch + 1, kv + 1) > keep * tau_min
        reserved, fresh, hopeless, pending = self._scan(view, now, sort=not spent)
        due, wake_at = self._first_tokens_due(pending, now, batch, kv)
        # A due first token may overrun the budget by what the running requests' banked
        # slack covers for ``slack_horizon`` steps: their TPOT is an average, so a few
        # slower steps cost them nothing once they are ahead of their deadlines.
        allowance = 0.0
        if due:
            slacks = (self.slack(view, r, now) for r in view.running if r.id not in gone)
            # Requests already behind their deadlines have nothing left to protect.
            allowance = min((s for s in slacks if s >= 0.0), default=float("inf"))
            allowance /= self.slack_horizon
        growth, max_batch = self.growth_steps, view.max_batch_size
        admit: list[Request] = []
        taken: set[int] = set()
        inf = float("inf")
        groups = (
            (iter(due), allowance),
            (_drain(reserved), inf),
            (_drain(fresh), 0.0),
            (_drain(hopeless), 0.0),
        )
        for jobs, extra in groups:
            for ctx, _, r in jobs:
                if r.id in taken:
                    continue  # a due first token that is also the reservation
                tau = r.tpot_slo if tau_min is None or r.tpot_slo < tau_min else tau_min
                if batch >= max_batch or ctx + (batch + 1) * growth > free:
                    break
                if batch and extra < inf and step(batch + 1, kv + ctx) > keep * tau + extra:
                    break  # shortest first (due: earliest first, the rest wait a boundary)
                admit.append(r)
                taken.add(r.id)
                batch += 1
                kv += ctx
                free -= ctx
                tau_min = tau
        return DecodeDecision(admit=admit, preempt=preempt, wake_at=wake_at)

    def _first_tokens_due(
        self, pending: list[tuple[int, Request]], now: float, batch: int, kv: int
    ) -> tuple[list[Job], float | None]:
        """Of the waiting requests with no token yet (``(queue position, request)``; where
        prefill emits the first token, the default, there are none), those whose first token
        is still on time but would not be after one more boundary, earliest TTFT deadline
        first (rule 6), and when the next of the others comes due."""
        if not pending:
            return [], None
        step = self.predictor.decode_step_time
        transfer = self.predictor.kv_transfer.time
        guard = self.ttft_guard_steps * step(max(batch, 1), max(kv, 1))
        due: list[tuple[float, int, Request]] = []
        wake_at: float | None = None
        for i, r in pending:
            ctx = r.prompt_tokens
            # Admitted now: its KV lands, it joins at the boundary after that, and its first
            # step ends one step later.
            first = now + transfer(ctx) + 2.0 * step(batch + 1, kv + ctx)
            deadline = r.ttft_deadline
            if deadline < first:
                continue  # its TTFT is lost: it waits for budget like any other
            if deadline < first + guard:
                due.append((deadline, i, r))
            else:
                comes_due = deadline - guard - (first - now)
                if wake_at is None or comes_due < wake_at:
                    wake_at = comes_due
        due.sort()
        return [(r.prompt_tokens, i, r) for _, i, r in due], wake_at

    def _scan(
        self, view: DecodeView, now: float, *, sort: bool
    ) -> tuple[list[Job], list[Job], list[Job], list[tuple[int, Request]]]:
        """One pass over the waiting queue: (reserved, fresh, hopeless, pending).

        ``reserved`` is the request that has waited longest past ``reserve_after``, if any;
        with ``sort`` the others are split into fresh and hopeless heaps keyed by context
        (heaps, not sorted lists: admission stops at the first request that does not fit, so
        usually only a few are popped). ``pending`` lists the requests with no token yet
        (vLLM's P/D) for rule 6. This runs at every decode step over the whole queue, so it
        reads the request's slots directly (``decode_anchor`` inlined). A waiting request is
        not running, so its context is ``prompt + output_tokens``.
        """
        fresh: list[Job] = []
        hopeless: list[Job] = []
        pending: list[tuple[int, Request]] = []
        reserved: Job | None = None
        reserved_hopeless = False
        oldest = self.reserve_after
        hopeless_after = self.hopeless_after
        for i, r in enumerate(view.waiting):
            anchor = r.first_token
            if anchor is None:
                anchor = r.prefill_end
            waited = (now - anchor) / r.tpot_slo  # type: ignore[operator]
            out = r.output_tokens
            if not out:
                pending.append((i, r))
            if waited > oldest:
                if sort and reserved is not None:  # the previous oldest goes back
                    (hopeless if reserved_hopeless else fresh).append(reserved)
                reserved, oldest = (r.prompt_tokens + out, i, r), waited
                reserved_hopeless = waited > hopeless_after
            elif not sort:
                continue
            elif waited > hopeless_after if out else now > r.arrival + r.ttft_slo:
                # With no token yet (vLLM's P/D) its TPOT clock has not started: what waiting
                # can lose is its first token's deadline.
                hopeless.append((r.prompt_tokens + out, i, r))
            else:
                fresh.append((r.prompt_tokens + out, i, r))
        heapq.heapify(fresh)
        heapq.heapify(hopeless)
        return ([] if reserved is None else [reserved]), fresh, hopeless, pending

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


def _drain(heap: list[Job]) -> Iterator[Job]:
    """Pop a heap of jobs in order, lazily (admission usually stops after a few)."""
    while heap:
        yield heapq.heappop(heap)


@DECODE_POLICIES.register("kairos")
def _make(predictor: Predictor, **options: object) -> KairosDecode:
    return KairosDecode(predictor, **options)  # type: ignore[arg-type]
