"""Everything one ``kairos serve`` process runs, wired together: transport, proxy, workers,
metrics and the request log. The HTTP app (``api.app``) calls ``start``/``stop`` from its
lifespan; ``launch`` owns the socket, uvicorn and the signals."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from kairos.profiles import load_profile
from kairos.serve.clock import MonotonicClock
from kairos.serve.config import ServeConfig
from kairos.serve.errors import Unauthorized
from kairos.serve.messages import Message, WorkerReady
from kairos.serve.metrics import ServeMetrics
from kairos.serve.proxy import Proxy
from kairos.serve.request_log import RequestLog
from kairos.serve.supervisor import Supervisor
from kairos.serve.transport import ProxyTransport

READY_TIMEOUT_S = 60.0


class Runtime:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.profile = load_profile(config.profile)
        self.model = config.model or self.profile.model.name
        self.clock = MonotonicClock()
        self.started = int(time.time())
        self.ipc_dir = tempfile.mkdtemp(prefix="kairos-serve-")
        self.transport = ProxyTransport(
            self.ipc_dir, config.prefill_instances, config.decode_instances
        )
        self.proxy = Proxy(config, self.profile, self.transport, self.clock)
        self.metrics = ServeMetrics(self.proxy)
        self.proxy.on_end.append(self.metrics.observe)
        self.request_log = RequestLog(config.request_log) if config.request_log else None
        if self.request_log is not None:
            self.proxy.on_end.append(self.request_log.write)
        self.supervisor = Supervisor(config, self.ipc_dir, self.transport)
        self.on_ready: Callable[[], None] | None = None
        self._expected_auth = f"Bearer {config.api_key}" if config.api_key else None
        self._receiver: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        self._receiver = asyncio.create_task(self.transport.serve(self._handle))
        self.supervisor.start()
        await self.supervisor.wait_ready(READY_TIMEOUT_S)
        self.supervisor.watch(self.proxy.worker_died)
        if self.on_ready is not None:
            self.on_ready()

    def _handle(self, msg: Message) -> None:
        if isinstance(msg, WorkerReady):
            self.supervisor.on_ready(msg)
        else:
            self.proxy.handle(msg)

    def begin_shutdown(self) -> None:
        """End every request in flight so open responses finish before the grace runs out."""
        self.proxy.fail_all("the server is shutting down")

    async def stop(self) -> None:
        self.begin_shutdown()
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        # Joining processes blocks; do it off the loop (nothing else uses the sockets now).
        await asyncio.to_thread(self.supervisor.stop)
        self.close()

    def close(self) -> None:
        """Stop the workers and free everything (idempotent; also run after the loop ends)."""
        if self._closed:
            return
        self._closed = True
        self.supervisor.stop()
        self.transport.close()
        if self.request_log is not None:
            self.request_log.close()
        shutil.rmtree(self.ipc_dir, ignore_errors=True)

    def check_auth(self, authorization: str | None) -> None:
        if self._expected_auth is not None and authorization != self._expected_auth:
            raise Unauthorized("missing or wrong API key (send 'Authorization: Bearer KEY')")

    def state(self) -> dict[str, Any]:
        """What /debug/state shows: the proxy's queue and its mirrors of every worker."""
        p = self.proxy
        return {
            "prefill_queue": len(p.queue),
            "in_flight": len(p.jobs),
            "prefill": [
                {
                    "instance": m.instance_id,
                    "alive": m.alive,
                    "busy": m.busy,
                    "kv_used": m.kv_used,
                    "reported_kv_used": m.reported_kv_used,
                }
                for m in p.prefill
            ],
            "decode": [
                {
                    "instance": m.instance_id,
                    "alive": m.alive,
                    "waiting": len(m.waiting),
                    "running": len(m.running),
                    "transferring": m.transferring,
                    "kv_tokens": m.kv_tokens,
                    "reserved": m.reserved,
                    "placed": m.placed,
                }
                for m in p.decode
            ],
            "predictor_mape": p.predictor.mape(),
        }
