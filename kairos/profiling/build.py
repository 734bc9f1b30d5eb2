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

from kairos.core.latency.profile import ModelSpec, Profile
from kairos.profiles.regress import fit_absolute, fit_relative
from kairos.profiling.measure import DecodePoint, HandoffPoint, PrefillPoint

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
    return fit_prefill_columns(
        np.array([p.sum_tokens for p in points], dtype=float),
        np.array([p.sum_sq_tokens for p in points], dtype=float),
        np.array([p.seconds for p in points]),
    )


def fit_prefill_columns(
    sum_tokens: np.ndarray,
    sum_sq_tokens: np.ndarray,
    seconds: np.ndarray,
    *,
    absolute: bool = False,
) -> tuple[dict[str, float], dict[str, Any]]:
    """``t_P(s, s2) = c0 + c1 * s + c2 * s2`` on batches given as columns (relative error, or
    with ``absolute`` absolute error: see :func:`kairos.profiles.regress.fit_absolute`)."""
    return _fit_linear(
        ("c0", "c1", "c2"), sum_tokens, sum_sq_tokens, seconds, positive=False, absolute=absolute
    )


def fit_decode(points: Sequence[DecodePoint]) -> tuple[dict[str, float], dict[str, Any]]:
    return fit_decode_columns(
        np.array([p.batch_size for p in points], dtype=float),
        np.array([p.kv_tokens for p in points], dtype=float),
        np.array([p.seconds for p in points]),
    )


def fit_decode_columns(
    batch_size: np.ndarray, kv_tokens: np.ndarray, seconds: np.ndarray, *, absolute: bool = False
) -> tuple[dict[str, float], dict[str, Any]]:
    """``t_D(B, K) = d0 + d1 * B + d2 * K`` on steps given as columns (error as for prefill)."""
    # The decode model requires d0 > 0 (an empty step still costs something).
    return _fit_linear(
        ("d0", "d1", "d2"), batch_size, kv_tokens, seconds, positive=True, absolute=absolute
    )


def _fit_linear(
    names: tuple[str, str, str],
    u: np.ndarray,
    v: np.ndarray,
    seconds: np.ndarray,
    *,
    positive: bool,
    absolute: bool,
) -> tuple[dict[str, float], dict[str, Any]]:
    """``seconds ~ a + b * u + c * v`` (coefficients >= 0), named ``names``; with ``positive``
    a zero constant is raised to a thousandth of the fastest step."""
    fit = fit_absolute if absolute else fit_relative
    coef, err = fit(np.column_stack([np.ones(len(seconds)), u, v]), seconds)
    if positive and coef[0] <= 0:
        coef[0] = float(seconds.min()) * 1e-3
    return {name: _sig(c) for name, c in zip(names, coef, strict=True)}, err


# A hand-off with no measurable per-byte cost gets this bandwidth (the model needs one > 0).
UNMEASURABLE_BANDWIDTH = 1e15


@dataclass(frozen=True, slots=True)
class HandoffFit:
    kv_transfer: dict[str, float]  # the profile's "kv_transfer" block
    prefill: dict[str, float] | None  # refitted prefill coefficients (P legs known), or None
    errors: dict[str, dict[str, Any]]  # "kv_transfer" and, with P legs, "prefill"


def fit_handoff(profile: Profile, points: Sequence[HandoffPoint]) -> HandoffFit:
    """Fit what a P/D pair adds to the profile's step times, from requests sent alone.

    Where the proxy reports the P leg (``Server-Timing``), the prefill model is refitted on the
    P legs: on the P instance a prefill also saves the KV for the connector, and the P legs
    reach longer prompts than the single-instance grid. The hand-off is the rest of the
    response time beyond the P leg and the decode instance's first step (batch of one), fitted
    as ``delta0 + bytes / bandwidth`` (``kairos sim --first-token decode``).
    """
    tokens = np.array([p.tokens for p in points], dtype=float)
    seconds = np.array([p.seconds for p in points])
    errors: dict[str, dict[str, Any]] = {}
    legs = [p.prefill_seconds for p in points]
    prefill_coef: dict[str, float] | None = None
    if all(leg is not None for leg in legs):
        p_leg = np.array(legs, dtype=float)
        alone = [
            PrefillPoint((p.tokens,), leg) for p, leg in zip(points, p_leg.tolist(), strict=True)
        ]
        prefill_coef, errors["prefill"] = fit_prefill(alone)
        errors["prefill"]["what"] = "P legs of lone requests through the P/D pair (KV saved)"
        errors["prefill"]["points"] = [[a.sum_tokens, _sig(a.seconds)] for a in alone]
    else:
        p_leg = np.array([profile.prefill.time_one(p.tokens) for p in points])
    first_step = np.array([profile.decode.step_time(1, p.tokens) for p in points])
    extra = seconds - p_leg - first_step
    if (extra <= 0).any():
        worst = points[int(extra.argmin())]
        raise ValueError(
            f"a {worst.tokens}-token request took {worst.seconds * 1e3:.0f} ms through the P/D "
            "pair, no more than its prefill and the profile's first decode step"
        )
    x = np.column_stack([np.ones(len(points)), tokens * profile.kv_transfer.bytes_per_token])
    coef, err = fit_relative(x, extra)
    bandwidth = 1.0 / coef[1] if coef[1] > 0 else UNMEASURABLE_BANDWIDTH
    err["points"] = [
        [p.tokens, _sig(p.seconds), _sig(e)] for p, e in zip(points, extra.tolist(), strict=True)
    ]
    err["columns"] = ["prompt tokens", "response s", "hand-off s"]
    err["fitted"] = True
    err["what"] = (
        "P/D hand-off: response time of a lone request minus its P leg and one decode step "
        "(kairos sim --first-token decode)"
    )
    errors["kv_transfer"] = err
    kv = {"delta0": _sig(float(coef[0])), "bandwidth_bytes_per_s": _sig(bandwidth)}
    return HandoffFit(kv, prefill_coef, errors)


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
