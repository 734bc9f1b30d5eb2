"""Turn a parsed HTTP request into what the proxy needs, or a 400 that names the problem."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kairos.core.latency.profile import Profile
from kairos.core.slo import SLO, SLO_CLASSES
from kairos.serve.api.schemas import ChatRequest, CompletionRequest, SLOBody
from kairos.serve.errors import BadRequest
from kairos.serve.tokenizer import count_chat_tokens, count_tokens

DEFAULT_MAX_TOKENS = 16  # OpenAI's completions default when max_tokens is left out
TTFT_HEADER = "x-slo-ttft-ms"
TPOT_HEADER = "x-slo-tpot-ms"


@dataclass(frozen=True, slots=True)
class Admission:
    prompt_tokens: int
    max_tokens: int
    slo: SLO


def prompt_tokens(body: CompletionRequest | ChatRequest) -> int:
    if isinstance(body, ChatRequest):
        n = count_chat_tokens(m.text() for m in body.messages)
    elif isinstance(body.prompt, str):
        n = count_tokens(body.prompt)
    elif body.prompt and all(isinstance(p, str) for p in body.prompt):
        if len(body.prompt) != 1:
            raise BadRequest(
                "batched prompts (a list of several) are not supported", param="prompt"
            )
        n = count_tokens(str(body.prompt[0]))
    else:
        n = len(body.prompt)  # token ids
    if n < 1:
        raise BadRequest("the prompt is empty: it must have at least one token", param="prompt")
    return n


def admit(
    body: CompletionRequest | ChatRequest,
    headers: Mapping[str, str],
    profile: Profile,
    default_slo: SLO,
) -> Admission:
    n_prompt = prompt_tokens(body)
    max_tokens = body.max_tokens
    if isinstance(body, ChatRequest) and body.max_completion_tokens is not None:
        max_tokens = body.max_completion_tokens
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    _check_context(n_prompt, max_tokens, profile)
    ttft, tpot, explicit_tpot = slo_fields(body.slo, headers, default_slo)
    if explicit_tpot and max_tokens > 1:
        fastest = profile.decode.step_time(1, n_prompt + 1)
        if tpot < fastest:
            raise BadRequest(
                f"TPOT SLO of {tpot * 1e3:.3g} ms is below the fastest possible decode step for "
                f"this prompt ({fastest * 1e3:.3g} ms at batch size 1 and {n_prompt + 1} tokens "
                "of context); it can never be met",
                param="slo",
            )
    return Admission(n_prompt, max_tokens, SLO(ttft, tpot))


def _check_context(n_prompt: int, max_tokens: int, profile: Profile) -> None:
    for limit, what in (
        (profile.max_context_tokens, "the model's context limit"),
        (profile.kv_capacity_tokens, "the KV cache capacity of one instance"),
    ):
        if n_prompt > limit:
            raise BadRequest(
                f"prompt of {n_prompt} tokens exceeds {what} of {limit} tokens", param="prompt"
            )
        if n_prompt + max_tokens > limit:
            raise BadRequest(
                f"prompt ({n_prompt} tokens) plus max_tokens ({max_tokens}) exceeds {what} "
                f"of {limit} tokens",
                param="max_tokens",
            )


def slo_fields(
    slo: SLOBody | str | None, headers: Mapping[str, str], default: SLO
) -> tuple[float, float, bool]:
    """(ttft, tpot, tpot given by the client) in seconds: headers, then body, then defaults."""
    ttft, tpot = default.ttft, default.tpot
    explicit = False
    if isinstance(slo, str):
        if slo not in SLO_CLASSES:
            raise BadRequest(
                f"unknown SLO class {slo!r}; known classes: {', '.join(sorted(SLO_CLASSES))}",
                param="slo",
            )
        ttft, tpot = SLO_CLASSES[slo].slo.ttft, SLO_CLASSES[slo].slo.tpot
        explicit = True
    elif slo is not None:
        if slo.ttft_ms is not None:
            ttft = _positive_ms(slo.ttft_ms, "slo.ttft_ms")
        if slo.tpot_ms is not None:
            tpot = _positive_ms(slo.tpot_ms, "slo.tpot_ms")
            explicit = True
    if TTFT_HEADER in headers:
        ttft = _positive_ms(headers[TTFT_HEADER], f"header {TTFT_HEADER}")
    if TPOT_HEADER in headers:
        tpot = _positive_ms(headers[TPOT_HEADER], f"header {TPOT_HEADER}")
        explicit = True
    return ttft, tpot, explicit


def _positive_ms(value: object, name: str) -> float:
    """Milliseconds (a number or a numeric string) as seconds; 400 unless positive and finite."""
    try:
        ms = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ms = math.nan
    if not (ms > 0 and math.isfinite(ms)):
        raise BadRequest(
            f"{name} must be a positive number of milliseconds, got {value!r}", param="slo"
        )
    return ms / 1e3
