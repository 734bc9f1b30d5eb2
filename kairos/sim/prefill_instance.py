"""A simulated prefill instance: runs the batches its policy picks, holds KV until pulled."""

from __future__ import annotations

from kairos.core.request import Request
from kairos.sim.queues import RequestQueue


class PrefillInstance:
    """Implements ``PrefillView`` over the cluster's global prefill queue."""

    __slots__ = (
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
        self.batches = 0
        self.busy_time = 0.0

    @property
    def waiting(self) -> RequestQueue:
        return self._queue

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_capacity_tokens - self.kv_used
