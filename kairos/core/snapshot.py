"""Read-only views of queue state that a runtime hands to its policies.

A view is a protocol, not a copy: the simulator's and the server's instance objects implement
it directly, so building a "snapshot" costs nothing on the hot path. Policies must treat every
object reachable from a view as read-only.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from kairos.core.request import Request


class PrefillView(Protocol):
    """A free prefill instance and the (global) queue of requests waiting for prefill."""

    @property
    def instance_id(self) -> int: ...

    @property
    def waiting(self) -> Collection[Request]:
        """Requests waiting for prefill, in arrival order."""
        ...

    @property
    def max_batch_tokens(self) -> int: ...

    @property
    def max_batch_requests(self) -> int: ...

    @property
    def kv_free_tokens(self) -> int:
        """KV slots free on this prefill instance (prefilled KV waits here until pulled)."""
        ...


class DecodeView(Protocol):
    """One decode instance at a step boundary."""

    @property
    def instance_id(self) -> int: ...

    @property
    def waiting(self) -> Collection[Request]:
        """Prefilled requests placed on this instance, not yet admitted, in placement order.

        A queue that keeps ``columns`` (``kairos.core.queue_columns.DECODE_FIELDS``, as
        ``DecodeBook``'s does) spares the policies a pass over it at every step."""
        ...

    @property
    def running(self) -> Collection[Request]:
        """Requests in the batch, iterated in admission order."""
        ...

    @property
    def transferring(self) -> int:
        """Admitted requests whose KV is still being pulled (they join at a later boundary)."""
        ...

    @property
    def waiting_tokens(self) -> int:
        """Total context of the waiting requests (what admitting them all would need)."""
        ...

    @property
    def kv_tokens(self) -> int:
        """Total context (KV tokens) of the running batch: the K in t_D(B, K)."""
        ...

    @property
    def kv_free_tokens(self) -> int:
        """Capacity minus everything held or reserved (running and transferring)."""
        ...

    @property
    def kv_capacity_tokens(self) -> int: ...

    @property
    def max_batch_size(self) -> int: ...

    def generated(self, request: Request) -> int:
        """Output tokens the request has so far (first token included)."""
        ...
