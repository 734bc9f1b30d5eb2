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
Tried and not kept: rooms within a band of the most counted as equal, a hash of the prompt
length picking among them, so that a placement turns on no difference the predictor cannot
resolve. Two balanced instances' rooms were within 0.05 ms of each other (median, 2P2D,
TPOT 10 ms), so the strict maximum follows timing: ``benchmarks/differential.py``'s 200
requests were placed alike by ``kairos serve`` and ``kairos sim`` 151 times of 200 (113 in
another run), and with a band of 5% (2%) of the TPOT 200 (196) times. But the hash lets the
instances drift apart by up to the band, and where decode binds that costs TPOTs: on
``synthetic-longtail`` 2P2D Kairos's TPOT gain over FCFS+CB fell from +17.8 to +16.4 (+16.6)
points and its joint gain from +17.9 to +16.5 (+16.7); the other 2P2D rows moved by -1.0
to +0.3 points on average (``kairos experiment --instances 2``, three windows).

Mode B (``kairos-b``; spec section 5): a running request with at least ``skip_after`` TPOTs
of banked slack may sit out a step. Admission (rules 2 to 6) is then weighed against the
requests that must run (the rest of the batch, and transfers in flight); the banked ones
then fill the budget least slack first, and those that do not fit skip the next step (each
still a step or more ahead of its next deadline afterwards). Skipping adds no capacity: it
moves steps from requests ahead of their deadlines to fresh ones, at the cost of gaps in
the skipped requests' streams (ITL). Measured (docs/results.md, three windows): where the
decode instances never keep anyone waiting (Azure code, Mooncake) nothing is skipped and
the modes are identical; on Azure conv at the operating rates TPOT attainment moves by
-0.5 (1P1D) and +0.4 (2P2D) points, and past saturation (x6) mode B loses 5.3 and 4.9
points while p99 ITL grows from 15.9 to 22.7 ms and from 15.7 to 19.8 ms: the slack it
lends to admissions is gone when the burst lasts, and the lenders then miss too. Where
decode binds first (``synthetic-longtail``) it loses 12.9 and 18.7 points at the operating
rates (76.5 -> 63.6, 78.7 -> 60.0). Weighing admission against the whole batch as mode A
does, with skips only to bring the step back within the budget, stayed within 0.9 points of
mode A on the real traces (not kept: no gain; not run on the synthetic one).
Mode B reads every running request's slack at each decision, in Python:
``benchmarks/policy_overhead.py --rounds 5`` (two runs) gave 95-114 us with 256 running
(0.41-0.50% of the step) and 141 us with 109 (0.99%), against mode A's 31-33 and 93 us.

Where decode binds first (docs/results.md, ``synthetic-longtail``: long-tailed prompts and
outputs, median output 250 tokens; the three real traces are prefill-bound in 1P1D), at the
load where continuous batching keeps 61-67% of joint attainment, Kairos decode keeps 76.5%
of TPOTs against 68.7% (1P1D) and 78.7% against 60.9% (2P2D): continuous batching lets every
step run a little over the TPOT, so a burst makes every request miss by a little (p99 TPOT
18 ms), while the budget keeps the running ones on time and the misses fall on the requests
that waited (p99 TPOT 81-101 ms). The order of admission is what gains: admitting within the
same budget in queue order instead of shortest context first kept 69.4% and 70.7% (a
throwaway patch of ``_shortest_first`` over ``run_point``, three windows), and on Azure conv
1.2-2.1 points less. Where the instance runs at its capacity for long, no order helps: the
decode throughput at which TPOT attainment falls to 80% is only 2.5-4.1% above continuous
batching's.

Cost: the waiting queue is read as numpy columns (``kairos.core.queue_columns``), which the
runtimes' queues keep as requests come and go, and admission stops at the first request that
does not fit. A class is not ordered when its shortest candidate does not fit, nor when a
second copy of it would not (then it is the only one admitted: ``_admit``).
``python benchmarks/policy_overhead.py --rounds 20``, 1,000 waiting, as a share of the step
each decision composes (six runs): 25-26 us with 256 running (0.11%), 39-41 us with 109
running and room for one more (0.27-0.29%), 121-143 us for a burst of 115 admissions into 32
running (0.85-1.00% of the 14.2 ms step they make). One run of the six was slower throughout
(64 us with 109 running, 177 us, 1.24%, for the burst): the figures are the best of 20
rounds on a shared two-core machine. Before the copy check (and with the running batch's
tightest TPOT read with a set lookup per request) they were 31, 62-63 and 147-186 us; the
loop over ``Request`` objects the columns replaced took 114 us and 405 us for the first and
last. Inside vLLM (``KairosDecodeScheduler``) the candidates are kept as such a queue across
steps too (``kairos.integrations.vllm.views.DecodeQueue``): the plugin's whole decision for
the burst, its request mirrors and view included, takes 93-96 us (0.66-0.68%; three runs on
a machine about 2.4 times faster than the one above, where the burst over the simulator's
queue takes 52-53 us). Rebuilding the columns from vLLM's list at each step, as it did
before, cost 346 us there for the policy alone, and 565 us with the mirrors against
93-94 us now (an A/B of the two plugin paths over the same stand-ins).

