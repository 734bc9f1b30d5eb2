"""Measured kernel tables (NVIDIA AIConfigurator, vLLM backend) and how we interpolate in them.

Only the fitting command uses this module (it needs pyarrow and pyyaml, the ``fit`` extra); the
runtime reads the fitted JSON files and never touches the tables.

Interpolation rules (each chosen to be exact for the cost shape the kernel has):
- GEMM: piecewise-linear in ``m`` after a suffix-minimum envelope (a GEMM can always pad to a
  larger measured ``m``, so a smaller ``m`` is never slower; this also removes measurement
  jitter), then bilinear in ``(n, k)``. Cost is affine in ``n*k`` in both the memory-bound and the
  compute-bound regime, so linear interpolation between grid columns is exact there. Beyond the
  last grid value (LM head ``n = 128256 > 65536``; ``m = 16384`` on A100, whose grid stops at
  8192) we extrapolate linearly through the last two grid points.
- Attention: log-log interpolation in batch size and sequence length (cost is a power law in
  both). The grid is ragged: large batches were only measured at short lengths. Where no larger
  measured batch covers a length, we scale the largest covered batch by ``batch / b``; attention
  of independent requests is additive once the GPU is saturated, which large batches are.
- All-reduce: log-log interpolation in message size; duplicate rows are reduced to their median.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow.parquet as pq
import yaml

# Which measured build of each GPU we use, and the attention kernel vLLM runs there by default
# (FlashAttention-2 on Ampere, FlashAttention-3 on Hopper).
GPU_BUILDS: dict[str, dict[str, str]] = {
    "a100_sxm": {"vllm": "0.14.0", "nccl": "2.27.3", "attention_kernel": "vllm_flash_attn"},
    "h100_sxm": {"vllm": "0.24.0", "nccl": "2.27.3", "attention_kernel": "vllm_flash_attn_fa3"},
}
K = TypeVar("K")
V = TypeVar("V")
MS = 1e-3  # the tables are in milliseconds; everything we return is in seconds


def interp_linear(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Piecewise-linear interpolation on sorted ``xs``, extrapolating linearly past either end."""
    if len(xs) == 1:
        return float(ys[0])
    i = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
    w = (x - xs[i]) / (xs[i + 1] - xs[i])
    return float(ys[i] + w * (ys[i + 1] - ys[i]))


def interp_loglog(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    return float(np.exp(interp_linear(np.log(x), np.log(xs), np.log(ys))))


def _read(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return {name: np.asarray(table.column(name).to_pylist()) for name in table.schema.names}


def _bracket(grid: list[int], x: float) -> tuple[int, int]:
    """Indices of the two grid values around ``x`` (the last two when ``x`` lies beyond)."""
    i = min(max(bisect.bisect_left(grid, x) - 1, 0), len(grid) - 2)
    return i, i + 1


class GemmTable:
    """bf16 GEMM latency by (m, n, k)."""

    def __init__(self, m: np.ndarray, n: np.ndarray, k: np.ndarray, ms: np.ndarray) -> None:
        columns: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
        for mi, ni, ki, ti in zip(m.tolist(), n.tolist(), k.tolist(), ms.tolist(), strict=True):
            columns[(ni, ki)].append((mi, ti))
        self._cols: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for key, rows in columns.items():
            rows.sort()
            xs = np.array([r[0] for r in rows], dtype=float)
            ts = np.array([r[1] for r in rows], dtype=float)
            envelope = np.minimum.accumulate(ts[::-1])[::-1]
            self._cols[key] = (xs, envelope * MS)
        self.ns = sorted({key[0] for key in self._cols})
        # H100 lacks only the (65536, 65536) column, which no model here needs; a missing
        # corner is reported when a lookup needs it.
        self.ks = sorted({key[1] for key in self._cols})

    def time(self, m: float, n: float, k: float) -> float:
        """Seconds for an (m x k) @ (k x n) bf16 GEMM."""
        i0, i1 = _bracket(self.ns, n)
        j0, j1 = _bracket(self.ks, k)
        n0, n1, k0, k1 = self.ns[i0], self.ns[i1], self.ks[j0], self.ks[j1]
        wn = (n - n0) / (n1 - n0)
        wk = (k - k0) / (k1 - k0)

        def at(nn: int, kk: int) -> float:
            if (nn, kk) not in self._cols:
                raise ValueError(f"GEMM table has no (n={nn}, k={kk}) column")
            xs, ts = self._cols[(nn, kk)]
            return interp_linear(m, xs, ts)

        low = (1 - wk) * at(n0, k0) + wk * at(n0, k1)
        high = (1 - wk) * at(n1, k0) + wk * at(n1, k1)
        return max((1 - wn) * low + wn * high, 0.0)


class RaggedTable:
    """Attention latency by (batch size, length) on a grid where big batches lack long lengths."""

    def __init__(self, batch: np.ndarray, length: np.ndarray, ms: np.ndarray) -> None:
        rows: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for b, x, t in zip(batch.tolist(), length.tolist(), ms.tolist(), strict=True):
            rows[b].append((x, t))
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for b, pts in rows.items():
            pts.sort()
            xs = np.array([p[0] for p in pts], dtype=float)
            ts = np.array([p[1] for p in pts], dtype=float)
            self._rows[b] = (xs, np.minimum.accumulate(ts[::-1])[::-1] * MS)
        self.batches = sorted(self._rows)

    def _row(self, b: int, x: float) -> float | None:
        xs, ts = self._rows[b]
        if x < xs[0] or x > xs[-1]:
            return None
        return interp_loglog(x, xs, ts)

    def time(self, batch: float, x: float) -> float:
        """Seconds for ``batch`` requests of length ``x`` each."""
        covered = [(b, t) for b in self.batches if (t := self._row(b, x)) is not None]
        if not covered:
            raise ValueError(f"length {x} is outside every measured row")
        below = [(b, t) for b, t in covered if b <= batch]
        above = [(b, t) for b, t in covered if b >= batch]
        if below and above:
            (b0, t0), (b1, t1) = below[-1], above[0]
            if b0 == b1:
                return t0
            xs, ts = np.array([b0, b1], dtype=float), np.array([t0, t1])
            return interp_loglog(batch, xs, ts)
        if below:
            b0, t0 = below[-1]
            return t0 * batch / b0
        raise ValueError(f"batch {batch} is below every measured row at length {x}")


class CollectiveTable:
    """All-reduce latency by message size (bytes) for one GPU count and backend."""

    def __init__(self, size: np.ndarray, ms: np.ndarray) -> None:
        by_size: dict[int, list[float]] = defaultdict(list)
        for s, t in zip(size.tolist(), ms.tolist(), strict=True):
            by_size[s].append(t)
        sizes = sorted(by_size)
        self._xs = np.array(sizes, dtype=float)
        self._ts = np.array([float(np.median(by_size[s])) for s in sizes]) * MS

    def time(self, message_bytes: float) -> float:
        return interp_loglog(max(message_bytes, self._xs[0]), self._xs, self._ts)


@dataclass(frozen=True)
class KernelTables:
    """Everything measured for one GPU, plus the files it came from (relative paths)."""

    gpu: str
    system: dict[str, Any]
    gemm: GemmTable
    context_attention: dict[tuple[int, int], RaggedTable]
    generation_attention: dict[tuple[int, int], RaggedTable]
    allreduce: dict[tuple[int, str], CollectiveTable]
    files: tuple[str, ...]

    def context_attn(self, heads: tuple[int, int]) -> RaggedTable:
        return _need(self.context_attention, heads, "context attention", self.gpu)

    def generation_attn(self, heads: tuple[int, int]) -> RaggedTable:
        return _need(self.generation_attention, heads, "generation attention", self.gpu)

    def allreduce_table(self, gpus: int, backend: str) -> CollectiveTable:
        return _need(self.allreduce, (gpus, backend), "all-reduce", self.gpu)


def _need(tables: dict[K, V], key: K, what: str, gpu: str) -> V:
    if key not in tables:
        raise ValueError(f"no {what} measurements for {key} on {gpu}; have {list(tables)}")
    return tables[key]


def _attention(path: Path, kernel: str) -> dict[tuple[int, int], RaggedTable]:
    d = _read(path)
    keep = (d["head_dim"] == 128) & (d["kv_cache_dtype"] == "bfloat16")
    keep &= d["kernel_source"] == kernel
    if "window_size" in d:
        keep &= d["window_size"] == 0
    generation = d["op_name"][0] == "generation_attention"
    # Decode rows record `step` = tokens already in the cache, so the context is step + 1.
    length = d["step"] + 1 if generation else d["isl"]
    out: dict[tuple[int, int], RaggedTable] = {}
    heads_kv = zip(d["num_heads"][keep], d["num_key_value_heads"][keep], strict=True)
    pairs = sorted({(int(h), int(kv)) for h, kv in heads_kv})
    for heads in pairs:
        sel = keep & (d["num_heads"] == heads[0]) & (d["num_key_value_heads"] == heads[1])
        out[heads] = RaggedTable(d["batch_size"][sel], length[sel], d["latency"][sel])
    return out


def _allreduce(custom: Path, nccl: Path) -> dict[tuple[int, str], CollectiveTable]:
    out: dict[tuple[int, str], CollectiveTable] = {}
    c = _read(custom)
    for gpus in sorted(set(c["num_gpus"].tolist())):
        for backend in ("vllm_eager", "vllm_graph"):
            sel = (c["num_gpus"] == gpus) & (c["backend"] == backend)
            out[(gpus, backend)] = CollectiveTable(c["message_size"][sel], c["latency"][sel])
    n = _read(nccl)
    for gpus in sorted(set(n["num_gpus"].tolist())):
        sel = (n["num_gpus"] == gpus) & (n["op_name"] == "all_reduce") & (n["nccl_dtype"] == "half")
        out[(gpus, "nccl")] = CollectiveTable(n["message_size"][sel], n["latency"][sel])
    return out


def load_tables(shared: Path, gpu: str) -> KernelTables:
    """Load the AIConfigurator tables for ``gpu`` (``a100_sxm`` or ``h100_sxm``)."""
    build = GPU_BUILDS[gpu]
    base = f"aiconfigurator/data/{gpu}"
    rel = {
        "system": f"aiconfigurator/{gpu}.yaml",
        "gemm": f"{base}/gemm/vllm/{build['vllm']}/gemm_perf.parquet",
        "ctx": f"{base}/attention/vllm/{build['vllm']}/context_attention_perf.parquet",
        "gen": f"{base}/attention/vllm/{build['vllm']}/generation_attention_perf.parquet",
        "custom": f"{base}/comm/vllm/{build['vllm']}/custom_allreduce_perf.parquet",
        "nccl": f"{base}/comm/nccl/{build['nccl']}/nccl_perf.parquet",
    }
    system = yaml.safe_load((shared / rel["system"]).read_text())
    g = _read(shared / rel["gemm"])
    bf16 = g["gemm_dtype"] == "bfloat16"
    kernel = build["attention_kernel"]
    return KernelTables(
        gpu=gpu,
        system=system,
        gemm=GemmTable(g["m"][bf16], g["n"][bf16], g["k"][bf16], g["latency"][bf16]),
        context_attention=_attention(shared / rel["ctx"], kernel),
        generation_attention=_attention(shared / rel["gen"], kernel),
        allreduce=_allreduce(shared / rel["custom"], shared / rel["nccl"]),
        files=tuple(rel.values()),
    )
