"""Rate sweep, SLO-scale sweep, DistServe-style goodput search and the ablation ladder."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kairos.experiments.runner import Point, run_all, run_point_latencies
from kairos.experiments.workloads import WORKLOADS

Row = dict[str, Any]
BASELINE = ("fcfs", "fcfs")
PAIRS = (
    ("fcfs", "fcfs"),
    ("sjf", "fcfs"),
    ("edf", "fcfs"),
    ("edf-relegate", "fcfs"),
    ("fcfs", "static-cap"),
    ("edf-relegate", "static-cap"),
    ("kairos", "fcfs"),
    ("kairos", "kairos"),
)
# Ablation rungs: (prefill, decode, predictor).
LADDER = (
    ("fcfs", "fcfs", "fitted"),
    ("sjf", "fcfs", "fitted"),
    ("edf", "fcfs", "fitted"),
    ("edf-relegate", "fcfs", "fitted"),
    ("kairos", "fcfs", "fitted"),
    ("kairos", "kairos", "uncorrected"),
    ("kairos", "kairos", "fitted"),
    ("kairos", "kairos", "oracle"),
)
# Ground truths for the ablation: (name, truth_scale, noise). "exact" is the truth of every
# other experiment (the profile, 5% noise); "mismatched" is a GPU 25% slower than profiled with
# 15% noise, run at 1/1.25 of the rate so the load is the same, which is where prediction error
# and online correction matter.
TRUTHS = (("exact", 1.0, 0.05), ("mismatched", 1.25, 0.15))
GOODPUT_PAIRS = (
    ("fcfs", "fcfs"),
    ("sjf", "fcfs"),
    ("edf-relegate", "static-cap"),
    ("kairos", "kairos"),
)
# Chunk size for the chunked-prefill comparison (vLLM's default max_num_batched_tokens for
# chunked prefill on large GPUs is of this order).
CHUNK = 2048
METRICS = (
    "ttft_attainment",
    "tpot_attainment",
    "joint_attainment",
    "decode_throughput",
    "p99_ttft_ms",
    "p99_tpot_ms",
    "p99_itl_ms",
)
# Kairos decode's two modes, compared on their own (kairos prefill in front of both).
MODES = (("kairos", "kairos"), ("kairos", "kairos-b"))


def mean_over_seeds(rows: Sequence[Row], keys: Sequence[str]) -> list[Row]:
    """Average the metrics of rows that differ only by seed."""
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    out = []
    for key, members in groups.items():
        row = dict(zip(keys, key, strict=True))
        for m in METRICS:
            values = [x[m] for x in members if x[m] is not None]
            row[m] = float(np.mean(values)) if values else None
        row["seeds"] = len(members)
        out.append(row)
    return out


def rate_sweep(
    workloads: Sequence[str],
    instances: Sequence[int],
    seeds: Sequence[int],
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    points = [
        Point(w, scale, p, d, instances=n, seed=s)
        for w in workloads
        for n in instances
        for scale in WORKLOADS[w].rate_scales
        for p, d in PAIRS
        for s in seeds
    ]
    return _collect(points, progress)


def slo_sweep(
    workloads: Sequence[str],
    rates: dict[str, float],
    seeds: Sequence[int],
    instances: int = 1,
    scales: Sequence[float] = (0.5, 0.75, 1.0, 1.5, 2.0),
    progress: Callable[[Row], None] | None = None,
) -> list[Row]:
    points = [
        Point(w, rates[w], p, d, instances=instances, slo_scale=k, seed=s)
        for w in workloads
        for k in scales
        for p, d in PAIRS
        for s in seeds
    ]
    return _collect(points, progress)


def operating_rate(rows: Sequence[Row], workload: str, instances: int) -> float:
    """The swept rate where FCFS + continuous batching is closest to 60% joint attainment."""
    base = [
        r
        for r in mean_over_seeds(rows, ("workload", "instances", "rate_scale", "prefill", "decode"))
        if r["workload"] == workload
        and r["instances"] == instances
        and (r["prefill"], r["decode"]) == BASELINE
    ]
    return float(min(base, key=lambda r: abs(r["joint_attainment"] - 0.6))["rate_scale"])


def goodput(
    workloads: Sequence[str],
    instances: Sequence[int],
    seeds: Sequence[int],
    iterations: int = 7,
    target: float = 0.9,
) -> list[Row]:
    """Highest rate scale with mean joint attainment >= target, by bisection (in lockstep).

    Where no rate tried met the target (some requests cannot meet their SLO even alone),
    the goodput is ``None`` and ``below_rate_scale`` is the lowest rate tried: the search's
    lower bound is not a measurement."""
    floor = 0.05
    searches = {
        (w, n, p, d): [floor, 2.0 * max(WORKLOADS[w].rate_scales)]
        for w in workloads
        for n in instances
        for p, d in GOODPUT_PAIRS
    }
    for _ in range(iterations):
        mids = {k: (lo + hi) / 2 for k, (lo, hi) in searches.items()}
        points = [
            Point(w, mids[(w, n, p, d)], p, d, instances=n, seed=s)
            for (w, n, p, d) in searches
            for s in seeds
        ]
        joint: dict[tuple[Any, ...], list[float]] = defaultdict(list)
        for r in run_all(points):
            joint[(r["workload"], r["instances"], r["prefill"], r["decode"])].append(
                r["joint_attainment"]
            )
        for k, values in joint.items():
            lo_hi = searches[k]
            lo_hi[0 if np.mean(values) >= target else 1] = mids[k]
    rows: list[Row] = []
    for (w, n, p, d), (lo, hi) in searches.items():
        ok = lo > floor  # the lower end moves only to a rate that met the target
        rows.append(
            {
                "workload": w,
                "instances": n,
                "prefill": p,
                "decode": d,
                "goodput_rate_scale": lo if ok else None,
                "goodput_req_s": lo * n * base_rate(w) if ok else None,
                "below_rate_scale": None if ok else hi,
            }
        )
    return rows


def base_rate(workload: str) -> float:
    return WORKLOADS[workload].trace_for(0, 1.0).rate


def ablation(
    workloads: Sequence[str],
    instances: Sequence[int],
    seeds: Sequence[int],
    rates: dict[tuple[str, int], float],
) -> list[Row]:
    """The ladder at each workload's operating rate, under each ground truth."""
    points = [
        Point(
            w,
            rates[(w, n)] / scale,
            p,
            d,
            instances=n,
            seed=s,
            noise=noise,
            truth_scale=scale,
            predictor=predictor,
        )
        for w in workloads
        for n in instances
        for _, scale, noise in TRUTHS
        for p, d, predictor in LADDER
        for s in seeds
    ]
    rows = _collect(points, None)
    names = {scale: name for name, scale, _ in TRUTHS}
    for r in rows:
        r["truth"] = names[r["truth_scale"]]
    return rows


