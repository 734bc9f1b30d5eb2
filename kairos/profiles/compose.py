"""Whole-model step times composed from measured kernels (a model on one GPU or a TP group).

A step is, per layer: the QKV, O, gate/up and down GEMMs at ``m`` = tokens in the step, the
attention kernel, the memory-bound elementwise kernels (norms, RoPE, KV-cache write, SiLU) and,
under tensor parallelism, two all-reduces. Once per step: the LM head (only on the last token of
each sequence: vLLM computes logits for nothing else), the sampler, and a fixed framework
overhead. Elementwise kernels are not in the tables, so they are costed as bytes moved at the
GPU's empirical memory bandwidth (the YAML's ``mem_bw * mem_bw_empirical_scaling_factor``, the
same rule AIConfigurator applies to memory-bound ops).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kairos.profiles.tables import KernelTables

DTYPE_BYTES = 2  # bf16 weights, activations and KV cache
GPU_MEM_UTILISATION = 0.9  # vLLM's default gpu_memory_utilization
# vLLM v1 captures CUDA graphs for steps of up to 512 tokens, and its custom all-reduce serves
# messages up to 8 MiB; larger steps run eagerly and fall back to NCCL.
CUDA_GRAPH_MAX_TOKENS = 512
CUSTOM_ALLREDUCE_MAX_BYTES = 8 * 1024 * 1024
# Sampler traffic per vocabulary entry per sequence: fp32 logits written once and read once.
# 256 sequences x 128256 x 8 B at an RTX PRO 6000's empirical bandwidth is 184 us; LLMServingSim
# measured 164 us for vLLM's sampler there (perf/RTXPRO6000/.../per_sequence.csv).
SAMPLER_BYTES_PER_VOCAB = 8


@dataclass(frozen=True)
class Architecture:
    name: str
    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    gated_mlp: bool = True  # Llama: fused gate/up + SiLU-and-mul; OPT: fc1 + ReLU

    @property
    def params(self) -> int:
        """Parameter count (untied embedding and LM head, as in Llama 3)."""
        h, d = self.hidden, self.head_dim
        attention = h * (self.q_heads + 2 * self.kv_heads) * d + self.q_heads * d * h
        mlp = (3 if self.gated_mlp else 2) * h * self.intermediate
        return self.layers * (attention + mlp + 2 * h) + 2 * self.vocab * h + h

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        return 2 * self.layers * (self.kv_heads // tp) * self.head_dim * DTYPE_BYTES


LLAMA3_8B = Architecture("Llama-3-8B", 32, 4096, 32, 8, 128, 14336, 128256)
LLAMA3_70B = Architecture("Llama-3-70B", 80, 8192, 64, 8, 128, 28672, 128256)
# Same shapes as Llama-3-70B but Llama 2's 32000-token vocabulary: what SplitwiseSim measured.
LLAMA2_70B = Architecture("Llama-2-70B", 80, 8192, 64, 8, 128, 28672, 32000)
OPT_13B = Architecture("OPT-13B", 40, 5120, 40, 40, 128, 20480, 50272, gated_mlp=False)


@dataclass(frozen=True)
class Overheads:
    """Framework time outside kernels (seconds): per step, per layer per step, per request."""

    per_step: float
    per_layer: float
    per_request: float
    source: str


def load_overheads(shared: Path) -> Overheads:
    """BLIS's overhead terms, trained against real vLLM runs (blis/defaults.yaml)."""
    rel = "blis/defaults.yaml"
    beta = yaml.safe_load((shared / rel).read_text())["trained_physics_coefficients"]["beta_coeffs"]
    # beta[4] = per-layer overhead, beta[5] = per-request, beta[6] = per-step (all microseconds).
    return Overheads(
        per_step=beta[6] * 1e-6, per_layer=beta[4] * 1e-6, per_request=beta[5] * 1e-6, source=rel
    )


