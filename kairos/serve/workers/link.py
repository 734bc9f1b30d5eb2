"""A worker's end of the transport: PULL from its own address, PUSH to the proxy."""

from __future__ import annotations

import os
import shutil
import signal
import time

import zmq

from kairos.serve.messages import Message, WorkerReady, decode, encode
from kairos.serve.workers import WorkerConfig

# Blocking waits wake this often to notice that the proxy died (the worker is then orphaned).
PARENT_CHECK_S = 0.2
# zmq's poll timeout is whole milliseconds; the last stretch before a deadline is slept with
# time.sleep instead, or every step would overshoot by up to 1 ms (and show up as TPOT error).
SPIN_S = 0.0015


def down_address(ipc_dir: str, kind: str, instance: int) -> str:
    return f"ipc://{ipc_dir}/{kind}-{instance}"


def up_address(ipc_dir: str) -> str:
    return f"ipc://{ipc_dir}/up"


class WorkerLink:
    def __init__(self, config: WorkerConfig) -> None:
        # Ctrl-C reaches the whole process group; the proxy stops the workers in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.config = config
        self._ctx = zmq.Context()
        self._down = self._ctx.socket(zmq.PULL)
        self._down.connect(down_address(config.ipc_dir, config.kind, config.instance))
        self._up = self._ctx.socket(zmq.PUSH)
        self._up.setsockopt(zmq.LINGER, 1000)
        self._up.connect(up_address(config.ipc_dir))
        self._last_check = time.monotonic()

    def send(self, msg: Message) -> None:
        self._up.send(encode(msg))

    def ready(self) -> None:
        self.send(WorkerReady(self.config.kind, self.config.instance, os.getpid()))

    def orphaned(self) -> bool:
        """True once the proxy that started this worker is gone (it then cannot clean up,
        so the worker removes the socket directory itself)."""
        now = time.monotonic()
        if now - self._last_check < PARENT_CHECK_S:
            return False
        self._last_check = now
        if os.getppid() == self.config.parent_pid:
            return False
        shutil.rmtree(self.config.ipc_dir, ignore_errors=True)
        return True

    def receive(self, deadline: float | None) -> list[Message]:
        """Messages that arrived, waiting for one at most until ``deadline`` (monotonic).

        Returns early (possibly empty) so the caller can check deadlines and the parent.
        """
        msgs = self._drain()
        if msgs:
            return msgs
        if deadline is None:
            timeout_ms = int(PARENT_CHECK_S * 1000)
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return msgs
            if remaining < SPIN_S:
                time.sleep(remaining)
                return msgs
            timeout_ms = int((remaining - 0.001) * 1000)
        if self._down.poll(timeout_ms):
            return self._drain()
        return msgs

    def _drain(self) -> list[Message]:
        msgs: list[Message] = []
        while True:
            try:
                msgs.append(decode(self._down.recv(zmq.NOBLOCK)))
            except zmq.Again:
                return msgs

    def close(self) -> None:
        self._down.close(linger=0)
        self._up.close()
        self._ctx.term()
