"""Views over plain lists: reference implementations of the view protocols.

For policy unit tests and benchmarks, and for any runtime whose state is plain lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from kairos.core.request import Request


@dataclass
class StaticPrefillView:
    waiting: list[Request]
    instance_id: int = 0
    max_batch_tokens: int = 16_384
    max_batch_requests: int = 64
    kv_free_tokens: int = 1_000_000


@dataclass
class StaticDecodeView:
    waiting: list[Request]
    running: list[Request] = field(default_factory=list)
    generated_tokens: dict[int, int] = field(default_factory=dict)
    instance_id: int = 0
    transferring: int = 0
    kv_capacity_tokens: int = 1_000_000
    max_batch_size: int = 512
    in_flight_tokens: int = 0

    def generated(self, request: Request) -> int:
        return self.generated_tokens.get(request.id, request.output_tokens)

    def _context(self, r: Request) -> int:
        return r.prompt_tokens + self.generated(r)

    # Computed once: the lists are fixed for the life of a static view.
    @cached_property
    def kv_tokens(self) -> int:
        return sum(self._context(r) for r in self.running)

    @cached_property
    def waiting_tokens(self) -> int:
        return sum(self._context(r) for r in self.waiting)

    @property
    def kv_free_tokens(self) -> int:
        return self.kv_capacity_tokens - self.kv_tokens - self.in_flight_tokens
