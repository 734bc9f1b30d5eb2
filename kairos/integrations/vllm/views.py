"""Kairos views over a vLLM scheduler's state, so core policies run unchanged inside vLLM.

Nothing here imports vLLM: requests are read by duck typing (the attributes of vLLM 0.32's
``vllm.v1.request.Request`` listed in ``VllmRequest``), which lets the default test suite check
the adapters with plain stand-ins.

Times are Unix seconds (``time.time()``), the clock vLLM stamps ``arrival_time`` with. The
client's arrival and SLOs come in ``sampling_params.extra_args`` (the OpenAI body field
``vllm_xargs``), set by the Kairos proxy; the engine's own ``arrival_time`` is only a fallback,
because it is stamped when the request reaches the instance, after the proxy and, on a decode
instance, after the whole prefill.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kairos.core.decode_state import RequestQueue
from kairos.core.queue_columns import DECODE_FIELDS
from kairos.core.request import Request
from kairos.core.slo import SLO

# Keys of ``vllm_xargs`` the proxy sets (values are numbers; vLLM allows str/int/float).
XARG_ARRIVAL = "kairos_arrival"  # Unix time the request reached the Kairos proxy
XARG_TTFT = "kairos_ttft_slo"  # seconds
XARG_TPOT = "kairos_tpot_slo"  # seconds
XARG_PREFILLED = "kairos_prefilled"  # Unix time the prefill instance answered (decode role)


class VllmRequest(Protocol):
    """The part of ``vllm.v1.request.Request`` the adapters read."""

    request_id: str
    arrival_time: float
    num_prompt_tokens: int
    num_computed_tokens: int
    num_preemptions: int
    max_tokens: int
    sampling_params: Any

    @property
    def num_output_tokens(self) -> int: ...


@dataclass
class PlainSamplingParams:
    extra_args: dict[str, Any] | None = None


@dataclass
class PlainVllmRequest:
    """A ``VllmRequest`` without vLLM, for the tests and benchmarks of these adapters."""

    request_id: str
    num_prompt_tokens: int
    arrival_time: float = 0.0
    num_computed_tokens: int = 0
    num_preemptions: int = 0
    max_tokens: int = 16
    num_output_tokens: int = 0
    sampling_params: PlainSamplingParams = field(default_factory=PlainSamplingParams)


def extra_args(v: VllmRequest) -> Mapping[str, Any]:
    params = getattr(v, "sampling_params", None)
    args = getattr(params, "extra_args", None)
    return args if isinstance(args, Mapping) else {}


class RequestMirror:
    """One Kairos ``Request`` per live vLLM request, refreshed from vLLM's counters.

    It maps both ways, so a policy's decision (Kairos requests) turns back into vLLM's
    requests without a per-step index. ``default_slo`` is for requests that arrive without
    Kairos's ``vllm_xargs`` (sent straight to the instance).
    """

    def __init__(self, default_slo: SLO) -> None:
        self.default_slo = default_slo
        self._by_id: dict[str, Request] = {}
        self._source: dict[int, VllmRequest] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, v: VllmRequest, now: float | None = None) -> Request:
        """The mirror of ``v``, refreshed. ``now`` (Unix time of this step boundary) dates a
        first token that appeared since the last refresh."""
        r = self._by_id.get(v.request_id)
        if r is None:
            r = self._create(v)
            self._by_id[v.request_id] = r
            self._source[r.id] = v
        # A prompt always has at least one uncached token (the one that samples the output).
        r.cached_tokens = min(v.num_computed_tokens, v.num_prompt_tokens - 1)
        r.output_tokens = v.num_output_tokens
        r.preemptions = v.num_preemptions
        if r.first_token is None and r.output_tokens and now is not None:
            # On a decode instance of vLLM's P/D this instance emitted it: the TPOT clock
            # starts here, not at the hand-off (``Request.decode_anchor``).
            r.first_token = now
        return r

    def source(self, r: Request) -> VllmRequest:
        """The vLLM request a mirrored request stands for."""
        return self._source[r.id]

    def forget_all_but(self, live: Iterable[str]) -> None:
        keep = set(live)
        for rid in [rid for rid in self._by_id if rid not in keep]:
            del self._source[self._by_id.pop(rid).id]

    def _create(self, v: VllmRequest) -> Request:
        args = extra_args(v)
        slo = self.default_slo
        try:
            ttft = float(args.get(XARG_TTFT, slo.ttft))
            tpot = float(args.get(XARG_TPOT, slo.tpot))
            slo = SLO(ttft, tpot)
            arrival = float(args.get(XARG_ARRIVAL, v.arrival_time))
            prefilled = float(args.get(XARG_PREFILLED, v.arrival_time))
        except (TypeError, ValueError):
            # The proxy validates these; a bad value from a direct client falls back rather
            # than crashing the engine core (which would fail every request on the instance).
            arrival, prefilled = v.arrival_time, v.arrival_time
        r = Request(
            self._next,
            arrival,
            max(1, v.num_prompt_tokens),
            slo,
            max_output_tokens=v.max_tokens,
        )
        self._next += 1
        # Decode role: when the prefill instance answered. The decode instance emits the first
        # token, so per-token deadlines run from here (``Request.decode_anchor``).
        r.prefill_end = prefilled
        return r


class DecodeQueue:
    """The decode plugin's waiting candidates as a ``RequestQueue`` kept across steps.

    The decode policies read their waiting queue as numpy columns (``queue_columns``). vLLM's
    queue is a plain deque: refreshing every candidate's mirror and building those columns at
    each step cost about 490 us with 1,000 waiting and 32 running, against 44 us for ``sync``
    and the same decision (an A/B over ``benchmarks/policy_overhead.py``'s stand-ins).

    What the columns hold of a waiting request does not change while it waits (its output
    only grows while it runs, and a preempted request re-enters as a new candidate), so a row
    is added once, when a request becomes a candidate, and dropped when it stops being one
    (admitted, finished, aborted); ``sync`` then costs one pass over the candidates' ids.
    Queue order is the order requests became candidates, preempted ones at the front (vLLM's
    rule, as ``RequestQueue`` keeps it): the policies use it only to break ties.
    """

    def __init__(self, mirror: RequestMirror) -> None:
        self.mirror = mirror
        self.queue = RequestQueue(DECODE_FIELDS)
        self._kept: dict[str, int] = {}  # vLLM request id -> Kairos request id

    def sync(self, candidates: Sequence[VllmRequest]) -> RequestQueue:
        """The queue holding exactly ``candidates`` (new ones in the order given)."""
        kept, queue = self._kept, self.queue
        seen = {v.request_id for v in candidates}
        for vid in kept.keys() - seen:
            queue.discard(kept.pop(vid))
        if len(kept) < len(seen):
            new = seen - kept.keys()
            for v in candidates:
                if v.request_id in new:
                    r = self.mirror.get(v)
                    (queue.append_front if r.preemptions else queue.append)(r, r.context_tokens)
                    kept[v.request_id] = r.id
        return queue


@dataclass(slots=True)
class PrefillState:
    """``PrefillView`` of a vLLM prefill instance: its waiting queue, budget and free KV."""

    waiting: list[Request]
    max_batch_tokens: int
    max_batch_requests: int
    kv_free_tokens: int
    instance_id: int = 0


class DecodeState:
    """``DecodeView`` of a vLLM decode instance at a step boundary.

    ``waiting`` holds the requests the policy may admit (KV received or receivable);
    ``transferring`` counts the ones it admitted whose KV is still arriving. Waiting requests
    may already hold KV blocks in vLLM (an asynchronous pull allocates them), so their
    context is counted as free here: admitting them costs the policy that memory, as in the
    simulator, instead of being charged twice.
    """

    __slots__ = (
        "instance_id",
        "kv_capacity_tokens",
        "kv_free_tokens",
        "kv_tokens",
        "max_batch_size",
        "running",
        "transferring",
        "waiting",
        "waiting_tokens",
    )

    def __init__(
        self,
        *,
        running: list[Request],
        waiting: Collection[Request],
        transferring: int,
        kv_capacity_tokens: int,
        kv_free_tokens: int,
        max_batch_size: int,
        instance_id: int = 0,
    ) -> None:
        self.instance_id = instance_id
        self.running = running
        self.waiting = waiting
        self.transferring = transferring
        self.kv_capacity_tokens = kv_capacity_tokens
        self.kv_free_tokens = kv_free_tokens
        self.max_batch_size = max_batch_size
        self.kv_tokens = sum(r.prompt_tokens + r.output_tokens for r in running)
        self.waiting_tokens = (
            waiting.tokens
            if isinstance(waiting, RequestQueue)
            else sum(r.prompt_tokens + r.output_tokens for r in waiting)
        )

    def generated(self, request: Request) -> int:
        return request.output_tokens
