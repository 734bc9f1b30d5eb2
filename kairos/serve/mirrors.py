"""The proxy's mirrors of its workers: the views the policies that run in the proxy read.

``PrefillMirror`` is a ``PrefillView`` over the proxy's global prefill queue (the prefill
policy runs in the proxy on behalf of the free instance, as in the simulator's pull-on-free
cluster). ``DecodeMirror`` is a ``DecodeView`` for ``DecodePolicy.place``: membership is
tracked from placements and ``DecodeUpdate`` messages, the scalars are the worker's last
report, and ``generated`` is the tokens the proxy has streamed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from kairos.core.request import Request
from kairos.serve.messages import DecodeUpdate
from kairos.serve.queue import RequestQueue


class PrefillMirror:
    """Implements ``PrefillView``."""

    def __init__(
        self,
        instance_id: int,
        queue: dict[int, Request],
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
        self.kv_used = 0  # tracked here: + on dispatch, - on release
        self.reported_kv_used = 0  # what the worker last said it holds
        self.busy = False
        self.alive = True
        self.batch: list[Request] = []
        self.batch_id = 0

    @property
    def waiting(self) -> Collection[Request]:
        return self._queue.values()

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_capacity_tokens - self.kv_used


class DecodeMirror:
    """Implements ``DecodeView`` (what ``place`` reads) from the worker's reports."""

    def __init__(self, instance_id: int, *, kv_capacity_tokens: int, max_batch_size: int) -> None:
        self.instance_id = instance_id
        self.kv_capacity_tokens = kv_capacity_tokens
        self.max_batch_size = max_batch_size
        self._waiting = RequestQueue()
        self._running: dict[int, Request] = {}
        self.transferring = 0
        self.kv_tokens = 0
        self.reserved = 0
        self.alive = True
        self.placed = 0  # requests placed here and not yet ended

    @property
    def waiting(self) -> RequestQueue:
        return self._waiting

    @property
    def running(self) -> Collection[Request]:
        return self._running.values()

    @property
    def waiting_tokens(self) -> int:
        return self._waiting.tokens

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_capacity_tokens - self.reserved

    def generated(self, request: Request) -> int:
        return request.output_tokens

    def first_token_time(self, request: Request) -> float:
        assert request.first_token is not None
        return request.first_token

    def enqueue(self, r: Request) -> None:
        self._waiting.append(r, r.prompt_tokens + r.output_tokens)

    def remove(self, rid: int) -> None:
        self._waiting.discard(rid)
        self._running.pop(rid, None)

    def apply(self, msg: DecodeUpdate, requests: Mapping[int, Request]) -> None:
        """Follow the worker's boundary. Ids of requests the proxy has ended are skipped."""
        self.kv_tokens = msg.kv_tokens
        self.reserved = msg.reserved
        self.transferring = msg.transferring
        running = self._running
        for rid in msg.finished:
            running.pop(rid, None)
        for rid in msg.preempted:
            r = running.pop(rid, None)
            if r is not None:
                self._waiting.append_front(r, r.prompt_tokens + r.output_tokens)
        for rid in msg.admitted:
            self._waiting.discard(rid)
        for rid in msg.joined:
            r = requests.get(rid)
            if r is not None:
                running[rid] = r
