"""The SSE response of a streaming request, as a bare ASGI response.

It sends straight from the job's token list: no async generator and no task group per
response (Starlette's ``StreamingResponse`` has both), because this is the per-token hot path
of the proxy. Every token the job has when the response wakes goes out in one write. A
watcher on ``receive`` cancels the request as soon as the client disconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kairos.core.clock import Clock
from kairos.serve.api.render import DONE, Rendering, error_event
from kairos.serve.errors import Unavailable
from kairos.serve.job import Job


class TokenStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        job: Job,
        rendering: Rendering,
        *,
        include_usage: bool,
        cancel: Callable[[Job], None],
        clock: Clock,
        headers: dict[str, str],
    ) -> None:
        self.job = job
        self.clock = clock
        self.rendering = rendering
        self.include_usage = include_usage
        self.cancel = cancel
        self.status_code = 200
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        job, rendering = self.job, self.rendering
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            sent = 0
            while not job.done or sent < len(job.token_times):
                await job.wait(sent)
                n = len(job.token_times)
                if n > sent:
                    body, sent = rendering.tokens(sent, n), n
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    if job.first_sent is None:
                        job.first_sent = self.clock.now()
            await send({"type": "http.response.body", "body": self._tail(sent), "more_body": False})
        finally:
            watcher.cancel()
            if not job.done:
                self.cancel(job)

    def _tail(self, sent: int) -> bytes:
        job = self.job
        if job.status == "finished":
            if not self.include_usage:
                return DONE
            return self.rendering.usage_chunk(job.request.prompt_tokens, sent) + DONE
        error = job.error or Unavailable("the request was cancelled")
        return error_event(error) + DONE

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        # The client is gone: end the request now (frees its KV); the loop above then ends.
        if not self.job.done:
            self.cancel(self.job)
