"""``kairos serve``: a P/D-disaggregated OpenAI-compatible server on the emulated engine or vLLM."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.integrations.vllm import DEFAULT_VLLM_PROFILE, VLLM_OWN_SCHEDULER
from kairos.profiles import DEFAULT_PROFILE

EPILOG = """examples:
  kairos serve
  kairos serve --prefill-instances 2 --decode-instances 2 --prefill-policy kairos \\
      --decode-policy kairos --request-log runs/serve/requests.jsonl
  kairos serve --engine vllm --model-path models/smollm2-135m \\
      --prefill-policy kairos --decode-policy kairos      (docs/vllm.md)
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
    c.add_argument(
        "--engine",
        default="emulated",
        choices=["emulated", "vllm"],
        help="emulated (step times from the profile; default) or vllm (real vLLM instances)",
    )
    c.add_argument(
        "--profile",
        metavar="NAME|FILE",
        help=f"profile the engine follows, or (vllm) the policies predict with (default "
        f"{DEFAULT_PROFILE}; {DEFAULT_VLLM_PROFILE} with --engine vllm)",
    )
    c.add_argument("--model", metavar="NAME", help="model name clients use (default: profile's)")
    c.add_argument("--prefill-instances", type=int, default=1, metavar="N")
    c.add_argument("--decode-instances", type=int, default=1, metavar="M")
    s = p.add_argument_group("scheduling")
    s.add_argument(
        "--prefill-policy",
        default="fcfs",
        choices=[*PREFILL_POLICIES.names(), VLLM_OWN_SCHEDULER],
        help="fcfs (default); with --engine vllm, 'vllm' runs vLLM's own scheduler",
    )
    s.add_argument(
        "--decode-policy",
        default="fcfs",
        choices=[*DECODE_POLICIES.names(), VLLM_OWN_SCHEDULER],
        help="fcfs (default); with --engine vllm, 'vllm' runs vLLM's own scheduler",
    )
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
    v = p.add_argument_group("vllm engine (docs/vllm.md)")
    v.add_argument(
        "--model-path",
        default="models/smollm2-135m",
        metavar="DIR",
        help="model folder vLLM serves (default models/smollm2-135m)",
    )
    v.add_argument(
        "--kv-connector",
        default="auto",
        choices=["auto", "nixl", "storage"],
        help="KV hand-off: NIXL where installed (auto), or vLLM's shared-storage connector",
    )
    v.add_argument("--kv-cache-gib", type=float, default=1.0, help="KV cache per instance (CPU)")
    v.add_argument(
        "--dtype",
        default="float32",
        help="model dtype (default float32: bf16 is slow on CPUs without AVX-512 BF16)",
    )
    v.add_argument("--max-model-len", type=int, default=2048, metavar="TOKENS")
    v.add_argument("--max-num-seqs", type=int, default=64, metavar="N")
    v.add_argument("--max-batched-tokens", type=int, default=2048, metavar="TOKENS")
    v.add_argument(
        "--block-size",
        type=int,
        default=32,
        metavar="TOKENS",
        help="KV block size of every instance (default 32): the hand-off moves whole blocks, "
        "and the decode instance recomputes the rest of the prompt",
    )
    v.add_argument(
        "--threads-bind",
        metavar="LIST",
        help="VLLM_CPU_OMP_THREADS_BIND per instance, ';'-separated (e.g. '0;1': P on core 0, "
        "D on core 1)",
    )
    v.add_argument(
        "--sched-log-dir",
        type=Path,
        metavar="DIR",
        help="log each step the engines run here (for kairos profile --from-steps); a role "
        "on vLLM's own scheduling keeps it and is only timed",
    )
    v.add_argument("--vllm-log-dir", type=Path, metavar="DIR", help="keep the instances' logs")
    v.add_argument(
        "--vllm-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every vLLM instance (repeatable; use --vllm-arg=--flag)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--request-log", type=Path, metavar="PATH", help="write one JSON line per ended request"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        return _run_vllm(args)
    for flag in ("prefill_policy", "decode_policy"):
        if getattr(args, flag) == VLLM_OWN_SCHEDULER:
            raise ValueError(f"--{flag.replace('_', '-')} vllm needs --engine vllm")
    from kairos.serve.config import ServeConfig
    from kairos.serve.launch import serve

    config = ServeConfig(
        host=args.host,
        port=args.port,
        engine=args.engine,
        profile=args.profile or DEFAULT_PROFILE,
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


def _run_vllm(args: argparse.Namespace) -> int:
    from kairos.integrations.vllm import check_decode_policy
    from kairos.integrations.vllm.instances import VllmOptions
    from kairos.integrations.vllm.launch import VllmServeConfig, serve_vllm

    check_decode_policy(args.decode_policy)
    engine = VllmOptions(
        model=args.model_path,
        served_name=args.model or "smollm2",
        connector=args.kv_connector,
        profile=args.profile or DEFAULT_VLLM_PROFILE,
        ttft_slo=args.ttft_slo,
        tpot_slo=args.tpot_slo,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        kv_cache_gib=args.kv_cache_gib,
        max_num_seqs=args.max_num_seqs,
        max_batched_tokens=args.max_batched_tokens,
        block_size=args.block_size,
        threads_bind=args.threads_bind.split(";") if args.threads_bind else [],
        sched_log_dir=args.sched_log_dir,
        extra_args=list(args.vllm_arg),
        log_dir=args.vllm_log_dir,
    )
    config = VllmServeConfig(
        host=args.host,
        port=args.port,
        prefill_instances=args.prefill_instances,
        decode_instances=args.decode_instances,
        prefill_policy=args.prefill_policy,
        decode_policy=args.decode_policy,
        engine=engine,
        api_key=args.api_key,
        request_log=args.request_log,
    )
    return serve_vllm(config)
