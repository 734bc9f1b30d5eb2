"""FCFS continuous batching (vLLM's and DistServe's decode scheduler, the baseline).

At every step boundary: if the next step would not fit in KV memory, preempt the most recently
admitted request (vLLM's recompute order); then admit waiting requests in order while the batch
size and KV memory (less a small watermark) allow, stopping at the first that does not fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kairos.core.decisions import DecodeDecision
from kairos.core.latency.predictor import Predictor
from kairos.core.policies.base import DECODE_POLICIES
from kairos.core.request import Request
from kairos.core.snapshot import DecodeView

# vLLM keeps 1% of blocks free when admitting, so running requests can grow a little.
WATERMARK = 0.01


def preempt_for_growth(view: DecodeView, order: Iterable[Request]) -> list[Request]:
    """Evict from ``order`` (first = first evicted) until the next step fits in memory."""
    free = view.kv_free_tokens
    batch = len(view.running)
    victims: list[Request] = []
    for r in order:
        if free >= batch:
            break
        victims.append(r)
        free += r.prompt_tokens + view.generated(r)
        batch -= 1
    return victims


def most_free_memory(instances: Sequence[DecodeView]) -> int:
    """Placement by the most free KV memory (ties to the lowest index)."""
    best, best_free = 0, -1
    for i, inst in enumerate(instances):
        free = inst.kv_free_tokens - inst.waiting_tokens
        if free > best_free:
            best, best_free = i, free
    return best


def continuous_batching(view: DecodeView, batch_limit: int) -> DecodeDecision:
    """vLLM-style: preempt newest-first on memory pressure, then admit in queue order while
    the batch stays within ``batch_limit`` and memory (less the watermark) allows."""
    running = view.running
    preempt = (
        preempt_for_growth(view, reversed(list(running)))
        if view.kv_free_tokens < len(running)
        else []
    )
    admit: list[Request] = []
    slots = batch_limit - (len(running) - len(preempt)) - view.transferring
    free = view.kv_free_tokens + sum(r.prompt_tokens + view.generated(r) for r in preempt)
    free -= int(WATERMARK * view.kv_capacity_tokens)
    for r in view.waiting:
        need = r.prompt_tokens + view.generated(r)
        if slots <= 0 or need > free:
            break
        admit.append(r)
        free -= need
        slots -= 1
    return DecodeDecision(admit=admit, preempt=preempt)


class FCFSDecode:
    name = "fcfs"

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def schedule(self, view: DecodeView, now: float) -> DecodeDecision:
        return continuous_batching(view, view.max_batch_size)

    def place(self, request: Request, instances: Sequence[DecodeView], now: float) -> int:
        return most_free_memory(instances)


@DECODE_POLICIES.register("fcfs")
def _make(predictor: Predictor) -> FCFSDecode:
    return FCFSDecode(predictor)
