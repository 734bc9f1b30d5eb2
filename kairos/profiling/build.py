"""Turn measured points into a profile file: the same JSON the shipped profiles use.

The fit is the shipped profiles' (``kairos.profiles.regress``): non-negative least squares on
relative error, 20% of the points held out for the reported MAPE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kairos.core.latency.profile import ModelSpec
from kairos.profiles.regress import fit_relative
from kairos.profiling.measure import DecodePoint, PrefillPoint

SIG_DIGITS = 6


def _sig(x: float) -> float:
    return float(f"{x:.{SIG_DIGITS}g}")


@dataclass(frozen=True, slots=True)
class EngineFacts:
    """What the profile needs beyond step times (from the model's config and engine flags)."""

    name: str
    description: str
    model: ModelSpec
    hardware: str
    kv_capacity_tokens: int
    max_batch_tokens: int
    max_batch_size: int
    max_context_tokens: int
    kv_delta0: float
    kv_bandwidth: float


def fit_prefill(points: Sequence[PrefillPoint]) -> tuple[dict[str, float], dict[str, Any]]:
    x = np.array([[1.0, p.sum_tokens, p.sum_sq_tokens] for p in points])
    t = np.array([p.seconds for p in points])
    coef, err = fit_relative(x, t)
    return {k: _sig(v) for k, v in zip(("c0", "c1", "c2"), coef, strict=True)}, err


def fit_decode(points: Sequence[DecodePoint]) -> tuple[dict[str, float], dict[str, Any]]:
    x = np.array([[1.0, p.batch_size, p.kv_tokens] for p in points])
    t = np.array([p.seconds for p in points])
    coef, err = fit_relative(x, t)
    if coef[0] <= 0:  # the model requires d0 > 0 (an empty step still costs something)
        coef[0] = float(t.min()) * 1e-3
    return {k: _sig(v) for k, v in zip(("d0", "d1", "d2"), coef, strict=True)}, err


def build(
    facts: EngineFacts,
    prefill: Sequence[PrefillPoint],
    decode: Sequence[DecodePoint],
    source: dict[str, Any],
) -> dict[str, Any]:
    pc, perr = fit_prefill(prefill)
    dc, derr = fit_decode(decode)
    perr["points"] = [[list(p.lengths), _sig(p.seconds)] for p in prefill]
    derr["points"] = [[p.batch_size, p.kv_tokens, _sig(p.seconds)] for p in decode]
    return {
        "name": facts.name,
        "description": facts.description,
        "model": dataclasses.asdict(facts.model),
        "hardware": {"gpu": facts.hardware, "num_gpus": 1},
        "kv_capacity_tokens": facts.kv_capacity_tokens,
        "model_limits": {"max_context_tokens": facts.max_context_tokens},
        "prefill": {"coefficients": pc, "max_batch_tokens": facts.max_batch_tokens},
        "decode": {"coefficients": dc, "max_batch_size": facts.max_batch_size},
        "kv_transfer": {"delta0": facts.kv_delta0, "bandwidth_bytes_per_s": facts.kv_bandwidth},
        "source": source,
        "fit_error": {
            "prefill": perr,
            "decode": derr,
            "kv_transfer": {
                "fitted": False,
                "note": "not measured by kairos profile; set with --kv-delta0/--kv-bandwidth",
            },
        },
    }
