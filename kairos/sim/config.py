"""Cluster configuration for a simulation run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    prefill_instances: int = 1
    decode_instances: int = 1
    # DistServe batches at most this many prompts per prefill step.
    max_prefill_batch_requests: int = 64
    # Overrides of the profile's limits (None: use the profile's).
    max_prefill_batch_tokens: int | None = None
    max_decode_batch_size: int | None = None
    # Chunked prefill: at most this many prompt tokens per prefill iteration, and the prefill
    # policy re-plans at every chunk boundary (None: whole prompts, the DistServe default).
    prefill_chunk_tokens: int | None = None
    # Log-normal noise (sigma) on true step times, per prefill batch and per decode run of
    # steps: the profile is otherwise the ground truth and the predictor would be exact.
    noise: float = 0.0
    # The truth runs this much slower than the profile predicts (online correction's job).
    truth_scale: float = 1.0
    # Who emits the first token. False: the prefill instance (DistServe's convention, and
    # ``kairos serve``'s emulated engine). True: the decode instance, as in vLLM's P/D proxy,
    # which drops the prefill instance's token; the decode instance then emits every output
    # token, the first one after the KV hand-off and its first step with the request. The
    # profile's KV transfer model is then the measured hand-off (``kairos profile --handoff``).
    first_token_on_decode: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.prefill_instances < 1:
            raise ValueError(f"prefill_instances must be >= 1, got {self.prefill_instances}")
        if self.decode_instances < 1:
            raise ValueError(f"decode_instances must be >= 1, got {self.decode_instances}")
        if self.max_prefill_batch_requests < 1:
            raise ValueError(
                f"max_prefill_batch_requests must be >= 1, got {self.max_prefill_batch_requests}"
            )
        if self.prefill_chunk_tokens is not None and self.prefill_chunk_tokens < 1:
            raise ValueError(
                f"prefill_chunk_tokens must be >= 1 or None, got {self.prefill_chunk_tokens}"
            )
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"noise must be in [0, 1), got {self.noise}")
        if not self.truth_scale > 0:
            raise ValueError(f"truth_scale must be positive, got {self.truth_scale}")
