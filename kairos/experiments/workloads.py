"""The evaluation workloads: a real trace window, an SLO pair, and the rates to sweep.

SLOs follow spec section 2 (absolute per workload) for Llama-3-8B on one H100 per instance:
TTFT is about 20x the standalone prefill of a median prompt (Azure conv: 1k tokens, 23 ms;
Azure code: 1.5k, 35 ms; Mooncake: 7k, 0.17 s), TPOT is about 2x the step time of a
lightly loaded decode batch (7-8 ms), so both bind under load.

On the three real traces a 1P1D pair's prefill instance saturates first. The fourth workload,
``synthetic-longtail`` (kairos.traces.synth: Poisson, log-normal prompts and outputs with a
long tail, median output 250 tokens), is decode-bound instead: its decode instance saturates
first, which is the regime slack-guided batching is for. Its SLOs follow the same rule (1k
median prompt: 0.5 s, as Azure conv).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kairos.traces import Trace, load_trace, slice_time, time_scale


@dataclass(frozen=True)
class Workload:
    name: str
    trace: str
    ttft: float
    tpot: float
    window: float  # seconds of trace per run; seed s uses window [s*window, (s+1)*window)
    rate_scales: tuple[float, ...]  # sweep, as multiples of the trace's own rate (1P1D)

    def trace_for(self, seed: int, rate_scale: float) -> Trace:
        trace = slice_time(load_trace(self.trace), seed * self.window, (seed + 1) * self.window)
        return time_scale(trace, rate_scale)

    def typical_context(self, seed: int) -> int:
        """What a static batch cap is tuned to: mean prompt plus half the mean output."""
        t = self.trace_for(seed, 1.0)
        return int(np.mean(t.input_tokens) + np.mean(t.output_tokens) / 2)


WORKLOADS = {
    w.name: w
    for w in (
        Workload("azure-conv", "azure-conv", 0.5, 0.015, 900.0, (3, 4, 4.5, 5, 5.25, 5.5, 6)),
        Workload("azure-code", "azure-code", 0.7, 0.015, 900.0, (2, 3, 4, 5, 6, 7)),
        Workload(
            "mooncake-conv", "mooncake-conv", 3.0, 0.025, 600.0, (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
        ),
        Workload(
            "synthetic-longtail",
            "synthetic-longtail",
            0.5,
            0.015,
            600.0,
            (2, 2.5, 2.75, 3, 3.25, 3.5, 4),
        ),
    )
}
