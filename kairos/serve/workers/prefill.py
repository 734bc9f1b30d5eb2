"""The prefill worker process: runs the batches the proxy sends, holds their KV until pulled.

The proxy runs the prefill policy (it owns the global queue), so this worker only executes:
sleep the engine's time for the batch, emit the first token of every request, and hand each
request's KV off (``KVHandoff``). The KV stays counted here until a ``KVReleased`` arrives.
"""

from __future__ import annotations

from kairos.core.clock import Clock
from kairos.profiles import load_profile
from kairos.serve.clock import MonotonicClock
from kairos.serve.engines import Engine, create_engine
from kairos.serve.messages import (
    KVHandoff,
    KVReleased,
    Message,
    PrefillBatch,
    PrefillDone,
    PrefillStatus,
    Shutdown,
)
from kairos.serve.workers import WorkerConfig
from kairos.serve.workers.link import WorkerLink


class PrefillWorker:
    def __init__(self, instance: int, engine: Engine, link: WorkerLink, clock: Clock) -> None:
        self.instance = instance
        self.engine = engine
        self.link = link
        self.clock = clock
        self.held: dict[int, int] = {}  # request id -> prompt KV tokens held here
        self.kv_used = 0
        self._batch: PrefillBatch | None = None
        self._start = 0.0
        self._end: float | None = None
        self._duration = 0.0
        self._sums = (0, 0)

    def run(self) -> None:
        self.link.ready()
        while not self.link.orphaned():
            for msg in self.link.receive(self._end):
                if not self._handle(msg):
                    return
            if self._end is not None and self.clock.now() >= self._end:
                self._finish()

    def _handle(self, msg: Message) -> bool:
        if isinstance(msg, PrefillBatch):
            self._begin(msg)
        elif isinstance(msg, KVReleased):
            self.kv_used -= self.held.pop(msg.request_id, 0)
            self.link.send(PrefillStatus(self.instance, self.kv_used))
        elif isinstance(msg, Shutdown):
            return False
        return True

    def _begin(self, batch: PrefillBatch) -> None:
        # The proxy sends a batch only to a free instance; the server never caches prefixes,
        # so every prompt token is uncached.
        assert self._batch is None, "prefill batch sent to a busy instance"
        s = s2 = 0
        for spec in batch.requests:
            s += spec.prompt_tokens
            s2 += spec.prompt_tokens * spec.prompt_tokens
            self.held[spec.id] = spec.prompt_tokens
            self.kv_used += spec.prompt_tokens
        self._batch, self._sums = batch, (s, s2)
        self._start = self.clock.now()
        self._duration = self.engine.prefill_time(s, s2)
        self._end = self._start + self._duration

    def _finish(self) -> None:
        assert self._batch is not None
        end = self.clock.now()
        batch, self._batch, self._end = self._batch, None, None
        handoffs = [
            KVHandoff(spec, self.instance, spec.prompt_tokens, end)
            for spec in batch.requests
            if spec.id in self.held  # not cancelled meanwhile
        ]
        s, s2 = self._sums
        # The emulated engine took exactly its scheduled time; a late wake-up is the host's
        # (it still delays the tokens, so ``end`` is when they are emitted).
        busy = self._duration
        self.link.send(
            PrefillDone(
                self.instance, batch.batch_id, self._start, end, busy, s, s2, self.kv_used, handoffs
            )
        )


def run_prefill_worker(config: WorkerConfig) -> None:
    profile = load_profile(config.profile)
    link = WorkerLink(config)
    try:
        PrefillWorker(
            config.instance, create_engine(config.engine, profile), link, MonotonicClock()
        ).run()
    finally:
        link.close()
