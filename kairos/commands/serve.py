"""``kairos serve``: a P/D-disaggregated OpenAI-compatible server (emulated engine for now)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.profiles import DEFAULT_PROFILE

EPILOG = """examples:
  kairos serve
  kairos serve --prefill-instances 2 --decode-instances 2 --prefill-policy kairos \\
      --decode-policy kairos --request-log runs/serve/requests.jsonl
  curl -N localhost:8000/v1/completions -H 'content-type: application/json' \\
      -d '{"model": "Llama-3-8B", "prompt": "hello world", "max_tokens": 8, "stream": true}'
See docs/serve.md for the API, SLO headers and error codes."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve an OpenAI-compatible API on a P/D-disaggregated (emulated) cluster",
        description="Start a proxy (HTTP API, global prefill queue) and one worker process per "
        "prefill and decode instance; Ctrl-C or SIGTERM stops them all.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    n = p.add_argument_group("network")
    n.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    n.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    n.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY'")
    c = p.add_argument_group("cluster")
    c.add_argument("--engine", default="emulated", help="execution backend (only: emulated)")
    c.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        metavar="NAME|FILE",
        help=f"hardware profile the engine follows (default {DEFAULT_PROFILE})",
    )
    c.add_argument("--model", metavar="NAME", help="model name clients use (default: profile's)")
    c.add_argument("--prefill-instances", type=int, default=1, metavar="N")
    c.add_argument("--decode-instances", type=int, default=1, metavar="M")
    s = p.add_argument_group("scheduling")
    s.add_argument("--prefill-policy", default="fcfs", choices=PREFILL_POLICIES.names())
    s.add_argument("--decode-policy", default="fcfs", choices=DECODE_POLICIES.names())
    s.add_argument(
        "--ttft-slo", type=float, default=1.0, metavar="SECONDS", help="default TTFT SLO (1.0)"
    )
    s.add_argument(
        "--tpot-slo", type=float, default=0.05, metavar="SECONDS", help="default TPOT SLO (0.05)"
    )
    s.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        metavar="N",
        help="requests waiting for prefill beyond which new ones get 429 (default 1024)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--request-log", type=Path, metavar="PATH", help="write one JSON line per ended request"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kairos.serve.config import ServeConfig
    from kairos.serve.launch import serve

    config = ServeConfig(
        host=args.host,
        port=args.port,
        engine=args.engine,
        profile=args.profile,
        model=args.model,
        prefill_instances=args.prefill_instances,
        decode_instances=args.decode_instances,
        prefill_policy=args.prefill_policy,
        decode_policy=args.decode_policy,
        ttft_slo=args.ttft_slo,
        tpot_slo=args.tpot_slo,
        max_queue=args.max_queue,
        api_key=args.api_key,
        request_log=args.request_log,
    )
    return serve(config)
