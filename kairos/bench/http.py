"""A lean HTTP/1.1 client for the bench's requests, built for its per-token hot path.

httpx (with httpcore, anyio and h11 beneath it) spends about 150 us of CPU per streamed chunk.
At a few thousand chunks a second that fills a core of the machine the bench shares with the
server under test, and a busy client loop reads every token late: the very timestamps the
bench exists to take. Here the response is parsed in the transport's ``data_received``
callback, and every SSE line is stamped with the time its bytes reached the process.

What it speaks: HTTP/1.1 over TCP or TLS; chunked, sized or read-to-close bodies; kept-alive
connections reused (a request on a connection the server had just closed is retried once on a
fresh one). Not: proxies, redirects, HTTP/2, compression, which no OpenAI-compatible server
needs for this.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from kairos.core.clock import Clock

# on_line(line, now): one line of a 2xx body (without its line break) and when it arrived.
LineSink = Callable[[str, float], None]

_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _SIZED, _TO_CLOSE, _DONE = range(8)


class HTTPError(Exception):
    """The request could not be completed: connection refused or lost, timeout, bad reply."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes  # the whole body when it was not streamed to a line sink


class HTTPClient:
    """Connections to any number of servers, kept alive between requests."""

    def __init__(self, clock: Clock, *, timeout: float = 600.0, connect_timeout: float = 30.0):
        self.clock = clock
        self.timeout = timeout  # seconds without a byte from the server (see _check_timeout)
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        on_line: LineSink | None = None,
    ) -> Response:
        """Send one request and read its response to the end.

        A 2xx body goes line by line to ``on_line`` when one is given; any other body (and a
        2xx body without ``on_line``) comes back whole in the ``Response``.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HTTPError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        lines = [f"{method} {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (0, 1):
            conn, reused = await self._connection(key)
            try:
                response = await conn.exchange(head + body, on_line)
            except _StaleConnection:
                if reused and attempt == 0:
                    continue  # the server closed the idle connection as we sent: once more
                raise HTTPError("the server closed the connection without answering") from None
            if conn.keep_alive:
                self._idle.setdefault(key, []).append(conn)
            return response
        raise AssertionError("unreachable")

    async def _connection(self, key: tuple[str, str, int]) -> tuple[_Connection, bool]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()  # most recently used first: the least likely to have timed out
            if conn.usable:
                return conn, True
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl = self._ssl or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        conn = _Connection(self.clock, self.timeout)
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: conn, host, port, ssl=context),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as e:
            reason = "timed out" if isinstance(e, TimeoutError) else str(e)
            raise HTTPError(f"cannot connect to {host}:{port}: {reason}") from None
        return conn, False


class _StaleConnection(Exception):
    """The connection closed before a byte of the response: safe to send again."""


class _Connection(asyncio.Protocol):
    """One TCP connection; parses responses as their bytes arrive."""

    def __init__(self, clock: Clock, timeout: float) -> None:
        self._clock = clock
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._done: asyncio.Future[Response] | None = None
        self._on_line: LineSink | None = None
        self._buf = bytearray()  # unparsed bytes
        self._body = bytearray()  # the body, when it is not streamed
        self._line = bytearray()  # a streamed line still waiting for its end
        self._state = _DONE
        self._remaining = 0
        self._status = 0
        self._got_bytes = False
        self._last = 0.0  # when a byte last arrived
        self._active = False  # a byte arrived since the timeout was last checked
        self._timer: asyncio.TimerHandle | None = None
        self.keep_alive = False
        self._closed = False

    @property
    def usable(self) -> bool:
        return not self._closed and self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def exchange(self, data: bytes, on_line: LineSink | None) -> Response:
        assert self._transport is not None and self._state == _DONE
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._on_line = on_line
        self._state, self._status, self._got_bytes = _HEAD, 0, False
        self._body.clear()
        self._line.clear()
        self.keep_alive = False
        self._last = self._clock.now()
        self._active = False
        self._timer = loop.call_later(self._timeout, self._check_timeout)
        self._transport.write(data)
        try:
            return await self._done
        except asyncio.CancelledError:
            self.close()  # the response is unread: this connection is useless now
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # --- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport; uvloop's is not an asyncio.Transport subclass.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._state == _TO_CLOSE:
            self._finish()
        elif self._state != _DONE:
            if not self._got_bytes:
                self._fail(_StaleConnection())
            else:
                self._fail(HTTPError(f"connection lost mid-response{f': {exc}' if exc else ''}"))

    def data_received(self, data: bytes) -> None:
        now = self._last = self._clock.now()
        self._active = True
        self._got_bytes = True
        self._buf += data
        try:
            self._parse(now)
        except (ValueError, IndexError) as e:
            self._fail(HTTPError(f"malformed HTTP response: {e}"))
            self.close()

    # --- parsing -----------------------------------------------------------------------------
    def _parse(self, now: float) -> None:
        buf = self._buf
        while buf and self._state != _DONE:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                self._head(bytes(buf[:end]))
                del buf[: end + 4]
            elif state in (_CHUNK_SIZE, _TRAILER):
                end = buf.find(b"\r\n")
                if end < 0:
                    return
                line = bytes(buf[:end])
                del buf[: end + 2]
                if state == _TRAILER:
                    if not line:
                        self._finish()
                else:
                    size = int(line.split(b";", 1)[0], 16)
                    self._state, self._remaining = (_CHUNK_DATA, size) if size else (_TRAILER, 0)
            elif state in (_CHUNK_DATA, _SIZED):
                take = min(len(buf), self._remaining)
                self._content(bytes(buf[:take]), now)
                del buf[:take]
                self._remaining -= take
                if not self._remaining:
                    if state == _SIZED:
                        self._finish()
                    else:
                        self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            else:  # _TO_CLOSE
                self._content(bytes(buf), now)
                buf.clear()

    def _head(self, head: bytes) -> None:
        status_line, *fields = head.decode("latin-1").split("\r\n")
        version, status = status_line.split(" ", 2)[:2]
        self._status = int(status)
        headers = {}
        for f in fields:
            name, _, value = f.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        close = headers.get("connection") == "close" or version == "HTTP/1.0"
        self.keep_alive = not close
        if 100 <= self._status < 200:
            self._state = _HEAD  # an interim response (100 Continue): the real one follows
        elif "chunked" in headers.get("transfer-encoding", ""):
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            self._remaining = int(headers["content-length"])
            self._state = _SIZED
            if not self._remaining:
                self._finish()
        else:
            self._state = _TO_CLOSE
            self.keep_alive = False

    def _content(self, data: bytes, now: float) -> None:
        sink = self._on_line
        if sink is None or not 200 <= self._status < 300:
            self._body += data
            return
        pending = self._line
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                pending += data[start:]
                return
            if pending:
                pending += data[start:end]
                line = bytes(pending)
                pending.clear()
            else:
                line = data[start:end]
            sink(line.rstrip(b"\r").decode("utf-8", "replace"), now)
            start = end + 1

    def _finish(self) -> None:
        self._state = _DONE
        if self._line and self._on_line is not None and 200 <= self._status < 300:
            self._on_line(self._line.decode("utf-8", "replace"), self._last)
            self._line.clear()
        if self._buf:  # bytes past the end of the response: the connection is out of step
            self.keep_alive = False
        if not self.keep_alive:
            self.close()
        done = self._done
        if done is not None and not done.done():
            done.set_result(Response(self._status, bytes(self._body)))

    def _fail(self, error: Exception) -> None:
        self._state = _DONE
        self.keep_alive = False
        done = self._done
        if done is not None and not done.done():
            done.set_exception(error)

    def _check_timeout(self) -> None:
        # Checked once per timeout, not re-armed per byte (that is a heap push per token), so
        # a silent server is noticed between one and two timeouts after its last byte.
        if self._active:
            self._active = False
            self._timer = asyncio.get_running_loop().call_later(self._timeout, self._check_timeout)
            return
        self._timer = None
        self._fail(HTTPError(f"no byte from the server for {self._timeout:g} s"))
        self.close()
