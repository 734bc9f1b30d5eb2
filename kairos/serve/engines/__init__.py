"""Execution backends behind the workers. Only ``emulated`` exists now; ``vllm`` comes later."""

from __future__ import annotations

from typing import Protocol

from kairos.core.latency.profile import Profile
from kairos.core.registry import Registry


class Engine(Protocol):
    """How long the hardware takes: the workers sleep (emulated) or run (real) for this."""

    def prefill_time(self, sum_tokens: int, sum_sq_tokens: int) -> float: ...

    def decode_step_time(self, batch_size: int, kv_tokens: int) -> float: ...

    def kv_transfer_time(self, tokens: int) -> float: ...


ENGINES: Registry[Engine] = Registry("engine")


def create_engine(name: str, profile: Profile) -> Engine:
    from kairos.serve.engines import emulated as _emulated  # noqa: F401  (registers itself)

    return ENGINES.create(name, profile=profile)


def engine_names() -> list[str]:
    from kairos.serve.engines import emulated as _emulated  # noqa: F401

    return ENGINES.names()
