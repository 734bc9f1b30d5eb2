"""The proxy's scheduler: the global prefill queue, placement, and every request's outcome.

The global prefill queue lives here (the simulator's pull-on-free model): when a prefill
instance is free and requests wait, the prefill policy runs here on that instance's
``PrefillMirror`` and the batch is sent to it. With one prefill instance this is the same as a
worker-local queue. When a batch is done the proxy feeds the prefill predictor, streams each
first token, and places each request with the decode policy's ``place`` over the
``DecodeMirror`` of every live decode instance. Admission, preemption and steps are the decode
workers' (their own policy object, same class). Nothing here blocks: every method runs on the
event loop, between awaits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from kairos.core.clock import Clock
from kairos.core.decode_state import RequestQueue, placement_inputs
from kairos.core.latency.predictor import Predictor
from kairos.core.latency.profile import Profile
from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.core.queue_columns import PREFILL_FIELDS
from kairos.core.request import RequestState
from kairos.serve.config import ServeConfig
from kairos.serve.errors import Overloaded, ServeError, Unavailable, WorkerFailed
from kairos.serve.job import Job
from kairos.serve.messages import (
    Cancel,
    DecodeUpdate,
    KVHandoff,
    KVReleased,
    Message,
    PrefillBatch,
    PrefillDone,
    PrefillStatus,
    RequestSpec,
)
from kairos.serve.mirrors import DecodeMirror, PrefillMirror
from kairos.serve.transport import ProxyTransport

log = logging.getLogger("kairos.serve")


class Proxy:
    def __init__(
        self, config: ServeConfig, profile: Profile, transport: ProxyTransport, clock: Clock
    ) -> None:
        self.config = config
        self.profile = profile
        self.transport = transport
        self.clock = clock
        self.predictor = Predictor.from_profile(profile)
        self.prefill_policy = PREFILL_POLICIES.create(
            config.prefill_policy, predictor=self.predictor
        )
        self.decode_policy = DECODE_POLICIES.create(config.decode_policy, predictor=self.predictor)
        # The global prefill queue, in arrival order (keeping the prefill policies' columns).
        self.queue = RequestQueue(PREFILL_FIELDS)
        self.jobs: dict[int, Job] = {}
        self.prefill = [
            PrefillMirror(
                i,
                self.queue,
                kv_capacity_tokens=profile.kv_capacity_tokens,
                max_batch_tokens=profile.max_prefill_batch_tokens,
                max_batch_requests=config.max_prefill_batch_requests,
            )
            for i in range(config.prefill_instances)
        ]
        self.decode = [
            DecodeMirror(
                i,
                kv_capacity_tokens=profile.kv_capacity_tokens,
                max_batch_size=profile.max_decode_batch_size,
            )
            for i in range(config.decode_instances)
        ]
        # Prompt KV still held on a prefill instance: request id -> (instance, tokens).
        self.prefill_held: dict[int, tuple[int, int]] = {}
        self.on_end: list[Callable[[Job], None]] = []
        self._next_id = 0

    # --- from the HTTP side ------------------------------------------------------------------
    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def submit(self, job: Job) -> None:
        """Queue a validated request for prefill (raises 503 or 429 instead when it cannot)."""
        if not any(p.alive for p in self.prefill) or not any(d.alive for d in self.decode):
            raise Unavailable("no live prefill or decode worker can take the request")
        if len(self.queue) >= self.config.max_queue:
            raise Overloaded(
                f"{len(self.queue)} requests are waiting for prefill (--max-queue "
                f"{self.config.max_queue}); retry later",
                retry_after=self._drain_estimate(),
            )
        r = job.request
        self.queue.append(r, r.prompt_tokens)
        self.jobs[r.id] = job
        now = job.queued = self.clock.now()
        for inst in self.prefill:
            if not self.queue:
                break
            self._try_prefill(inst, now)

    def cancel(self, job: Job) -> None:
        """The client went away: end the request and free its KV wherever it is."""
        if not job.done:
            self._end(job, "cancelled", None)

    # --- from the workers --------------------------------------------------------------------
    def handle(self, msg: Message) -> None:
        try:
            if isinstance(msg, DecodeUpdate):
                self._on_decode_update(msg)
            elif isinstance(msg, PrefillDone):
                self._on_prefill_done(msg)
            elif isinstance(msg, KVReleased):
                self._release_prefill_kv(msg.request_id)
            elif isinstance(msg, PrefillStatus):
                self.prefill[msg.instance].reported_kv_used = msg.kv_used
        except Exception:  # one bad message must not stop the proxy
            log.exception("error handling %s", type(msg).__name__)

    def _try_prefill(self, inst: PrefillMirror, now: float) -> None:
        if inst.busy or not inst.alive or not self.queue:
            return
        decision = self.prefill_policy.schedule(inst, now)
        for r in decision.reject:
            msg = f"rejected by prefill policy {self.prefill_policy.name!r}: TTFT SLO unreachable"
            self._end(self.jobs[r.id], "rejected", Unavailable(msg))
        if not decision.batch:
            return
        s = s2 = 0
        for r in decision.batch:
            self.queue.discard(r.id)
            s += r.uncached_tokens
            s2 += r.uncached_tokens * r.uncached_tokens
            inst.kv_used += r.prompt_tokens
            self.prefill_held[r.id] = (inst.instance_id, r.prompt_tokens)
            r.state = RequestState.PREFILLING
            r.prefill_start = now
            r.prefill_instance = inst.instance_id
        predicted = self.predictor.prefill_time(s, s2)
        for r in decision.batch:
            r.predicted_prefill = predicted
        inst.busy = True
        inst.batch = decision.batch
        inst.batch_id += 1
        jobs = [self.jobs[r.id] for r in decision.batch]
        for job in jobs:
            job.dispatched = now
        specs = [_spec(job) for job in jobs]
        self.transport.send("prefill", inst.instance_id, PrefillBatch(inst.batch_id, specs))

    def _on_prefill_done(self, msg: PrefillDone) -> None:
        inst = self.prefill[msg.instance]
        inst.busy = False
        inst.batch = []
        inst.reported_kv_used = msg.kv_used
        self.predictor.observe_prefill(msg.busy, msg.sum_tokens, msg.sum_sq_tokens)
        now = self.clock.now()
        prefilled: list[tuple[Job, KVHandoff]] = []
        for h in msg.handoffs:
            job = self.jobs.get(h.request.id)
            if job is None:  # ended while prefilling (its KV is already released)
                continue
            r = job.request
            job.prefill_seen = now
            r.prefill_start = msg.start
            r.prefill_end = r.first_token = msg.end
            r.output_tokens = 1  # the prefill emits the first token
            job.add_token(msg.end)
            if job.max_tokens == 1:
                self._finish(job, msg.end)  # frees its prompt KV before the next decision
            else:
                prefilled.append((job, h))
        # The next batch before the placements: the instance idles until it arrives, and
        # placing does not change what the prefill policy sees (the simulator places first,
        # at the same instant).
        self._try_prefill(inst, now)
        for job, h in prefilled:
            self._place(job, h, now)

    def _place(self, job: Job, h: KVHandoff, now: float) -> None:
        alive = [d for d in self.decode if d.alive]
        if not alive:
            self._end(job, "failed", Unavailable("no live decode worker to place it on"))
            return
        r = job.request
        job.placement_inputs = [placement_inputs(d) for d in alive]
        target = alive[self.decode_policy.place(r, alive, now)]
        r.decode_instance = target.instance_id
        r.state = RequestState.WAITING_DECODE
        target.enqueue(r)
        target.placed += 1
        self.transport.send("decode", target.instance_id, h)

    def _on_decode_update(self, msg: DecodeUpdate) -> None:
        jobs = self.jobs
        t = msg.time
        for rid in msg.tokens:
            job = jobs.get(rid)
            if job is not None:
                job.request.output_tokens += 1
                job.add_token(t)
        for rid in msg.preempted:
            job = jobs.get(rid)
            if job is not None:
                job.request.preemptions += 1
        mirror = self.decode[msg.instance]
        mirror.apply(msg, {rid: job.request for rid, job in _some(jobs, msg.joined)})
        if msg.step_time > 0:
            self.predictor.observe_decode(msg.step_time, msg.predicted_raw)
        for rid in msg.finished:
            job = jobs.get(rid)
            if job is not None:
                self._finish(job, t)

    def _release_prefill_kv(self, rid: int) -> None:
        """Free a request's prompt KV on its prefill instance (at most once)."""
        held = self.prefill_held.pop(rid, None)
        if held is None:
            return
        instance, tokens = held
        inst = self.prefill[instance]
        inst.kv_used -= tokens
        if inst.alive:
            self.transport.send("prefill", instance, KVReleased(rid, instance))
            self._try_prefill(inst, self.clock.now())

    # --- outcomes ----------------------------------------------------------------------------
    def _finish(self, job: Job, t: float) -> None:
        job.request.finish = t
        self._end(job, "finished", None)

    def _end(self, job: Job, status: str, error: ServeError | None) -> None:
        """End a request and clean up after it in the queue, the mirrors and the workers."""
        r = job.request
        self.jobs.pop(r.id, None)
        self.queue.discard(r.id)
        r.state = RequestState.FINISHED if status == "finished" else RequestState.FAILED
        if r.decode_instance is not None:
            mirror = self.decode[r.decode_instance]
            mirror.remove(r.id)
            mirror.placed -= 1
            if status != "finished" and mirror.alive:
                self.transport.send("decode", r.decode_instance, Cancel(r.id))
        self._release_prefill_kv(r.id)
        job.end(status, error)
        for observer in self.on_end:
            try:
                observer(job)
            except Exception:  # metrics or the log failing must not stop the serving
                log.exception("request observer failed")

    def worker_died(self, kind: str, instance: int) -> None:
        """Fail what the dead worker held; fail the queue if no instance of its kind is left."""
        log.error("%s worker %d died", kind, instance)
        error = WorkerFailed(f"{kind} worker {instance} died while serving this request")
        if kind == "prefill":
            inst = self.prefill[instance]
            inst.alive = inst.busy = False
            # Its batch, and prefilled requests whose KV was still waiting there to be pulled.
            lost = [rid for rid, (i, _) in self.prefill_held.items() if i == instance]
        else:
            self.decode[instance].alive = False
            lost = [
                rid for rid, job in self.jobs.items() if job.request.decode_instance == instance
            ]
        for rid in lost:
            job = self.jobs.get(rid)
            if job is not None:
                self._end(job, "failed", error)
        mirrors: list[PrefillMirror] | list[DecodeMirror] = (
            self.prefill if kind == "prefill" else self.decode
        )
        if not any(m.alive for m in mirrors):
            for r in list(self.queue):
                self._end(self.jobs[r.id], "failed", Unavailable(f"no live {kind} worker is left"))

    def fail_all(self, reason: str) -> None:
        """End every request in flight (shutdown): their responses close promptly."""
        for job in list(self.jobs.values()):
            self._end(job, "failed", Unavailable(reason))

    def _drain_estimate(self) -> int:
        """Seconds until the prefill queue has likely drained: the Retry-After hint."""
        work = sum(self.predictor.prefill_time_one(r.uncached_tokens) for r in self.queue)
        live = max(1, sum(p.alive for p in self.prefill))
        return max(1, math.ceil(work / live))


def _spec(job: Job) -> RequestSpec:
    r = job.request
    return RequestSpec(r.id, r.arrival, r.prompt_tokens, job.max_tokens, r.ttft_slo, r.tpot_slo)


def _some(jobs: dict[int, Job], ids: list[int]) -> list[tuple[int, Job]]:
    return [(rid, jobs[rid]) for rid in ids if rid in jobs]
