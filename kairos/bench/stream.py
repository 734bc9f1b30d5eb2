"""What one streamed OpenAI-compatible response said: text chunks with times, usage, errors.

Pure (no I/O, no clock): the HTTP client feeds it SSE lines with their receive times, then asks
for the per-token times. Both response shapes are read:

- ``/v1/completions``: ``{"choices": [{"text": "..."}]}``
- ``/v1/chat/completions``: ``{"choices": [{"delta": {"content": "..."}}]}`` (the first chunk
  usually carries only ``{"role": "assistant"}`` or empty content, which is no token)
- the usage chunk (``stream_options.include_usage``): ``{"choices": [], "usage": {...}}``
- an error: ``{"error": {...}}`` as data (vLLM, mid-stream), or an ``event: error`` field
- the end: ``data: [DONE]``
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from kairos.core.record import FloatArray


@dataclass(slots=True)
class StreamState:
    """Accumulates one response's events in arrival order."""

    chunk_times: list[float] = field(default_factory=list)
    chunk_chars: list[int] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    done: bool = False
    _event: str = ""

    def feed(self, line: str, now: float) -> None:
        """One line of the SSE body, received at ``now``."""
        line = line.strip()
        if not line:
            self._event = ""  # a blank line ends an SSE event
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data(value, now)
        # Comments (": ping"), "id:" and "retry:" lines carry nothing we measure.

    def _data(self, value: str, now: float) -> None:
        if value == "[DONE]":
            self.done = True
            return
        try:
            payload = json.loads(value)
        except json.JSONDecodeError:
            self._fail(f"unparseable stream data: {value[:200]!r}")
            return
        if self._event == "error" or (isinstance(payload, dict) and "error" in payload):
            self._fail(f"stream error: {_error_text(payload)}")
            return
        if not isinstance(payload, dict):
            self._fail(f"unexpected stream data: {value[:200]!r}")
            return
        text = "".join(_choice_text(c) for c in payload.get("choices") or [])
        if text:
            self.chunk_times.append(now)
            self.chunk_chars.append(len(text))
        usage = payload.get("usage")
        if isinstance(usage, dict):
            # With vLLM's continuous_usage_stats every chunk carries usage; the last one wins.
            self.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
            self.completion_tokens = _int_or_none(usage.get("completion_tokens"))

    def _fail(self, message: str) -> None:
        # Keep the first error: later ones are usually consequences of it.
        if self.error is None:
            self.error = message

    def token_times(self) -> FloatArray:
        """One time per output token (see :func:`spread_tokens`)."""
        return spread_tokens(self.chunk_times, self.chunk_chars, self.completion_tokens)


def spread_tokens(times: list[float], chars: list[int], reported: int | None) -> FloatArray:
    """Per-token times from per-chunk times, trusting the server's token count.

    A token is never given a time at which it had not been received: every token gets the
    receive time of the chunk that carried it. The norm is one token per chunk. When the usage
    reports more tokens than chunks (a server batching several tokens into one chunk, e.g.
    ``--stream-interval`` or speculative decoding), each chunk carries at least one token and
    the extra tokens are shared out in proportion to the chunk's text length (largest
    remainder): text length is the only per-chunk size signal the API gives. When it reports
    fewer tokens than chunks (a token split across chunks), tokens take evenly spaced chunk
    times keeping the first and the last, so TTFT and end-to-end latency stay as observed.
    Without a usage count, one token per chunk.
    """
    k = len(times)
    n = k if reported is None or reported <= 0 else reported
    if k == 0 or n == k:
        return np.asarray(times, dtype=np.float64)
    if n < k:
        picks = np.rint(np.linspace(0, k - 1, n)).astype(np.int64)
        return np.asarray(times, dtype=np.float64)[picks]
    counts = np.ones(k, dtype=np.int64) + _shares(n - k, np.asarray(chars, dtype=np.float64))
    return np.repeat(np.asarray(times, dtype=np.float64), counts)


def _shares(extra: int, weights: FloatArray) -> npt.NDArray[np.int64]:
    """``extra`` split in proportion to ``weights`` as integers (largest remainder method)."""
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    exact = extra * weights / weights.sum()
    counts: npt.NDArray[np.int64] = np.floor(exact).astype(np.int64)
    left = extra - int(counts.sum())
    # Stable sort on the negated remainders: ties go to the earlier chunk, deterministically.
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:left]] += 1
    return counts


def _choice_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    text = choice.get("text")
    if text is None:
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_text(payload: Any) -> str:
    """The message of an error body, shortened: OpenAI's ``{"error": {"message"}}``, vLLM's
    nested ``{"error": {"error": {...}}}`` (newer releases), FastAPI's ``{"detail"}``."""
    error = payload
    while isinstance(error, dict) and "error" in error:
        error = error["error"]
    if isinstance(error, dict):
        for key in ("message", "detail"):
            if key in error:
                return str(error[key])[:500]
    if isinstance(error, str):
        return error[:500]
    return json.dumps(payload)[:500]


def error_text(body: bytes) -> str:
    """The error message of a non-2xx response body (JSON or plain text)."""
    text = body.decode("utf-8", errors="replace")
    try:
        return _error_text(json.loads(text))
    except json.JSONDecodeError:
        return text.strip()[:500] or "(empty body)"
