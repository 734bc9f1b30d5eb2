"""Open-loop replay of a trace against a server: every request leaves at its scheduled time.

Open loop means request ``i`` is sent ``arrivals[i]`` seconds after the replay starts whatever
happened to earlier requests, as real users would send it. A closed loop (send the next request
when one finishes) lets a slow server throttle its own load and hides queueing, which is exactly
what SLO attainment is meant to measure.

A client can still fall behind (an overloaded event loop, a ``max_concurrency`` cap): each
request's lag, actual minus scheduled send time, is kept, and its arrival is the actual send
time, so latencies are never charged to the server for the client's delay. Lag is reported so
that a run whose client fell behind can be recognised and discarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kairos.bench.client import BenchRequest, Outcome, Target, send
from kairos.bench.http import HTTPClient
from kairos.bench.prompts import Calibration, PromptBuilder
from kairos.core.clock import Clock
from kairos.core.record import FloatArray, RequestRecord
from kairos.core.slo import SLO
from kairos.traces import Trace


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    slo: SLO
    seed: int = 0
    max_concurrency: int | None = None  # None: no cap (pure open loop)
    timeout: float = 600.0  # seconds without a byte from the server before a request fails

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")


@dataclass(frozen=True, slots=True)
class Replay:
    """One replay's outcomes (in trace order) and send lags, on a clock starting at 0."""

    outcomes: list[Outcome]
    lags: FloatArray  # actual - scheduled send time, seconds, per request
    slo: SLO
    origin: float = 0.0  # the replay clock's reading at time 0 (to line up with server logs)

    def records(self, trace: Trace) -> list[RequestRecord]:
        """One record per trace request; ``id`` is the trace index."""
        return [
            RequestRecord(
                id=i,
                arrival=o.sent,
                # What the server counted when it said (mismatches are reported separately).
                input_tokens=o.prompt_tokens or int(trace.input_tokens[i]),
                ttft_slo=self.slo.ttft,
                tpot_slo=self.slo.tpot,
                status=o.status,
                token_times=o.token_times,
                error=o.error,
            )
            for i, o in enumerate(self.outcomes)
        ]


def http_client(config: ReplayConfig, clock: Clock) -> HTTPClient:
    """A client with a connection per in-flight request: a pool that made requests wait for a
    connection would add client-side queueing to the server's TTFT. Idle connections are all
    kept, so a burst after a lull does not pay TCP handshakes inside its TTFT."""
    return HTTPClient(clock, timeout=config.timeout, connect_timeout=30.0)


async def calibrate(
    client: HTTPClient,
    target: Target,
    builder: PromptBuilder,
    lengths: tuple[int, int],
    slo: SLO,
    clock: Clock,
) -> Calibration | None:
    """Fit ``prompt_tokens = a + b * words`` from two probes; None if the server reports no
    usage. The probes go one after the other, before the replay, off its timeline."""
    counts = []
    for k, words in enumerate(lengths):
        request = BenchRequest(f"calibrate-{k}", builder.probe(k, words), words, 1, slo)
        outcome = await send(client, target, request, clock)
        if outcome.status != "finished":
            raise ValueError(
                f"calibration probe of {words} words {outcome.status}: {outcome.error}"
            )
        if outcome.prompt_tokens is None:
            return None
        counts.append(outcome.prompt_tokens)
    return Calibration.fit(lengths, (counts[0], counts[1]))


def plan(
    trace: Trace, builder: PromptBuilder, calibration: Calibration, slo: SLO
) -> Callable[[int], BenchRequest]:
    """Request ``i`` of the trace, built on demand (a trace of long prompts would not fit in
    memory all at once)."""

    def build(i: int) -> BenchRequest:
        tokens = int(trace.input_tokens[i])
        words = calibration.words_for(tokens)
        return BenchRequest(
            str(i), builder.prompt(i, words), tokens, int(trace.output_tokens[i]), slo
        )

    return build


async def replay(
    client: HTTPClient,
    target: Target,
    trace: Trace,
    build: Callable[[int], BenchRequest],
    config: ReplayConfig,
    clock: Clock,
    progress: Callable[[int], None] = lambda n: None,
) -> Replay:
    """Send every request of ``trace`` at its arrival time and wait for all to end."""
    n = len(trace)
    outcomes: list[Outcome | None] = [None] * n
    limit = asyncio.Semaphore(config.max_concurrency) if config.max_concurrency else None

    async def one(i: int, request: BenchRequest) -> None:
        if limit is None:
            outcomes[i] = await _send(client, target, request, clock)
        else:
            async with limit:
                outcomes[i] = await _send(client, target, request, clock)
        progress(1)

    origin = clock.now()
    tasks = []
    for i in range(n):
        # Build before waiting, so building a long prompt delays nothing but this loop. Only
        # in-flight prompts are held in memory.
        request = build(i)
        # Sleep even when already late (0 s): yielding lets in-flight streams be read and
        # timestamped while a client that fell behind catches up.
        await asyncio.sleep(max(0.0, origin + float(trace.arrivals[i]) - clock.now()))
        tasks.append(asyncio.create_task(one(i, request)))
    await asyncio.gather(*tasks)
    return _rebased(outcomes, trace, origin, config.slo)


async def _send(client: HTTPClient, target: Target, request: BenchRequest, clock: Clock) -> Outcome:
    """``send``, with any unexpected error turned into a failed outcome: every trace request
    must yield exactly one record, or the attainment denominator would shrink silently."""
    sent = clock.now()
    try:
        return await send(client, target, request, clock)
    except Exception as e:  # recorded on the request, not swallowed
        return Outcome("failed", sent, error=f"client error: {type(e).__name__}: {e}")


def _rebased(outcomes: list[Outcome | None], trace: Trace, origin: float, slo: SLO) -> Replay:
    """Times relative to the replay's start (the trace's time 0)."""
    done: list[Outcome] = []
    for o in outcomes:
        assert o is not None, "every task has ended, so every outcome is set"
        o.sent -= origin
        o.token_times = o.token_times - origin
        done.append(o)
    lags = np.array([o.sent for o in done], dtype=np.float64) - trace.arrivals
    return Replay(done, lags, slo, origin)
