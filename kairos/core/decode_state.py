"""What a decode instance shows its policies, kept the same way by every runtime.

``RequestQueue`` is the waiting queue of a decode instance (and the simulator's and the
proxy's prefill queues); ``DecodeBook`` is the bookkeeping behind the ``DecodeView``
protocol: who waits, who runs, who is admitted but not yet in the batch, and the KV tokens
each of those holds. The
simulator's decode instance, the server's decode worker and the proxy's mirror of that worker
all keep their state in a ``DecodeBook``, so a policy reads the same numbers from each of
them for the same history (the differential test checks it). Pure: no clock, no I/O.

    enqueue -> waiting --admit--> admitted (KV in flight, then landed) --join--> running
                 ^                                                                  |
                 +---------------------------- preempt -----------------------------+

A running request may also sit out one step (``skip``, Kairos decode's mode B): it stays in
``running`` with its KV, and ``step_batch`` (the B and K the step is timed with) leaves it
out until ``end_skips`` at the next boundary.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from kairos.core.decisions import PolicyContractError
from kairos.core.queue_columns import DECODE_FIELDS, Columns, Fields
from kairos.core.request import Request, RequestState
from kairos.core.snapshot import DecodeView


class RequestQueue:
    """Insertion-ordered requests; preempted ones re-enter at the front (vLLM's rule).

    Each request is queued with its context (the KV tokens admitting it needs), so ``tokens``
    answers ``waiting_tokens`` without a pass over the queue. Given ``fields``, the queue also
    keeps its requests as ``columns`` (``kairos.core.queue_columns``), numbered in iteration
    order: the front counts down from -1, the rest up from 0.
    """

    __slots__ = (
        "_context",
        "_front",
        "_main",
        "_seq_front",
        "_seq_main",
        "columns",
        "count",
        "tokens",
    )

    def __init__(self, fields: Fields | None = None) -> None:
        self._front: dict[int, Request] = {}
        self._main: dict[int, Request] = {}
        self._context: dict[int, int] = {}
        self.tokens = 0  # total context of the queued requests
        self.count = 0  # len(self), readable without a method call on hot paths
        self.columns = None if fields is None else Columns(fields)
        self._seq_main = 0
        self._seq_front = 0

    def append(self, r: Request, context: int) -> None:
        if self.columns is not None:  # first: it refuses a request it cannot read
            self.columns.add(r, self._seq_main)
            self._seq_main += 1
        self._main[r.id] = r
        self._context[r.id] = context
        self.tokens += context
        self.count += 1

    def append_front(self, r: Request, context: int) -> None:
        if self.columns is not None:
            self.columns.add(r, self._seq_front - 1)
            self._seq_front -= 1
        self._front[r.id] = r
        self._context[r.id] = context
        self.tokens += context
        self.count += 1

    def discard(self, rid: int) -> Request | None:
        """Remove a request by id if it is queued; returns it (or None)."""
        r = self._main.pop(rid, None) or self._front.pop(rid, None)
        if r is not None:
            self.tokens -= self._context.pop(rid)
            self.count -= 1
            if self.columns is not None:
                self.columns.remove(rid)
        return r

    def __iter__(self) -> Iterator[Request]:
        if self._front:
            # Most recently preempted first.
            yield from list(self._front.values())[::-1]
        yield from self._main.values()

    def __len__(self) -> int:
        return self.count

    def __contains__(self, r: object) -> bool:
        rid = getattr(r, "id", None)
        return rid in self._main or rid in self._front


class DecodeBook:
    """Implements ``DecodeView``: a decode instance's queues and KV accounting.

    ``transferring`` counts admitted requests until they join the batch (KV in flight, or
    landed and waiting for the next boundary), so a landing changes nothing a policy reads
    until the request is in ``running``. ``reserved`` is every KV token held or promised:
    the running batch's context (``kv_tokens``) plus the admitted requests' contexts.
    ``generated`` is the request's ``output_tokens``; the simulator, which advances runs of
    steps in closed form, overrides it.
    """

    # Slots for the book's own fields (read on every step of the simulator's hot path); the
    # runtimes' subclasses keep theirs in the instance dict.
    __slots__ = (
        "__dict__",
        "_running",
        "_skipping",
        "_waiting",
        "instance_id",
        "kv_capacity_tokens",
        "kv_tokens",
        "max_batch_size",
        "reserved",
        "transferring",
    )

    def __init__(self, instance_id: int, *, kv_capacity_tokens: int, max_batch_size: int) -> None:
        self.instance_id = instance_id
        self.kv_capacity_tokens = kv_capacity_tokens
        self.max_batch_size = max_batch_size
        self._waiting = RequestQueue(DECODE_FIELDS)
        self._running: dict[int, Request] = {}
        self.transferring = 0
        self.kv_tokens = 0  # context of the running batch: the K in t_D(B, K)
        self.reserved = 0  # running + admitted contexts
        self._skipping: dict[int, int] = {}  # running requests sitting out this step -> context

    # --- DecodeView -----------------------------------------------------------------------
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

    # --- transitions (the runtime calls these; a policy never does) --------------------------
    def enqueue(self, r: Request) -> None:
        r.state = RequestState.WAITING_DECODE
        self._waiting.append(r, r.prompt_tokens + r.output_tokens)

    def admit(self, r: Request) -> int:
        """Waiting -> admitted: its KV is reserved now. Returns its context (tokens to pull)."""
        self._waiting.discard(r.id)
        ctx = r.prompt_tokens + r.output_tokens
        self.reserved += ctx
        self.transferring += 1
        r.state = RequestState.TRANSFERRING
        return ctx

    def join(self, r: Request) -> None:
        """Admitted -> running (at a boundary, after its KV landed)."""
        self.transferring -= 1
        self._running[r.id] = r
        self.kv_tokens += r.prompt_tokens + r.output_tokens
        r.state = RequestState.DECODING

    def leave(self, r: Request) -> None:
        """Running -> out of the batch (finished, preempted or cancelled): frees its KV."""
        del self._running[r.id]
        self._skipping.pop(r.id, None)
        ctx = r.prompt_tokens + r.output_tokens
        self.kv_tokens -= ctx
        self.reserved -= ctx

    def requeue(self, r: Request) -> None:
        """A preempted request (already out of the batch) waits again, at the front."""
        r.state = RequestState.WAITING_DECODE
        self._waiting.append_front(r, r.prompt_tokens + r.output_tokens)

    def skip(self, requests: Collection[Request]) -> None:
        """Running requests sit out the next step: they keep their KV, get no token. A
        request not running, named twice or still owing its first token, or a step left with
        no one to run, is the policy's error."""
        for r in requests:
            made = self.generated(r)
            if r.id not in self._running or r.id in self._skipping or made == 0:
                raise PolicyContractError(
                    f"decode instance {self.instance_id}: the policy skipped request {r.id}, "
                    "which is not running, is named twice, or owes its first token"
                )
            self._skipping[r.id] = r.prompt_tokens + made
        if len(self._skipping) >= len(self._running):
            raise PolicyContractError(
                f"decode instance {self.instance_id}: the policy skipped every request of the batch"
            )

    def end_skips(self) -> None:
        """Every request that sat out a step runs again (at the next boundary)."""
        self._skipping.clear()

    def skipping(self, rid: int) -> bool:
        return rid in self._skipping

    def step_batch(self) -> tuple[int, int]:
        """(B, K) of the step that runs: the batch less the requests sitting it out."""
        if not self._skipping:
            return len(self._running), self.kv_tokens
        return (
            len(self._running) - len(self._skipping),
            self.kv_tokens - sum(self._skipping.values()),
        )

    def grow(self, tokens: int) -> None:
        """The running batch generated ``tokens`` tokens (B per step)."""
        self.kv_tokens += tokens
        self.reserved += tokens


def placement_inputs(view: DecodeView) -> tuple[int, int, int, int, int]:
    """What the decode policies' ``place`` reads of one instance: batch, queue, admitted,
    free KV and queued context. Recorded by both runtimes to explain a differing placement."""
    return (
        len(view.running),
        len(view.waiting),
        view.transferring,
        view.kv_free_tokens,
        view.waiting_tokens,
    )
