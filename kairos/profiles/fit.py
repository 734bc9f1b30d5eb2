"""Fit the shipped latency profiles from measured kernel tables.

    python -m kairos.profiles.fit [--shared-profiles PATH] [--out DIR]

For each profile: compose measured step times (``compose.StepModel``) over a grid of prefill
batches and decode steps, fit the spec's linear forms by non-negative least squares on relative
error, hold back a fixed random 20% of the points to report held-out MAPE, and write the profile
JSON. The output is deterministic (fixed seed, rounded numbers, no timestamps or absolute paths),
so re-running on the same inputs gives byte-identical files. See docs/profiles.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kairos.profiles import crosscheck
from kairos.profiles.compose import (
    LLAMA3_8B,
    LLAMA3_70B,
    Architecture,
    Overheads,
    StepModel,
    kv_capacity,
    load_overheads,
)
from kairos.profiles.provenance import upstream_for
from kairos.profiles.regress import SEED, fit_relative
from kairos.profiles.tables import KernelTables, load_tables

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "profiles"
DEFAULT_OUT = REPO_ROOT / "kairos" / "profiles" / "data"
FIT_COMMAND = (
    "python -m kairos.profiles.fit --shared-profiles ../shared/profiles --out kairos/profiles/data"
)

SIG_DIGITS = 6  # rounding makes the JSON robust to last-bit floating-point differences
PREFILL_BATCH_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
# fmt: off
PREFILL_LENGTHS = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192,
                   12288, 16384)
# fmt: on
MIXED_PREFILL_BATCHES = 160
DECODE_BATCH_SIZES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
DECODE_CONTEXTS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
TPOT_SLO_MAX = 0.2  # the loosest TPOT SLO we serve; a step slower than this can meet none
KV_DELTA0_FILE = "llm_d_inference_sim/8b-h100-balanced-constant.yaml"


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    arch: Architecture
    gpu: str  # key into tables.GPU_BUILDS
    gpu_label: str
    tp: int
    max_batch_tokens: int = 16384
    max_decode_batch: int = 512
    # Llama 3.1 has Llama 3's shapes and a 128k context; we admit its context length.
    max_context: int = 131072


PROFILES = (
    ProfileSpec("llama3-8b-h100", LLAMA3_8B, "h100_sxm", "H100-SXM-80GB", 1),
    ProfileSpec("llama3-8b-a100", LLAMA3_8B, "a100_sxm", "A100-SXM-80GB", 1),
    ProfileSpec("llama3-70b-h100-tp8", LLAMA3_70B, "h100_sxm", "H100-SXM-80GB", 8),
)


def sig(x: float) -> float:
    return float(f"{x:.{SIG_DIGITS}g}")


def prefill_batches(max_tokens: int) -> list[list[int]]:
    """Same-length batches on a grid, plus seeded random mixed-length batches."""
    batches = [[n] * b for b in PREFILL_BATCH_SIZES for n in PREFILL_LENGTHS if b * n <= max_tokens]
    rng = np.random.default_rng(SEED)
    lo, hi = np.log(PREFILL_LENGTHS[0]), np.log(PREFILL_LENGTHS[-1])
    for _ in range(MIXED_PREFILL_BATCHES):
        # Log-uniform lengths: prompt lengths in real traces spread over orders of magnitude.
        lengths = np.exp(rng.uniform(lo, hi, int(rng.integers(2, 33)))).astype(int).tolist()
        while sum(lengths) > max_tokens:
            lengths.pop()
        if lengths:
            batches.append(lengths)
    return batches


def decode_points(capacity: int, max_batch: int) -> list[tuple[int, int]]:
    return [
        (b, c)
        for b in DECODE_BATCH_SIZES
        for c in DECODE_CONTEXTS
        if b <= max_batch and b * c <= capacity
    ]


def _mape_by(ape: np.ndarray, keys: np.ndarray, edges: Sequence[int], unit: str) -> dict[str, Any]:
    """MAPE over all points, broken down by ``keys`` into ranges (lo, hi]."""
    out: dict[str, Any] = {}
    for lo, hi in itertools.pairwise(edges):
        sel = (keys > lo) & (keys <= hi)
        if sel.any():
            out[f"{unit} {lo + 1}-{hi}"] = round(float(ape[sel].mean()), 4)
    return out


def fit_prefill(model: StepModel, spec: ProfileSpec) -> tuple[dict[str, float], dict[str, Any]]:
    batches = prefill_batches(spec.max_batch_tokens)
    x = np.array([[1.0, sum(b), sum(n * n for n in b)] for b in batches])
    t = np.array([model.prefill_time(b) for b in batches])
    coef, err = fit_relative(x, t)
    ape = np.abs(x @ coef - t) / t
    err["mape_by_batch_tokens"] = _mape_by(ape, x[:, 1], (0, 512, 2048, 8192, 16384), "tokens")
    sizes, lengths = PREFILL_BATCH_SIZES, PREFILL_LENGTHS
    err["points"] = (
        f"{len(batches)} batches: same-length grid (batch {sizes[0]}..{sizes[-1]}"
        f" x length {lengths[0]}..{lengths[-1]})"
        f" plus {MIXED_PREFILL_BATCHES} seeded mixed-length batches,"
        f" batch tokens <= {spec.max_batch_tokens}"
    )
    return dict(zip(("c0", "c1", "c2"), map(sig, coef), strict=True)), err


def fit_decode(
    model: StepModel, spec: ProfileSpec, capacity: int
) -> tuple[dict[str, float], dict[str, Any]]:
    points = decode_points(capacity, spec.max_decode_batch)
    t_all = np.array([model.decode_time(b, c) for b, c in points])
    # A step slower than the loosest TPOT SLO serves no request on time: leave it out.
    keep = t_all <= TPOT_SLO_MAX
    x = np.array([[1.0, b, b * c] for b, c in points])[keep]
    t = t_all[keep]
    coef, err = fit_relative(x, t)
    ape = np.abs(x @ coef - t) / t
    err["mape_by_batch_size"] = _mape_by(ape, x[:, 1], (0, 16, 128, 512), "batch")
    err["operating_range"] = (
        f"batch 1..{spec.max_decode_batch}, context {DECODE_CONTEXTS[0]}..{DECODE_CONTEXTS[-1]}"
        f" per request, batch * context <= KV capacity {capacity}; {int((~keep).sum())} of"
        f" {len(points)} points dropped for a step over the {TPOT_SLO_MAX * 1e3:.0f} ms loosest"
        f" TPOT SLO; slowest fitted step {t.max() * 1e3:.1f} ms"
    )
    return dict(zip(("d0", "d1", "d2"), map(sig, coef), strict=True)), err


def kv_transfer(spec: ProfileSpec, tables: KernelTables, shared: Path) -> dict[str, Any]:
    """Bandwidth: the YAML's per-GPU inter-node (RDMA NIC) bandwidth times the GPUs sending.

    Every GPU of the TP group holds its share of the heads and sends it over its own NIC (the
    YAML assumes one NIC per GPU). The fixed cost is llm-d-inference-sim's KV-transfer latency.
    """
    preset = yaml.safe_load((shared / KV_DELTA0_FILE).read_text())
    delta0 = crosscheck.parse_ms(preset["kv-cache-transfer-latency"]) * 1e-3
    per_gpu = float(tables.system["node"]["inter_node_bw"])
    return {"delta0": sig(delta0), "bandwidth_bytes_per_s": sig(per_gpu * spec.tp)}


def _source(
    tables: KernelTables, overheads: Overheads, capacity: dict[str, Any], checks: dict[str, Any]
) -> dict[str, Any]:
    files = [*tables.files, overheads.source, KV_DELTA0_FILE]
    check_files = sorted({c["reference_file"] for c in checks.values()})
    return {
        "data": files,
        "cross_check_data": check_files,
        # LLMServingSim's measured sampler calibrates compose.SAMPLER_BYTES_PER_VOCAB.
        "upstream": upstream_for([*files, *check_files, "llmservingsim/"]),
        "fit_command": FIT_COMMAND,
        "method": "per-layer QKV/O/gate-up/down GEMMs + attention (+ 2 all-reduces under TP)"
        " from AIConfigurator's measured vLLM kernel tables, times layers, plus LM head,"
        " memory-bound elementwise ops, sampler and BLIS's trained framework overheads;"
        " see docs/profiles.md",
        "overheads_s": {
            "per_step": sig(overheads.per_step),
            "per_layer": sig(overheads.per_layer),
            "per_request": sig(overheads.per_request),
        },
        "seed": SEED,
        "kv_capacity": capacity,
        "kv_transfer": "bandwidth = node.inter_node_bw (per GPU) x GPUs in the TP group;"
        f" delta0 = kv-cache-transfer-latency of {KV_DELTA0_FILE}",
        "cross_check": checks,
    }


def _cross_checks(
    spec: ProfileSpec, tables: KernelTables, overheads: Overheads, model: StepModel, shared: Path
) -> dict[str, Any]:
    """The comparisons that fit each profile: same GPU, and the same or a comparable model."""
    if spec.name == "llama3-8b-h100":
        return {"llm_d_preset": crosscheck.llm_d_preset(shared, crosscheck.LLM_D_8B, model)}
    if spec.name == "llama3-8b-a100":
        # No Llama-3-8B measurements on A100 exist in the data; these check the composition
        # method on the A100 tables with models others did measure.
        return {
            "distserve_opt13b": crosscheck.distserve_opt13b(shared, tables, overheads),
            "splitwise_llama2_70b_a100_tp8": crosscheck.splitwise_llama2_70b(
                shared, tables, overheads, hardware="a100-80gb"
            ),
        }
    if spec.name == "llama3-70b-h100-tp8":
        return {
            "splitwise_llama2_70b": crosscheck.splitwise_llama2_70b(shared, tables, overheads),
            "llm_d_preset": crosscheck.llm_d_preset(shared, crosscheck.LLM_D_70B, model),
            "vidur_allreduce": crosscheck.vidur_allreduce(shared, model),
        }
    return {}


def build_profile(
    spec: ProfileSpec, tables: KernelTables, overheads: Overheads, shared: Path
) -> dict[str, Any]:
    model = StepModel(spec.arch, tables, spec.tp, overheads)
    capacity = kv_capacity(spec.arch, tables.system, spec.tp)
    prefill, prefill_err = fit_prefill(model, spec)
    decode, decode_err = fit_decode(model, spec, capacity["tokens"])
    a = spec.arch
    gpus = f"{spec.tp}x {spec.gpu_label} (TP{spec.tp})" if spec.tp > 1 else f"one {spec.gpu_label}"
    build = tables.files[1].split("/")[-2]
    checks = _cross_checks(spec, tables, overheads, model, shared)
    source = _source(tables, overheads, capacity, checks)
    return {
        "name": spec.name,
        "description": f"{a.name} (bf16) on {gpus}, composed from measured vLLM {build} kernels",
        "model": {
            "name": a.name,
            "layers": a.layers,
            "kv_heads": a.kv_heads,
            "head_dim": a.head_dim,
            "dtype_bytes": 2,
        },
        "hardware": {
            "gpu": spec.gpu_label,
            "num_gpus": spec.tp,
            "memory_gb": round(capacity["mem_capacity_bytes"] / 2**30),
        },
        "kv_capacity_tokens": capacity["tokens"],
        "model_limits": {"max_context_tokens": spec.max_context},
        "prefill": {"coefficients": prefill, "max_batch_tokens": spec.max_batch_tokens},
        "decode": {"coefficients": decode, "max_batch_size": spec.max_decode_batch},
        "kv_transfer": kv_transfer(spec, tables, shared),
        "source": source,
        "fit_error": {
            "prefill": prefill_err,
            "decode": decode_err,
            "kv_transfer": {"fitted": False, "note": "taken from hardware data"},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kairos.profiles.fit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--shared-profiles",
        type=Path,
        default=DEFAULT_SHARED,
        help="the shared/profiles data folder (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where to write <name>.json (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    shared: Path = args.shared_profiles
    if not (shared / "aiconfigurator").is_dir():
        parser.error(f"no aiconfigurator/ under --shared-profiles {shared}")
    args.out.mkdir(parents=True, exist_ok=True)
    overheads = load_overheads(shared)
    tables: dict[str, KernelTables] = {}
    for spec in PROFILES:
        if spec.gpu not in tables:
            tables[spec.gpu] = load_tables(shared, spec.gpu)
        profile = build_profile(spec, tables[spec.gpu], overheads, shared)
        path = args.out / f"{spec.name}.json"
        path.write_text(json.dumps(profile, indent=2) + "\n")
        err = profile["fit_error"]
        print(
            f"{path}: prefill MAPE fit {err['prefill']['mape_fit']:.2%} held-out"
            f" {err['prefill']['mape_holdout']:.2%}; decode MAPE fit"
            f" {err['decode']['mape_fit']:.2%} held-out {err['decode']['mape_holdout']:.2%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
