"""``kairos serve`` start-up and shutdown: one command starts the proxy and every worker;
Ctrl-C or SIGTERM stops them all and leaves no process behind.

The listening socket is bound before anything starts (so ``--port 0`` works and the printed
URL is the real one); uvicorn serves the app on it. On the first signal every request in
flight is ended at once, so open streams close instead of holding the shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn

from kairos import eventloop
from kairos.serve.api.app import create_app
from kairos.serve.config import ServeConfig
from kairos.serve.runtime import Runtime


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal sent to the whole process group also kills the workers: not a failure.
        self.runtime.supervisor.stopping = True
        # A signal handler runs on the loop's thread between callbacks; defer the work.
        asyncio.get_event_loop().call_soon_threadsafe(self.runtime.begin_shutdown)


def _terminate(sig: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal after its graceful shutdown; turning SIGTERM into an
    # exception (instead of the default instant death) lets the finally below run.
    raise SystemExit(128 + sig)


# How long an idle client connection stays open: longer than clients keep theirs in a pool
# (aiohttp 15 s, httpx 5 s). At uvicorn's default, 5 s, the server can close a pooled connection
# just as the client sends a request on it, and that request fails with "connection reset by
# peer" before the server has read it (one of 300 in a vllm bench run, runs/vllm-exp-300k).
KEEP_ALIVE_S = 75


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle off (TCP_NODELAY) only on sockets that name
    # it, and with Nagle on a streamed chunk can wait up to 40 ms for a delayed ACK (seen with
    # the bench's fake server; see tests/test_bench.py).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig) -> int:
    logging.basicConfig(level=logging.INFO, format="kairos serve: %(levelname)s %(message)s")
    sock = bind(config.host, config.port)  # first: nothing to undo if the port is taken
    try:
        runtime = Runtime(config)
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def ready() -> None:
        print(
            f"kairos serve: {runtime.model} ready on {url}/v1 ({config.prefill_instances}P"
            f"{config.decode_instances}D, {config.engine} engine, profile {runtime.profile.name}, "
            f"policies {config.prefill_policy}/{config.decode_policy})",
            flush=True,
        )

    runtime.on_ready = ready
    server = _Server(
        uvicorn.Config(
            create_app(runtime),
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=int(config.shutdown_grace) or 1,
            lifespan="on",
        ),
        runtime,
    )
    signal.signal(signal.SIGTERM, _terminate)
    try:
        eventloop.run(server.serve(sockets=[sock]))
        if not server.started:
            print("kairos serve: error: start-up failed (see above)", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        return 130
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        runtime.close()
        sock.close()
