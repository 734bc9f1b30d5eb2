"""Kairos prefill: urgency-based priority scheduling (spec section 4).

With ``t0 = now`` (the instance is free), deadline ``D = arrival + T`` and ``p`` the predicted
standalone time of what is left of the prompt (its attention over the part already in KV
included: a half-prefilled prompt under chunking, or a prefix-cache hit, is shorter work but
not a shorter prompt):
1. Starvation guard: of the requests that have waited more than ``max_wait_factor * T``, the
   oldest leads the next batch, while the instance's guard credit lasts (see below). Only one
   at a time: the spec promotes them all, but under sustained overload everyone ages past
   the limit and the policy collapses into FCFS (on the Mooncake slice at its real rate, TTFT
   attainment fell from 64% to 1.6%).
2. A request is hopeless when ``t0 + (1 - margin) * p > D``.
3. Among the rest, Moore-Hodgson picks the largest set that can all finish on time; this
   removes head-of-line blocking by construction.
4. The batch is built from that set in deadline order, skipping (not stopping at) a request
   that would make a member late or break the token/memory limits, so short ones back-fill.
5. If nothing is feasible, the hopeless and dropped requests run (work-conserving), highest
   response ratio first, unless ``drop_hopeless`` rejects hopeless ones (admission control).

Guard rationing (the only state kept across calls): each prefill instance has a credit, in
seconds of predicted prefill time, that grows at ``guard_share`` per second up to
``guard_burst``. The aged request may lead a batch of on-time work only while the credit is
positive, and what it then prefills (read back at the instance's next decision from its
``cached_tokens``, or its whole remainder once it has left the queue) is charged to the
credit. So the guard takes about ``guard_share`` of an instance's time at most, however the
work is cut. One aged request per batch was fine for whole prompts, but under chunked
prefill the policy runs at every chunk boundary, aged requests led every 2,048-token
iteration, and on the overloaded Azure conv window (seed 1, 1P1D, FCFS decode) TTFT
attainment fell to 71.0% (95.3% with no guard). Rationed at 5% it is 94.5%, and the longest
wait is 64 s (25 s unrationed, 82 s with no guard; at 10%: 93.5%, 54 s). When no on-time
work is waiting the aged request leads for free: it displaces nobody. The credit is per
instance because one policy object serves every instance; a decision earlier than the
instance's last one (a new run) opens a fresh account.

Limits (measured): with whole prompts, work-conserving relegation cannot see arrivals
coming. On the Mooncake slice at x0.35, 1P1D (``kairos sim --trace mooncake-conv --duration
600 --rate-scale 0.35 --ttft-slo 3 --tpot-slo 0.025 --noise 0.05 --compare
kairos/fcfs,edf-relegate/fcfs``), Kairos met 76.9% of TTFTs and edf-relegate 77.9%. Of the
33 requests only Kairos missed, 13 are one group of arrivals (the trace arrives in groups
8.6 s apart here): with nothing on time left, Kairos ran the hopeless requests shortest
first (highest response ratio) and reached an 85k-token prompt last, 0.4 s before the next
group arrived, which then waited 4.4 s behind it. edf-relegate's key put that prompt first,
and it ended 0.4 s before that group came: the same rule run at another moment. The
Mooncake timestamps lie on a 3 s grid, so such groups come in every window: at the
operating rate Kairos is behind edf-relegate/fcfs in all three of ``kairos experiment``'s
windows (-0.9, -0.1, -0.7 points joint). Chunked prefill removes the cause (a long prompt
yields at every chunk); there the two are within 0.2 points in every window
(docs/results.md).

Cost: the queue is read as numpy columns (``kairos.core.queue_columns``) that the simulator's
and the server's queues keep as requests come and go. ``python benchmarks/policy_overhead.py``,
1,000 queued under overload: 275-285 us per decision (0.15% of the 190 ms batch it
schedules), 555-575 us over a plain list (the policy builds the columns each time, as for
vLLM's plugin), 680 us for the loop over ``Request`` objects this replaced. What is left is
mostly Moore-Hodgson's heap over the ~500 feasible requests, about 200 us when most of them
are dropped.
"""

