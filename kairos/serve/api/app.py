"""The FastAPI app: OpenAI-compatible generation endpoints, health, models, metrics.

Bodies are parsed here, after the API-key check, so every bad input becomes a 4xx naming the
problem (never a 500) and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pydantic
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kairos.core.request import Request as CoreRequest
from kairos.serve.api.render import Rendering
from kairos.serve.api.schemas import ChatRequest, CompletionRequest
from kairos.serve.api.streaming import TokenStreamResponse
from kairos.serve.api.validate import admit
from kairos.serve.errors import BadRequest, ModelNotFound, Overloaded, ServeError
from kairos.serve.job import Job

if TYPE_CHECKING:
    from kairos.serve.runtime import Runtime

log = logging.getLogger("kairos.serve")


def create_app(rt: Runtime) -> ASGIApp:
    """The FastAPI app, behind a direct route for the two generation endpoints."""
    return GenerationFastPath(create_api(rt), rt)


class GenerationFastPath:
    """POST /v1/completions and /v1/chat/completions go straight to ``generate``; everything
    else (and lifespan) to the FastAPI app.

    Why: FastAPI's exception, body-limit and exit-stack middleware and its router cost about
    0.3 ms per request on the two-core machine this is measured on, on the path to every
    first token, and wrap every streamed chunk's ``send``. The errors are answered as the
    FastAPI app answers them (``error_response``), so clients see no difference.
    """

    def __init__(self, api: FastAPI, rt: Runtime) -> None:
        self.api = api
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        schema = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if schema is None or scope["method"] != "POST":
            await self.api(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await generate(self.rt, request, schema)
        except ServeError as e:
            response = error_response(e, _request_id(request))
        except Exception as e:
            log.exception("unexpected error")
            response = error_response(ServeError(f"internal error: {e}"), _request_id(request))
        await response(scope, receive, send)


def create_api(rt: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    app = FastAPI(title="kairos serve", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, e: ServeError) -> JSONResponse:
        return error_response(e, _request_id(request))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(ServeError(f"internal error: {e}"), _request_id(request))

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await generate(rt, request, CompletionRequest)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await generate(rt, request, ChatRequest)

    @app.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        rt.check_auth(request.headers.get("authorization"))
        card = {"id": rt.model, "object": "model", "created": rt.started, "owned_by": "kairos"}
        return JSONResponse({"object": "list", "data": [card]})

    @app.get("/health")
    async def health() -> JSONResponse:
        dead = rt.supervisor.dead()
        body = {
            "status": "degraded" if dead else "ok",
            "dead_workers": dead,
            "workers": rt.supervisor.describe(),
        }
        return JSONResponse(body, status_code=503 if dead else 200)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/debug/state")
    async def debug_state() -> JSONResponse:
        return JSONResponse(rt.state())

    return app


ROUTES: dict[str, type[CompletionRequest] | type[ChatRequest]] = {
    "/v1/completions": CompletionRequest,
    "/v1/chat/completions": ChatRequest,
}


def _request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    return rid or request.headers.get("x-request-id") or uuid.uuid4().hex


def error_response(e: ServeError, request_id: str) -> JSONResponse:
    headers = {"x-request-id": request_id}
    if isinstance(e, Overloaded):
        headers["retry-after"] = str(e.retry_after)
    return JSONResponse(e.body(), status_code=e.status, headers=headers)


def _parse(
    schema: type[CompletionRequest] | type[ChatRequest], raw: bytes
) -> CompletionRequest | ChatRequest:
    try:
        return schema.model_validate_json(raw)
    except pydantic.ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            if err["type"] == "json_invalid":
                raise BadRequest(f"malformed JSON body: {err['msg']}") from None
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
        raise BadRequest("invalid request: " + "; ".join(problems)) from None


async def generate(
    rt: Runtime, request: Request, schema: type[CompletionRequest] | type[ChatRequest]
) -> Response:
    arrival = rt.clock.now()  # the request's time zero: receipt at the proxy
    client_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    request.state.request_id = client_id
    rt.check_auth(request.headers.get("authorization"))
    body = _parse(schema, await request.body())
    if body.model != rt.model:
        raise ModelNotFound(
            f"the model {body.model!r} does not exist; this server serves {rt.model!r}",
            param="model",
        )
    adm = admit(body, request.headers, rt.profile, rt.config.default_slo)
    core = CoreRequest(
        rt.proxy.new_id(), arrival, adm.prompt_tokens, adm.slo, max_output_tokens=adm.max_tokens
    )
    job = Job(core, client_id, adm.max_tokens)
    rt.proxy.submit(job)
    chat = schema is ChatRequest
    rendering = Rendering(
        chat=chat,
        response_id=f"{'chatcmpl' if chat else 'cmpl'}-{client_id}",
        model=rt.model,
        created=int(time.time()),
        max_tokens=adm.max_tokens,
    )
    headers = {"x-request-id": client_id}
    if body.stream:
        return TokenStreamResponse(
            job,
            rendering,
            include_usage=body.include_usage,
            cancel=rt.proxy.cancel,
            clock=rt.clock,
            headers=headers,
        )
    if not await _finished_unless_disconnected(rt, job, request):
        return Response(status_code=499)  # nobody is listening any more
    if job.status != "finished":
        assert job.error is not None
        return error_response(job.error, client_id)
    return JSONResponse(rendering.body(core.prompt_tokens, len(job.token_times)), headers=headers)


async def _finished_unless_disconnected(rt: Runtime, job: Job, request: Request) -> bool:
    """Wait for the job to end; cancel it (and return False) if the client goes away."""
    ended = asyncio.ensure_future(job.ended())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((ended, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended.cancel()
        gone.cancel()
    if not job.done:
        rt.proxy.cancel(job)
        return False
    return True


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
