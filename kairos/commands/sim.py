"""``kairos sim``: simulate a P/D cluster serving a trace, one run per policy pair."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tqdm import tqdm

from kairos.commands.workload import add_length_options, trace_slice
from kairos.core.metrics import summarize
from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.core.slo import SLO
from kairos.profiles import DEFAULT_PROFILE, load_profile
from kairos.report import print_comparison, print_summary, write_run
from kairos.sim import ClusterConfig, ControlPlane, simulate
from kairos.sim.predictors import PREDICTORS
from kairos.sim.workload import build_requests
from kairos.traces import Trace

EPILOG = """examples:
  kairos sim --trace azure-conv --num-requests 2000
  kairos sim --trace mooncake-conv --rate-scale 0.5 --prefill-instances 2 --decode-instances 2
  kairos sim --trace my_trace.csv --ttft-slo 2 --tpot-slo 0.1 --out runs/mine
  kairos sim --trace azure-code --compare fcfs/fcfs,sjf/fcfs
Run `kairos list` to see the bundled traces, profiles and policies."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sim",
        help="simulate a P/D-disaggregated cluster serving a trace",
        description="Simulate a prefill/decode-disaggregated cluster serving a trace and report "
        "SLO attainment, latency percentiles and throughput. Writes OUT/summary.json and "
        "OUT/requests.jsonl (per policy pair, in OUT/<prefill>-<decode>/ with --compare).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w = p.add_argument_group("workload")
    w.add_argument(
        "--trace",
        required=True,
        metavar="NAME|FILE",
        help="bundled trace name (azure-conv, azure-code, mooncake-conv), a synthetic one "
        "(synthetic-longtail) or a file",
    )
    w.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiply the trace's request rate by X (default 1)",
    )
    w.add_argument("--num-requests", type=int, metavar="N", help="use only the first N requests")
    w.add_argument(
        "--start", type=float, default=0.0, metavar="S", help="skip the trace's first S seconds"
    )
    w.add_argument("--duration", type=float, metavar="S", help="use S seconds of the trace")
    add_length_options(w)
    w.add_argument(
        "--ttft-slo",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="time-to-first-token SLO (default 1.0)",
    )
    w.add_argument(
        "--tpot-slo",
        type=float,
        default=0.05,
        metavar="SECONDS",
        help="time-per-output-token SLO (default 0.05)",
    )
    c = p.add_argument_group("cluster")
    c.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        metavar="NAME|FILE",
        help=f"hardware profile (default {DEFAULT_PROFILE})",
    )
    c.add_argument("--prefill-instances", type=int, default=1, metavar="N")
    c.add_argument("--decode-instances", type=int, default=1, metavar="M")
    c.add_argument(
        "--prefill-chunk",
        type=int,
        metavar="TOKENS",
        help="chunked prefill: at most TOKENS prompt tokens per prefill iteration, the policy "
        "re-planning at each chunk boundary (default: whole prompts)",
    )
    c.add_argument(
        "--first-token",
        choices=("prefill", "decode"),
        default="prefill",
        help="which instance emits the first token: prefill (DistServe, kairos serve's "
        "emulated engine; the default) or decode (vLLM's P/D proxy: TTFT then includes the KV "
        "hand-off and the decode instance's first step)",
    )
    c.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="log-normal noise on true step times (default 0: the profile is exact)",
    )
    c.add_argument(
        "--truth-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="true step times are X times the profile's (tests online correction)",
    )
    c.add_argument(
        "--control-latency",
        type=_control_plane,
        default=ControlPlane(),
        metavar="LEG=MS,...",
        help="fixed latencies of the serving stack's messages, in ms: ingress (client to "
        "prefill queue), dispatch (prefill decision to the instance), report (an instance's "
        "tokens to the scheduler), egress (scheduler to client); e.g. kairos serve on a "
        "2-core host: ingress=0.75,dispatch=0.35,report=0.15,egress=0.5 (default: all 0)",
    )
    s = p.add_argument_group("scheduling")
    s.add_argument("--prefill-policy", default="fcfs", choices=PREFILL_POLICIES.names())
    s.add_argument("--decode-policy", default="fcfs", choices=DECODE_POLICIES.names())
    s.add_argument(
        "--predictor",
        default="fitted",
        choices=PREDICTORS,
        help="what the policies predict with: the fitted models with online correction "
        "(default), the same uncorrected, or an oracle that knows the true latency model",
    )
    s.add_argument(
        "--policy-profile",
        metavar="NAME|FILE",
        help="the profile the policies predict with, when it is not the true one (--profile): "
        "e.g. a profile probed on a quiet engine, --profile refitted on the engine under load "
        "(default: --profile)",
    )
    s.add_argument(
        "--compare", metavar="P/D,P/D", help="run several prefill/decode policy pairs side by side"
    )
    o = p.add_argument_group("output")
    o.add_argument("--seed", type=int, default=0, help="seed for every random draw (default 0)")
    o.add_argument(
        "--out",
        type=Path,
        default=Path("runs/sim"),
        metavar="DIR",
        help="output directory (default runs/sim)",
    )
    o.add_argument("--quiet", action="store_true", help="no progress bar or tables")
    p.set_defaults(func=run)


