"""Worker processes: one per prefill or decode instance, started by ``kairos.serve.launch``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a spawned worker needs (picklable: it crosses the spawn boundary)."""

    kind: str  # "prefill" or "decode"
    instance: int
    ipc_dir: str
    profile: str
    engine: str
    decode_policy: str
    parent_pid: int

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.instance}"


def worker_main(config: WorkerConfig) -> None:
    """Process entry point (module-level so the spawn start method can import it)."""
    if config.kind == "prefill":
        from kairos.serve.workers.prefill import run_prefill_worker

        run_prefill_worker(config)
    else:
        from kairos.serve.workers.decode import run_decode_worker

        run_decode_worker(config)
