"""Prompts the server counts as the trace's input length, and the calibration that makes them so.

The bench has no tokenizer (it must work against any server and model), so a prompt is a run of
common English words that every mainstream tokenizer (GPT-2/tiktoken BPE, Llama 2/3, Mistral,
Qwen) encodes as one token each. What the server actually counts is then measured: two probe
prompts of ``n1`` and ``n2`` words give ``prompt_tokens = a + b * words``, where ``a`` absorbs
what the server adds (a BOS token, a chat template) and ``b`` should be 1. Every response's
``usage.prompt_tokens`` is checked afterwards, so a tokenizer that breaks the assumption shows
up as mismatches in the summary instead of silently wrong prompt lengths.

Words are drawn at random per request (seeded), so two prompts share at most a few leading words,
never a whole KV cache block, and a prefix cache cannot make the replay cheaper than the trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Short, frequent words; each is a single token (with its leading space) in the tokenizers above.
VOCABULARY: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
    "as", "with", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "but",
    "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an",
    "each", "which", "she", "do", "how", "their", "if", "will", "up",
)  # fmt: skip

# A probe key no trace index uses, so probes never repeat a request's prompt.
_PROBE_STREAM = 2**32


class PromptBuilder:
    """Deterministic prompts: the same seed, index and length give the same text."""

    def __init__(self, seed: int, vocabulary: tuple[str, ...] = VOCABULARY) -> None:
        if not vocabulary:
            raise ValueError("the prompt vocabulary is empty")
        self._seed = seed
        self._words = np.array(vocabulary)

    def prompt(self, index: int, words: int) -> str:
        """``words`` words for request ``index``."""
        if words < 1:
            raise ValueError(f"a prompt needs at least one word, got {words}")
        rng = np.random.default_rng([self._seed, index])
        return " ".join(self._words[rng.integers(0, len(self._words), size=words)].tolist())

    def probe(self, k: int, words: int) -> str:
        return self.prompt(_PROBE_STREAM + k, words)


@dataclass(frozen=True, slots=True)
class Calibration:
    """``prompt_tokens = a + b * words`` as measured on the server under test."""

    a: float
    b: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.a) and np.isfinite(self.b) and self.b > 0):
            raise ValueError(
                f"calibration needs a finite a and b > 0, got a={self.a!r}, b={self.b!r}; "
                "does the server count prompt tokens (usage.prompt_tokens)?"
            )

    @classmethod
    def fit(cls, words: tuple[int, int], tokens: tuple[int, int]) -> Calibration:
        """The line through two probes ``(words[i], tokens[i])``."""
        (n1, n2), (t1, t2) = words, tokens
        if n1 == n2:
            raise ValueError(f"calibration probes need different lengths, got {n1} twice")
        b = (t2 - t1) / (n2 - n1)
        return cls(a=t1 - b * n1, b=b)

    def words_for(self, tokens: int) -> int:
        """Words to send so the server counts ``tokens`` prompt tokens (at least one word).

        When ``tokens`` is below what the server adds on its own (``a + b``, e.g. a chat
        template longer than the trace's prompt), the prompt is one word and the response's
        count will not match: that is reported, not hidden.
        """
        return max(1, round((tokens - self.a) / self.b))

    def tokens_for(self, words: int) -> int:
        """What the server is expected to count for a prompt of ``words`` words."""
        return round(self.a + self.b * words)


IDENTITY = Calibration(a=0.0, b=1.0)


def probe_lengths(max_input_tokens: int) -> tuple[int, int]:
    """Word counts of the two probes: far apart, yet within the trace's prompt lengths.

    The long probe is as long as the trace's longest prompt, but 16 to 1024 words: longer would
    not sharpen ``b`` when it is exactly 1, and must fit small models' context windows (the
    trace's prompts have to fit anyway). The short one is an eighth of it, so the fit is well
    conditioned.
    """
    high = int(min(1024, max(16, max_input_tokens)))
    return max(2, high // 8), high
