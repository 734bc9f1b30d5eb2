"""What a policy returns: the runtime carries it out and nothing else decides what runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from kairos.core.request import Request


class PolicyContractError(RuntimeError):
    """A policy returned a decision the runtime cannot carry out."""


@dataclass(slots=True)
class PrefillDecision:
    """Requests to prefill together now (in order), and requests to reject (admission control)."""

    batch: list[Request] = field(default_factory=list)
    reject: list[Request] = field(default_factory=list)


@dataclass(slots=True)
class DecodeDecision:
    """Waiting requests to admit (their KV is pulled, then they join), running ones to evict,
    and running ones that sit out the next step (mode B of Kairos decode).

    Preemptions are applied before admissions. A request in ``skip`` keeps its KV and its
    place in the batch but gets no token from the next step, which runs (and is timed) without
    it; the skip holds for that one step, so a runtime that skips steps between events must
    stop at the next boundary. ``skip`` may not name a preempted request, nor every request
    of the batch. ``wake_at`` is the latest time the policy
    wants to decide again even if nothing else happens (a waiting request's deadline comes
    due); a runtime that consults the policy every step may ignore it, one that skips steps
    between events (the simulator) must stop at the first boundary at or after it.
    """

    admit: list[Request] = field(default_factory=list)
    preempt: list[Request] = field(default_factory=list)
    skip: list[Request] = field(default_factory=list)
    wake_at: float | None = None
