"""Cluster configuration for a simulation run."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """Fixed latencies of the messages between the client, the scheduler and the instances,
    in seconds (all 0 by default: next to a GPU's steps a cluster's RPCs are small).

    A serving stack on one host pays a fraction of a millisecond per hop
    (``benchmarks/differential.py`` measures ``kairos serve``'s on each run), and the
    prefill instances pay two of them per batch: the batch reaches the instance
    ``dispatch`` after the decision, and the scheduler hears that it ended ``report``
    after, only then freeing the instance, placing its requests and deciding again.
    Not modelled: the hand-off's own hop to the decode instance, and the decode
    instances' reports to the scheduler (placement reads them as of ``report`` ago, but a
    boundary already simulated in between stays applied).
    """

    ingress: float = 0.0  # client sends -> the request is in the prefill queue
    dispatch: float = 0.0  # a prefill decision -> its batch starts on the instance
    report: float = 0.0  # an instance emits tokens -> the scheduler reads them
    egress: float = 0.0  # the scheduler reads a token -> the client reads it

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"control-plane latency {f.name} must be >= 0, got {value} s")

    @property
    def delivery(self) -> float:
        """From an instance's emitting a token to the client's reading it."""
        return self.report + self.egress

    @classmethod
    def parse(cls, text: str) -> ControlPlane:
        """``ingress=0.6,dispatch=0.3,...`` in milliseconds (legs left out are 0)."""
        legs: dict[str, float] = {}
        names = {f.name for f in fields(cls)}
        for item in filter(None, (x.strip() for x in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep or name.strip() not in names:
                raise ValueError(
                    f"control-plane latency {item!r}: expected NAME=MS with NAME one of "
                    f"{', '.join(sorted(names))}"
                )
            try:
                legs[name.strip()] = float(value) / 1e3
            except ValueError:
                raise ValueError(
                    f"control-plane latency {item!r}: {value!r} is not a number"
                ) from None
        return cls(**legs)


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
    control: ControlPlane = ControlPlane()
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
