"""Starts the worker processes (spawn), waits until each is ready, notices deaths, stops them.

A death is noticed at once: each process's sentinel (a pipe closed when it exits) is watched
by the event loop. Stopping asks politely (``Shutdown``), then terminates, then kills, so no
process is left behind; the workers also exit by themselves when the proxy dies.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from kairos.serve.config import ServeConfig
from kairos.serve.messages import Shutdown, WorkerReady
from kairos.serve.transport import ProxyTransport
from kairos.serve.workers import WorkerConfig, worker_main

log = logging.getLogger("kairos.serve")


@dataclass
class Worker:
    config: WorkerConfig
    process: BaseProcess
    ready: bool = False
    dead: bool = False
    pid: int | None = None


class Supervisor:
    def __init__(self, config: ServeConfig, ipc_dir: str, transport: ProxyTransport) -> None:
        self.transport = transport
        self.stopping = False
        ctx = multiprocessing.get_context("spawn")
        self.workers: dict[tuple[str, int], Worker] = {}
        for kind, n in (("prefill", config.prefill_instances), ("decode", config.decode_instances)):
            for i in range(n):
                wc = WorkerConfig(
                    kind=kind,
                    instance=i,
                    ipc_dir=ipc_dir,
                    profile=config.profile,
                    engine=config.engine,
                    decode_policy=config.decode_policy,
                    parent_pid=os.getpid(),
                )
                proc = ctx.Process(target=worker_main, args=(wc,), name=f"kairos-{wc.name}")
                proc.daemon = True  # also terminated by multiprocessing's exit hook
                self.workers[kind, i] = Worker(wc, proc)

    def start(self) -> None:
        for w in self.workers.values():
            w.process.start()
            w.pid = w.process.pid

    def on_ready(self, msg: WorkerReady) -> None:
        self.workers[msg.kind, msg.instance].ready = True

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(w.ready for w in self.workers.values()):
            for w in self.workers.values():
                if not w.process.is_alive():
                    raise RuntimeError(
                        f"worker {w.config.name} exited with code {w.process.exitcode} "
                        "during start-up"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {timeout:.0f} s")
            await asyncio.sleep(0.01)

    def watch(self, on_death: Callable[[str, int], None]) -> None:
        """Call ``on_death(kind, instance)`` as soon as a worker exits (unless stopping)."""
        loop = asyncio.get_running_loop()
        for w in self.workers.values():

            def died(w: Worker = w) -> None:
                loop.remove_reader(w.process.sentinel)
                w.dead = True
                if not self.stopping:
                    on_death(w.config.kind, w.config.instance)

            loop.add_reader(w.process.sentinel, died)

    def dead(self) -> list[str]:
        return [w.config.name for w in self.workers.values() if w.dead]

    def describe(self) -> list[dict[str, object]]:
        return [
            {"name": w.config.name, "pid": w.pid, "alive": not w.dead}
            for w in self.workers.values()
        ]

    def stop(self, grace: float = 2.0) -> None:
        """Stop every worker; returns once none is left (terminate, then kill, if need be)."""
        self.stopping = True
        for (kind, i), w in self.workers.items():
            if w.process.is_alive():
                self.transport.send(kind, i, Shutdown())
        deadline = time.monotonic() + grace
        for w in self.workers.values():
            if w.pid is None:
                continue
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                log.warning("worker %s did not stop; terminating it", w.config.name)
                w.process.terminate()
                w.process.join(1.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
