"""Workloads: real traces (bundled and from files), synthetic traces and their transforms.

Depends only on ``kairos.core`` (for the format registry) and numpy.
"""

from kairos.traces.bundled import available_traces, load_trace
from kairos.traces.loaders import load_file
from kairos.traces.synth import synthetic_trace
from kairos.traces.trace import Trace, TraceError
from kairos.traces.transform import (
    cap_lengths,
    scale_lengths,
    scale_to_rate,
    select,
    slice_count,
    slice_time,
    time_scale,
)

__all__ = [
    "Trace",
    "TraceError",
    "available_traces",
    "cap_lengths",
    "load_file",
    "load_trace",
    "scale_lengths",
    "scale_to_rate",
    "select",
    "slice_count",
    "slice_time",
    "synthetic_trace",
    "time_scale",
]
