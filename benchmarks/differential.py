"""The same trace slice through ``kairos sim`` and through ``kairos serve`` (emulated) +
``kairos bench``: placements, joint attainment and median TTFT side by side.

    python benchmarks/differential.py [--num-requests 300] [--rate-scale 5] [--instances 2]

Prints the figures the issue asks for (every placement equal, joint attainment within 2
points, median TTFT within 5%) and exits non-zero when one is missed. The test suite runs a
smaller version of it (tests/test_differential.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kairos.bench.replay import ReplayConfig
from kairos.bench.run import run_bench
from kairos.core.metrics import summarize
from kairos.core.slo import SLO
from kairos.profiles import DEFAULT_PROFILE, load_profile
from kairos.sim import ClusterConfig, simulate
from kairos.sim.workload import build_requests
from kairos.traces import Trace, cap_lengths, load_trace, slice_count, time_scale


@dataclass
class Outcome:
    placements_equal: int
    placements_total: int
    joint_sim: float
    joint_serve: float
    median_ttft_sim: float
    median_ttft_serve: float
    statuses: dict[str, int]

    @property
    def ttft_diff(self) -> float:
        return abs(self.median_ttft_serve / self.median_ttft_sim - 1)

    def passed(self) -> bool:
        return (
            self.placements_equal == self.placements_total
            and abs(self.joint_serve - self.joint_sim) <= 0.02
            and self.ttft_diff < 0.05
        )

    def report(self) -> str:
        return (
            f"placements equal: {self.placements_equal}/{self.placements_total}\n"
            f"joint attainment: sim {100 * self.joint_sim:.1f}%, "
            f"serve {100 * self.joint_serve:.1f}% "
            f"(diff {100 * (self.joint_serve - self.joint_sim):+.1f} points)\n"
            f"median TTFT: sim {1e3 * self.median_ttft_sim:.1f} ms, "
            f"serve {1e3 * self.median_ttft_serve:.1f} ms "
            f"(diff {100 * self.ttft_diff:.1f}%)\n"
            f"serve statuses: {self.statuses}"
        )


def workload(num_requests: int, rate_scale: float, max_output: int) -> Trace:
    trace = slice_count(load_trace("azure-conv"), num_requests)
    return time_scale(cap_lengths(trace, 8192, max_output), rate_scale)


def start_server(log: Path, args: list[str]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "kairos.cli", "serve", "--port", "0", "--request-log", str(log)]
    proc = subprocess.Popen(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "ready on " in line:
            return proc, line.split("ready on ")[1].split()[0].removesuffix("/v1")
    proc.kill()
    raise RuntimeError("kairos serve did not start:\n" + "".join(lines))


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def compare(
    trace: Trace, slo: SLO, instances: int, prefill: str, decode: str, workdir: Path
) -> Outcome:
    profile = load_profile(DEFAULT_PROFILE)
    requests, outputs = build_requests(trace.arrivals, trace.input_tokens, trace.output_tokens, slo)
    config = ClusterConfig(prefill_instances=instances, decode_instances=instances)
    sim = simulate(
        requests, outputs, profile, config, prefill_policy=prefill, decode_policy=decode
    ).records

    log = workdir / "serve-requests.jsonl"
    proc, url = start_server(
        log,
        [
            f"--prefill-instances={instances}",
            f"--decode-instances={instances}",
            f"--prefill-policy={prefill}",
            f"--decode-policy={decode}",
            f"--ttft-slo={slo.ttft}",
            f"--tpot-slo={slo.tpot}",
        ],
    )
    try:
        result = asyncio.run(run_bench(url, trace, ReplayConfig(slo=slo, seed=0)))
    finally:
        stop_server(proc)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    # The bench's calibration probes carry non-numeric ids; trace requests carry their index.
    served = {int(r["request_id"]): r for r in rows if str(r["request_id"]).isdigit()}
    bench = result.records
    equal = sum(
        1
        for s in sim
        if s.id in served
        and (served[s.id]["prefill_instance"], served[s.id]["decode_instance"])
        == (s.prefill_instance, s.decode_instance)
    )
    statuses: dict[str, int] = {}
    for r in bench:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    joint = [
        summarize(recs, num_decode_instances=instances)["joint_attainment"] for recs in (sim, bench)
    ]
    ttft = [float(np.median([r.ttft for r in recs if r.ttft is not None])) for recs in (sim, bench)]
    return Outcome(equal, len(sim), joint[0], joint[1], ttft[0], ttft[1], statuses)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-requests", type=int, default=300)
    p.add_argument("--rate-scale", type=float, default=5.0)
    p.add_argument("--max-output", type=int, default=256)
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--prefill-policy", default="kairos")
    p.add_argument("--decode-policy", default="kairos")
    p.add_argument("--ttft-slo", type=float, default=0.25)
    p.add_argument("--tpot-slo", type=float, default=0.012)
    args = p.parse_args()
    trace = workload(args.num_requests, args.rate_scale, args.max_output)
    slo = SLO(args.ttft_slo, args.tpot_slo)
    print(
        f"azure-conv, first {len(trace)} requests at {args.rate_scale}x "
        f"({trace.rate:.1f} req/s), {args.instances}P{args.instances}D, "
        f"{args.prefill_policy}/{args.decode_policy}, SLO {slo.ttft}s/{slo.tpot}s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        outcome = compare(
            trace, slo, args.instances, args.prefill_policy, args.decode_policy, Path(tmp)
        )
    print(outcome.report())
    print("PASS" if outcome.passed() else "FAIL")
    return 0 if outcome.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
