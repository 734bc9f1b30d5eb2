"""Pure transforms of a ``Trace``: time scaling, slicing, length scaling and capping.

Each returns a new trace (the input is immutable) and appends what it did to ``source``, so a
benchmark report can say exactly which workload it ran.
"""

from __future__ import annotations

import math

import numpy as np

from kairos.traces.trace import Trace


def _derived(
    trace: Trace,
    note: str,
    arrivals: np.ndarray,
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
) -> Trace:
    source = f"{trace.source}; {note}" if trace.source else note
    return Trace(trace.name, arrivals, input_tokens, output_tokens, source)


def _rebased(trace: Trace, rows: slice, note: str) -> Trace:
    arrivals = trace.arrivals[rows]
    if arrivals.size:
        arrivals = arrivals - arrivals[0]  # the Trace invariant: the first request arrives at 0
    return _derived(trace, note, arrivals, trace.input_tokens[rows], trace.output_tokens[rows])


def time_scale(trace: Trace, rate_scale: float) -> Trace:
    """Multiply the request rate by ``rate_scale`` (inter-arrival gaps are divided by it).

    Lengths and order are unchanged, so the burst structure of a real trace is preserved at a
    higher or lower load; this is how load sweeps over a real trace are usually built.
    """
    if not (math.isfinite(rate_scale) and rate_scale > 0):
        raise ValueError(f"rate_scale must be a positive finite number, got {rate_scale!r}")
    return _derived(
        trace,
        f"time_scale x{rate_scale:g}",
        trace.arrivals / rate_scale,
        trace.input_tokens,
        trace.output_tokens,
    )


def scale_to_rate(trace: Trace, rate: float) -> Trace:
    """Time-scale the trace so that its mean rate ``(n - 1) / duration`` equals ``rate``."""
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive finite number of req/s, got {rate!r}")
    if not (math.isfinite(trace.rate) and trace.rate > 0):
        raise ValueError(
            f"trace {trace.name!r} has rate {trace.rate!r} ({len(trace)} requests over "
            f"{trace.duration} s); it cannot be scaled to a target rate"
        )
    return time_scale(trace, rate / trace.rate)


def slice_time(trace: Trace, start: float, end: float) -> Trace:
    """The requests arriving in ``[start, end)`` seconds, rebased so the first arrives at 0."""
    if not (start <= end):
        raise ValueError(f"slice_time needs start <= end, got start={start!r}, end={end!r}")
    lo, hi = np.searchsorted(trace.arrivals, [start, end], side="left")
    return _rebased(trace, slice(int(lo), int(hi)), f"slice_time [{start:g}, {end:g}) s")


def slice_count(trace: Trace, count: int, start: int = 0) -> Trace:
    """Requests ``start .. start + count - 1`` (0-based), rebased so the first arrives at 0."""
    if count < 0 or start < 0:
        raise ValueError(f"slice_count needs count >= 0 and start >= 0, got {count=}, {start=}")
    if start + count > len(trace):
        # An error, not a silently shorter trace: a benchmark asked for N requests should run N.
        raise ValueError(
            f"slice_count(count={count}, start={start}) runs past the end of trace "
            f"{trace.name!r}, which has {len(trace)} requests"
        )
    return _rebased(trace, slice(start, start + count), f"slice_count {count} from #{start}")


def cap_lengths(trace: Trace, max_input: int, max_output: int) -> Trace:
    """Clip prompt and output lengths, e.g. to fit a small model's context window."""
    if max_input < 1 or max_output < 1:
        raise ValueError(f"caps must be >= 1, got max_input={max_input}, max_output={max_output}")
    return _derived(
        trace,
        f"cap_lengths input<={max_input} output<={max_output}",
        trace.arrivals,
        np.minimum(trace.input_tokens, max_input),
        np.minimum(trace.output_tokens, max_output),
    )


def scale_lengths(trace: Trace, factor: float) -> Trace:
    """Multiply every prompt and output length by ``factor`` (rounded, at least 1 token).

    Shrinks a production trace to what a small engine can serve (a 135M model on a CPU) while
    keeping the shape of its long tail, which capping would flatten.
    """
    if not factor > 0 or not math.isfinite(factor):
        raise ValueError(f"length scale must be a positive number, got {factor!r}")
    return _derived(
        trace,
        f"scale_lengths x{factor:g}",
        trace.arrivals,
        np.maximum(1, np.rint(trace.input_tokens * factor)).astype(np.int64),
        np.maximum(1, np.rint(trace.output_tokens * factor)).astype(np.int64),
    )


def select(
    trace: Trace,
    *,
    start: float = 0.0,
    duration: float | None = None,
    num_requests: int | None = None,
    rate_scale: float = 1.0,
    length_scale: float = 1.0,
    max_input: int | None = None,
    max_output: int | None = None,
    min_input: int | None = None,
) -> Trace:
    """The slice ``kairos sim`` and ``kairos bench`` run: a time window, then the first
    ``num_requests``, then the rate scaled, the lengths scaled and capped. An empty selection
    is an error."""
    if start or duration is not None:
        trace = slice_time(trace, start, start + duration if duration is not None else float("inf"))
    if num_requests is not None:
        trace = slice_count(trace, min(num_requests, len(trace)))
    if rate_scale != 1.0:
        trace = time_scale(trace, rate_scale)
    if len(trace) == 0:
        raise ValueError("the selected slice of the trace has no requests")
    if length_scale != 1.0:
        trace = scale_lengths(trace, length_scale)
    if max_input is not None or max_output is not None:
        trace = cap_lengths(
            trace,
            max_input or int(trace.input_tokens.max()),
            max_output or int(trace.output_tokens.max()),
        )
    if min_input is not None:
        trace = _derived(
            trace,
            f"min_input {min_input}",
            trace.arrivals,
            np.maximum(trace.input_tokens, min_input),
            trace.output_tokens,
        )
    return trace
