"""What a prefill instance shows the prefill policy, kept the same way by every runtime.

``PrefillBook`` is the bookkeeping behind ``PrefillView`` apart from the queue: the instance's
limits, whether it is busy and with which batch, and the prompt KV it holds (added when a
prompt's prefill starts, removed when the first decode-side pull of it lands). The
simulator's prefill instance and the proxy's mirror of a prefill worker both keep it, and
each supplies ``waiting`` (the global queue, read in arrival order). Pure: no clock, no I/O.
"""

from __future__ import annotations

from kairos.core.request import Request


class PrefillBook:
    __slots__ = (
        "batch",
        "busy",
        "instance_id",
        "kv_capacity_tokens",
        "kv_used",
        "max_batch_requests",
        "max_batch_tokens",
    )

    def __init__(
        self,
        instance_id: int,
        *,
        kv_capacity_tokens: int,
        max_batch_tokens: int,
        max_batch_requests: int,
    ) -> None:
        self.instance_id = instance_id
        self.kv_capacity_tokens = kv_capacity_tokens
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_requests = max_batch_requests
        self.kv_used = 0  # prompt KV held here: + when a prefill starts, - at its first pull
        self.busy = False
        self.batch: list[Request] = []

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_capacity_tokens - self.kv_used
