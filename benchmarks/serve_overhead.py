"""Overhead of the serving stack over the (emulated) engine it drives.

Starts ``kairos serve`` (1P1D, emulated engine, default profile), runs N concurrent streaming
requests with a fixed output length through httpx, and compares what the client saw with what
the engine did (the server's request log; both sides read the same CLOCK_MONOTONIC):

- TPOT gap: client-measured TPOT minus the engine's TPOT (its step times) per request;
- delivery delay: client receive time minus engine emission time, per token;
- streamed tokens per second the proxy sustained, against the engine's own token rate.

Targets: TPOT gap under 1 ms at p50 and 5 ms at p99.

    python benchmarks/serve_overhead.py [--requests 100] [--output-tokens 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from kairos import eventloop


def start_server(log: Path, args: list[str]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "kairos.cli", "serve", "--port", "0", "--request-log", str(log)]
    proc = subprocess.Popen(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "ready on " in line:
            return proc, line.split("ready on ")[1].split()[0]
    raise RuntimeError("server did not start")


async def one(client: httpx.AsyncClient, i: int, body: dict[str, object]) -> list[float]:
    """Receive times of every token of one streamed request (one stamp per network read)."""
    times: list[float] = []
    headers = {"x-request-id": f"bench-{i}"}
    async with client.stream("POST", "/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        async for chunk in r.aiter_raw():
            now = time.monotonic()
            n = chunk.count(b'"text"')
            times.extend([now] * n)
    return times


async def run_load(
    url: str, n: int, output: int, prompt_words: int
) -> tuple[list[list[float]], float]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        model = (await client.get("/models")).json()["data"][0]["id"]
        body = {
            "model": model,
            "prompt": " ".join(["w"] * prompt_words),
            "max_tokens": output,
            "stream": True,
        }
        start = time.monotonic()
        results = await asyncio.gather(*(one(client, i, body) for i in range(n)))
        return results, time.monotonic() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tpot(times: list[float]) -> float:
    return (times[-1] - times[0]) / (len(times) - 1)


def report(
    client: list[list[float]],
    log: Path,
    n: int,
    output: int,
    wall: float,
    proxy_cpu: float,
    client_cpu: float,
) -> None:
    recs = {r["request_id"]: r for r in map(json.loads, log.read_text().splitlines())}
    gaps, delays, engine_tpots = [], [], []
    for i, times in enumerate(client):
        engine = recs[f"bench-{i}"]["token_times"]
        assert len(times) == len(engine) == output, (len(times), len(engine))
        gaps.append(tpot(times) - tpot(engine))
        engine_tpots.append(tpot(engine))
        delays.extend(np.subtract(times, engine).tolist())
    g, d = np.array(gaps) * 1e3, np.array(delays) * 1e3
    engine_times = [recs[f"bench-{i}"]["token_times"] for i in range(n)]
    # Steady state: every stream has started and none has finished.
    lo = max(t[0] for t in engine_times)
    hi = min(t[-1] for t in engine_times)
    engine_rate = sum(
        np.count_nonzero((np.array(t) >= lo) & (np.array(t) <= hi)) for t in engine_times
    ) / (hi - lo)
    client_rate = sum(
        np.count_nonzero((np.array(t) >= lo) & (np.array(t) <= hi)) for t in client
    ) / (hi - lo)
    tokens = n * output
    print(f"{n} concurrent streams x {output} tokens, wall {wall:.2f} s")
    print(f"engine TPOT (its step times, per request): mean {np.mean(engine_tpots) * 1e3:.3f} ms")
    print(
        f"TPOT gap, client - engine: p50 {np.percentile(g, 50):+.3f} ms, "
        f"p99 {np.percentile(g, 99):+.3f} ms, max |gap| {np.abs(g).max():.3f} ms"
    )
    print(
        f"per-token delivery delay (client receive - engine emit): p50 "
        f"{np.percentile(d, 50):.3f} ms, p99 {np.percentile(d, 99):.3f} ms, max {d.max():.3f} ms"
    )
    print(
        f"streamed tokens/s with all {n} streams open: client received {client_rate:.0f}, "
        f"engine emitted {engine_rate:.0f}"
    )
    print(
        f"CPU: proxy {proxy_cpu:.2f} s ({proxy_cpu / tokens * 1e6:.1f} us per streamed token), "
        f"this client {client_cpu:.2f} s, over {wall:.2f} s on {os.cpu_count()} cores"
    )


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--output-tokens", type=int, default=256)
    p.add_argument("--prompt-words", type=int, default=100)
    p.add_argument("serve_args", nargs="*", help="extra kairos serve arguments (after --)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "requests.jsonl"
        proc, url = start_server(log, args.serve_args)
        try:
            cpu0, client0 = cpu_seconds(proc.pid), time.process_time()
            client, wall = eventloop.run(
                run_load(url, args.requests, args.output_tokens, args.prompt_words)
            )
            proxy_cpu = cpu_seconds(proc.pid) - cpu0
            client_cpu = time.process_time() - client0
            time.sleep(0.2)  # let the last log lines land
            report(client, log, args.requests, args.output_tokens, wall, proxy_cpu, client_cpu)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
