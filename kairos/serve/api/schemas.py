"""Request bodies of the OpenAI-compatible endpoints. Unknown fields (temperature, top_p, ...)
are accepted and ignored: the emulated engine samples nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class SLOBody(BaseModel):
    """``"slo": {"ttft_ms": 500, "tpot_ms": 40}`` (either may be left out)."""

    model_config = ConfigDict(extra="forbid")
    ttft_ms: float | None = None
    tpot_ms: float | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Generation(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    # Missing means 16 (OpenAI's completions default); vLLM semantics otherwise.
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Accepted for vLLM compatibility; the emulated engine has no EOS token, so it always
    # generates exactly max_tokens tokens whether or not this is set.
    ignore_eos: bool = False
    n: StrictInt = Field(default=1, ge=1, le=1)
    slo: SLOBody | str | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class CompletionRequest(_Generation):
    # A string, or one prompt as token ids (a list of several prompts is not supported).
    prompt: str | list[str] | list[StrictInt]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return " ".join(p.text or "" for p in self.content)


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    # The newer name the openai client sends for chat; it wins over max_tokens.
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