Limits (measured): where a decode instance runs near its capacity under the budget, the cap
loses to continuous batching. On Azure conv at x5.5 (``kairos sim --trace azure-conv
--rate-scale 5.5 --duration 900 --ttft-slo 0.5 --tpot-slo 0.015 --noise 0.05
--prefill-policy kairos``), the instance made 7,029 tokens/s against about 7,100 possible
within 14.25 ms steps. Every miss falls in the first 150 s, a burst: Kairos decode got 83.1%
of TPOTs, FCFS decode 86.2%. The 417 requests only Kairos missed are long prompts (median
1,316 tokens) with short outputs (median 92) that waited for budget (median longest gap
291 ms) and missed by little (median TPOT 16.2 ms); FCFS's 17 ms p99 steps absorb the burst,
and its larger batches clear the backlog sooner. Every variant tried scored closer to FCFS
the more it behaved like FCFS, and none passed it (TPOT attainment, measured before the
decode correction rate fell to 0.01, when the same run gave 82.1%): a budget above tau
reached 85.8%, admitting every fresh request once one had waited tau/2 reached 85.0%, and
lending banked slack to admissions stayed at 80.0-82.5% (80.6-82.5% again since, lending
the smallest banked slack over 16 or 64 steps). Those same variants lost the cases the cap
exists for: at a 0.75x SLO Kairos decode kept 17.2% of TPOTs, and the elastic variant kept
2.8% (FCFS 2.7%). The margin is such a trade too (``kairos experiment``'s points, two
seeds): 0.02 instead of 0.05 gains 0.7 TPOT points at x5.5 1P1D and 0.6 at 2P2D but keeps
15.0% of TPOTs at the 0.75x SLO instead of 23.3%; 0.0 keeps 7.2%.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kairos.core.decisions import DecodeDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import DECODE_POLICIES
from kairos.core.queue_columns import DECODE_FIELDS, NO_ROWS, Columns, Rows, columns_of
from kairos.core.request import Request
from kairos.core.snapshot import DecodeView

INF = float("inf")


@dataclass(slots=True)
class _Batch:
    """The batch as admission grows it within one decision."""

    size: int  # running, less preempted, plus transfers in flight
    kv: int  # their context
    free: int  # KV tokens free
    tau_min: float  # the tightest TPOT SLO among them (inf when none)
    max_batch: int
    banked: int = 0  # mode B: running requests that may sit out the step, not in ``size``

    def add(self, n: int, ctx: int, tau_min: float) -> None:
        """``n`` requests of ``ctx`` context in all join; ``tau_min`` is now the tightest."""
        self.size += n
        self.kv += ctx
        self.free -= ctx
        self.tau_min = tau_min


