"""One decode instance's queues and running batch: ``DecodeView``, advanced one step at a time.

The bookkeeping is the core ``DecodeBook`` the simulator's decode instance keeps too; this
adds the KV pulls and the step: a real engine runs every step, so every step end is a
boundary. Pure: no I/O and no clock; the decode worker drives it and sends what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kairos.core.decisions import PolicyContractError
from kairos.core.decode_state import DecodeBook
from kairos.core.latency.kv_transfer import KVTransferModel
from kairos.core.policies.base import DecodePolicy
from kairos.core.request import Request, RequestState


@dataclass(slots=True)
class Boundary:
    """What one boundary did; ``admitted`` pairs each request with its KV landing time."""

    admitted: list[tuple[Request, float]] = field(default_factory=list)
    preempted: list[Request] = field(default_factory=list)
    joined: list[Request] = field(default_factory=list)


class DecodeState(DecodeBook):
    """A ``DecodeBook`` driven one step at a time. A request's output length is its
    ``max_output_tokens``: the emulated engine has no end-of-sequence token, so it always
    generates exactly that."""

    def __init__(
        self,
        instance_id: int,
        *,
        kv_capacity_tokens: int,
        max_batch_size: int,
        policy: DecodePolicy,
        kv_transfer: KVTransferModel,
    ) -> None:
        super().__init__(
            instance_id, kv_capacity_tokens=kv_capacity_tokens, max_batch_size=max_batch_size
        )
        self._policy = policy
        self._kv_transfer = kv_transfer
        self._transfers: dict[int, Request] = {}  # admitted, KV in flight
        self._ready: dict[int, Request] = {}  # KV landed, joins at the next boundary
        self.link_free_at = 0.0  # one KV pull at a time, FIFO (the link's queue)

    @property
    def idle(self) -> bool:
        return not self._running

    def landed(self, rid: int, now: float) -> Request | None:
        """A KV pull completed; None if the request was cancelled meanwhile."""
        r = self._transfers.pop(rid, None)
        if r is None:
            return None
        self._ready[rid] = r
        return r

    def end_step(self, now: float) -> tuple[list[int], list[int]]:
        """Every running request that did not sit the step out got one token at ``now``:
        (ids, ids that are now done)."""
        running = self._running
        skipping = self._skipping
        ids = [rid for rid in running if rid not in skipping] if skipping else list(running)
        finished: list[int] = []
        for rid in ids:
            r = running[rid]
            r.output_tokens += 1
            if r.output_tokens >= r.max_output_tokens:  # type: ignore[operator]
                finished.append(r.id)
        self.grow(len(ids))
        for rid in finished:
            r = running[rid]
            self.leave(r)
            r.finish = now
            r.state = RequestState.FINISHED
        return ids, finished

    def boundary(self, now: float) -> Boundary:
        """Join landed requests, then ask the policy (only when someone waits or memory is
        short, as the simulator does) and carry out its decision."""
        done = Boundary()
        self.end_skips()
        for r in self._ready.values():
            self.join(r)
            if r.decode_start is None:
                r.decode_start = now
            done.joined.append(r)
        self._ready.clear()
        if len(self._waiting) or self.kv_free_tokens < len(self._running):
            self._apply_policy(now, done)
        return done

    def _apply_policy(self, now: float, done: Boundary) -> None:
        decision = self._policy.schedule(self, now)
        for r in decision.preempt:
            if r.id not in self._running:
                raise PolicyContractError(f"policy preempted request {r.id}, which is not running")
            self.leave(r)
            r.preemptions += 1
            self.requeue(r)
            done.preempted.append(r)
        for r in decision.admit:
            ctx = self.admit(r)
            self._transfers[r.id] = r
            if r.kv_start is None:
                r.kv_start = now
            start = self.link_free_at if self.link_free_at > now else now
            self.link_free_at = start + self._kv_transfer.time(ctx)
            done.admitted.append((r, self.link_free_at))
        if decision.skip:
            self.skip(decision.skip)
        if self.kv_free_tokens < len(self._running):
            raise PolicyContractError(
                f"decode instance {self.instance_id}: policy {self._policy.name!r} left "
                f"{self.kv_free_tokens} free KV tokens for a batch of {len(self._running)}"
            )

    def cancel(self, rid: int) -> Request | None:
        """Drop a request wherever it is and free its KV; None if it is not here."""
        r = self._waiting.discard(rid)
        if r is not None:
            return r
        r = self._running.get(rid)
        if r is not None:
            self.leave(r)
            return r
        r = self._transfers.pop(rid, None) or self._ready.pop(rid, None)
        if r is not None:
            # Reserved at admission, not yet part of the batch's K.
            self.reserved -= r.prompt_tokens + r.output_tokens
            self.transferring -= 1
        return r
