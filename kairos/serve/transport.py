"""The proxy's end of the transport: one Unix stream socket per worker, framed msgpack.

The proxy listens on ``proxy.sock`` in a private temp dir (bound before any worker starts);
each worker connects and introduces itself with ``WorkerReady``, and from then on that
connection carries the messages both ways, in order. Reading happens in the event loop's
``data_received`` callback; sends never block (the loop buffers them).

Why not zmq (used before): its I/O threads put three thread wake-ups on every hop (sender's
I/O thread, receiver's I/O thread, receiver's caller). On a loaded two-core machine one
zmq round trip measured 0.3 ms at p50 and 2.9 ms at p90 against 0.04 and 0.05 ms for a
plain Unix socket, and every prefill batch and every first token crosses two hops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import cast

from kairos.serve.messages import FrameReader, Message, WorkerReady, frame

log = logging.getLogger("kairos.serve")

# A worker that has not read this much of what was sent to it is stuck, not slow.
MAX_UNREAD_BYTES = 64 << 20


def socket_path(ipc_dir: str) -> str:
    return os.path.join(ipc_dir, "proxy.sock")


class ProxyTransport:
    def __init__(self, ipc_dir: str, prefill_instances: int, decode_instances: int) -> None:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(socket_path(ipc_dir))
        self._listener.listen(prefill_instances + decode_instances + 8)
        self._conns: dict[tuple[str, int], asyncio.Transport] = {}
        self._handle: Callable[[Message], None] = _drop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._server: asyncio.Server | None = None
        self._accepted: list[asyncio.Transport] = []

    def send(self, kind: str, instance: int, msg: Message) -> bool:
        """Queue a message for a worker; False if it cannot be (gone, or not reading)."""
        conn = self._conns.get((kind, instance))
        if conn is None or conn.is_closing():
            return False
        if conn.get_write_buffer_size() > MAX_UNREAD_BYTES:
            log.error(
                "cannot send %s to %s-%d: it reads nothing", type(msg).__name__, kind, instance
            )
            return False
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            # From another thread (the supervisor stopping workers): hand it to the loop.
            if loop.is_closed():
                return False
            loop.call_soon_threadsafe(conn.write, frame(msg))
            return True
        conn.write(frame(msg))
        return True

    async def serve(self, handle: Callable[[Message], None]) -> None:
        """Deliver every worker message to ``handle`` until cancelled (the connections stay
        open after that, so the workers can still be told to shut down)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._handle = handle
        self._server = await self._loop.create_unix_server(
            lambda: _WorkerConnection(self), sock=self._listener
        )
        try:
            await asyncio.Event().wait()  # forever; messages arrive in callbacks
        finally:
            self._handle = _drop

    def _register(self, msg: WorkerReady, transport: asyncio.Transport) -> None:
        self._conns[msg.kind, msg.instance] = transport

    def close(self) -> None:
        for conn in self._accepted:
            conn.close()
        self._conns.clear()
        if self._server is not None:
            self._server.close()
        self._listener.close()


class _WorkerConnection(asyncio.Protocol):
    def __init__(self, owner: ProxyTransport) -> None:
        self._owner = owner
        self._reader = FrameReader()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's transport; uvloop's is not an asyncio.Transport subclass, so no
        # isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._owner._accepted.append(self._transport)

    def data_received(self, data: bytes) -> None:
        owner = self._owner
        for msg in self._reader.feed(data):
            if isinstance(msg, WorkerReady):
                assert self._transport is not None
                owner._register(msg, self._transport)
            try:
                owner._handle(msg)
            except Exception:  # one bad message must not drop the worker's connection
                log.exception("error handling %s", type(msg).__name__)

    def connection_lost(self, exc: Exception | None) -> None:
        # The supervisor notices the process itself exiting; nothing more to do here.
        pass


def _drop(msg: Message) -> None:
    pass
