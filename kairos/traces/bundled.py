"""Real traces shipped with the package (``data/``, gzipped, see ``data/ATTRIBUTION.md``).

``load_trace`` accepts a bundled name, a named synthetic trace (``synth.SYNTHETIC_TRACES``)
or a file path, so every command that takes a workload can take any of them. Named traces are
cached: a ``Trace`` is immutable, so sharing one is safe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from kairos.traces.loaders import load_file
from kairos.traces.synth import SYNTHETIC_TRACES
from kairos.traces.trace import Trace

_AZURE = (
    "Azure/AzurePublicDataset@7909210 data/{file} (CC-BY-4.0; Patel et al., Splitwise, ISCA 2024)"
)
_MOONCAKE = (
    "kvcache-ai/Mooncake@3cca71d FAST25-release/traces/{file} "
    "(Apache-2.0; Qin et al., Mooncake, FAST 2025)"
)


@dataclass(frozen=True)
class BundledTrace:
    file: str  # gzipped file under kairos/traces/data/
    format: str  # a name in kairos.traces.loaders.FORMATS
    sha256: str  # of the decompressed bytes; equals the upstream file (or slice) byte for byte
    source: str
    description: str


NAMED_TRACES: dict[str, BundledTrace] = {
    "azure-conv": BundledTrace(
        "AzureLLMInferenceTrace_conv.csv.gz",
        "azure",
        "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
        _AZURE.format(file="AzureLLMInferenceTrace_conv.csv"),
        "Azure 2023 chat: 19,366 requests over 3,502 s (5.5 req/s), near-Poisson",
    ),
    "azure-code": BundledTrace(
        "AzureLLMInferenceTrace_code.csv.gz",
        "azure",
        "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
        _AZURE.format(file="AzureLLMInferenceTrace_code.csv"),
        "Azure 2023 code completion: 8,819 requests over 3,436 s, very bursty, short outputs",
    ),
    "mooncake-conv": BundledTrace(
        "conversation_trace_0-2400s.jsonl.gz",
        "mooncake",
        "24d66442470b35d879d7ddd861640493065c862e15ef5e3efbc1a47b5326afea",
        _MOONCAKE.format(file="conversation_trace.jsonl")
        + ", slice timestamp < 2,400,000 ms (first 7,851 rows)",
        "Mooncake long-context chat, t < 2400 s: 7,851 requests, 3.3 req/s, prefill-heavy",
    ),
    "mooncake-synthetic": BundledTrace(
        "synthetic_trace.jsonl.gz",
        "mooncake",
        "bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131",
        _MOONCAKE.format(file="synthetic_trace.jsonl"),
        "Mooncake synthetic: 3,993 dataset lengths with Poisson arrivals (not real timing)",
    ),
}


def available_traces() -> list[str]:
    """Names accepted by ``load_trace`` besides file paths (bundled, then synthetic)."""
    return sorted(NAMED_TRACES) + sorted(SYNTHETIC_TRACES)


def parse_bundled(name: str) -> Trace:
    """A bundled trace parsed from its file each time (``load_trace`` caches this)."""
    entry = NAMED_TRACES[name]
    with resources.as_file(resources.files("kairos.traces") / "data" / entry.file) as path:
        trace = load_file(path, entry.format)
    return replace(trace, name=name, source=entry.source)


_load_bundled = functools.cache(parse_bundled)


@functools.cache
def _load_synthetic(name: str) -> Trace:
    return SYNTHETIC_TRACES[name].generate(name)


def load_trace(name_or_path: str) -> Trace:
    """A bundled or synthetic trace by name (see ``available_traces()``), or a trace file by
    path."""
    if name_or_path in NAMED_TRACES:
        return _load_bundled(name_or_path)
    if name_or_path in SYNTHETIC_TRACES:
        return _load_synthetic(name_or_path)
    path = Path(name_or_path)
    if path.is_file():
        return load_file(path)
    raise ValueError(
        f"unknown trace {name_or_path!r}: not a file and not a bundled trace; "
        f"named traces are: {', '.join(available_traces())}"
    )
