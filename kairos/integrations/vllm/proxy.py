"""The Kairos proxy in front of vLLM prefill and decode instances (``kairos serve --engine vllm``).

Per request, the P/D hand-off vLLM's connectors expect (vLLM's
``tests/v1/kv_connector/nixl_integration/toy_proxy_server.py`` shows the protocol):
1. the request goes to a prefill instance with ``max_tokens=1`` and
   ``kv_transfer_params={"do_remote_decode": true}``; the instance computes the KV cache and
   answers with the ``kv_transfer_params`` a decode instance needs to fetch it;
2. the request goes to a decode instance with those ``kv_transfer_params``; its answer (a stream
   or not) is relayed to the client unchanged.
Both legs carry ``vllm_xargs`` with the client's arrival time at the proxy and its SLOs (from
the ``x-slo-ttft-ms`` / ``x-slo-tpot-ms`` headers or the body's ``slo``, as ``kairos serve``
takes them), which is how the Kairos scheduler plugins learn deadlines; the decode leg also
carries when the prefill answered. Instances are chosen by fewest requests in flight.

Errors: a body that is not JSON, an SLO that is not a positive number, or a bad API key get a
4xx naming the problem; vLLM's own 4xx (prompt too long, unknown model) are relayed as they
are; an instance that cannot be reached is a 502 naming it.

``--request-log`` writes one JSON line per request with the proxy's Unix-time stamps of each
hop (arrival, prefill answered, decode's first chunk, end): where a TTFT went.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from kairos.core.slo import SLO
from kairos.integrations.vllm.views import XARG_ARRIVAL, XARG_PREFILLED, XARG_TPOT, XARG_TTFT
from kairos.serve.api.schemas import SLOBody
from kairos.serve.api.validate import slo_fields
from kairos.serve.errors import BadRequest, ServeError, Unauthorized, WorkerFailed

PASS_HEADERS = ("content-type",)


@dataclass(slots=True)
class Backend:
    role: str
    index: int
    url: str
    in_flight: int = 0
    served: int = 0
    failures: int = 0


@dataclass(slots=True)
class ProxyState:
    prefill: list[Backend]
    decode: list[Backend]
    default_slo: SLO
    api_key: str | None = None
    transport: httpx.AsyncBaseTransport | None = None  # tests inject fake instances here
    request_log: IO[str] | None = None
    client: httpx.AsyncClient = field(init=False)

    def pick(self, backends: Sequence[Backend]) -> Backend:
        return min(backends, key=lambda b: (b.in_flight, b.served))


def create_proxy_app(state: ProxyState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        state.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None), limits=limits, transport=state.transport
        )
        try:
            yield
        finally:
            await state.client.aclose()

    app = FastAPI(title="Kairos proxy for vLLM", lifespan=lifespan)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, e: ServeError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _generate(state, request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _generate(state, request, chat=True)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        _authorize(state, request.headers)
        backend = state.decode[0]
        try:
            r = await state.client.get(backend.url + "/v1/models")
        except httpx.HTTPError as e:
            raise WorkerFailed(f"decode instance 0 ({backend.url}) is unreachable: {e}") from e
        return Response(r.content, status_code=r.status_code, media_type="application/json")

    @app.get("/health")
    async def health() -> JSONResponse:
        report: dict[str, Any] = {}
        ok = True
        for b in state.prefill + state.decode:
            try:
                alive = (await state.client.get(b.url + "/health", timeout=2.0)).status_code == 200
            except httpx.HTTPError:
                alive = False
            ok &= alive
            report[f"{b.role}{b.index}"] = {
                "url": b.url,
                "alive": alive,
                "in_flight": b.in_flight,
                "served": b.served,
                "failures": b.failures,
            }
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "instances": report},
            status_code=200 if ok else 503,
        )

    return app


def _authorize(state: ProxyState, headers: Mapping[str, str]) -> None:
    if state.api_key is not None and headers.get("authorization") != f"Bearer {state.api_key}":
        raise Unauthorized("missing or wrong API key (send 'Authorization: Bearer KEY')")


def _slo(body: dict[str, Any], headers: Mapping[str, str], default: SLO) -> SLO:
    raw = body.pop("slo", None)
    slo: SLOBody | str | None
    if raw is None or isinstance(raw, str):
        slo = raw
    else:
        try:
            slo = SLOBody.model_validate(raw)
        except ValidationError as e:
            raise BadRequest(f"invalid 'slo' field: {e.errors()[0]['msg']}", param="slo") from e
    ttft, tpot, _ = slo_fields(slo, headers, default)
    return SLO(ttft, tpot)


async def _generate(state: ProxyState, request: Request, *, chat: bool) -> Response:
    arrival = time.time()
    _authorize(state, request.headers)
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"the request body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    slo = _slo(body, request.headers, state.default_slo)
    xargs = dict(body.get("vllm_xargs") or {})
    xargs.update({XARG_ARRIVAL: arrival, XARG_TTFT: slo.ttft, XARG_TPOT: slo.tpot})
    path = "/v1/chat/completions" if chat else "/v1/completions"

    # Leg 1: prefill only, keeping the KV cache for a remote decode.
    first = dict(body, stream=False, max_tokens=1, vllm_xargs=xargs)
    first["kv_transfer_params"] = {"do_remote_decode": True}
    first.pop("stream_options", None)
    if chat:
        first["max_completion_tokens"] = 1
    prefill = state.pick(state.prefill)
    hops = Hops(state.request_log, arrival, prefill.index)
    reply = await _post(state, prefill, path, first)
    if reply.status_code != 200:
        hops.end(f"prefill answered {reply.status_code}")
        return Response(reply.content, status_code=reply.status_code, media_type="application/json")
    answer = reply.json()
    params = answer.get("kv_transfer_params")
    hops.prompt_tokens = (answer.get("usage") or {}).get("prompt_tokens")

    # Leg 2: decode from the transferred KV; relay the answer as it comes.
    hops.prefilled = time.time()
    second = dict(body, vllm_xargs=dict(xargs, **{XARG_PREFILLED: hops.prefilled}))
    second["kv_transfer_params"] = params
    decode = state.pick(state.decode)
    hops.decode = decode.index
    if not body.get("stream"):
        reply = await _post(state, decode, path, second)
        hops.end("ok" if reply.status_code == 200 else f"decode answered {reply.status_code}")
        return Response(
            reply.content,
            status_code=reply.status_code,
            media_type="application/json",
            headers=hops.server_timing(),
        )
    return await _relay_stream(state, decode, path, second, hops)


@dataclass(slots=True)
class Hops:
    """One request's hop times at the proxy (Unix seconds), logged when it ends."""

    log: IO[str] | None
    arrival: float
    prefill: int
    prefilled: float | None = None
    decode: int | None = None
    first_chunk: float | None = None  # the first byte the decode instance streamed
    ended: float | None = None
    prompt_tokens: int | None = None  # as the prefill instance counted them

    def server_timing(self) -> dict[str, str]:
        """``Server-Timing`` with the prefill leg (the P instance's answer, KV saved) and, once
        ended, the decode leg; ``kairos profile --handoff`` reads it."""
        if self.prefilled is None:
            return {}
        timing = f"prefill;dur={(self.prefilled - self.arrival) * 1e3:.3f}"
        if self.ended is not None:
            timing += f", decode;dur={(self.ended - self.prefilled) * 1e3:.3f}"
        return {"server-timing": timing}

    def end(self, status: str) -> None:
        self.ended = time.time()
        if self.log is None:
            return
        line = {
            "arrival": self.arrival,
            "prefilled": self.prefilled,
            "first_chunk": self.first_chunk,
            "end": self.ended,
            "prefill_instance": self.prefill,
            "decode_instance": self.decode,
            "prompt_tokens": self.prompt_tokens,
            "status": status,
        }
        self.log.write(json.dumps(line) + "\n")