class KairosDecode:
    # Candidates offered one at a time before the rest in one vectorised pass (``_admit``).
    one_by_one = 8

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
        skip_after: float | None = None,
    ) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        if growth_steps < 0 or max_preemptions < 0 or reserve_after <= 0:
            raise ValueError("growth_steps and max_preemptions must be >= 0, reserve_after > 0")
        if ttft_guard_steps < 0 or slack_horizon <= 0:
            raise ValueError("ttft_guard_steps must be >= 0 and slack_horizon > 0")
        if skip_after is not None and skip_after < 1.0:
            # Less than one TPOT of slack cannot absorb a skipped step.
            raise ValueError(f"skip_after must be >= 1 (TPOTs of banked slack), got {skip_after}")
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
        # Mode B: TPOTs of banked slack that let a running request sit out a step (None:
        # mode A, every running request runs every step).
        self.skip_after = skip_after
        self.name = "kairos" if skip_after is None else "kairos-b"

    def slack(self, view: DecodeView, r: Request, now: float) -> float:
        return r.decode_anchor + r.tpot_slo * view.generated(r) - now

    def schedule(self, view: DecodeView, now: float) -> DecodeDecision:
        preempt = self._preempt(view, now)
        if not view.waiting:
            return DecodeDecision(preempt=preempt)
        cols = columns_of(view.waiting, DECODE_FIELDS)
        gone = {r.id for r in preempt}
        # The running requests that stay (no pass when nothing is preempted, the common case).
        live = [r for r in view.running if r.id not in gone] if gone else view.running
        freed = sum(r.prompt_tokens + view.generated(r) for r in preempt)
        # K of the batch that will run: everything held or reserved (running and transfers
        # in flight) less what preemption frees.
        state = _Batch(
            size=len(view.running) - len(preempt) + view.transferring,
            kv=view.kv_capacity_tokens - view.kv_free_tokens - freed,
            free=view.kv_free_tokens + freed,
            tau_min=min((r.tpot_slo for r in live), default=INF),
            max_batch=view.max_batch_size,
        )
        step = self.predictor.decode_step_time
        keep = 1.0 - self.margin
        banked = self._banked(view, now, gone, state) if self.skip_after is not None else []
        # When the budget is spent (not even a one-token request fits; the common case under
        # load) only a reservation or a due first token can be admitted: nothing is sorted.
        spent = bool(state.size) and step(state.size + 1, state.kv + 1) > keep * state.tau_min
        waited = (now - cols["anchor"]) / cols["tau"]  # in TPOTs, since the first token
        pending = (cols["out"] == 0).nonzero()[0]  # no token yet (vLLM's P/D)
        reserved = self._reservation(cols, waited)
        due, wake_at = self._first_tokens_due(cols, pending, now, state.size, state.kv)
        # A due first token may overrun the budget by what the running requests' banked
        # slack covers for ``slack_horizon`` steps: their TPOT is an average, so a few
        # slower steps cost them nothing once they are ahead of their deadlines.
        allowance = 0.0
        if due.size:
            slacks = (self.slack(view, r, now) for r in live)
            # Requests already behind their deadlines have nothing left to protect.
            allowance = min((s for s in slacks if s >= 0.0), default=INF)
            allowance /= self.slack_horizon
        admit = self._admit(cols, due, None, state, allowance, keep)
        due_in = due[: len(admit)]
        # Rows not to offer again: due ones admitted, and the reservation (not in a class).
        taken = np.concatenate((due_in, reserved)) if due_in.size or reserved.size else NO_ROWS
        if reserved.size and not np.isin(reserved, due_in).any():
            admit += self._admit(cols, reserved, None, state, INF, keep)
        if not spent:
            # Rule 3: a request that has waited past ``hopeless_after`` TPOTs (with no token
            # yet: past its TTFT deadline) only fills what the fresh ones leave.
            late = waited > self.hopeless_after
            if pending.size:
                late[pending] = now > cols["ttft_deadline"][pending]
            for rows in ((~late).nonzero()[0], late.nonzero()[0]):
                if taken.size:
                    # A due first token or the reservation is also in its class.
                    rows = rows[~np.isin(rows, taken)]
                admit += self._admit(cols, rows, _shortest_first(cols, rows), state, 0.0, keep)
        # The step needs one running request at least (the admitted join later).
        must_run = len(view.running) - len(preempt) - len(banked)
        skip = self._fill(banked, state, keep, must_run > 0) if banked else []
        return DecodeDecision(admit=admit, preempt=preempt, skip=skip, wake_at=wake_at)

    def _banked(
        self, view: DecodeView, now: float, gone: set[int], state: _Batch
    ) -> list[tuple[float, int, float, Request]]:
        """Mode B: the running requests that may sit out the next step, least slack first,
        as (slack, context, tau, request); ``state`` is left with the requests that must run.
        """
        assert self.skip_after is not None
        banked = []
        tau_min = INF
        for r in view.running:
            if r.id in gone:
                continue
            g = view.generated(r)
            if g and (slack := self.slack(view, r, now)) >= self.skip_after * r.tpot_slo:
                banked.append((slack, r.prompt_tokens + g, r.tpot_slo, r))
            elif r.tpot_slo < tau_min:
                tau_min = r.tpot_slo
        if banked:
            state.banked = len(banked)
            state.size -= len(banked)
            state.kv -= sum(b[1] for b in banked)
            state.tau_min = tau_min
            banked.sort(key=lambda b: (b[0], b[3].id))
        return banked

    def _fill(
        self,
        banked: list[tuple[float, int, float, Request]],
        state: _Batch,
        keep: float,
        running: bool,
    ) -> list[Request]:
        """Mode B: the banked requests join the step least slack first while it stays within
        the budget; those that do not fit sit it out (returned). Unless another request
        ``running`` runs the step, the first runs regardless."""
        step = self.predictor.decode_step_time
        skip: list[Request] = []
        for _, ctx, tau_r, r in banked:
            tau = min(state.tau_min, tau_r)
            if not running or step(state.size + 1, state.kv + ctx) <= keep * tau:
                running = True
                state.banked -= 1
                state.size += 1
                state.kv += ctx
                state.tau_min = tau
            else:
                skip.append(r)
        return skip

    def _admit(
        self,
        cols: Columns,
        rows: Rows,
        key: Rows | None,
        state: _Batch,
        extra: float,
        keep: float,
    ) -> list[Request]:
        """Of ``rows``, offered in ascending ``key`` (unique; None: in the order given),
        those that join the batch, up to the first that does not fit; ``state`` grows by
        them.

        A candidate fits within the batch size cap and KV memory with ``growth_steps`` of
        headroom and, unless ``extra`` is infinite (the reservation), when the predicted
        step time of the grown batch stays within ``keep * tau + extra``, ``tau`` the
        tightest TPOT in it; an idle instance takes its first regardless of the step time.
        Ordered by ``key`` (shortest context first), the shortest candidate bounds every later
        one: the step time, memory and batch size only grow with the batch and its context,
        so when a second copy of it would not fit beside it, it is the only one admitted and
        the rest are never ordered (one admission under load). Admission usually stops within
        a few candidates, so the first ``one_by_one`` are offered one at a time, the rest in
        one pass (a burst into an idle instance): the same rule, ``_fits``, either way. 8
        against 2 and 4 (a throwaway harness over the ``policy_overhead`` instances): 4 to 8
        admissions cost 65-96 us instead of 115-165, a burst of 115 4% more, one admission the
        same. (Bounding the pass by how many copies of the shortest fit instead was slower: a
        short shortest bounds little, and 4 admissions cost 121 us instead of 66.)
        """
        if not rows.size:
            return []
        k = self.one_by_one
        step = self.predictor.decode_step_time
        if key is not None:
            # Under load the budget is usually spent: offer the first before ordering the rest.
            i = int(rows[key.argmin()])
            ctx = int(cols["ctx"][i])
            tau = min(state.tau_min, float(cols["tau"][i]))
            if not self._fits(state.size, ctx, tau, state, extra, keep, step):
                return []
            # Every later candidate has at least its context, so if a second copy of it would
            # not fit beside it (the step time grows with the batch and its context), none
            # does: it is the only one admitted, and the rest need no order.
            if rows.size == 1 or not self._fits(
                state.size + 1, 2 * ctx, tau, state, extra, keep, step
            ):
                state.add(1, ctx, tau)
                return [cols.requests[i]]
        head = rows[:k] if key is None else rows[_first_in_order(key, k)]
        admitted: list[Request] = []
        ctxs, taus = cols["ctx"], cols["tau"]
        for i, ctx, tau_i in zip(
            head.tolist(), ctxs[head].tolist(), taus[head].tolist(), strict=True
        ):
            tau = min(state.tau_min, tau_i)
            if not self._fits(state.size, ctx, tau, state, extra, keep, step):
                return admitted
            admitted.append(cols.requests[i])
            state.add(1, ctx, tau)
        if head.size == rows.size:
            return admitted
        rest = rows[head.size :] if key is None else rows[np.argsort(key)[head.size :]]
        added = np.cumsum(ctxs[rest])
        size = state.size + np.arange(rest.size)  # batch size ahead of each candidate
        tau_rest = np.minimum.accumulate(np.minimum(taus[rest], state.tau_min))
        fits = self._fits(
            size, added, tau_rest, state, extra, keep, self.predictor.decode_step_times
        )
        n = int(fits.argmin())  # the first that does not fit, if any
        if fits[n]:
            n = rest.size
        if n:
            state.add(n, int(added[n - 1]), float(tau_rest[n - 1]))
        requests = cols.requests
        return admitted + [requests[i] for i in rest[:n].tolist()]

    def _fits(
        self,
        size: Any,
        added: Any,
        tau: Any,
        state: _Batch,
        extra: float,
        keep: float,
        step: Callable[[Any, Any], Any],
    ) -> Any:
        """Whether a candidate fits (see ``_admit``): ``size`` requests ahead of it in the
        batch, ``added`` the context admitted in this pass with it, ``tau`` the tightest
        TPOT with it. Python numbers, or arrays over candidates in order (the same
        operators)."""
        # The batch size cap and memory count every member, the step time only those that run.
        held = size + state.banked
        fits = (held < state.max_batch) & ((held + 1) * self.growth_steps + added <= state.free)
        if extra < INF:
            fits &= (held == 0) | (step(size + 1, state.kv + added) <= keep * tau + extra)
        return fits

    def _reservation(self, cols: Columns, waited: Rows) -> Rows:
        """Rule 4: the row of the request waiting longest past ``reserve_after`` TPOTs (the
        first in queue order of equals), or none."""
        over = (waited > self.reserve_after).nonzero()[0]
        if not over.size:
            return NO_ROWS
        w = waited[over]
        oldest = over[w == w.max()]
        first: Rows = oldest[np.argmin(cols["seq"][oldest])][None]
        return first

    def _first_tokens_due(
        self, cols: Columns, pending: Rows, now: float, batch: int, kv: int
    ) -> tuple[Rows, float | None]:
        """Of the ``pending`` rows (requests with no token yet; where prefill emits the first
        token, the default, there are none), those whose first token is still on time but
        would not be after one more boundary, earliest TTFT deadline first (rule 6), and
        when the next of the others comes due."""
        if not pending.size:
            return NO_ROWS, None
        pred = self.predictor
        guard = self.ttft_guard_steps * pred.decode_step_time(max(batch, 1), max(kv, 1))
        ctx = cols["ctx"][pending]
        # Admitted now: its KV lands, it joins at the boundary after that, and its first
        # step ends one step later.
        first = (
            now + pred.kv_transfer.times(ctx) + 2.0 * pred.decode_step_times(batch + 1, kv + ctx)
        )
        deadline = cols["ttft_deadline"][pending]
        on_time = deadline >= first  # a lost TTFT waits for budget like any other
        due = on_time & (deadline < first + guard)
        later = on_time & ~due
        wake_at = None
        if later.any():
            wake_at = float(np.min(deadline[later] - guard - (first[later] - now)))
        rows = pending[due]
        return rows[np.lexsort((cols["seq"][rows], deadline[due]))], wake_at

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
        tau = min((r.tpot_slo for r in view.running), default=INF)
        if view.waiting:
            tau = min(tau, float(columns_of(view.waiting, DECODE_FIELDS)["tau"].min()))
        elif not view.running and not view.transferring:
            return INF
        batch = len(view.running) + view.transferring + len(view.waiting)
        kv = view.kv_capacity_tokens - view.kv_free_tokens + view.waiting_tokens
        budget = (1.0 - self.margin) * tau
        return min(budget, 1.0) - self.predictor.decode_step_time(batch, kv)

    def place(self, request: Request, instances: Sequence[DecodeView], now: float) -> int:
        best, best_room = 0, -float("inf")
        for i, inst in enumerate(instances):
            room = self.room(inst)
            if room > best_room:
                best, best_room = i, room
        return best


