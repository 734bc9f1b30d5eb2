"""Policy contracts and their registries.

A policy is a pure function of a view and ``now`` (plus the predictor it was built with): no
I/O, no clock, no asyncio. The same object runs in the simulator and in the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kairos.core.decisions import DecodeDecision, PrefillDecision
from kairos.core.registry import Registry
from kairos.core.request import Request
from kairos.core.snapshot import DecodeView, PrefillView


class PrefillPolicy(Protocol):
    name: str

    def schedule(self, view: PrefillView, now: float) -> PrefillDecision:
        """Choose the next batch for a free prefill instance."""
        ...


class DecodePolicy(Protocol):
    name: str

    def schedule(self, view: DecodeView, now: float) -> DecodeDecision:
        """At a step boundary: whom to admit and whom to preempt.

        Contract: after the decision, the instance must have room for one more token per
        running request (``kv_free_tokens >= len(running)``).
        """
        ...

    def place(self, request: Request, instances: Sequence[DecodeView], now: float) -> int:
        """Index of the decode instance a freshly prefilled request goes to."""
        ...


# Factories take the predictor (fitted models + online correction) and policy options.
PREFILL_POLICIES: Registry[PrefillPolicy] = Registry("prefill policy")
DECODE_POLICIES: Registry[DecodePolicy] = Registry("decode policy")
