"""The proxy's mirrors of its workers: the views the policies that run in the proxy read.

``PrefillMirror`` is a ``PrefillView`` over the proxy's global prefill queue (the prefill
policy runs in the proxy on behalf of the free instance, as in the simulator's pull-on-free
cluster). ``DecodeMirror`` is the core ``DecodeBook`` (the bookkeeping the worker and the
simulator keep) for ``DecodePolicy.place``: membership is tracked from placements and
``DecodeUpdate`` messages, the counters are the worker's last report, and ``generated`` is
the tokens the proxy has streamed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from kairos.core.decode_state import DecodeBook, RequestQueue
from kairos.core.prefill_state import PrefillBook
from kairos.core.request import Request
from kairos.serve.messages import DecodeUpdate


class PrefillMirror(PrefillBook):
    """Implements ``PrefillView``: the core ``PrefillBook`` over the proxy's global queue.

    ``kv_used`` is tracked here (+ on dispatch, - on release), as the simulator tracks it.
    """

    __slots__ = ("_queue", "alive", "batch_id", "reported_kv_used")

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
        self.reported_kv_used = 0  # what the worker last said it holds
        self.alive = True
        self.batch_id = 0

    @property
    def waiting(self) -> Collection[Request]:
        return self._queue


class DecodeMirror(DecodeBook):
    """A ``DecodeBook`` that follows its worker's reports (what ``place`` reads).

    Waiting requests are added here at placement and leave when the worker reports them
    admitted; running ones join and leave as reported; the counters are the worker's own.
    So between two reports it shows the instance as of its last completed step.
    """

    def __init__(self, instance_id: int, *, kv_capacity_tokens: int, max_batch_size: int) -> None:
        super().__init__(
            instance_id, kv_capacity_tokens=kv_capacity_tokens, max_batch_size=max_batch_size
        )
        self.alive = True
        self.placed = 0  # requests placed here and not yet ended

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
                self.requeue(r)  # the counters are the worker's; only the queue moves
        for rid in msg.admitted:
            self._waiting.discard(rid)
        for rid in msg.joined:
            r = requests.get(rid)
            if r is not None:
                running[rid] = r
