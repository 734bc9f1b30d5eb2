"""Cross-checks of the composed step times against other groups' measurements and fits.

Each check returns a JSON-ready dict with both sides in milliseconds and the signed relative
difference ``(kairos - reference) / reference``, so the numbers land in the profile files and in
docs/profiles.md unchanged.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kairos.profiles.compose import LLAMA2_70B, OPT_13B, Overheads, StepModel
from kairos.profiles.tables import KernelTables, interp_loglog

SPLITWISE_FILE = "splitwise_sim/perf_model.csv"
DISTSERVE_FILES = (
    "distserve/profiler-a100-80g.distserve.json",
    "distserve/profiler-a100-80g.vllm.json",
)
VIDUR_ALLREDUCE = {
    "h100_sxm": "vidur/network/h100_dgx/all_reduce.csv",
    "a100_sxm": "vidur/network/a100_dgx/all_reduce.csv",
}
LLM_D_8B = "llm_d_inference_sim/8b-h100-balanced-per-token.yaml"
LLM_D_70B = "llm_d_inference_sim/70b-h100-tp8-throughput-per-token.yaml"


def _row(ref_ms: float, ours_s: float, **where: int) -> dict[str, Any]:
    ours = ours_s * 1e3
    return {
        **where,
        "reference_ms": float(f"{ref_ms:.4g}"),
        "kairos_ms": float(f"{ours:.4g}"),
        "diff": round((ours - ref_ms) / ref_ms, 3),
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    diffs = np.array([r["diff"] for r in rows])
    return {
        "mean_abs_diff": round(float(np.abs(diffs).mean()), 3),
        "mean_signed_diff": round(float(diffs.mean()), 3),
    }


def splitwise_llama2_70b(
    shared: Path, tables: KernelTables, overheads: Overheads, hardware: str = "h100-80gb"
) -> dict[str, Any]:
    """SplitwiseSim's measured Llama2-70B TP8 prompt and token times vs our composition.

    Llama-2-70B has Llama-3-70B's shapes except a 32000-token vocabulary, so we compose that.
    ``token_time`` is the mean per-token time of a whole generation, so we compare it with a
    decode step at the mean context ``prompt + tokens / 2``.
    """
    prompt: dict[tuple[int, int], list[float]] = defaultdict(list)
    token: dict[tuple[int, int, int], list[float]] = defaultdict(list)
    with (shared / SPLITWISE_FILE).open() as f:
        for r in csv.DictReader(f):
            if (r["model"], r["hardware"], r["tensor_parallel"]) != ("llama2-70b", hardware, "8"):
                continue
            p, b, t = int(r["prompt_size"]), int(r["batch_size"]), int(r["token_size"])
            prompt[(p, b)].append(float(r["prompt_time"]))
            token[(p, b, t)].append(float(r["token_time"]))
    model = StepModel(LLAMA2_70B, tables, 8, overheads)
    prefill = [
        _row(float(np.median(v)), model.prefill_time([p] * b), prompt=p, batch=b)
        for (p, b), v in sorted(prompt.items())
    ]
    decode = [
        _row(float(np.median(v)), model.decode_time(b, p + t // 2), prompt=p, batch=b, tokens=t)
        for (p, b, t), v in sorted(token.items())
    ]
    return {
        "reference": f"{SPLITWISE_FILE} (llama2-70b, {hardware}, TP8; median of repeats)",
        "reference_file": SPLITWISE_FILE,
        "composed_model": "Llama-2-70B (Llama-3-70B shapes, vocab 32000)",
        "prefill": prefill,
        "prefill_summary": _summary(prefill),
        "decode": decode,
        "decode_summary": _summary(decode),
    }


def distserve_opt13b(shared: Path, tables: KernelTables, overheads: Overheads) -> dict[str, Any]:
    """DistServe's fitted OPT-13B prefill times (A100-80GB, TP1) vs our composition.

    This checks the composition method on the A100 tables with a model DistServe profiled.
    Decode is not compared: OPT is multi-head (40 KV heads) and the decode attention tables only
    cover 1..8 KV heads.
    """
    model = StepModel(OPT_13B, tables, 1, overheads)
    batches = [[128], [512], [1024], [2048], [4096], [512] * 4, [1024] * 8]
    out: dict[str, Any] = {
        "composed_model": "OPT-13B (40 layers, hidden 5120, MHA 40 heads)",
        "reference_file": DISTSERVE_FILES[0].rsplit("/", 1)[0] + "/",
    }
    for rel in DISTSERVE_FILES:
        a, b, c = json.loads((shared / rel).read_text())["facebook/opt-13b"]["1"]["prefill"]
        rows = []
        for lengths in batches:
            s, s2 = sum(lengths), sum(n * n for n in lengths)
            rows.append(
                _row(
                    a + b * s + c * s2,
                    model.prefill_time(lengths),
                    prompt=lengths[0],
                    batch=len(lengths),
                )
            )
        engine = rel.split(".")[-2]
        out[engine] = {
            "reference": f"{rel} (opt-13b, TP1, fitted prefill ms = a + b*S + c*S2)",
            "prefill": rows,
            "prefill_summary": _summary(rows),
        }
    return out


def parse_ms(value: str) -> float:
    """'250us' / '30ms' -> milliseconds."""
    if value.endswith("us"):
        return float(value[:-2]) / 1e3
    if value.endswith("ms"):
        return float(value[:-2])
    raise ValueError(f"unrecognised duration {value!r}")


def llm_d_preset(shared: Path, rel: str, model: StepModel) -> dict[str, Any]:
    """llm-d-inference-sim's hand-picked latency preset (not a measurement) vs our composition.

    The preset's decode latency is for up to ``max-num-seqs`` requests, so we compare it with a
    decode step at that batch size; its KV transfer per token with our bandwidth per token.
    """
    preset = yaml.safe_load((shared / rel).read_text())
    overhead = parse_ms(preset["prefill-overhead"])
    per_token = parse_ms(preset["prefill-time-per-token"])
    prefill = [
        _row(overhead + per_token * n, model.prefill_time([n]), prompt=n) for n in (512, 1024, 4096)
    ]
    seqs = int(preset["max-num-seqs"])
    itl = parse_ms(preset["inter-token-latency"])
    decode = [_row(itl, model.decode_time(seqs, c), batch=seqs, context=c) for c in (1024, 4096)]
    kv_bytes = model.arch.kv_bytes_per_token()
    bandwidth = float(model.tables.system["node"]["inter_node_bw"]) * model.tp
    ref_us = parse_ms(preset["kv-cache-transfer-time-per-token"]) * 1e3
    ours_us = kv_bytes / bandwidth * 1e6
    kv = {
        "reference_us": round(ref_us, 3),
        "kairos_us": round(ours_us, 3),
        "diff": round((ours_us - ref_us) / ref_us, 3),
    }
    return {
        "reference": f"{rel} (hand-picked from public benchmarks, not measured)",
        "reference_file": rel,
        "prefill": prefill,
        "decode": decode,
        "kv_transfer_per_token": kv,
    }


def vidur_allreduce(shared: Path, model: StepModel) -> dict[str, Any]:
    """Vidur's measured 8-GPU DGX all-reduce vs the AIConfigurator all-reduce our TP model uses.

    Compared at the message sizes a TP step of this model sends (tokens x hidden x 2 bytes);
    Vidur's ``size`` column is taken to be bytes.
    """
    rel = VIDUR_ALLREDUCE[model.tables.gpu]
    by_size: dict[int, list[float]] = defaultdict(list)
    with (shared / rel).open() as f:
        for r in csv.DictReader(f):
            if (r["num_workers"], r["devices_per_node"]) == (str(model.tp), "8"):
                by_size[int(r["size"])].append(float(r["time_stats.all_reduce.median"]))
    sizes = np.array(sorted(by_size), dtype=float)
    times = np.array([float(np.median(by_size[int(s)])) for s in sizes])
    rows = []
    for tokens in (16, 128, 512, 1024, 2048):
        message = tokens * model.arch.hidden * 2
        ref = interp_loglog(message, sizes, times)
        rows.append(_row(ref, model.layer_allreduce(tokens) / 2, tokens=tokens, bytes=message))
    return {
        "reference": f"{rel} (TP{model.tp}, median; per all-reduce)",
        "reference_file": rel,
        "allreduce": rows,
        "summary": _summary(rows),
    }
