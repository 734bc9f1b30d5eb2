"""One simulation per point; points run in parallel on every core, results in order."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from kairos.core.metrics import summarize
from kairos.core.slo import SLO
from kairos.experiments.workloads import WORKLOADS
from kairos.profiles import load_profile
from kairos.sim import ClusterConfig, simulate
from kairos.sim.workload import build_requests

KEEP = (
    "num_requests",
    "ttft_attainment",
    "tpot_attainment",
    "joint_attainment",
    "decode_throughput",
    "mean_ttft_ms",
    "p50_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "p50_tpot_ms",
    "p99_tpot_ms",
    "p99_itl_ms",
    "request_goodput",
    "predictor_mape_prefill",
    "predictor_mape_decode",
)


@dataclass(frozen=True)
class Point:
    workload: str
    rate_scale: float
    prefill: str
    decode: str
    instances: int = 1  # N_P = N_D
    slo_scale: float = 1.0
    seed: int = 0
    profile: str = "llama3-8b-h100"
    noise: float = 0.05
    truth_scale: float = 1.0  # the truth runs this much slower than the profile says
    predictor: str = "fitted"
    prefill_chunk: int | None = None

    @property
    def pair(self) -> str:
        return f"{self.prefill}/{self.decode}"

    def with_(self, **changes: Any) -> Point:
        return replace(self, **changes)


def run_point(point: Point) -> dict[str, Any]:
    return _run(point, keep_latencies=False)


def run_point_latencies(point: Point) -> dict[str, Any]:
    """``run_point`` plus every finished request's TTFT and TPOT (seconds), for CDF plots."""
    return _run(point, keep_latencies=True)


def _run(point: Point, *, keep_latencies: bool) -> dict[str, Any]:
    w = WORKLOADS[point.workload]
    # Per-instance load stays comparable across cluster sizes: N instances see N times the rate.
    trace = w.trace_for(point.seed, point.rate_scale * point.instances)
    slo = SLO(w.ttft, w.tpot).scaled(point.slo_scale)
    requests, outputs = build_requests(trace.arrivals, trace.input_tokens, trace.output_tokens, slo)
    options: dict[str, dict[str, object]] = {}
    if point.decode == "static-cap":
        options["decode"] = {"typical_context": w.typical_context(point.seed)}
    config = ClusterConfig(
        prefill_instances=point.instances,
        decode_instances=point.instances,
        noise=point.noise,
        truth_scale=point.truth_scale,
        prefill_chunk_tokens=point.prefill_chunk,
        seed=point.seed,
    )
    result = simulate(
        requests,
        outputs,
        load_profile(point.profile),
        config,
        prefill_policy=point.prefill,
        decode_policy=point.decode,
        policy_options=options,
        predictor=point.predictor,
    )
    summary = summarize(
        result.records, num_decode_instances=point.instances, predictor_mape=result.predictor_mape
    )
    row: dict[str, Any] = asdict(point)
    row.update({k: summary.get(k) for k in KEEP})
    row["request_rate"] = trace.rate
    row["cpu_seconds"] = result.cpu_seconds
    if keep_latencies:
        done = [r for r in result.records if r.finished]
        row["ttft_s"] = [r.ttft for r in done]
        row["tpot_s"] = [r.tpot for r in done if r.output_tokens > 1]
    return row


def run_all(
    points: Iterable[Point],
    workers: int | None = None,
    job: Callable[[Point], dict[str, Any]] = run_point,
) -> Iterator[dict[str, Any]]:
    points = list(points)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(points) == 1:
        yield from map(job, points)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(job, points, chunksize=1)
