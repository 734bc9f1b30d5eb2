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
``clients.json`` (each client run's window in Unix seconds), ``bench/requests.jsonl`` and, if vLLM's
client ran, ``vllm-bench/vllm-bench.json`` (saved with ``--save-detailed``). A client's later
rounds on the same server (``--clients`` of the experiment) are ``bench-2``, ``vllm-bench-2``...

Requests are matched by send time and prompt length (``match``): the proxy's count against
the client's, within a tolerance, as vLLM's client counts prompts as its dataset intended.
How far the proxy's arrivals trail the clients' sends is printed too (median and largest,
past the clocks' offset): the time a request took to reach the proxy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
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
    sent: Sequence[Sent], hops: Sequence[Hop], *, reach: float = 5.0
) -> list[tuple[Sent, Hop]]:
    """Each client row with a proxy line within ``reach`` seconds of its send time (on the
    proxy's clock) and of the same prompt length (within 5%, or 2 tokens): the closest length,
    then the closest time. A row with none is left out (and counted by the caller).

    Matching by time, not by order: two requests sent within a millisecond may reach the proxy
    the other way round. The clocks' offset is the one that lines up most of the first rows
    (the proxy may log requests the replay did not send, such as a client's calibration)."""
    sent = sorted(sent, key=lambda s: s.send)
    hops = sorted(hops, key=lambda h: h.arrival)
    if not sent or not hops:
        return []
    arrivals = [h.arrival for h in hops]
    head = sent[:20]

    def lined_up(offset: float) -> int:
        return sum(
            any(_same_prompt(s, hops[k]) for k in _near(arrivals, s.send + offset, 0.05))
            for s in head
        )

    guesses = [h.arrival - sent[0].send for h in hops[:10] if _same_prompt(sent[0], h)]
    if not guesses:
        return []
    offset = max(guesses, key=lined_up)
    used: set[int] = set()
    pairs: list[tuple[Sent, Hop]] = []
    for s in sent:
        expected = s.send + offset
        free = [k for k in _near(arrivals, expected, reach)
                if k not in used and _same_prompt(s, hops[k])]  # fmt: skip
        if free:
            k = min(free, key=lambda k: (_prompt_gap(s, hops[k]), abs(arrivals[k] - expected)))
            used.add(k)
            pairs.append((s, hops[k]))
    return pairs


def _same_prompt(s: Sent, h: Hop) -> bool:
    return _prompt_gap(s, h) <= max(2, 0.05 * s.prompt_tokens)


def _prompt_gap(s: Sent, h: Hop) -> float:
    return float("inf") if h.prompt_tokens is None else abs(h.prompt_tokens - s.prompt_tokens)


def _near(arrivals: Sequence[float], t: float, reach: float) -> range:
    return range(bisect_left(arrivals, t - reach), bisect_right(arrivals, t + reach))


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
        p_ttft = p_tpot = None
        if h.ok and h.first_chunk is not None:
            p_ttft = h.first_chunk - h.arrival
            n = s.output_tokens
            p_tpot = (h.end - h.first_chunk) / (n - 1) if n > 1 else 0.0
        # A request that did not finish misses both SLOs, whatever its first token did (as
        # ``RequestRecord`` counts it), on either side.
        c_ttft, c_tpot = (s.ttft, s.tpot) if s.ok else (None, None)
        for tally, ttft, tpot in ((client, c_ttft, c_tpot), (proxy, p_ttft, p_tpot)):
            t_ok = ttft is not None and ttft <= ttft_slo
            p_ok = tpot is not None and tpot <= tpot_slo
            tally[0] += t_ok
            tally[1] += p_ok
            tally[2] += t_ok and p_ok
        if c_ttft is not None and p_ttft is not None:
            d_ttft.append(c_ttft - p_ttft)
        if c_tpot is not None and p_tpot is not None and s.output_tokens > 1:
            d_tpot.append(c_tpot - p_tpot)
    # Proxy arrival minus client send: the clocks' offset plus the way to the proxy, so
    # less the smallest of them, how much longer than the quickest a request took to arrive.
    offsets = [h.arrival - s.send for s, h in pairs]
    quickest = min(offsets, default=0.0)
    transit = [o - quickest for o in offsets]
    n = len(pairs)

    def pct(x: int) -> float | None:
        return 100.0 * x / n if n else None

    return {
        "requests": len(sent),
        "matched": n,
        "median_transit_ms": 1e3 * statistics.median(transit) if transit else None,
        "max_transit_ms": 1e3 * max(transit) if transit else None,
        "client": {"ttft": pct(client[0]), "tpot": pct(client[1]), "joint": pct(client[2])},
        "proxy": {"ttft": pct(proxy[0]), "tpot": pct(proxy[1]), "joint": pct(proxy[2])},
        "mean_ttft_gap_ms": 1e3 * statistics.fmean(d_ttft) if d_ttft else None,
        "p90_ttft_gap_ms": 1e3 * _quantile(d_ttft, 0.9) if d_ttft else None,
        "mean_tpot_gap_ms": 1e3 * statistics.fmean(d_tpot) if d_tpot else None,
        "p90_tpot_gap_ms": 1e3 * _quantile(d_tpot, 0.9) if d_tpot else None,
    }


# Each client's folder in a run and the file in it that holds its requests.
CLIENTS: dict[str, tuple[str, str, Callable[[Path], list[Sent]]]] = {
    "kairos bench": ("bench", "requests.jsonl", kairos_bench_rows),
    "vllm bench": ("vllm-bench", "vllm-bench.json", vllm_bench_rows),
}


def client_round(name: str) -> tuple[str, int]:
    """A client run's name, as ``clients.json`` keys it, split into the client and its round:
    ``"vllm bench"`` is round 1, ``"vllm bench #2"`` round 2 on the same server."""
    client, sep, n = name.partition(" #")
    if client not in CLIENTS or (sep and not (n.isdigit() and int(n) >= 2)):
        raise ValueError(f"unknown client run {name!r}: expected one of {sorted(CLIENTS)}, "
                         "optionally followed by ' #N' (N >= 2)")  # fmt: skip
    return client, int(n) if n else 1


def client_run(client: str, round_: int) -> str:
    """The name ``clients.json`` keys a client's round by: the inverse of ``client_round``."""
    return client if round_ == 1 else f"{client} #{round_}"


def client_folder(client: str, round_: int) -> str:
    """The folder of a client's round in a run: ``bench``, ``bench-2``, ..."""
    base = CLIENTS[client][0]
    return base if round_ == 1 else f"{base}-{round_}"


def check_run(run: Path, ttft_slo: float, tpot_slo: float) -> dict[str, dict[str, Any]]:
    """Every client run in ``run``, against the proxy's log of its window."""
    windows = json.loads((run / "clients.json").read_text())
    out = {}
    for name, (since, until) in windows.items():
        client, round_ = client_round(name)
        _, filename, read = CLIENTS[client]
        hops = hop_rows(run / "hops.jsonl", since, until)
        out[name] = compare(read(run / client_folder(client, round_) / filename), hops,
                            ttft_slo, tpot_slo)  # fmt: skip
    return out


def print_check(checks: dict[str, dict[str, Any]]) -> None:
    """One block per client: its attainment, the proxy's over the same requests, and the
    per-request gaps (client minus proxy; mean, and p90 in brackets)."""
    print(f"{'client':15s} {'matched':>9s} {'by':7s} {'TTFT%':>6s} {'TPOT%':>6s} {'joint%':>7s}"
          f" {'TTFT gap ms':>17s} {'TPOT gap ms':>17s}")  # fmt: skip
    for name, c in checks.items():
        matched = f"{c['matched']}/{c['requests']}"
        ttft_gap = f"{_ms(c['mean_ttft_gap_ms'])} ({_ms(c['p90_ttft_gap_ms'])})"
        tpot_gap = f"{_ms(c['mean_tpot_gap_ms'])} ({_ms(c['p90_tpot_gap_ms'])})"
        for label, by, tail in ((name, "client", f" {ttft_gap:>17s} {tpot_gap:>17s}"),
                                ("", "proxy", "")):  # fmt: skip
            a = c[by]
            print(f"{label:15s} {matched if label else '':>9s} {by:7s} {_pct(a['ttft']):>6s} "
                  f"{_pct(a['tpot']):>6s} {_pct(a['joint']):>7s}{tail}")  # fmt: skip
        print(f"{'':25s} reached the proxy {_ms(c['median_transit_ms'])} ms (median) and "
              f"{_ms(c['max_transit_ms'])} ms (largest) after the quickest request")  # fmt: skip


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