from __future__ import annotations

import numpy as np

from kairos.core.decisions import PrefillDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import PREFILL_POLICIES
from kairos.core.policies.moore_hodgson import late_jobs
from kairos.core.queue_columns import NO_ROWS, PREFILL_FIELDS, Columns, Rows, columns_of
from kairos.core.request import Request
from kairos.core.snapshot import PrefillView


class _GuardAccount:
    """One prefill instance's starvation-guard credit (see the module docstring)."""

    __slots__ = ("credit", "last", "lead", "lead_done")

    def __init__(self, now: float, credit: float) -> None:
        self.last = now  # time of the instance's previous decision
        self.credit = credit  # seconds of predicted prefill time the guard may still spend
        self.lead: Request | None = None  # the aged request the last decision charged for
        self.lead_done = 0  # its prefilled prompt tokens at that decision


class KairosPrefill:
    name = "kairos"

    def __init__(
        self,
        predictor: Predictor,
        *,
        margin: float = 0.1,
        max_wait_factor: float = 10.0,
        guard_share: float = 0.05,
        guard_burst: float = 0.05,
        drop_hopeless: bool = False,
    ) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        if not max_wait_factor > 1.0:
            raise ValueError(f"max_wait_factor must be > 1, got {max_wait_factor}")
        if not guard_share > 0.0:
            raise ValueError(
                f"guard_share must be > 0 (or aged requests can starve), got {guard_share}"
            )
        if not guard_burst > 0.0:
            raise ValueError(f"guard_burst must be > 0, got {guard_burst}")
        self.predictor = predictor
        self.margin = margin
        self.max_wait_factor = max_wait_factor
        self.guard_share = guard_share
        self.guard_burst = guard_burst
        self.drop_hopeless = drop_hopeless
        self._accounts: dict[int, _GuardAccount] = {}

    def schedule(self, view: PrefillView, now: float) -> PrefillDecision:
        account = self._settle(view, now)
        pred = self.predictor
        k = pred.prefill_correction.factor
        c0, c1, c2 = pred.prefill.c0, pred.prefill.c1, pred.prefill.c2
        # The whole queue at every batch (every chunk), so as columns: one row per request.
        cols = columns_of(view.waiting, PREFILL_FIELDS)
        done, arrival, ttft, seq = cols["cached"], cols["arrival"], cols["ttft"], cols["seq"]
        u = cols["prompt"] - done
        p = k * (c0 + c1 * u + c2 * u * u + 2.0 * c2 * u * done)
        deadline = arrival + ttft
        promoted = now - arrival > self.max_wait_factor * ttft
        late_now = now + (1.0 - self.margin) * p > deadline
        feasible = (~promoted & ~late_now).nonzero()[0]
        hopeless = _in_queue_order(seq, (~promoted & late_now).nonzero()[0])
        lead: int | None = None
        aged = promoted.nonzero()[0]
        if aged.size:
            first = aged[arrival[aged] == arrival[aged].min()]
            lead = int(first[np.argmin(seq[first])])
            # The other aged requests compete as hopeless work.
            hopeless = np.concatenate((hopeless, _in_queue_order(seq, aged[aged != lead])))
        # Admission control rejects hopeless requests as soon as they are seen.
        reject = [cols.requests[i] for i in hopeless.tolist()] if self.drop_hopeless else []
        late = NO_ROWS
        if feasible.size:
            feasible = feasible[np.lexsort((seq[feasible], deadline[feasible]))]
            out = late_jobs(deadline[feasible].tolist(), p[feasible].tolist(), now)
            on_time = np.delete(feasible, out) if out else feasible
            late = feasible[out]
            charged = lead if account.credit > 0.0 else None
            batch = self._fill(view, cols, on_time, deadline, now, on_time=True, lead=charged)
            if batch:
                if charged is not None and batch[0] is cols.requests[charged]:
                    account.lead, account.lead_done = batch[0], batch[0].cached_tokens
                return PrefillDecision(batch=batch, reject=reject)
        rest = late if self.drop_hopeless else np.concatenate((late, hopeless))
        # Highest response ratio next: shortest first, with aging (stable: list order
        # among equals).
        ratio = -(now - arrival[rest] + p[rest]) / p[rest]
        rest = rest[np.lexsort((np.arange(rest.size), ratio))]
        batch = self._fill(view, cols, rest, deadline, now, on_time=False, lead=lead)
        return PrefillDecision(batch=batch, reject=reject)

    def _settle(self, view: PrefillView, now: float) -> _GuardAccount:
        """The instance's guard account, credited for the time since its last decision and
        charged for what the request the guard let lead has prefilled since."""
        account = self._accounts.get(view.instance_id)
        if account is None or now < account.last:
            account = _GuardAccount(now, self.guard_burst)
            self._accounts[view.instance_id] = account
            return account
        r = account.lead
        if r is not None:
            # Still waiting: a chunk of it ran. Gone: the rest of its prompt ran.
            done = r.cached_tokens if r in view.waiting else r.prompt_tokens
            before = account.lead_done
            pred = self.predictor
            # Those tokens' own cost: linear work plus attention over the prompt so far.
            account.credit -= pred.prefill_correction.factor * (
                pred.prefill.c1 * (done - before)
                + pred.prefill.c2 * (done * done - before * before)
            )
            account.lead = None
        credit = account.credit + self.guard_share * (now - account.last)
        account.credit = min(self.guard_burst, credit)
        account.last = now
        return account

    def _fill(
        self,
        view: PrefillView,
        cols: Columns,
        rows: Rows,
        deadline: Rows,
        now: float,
        *,
        on_time: bool,
        lead: int | None,
    ) -> list[Request]:
        """Greedy batch of ``rows`` in order, skipping what breaks a limit or a member's
        deadline.

        ``lead`` (the aged request's row, if any) goes first and is exempt from the deadline
        check.
        """
        pred = self.predictor
        k = pred.prefill_correction.factor
        c0, c1, c2 = pred.prefill.c0, pred.prefill.c1, pred.prefill.c2
        max_tokens, max_requests = view.max_batch_tokens, view.max_batch_requests
        kv_free = view.kv_free_tokens
        batch: list[Request] = []
        s = s2 = 0
        earliest = float("inf")  # the tightest deadline in the batch
        if lead is not None:
            r = cols.requests[lead]
            if r.prompt_tokens <= kv_free:
                batch.append(r)
                s = r.prompt_tokens - r.cached_tokens
                s2 = s * s + 2 * s * r.cached_tokens
                kv_free -= r.prompt_tokens
        requests = cols.requests
        prompts, cached = cols["prompt"][rows].tolist(), cols["cached"][rows].tolist()
        for i, d, prompt, done in zip(
            rows.tolist(), deadline[rows].tolist(), prompts, cached, strict=True
        ):
            u = prompt - done
            if prompt > kv_free or (batch and s + u > max_tokens):
                continue
            a2 = u * u + 2 * u * done  # attention, over the prefix in KV too
            if on_time:
                tight = min(earliest, d)
                if now + k * (c0 + c1 * (s + u) + c2 * (s2 + a2)) > tight:  # t_P
                    continue
                earliest = tight
            batch.append(requests[i])
            s += u
            s2 += a2
            kv_free -= prompt
            if len(batch) >= max_requests or s >= max_tokens:
                break
        return batch


def _in_queue_order(seq: Rows, rows: Rows) -> Rows:
    ordered: Rows = rows[np.argsort(seq[rows])]
    return ordered


@PREFILL_POLICIES.register("kairos")
def _make(predictor: Predictor, **options: object) -> KairosPrefill:
    return KairosPrefill(predictor, **options)  # type: ignore[arg-type]
