"""``kairos serve`` end to end: real processes, the emulated engine, HTTP and the openai client.

Each server runs as a ``kairos serve --port 0`` subprocess on a small, fast profile; the
fixture waits for its "ready" line and always stops it.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

MODEL = "test-model"
KEY = "sk-test"
AUTH = {"authorization": f"Bearer {KEY}"}

# Fast emulated hardware: a decode step is about 4 ms, a prefill 5 ms + 0.1 ms per token.
PROFILE = {
    "name": "serve-test",
    "description": "small, fast profile for the server tests",
    "model": {"name": MODEL, "layers": 32, "kv_heads": 8, "head_dim": 128, "dtype_bytes": 2},
    "hardware": {"gpu": "test-gpu", "num_gpus": 1},
    "kv_capacity_tokens": 50_000,
    "model_limits": {"max_context_tokens": 8192},
    "prefill": {"coefficients": {"c0": 0.005, "c1": 1e-4, "c2": 0.0}, "max_batch_tokens": 8192},
    "decode": {"coefficients": {"d0": 0.004, "d1": 1e-5, "d2": 1e-8}, "max_batch_size": 64},
    "kv_transfer": {"delta0": 0.001, "bandwidth_bytes_per_s": 5e10},
}


class Server:
    """A ``kairos serve`` subprocess."""

    def __init__(self, tmp: Path, *args: str) -> None:
        profile = tmp / "profile.json"
        profile.write_text(json.dumps(PROFILE))
        self.log = tmp / "requests.jsonl"
        cmd = [sys.executable, "-m", "kairos.cli", "serve", "--port", "0", "--profile"]
        cmd += [str(profile), "--request-log", str(self.log), *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output: list[str] = []
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "ready on " in line:
                self.url = line.split("ready on ")[1].split()[0].removesuffix("/v1")
                return
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/health", timeout=5)

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/debug/state", timeout=5).json()  # type: ignore[no-any-return]

    def worker_pids(self) -> dict[str, int]:
        return {w["name"]: w["pid"] for w in self.health().json()["workers"]}

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("serve"), "--api-key", KEY, "--max-queue", "4")
    yield s
    s.stop()


def post(server: Server, path: str, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    return httpx.post(
        f"{server.url}/v1/{path}", content=content, headers={**AUTH, **headers}, timeout=30
    )


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            found.add(k)
            todo.append(k)
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


# --- the happy path ------------------------------------------------------------------------
def test_completion_counts_tokens_and_echoes_request_id(server: Server) -> None:
    r = post(
        server,
        "completions",
        {"model": MODEL, "prompt": "one two three four", "max_tokens": 5},
        **{"x-request-id": "req-happy-1"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "req-happy-1"
    body = r.json()
    assert body["choices"][0]["text"] == " tok" * 5
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}


def test_default_max_tokens_is_16(server: Server) -> None:
    r = post(server, "completions", {"model": MODEL, "prompt": "hi"})
    assert r.json()["usage"]["completion_tokens"] == 16


def test_openai_client_completions(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    out = client.completions.create(
        model=MODEL, prompt="a b c", max_tokens=4, extra_body={"ignore_eos": True}
    )
    assert out.choices[0].text == " tok" * 4
    assert out.usage is not None and out.usage.prompt_tokens == 3
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt="a b c",
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == " tok" * 6 and len(texts) == 6
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert [m.id for m in client.models.list()] == [MODEL]


def test_openai_client_chat(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there world"},
    ]
    out = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=3)  # type: ignore[arg-type]
    assert out.choices[0].message.content == " tok" * 3
    assert out.usage is not None and out.usage.prompt_tokens == 5  # words of both contents
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        max_completion_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == " tok" * 5
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 10


def test_slo_headers_and_timeline_in_request_log(server: Server) -> None:
    headers = {"x-request-id": "req-slo", "x-slo-ttft-ms": "750", "x-slo-tpot-ms": "80"}
    assert (
        post(
            server, "completions", {"model": MODEL, "prompt": "x y", "max_tokens": 8}, **headers
        ).status_code
        == 200
    )
    body = {"model": MODEL, "prompt": "x", "max_tokens": 2, "slo": "relaxed"}
    assert post(server, "completions", body, **{"x-request-id": "req-class"}).status_code == 200
    wait_for(lambda: {"req-slo", "req-class"} <= {r["request_id"] for r in server.records()})
    recs = {r["request_id"]: r for r in server.records()}
    rec = recs["req-slo"]
    assert (rec["ttft_slo"], rec["tpot_slo"]) == (0.75, 0.08)
    assert (recs["req-class"]["ttft_slo"], recs["req-class"]["tpot_slo"]) == (5.0, 0.1)
    assert rec["status"] == "finished" and rec["error"] is None
    assert (rec["prefill_instance"], rec["decode_instance"]) == (0, 0)
    times = rec["token_times"]
    assert len(times) == 8 and times == sorted(times)
    assert rec["arrival"] <= rec["prefill_start"] < rec["prefill_end"] == times[0]
    # Decode steps follow the profile on the shared monotonic clock: a step of one request is
    # 4.01 ms. Steps keep their absolute deadlines (a worker that wakes late catches up, so a
    # late token can be followed by a short gap), so the mean gap is the step time.
    gaps = sorted(b - a for a, b in itertools.pairwise(times[1:]))
    assert abs((times[-1] - times[1]) / (len(times) - 2) - 0.0040) < 0.001, gaps
    assert abs(gaps[len(gaps) // 2] - 0.0040) < 0.0015, gaps


def test_metrics(server: Server) -> None:
    post(server, "completions", {"model": MODEL, "prompt": "m", "max_tokens": 3})
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        "kairos_ttft_seconds_count",
        "kairos_tpot_seconds_bucket",
        "kairos_itl_seconds_sum",
        "kairos_e2e_seconds_count",
        'kairos_slo_met_total{slo="joint"}',
        'kairos_requests_total{status="finished"}',
        "kairos_prefill_queue_length",
        'kairos_decode_running{instance="0"}',
        'kairos_predictor_mape{model="decode"}',
    ):
        assert name in text, name
    count = next(ln for ln in text.splitlines() if ln.startswith("kairos_ttft_seconds_count"))
    assert float(count.split()[-1]) >= 1


# --- bad input: a 4xx naming the problem, never a 500 ----------------------------------------
LONG = " ".join(["w"] * 8000)
BAD = [
    ("completions", "{not json", {}, 400, "malformed JSON"),
    ("completions", {"model": "gpt-9", "prompt": "x"}, {}, 404, "gpt-9"),
    ("completions", {"prompt": "x"}, {}, 400, "model"),
    ("completions", {"model": MODEL, "prompt": "x", "max_tokens": 0}, {}, 400, "max_tokens"),
    ("completions", {"model": MODEL, "prompt": "x", "max_tokens": -3}, {}, 400, "max_tokens"),
    ("completions", {"model": MODEL, "prompt": "x", "max_tokens": 2.5}, {}, 400, "max_tokens"),
    ("completions", {"model": MODEL, "prompt": "x", "max_tokens": "4"}, {}, 400, "max_tokens"),
    ("completions", {"model": MODEL, "prompt": "   "}, {}, 400, "empty"),
    ("completions", {"model": MODEL, "prompt": LONG + LONG}, {}, 400, "context limit"),
    (
        "completions",
        {"model": MODEL, "prompt": LONG, "max_tokens": 500},
        {},
        400,
        "plus max_tokens",
    ),
    (
        "completions",
        {"model": MODEL, "prompt": "x"},
        {"x-slo-ttft-ms": "soon"},
        400,
        "x-slo-ttft-ms",
    ),
    ("completions", {"model": MODEL, "prompt": "x"}, {"x-slo-tpot-ms": "-5"}, 400, "x-slo-tpot-ms"),
    (
        "completions",
        {"model": MODEL, "prompt": "x"},
        {"x-slo-tpot-ms": "1"},
        400,
        "fastest possible",
    ),
    ("completions", {"model": MODEL, "prompt": "x", "slo": {"ttft_ms": 0}}, {}, 400, "slo.ttft_ms"),
    ("completions", {"model": MODEL, "prompt": "x", "slo": "platinum"}, {}, 400, "SLO class"),
    ("completions", {"model": MODEL, "prompt": ["a", "b"]}, {}, 400, "batched"),
    ("chat/completions", {"model": MODEL, "messages": []}, {}, 400, "messages"),
    ("chat/completions", {"model": MODEL, "messages": "hi"}, {}, 400, "messages"),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "says"), BAD)
def test_bad_input(
    server: Server, path: str, body: Any, headers: dict[str, str], status: int, says: str
) -> None:
    r = post(server, path, body, **headers)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]["message"]


def test_server_still_serves_after_bad_input(server: Server) -> None:
    for path, body, headers, _, _ in BAD:
        post(server, path, body, **headers)
    r = post(server, "completions", {"model": MODEL, "prompt": "ok", "max_tokens": 2})
    assert r.status_code == 200
    assert server.state()["in_flight"] == 0


def test_an_idle_pooled_connection_is_still_served(server: Server) -> None:
    """Clients pool connections for longer than uvicorn's default keep-alive, 5 s (aiohttp
    keeps them 15 s), so a request sent on one after 6 s idle must be answered on it; with the
    default the server has closed it and the request fails ("connection reset by peer")."""
    url = httpx.URL(server.url)
    conn = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().read() and conn.sock is not None
        first = conn.sock
        time.sleep(6)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        assert conn.sock is first  # the same connection, not a reopened one
    finally:
        conn.close()


def test_api_key_is_required(server: Server) -> None:
    body = json.dumps({"model": MODEL, "prompt": "x"})
    url = f"{server.url}/v1/completions"
    assert httpx.post(url, content=body).status_code == 401
    wrong = httpx.post(url, content=body, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
    assert httpx.get(f"{server.url}/v1/models").status_code == 401


# --- load shedding, disconnects ----------------------------------------------------------------
def test_queue_bound_gives_429_with_retry_after(server: Server) -> None:
    async def scenario() -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"{server.url}/v1", headers=AUTH, timeout=30) as c:
            # A 6000-token prompt keeps the only prefill worker busy for about 0.6 s.
            long = {"model": MODEL, "prompt": " ".join(["w"] * 6000), "max_tokens": 1}
            tasks = [asyncio.create_task(c.post("/completions", json=long))]
            await asyncio.to_thread(wait_for, lambda: server.state()["prefill"][0]["busy"])
            short = {"model": MODEL, "prompt": "s", "max_tokens": 1}
            tasks += [asyncio.create_task(c.post("/completions", json=short)) for _ in range(4)]
            await asyncio.to_thread(wait_for, lambda: server.state()["prefill_queue"] == 4)
            rejected = await c.post("/completions", json=short)
            assert all(r.status_code == 200 for r in await asyncio.gather(*tasks))
            return rejected

    r = asyncio.run(scenario())
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert "max-queue" in r.json()["error"]["message"]


def _drained(server: Server) -> bool:
    s = server.state()
    return (
        s["in_flight"] == 0
        and all(p["kv_used"] == 0 and p["reported_kv_used"] == 0 for p in s["prefill"])
        and all(d["reserved"] == 0 and d["running"] == 0 for d in s["decode"])
    )


def test_client_disconnect_mid_stream_frees_kv(server: Server) -> None:
    body = {"model": MODEL, "prompt": "a b c d", "max_tokens": 4000, "stream": True}
    headers = {**AUTH, "x-request-id": "req-gone"}
    with (
        httpx.Client(timeout=30) as c,
        c.stream("POST", f"{server.url}/v1/completions", json=body, headers=headers) as r,
    ):
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
        wait_for(lambda: server.state()["decode"][0]["running"] == 1)
    wait_for(lambda: _drained(server))
    wait_for(lambda: "req-gone" in {r["request_id"] for r in server.records()})
    rec = next(r for r in server.records() if r["request_id"] == "req-gone")
    assert rec["status"] == "cancelled" and 1 < len(rec["token_times"]) < 4000


def test_client_disconnect_non_streaming_cancels(server: Server) -> None:
    body = {"model": MODEL, "prompt": "a b", "max_tokens": 4000}
    with pytest.raises(httpx.ReadTimeout):
        post_timeout = httpx.Timeout(5, read=0.3)
        httpx.post(f"{server.url}/v1/completions", json=body, headers=AUTH, timeout=post_timeout)
    wait_for(lambda: _drained(server))


# --- several instances, failures, shutdown -----------------------------------------------------
def test_two_by_two_uses_every_instance(tmp_path: Path) -> None:
    server = Server(tmp_path, "--prefill-instances", "2", "--decode-instances", "2")
    try:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=f"{server.url}/v1", timeout=30) as c:
                # 0.1 s prefills: the burst arrives while the first instance is still busy.
                body = {"model": MODEL, "prompt": " ".join(["w"] * 1000), "max_tokens": 20}
                return await asyncio.gather(*(c.post("/completions", json=body) for _ in range(8)))

        responses = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 8
        assert all(r.json()["usage"]["completion_tokens"] == 20 for r in responses)
        wait_for(lambda: len(server.records()) == 8)
        recs = server.records()
        assert {r["prefill_instance"] for r in recs} == {0, 1}
        assert {r["decode_instance"] for r in recs} == {0, 1}
        assert _drained(server)
    finally:
        server.stop()


def test_decode_worker_death(tmp_path: Path) -> None:
    server = Server(tmp_path, "--decode-instances", "2")
    try:

        async def scenario() -> list[str]:
            async with httpx.AsyncClient(base_url=f"{server.url}/v1", timeout=30) as c:
                body = {"model": MODEL, "prompt": "p q", "max_tokens": 300, "stream": True}

                async def one() -> str:
                    async with c.stream("POST", "/completions", json=body) as r:
                        events = [ln async for ln in r.aiter_lines() if ln.startswith("data: ")]
                    assert events[-1] == "data: [DONE]"
                    return "error" if '"error"' in events[-2] else f"tokens={len(events) - 1}"

                tasks = [asyncio.create_task(one()) for _ in range(4)]
                placed = lambda: all(d["running"] >= 1 for d in server.state()["decode"])  # noqa: E731
                await asyncio.to_thread(wait_for, placed)
                os.kill(server.worker_pids()["decode-0"], signal.SIGKILL)
                return await asyncio.gather(*tasks)

        outcomes = asyncio.run(scenario())
        assert "error" in outcomes and "tokens=300" in outcomes
        assert set(outcomes) == {"error", "tokens=300"}
        health = server.health()
        assert health.status_code == 503 and health.json()["dead_workers"] == ["decode-0"]
        body = {"model": MODEL, "prompt": "again", "max_tokens": 3}
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=10)
        assert r.status_code == 200  # placed on the live decode worker
        os.kill(server.worker_pids()["decode-1"], signal.SIGKILL)
        wait_for(lambda: len(server.health().json()["dead_workers"]) == 2)
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=10)
        assert r.status_code == 503 and "no live" in r.json()["error"]["message"]
    finally:
        server.stop()
    failed = [r for r in server.records() if r["status"] == "failed"]
    assert failed and all(r["decode_instance"] == 0 for r in failed)


def test_sigterm_stops_everything(tmp_path: Path) -> None:
    server = Server(tmp_path)
    kids = children(server.proc.pid)
    assert set(server.worker_pids().values()) <= kids and len(kids) >= 2
    # A stream in flight must not hold the shutdown up.
    body = {"model": MODEL, "prompt": "p", "max_tokens": 100_000 // 20, "stream": True}
    with (
        httpx.Client(timeout=30) as c,
        c.stream("POST", f"{server.url}/v1/completions", json=body) as r,
    ):
        lines = r.iter_lines()
        next(lines)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        rest = list(lines)
    assert any("shutting down" in ln for ln in rest)
    assert server.proc.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - start < 5
    wait_for(lambda: not any(alive(k) for k in kids))


def test_workers_exit_when_the_proxy_is_killed(tmp_path: Path) -> None:
    server = Server(tmp_path)
    kids = children(server.proc.pid)
    server.proc.kill()
    server.proc.wait()
    wait_for(lambda: not any(alive(k) for k in kids))


def test_unknown_engine_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from kairos.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--engine", "tpu"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--engine" in err and "'tpu'" in err and "emulated" in err


def test_mode_b_on_vllm_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Checked before anything of vLLM's is needed: the plugin cannot skip a running request.
    from kairos.cli import main

    code = main(["serve", "--engine", "vllm", "--decode-policy", "kairos-b"])
    assert code != 0
    err = capsys.readouterr().err
    assert "kairos-b" in err and "mode B" in err and "'kairos'" in err
