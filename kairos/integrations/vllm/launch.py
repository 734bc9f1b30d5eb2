"""``kairos serve --engine vllm``: start the vLLM P and D instances, then the proxy in front.

Ctrl-C or SIGTERM stops the proxy, then every vLLM instance (process groups, so the engine
cores go too).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from kairos.core.slo import SLO
from kairos.integrations.vllm.instances import (
    Cluster,
    InstanceSpec,
    VllmOptions,
    nixl_available,
)
from kairos.integrations.vllm.proxy import Backend, ProxyState, create_proxy_app


@dataclass(slots=True)
class VllmServeConfig:
    host: str
    port: int
    model: str  # a model folder (see ``python -m kairos.integrations.vllm.model``)
    served_name: str
    prefill_instances: int
    decode_instances: int
    prefill_policy: str
    decode_policy: str
    profile: str
    ttft_slo: float
    tpot_slo: float
    connector: str = "auto"  # auto: NIXL where installed, else shared storage
    kv_cache_gib: float = 1.0
    dtype: str = "float32"
    max_model_len: int = 2048
    max_num_seqs: int = 64
    max_batched_tokens: int = 2048
    threads_bind: tuple[str, ...] = ()
    sched_log_dir: Path | None = None
    log_dir: Path | None = None
    api_key: str | None = None
    extra_vllm_args: tuple[str, ...] = ()


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def specs_for(cfg: VllmServeConfig) -> list[InstanceSpec]:
    """Prefill instances first, then decode; each with its own HTTP and NIXL ports."""
    roles = [("prefill", i, cfg.prefill_policy) for i in range(cfg.prefill_instances)]
    roles += [("decode", j, cfg.decode_policy) for j in range(cfg.decode_instances)]
    ports = free_ports(2 * len(roles))
    return [
        InstanceSpec(role, index, ports[k], policy, ports[len(roles) + k])
        for k, (role, index, policy) in enumerate(roles)
    ]


def vllm_options(cfg: VllmServeConfig) -> VllmOptions:
    connector = cfg.connector
    if connector == "auto":
        # NIXL's UCX progress thread busy-polls next to each worker's compute thread; on 2
        # cores it slowed decode steps ~10x (docs/vllm.md), so small machines use storage.
        big = (os.cpu_count() or 1) >= 4
        connector = "nixl" if nixl_available() and big else "storage"
    if not Path(cfg.model).is_dir():
        raise ValueError(
            f"model folder {cfg.model} does not exist; make one with "
            "'python -m kairos.integrations.vllm.model --out models/smollm2-135m' (docs/vllm.md)"
        )
    return VllmOptions(
        model=cfg.model,
        served_name=cfg.served_name,
        connector=connector,
        profile=cfg.profile,
        ttft_slo=cfg.ttft_slo,
        tpot_slo=cfg.tpot_slo,
        max_model_len=cfg.max_model_len,
        kv_cache_gib=cfg.kv_cache_gib,
        dtype=cfg.dtype,
        max_num_seqs=cfg.max_num_seqs,
        max_batched_tokens=cfg.max_batched_tokens,
        threads_bind=list(cfg.threads_bind),
        sched_log_dir=cfg.sched_log_dir,
        log_dir=cfg.log_dir,
        extra_args=list(cfg.extra_vllm_args),
    )


def _terminate(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + sig)


def serve_vllm(cfg: VllmServeConfig) -> int:
    from kairos.integrations.vllm import check_vllm_version
    from kairos.serve.launch import bind

    try:
        check_vllm_version()
    except RuntimeError as e:
        print(f"kairos serve: error: {e}", file=sys.stderr)
        return 2
    opts = vllm_options(cfg)
    sock = bind(cfg.host, cfg.port)
    signal.signal(signal.SIGTERM, _terminate)
    cluster = Cluster(specs_for(cfg), opts)
    try:
        print(
            f"kairos serve: starting {cfg.prefill_instances}P{cfg.decode_instances}D vLLM "
            f"({opts.connector} KV connector, policies {cfg.prefill_policy}/"
            f"{cfg.decode_policy}); this takes a minute",
            flush=True,
        )
        cluster.start()
        backends = [Backend(i.spec.role, i.spec.index, i.url) for i in cluster.instances]
        state = ProxyState(
            prefill=[b for b in backends if b.role == "prefill"],
            decode=[b for b in backends if b.role == "decode"],
            default_slo=SLO(cfg.ttft_slo, cfg.tpot_slo),
            api_key=cfg.api_key,
        )
        host, port = sock.getsockname()[:2]
        print(f"kairos serve: {cfg.served_name} ready on http://{host}:{port}/v1", flush=True)
        server = uvicorn.Server(
            uvicorn.Config(create_proxy_app(state), log_level="warning", access_log=False)
        )
        asyncio.run(server.serve(sockets=[sock]))
        return 0
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    except RuntimeError as e:
        print(f"kairos serve: error: {e}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
        sock.close()
