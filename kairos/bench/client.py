"""One streaming request to an OpenAI-compatible server, timestamped on the client.

Works against any server that speaks the OpenAI streaming API (``kairos serve``, ``vllm serve``,
SGLang, TGI's OpenAI route). Times come from an injected clock so that a replay reads every
timestamp from one origin.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kairos.bench.http import HTTPClient, HTTPError
from kairos.bench.stream import StreamState, error_text
from kairos.core.clock import Clock
from kairos.core.record import FloatArray
from kairos.core.slo import SLO

ENDPOINTS: dict[str, str] = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


class PerfClock:
    """``time.perf_counter`` behind the core ``Clock`` protocol (finest monotonic clock)."""

    __slots__ = ()

    def now(self) -> float:
        return time.perf_counter()


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test."""

    url: str  # base URL, with or without a trailing /v1
    model: str
    endpoint: str = "completions"
    api_key: str | None = None

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(
                f"endpoint must be one of {', '.join(ENDPOINTS)}, got {self.endpoint!r}"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")

    @property
    def base(self) -> str:
        """The server root: accepts ``http://h:8000`` and ``http://h:8000/v1`` alike."""
        return self.url.rstrip("/").removesuffix("/v1")

    @property
    def endpoint_url(self) -> str:
        return self.base + ENDPOINTS[self.endpoint]


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """What to send: a prompt meant to be ``prompt_tokens`` long, and the output length."""

    id: str
    prompt: str
    prompt_tokens: int
    max_tokens: int
    slo: SLO


@dataclass(slots=True)
class Outcome:
    """What came back, with times on the replay clock."""

    status: str  # "finished", "rejected" or "failed" (RequestRecord's statuses)
    sent: float
    token_times: FloatArray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def payload(target: Target, request: BenchRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": request.max_tokens,
        # vLLM extension: keep generating past EOS so the output has the trace's length.
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
    }
    if target.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": request.prompt}]
    else:
        body["prompt"] = request.prompt
    return body


def headers(target: Target, request: BenchRequest) -> dict[str, str]:
    # SLO header names as llm-d's SLO-aware routing reads them; an SLO-aware server (kairos
    # serve) schedules by them, others ignore them.
    return {
        "content-type": "application/json",
        "accept": "text/event-stream",
        **auth_headers(target.api_key),
        "x-request-id": request.id,
        "x-slo-ttft-ms": f"{request.slo.ttft * 1e3:g}",
        "x-slo-tpot-ms": f"{request.slo.tpot * 1e3:g}",
    }


async def send(client: HTTPClient, target: Target, request: BenchRequest, clock: Clock) -> Outcome:
    """Send one request and read its stream to the end; never raises for a server's fault.

    Status: 2xx with ``[DONE]`` and no error event -> finished; 429 and other 4xx -> rejected
    (the server refused the request); 5xx, connection errors, an error event or a stream that
    ends without ``[DONE]`` -> failed. Tokens received before a failure are kept.
    """
    state = StreamState()
    body = json.dumps(payload(target, request)).encode()
    sent = clock.now()
    try:
        # Each SSE line is stamped with the time its bytes arrived (see kairos.bench.http).
        response = await client.request(
            "POST",
            target.endpoint_url,
            body=body,
            headers=headers(target, request),
            on_line=state.feed,
        )
        if response.status >= 300:
            status = "rejected" if response.status < 500 else "failed"
            message = f"HTTP {response.status}: {error_text(response.body)}"
            return Outcome(status, sent, error=message)
    except HTTPError as e:
        state.error = state.error or f"{type(e).__name__}: {e}"
    return _outcome(state, sent)


def _outcome(state: StreamState, sent: float) -> Outcome:
    error = state.error
    if error is None and not state.done:
        error = "stream ended without [DONE]"
    if error is None and not state.chunk_times:
        # A finished request with no token has no TTFT; calling it finished would hide it.
        error = f"stream finished without text (usage says {state.completion_tokens} tokens)"
    return Outcome(
        "failed" if error else "finished",
        sent,
        token_times=state.token_times(),
        prompt_tokens=state.prompt_tokens,
        completion_tokens=state.completion_tokens,
        error=error,
    )


async def first_model(client: HTTPClient, target_url: str, api_key: str | None) -> str:
    """The first model id the server lists at ``GET /v1/models``."""
    url = target_url.rstrip("/").removesuffix("/v1") + "/v1/models"
    response = await client.request("GET", url, headers=auth_headers(api_key))
    if response.status != 200:
        raise ValueError(
            f"GET {url} answered HTTP {response.status}: {error_text(response.body)}; pass --model"
        )
    try:
        data = json.loads(response.body).get("data") or []
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"GET {url} did not answer a JSON object; pass --model") from None
    if not data or "id" not in data[0]:
        raise ValueError(f"GET {url} lists no models; pass --model")
    return str(data[0]["id"])
