"""The proxy's end of the transport: zmq over ``ipc://`` sockets in a private temp dir.

The proxy binds, workers connect: one PUSH socket per worker (proxy -> worker) and one shared
PULL socket every worker pushes to (worker -> proxy). Sends never block: a worker that is
gone is marked dead by the supervisor and no longer sent to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import zmq
import zmq.asyncio

from kairos.serve.messages import Message, decode, encode
from kairos.serve.workers.link import down_address, up_address

log = logging.getLogger("kairos.serve")


class ProxyTransport:
    def __init__(self, ipc_dir: str, prefill_instances: int, decode_instances: int) -> None:
        self._ctx = zmq.Context()
        self._actx = zmq.asyncio.Context()
        self._up = self._actx.socket(zmq.PULL)
        self._up.bind(up_address(ipc_dir))
        self._down: dict[tuple[str, int], zmq.Socket[bytes]] = {}
        for kind, n in (("prefill", prefill_instances), ("decode", decode_instances)):
            for i in range(n):
                sock = self._ctx.socket(zmq.PUSH)
                sock.setsockopt(zmq.LINGER, 0)
                sock.bind(down_address(ipc_dir, kind, i))
                self._down[kind, i] = sock

    def send(self, kind: str, instance: int, msg: Message) -> bool:
        """Queue a message for a worker; False if it could not be queued (worker stuck)."""
        try:
            self._down[kind, instance].send(encode(msg), zmq.NOBLOCK)
        except zmq.Again:
            log.error(
                "cannot send %s to %s-%d: its queue is full", type(msg).__name__, kind, instance
            )
            return False
        return True

    async def serve(self, handle: Callable[[Message], None]) -> None:
        """Deliver every worker message to ``handle``, draining bursts without awaiting."""
        up = self._up
        while True:
            handle(decode(await up.recv()))
            while True:
                try:
                    data = await up.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                handle(decode(data))

    def close(self) -> None:
        self._up.close(linger=0)
        for sock in self._down.values():
            sock.close(linger=0)
        self._ctx.term()
        self._actx.term()
