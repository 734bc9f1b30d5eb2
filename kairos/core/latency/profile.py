"""A calibrated hardware profile: one model on one GPU (or TP group), with its fitted models.

Profiles are plain JSON files (see ``kairos/profiles/data``); this module only validates the
parsed dictionary, so the core stays free of I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kairos.core.latency.decode import DecodeModel
from kairos.core.latency.kv_transfer import KVTransferModel
from kairos.core.latency.prefill import PrefillModel


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int = 2

    @property
    def kv_bytes_per_token(self) -> int:
        # K and V, every layer, every KV head.
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    model: ModelSpec
    gpu: str
    num_gpus: int
    kv_capacity_tokens: int
    prefill: PrefillModel
    decode: DecodeModel
    kv_transfer: KVTransferModel
    max_prefill_batch_tokens: int
    max_decode_batch_size: int
    max_context_tokens: int
    source: dict[str, Any] = field(default_factory=dict)
    fit_error: dict[str, Any] = field(default_factory=dict)
    # Seconds a decode step takes longer for each request that joins the batch at it. vLLM's
    # P/D decode instance loads the request's KV and recomputes the prompt's last partial
    # block inside that step, so every running request waits for it (measured in situ by
    # ``kairos profile --from-steps``). 0 where joining costs nothing beyond the KV transfer.
    decode_join: float = 0.0

    def __post_init__(self) -> None:
        if self.kv_capacity_tokens <= 0:
            raise ValueError(f"profile {self.name}: kv_capacity_tokens must be positive")
        if self.max_prefill_batch_tokens <= 0 or self.max_decode_batch_size <= 0:
            raise ValueError(f"profile {self.name}: batch limits must be positive")
        if not self.decode_join >= 0.0:
            raise ValueError(f"profile {self.name}: decode join_seconds must be >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        try:
            model = ModelSpec(**d["model"])
            return cls(
                name=d["name"],
                description=d.get("description", ""),
                model=model,
                gpu=d["hardware"]["gpu"],
                num_gpus=int(d["hardware"]["num_gpus"]),
                kv_capacity_tokens=int(d["kv_capacity_tokens"]),
                prefill=PrefillModel(**d["prefill"]["coefficients"]),
                decode=DecodeModel(**d["decode"]["coefficients"]),
                kv_transfer=KVTransferModel(
                    delta0=float(d["kv_transfer"]["delta0"]),
                    bytes_per_token=model.kv_bytes_per_token,
                    bandwidth=float(d["kv_transfer"]["bandwidth_bytes_per_s"]),
                ),
                max_prefill_batch_tokens=int(d["prefill"]["max_batch_tokens"]),
                max_decode_batch_size=int(d["decode"]["max_batch_size"]),
                max_context_tokens=int(d["model_limits"]["max_context_tokens"]),
                source=d.get("source", {}),
                fit_error=d.get("fit_error", {}),
                decode_join=float(d["decode"].get("join_seconds", 0.0)),
            )
        except KeyError as e:
            raise ValueError(f"profile {d.get('name', '?')}: missing field {e}") from None
