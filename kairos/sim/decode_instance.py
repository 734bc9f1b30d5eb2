"""A simulated decode instance: continuous batching, advanced in closed form.

Between two boundaries the batch does not change, so step j of the run takes
``first + inc * j`` (K grows by B per step) and the whole run is one arithmetic series. A
boundary is scheduled at the earliest of: the next request finishing, the step after which
KV memory would overflow, or the step boundary right after an outside event (a request placed
here, a KV transfer landing). At a boundary the policy decides admissions and preemptions.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from typing import TYPE_CHECKING

from kairos.core.latency.arith import run_time, steps_within
from kairos.core.policies.base import DecodePolicy
from kairos.core.request import Request, RequestState
from kairos.sim.events import DECODE_BOUNDARY, KV_DONE, EventQueue
from kairos.sim.kv_link import KVLink
from kairos.sim.queues import RequestQueue

if TYPE_CHECKING:
    from kairos.sim.truth import Truth


class PolicyContractError(RuntimeError):
    """A policy returned a decision the runtime cannot carry out."""


class DecodeInstance:
    """Implements ``DecodeView``."""

    def __init__(
        self,
        instance_id: int,
        *,
        kv_capacity_tokens: int,
        max_batch_size: int,
        link: KVLink,
        truth: Truth,
        events: EventQueue,
        policy: DecodePolicy,
        true_output: list[int],
    ) -> None:
        self.instance_id = instance_id
        self.kv_capacity_tokens = kv_capacity_tokens
        self.max_batch_size = max_batch_size
        self.link = link
        self._truth = truth
        self._events = events
        self._policy = policy
        self._true_output = true_output
        decode = truth.profile.decode
        self._coef = (decode.d0, decode.d1, decode.d2)
        self._observe = truth.predictor.observe_decode
        self._waiting = RequestQueue()
        self._running: dict[int, Request] = {}
        self._join_step: dict[int, int] = {}
        self._finish_step: dict[int, int] = {}
        self._finish_heap: list[tuple[int, int]] = []
        self._ready: list[Request] = []
        self.transferring = 0
        self.kv_tokens = 0  # context of the running batch at the current boundary
        self._reserved = 0  # running + transferring + ready contexts
        self.step = 0  # steps completed at the current boundary
        self._t0 = 0.0  # time of the current boundary
        self._first = 0.0  # true duration of the first step of the current run
        self._inc = 0.0
        self._raw = (0.0, 0.0)  # the same, as the uncorrected model predicts it
        self._next_n: int | None = None  # steps to the scheduled boundary (None: idle)
        self.version = 0
        # Runs of steps, for rebuilding every token's time afterwards.
        self.runs: list[tuple[int, int, float, float, float]] = []
        # Per request: (first step, last step) of each stint in the batch.
        self.stints: dict[int, list[tuple[int, int]]] = {}
        self.tokens_out = 0

    # --- DecodeView -----------------------------------------------------------------------
    @property
    def waiting(self) -> RequestQueue:
        return self._waiting

    @property
    def running(self) -> Collection[Request]:
        return self._running.values()

    @property
    def waiting_tokens(self) -> int:
        return self._waiting.tokens

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_capacity_tokens - self._reserved

    def generated(self, request: Request) -> int:
        join = self._join_step.get(request.id)
        if join is None or request.id not in self._running:
            return request.output_tokens
        return request.output_tokens + self.step - join

    def first_token_time(self, request: Request) -> float:
        assert request.first_token is not None
        return request.first_token

    # --- driven by the cluster ---------------------------------------------------------------
    def enqueue(self, r: Request, now: float) -> None:
        r.state = RequestState.WAITING_DECODE
        self._waiting.append(r, r.prompt_tokens + r.output_tokens)
        self.poke(now)

    def kv_landed(self, r: Request, now: float) -> None:
        self.transferring -= 1
        self._ready.append(r)
        self.poke(now)

    def poke(self, now: float) -> None:
        """Ask for a boundary at the first step boundary at or after ``now``."""
        if not self._running:
            # Idle: the boundary is now, unless one is already pending (then it is at or
            # before now, since events run in time order).
            if self._next_n is None:
                self._schedule(now, 0)
            return
        elapsed = now - self._t0
        n = steps_within(self._first, self._inc, elapsed)
        if run_time(self._first, self._inc, n) < elapsed:
            n += 1
        if n < self._next_n:
            self._schedule(self._t0 + run_time(self._first, self._inc, n), n)

    def _schedule(self, t: float, n: int) -> None:
        self.version += 1
        self._next_n = n
        self._events.push(t, DECODE_BOUNDARY, self, (self.version, n))

    def boundary(self, now: float, n: int) -> None:
        """Advance ``n`` steps to ``now``, retire, join, ask the policy, start the next run.

        The hottest code in the simulator: sub-steps are inlined on purpose.
        """
        self._next_n = None
        running = self._running
        if n:
            batch = len(running)
            first, inc = self._first, self._inc
            self.runs.append((self.step, n, self._t0, first, inc))
            tri = n * (n - 1) * 0.5
            raw_first, raw_inc = self._raw
            self._observe(n * first + inc * tri, n * raw_first + raw_inc * tri)
            step = self.step = self.step + n
            self.kv_tokens += batch * n
            self._reserved += batch * n
            self.tokens_out += batch * n
            # Retire everyone whose last token was this step.
            heap = self._finish_heap
            finish_step = self._finish_step
            while heap and heap[0][0] <= step:
                fs, rid = heapq.heappop(heap)
                if finish_step.get(rid) != fs:
                    continue  # stale entry of a preempted request
                r = running.pop(rid)
                del finish_step[rid]
                self._leave(r, fs)
                r.finish = now
                r.state = RequestState.FINISHED
        self._t0 = now
        if self._ready:
            self._join(now)
        # The policy is consulted only when someone waits or memory is short.
        if self._waiting.count or self.kv_capacity_tokens - self._reserved < len(running):
            self._apply_policy(now)
        if running:
            self._start_run()

    def _leave(self, r: Request, until_step: int) -> None:
        join = self._join_step.pop(r.id)
        r.output_tokens += until_step - join
        self.stints.setdefault(r.id, []).append((join, until_step))
        ctx = r.prompt_tokens + r.output_tokens
        self.kv_tokens -= ctx
        self._reserved -= ctx

    def _join(self, now: float) -> None:
        for r in self._ready:
            self._running[r.id] = r
            self._join_step[r.id] = self.step
            fs = self.step + self._true_output[r.id] - r.output_tokens
            self._finish_step[r.id] = fs
            heapq.heappush(self._finish_heap, (fs, r.id))
            self.kv_tokens += r.prompt_tokens + r.output_tokens
            r.state = RequestState.DECODING
            if r.decode_start is None:
                r.decode_start = now
        self._ready.clear()

    def _apply_policy(self, now: float) -> None:
        decision = self._policy.schedule(self, now)
        for r in decision.preempt:
            if r.id not in self._running:
                raise PolicyContractError(f"policy preempted request {r.id}, which is not running")
            del self._running[r.id]
            del self._finish_step[r.id]
            self._leave(r, self.step)
            r.preemptions += 1
            r.state = RequestState.WAITING_DECODE
            self._waiting.append_front(r, r.prompt_tokens + r.output_tokens)
        for r in decision.admit:
            ctx = r.prompt_tokens + r.output_tokens
            self._waiting.remove(r, ctx)
            self._reserved += ctx
            self.transferring += 1
            r.state = RequestState.TRANSFERRING
            if r.kv_start is None:
                r.kv_start = now
            self._events.push(self.link.schedule(now, ctx), KV_DONE, self, r)
        if self.kv_free_tokens < len(self._running):
            raise PolicyContractError(
                f"decode instance {self.instance_id}: policy {self._policy.name!r} left "
                f"{self.kv_free_tokens} free KV tokens for a batch of {len(self._running)}"
            )

    def _start_run(self) -> None:
        batch = len(self._running)
        heap = self._finish_heap
        finish_step = self._finish_step
        while finish_step.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        n_finish = heap[0][0] - self.step
        n_memory = (self.kv_capacity_tokens - self._reserved) // batch
        n = n_finish if n_finish < n_memory else n_memory
        d0, d1, d2 = self._coef
        raw_first = d0 + d1 * batch + d2 * self.kv_tokens
        raw_inc = d2 * batch
        scale = self._truth.decode_scale()
        self._raw = (raw_first, raw_inc)
        first = self._first = raw_first * scale
        inc = self._inc = raw_inc * scale
        self._schedule(self._t0 + n * first + inc * n * (n - 1) * 0.5, n)
