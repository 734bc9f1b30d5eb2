"""``kairos bench``: replay a trace against an OpenAI-compatible server and report its SLOs."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kairos import eventloop
from kairos.bench import BenchResult, ReplayConfig, run_bench
from kairos.bench.checks import warnings
from kairos.bench.client import ENDPOINTS
from kairos.commands.workload import add_length_options, trace_slice
from kairos.core.metrics import summarize
from kairos.core.slo import SLO
from kairos.report import print_summary, write_run
from kairos.traces import Trace

EPILOG = """examples:
  kairos bench --url http://localhost:8000 --trace azure-conv --num-requests 500 --out runs/b
  kairos bench --url http://gpu1:8000/v1 --trace mooncake-conv --rate-scale 0.5 \\
      --endpoint chat --max-input-tokens 30000 --out runs/vllm-mooncake
The same trace options as `kairos sim`, so a simulated and a measured run can be compared."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="replay a trace against an OpenAI-compatible server and measure SLO attainment",
        description="Replay a trace open loop against an OpenAI-compatible server (kairos serve, "
        "vllm serve) and report SLO attainment, goodput, throughput and latency percentiles "
        "as `kairos sim` does. Writes OUT/summary.json, OUT/requests.jsonl and plots.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _server_options(p.add_argument_group("server"))
    _workload_options(p.add_argument_group("workload (as in kairos sim)"))
    _client_options(p.add_argument_group("client"))
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=Path("runs/bench"), metavar="DIR")
    o.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    o.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    p.set_defaults(func=run)


def _server_options(s: Any) -> None:
    s.add_argument("--url", required=True, help="server base URL, e.g. http://localhost:8000")
    s.add_argument("--model", help="model name (default: the first one GET /v1/models lists)")
    s.add_argument("--endpoint", choices=list(ENDPOINTS), default="completions")
    s.add_argument("--api-key", metavar="KEY", help="sent as 'Authorization: Bearer KEY'")
    s.add_argument(
        "--decode-instances",
        type=int,
        default=1,
        metavar="N",
        help="the server's decode instances; decode throughput is reported per instance",
    )


def _workload_options(w: Any) -> None:
    w.add_argument("--trace", required=True, metavar="NAME|FILE", help="bundled trace or a file")
    w.add_argument(
        "--rate-scale", type=float, default=1.0, metavar="X", help="multiply the request rate by X"
    )
    w.add_argument("--num-requests", type=int, metavar="N", help="use only the first N requests")
    w.add_argument("--start", type=float, default=0.0, metavar="S", help="skip the first S seconds")
    w.add_argument("--duration", type=float, metavar="S", help="use S seconds of the trace")
    w.add_argument(
        "--ttft-slo", type=float, default=1.0, metavar="SECONDS", help="TTFT SLO (default 1.0)"
    )
    w.add_argument(
        "--tpot-slo", type=float, default=0.05, metavar="SECONDS", help="TPOT SLO (default 0.05)"
    )
    add_length_options(w)


def _client_options(c: Any) -> None:
    c.add_argument(
        "--max-concurrency",
        type=int,
        metavar="N",
        help="at most N requests in flight; later ones wait (and their send lag shows it)",
    )
    c.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="fail a request after this long without a byte from the server (default 600)",
    )
    c.add_argument("--seed", type=int, default=0, help="seed of the prompt words (default 0)")


def workload(args: argparse.Namespace) -> Trace:
    """The trace slice ``kairos sim`` runs for the same options."""
    return trace_slice(args)


def run(args: argparse.Namespace) -> int:
    config = ReplayConfig(
        SLO(args.ttft_slo, args.tpot_slo),
        seed=args.seed,
        max_concurrency=args.max_concurrency,
        timeout=args.timeout,
    )
    if args.decode_instances < 1:
        raise ValueError(f"--decode-instances must be >= 1, got {args.decode_instances}")
    trace = workload(args)
    _raise_open_file_limit()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    with tqdm(total=len(trace), desc="bench", unit="req", disable=args.quiet) as bar:
        result = eventloop.run(
            run_bench(
                args.url,
                trace,
                config,
                model=args.model,
                endpoint=args.endpoint,
                api_key=args.api_key,
                progress=bar.update,
            )
        )
    extra = {**_run_info(args, trace, result, started), **result.checks}
    summary = summarize(result.records, num_decode_instances=args.decode_instances, extra=extra)
    write_run(args.out, summary, result.records)
    for line in warnings(result.checks):
        print(f"kairos bench: warning: {line}", file=sys.stderr)
    if not args.no_plots:
        _plots(args.out, result, trace)
    if not args.quiet:
        print_summary(summary, f"kairos bench: {trace.name} -> {args.url} ({result.target.model})")
        print(f"wrote {args.out}/")
    return 0


def _raise_open_file_limit() -> None:
    """Open loop means one connection per in-flight request; the usual soft limit of 1024 open
    files would turn a burst into 'Too many open files' failures, so lift it to the hard one."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit can exceed the kernel's nr_open: then the soft one stays.
    with contextlib.suppress(ValueError, OSError):
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _plots(out: Path, result: BenchResult, trace: Trace) -> None:
    try:
        from kairos.bench.plots import write_plots

        write_plots(out, result.records, f"{trace.name} on {result.target.model}")
    except ImportError:
        # Plots are optional (the plot extra); the run itself is already written.
        print("kairos bench: warning: matplotlib is not installed; no plots", file=sys.stderr)


def _run_info(
    args: argparse.Namespace, trace: Trace, result: BenchResult, started: str
) -> dict[str, object]:
    calibration = result.calibration
    return {
        "url": args.url,
        "model": result.target.model,
        "endpoint": args.endpoint,
        "trace": trace.name,
        "trace_source": trace.source,
        "rate_scale": args.rate_scale,
        "request_rate": trace.rate,
        "ttft_slo_ms": args.ttft_slo * 1e3,
        "tpot_slo_ms": args.tpot_slo * 1e3,
        "seed": args.seed,
        "max_concurrency": args.max_concurrency,
        "max_input_tokens": args.max_input_tokens,
        "max_output_tokens": args.max_output_tokens,
        "decode_instances": args.decode_instances,
        "calibration_a": None if calibration is None else calibration.a,
        "calibration_b": None if calibration is None else calibration.b,
        "started_at": started,
    }
