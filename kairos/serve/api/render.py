"""Response bodies and SSE chunks in the OpenAI shapes (completions and chat).

Every generated token is the same placeholder, so a stream's chunks are one of four byte
strings (first/middle/last token, or the only one), built once per request: the per-token
cost of streaming is a join of ready-made bytes.
"""

from __future__ import annotations

import json
from typing import Any

from kairos.serve.errors import ServeError
from kairos.serve.tokenizer import TOKEN_TEXT, detokenize

DONE = b"data: [DONE]\n\n"


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class Rendering:
    def __init__(
        self, *, chat: bool, response_id: str, model: str, created: int, max_tokens: int
    ) -> None:
        self.chat = chat
        self.head = {
            "id": response_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
        }
        self.max_tokens = max_tokens
        self._variants: dict[tuple[bool, bool], bytes] = {}

    def _choice(self, first: bool, last: bool) -> dict[str, Any]:
        finish = "length" if last else None
        if not self.chat:
            return {"index": 0, "text": TOKEN_TEXT, "logprobs": None, "finish_reason": finish}
        delta = {"role": "assistant", "content": TOKEN_TEXT} if first else {"content": TOKEN_TEXT}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def _chunk(self, i: int) -> bytes:
        key = (i == 0, i == self.max_tokens - 1)
        data = self._variants.get(key)
        if data is None:
            data = self._variants[key] = _sse({**self.head, "choices": [self._choice(*key)]})
        return data

    def tokens(self, start: int, end: int) -> bytes:
        """SSE chunks of tokens ``start`` to ``end - 1``, concatenated."""
        if end - start == 1:
            return self._chunk(start)
        return b"".join([self._chunk(i) for i in range(start, end)])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return _sse({**self.head, "choices": [], "usage": usage(prompt_tokens, completion_tokens)})

    def body(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        """The whole non-streaming response."""
        text = detokenize(completion_tokens)
        finish = "length"
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return {
            **self.head,
            "object": obj,
            "choices": [choice],
            "usage": usage(prompt_tokens, completion_tokens),
        }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_event(error: ServeError) -> bytes:
    """An error in the middle of a stream (what vLLM sends; the openai client raises it)."""
    return _sse(error.body())
