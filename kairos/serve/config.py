"""Server configuration: frozen, validated on construction (messages quote the bad value)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kairos.core.slo import SLO
from kairos.profiles import DEFAULT_PROFILE

# DistServe batches at most this many prompts per prefill step (as the simulator does).
MAX_PREFILL_BATCH_REQUESTS = 64


@dataclass(frozen=True, slots=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    engine: str = "emulated"
    profile: str = DEFAULT_PROFILE
    model: str | None = None  # the name clients use; default: the profile's model name
    prefill_instances: int = 1
    decode_instances: int = 1
    prefill_policy: str = "fcfs"
    decode_policy: str = "fcfs"
    ttft_slo: float = 1.0
    tpot_slo: float = 0.05
    max_queue: int = 1024
    api_key: str | None = None
    request_log: Path | None = None
    max_prefill_batch_requests: int = MAX_PREFILL_BATCH_REQUESTS
    # How long Ctrl-C / SIGTERM waits for open responses before cutting them.
    shutdown_grace: float = 2.0

    def __post_init__(self) -> None:
        from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
        from kairos.serve.engines import engine_names

        if self.engine not in engine_names():
            raise ValueError(
                f"unknown --engine {self.engine!r}; available: {', '.join(engine_names())} "
                "(--engine vllm runs vLLM's own servers instead: docs/vllm.md)"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be in [0, 65535], got {self.port}")
        for flag, n in (
            ("--prefill-instances", self.prefill_instances),
            ("--decode-instances", self.decode_instances),
            ("--max-queue", self.max_queue),
        ):
            if n < 1:
                raise ValueError(f"{flag} must be >= 1, got {n}")
        for flag, name, registry in (
            ("--prefill-policy", self.prefill_policy, PREFILL_POLICIES),
            ("--decode-policy", self.decode_policy, DECODE_POLICIES),
        ):
            if name not in registry:
                raise ValueError(
                    f"unknown {flag} {name!r}; choose one of: {', '.join(registry.names())}"
                )
        self.default_slo  # noqa: B018  (validates --ttft-slo/--tpot-slo)
        if self.api_key == "":
            raise ValueError("--api-key must not be empty")

    @property
    def default_slo(self) -> SLO:
        try:
            return SLO(self.ttft_slo, self.tpot_slo)
        except ValueError as e:
            raise ValueError(f"--ttft-slo/--tpot-slo: {e}") from None
