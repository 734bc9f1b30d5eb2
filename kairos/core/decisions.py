"""What a policy returns: the runtime carries it out and nothing else decides what runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from kairos.core.request import Request


@dataclass(slots=True)
class PrefillDecision:
    """Requests to prefill together now (in order), and requests to reject (admission control)."""

    batch: list[Request] = field(default_factory=list)
    reject: list[Request] = field(default_factory=list)


@dataclass(slots=True)
class DecodeDecision:
    """Waiting requests to admit (their KV is pulled, then they join) and running ones to evict.

    Preemptions are applied before admissions. ``wake_at`` is the latest time the policy
    wants to decide again even if nothing else happens (a waiting request's deadline comes
    due); a runtime that consults the policy every step may ignore it, one that skips steps
    between events (the simulator) must stop at the first boundary at or after it.
    """

    admit: list[Request] = field(default_factory=list)
    preempt: list[Request] = field(default_factory=list)
    wake_at: float | None = None
