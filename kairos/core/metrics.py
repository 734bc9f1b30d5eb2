"""Run-level metrics from request records (spec section 7), in one flat JSON-able dict.

Field names follow the result JSON of ``vllm bench serve`` where it has one (``completed``,
``request_throughput``, ``mean_ttft_ms``, ``p99_tpot_ms``, ``request_goodput``, ...), so Kairos
runs and vLLM benchmark runs can be read by the same scripts. Kairos adds SLO attainment over
all requests, decode throughput per instance over a steady window, and predictor MAPE.

Per-request TTFT, TPOT, E2E and SLO outcomes come from :class:`RequestRecord` properties only;
this module aggregates them and never re-derives them. Latencies are reported in ms, attainment
as fractions in [0, 1]. A statistic with no samples is ``None`` (never NaN: the JSON must load
in strict parsers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from kairos.core.record import FloatArray, RequestRecord

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PERCENTILES: tuple[int, ...] = (50, 90, 99)
# The default steady window runs from the time 10% of requests have arrived to the time 90% have.
STEADY_QUANTILES: tuple[float, float] = (0.1, 0.9)


def summarize(
    records: Sequence[RequestRecord],
    *,
    num_decode_instances: int,
    steady_window: tuple[float, float] | None = None,
    predictor_mape: Mapping[str, float | None] | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """Aggregate one run's records into the summary written to ``summary.json``.

    Latency statistics (TTFT, TPOT, ITL, E2EL) cover finished requests, as vLLM's cover
    successful ones; TPOT statistics skip single-token requests, as vLLM's do. Attainment covers
    every request: a rejected or failed request misses its SLOs. ``failed`` keeps vLLM's meaning
    (requests that did not complete, i.e. ``num_rejected + num_failed``). ``extra`` fields (run
    labels, rates) are merged in and may not shadow a computed field.
    """
    if num_decode_instances < 1:
        raise ValueError(f"num_decode_instances must be >= 1, got {num_decode_instances}")
    times, owner = _flatten(records)
    finished = np.fromiter((r.finished for r in records), dtype=bool, count=len(records))
    duration = _duration(records, times)

    summary: dict[str, Any] = _counts(records, duration)
    summary.update(_latency_stats(records, times, owner, finished))
    summary.update(_attainment(records, duration))
    summary.update(_decode_throughput(records, times, owner, num_decode_instances, steady_window))
    for name, mape in (predictor_mape or {}).items():
        summary[f"predictor_mape_{name}"] = _finite(mape)
    for key, value in (extra or {}).items():
        if key in summary:
            raise ValueError(f"extra field {key!r} would overwrite a computed metric")
        summary[key] = value
    return summary


def _flatten(records: Sequence[RequestRecord]) -> tuple[FloatArray, IntArray]:
    """Every token time of every record in one array, with the index of its record.

    One concatenation lets ITL and window counting run as whole-array numpy operations; a
    per-record loop over 20k x 200 tokens would dominate the cost of a summary.
    """
    lengths = np.fromiter((len(r.token_times) for r in records), dtype=np.int64, count=len(records))
    if not lengths.sum():
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int64)
    times = np.concatenate([np.asarray(r.token_times, dtype=np.float64) for r in records])
    owner = np.repeat(np.arange(len(records), dtype=np.int64), lengths)
    return times, owner


def _duration(records: Sequence[RequestRecord], times: FloatArray) -> float | None:
    """First arrival to the last event (last token, or last arrival if that is later)."""
    if not records:
        return None
    arrivals = [r.arrival for r in records]
    end = max(max(arrivals), float(times.max())) if len(times) else max(arrivals)
    return end - min(arrivals)


def _counts(records: Sequence[RequestRecord], duration: float | None) -> dict[str, Any]:
    """Request and token counts and throughputs; tokens count for finished requests (as vLLM)."""
    done = [r for r in records if r.finished]
    num_rejected = sum(r.status == "rejected" for r in records)
    num_failed = sum(r.status == "failed" for r in records)
    total_in = sum(r.input_tokens for r in done)
    total_out = sum(r.output_tokens for r in done)
    return {
        "num_requests": len(records),
        "num_finished": len(done),
        "num_rejected": num_rejected,
        "num_failed": num_failed,
        "completed": len(done),
        "failed": len(records) - len(done),
        "duration": _finite(duration),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": _rate(len(done), duration),
        "output_throughput": _rate(total_out, duration),
        "total_token_throughput": _rate(total_in + total_out, duration),
    }


def _latency_stats(
    records: Sequence[RequestRecord], times: FloatArray, owner: IntArray, finished: BoolArray
) -> dict[str, float | None]:
    done = [r for r in records if r.finished]
    # vLLM leaves single-token requests out of TPOT statistics (their TPOT is 0 by convention,
    # which would drag the mean down); attainment still counts them, as met.
    tpot = [r.tpot for r in done if r.output_tokens > 1]
    # A gap is an ITL when both its tokens belong to the same finished request.
    keep = _continues_previous(owner)[1:] & finished[owner[1:]]
    stats: dict[str, float | None] = {}
    stats.update(_distribution("ttft", _seconds([r.ttft for r in done])))
    stats.update(_distribution("tpot", _seconds(tpot)))
    stats.update(_distribution("itl", np.diff(times)[keep]))
    stats.update(_distribution("e2el", _seconds([r.e2e for r in done])))
    return stats


def _seconds(values: Sequence[float | None]) -> FloatArray:
    """Samples as an array; None (a finished record without tokens) is no sample."""
    return np.array([v for v in values if v is not None], dtype=np.float64)


def _continues_previous(owner: IntArray) -> BoolArray:
    """For each token, whether the token before it in ``times`` belongs to the same record."""
    same = np.zeros(len(owner), dtype=bool)
    same[1:] = owner[1:] == owner[:-1]
    return same


def _distribution(name: str, seconds: FloatArray) -> dict[str, float | None]:
    """mean/median/std/pN of one metric in ms, as vLLM names them; all None with no samples."""
    keys = [f"mean_{name}_ms", f"median_{name}_ms", f"std_{name}_ms"]
    keys += [f"p{p}_{name}_ms" for p in PERCENTILES]
    if not len(seconds):
        return dict.fromkeys(keys)
    ms = seconds * 1e3
    # Linear interpolation, numpy's default and what vLLM's np.percentile calls use. The median
    # is the 50th percentile of the same call: one partition of the (millions of) ITL samples.
    pcts = np.percentile(ms, (50, *PERCENTILES))
    values = [np.mean(ms), pcts[0], np.std(ms), *pcts[1:]]
    return {key: _finite(float(v)) for key, v in zip(keys, values, strict=True)}


def _attainment(records: Sequence[RequestRecord], duration: float | None) -> dict[str, Any]:
    """SLO attainment over all requests, and goodput (requests meeting both SLOs per second)."""
    n = len(records)
    # Joint is RequestRecord.slo_met (both met), combined here from the two flags already in
    # hand rather than asking each record again: these property calls are most of the cost of
    # a summary of a 20k-request run.
    met = [(r.ttft_met, r.tpot_met) for r in records]
    ttft_met = sum(t for t, _ in met)
    tpot_met = sum(p for _, p in met)
    joint_met = sum(t and p for t, p in met)
    goodput = _rate(joint_met, duration)
    return {
        "ttft_attainment": ttft_met / n if n else None,
        "tpot_attainment": tpot_met / n if n else None,
        "joint_attainment": joint_met / n if n else None,
        "request_goodput": goodput,
        "goodput": goodput,
    }


def _decode_throughput(
    records: Sequence[RequestRecord],
    times: FloatArray,
    owner: IntArray,
    num_decode_instances: int,
    steady_window: tuple[float, float] | None,
) -> dict[str, float | None]:
    """Decode-emitted tokens per second per decode instance inside the steady window.

    Why a window: while the trace ramps up and drains, decode batches are still filling or
    emptying, so a whole-run average understates what the instances sustain under load and
    varies with trace length. Counting only tokens emitted while arrivals are in steady flow
    measures the loaded regime. Token 1 is emitted by the prefill, so only tokens 2..n count.
    Tokens of every request count (a failed request's tokens still cost decode time).
    """
    window = steady_window if steady_window is not None else _default_window(records)
    if window is None:
        return {"decode_throughput": None, "steady_window_start": None, "steady_window_end": None}
    lo, hi = window
    if not hi > lo:
        raise ValueError(f"steady_window must have end > start, got {steady_window}")
    decode_times = times[_continues_previous(owner)]
    # Half-open [lo, hi) so adjacent windows never count a token twice.
    count = int(np.count_nonzero((decode_times >= lo) & (decode_times < hi)))
    return {
        "decode_throughput": count / (hi - lo) / num_decode_instances,
        "steady_window_start": lo,
        "steady_window_end": hi,
    }


def _default_window(records: Sequence[RequestRecord]) -> tuple[float, float] | None:
    """From the time 10% of requests have arrived to the time 90% have; None if empty."""
    if not records:
        return None
    arrivals = np.array([r.arrival for r in records], dtype=np.float64)
    # inverted_cdf picks the arrival at which the fraction arrived first reaches q.
    lo, hi = np.quantile(arrivals, STEADY_QUANTILES, method="inverted_cdf")
    return (float(lo), float(hi)) if hi > lo else None


def _rate(count: float, duration: float | None) -> float | None:
    # A vanishing (e.g. subnormal) duration overflows to inf, which JSON cannot hold.
    return _finite(count / duration) if duration is not None and duration > 0 else None


def _finite(value: float | None) -> float | None:
    """The value as a plain float, or None where JSON could not hold it (NaN, inf)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
