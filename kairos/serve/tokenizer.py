"""The emulated engine's tokenizer: deterministic, and exact on its own output.

A prompt's token count is its number of whitespace-separated words (``str.split()``). A chat
prompt counts the words of all message contents joined by spaces; roles, names and any chat
template add nothing. Every generated token is the placeholder word ``" tok"``, so
re-tokenizing the output text counts exactly the completion tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

TOKEN_TEXT = " tok"


def count_tokens(text: str) -> int:
    return len(text.split())


def count_chat_tokens(contents: Iterable[str]) -> int:
    return count_tokens(" ".join(contents))


def detokenize(n: int) -> str:
    """The text of ``n`` generated tokens."""
    return TOKEN_TEXT * n