async def _post(state: ProxyState, b: Backend, path: str, body: dict[str, Any]) -> httpx.Response:
    b.in_flight += 1
    try:
        return await state.client.post(b.url + path, json=body)
    except httpx.HTTPError as e:
        b.failures += 1
        raise WorkerFailed(f"{b.role} instance {b.index} ({b.url}) failed: {e!r}") from e
    finally:
        b.in_flight -= 1
        b.served += 1


async def _relay_stream(
    state: ProxyState, b: Backend, path: str, body: dict[str, Any], hops: Hops
) -> Response:
    b.in_flight += 1
    try:
        upstream = await state.client.send(
            state.client.build_request("POST", b.url + path, json=body), stream=True
        )
    except httpx.HTTPError as e:
        b.in_flight -= 1
        b.failures += 1
        hops.end("decode unreachable")
        raise WorkerFailed(f"{b.role} instance {b.index} ({b.url}) failed: {e!r}") from e
    if upstream.status_code != 200:
        content = await upstream.aread()
        await upstream.aclose()
        b.in_flight -= 1
        hops.end(f"decode answered {upstream.status_code}")
        return Response(content, status_code=upstream.status_code, media_type="application/json")

    async def chunks() -> AsyncIterator[bytes]:
        # Closing the upstream stream (also when the client goes away and this generator is
        # cancelled) makes vLLM abort the request and free its KV blocks.
        status = "cancelled"
        try:
            async for chunk in upstream.aiter_raw():
                if hops.first_chunk is None:
                    hops.first_chunk = time.time()
                yield chunk
            status = "ok"
        finally:
            await upstream.aclose()
            b.in_flight -= 1
            b.served += 1
            hops.end(status)

    return StreamingResponse(chunks(), media_type="text/event-stream", headers=hops.server_timing())