SEQ_OFFSET = 1 << 31


def _shortest_first(cols: Columns, rows: Rows) -> Rows:
    """A unique key putting ``rows`` shortest context first, queue order among equals:
    shortest first maximises tokens per step under a time budget (unit-value knapsack). A key,
    not a sort: admission usually needs only the first few."""
    # Contexts are below 2**31 and queue positions within +-2**31 (negative at the front, where
    # preempted requests re-enter), so the context and the offset position pack in an int64.
    # Without the offset a front position's sign bits swamped the context: every preempted
    # request sorted first whatever its length.
    key: Rows = (cols["ctx"][rows] << 32) | (cols["seq"][rows] + SEQ_OFFSET)
    return key


def _first_in_order(key: Rows, k: int) -> Rows:
    """Positions of the ``k`` smallest of ``key`` (unique), in ascending order."""
    if key.size <= k:
        head: Rows = np.argsort(key)
        return head
    if k <= 0:
        return NO_ROWS
    part = np.argpartition(key, k - 1)[:k]
    return part[np.argsort(key[part])]


@DECODE_POLICIES.register("kairos")
def _make(predictor: Predictor, **options: object) -> KairosDecode:
    return KairosDecode(predictor, **options)  # type: ignore[arg-type]


# Mode B: two TPOTs of banked slack let a request sit out a step (one to spend, one kept).
SKIP_AFTER = 2.0


@DECODE_POLICIES.register("kairos-b")
def _make_b(predictor: Predictor, **options: object) -> KairosDecode:
    options.setdefault("skip_after", SKIP_AFTER)
    return KairosDecode(predictor, **options)  # type: ignore[arg-type]
