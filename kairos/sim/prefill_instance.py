"""A simulated prefill instance: runs the batches its policy picks, holds KV until pulled.

Under chunked prefill a prompt can span iterations; between them it waits in the instance's
own ``resumed`` queue (its KV lives here, so no other instance may take it), which the
instance's view lists ahead of the global queue.
"""

from __future__ import annotations

from kairos.core.prefill_state import PrefillBook
from kairos.core.queue_columns import PREFILL_FIELDS
from kairos.sim.queues import ChainedQueue, RequestQueue


class PrefillInstance(PrefillBook):
    """Implements ``PrefillView``: the core ``PrefillBook`` over the cluster's global prefill
    queue, plus its own queue of half-prefilled prompts."""

    __slots__ = ("_both", "_queue", "batches", "busy_time", "resumed", "takes")

    def __init__(
        self,
        instance_id: int,
        queue: RequestQueue,
        *,
        kv_capacity_tokens: int,
        max_batch_tokens: int,
        max_batch_requests: int,
    ) -> None:
        super().__init__(
            instance_id,
            kv_capacity_tokens=kv_capacity_tokens,
            max_batch_tokens=max_batch_tokens,
            max_batch_requests=max_batch_requests,
        )
        self._queue = queue
        self.takes: list[int] = []  # prompt tokens each batch member prefills this iteration
        self.resumed = RequestQueue(PREFILL_FIELDS)
        self._both = ChainedQueue(self.resumed, queue)
        self.batches = 0
        self.busy_time = 0.0

    @property
    def waiting(self) -> RequestQueue | ChainedQueue:
        return self._both if self.resumed.count else self._queue
