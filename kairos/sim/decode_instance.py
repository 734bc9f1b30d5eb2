"""A simulated decode instance: continuous batching, advanced in closed form.

Between two boundaries the batch does not change, so step j of the run takes
``first + inc * j`` (K grows by B per step) and the whole run is one arithmetic series. A
boundary is scheduled at the earliest of: the next request finishing, the step after which
KV memory would overflow, or the step boundary right after an outside event (a request placed
here, a KV transfer landing). At a boundary the policy decides admissions and preemptions.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from kairos.core.decisions import PolicyContractError
from kairos.core.decode_state import DecodeBook
from kairos.core.latency.arith import run_time, steps_within
from kairos.core.policies.base import DecodePolicy
from kairos.core.request import Request, RequestState
from kairos.sim.events import DECODE_BOUNDARY, KV_DONE, EventQueue
from kairos.sim.kv_link import KVLink

if TYPE_CHECKING:
    from kairos.sim.truth import Truth


class DecodeInstance(DecodeBook):
    """A ``DecodeBook`` advanced in closed form between boundaries."""

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
        super().__init__(
            instance_id, kv_capacity_tokens=kv_capacity_tokens, max_batch_size=max_batch_size
        )
        self.link = link
        self._truth = truth
        self._events = events
        self._policy = policy
        self._true_output = true_output
        decode = truth.profile.decode
        self._coef = (decode.d0, decode.d1, decode.d2)
        self._join_cost = truth.profile.decode_join  # per request joining (Profile)
        self._observe = truth.predictor.observe_decode
        self._join_step: dict[int, int] = {}
        self._finish_step: dict[int, int] = {}
        self._finish_heap: list[tuple[int, int]] = []
        self._ready: list[Request] = []
        # Joined with no token yet (vLLM's P/D): their first token ends the next step.
        self._first_due: list[Request] = []
        self.step = 0  # steps completed at the current boundary
        self._t0 = 0.0  # time of the current boundary
        self._first = 0.0  # true duration of the first step of the current run
        self._inc = 0.0
        self._raw = (0.0, 0.0)  # the same, as the uncorrected model predicts it
        self._next_n: int | None = None  # steps to the scheduled boundary (None: idle)
        self._wake_at: float | None = None  # the policy's last ``DecodeDecision.wake_at``
        self._done = 0  # steps of the current run already counted (advance_to)
        self.version = 0
        # Runs of steps, for rebuilding every token's time afterwards: (first step, steps,
        # run origin, first, inc, steps of the run before these).
        self.runs: list[tuple[int, int, float, float, float, int]] = []
        # Per request: (first step, last step) of each stint in the batch.
        self.stints: dict[int, list[tuple[int, int]]] = {}
        self.tokens_out = 0

    # --- DecodeView (the rest is the DecodeBook's) -------------------------------------------
    def generated(self, request: Request) -> int:
        join = self._join_step.get(request.id)
        if join is None or request.id not in self._running:
            return request.output_tokens
        return request.output_tokens + self.step - join

    # --- driven by the cluster ---------------------------------------------------------------
    def place(self, r: Request, now: float) -> None:
        """A prefilled request placed here by the decode policy."""
        self.enqueue(r)
        self.poke(now)

    def kv_landed(self, r: Request, now: float) -> None:
        # Still counted in ``transferring`` until it joins the batch at the next boundary: the
        # view then says the same before and after a landing it cannot see (as a server's
        # mirror of this instance, which hears of the landing only at that boundary).
        self._ready.append(r)
        self.poke(now)

    def advance_to(self, now: float) -> None:
        """Fold the steps completed by ``now`` into the state, so the view shows the last
        completed step: what a real instance, which reports after every step, would show.

        Called before the cluster reads this instance as a view between its boundaries (for
        placement). Only counters move; membership changes at boundaries, which fall on the
        steps where someone finishes or the policy is due, so none is skipped here. The run
        keeps its origin, so its step times (and the scheduled boundary) stay as they were.
        """
        n_next = self._next_n
        if not n_next or not self._running:
            return
        n = steps_within(self._first, self._inc, now - self._t0)
        if n >= n_next:
            n = n_next - 1  # the scheduled boundary is at ``now`` (a tie): it runs next
        done = self._done
        if n > done:
            self._fold(done, n - done)
            self._done = n

    def _fold(self, done: int, k: int) -> None:
        """Count steps ``done + 1`` to ``done + k`` of the current run as completed."""
        batch = len(self._running) - len(self._skipping)
        first, inc = self._first, self._inc
        self.runs.append((self.step, k, self._t0, first, inc, done))
        # Steps j = done .. done + k - 1 (0-based) take first + inc * j each.
        tri = k * done + k * (k - 1) * 0.5
        raw_first, raw_inc = self._raw
        self._observe(k * first + inc * tri, k * raw_first + raw_inc * tri)
        self.step += k
        self.kv_tokens += batch * k
        self.reserved += batch * k
        self.tokens_out += batch * k

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
        # A running instance always has its boundary scheduled (None only inside one).
        assert self._next_n is not None
        if n < self._next_n:
            self._schedule(self._t0 + run_time(self._first, self._inc, n), n)

    def _schedule(self, t: float, n: int) -> None:
        self.version += 1
        self._next_n = n
        self._events.push(t, DECODE_BOUNDARY, self, (self.version, n))

    def boundary(self, now: float, n: int) -> None:
        """Advance ``n`` steps to ``now``, retire, join, ask the policy, start the next run.

        The hottest code in the simulator: retiring is inlined on purpose (counting the run's
        steps is ``_fold``, shared with ``advance_to``: one call per boundary).
        """
        self._next_n = None
        running = self._running
        done = self._done
        if n > done:
            self._fold(done, n - done)  # the steps advance_to has not folded in yet
            step = self.step
            # Retire everyone whose last token was this step.
            heap = self._finish_heap
            finish_step = self._finish_step
            while heap and heap[0][0] <= step:
                fs, rid = heapq.heappop(heap)
                if finish_step.get(rid) != fs:
                    continue  # stale entry of a preempted request
                r = running[rid]
                del finish_step[rid]
                self._leave(r, fs)
                r.finish = now
                r.state = RequestState.FINISHED
        self._t0 = now
        self._done = 0
        if self._skipping:
            self._rejoin()
        joined = len(self._ready)
        if joined:
            self._join(now)
        # The policy is consulted only when someone waits or memory is short.
        self._wake_at = None
        if self._waiting.count or self.kv_capacity_tokens - self.reserved < len(running):
            self._apply_policy(now)
        if running:
            self._start_run(joined)

    def _leave(self, r: Request, until_step: int) -> None:
        # Output tokens are counted in closed form: they catch up when the request leaves.
        join = self._join_step.pop(r.id)
        r.output_tokens += until_step - join
        self.stints.setdefault(r.id, []).append((join, until_step))
        self.leave(r)

    def _join(self, now: float) -> None:
        step = self.step
        for r in self._ready:
            self.join(r)
            self._join_step[r.id] = step
            fs = step + self._true_output[r.id] - r.output_tokens
            self._finish_step[r.id] = fs
            heapq.heappush(self._finish_heap, (fs, r.id))
            if r.decode_start is None:
                r.decode_start = now
            if r.output_tokens == 0:
                self._first_due.append(r)
        self._ready.clear()

    def _apply_policy(self, now: float) -> None:
        decision = self._policy.schedule(self, now)
        self._wake_at = decision.wake_at
        for r in decision.preempt:
            if r.id not in self._running:
                raise PolicyContractError(f"policy preempted request {r.id}, which is not running")
            del self._finish_step[r.id]
            self._leave(r, self.step)
            r.preemptions += 1
            self.requeue(r)
        for r in decision.admit:
            ctx = self.admit(r)
            if r.kv_start is None:
                r.kv_start = now
            self._events.push(self.link.schedule(now, ctx), KV_DONE, self, r)
        if decision.skip:
            self._skip(decision.skip)
        if self.kv_free_tokens < len(self._running):
            raise PolicyContractError(
                f"decode instance {self.instance_id}: policy {self._policy.name!r} left "
                f"{self.kv_free_tokens} free KV tokens for a batch of {len(self._running)}"
            )

    def _skip(self, requests: list[Request]) -> None:
        """Mode B: ``requests`` sit out the next step (the run is one step). Each one's stint
        ends here, as when it leaves, and ``_rejoin`` starts the next a step later (tokens are
        rebuilt from stints)."""
        self.skip(requests)  # checks the decision first
        step = self.step
        for r in requests:
            join = self._join_step.pop(r.id)
            del self._finish_step[r.id]
            r.output_tokens += step - join
            self.stints.setdefault(r.id, []).append((join, step))

    def _rejoin(self) -> None:
        """The requests that sat out the last step start their next stint here."""
        step = self.step
        for rid in self._skipping:
            self._join_step[rid] = step
            fs = step + self._true_output[rid] - self._running[rid].output_tokens
            self._finish_step[rid] = fs
            heapq.heappush(self._finish_heap, (fs, rid))
        self.end_skips()

    def _start_run(self, joined: int) -> None:
        """Start the next run of steps; ``joined`` requests joined the batch at this boundary."""
        batch = len(self._running)
        heap = self._finish_heap
        finish_step = self._finish_step
        while finish_step.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        n_finish = heap[0][0] - self.step
        n_memory = (self.kv_capacity_tokens - self.reserved) // batch
        n = n_finish if n_finish < n_memory else n_memory
        kv = self.kv_tokens
        if self._skipping:
            batch, kv = self.step_batch()
            n = 1  # the skips hold for one step
        d0, d1, d2 = self._coef
        raw_first = d0 + d1 * batch + d2 * kv
        raw_inc = d2 * batch
        if joined and self._join_cost:
            # The step the newcomers join at also loads their KV (Profile.decode_join): it
            # runs as a run of its own, and the arithmetic series resumes after it.
            raw_first += self._join_cost * joined
            n = 1 if n > 1 else n
        scale = self._truth.decode_scale()
        self._raw = (raw_first, raw_inc)
        first = self._first = raw_first * scale
        inc = self._inc = raw_inc * scale
        for r in self._first_due:
            # Not preempted at the boundary it joined (a policy may not skip it: see _skip).
            if r.id in self._running:
                r.first_token = self._t0 + first
        self._first_due.clear()
        if self._wake_at is not None:
            # The first boundary at or after the time the policy asked to decide again.
            n_wake = steps_within(first, inc, self._wake_at - self._t0) + 1
            n = n_wake if n_wake < n else n
        self._schedule(self._t0 + n * first + inc * n * (n - 1) * 0.5, n)