def chunked(
    workloads: Sequence[str],
    instances: Sequence[int],
    seeds: Sequence[int],
    rates: dict[tuple[str, int], float],
    chunk: int = CHUNK,
) -> list[Row]:
    """Every pair at the operating rate with chunked prefill (all policies get the same)."""
    points = [
        Point(w, rates[(w, n)], p, d, instances=n, seed=s, prefill_chunk=chunk)
        for w in workloads
        for n in instances
        for p, d in PAIRS
        for s in seeds
    ]
    return _collect(points, None)


def decode_modes(
    workloads: Sequence[str],
    instances: Sequence[int],
    seeds: Sequence[int],
    rates: dict[tuple[str, int], float],
) -> list[Row]:
    """Mode A against mode B at the operating rate and at the top of the rate sweep."""
    points = [
        Point(w, scale, p, d, instances=n, seed=s)
        for w in workloads
        for n in instances
        for scale in sorted({rates[(w, n)], max(WORKLOADS[w].rate_scales)})
        for p, d in MODES
        for s in seeds
    ]
    return _collect(points, None)


def latency_cdfs(
    workloads: Sequence[str],
    rates: dict[tuple[str, int], float],
    seed: int = 0,
    instances: int = 1,
) -> list[Row]:
    """Per-request TTFT/TPOT at the NPND operating rate, for the goodput pairs (one seed)."""
    points = [
        Point(w, rates[(w, instances)], p, d, instances=instances, seed=seed)
        for w in workloads
        for p, d in GOODPUT_PAIRS
    ]
    return list(run_all(points, job=run_point_latencies))


def _collect(points: list[Point], progress: Callable[[Row], None] | None) -> list[Row]:
    rows = []
    for row in run_all(points):
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows
