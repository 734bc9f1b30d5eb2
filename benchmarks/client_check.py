"""Do two benchmark clients measure alike? Each against the proxy's hop log of its own run.

``kairos bench`` and ``vllm bench serve`` cannot replay the same slice in the same run, and on
the 2-core VM two runs of one slice differ by more than the 2 points the cross-check asks for
(the engines share the cores with the proxy and the client). So each client is held against an
instrument that saw its run: the Kairos proxy in front of the vLLM pair logs every request's
arrival, first streamed byte and end (``hops.jsonl``). Per request, the client's TTFT and TPOT
are compared with the proxy's over the same request, and the SLO attainment of both. If each
client agrees with the proxy on its own run, the clients measure alike and whatever separates
their figures is the run.

    python benchmarks/client_check.py RUN_DIR [--ttft-slo 3 --tpot-slo 0.15]

``RUN_DIR`` is a pair's folder from ``benchmarks/vllm_experiment.py``: ``hops.jsonl``,
``clients.json`` (each client's window in Unix seconds), ``bench/requests.jsonl`` and, if vLLM's
client ran, ``vllm-bench/vllm-bench.json`` (saved with ``--save-detailed``).

Requests are matched in send order, skipping proxy lines whose prompt length is not the
client's (vLLM's client sends a test request first, and counts prompts as its dataset
intended, so lengths are compared within a tolerance). The spread of the proxy-minus-client
arrival offsets is printed: a mismatch would show as a jump.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Sent:
    """One request as a client measured it (seconds; ``send`` on the client's own clock)."""

    send: float
    prompt_tokens: int
    output_tokens: int
    ok: bool
    ttft: float | None
    tpot: float | None


@dataclass(frozen=True, slots=True)
class Hop:
    """One request as the proxy logged it (Unix seconds)."""

    arrival: float
    first_chunk: float | None
    end: float
    prompt_tokens: int | None
    ok: bool


def kairos_bench_rows(path: Path) -> list[Sent]:
    """``kairos bench``'s ``requests.jsonl``."""
    rows = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        ttft, tpot = r["ttft_ms"], r["tpot_ms"]
        rows.append(
            Sent(
                send=float(r["arrival"]),
                prompt_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]),
                ok=r["status"] == "finished",
                ttft=None if ttft is None else ttft / 1e3,
                tpot=None if tpot is None else tpot / 1e3,
            )
        )
    return rows


def vllm_bench_rows(path: Path) -> list[Sent]:
    """``vllm bench serve``'s result file, saved with ``--save-detailed``. TPOT as vLLM
    computes it: (latency - TTFT) / (output tokens - 1), 0 for one token."""
    vb = json.loads(path.read_text())
    if "start_times" not in vb:
        raise ValueError(f"{path} has no per-request fields: run vllm bench with --save-detailed")
    rows = []
    for start, n_in, n_out, ttft, latency, error in zip(
        vb["start_times"], vb["input_lens"], vb["output_lens"], vb["ttfts"], vb["latencies"],
        vb["errors"], strict=True,
    ):  # fmt: skip
        ok = not error
        tpot = (latency - ttft) / (n_out - 1) if ok and n_out > 1 else (0.0 if ok else None)
        rows.append(Sent(float(start), int(n_in), int(n_out), ok, ttft if ok else None, tpot))
    return rows


def hop_rows(path: Path, since: float, until: float) -> list[Hop]:
    """The proxy's lines for requests that arrived in ``[since, until)``."""
    hops = []
    for line in path.read_text().splitlines():
        h = json.loads(line)
        if since <= h["arrival"] < until:
            ok = h["status"] == "ok"
            hops.append(Hop(h["arrival"], h["first_chunk"], h["end"], h.get("prompt_tokens"), ok))
    return sorted(hops, key=lambda h: h.arrival)


def match(
    sent: Sequence[Sent], hops: Sequence[Hop], *, look_ahead: int = 3
) -> list[tuple[Sent, Hop]]:
    """Pairs in send order. A proxy line whose prompt length is not the client's (within 5%,
    or 2 tokens) is skipped, at most ``look_ahead`` in a row; a client row with no match in
    that reach is left out (and counted by the caller)."""
    pairs: list[tuple[Sent, Hop]] = []
    j = 0
    for s in sorted(sent, key=lambda s: s.send):
        for k in range(j, min(j + look_ahead + 1, len(hops))):
            n = hops[k].prompt_tokens
            if n is not None and abs(n - s.prompt_tokens) <= max(2, 0.05 * s.prompt_tokens):
                pairs.append((s, hops[k]))
                j = k + 1
                break
    return pairs


def compare(
    sent: Sequence[Sent], hops: Sequence[Hop], ttft_slo: float, tpot_slo: float
) -> dict[str, Any]:
    """The client's attainment against the proxy's over the same requests, and the per-request
    gaps (client minus proxy)."""
    pairs = match(sent, hops)
    client = [0, 0, 0]
    proxy = [0, 0, 0]
    d_ttft: list[float] = []
    d_tpot: list[float] = []
    for s, h in pairs:
        p_ttft = None if h.first_chunk is None or not h.ok else h.first_chunk - h.arrival
        p_tpot = None
        if p_ttft is not None and h.first_chunk is not None:
            n = s.output_tokens
            p_tpot = (h.end - h.first_chunk) / (n - 1) if n > 1 else 0.0
        for tally, ttft, tpot in ((client, s.ttft, s.tpot), (proxy, p_ttft, p_tpot)):
            t_ok = ttft is not None and ttft <= ttft_slo
            p_ok = tpot is not None and tpot <= tpot_slo
            tally[0] += t_ok
            tally[1] += p_ok
            tally[2] += t_ok and p_ok
        if s.ttft is not None and p_ttft is not None:
            d_ttft.append(s.ttft - p_ttft)
        if s.tpot is not None and p_tpot is not None and s.output_tokens > 1:
            d_tpot.append(s.tpot - p_tpot)
    offsets = [h.arrival - s.send for s, h in pairs]
    mid = statistics.median(offsets) if offsets else 0.0
    n = len(pairs)

    def pct(x: int) -> float | None:
        return 100.0 * x / n if n else None

    return {
        "requests": len(sent),
        "matched": n,
        "offset_spread_ms": 1e3 * max((abs(o - mid) for o in offsets), default=0.0),
        "client": {"ttft": pct(client[0]), "tpot": pct(client[1]), "joint": pct(client[2])},
        "proxy": {"ttft": pct(proxy[0]), "tpot": pct(proxy[1]), "joint": pct(proxy[2])},
        "mean_ttft_gap_ms": 1e3 * statistics.fmean(d_ttft) if d_ttft else None,
        "p90_ttft_gap_ms": 1e3 * _quantile(d_ttft, 0.9) if d_ttft else None,
        "mean_tpot_gap_ms": 1e3 * statistics.fmean(d_tpot) if d_tpot else None,
        "p90_tpot_gap_ms": 1e3 * _quantile(d_tpot, 0.9) if d_tpot else None,
    }


def check_run(run: Path, ttft_slo: float, tpot_slo: float) -> dict[str, dict[str, Any]]:
    """Every client that ran in ``run``, against the proxy's log of its window."""
    windows = json.loads((run / "clients.json").read_text())
    readers = {
        "kairos bench": (run / "bench" / "requests.jsonl", kairos_bench_rows),
        "vllm bench": (run / "vllm-bench" / "vllm-bench.json", vllm_bench_rows),
    }
    out = {}
    for name, (since, until) in windows.items():
        path, read = readers[name]
        hops = hop_rows(run / "hops.jsonl", since, until)
        out[name] = compare(read(path), hops, ttft_slo, tpot_slo)
    return out


def print_check(checks: dict[str, dict[str, Any]]) -> None:
    """One block per client: its attainment, the proxy's over the same requests, and the
    per-request gaps (client minus proxy; mean, and p90 in brackets)."""
    print(f"{'client':13s} {'matched':>9s} {'by':7s} {'TTFT%':>6s} {'TPOT%':>6s} {'joint%':>7s}"
          f" {'TTFT gap ms':>17s} {'TPOT gap ms':>17s}")  # fmt: skip
    for name, c in checks.items():
        matched = f"{c['matched']}/{c['requests']}"
        ttft_gap = f"{_ms(c['mean_ttft_gap_ms'])} ({_ms(c['p90_ttft_gap_ms'])})"
        tpot_gap = f"{_ms(c['mean_tpot_gap_ms'])} ({_ms(c['p90_tpot_gap_ms'])})"
        for label, by, tail in ((name, "client", f" {ttft_gap:>17s} {tpot_gap:>17s}"),
                                ("", "proxy", "")):  # fmt: skip
            a = c[by]
            print(f"{label:13s} {matched if label else '':>9s} {by:7s} {_pct(a['ttft']):>6s} "
                  f"{_pct(a['tpot']):>6s} {_pct(a['joint']):>7s}{tail}")  # fmt: skip
        spread = c["offset_spread_ms"]
        print(f"{'':23s} arrival offsets within {spread:.1f} ms of their median")


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--ttft-slo", type=float, default=3.0)
    p.add_argument("--tpot-slo", type=float, default=0.15)
    args = p.parse_args()
    checks = check_run(args.run, args.ttft_slo, args.tpot_slo)
    (args.run / "client-check.json").write_text(json.dumps(checks, indent=1))
    print_check(checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
