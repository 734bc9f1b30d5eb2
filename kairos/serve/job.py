"""A request in flight, as the proxy tracks it: the core ``Request`` plus its token stream.

The core ``Request`` is what the policies read; ``Job`` adds what only the server needs: the
client's id, the engine's token emission times, the outcome, and a wake-up for the HTTP
response that streams it.
"""

from __future__ import annotations

import asyncio

import numpy as np

from kairos.core.record import RequestRecord
from kairos.core.request import Request
from kairos.serve.errors import ServeError


class Job:
    __slots__ = (
        "_end_waiter",
        "_waiter",
        "client_id",
        "dispatched",
        "error",
        "first_sent",
        "max_tokens",
        "placement_inputs",
        "prefill_seen",
        "queued",
        "request",
        "status",
        "token_times",
    )

    def __init__(self, request: Request, client_id: str, max_tokens: int) -> None:
        self.request = request
        self.client_id = client_id
        self.max_tokens = max_tokens
        # Engine emission time of every token (monotonic seconds, the first token included).
        self.token_times: list[float] = []
        self.status: str | None = None  # finished, failed, cancelled or rejected once ended
        self.error: ServeError | None = None
        self._waiter: asyncio.Future[None] | None = None  # a streaming response, per token
        self._end_waiter: asyncio.Future[None] | None = None  # a non-streaming one, at the end
        # The proxy's side of the timeline (monotonic seconds), for the TTFT breakdown in
        # the request log: the request entered the prefill queue, its batch was sent to a
        # prefill worker, the proxy read the worker's PrefillDone, the first token was written
        # to the client's socket. (Arrival and the worker's times are on ``request``.)
        self.queued: float | None = None
        self.dispatched: float | None = None
        self.prefill_seen: float | None = None
        self.first_sent: float | None = None
        # What the decode policy's ``place`` read of each live decode instance (see
        # kairos.core.decode_state.placement_inputs).
        self.placement_inputs: list[tuple[int, int, int, int, int]] | None = None

    @property
    def done(self) -> bool:
        return self.status is not None

    def add_token(self, t: float) -> None:
        self.token_times.append(t)
        self._wake()

    def end(self, status: str, error: ServeError | None = None) -> None:
        self.status = status
        self.error = error
        self._wake()
        if self._end_waiter is not None and not self._end_waiter.done():
            self._end_waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, seen: int) -> None:
        """Return once there are more than ``seen`` tokens or the request has ended."""
        if len(self.token_times) > seen or self.status is not None:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    async def ended(self) -> None:
        if self.status is None:
            if self._end_waiter is None:
                self._end_waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._end_waiter)


def record(job: Job) -> RequestRecord:
    """The job as a core ``RequestRecord``: TTFT, TPOT and SLO outcomes are derived there."""
    r = job.request
    status = job.status if job.status in ("finished", "rejected") else "failed"
    error = job.error.message if job.error else None
    if job.status == "cancelled":
        error = "cancelled by the client"
    return RequestRecord(
        id=r.id,
        arrival=r.arrival,
        input_tokens=r.prompt_tokens,
        ttft_slo=r.ttft_slo,
        tpot_slo=r.tpot_slo,
        status=status,
        token_times=np.asarray(job.token_times, dtype=np.float64),
        prefill_instance=r.prefill_instance,
        decode_instance=r.decode_instance,
        preemptions=r.preemptions,
        prefill_start=r.prefill_start,
        predicted_prefill=r.predicted_prefill,
        error=error,
    )