def _control_plane(text: str) -> ControlPlane:
    try:
        return ControlPlane.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def workload(args: argparse.Namespace) -> Trace:
    return trace_slice(args)


def policy_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    if not args.compare:
        return [(args.prefill_policy, args.decode_policy)]
    pairs = []
    for item in args.compare.split(","):
        prefill, sep, decode = item.strip().partition("/")
        if not sep:
            raise ValueError(f"--compare item {item!r} is not PREFILL/DECODE")
        for name, registry in ((prefill, PREFILL_POLICIES), (decode, DECODE_POLICIES)):
            if name not in registry:
                raise ValueError(
                    f"unknown {registry.kind} {name!r} in --compare; "
                    f"choose from {', '.join(registry.names())}"
                )
        pairs.append((prefill, decode))
    return pairs


def run(args: argparse.Namespace) -> int:
    slo = SLO(args.ttft_slo, args.tpot_slo)
    profile = load_profile(args.profile)
    policy_profile = load_profile(args.policy_profile) if args.policy_profile else None
    config = ClusterConfig(
        prefill_instances=args.prefill_instances,
        decode_instances=args.decode_instances,
        noise=args.noise,
        truth_scale=args.truth_scale,
        prefill_chunk_tokens=args.prefill_chunk,
        first_token_on_decode=args.first_token == "decode",
        control=args.control_latency,
        seed=args.seed,
    )
    trace = workload(args)
    pairs = policy_pairs(args)
    summaries = {}
    for prefill, decode in pairs:
        label = f"{prefill}/{decode}"
        requests, outputs = build_requests(
            trace.arrivals, trace.input_tokens, trace.output_tokens, slo
        )
        with tqdm(
            total=len(requests), desc=label, unit="req", disable=args.quiet, leave=False
        ) as bar:
            result = simulate(
                requests,
                outputs,
                profile,
                config,
                prefill_policy=prefill,
                decode_policy=decode,
                predictor=args.predictor,
                policy_profile=policy_profile,
                progress=bar.update,
            )
        summary = summarize(
            result.records,
            num_decode_instances=config.decode_instances,
            predictor_mape=result.predictor_mape,
            extra=_run_info(args, trace, profile.name, prefill, decode, result.cpu_seconds),
        )
        out = args.out / f"{prefill}-{decode}" if len(pairs) > 1 else args.out
        write_run(out, summary, result.records)
        summaries[label] = summary
        if not args.quiet and len(pairs) == 1:
            print_summary(summary, f"kairos sim: {trace.name}, {label}, {profile.name}")
    if not args.quiet and len(pairs) > 1:
        print_comparison(summaries)
    if not args.quiet:
        print(f"wrote {args.out}/")
    return 0


def _run_info(
    args: argparse.Namespace, trace: Trace, profile: str, prefill: str, decode: str, cpu: float
) -> dict[str, object]:
    return {
        "trace": trace.name,
        "rate_scale": args.rate_scale,
        "request_rate": trace.rate,
        "profile": profile,
        "prefill_policy": prefill,
        "decode_policy": decode,
        "predictor": args.predictor,
        "policy_profile": args.policy_profile,
        "prefill_chunk_tokens": args.prefill_chunk,
        "prefill_instances": args.prefill_instances,
        "decode_instances": args.decode_instances,
        "ttft_slo_ms": args.ttft_slo * 1e3,
        "tpot_slo_ms": args.tpot_slo * 1e3,
        "seed": args.seed,
        "sim_cpu_seconds": cpu,
    }
