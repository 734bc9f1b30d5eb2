"""Measure a running engine's prefill and decode step times over its OpenAI-compatible API.

The engine is one instance (not a P/D pair), e.g. a plain vLLM server. Prompts are random token
ids (seeded, a fresh draw per request so no prefix cache can hit), which fixes their length
exactly whatever the tokenizer.

* Prefill point: ``b`` requests of ``L`` tokens sent at once with ``max_tokens=1``; with
  ``b * L`` within the engine's token budget they run as one batch, and the slowest response
  time is the batch time (plus a per-request HTTP cost that the fitted ``c0`` absorbs).
* Decode point: ``b`` streams of ``L``-token prompts generating ``n`` tokens with
  ``ignore_eos``; once every stream has its first token they decode as one batch, and the
  median gap between consecutive tokens over that stretch is the step time at batch ``b`` and
  ``K = b * (L + tokens so far)``.
* Hand-off point (``--handoff``: the URL is a P/D proxy such as ``kairos serve --engine vllm``):
  one ``L``-token request alone with ``max_tokens=1``; its response time is the P leg (the
  prefill and the connector saving the KV), the KV hand-off and the decode instance's first
  step, which emits the token. The proxy's ``Server-Timing`` header gives the P leg apart.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass

import httpx
import numpy as np


@dataclass(frozen=True, slots=True)
class PrefillPoint:
    lengths: tuple[int, ...]
    seconds: float

    @property
    def sum_tokens(self) -> int:
        return sum(self.lengths)

    @property
    def sum_sq_tokens(self) -> int:
        return sum(n * n for n in self.lengths)


@dataclass(frozen=True, slots=True)
class DecodePoint:
    batch_size: int
    kv_tokens: int
    seconds: float
    steps: int  # gaps the median was taken over


@dataclass(frozen=True, slots=True)
class HandoffPoint:
    tokens: int
    seconds: float  # the whole response time of one request alone
    prefill_seconds: float | None  # its P leg, from the proxy's Server-Timing (if sent)


class Prober:
    """Sends the probe requests; one seeded generator makes every run repeatable."""

    def __init__(self, url: str, model: str, *, seed: int = 0, vocab: int = 32000) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.rng = np.random.default_rng(seed)
        self.vocab = vocab

    def prompt(self, tokens: int) -> list[int]:
        # Ids from the middle of the vocabulary: ordinary tokens, no special ones.
        return [int(t) for t in self.rng.integers(1000, self.vocab, size=tokens)]

    async def prefill(self, client: httpx.AsyncClient, lengths: list[int]) -> PrefillPoint:
        bodies = [self._body(self.prompt(n), 1, stream=False) for n in lengths]
        start = time.perf_counter()
        replies = await asyncio.gather(
            *(client.post(self.url + "/v1/completions", json=b) for b in bodies)
        )
        elapsed = time.perf_counter() - start
        for r in replies:
            _check(r)
        return PrefillPoint(tuple(lengths), elapsed)

    async def alone(self, client: httpx.AsyncClient, length: int) -> HandoffPoint:
        body = self._body(self.prompt(length), 1, stream=False)
        start = time.perf_counter()
        reply = await client.post(self.url + "/v1/completions", json=body)
        elapsed = time.perf_counter() - start
        _check(reply)
        return HandoffPoint(length, elapsed, _timing(reply.headers.get("server-timing"), "prefill"))

    async def decode(
        self, client: httpx.AsyncClient, batch: int, length: int, tokens: int
    ) -> DecodePoint:
        stamps = await asyncio.gather(
            *(self._stream(client, self.prompt(length), tokens) for _ in range(batch))
        )
        # The batch is complete once the last stream has its first token.
        together = max(s[0] for s in stamps)
        gaps = []
        for s in stamps:
            gaps += [b - a for a, b in itertools.pairwise(s) if a >= together]
        if not gaps:
            raise RuntimeError(f"decode probe b={batch} L={length}: no token gaps measured")
        k = batch * (length + tokens // 2)
        return DecodePoint(batch, k, statistics.median(gaps), len(gaps))

    async def _stream(self, client: httpx.AsyncClient, prompt: list[int], n: int) -> list[float]:
        stamps: list[float] = []
        body = self._body(prompt, n, stream=True)
        async with client.stream("POST", self.url + "/v1/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                _check(r)
            async for line in r.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    stamps.append(time.perf_counter())
        if len(stamps) < n:
            raise RuntimeError(f"decode probe: got {len(stamps)} of {n} tokens")
        return stamps

    def _body(self, prompt: list[int], max_tokens: int, *, stream: bool) -> dict[str, object]:
        return {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "temperature": 0.0,
            "stream": stream,
        }


def _timing(header: str | None, name: str) -> float | None:
    """Seconds of metric ``name`` in a ``Server-Timing`` header (``name;dur=MS, ...``)."""
    for part in (header or "").split(","):
        metric, *params = (x.strip() for x in part.split(";"))
        for param in params:
            if metric == name and param.startswith("dur="):
                return float(param[4:]) / 1e3
    return None


def _check(r: httpx.Response) -> None:
    if r.status_code != 200:
        raise RuntimeError(f"the engine answered {r.status_code}: {r.text[:300]}")
