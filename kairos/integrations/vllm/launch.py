"""``kairos serve --engine vllm``: start the vLLM P and D instances, then the proxy in front.

Ctrl-C or SIGTERM stops the proxy, then every vLLM instance (process groups, so the engine
cores go too).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import IO

import uvicorn

from kairos import eventloop
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
    """The P/D layout and the proxy's settings; ``engine`` is what every instance gets."""

    host: str
    port: int
    prefill_instances: int
    decode_instances: int
    prefill_policy: str
    decode_policy: str
    engine: VllmOptions
    api_key: str | None = None
    request_log: Path | None = None


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


def resolve(opts: VllmOptions) -> VllmOptions:
    """Pick the connector for ``auto`` and check the model folder exists."""
    connector = opts.connector
    if connector == "auto":
        # NIXL's UCX progress thread busy-polls next to each worker's compute thread; on 2
        # cores it slowed decode steps ~10x (docs/vllm.md), so small machines use storage.
        big = (os.cpu_count() or 1) >= 4
        connector = "nixl" if nixl_available() and big else "storage"
    if not Path(opts.model).is_dir():
        raise ValueError(
            f"model folder {opts.model} does not exist; make one with "
            "'python -m kairos.integrations.vllm.model --out models/smollm2-135m' (docs/vllm.md)"
        )
    return replace(opts, connector=connector)


def _terminate(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + sig)


def serve_vllm(cfg: VllmServeConfig) -> int:
    from kairos.integrations.vllm import check_vllm_version
    from kairos.serve.launch import KEEP_ALIVE_S, bind

    try:
        check_vllm_version()
    except RuntimeError as e:
        print(f"kairos serve: error: {e}", file=sys.stderr)
        return 2
    opts = resolve(cfg.engine)
    sock = bind(cfg.host, cfg.port)
    signal.signal(signal.SIGTERM, _terminate)
    cluster = Cluster(specs_for(cfg), opts)
    log: IO[str] | None = None
    try:
        if cfg.request_log is not None:
            cfg.request_log.parent.mkdir(parents=True, exist_ok=True)
            log = cfg.request_log.open("a", encoding="utf-8", buffering=1)
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
            default_slo=SLO(opts.ttft_slo, opts.tpot_slo),
            api_key=cfg.api_key,
            request_log=log,
        )
        host, port = sock.getsockname()[:2]
        print(f"kairos serve: {opts.served_name} ready on http://{host}:{port}/v1", flush=True)
        server = uvicorn.Server(
            uvicorn.Config(
                create_proxy_app(state),
                log_level="warning",
                access_log=False,
                timeout_keep_alive=KEEP_ALIVE_S,
            )
        )
        eventloop.run(server.serve(sockets=[sock]))
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
        if log is not None:
            log.close()
