"""Kairos prefill: urgency-based priority scheduling (spec section 4).

With ``t0 = now`` (the instance is free), predicted standalone time ``p`` and deadline
``D = arrival + T``:
1. Starvation guard: of the requests that have waited more than ``max_wait_factor * T``, the
   oldest leads the next batch. Only one per batch: the spec promotes them all, but under
   sustained overload everyone ages past the limit and the policy collapses into FCFS (on
   the Mooncake slice at its real rate, TTFT attainment fell from 64% to 1.6%). One per batch
   bounds the guard's share of the instance and still serves every aged request in turn.
2. A request is hopeless when ``t0 + (1 - margin) * p > D``.
3. Among the rest, Moore-Hodgson picks the largest set that can all finish on time; this
   removes head-of-line blocking by construction.
4. The batch is built from that set in deadline order, skipping (not stopping at) a request
   that would make a member late or break the token/memory limits, so short ones back-fill.
5. If nothing is feasible, the hopeless and dropped requests run (work-conserving), highest
   response ratio first, unless ``drop_hopeless`` rejects hopeless ones (admission control).
"""

from __future__ import annotations

from collections.abc import Iterable

from kairos.core.decisions import PrefillDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import PREFILL_POLICIES
from kairos.core.policies.moore_hodgson import moore_hodgson
from kairos.core.request import Request
from kairos.core.snapshot import PrefillView


class KairosPrefill:
    name = "kairos"

    def __init__(
        self,
        predictor: Predictor,
        *,
        margin: float = 0.1,
        max_wait_factor: float = 10.0,
        drop_hopeless: bool = False,
    ) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        if not max_wait_factor > 1.0:
            raise ValueError(f"max_wait_factor must be > 1, got {max_wait_factor}")
        self.predictor = predictor
        self.margin = margin
        self.max_wait_factor = max_wait_factor
        self.drop_hopeless = drop_hopeless

    def schedule(self, view: PrefillView, now: float) -> PrefillDecision:
        pred = self.predictor
        k = pred.prefill_correction.factor
        c0, c1, c2 = pred.prefill.c0, pred.prefill.c1, pred.prefill.c2
        slack_factor = 1.0 - self.margin
        promoted: list[tuple[float, float, Request]] = []
        feasible: list[tuple[float, float, Request]] = []
        hopeless: list[tuple[float, float, Request]] = []
        for r in view.waiting:
            u = r.prompt_tokens - r.cached_tokens
            p = k * (c0 + c1 * u + c2 * u * u)
            deadline = r.arrival + r.ttft_slo
            if now - r.arrival > self.max_wait_factor * r.ttft_slo:
                promoted.append((r.arrival, p, r))
            elif now + slack_factor * p > deadline:
                hopeless.append((deadline, p, r))
            else:
                feasible.append((deadline, p, r))
        lead: list[tuple[float, float, Request]] = []
        if promoted:
            lead = [min(promoted, key=_first)]
            for job in promoted:  # the other aged requests compete as hopeless work
                if job is not lead[0]:
                    hopeless.append((job[2].arrival + job[2].ttft_slo, job[1], job[2]))
        # Admission control rejects hopeless requests as soon as they are seen.
        reject = [r for _, _, r in hopeless] if self.drop_hopeless else []
        late: list[tuple[float, float, Request]] = []
        if feasible:
            feasible.sort(key=_first)
            on_time, late = moore_hodgson(feasible, now)
            batch = self._fill(view, on_time, now, on_time=True, lead=lead)
            if batch:
                return PrefillDecision(batch=batch, reject=reject)
        rest = late if self.drop_hopeless else late + hopeless
        # Highest response ratio next: shortest first, with aging.
        rest.sort(key=lambda job: -(now - job[2].arrival + job[1]) / job[1])
        batch = self._fill(view, rest, now, on_time=False, lead=lead)
        return PrefillDecision(batch=batch, reject=reject)

    def _fill(
        self,
        view: PrefillView,
        jobs: Iterable[tuple[float, float, Request]],
        now: float,
        *,
        on_time: bool,
        lead: list[tuple[float, float, Request]],
    ) -> list[Request]:
        """Greedy batch in the given order, skipping what breaks a limit or a member's deadline.

        ``lead`` (the aged request, if any) goes first and is exempt from the deadline check.
        """
        pred = self.predictor
        max_tokens, max_requests = view.max_batch_tokens, view.max_batch_requests
        kv_free = view.kv_free_tokens
        batch: list[Request] = []
        s = s2 = 0
        earliest = float("inf")  # the tightest deadline in the batch
        for r in (job[2] for job in lead):
            if r.prompt_tokens <= kv_free:
                batch.append(r)
                s = r.prompt_tokens - r.cached_tokens
                s2 = s * s
                kv_free -= r.prompt_tokens
        for deadline, _, r in jobs:
            u = r.prompt_tokens - r.cached_tokens
            if r.prompt_tokens > kv_free or (batch and s + u > max_tokens):
                continue
            if on_time:
                tight = min(earliest, deadline)
                if now + pred.prefill_time(s + u, s2 + u * u) > tight:
                    continue
                earliest = tight
            batch.append(r)
            s += u
            s2 += u * u
            kv_free -= r.prompt_tokens
            if len(batch) >= max_requests or s >= max_tokens:
                break
        return batch


def _first(job: tuple[float, float, Request]) -> float:
    return job[0]


@PREFILL_POLICIES.register("kairos")
def _make(predictor: Predictor, **options: object) -> KairosPrefill:
    return KairosPrefill(predictor, **options)  # type: ignore[arg-type]
