"""A worker's end of the transport: one Unix stream socket to the proxy, framed msgpack.

The worker blocks in ``select`` with a float timeout, so it wakes for a message or shortly
before its next deadline (a step's end), then spins to the deadline itself.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import time

from kairos.serve.messages import FrameReader, Message, WorkerReady, frame
from kairos.serve.transport import socket_path
from kairos.serve.workers import WorkerConfig

# Blocking waits wake this often to notice that the proxy died (the worker is then orphaned).
PARENT_CHECK_S = 0.2
# ``select`` wakes about 0.13 ms after its timeout here (timer slack, scheduling), and every
# emulated step would end that much late: its tokens, and the prefill instance's next batch.
# So the last stretch before a deadline is spun (about 4% of a core per busy instance).
SPIN_S = 0.0003


class WorkerLink:
    def __init__(self, config: WorkerConfig) -> None:
        # Ctrl-C reaches the whole process group; the proxy stops the workers in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.config = config
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(socket_path(config.ipc_dir))  # bound before this process started
        self._reader = FrameReader()
        self._eof = False
        self._last_check = time.monotonic()

    def send(self, msg: Message) -> None:
        try:
            self._sock.sendall(frame(msg))
        except OSError:  # the proxy is gone; orphaned() notices
            self._eof = True

    def ready(self) -> None:
        self.send(WorkerReady(self.config.kind, self.config.instance, os.getpid()))

    def orphaned(self) -> bool:
        """True once the proxy that started this worker is gone (it then cannot clean up,
        so the worker removes the socket directory itself)."""
        if not self._eof:
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
        timeout = PARENT_CHECK_S
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic() - SPIN_S)
            if timeout <= 0:
                timeout = 0.0  # still collect what has already arrived
        readable, _, _ = select.select([self._sock], [], [], timeout)
        if not readable:
            if deadline is not None:
                while time.monotonic() < deadline:
                    pass
            return []
        try:
            data = self._sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self._eof = True
            return []
        return self._reader.feed(data)

    def close(self) -> None:
        self._sock.close()
