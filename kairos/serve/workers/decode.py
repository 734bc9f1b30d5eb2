"""The decode worker process: continuous batching on an emulated engine, one step at a time.

Each step boundary: retire finished requests, join requests whose KV landed, let the decode
policy admit (start a KV pull over this instance's FIFO link) and preempt, then run one step
of ``t_D(B, K)``. Steps are chained on absolute deadlines so sleeping jitter does not drift.
All tokens of a step go to the proxy in ONE ``DecodeUpdate``.
"""

from __future__ import annotations

import heapq
import logging

from kairos.core.clock import Clock
from kairos.core.latency.predictor import Predictor
from kairos.core.policies import DECODE_POLICIES
from kairos.core.request import Request
from kairos.core.slo import SLO
from kairos.profiles import load_profile
from kairos.serve.clock import MonotonicClock
from kairos.serve.engines import Engine, create_engine
from kairos.serve.messages import Cancel, DecodeUpdate, KVHandoff, KVReleased, Message, Shutdown
from kairos.serve.workers import WorkerConfig
from kairos.serve.workers.decode_state import Boundary, DecodeState
from kairos.serve.workers.link import WorkerLink

log = logging.getLogger("kairos.serve.decode")

# A step that starts late by less than this keeps the absolute schedule: the emulated GPU
# does not slow down because the host was busy (the worker catches up; the late tokens go out
# late, but the steps after them are on time, as in the simulator). Later than that (the
# process was stopped) the schedule restarts from now instead of bursting.
MAX_CATCH_UP_S = 0.05


class DecodeWorker:
    def __init__(
        self,
        state: DecodeState,
        engine: Engine,
        predictor: Predictor,
        link: WorkerLink,
        clock: Clock,
    ) -> None:
        self.state = state
        self.engine = engine
        self.predictor = predictor
        self.link = link
        self.clock = clock
        self._landings: list[tuple[float, int]] = []
        self._step_start = 0.0
        self._step_end: float | None = None  # deadline of the step in progress
        self._step_raw = 0.0
        self._dirty = False  # state changed while idle: a boundary (and an update) is due

    def run(self) -> None:
        self.link.ready()
        while not self.link.orphaned():
            wake = self._step_end
            if self._landings and (wake is None or self._landings[0][0] < wake):
                wake = self._landings[0][0]
            for msg in self.link.receive(wake):
                if not self._handle(msg):
                    return
            now = self.clock.now()
            while self._landings and self._landings[0][0] <= now:
                self._landed(heapq.heappop(self._landings)[1], now)
            if self._step_end is not None and now >= self._step_end:
                self._finish_step(now)
            elif self._dirty and self._step_end is None:
                self._boundary(now, now, [], [], 0.0, 0.0)

    def _handle(self, msg: Message) -> bool:
        if isinstance(msg, KVHandoff):
            self.state.enqueue(_request(msg))
            self._dirty = True
        elif isinstance(msg, Cancel):
            self.state.cancel(msg.request_id)
            self._dirty = True
        elif isinstance(msg, Shutdown):
            return False
        return True

    def _landed(self, rid: int, now: float) -> None:
        r = self.state.landed(rid, now)
        if r is None:
            return  # cancelled while its KV was in flight
        if r.kv_end is None:  # first pull: the prefill instance may drop its copy
            r.kv_end = now
            assert r.prefill_instance is not None
            self.link.send(KVReleased(rid, r.prefill_instance))
        self._dirty = True

    def _finish_step(self, now: float) -> None:
        assert self._step_end is not None
        deadline, self._step_end = self._step_end, None
        tokens, finished = self.state.end_step(now)
        # Keep the absolute schedule unless we woke far too late.
        start = deadline if now - deadline < MAX_CATCH_UP_S else now
        # What the step took on the emulated hardware: up to where the next one starts (the
        # wake-up's lateness is the host's, and is not carried into the schedule).
        actual = start - self._step_start
        self.predictor.observe_decode(actual, self._step_raw)
        self._boundary(start, now, tokens, finished, actual, self._step_raw)

    def _boundary(
        self,
        now: float,
        emitted: float,
        tokens: list[int],
        finished: list[int],
        step: float,
        raw: float,
    ) -> None:
        """Run the boundary at ``now``, start the next step, report (tokens at ``emitted``)."""
        state = self.state
        done = state.boundary(now)
        for r, lands in done.admitted:
            heapq.heappush(self._landings, (lands, r.id))
        if not state.idle:
            batch, kv = state.step_batch()  # less the requests sitting this step out
            self._step_start = now
            self._step_end = now + self.engine.decode_step_time(batch, kv)
            self._step_raw = self.predictor.decode.step_time(batch, kv)
        self._dirty = False
        self.link.send(_update(state, emitted, tokens, finished, step, raw, done))


def _update(
    state: DecodeState,
    now: float,
    tokens: list[int],
    finished: list[int],
    step: float,
    raw: float,
    done: Boundary,
) -> DecodeUpdate:
    return DecodeUpdate(
        instance=state.instance_id,
        time=now,
        step_time=step,
        predicted_raw=raw,
        tokens=tokens,
        finished=finished,
        admitted=[r.id for r, _ in done.admitted],
        preempted=[r.id for r in done.preempted],
        joined=[r.id for r in done.joined],
        kv_tokens=state.kv_tokens,
        reserved=state.reserved,
        transferring=state.transferring,
    )


def _request(h: KVHandoff) -> Request:
    spec = h.request
    r = Request(
        spec.id,
        spec.arrival,
        spec.prompt_tokens,
        SLO(spec.ttft_slo, spec.tpot_slo),
        max_output_tokens=spec.max_tokens,
    )
    r.prefill_instance = h.prefill_instance
    r.prefill_end = r.first_token = h.first_token
    r.output_tokens = 1  # the prefill emitted the first token
    return r


def run_decode_worker(config: WorkerConfig) -> None:
    profile = load_profile(config.profile)
    predictor = Predictor.from_profile(profile)
    state = DecodeState(
        config.instance,
        kv_capacity_tokens=profile.kv_capacity_tokens,
        max_batch_size=profile.max_decode_batch_size,
        policy=DECODE_POLICIES.create(config.decode_policy, predictor=predictor),
        kv_transfer=profile.kv_transfer,
    )
    link = WorkerLink(config)
    try:
        DecodeWorker(
            state, create_engine(config.engine, profile), predictor, link, MonotonicClock()
        ).run()
    finally:
        link.close()