class StepModel:
    """Composed step times for ``arch`` on ``tp`` GPUs of the kind ``tables`` measured."""

    def __init__(self, arch: Architecture, tables: KernelTables, tp: int, overheads: Overheads):
        if arch.q_heads % tp or arch.kv_heads % tp:
            raise ValueError(f"{arch.name}: heads do not split {tp} ways")
        self.arch, self.tables, self.tp, self.overheads = arch, tables, tp, overheads
        gpu = tables.system["gpu"]
        self.mem_bw = float(gpu["mem_bw"]) * float(gpu["mem_bw_empirical_scaling_factor"])
        self.heads = (arch.q_heads // tp, arch.kv_heads // tp)

    def layer_gemms(self, m: int) -> float:
        a, t, g = self.arch, self.tp, self.tables.gemm
        qkv = g.time(m, (a.q_heads + 2 * a.kv_heads) * a.head_dim // t, a.hidden)
        out = g.time(m, a.hidden, a.q_heads * a.head_dim // t)
        up = g.time(m, (2 if a.gated_mlp else 1) * a.intermediate // t, a.hidden)
        down = g.time(m, a.hidden, a.intermediate // t)
        return qkv + out + up + down

    def layer_allreduce(self, m: int) -> float:
        if self.tp == 1:
            return 0.0
        message = m * self.arch.hidden * DTYPE_BYTES
        if m <= CUDA_GRAPH_MAX_TOKENS and message <= CUSTOM_ALLREDUCE_MAX_BYTES:
            table = self.tables.allreduce_table(self.tp, "vllm_graph")
        elif message <= CUSTOM_ALLREDUCE_MAX_BYTES:
            table = self.tables.allreduce_table(self.tp, "vllm_eager")
        else:
            table = self.tables.allreduce_table(self.tp, "nccl")
        return 2 * table.time(message)  # after attention and after the MLP

    def layer_elementwise(self, m: int) -> float:
        a, t = self.arch, self.tp
        norms = 2 * 4 * a.hidden  # two fused residual-add + RMSNorm: read x, res; write both
        rope = 2 * (a.q_heads + a.kv_heads) * a.head_dim // t  # read and write q, k
        kv_write = 2 * 2 * a.kv_heads * a.head_dim // t  # read k, v; write them to the cache
        # SiLU-and-mul reads 2I and writes I; a plain activation (OPT's ReLU) reads I, writes I.
        act = (3 if a.gated_mlp else 2) * a.intermediate // t
        return m * (norms + rope + kv_write + act) * DTYPE_BYTES / self.mem_bw

    def step_common(self, tokens: int, sequences: int) -> float:
        """Everything in a step except attention."""
        a = self.arch
        per_layer = self.layer_gemms(tokens) + self.layer_allreduce(tokens)
        per_layer += self.layer_elementwise(tokens) + self.overheads.per_layer
        lm_head = self.tables.gemm.time(sequences, a.vocab // self.tp, a.hidden)
        # Embedding lookup and final norm: read and write the hidden state once each.
        edges = tokens * 4 * a.hidden * DTYPE_BYTES / self.mem_bw
        sampler = sequences * a.vocab * SAMPLER_BYTES_PER_VOCAB / self.mem_bw
        fixed = self.overheads.per_step + sequences * self.overheads.per_request
        return a.layers * per_layer + lm_head + edges + sampler + fixed

    def prefill_time(self, lengths: Sequence[int]) -> float:
        """Seconds to prefill one batch of prompts with these (uncached) lengths."""
        b = len(lengths)
        attn = self.tables.context_attn(self.heads)
        # The tables hold same-length batches; each request is charged its share of a batch of
        # b requests of its own length, which is exact for same-length batches.
        attention = sum(attn.time(b, n) for n in lengths) / b
        return self.step_common(sum(lengths), b) + self.arch.layers * attention

    def decode_time(self, batch: int, context: int) -> float:
        """Seconds for one decode step of ``batch`` requests with ``context`` KV tokens each."""
        attention = self.tables.generation_attn(self.heads).time(batch, context)
        return self.step_common(batch, batch) + self.arch.layers * attention


def kv_capacity(arch: Architecture, system: dict[str, Any], tp: int) -> dict[str, Any]:
    """KV-cache token capacity of the TP group, with the arithmetic spelled out."""
    memory = int(system["gpu"]["mem_capacity"])
    usable = int(memory * GPU_MEM_UTILISATION)
    weights = arch.params * DTYPE_BYTES // tp
    # AIConfigurator's reserve for activations and runtime (other_mem, 3.5 GiB) plus its NCCL
    # buffer allowance for this TP size.
    reserve = int(system["misc"]["other_mem"]) + int(system["misc"]["nccl_mem"][tp])
    per_token = arch.kv_bytes_per_token(tp)
    tokens = (usable - weights - reserve) // per_token
    return {
        "tokens": tokens,
        "formula": "(mem_capacity * 0.9 - params * 2 / tp - (other_mem + nccl_mem[tp]))"
        " // (2 * layers * kv_heads / tp * head_dim * 2)",
        "mem_capacity_bytes": memory,
        "usable_bytes": usable,
        "params": arch.params,
        "weight_bytes_per_gpu": weights,
        "reserve_bytes_per_gpu": reserve,
        "kv_bytes_per_token_per_gpu": per_token,
    }
