"""FCFS prefill (the paper's and DistServe's baseline).

Take requests in arrival order while the batch stays within its request, token and KV-memory
limits; stop at the first that does not fit (no skipping: that is what makes it FCFS). A prompt
longer than the token limit runs alone, otherwise it could never run.
"""

from __future__ import annotations

from collections.abc import Iterable

from kairos.core.decisions import PrefillDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import PREFILL_POLICIES
from kairos.core.request import Request
from kairos.core.snapshot import PrefillView


def take_in_order(view: PrefillView, ordered: Iterable[Request]) -> list[Request]:
    """Fill a batch in the given order, stopping at the first request that does not fit."""
    batch: list[Request] = []
    tokens = 0
    max_tokens = view.max_batch_tokens
    max_requests = view.max_batch_requests
    kv_free = view.kv_free_tokens
    for r in ordered:
        n = r.prompt_tokens - r.cached_tokens
        if (batch and tokens + n > max_tokens) or r.prompt_tokens > kv_free:
            break
        batch.append(r)
        tokens += n
        kv_free -= r.prompt_tokens
        if len(batch) >= max_requests or tokens >= max_tokens:
            break
    return batch


class FCFSPrefill:
    name = "fcfs"

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def schedule(self, view: PrefillView, now: float) -> PrefillDecision:
        return PrefillDecision(batch=take_in_order(view, view.waiting))


@PREFILL_POLICIES.register("fcfs")
def _make(predictor: Predictor) -> FCFSPrefill:
    return FCFSPrefill(predictor)
