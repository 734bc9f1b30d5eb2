"""The simulated cluster: a global prefill queue, N_P prefill and N_D decode instances.

The cluster only carries out decisions: the prefill policy picks every batch, the decode
policy picks placement, admissions and preemptions. Only the workers here read the true
output lengths.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from kairos.core.decisions import PolicyContractError
from kairos.core.latency.predictor import Predictor
from kairos.core.latency.profile import Profile
from kairos.core.policies.base import DecodePolicy, PrefillPolicy
from kairos.core.queue_columns import PREFILL_FIELDS
from kairos.core.request import Request, RequestState
from kairos.core.snapshot import DecodeView
from kairos.sim.config import ClusterConfig
from kairos.sim.decode_instance import DecodeInstance
from kairos.sim.events import DECODE_BOUNDARY, KV_DONE, PREFILL_DONE, EventQueue
from kairos.sim.kv_link import KVLink
from kairos.sim.prefill_instance import PrefillInstance
from kairos.sim.queues import RequestQueue
from kairos.sim.truth import Truth


class Cluster:
    def __init__(
        self,
        profile: Profile,
        config: ClusterConfig,
        prefill_policy: PrefillPolicy,
        decode_policy: DecodePolicy,
        predictor: Predictor,
        true_output: list[int],
    ) -> None:
        self.profile = profile
        self.config = config
        self.prefill_policy = prefill_policy
        self.decode_policy = decode_policy
        self.predictor = predictor
        self.events = EventQueue()
        self.truth = Truth(
            profile, predictor, noise=config.noise, scale=config.truth_scale, seed=config.seed
        )
        self.queue = RequestQueue(PREFILL_FIELDS)
        self.errors: dict[int, str] = {}
        self.prefill = [
            PrefillInstance(
                i,
                self.queue,
                kv_capacity_tokens=profile.kv_capacity_tokens,
                max_batch_tokens=config.max_prefill_batch_tokens
                or profile.max_prefill_batch_tokens,
                max_batch_requests=config.max_prefill_batch_requests,
            )
            for i in range(config.prefill_instances)
        ]
        self.decode = [
            DecodeInstance(
                i,
                kv_capacity_tokens=profile.kv_capacity_tokens,
                max_batch_size=config.max_decode_batch_size or profile.max_decode_batch_size,
                link=KVLink(profile.kv_transfer),
                truth=self.truth,
                events=self.events,
                policy=decode_policy,
                true_output=true_output,
            )
            for i in range(config.decode_instances)
        ]
        self._true_output = true_output
        # With one decode instance placement has no choice: no need to bring its view up to date.
        self._several_decode = len(self.decode) > 1
        # Called after each placement with the views the policy read (the differential test
        # records them to explain a placement the server made differently).
        self.on_place: Callable[[Request, Sequence[DecodeView], int], None] | None = None
        self._chunk = config.prefill_chunk_tokens or 1 << 62
        self._first_on_decode = config.first_token_on_decode
        self._control = config.control
        # The largest prompt the cluster can ever hold; anything longer is rejected at once.
        self.max_prompt = min(profile.max_context_tokens, profile.kv_capacity_tokens)

    def run(
        self,
        requests: Sequence[Request],
        progress: Callable[[int], None] | None = None,
        on_event: Callable[[float, Cluster], None] | None = None,
    ) -> float:
        """Simulate until every request is done; returns the time of the last event.

        ``on_event(now, cluster)`` runs after every event: tests use it to check invariants.
        """
        events = self.events
        heap = events.heap
        pop = heapq.heappop
        on_kv_done, on_prefill_done = self._on_kv_done, self._on_prefill_done
        i, n = 0, len(requests)
        now = 0.0
        ingress = self._control.ingress  # the request reaches the prefill queue this late
        while True:
            if i < n and (not heap or requests[i].arrival + ingress < heap[0][0]):
                now = requests[i].arrival + ingress
                self._on_arrival(requests[i], now)
                i += 1
                if progress is not None and i % 1000 == 0:
                    progress(1000)
            elif heap:
                now, kind, _, a, b = pop(heap)
                if kind == DECODE_BOUNDARY:
                    if b[0] == a.version:  # else superseded by an earlier boundary
                        a.boundary(now, b[1])
                elif kind == KV_DONE:
                    on_kv_done(now, a, b)
                else:
                    on_prefill_done(now, a, b)
            else:
                break
            if on_event is not None:
                on_event(now, self)
        if progress is not None:
            progress(n % 1000)
        self._fail_leftovers(requests)
        return now

    # --- prefill side ------------------------------------------------------------------------
    def _on_arrival(self, r: Request, now: float) -> None:
        if r.prompt_tokens > self.max_prompt:
            r.state = RequestState.REJECTED
            self.errors[r.id] = (
                f"prompt of {r.prompt_tokens} tokens exceeds the limit of {self.max_prompt}"
            )
            return
        self.queue.append(r, r.prompt_tokens)
        for inst in self.prefill:
            if not inst.busy:
                self._try_prefill(inst, now)
                if not self.queue.count:
                    break

    def _try_prefill(self, inst: PrefillInstance, now: float) -> None:
        if inst.busy or not (self.queue.count or inst.resumed.count):
            return
        decision = self.prefill_policy.schedule(inst, now)
        for r in decision.reject:
            self._dequeue(inst, r)
            if r.prefill_start is not None:  # a half-prefilled prompt gives its KV back
                inst.kv_used -= r.prompt_tokens
            r.state = RequestState.REJECTED
            self.errors[r.id] = f"rejected by prefill policy {self.prefill_policy.name!r}"
        if not decision.batch:
            return
        start = now + self._control.dispatch  # the batch reaches the instance
        s = s2 = 0
        budget = self._chunk  # the iteration's token budget (unbounded without chunking)
        batch: list[Request] = []
        takes: list[int] = []
        for r in decision.batch:
            self._dequeue(inst, r)
            done = r.cached_tokens
            take = min(r.prompt_tokens - done, budget)
            budget -= take
            s += take
            # Attention of a chunk over the prefix already in KV: summed over a prompt's
            # chunks this gives exactly the prompt's own quadratic term.
            s2 += take * take + 2 * take * done if done else take * take
            if r.prefill_start is None:
                inst.kv_used += r.prompt_tokens
                r.prefill_start = start
                r.prefill_instance = inst.instance_id
            r.state = RequestState.PREFILLING
            batch.append(r)
            takes.append(take)
            if not budget:
                break  # the rest of the policy's batch stays queued for the next chunk
        if inst.kv_used > inst.kv_capacity_tokens:
            raise PolicyContractError(
                f"prefill policy {self.prefill_policy.name!r} overfilled the KV memory of "
                f"prefill instance {inst.instance_id}"
            )
        duration = self.truth.prefill_time(s, s2)
        predicted = self.predictor.prefill_time(s, s2)
        for r in batch:
            r.predicted_prefill = predicted
        inst.busy = True
        inst.batch = batch
        inst.takes = takes
        inst.batches += 1
        inst.busy_time += duration
        # The instance is free again once the scheduler hears that the batch ended.
        end = start + duration
        self.events.push(end + self._control.report, PREFILL_DONE, inst, (end, duration, s, s2))

    def _dequeue(self, inst: PrefillInstance, r: Request) -> None:
        if r.prefill_start is None:
            self.queue.discard(r.id)
        else:
            inst.resumed.discard(r.id)

    def _on_prefill_done(
        self, now: float, inst: PrefillInstance, info: tuple[float, float, int, int]
    ) -> None:
        end, duration, s, s2 = info  # ``end``: when the instance emitted the tokens
        self.predictor.observe_prefill(duration, s, s2)
        batch, inst.batch = inst.batch, []
        takes, inst.takes = inst.takes, []
        inst.busy = False
        views = self.decode
        synced = False
        for r, take in zip(batch, takes, strict=True):
            if r.cached_tokens + take < r.prompt_tokens:  # a chunk of a longer prompt
                r.cached_tokens += take
                r.state = RequestState.WAITING_PREFILL
                inst.resumed.append(r, r.prompt_tokens)
                continue
            r.prefill_end = end  # with the first token on decode, its deadlines run from here
            if not self._first_on_decode:
                r.first_token = end
                r.output_tokens = 1  # the prefill emits the first token
            if r.output_tokens == self._true_output[r.id]:
                inst.kv_used -= r.prompt_tokens
                r.finish = end
                r.state = RequestState.FINISHED
                continue
            if not synced and self._several_decode:  # views as of the last step reported
                for view in views:
                    view.advance_to(end)
                synced = True
            d = self.decode_policy.place(r, views, now)
            if self.on_place is not None:
                self.on_place(r, views, d)
            r.decode_instance = d
            views[d].place(r, now)
        self._try_prefill(inst, now)

    # --- decode side -------------------------------------------------------------------------
    def _on_kv_done(self, now: float, inst: DecodeInstance, r: Request) -> None:
        if r.kv_end is None:  # first pull: the prefill instance can drop its copy
            r.kv_end = now
            assert r.prefill_instance is not None
            source = self.prefill[r.prefill_instance]
            source.kv_used -= r.prompt_tokens
            self._try_prefill(source, now)
        inst.kv_landed(r, now)

    def _fail_leftovers(self, requests: Sequence[Request]) -> None:
        for r in requests:
            if not r.state.is_terminal:
                self.errors[r.id] = f"never completed (left in state {r.state.name})"
                r.state = RequestState.FAILED
