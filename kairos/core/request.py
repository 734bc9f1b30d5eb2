"""A request: counters, an ordered state and a timeline of timestamps.

Lifecycle (states only move forward, except a decode preemption)::

    WAITING_PREFILL --> PREFILLING --> WAITING_DECODE --> TRANSFERRING --> DECODING --> FINISHED
          |                                  ^                                |
          |                                  +-------- preempted -------------+
          +--> REJECTED (admission control)         any state --> FAILED (worker fault, cancel)

Prefill emits the first token (DistServe convention), so ``first_token == prefill_end`` and TTFT
is known when the prefill batch ends; the simulator can also model vLLM's P/D, where the decode
instance emits it (``ClusterConfig.first_token_on_decode``). After prefill the KV cache stays
on the prefill instance until a decode instance admits the request and pulls it over the link
(vLLM/NIXL pull model).

The true output length is deliberately *not* a field: only a runtime's worker may know it.
"""

from __future__ import annotations

from enum import IntEnum

from kairos.core.slo import SLO


class RequestState(IntEnum):
    WAITING_PREFILL = 0
    PREFILLING = 1
    WAITING_DECODE = 2
    TRANSFERRING = 3
    DECODING = 4
    FINISHED = 5
    REJECTED = 6
    FAILED = 7

    @property
    def is_terminal(self) -> bool:
        return self >= RequestState.FINISHED


class Request:
    """Mutable request state owned by one runtime; policies read it, never write it."""

    __slots__ = (
        "arrival",
        "cached_tokens",
        "decode_instance",
        "decode_start",
        "finish",
        "first_token",
        "id",
        "kv_end",
        "kv_start",
        "max_output_tokens",
        "output_tokens",
        "predicted_prefill",
        "preemptions",
        "prefill_end",
        "prefill_instance",
        "prefill_start",
        "prompt_tokens",
        "slo",
        "state",
        "tpot_slo",
        "ttft_slo",
    )

    def __init__(
        self,
        id: int,
        arrival: float,
        prompt_tokens: int,
        slo: SLO,
        *,
        cached_tokens: int = 0,
        max_output_tokens: int | None = None,
    ) -> None:
        if prompt_tokens < 1:
            raise ValueError(f"request {id}: prompt_tokens must be >= 1, got {prompt_tokens}")
        if not 0 <= cached_tokens < prompt_tokens:
            raise ValueError(
                f"request {id}: cached_tokens must be in [0, prompt_tokens), got {cached_tokens}"
            )
        self.id = id
        self.arrival = arrival
        self.prompt_tokens = prompt_tokens
        # Prompt tokens whose KV exists when the next prefill starts: prefix-cache hits, plus,
        # under chunked prefill, the chunks already prefilled. Policies size work by
        # ``prompt_tokens - cached_tokens``, so a half-prefilled prompt is a shorter job.
        self.cached_tokens = cached_tokens
        # A client-declared cap (e.g. max_tokens); a hint policies may use, not the truth.
        self.max_output_tokens = max_output_tokens
        self.slo = slo
        # Copied out of the SLO because the hot scheduling loops read them per request.
        self.ttft_slo = slo.ttft
        self.tpot_slo = slo.tpot
        self.state = RequestState.WAITING_PREFILL
        # Counters.
        self.output_tokens = 0
        self.preemptions = 0
        # Placement.
        self.prefill_instance: int | None = None
        self.decode_instance: int | None = None
        # Timeline (seconds, same origin as ``arrival``).
        self.prefill_start: float | None = None
        self.prefill_end: float | None = None
        self.first_token: float | None = None
        self.kv_start: float | None = None
        self.kv_end: float | None = None
        self.decode_start: float | None = None
        self.finish: float | None = None
        # What the prefill predictor said this request alone would take (for MAPE reports).
        self.predicted_prefill: float | None = None

    @property
    def uncached_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def ttft_deadline(self) -> float:
        return self.arrival + self.ttft_slo

    @property
    def decode_anchor(self) -> float:
        """Where per-token decode deadlines start: the first token, or the end of prefill
        while the decode instance has yet to emit it."""
        t = self.first_token if self.first_token is not None else self.prefill_end
        if t is None:
            raise ValueError(f"request {self.id} waits for decode but has not been prefilled")
        return t

    @property
    def context_tokens(self) -> int:
        """Tokens whose KV the request holds now (prompt plus generated so far)."""
        return self.prompt_tokens + self.output_tokens

    def __repr__(self) -> str:
        return (
            f"Request(id={self.id}, state={self.state.name}, prompt={self.prompt_tokens}, "
            f"out={self.output_tokens}, arrival={self.arrival:.3f})"
        )
