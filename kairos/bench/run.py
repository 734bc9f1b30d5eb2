"""One benchmark run end to end: find the model, calibrate prompts, replay the trace, check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kairos.bench.checks import check
from kairos.bench.client import PerfClock, Target, first_model
from kairos.bench.http import HTTPError
from kairos.bench.prompts import IDENTITY, Calibration, PromptBuilder, probe_lengths
from kairos.bench.replay import Replay, ReplayConfig, calibrate, http_client, plan, replay
from kairos.core.clock import Clock
from kairos.core.record import RequestRecord
from kairos.traces import Trace


@dataclass(frozen=True, slots=True)
class BenchResult:
    target: Target
    calibration: Calibration | None  # None: the server reports no usage, prompts uncalibrated
    replay: Replay
    records: list[RequestRecord]
    checks: dict[str, Any]


async def run_bench(
    url: str,
    trace: Trace,
    config: ReplayConfig,
    *,
    model: str | None = None,
    endpoint: str = "completions",
    api_key: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
    clock: Clock | None = None,
) -> BenchResult:
    """Replay ``trace`` against the server at ``url``; ``model`` defaults to its first model."""
    clock = clock or PerfClock()
    async with http_client(config, clock) as client:
        try:
            model = model or await first_model(client, url, api_key)
        except HTTPError as e:
            raise ValueError(f"cannot reach {url}: {type(e).__name__}: {e}") from e
        target = Target(url, model, endpoint, api_key)
        builder = PromptBuilder(config.seed)
        lengths = probe_lengths(int(trace.input_tokens.max()))
        calibration = await calibrate(client, target, builder, lengths, config.slo, clock)
        build = plan(trace, builder, calibration or IDENTITY, config.slo)
        result = await replay(client, target, trace, build, config, clock, progress)
    return BenchResult(target, calibration, result, result.records(trace), check(result, trace))
