"""``kairos bench``: replay a trace against an OpenAI-compatible server and measure SLOs.

Depends on ``kairos.core`` and ``kairos.traces`` only, never on ``kairos.sim`` or
``kairos.serve``: it measures any server (``kairos serve``, ``vllm serve``) from the outside.

Modules: ``stream`` (reading one SSE response), ``client`` (one timed request), ``prompts``
(prompt text and length calibration), ``replay`` (open-loop schedule), ``checks`` (did the run
do what the trace asked), ``run`` (the whole run), ``plots``.
"""

from kairos.bench.client import Target
from kairos.bench.prompts import Calibration, PromptBuilder
from kairos.bench.replay import Replay, ReplayConfig
from kairos.bench.run import BenchResult, run_bench

__all__ = [
    "BenchResult",
    "Calibration",
    "PromptBuilder",
    "Replay",
    "ReplayConfig",
    "Target",
    "run_bench",
]
