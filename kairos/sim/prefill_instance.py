"""A simulated prefill instance: runs the batches its policy picks, holds KV until pulled.

Under chunked prefill a prompt can span iterations; between them it waits in the instance's
own ``resumed`` queue (its KV lives here, so no other instance may take it), which the
instance's view lists ahead of the global queue.
"""

from __future__ import annotations

from kairos.core.request import Request
from kairos.sim.queues import ChainedQueue, RequestQueue


class PrefillInstance:
    """Implements ``PrefillView`` over the cluster's global prefill queue."""

    __slots__ = (
        "_both",
        "_queue",
        "batch",
        "batches",
        "busy",
        "busy_time",
        "instance_id",
        "kv_capacity_tokens",
        "kv_used",
        "max_batch_requests",
        "max_batch_tokens",
        "resumed",
        "takes",
    )

    def __init__(
        self,
        instance_id: int,
        queue: RequestQueue,
        *,
        kv_capacity_tokens: int,
        max_batch_tokens: int,
        max_batch_requests: int,
    ) -> None:
        self.instance_id = instance_id
        self._queue = queue
        self.kv_capacity_tokens = kv_capacity_tokens
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.kv_used = 0
        self.busy = False
        self.batch: list[Request] = []
        self.takes: list[int] = []  # prompt tokens each batch member prefills this iteration
        self.resumed = RequestQueue()
        self._both = ChainedQueue(self.resumed, queue)
        self.batches = 0
        self.busy_time = 0.0

    @property
    def waiting(self) -> RequestQueue | ChainedQueue:
        return self._both if self.resumed.count else self._queue

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_capacity_tokens - self.kv_used
