"""The vLLM integration's pure parts, without vLLM: request mirrors, the views the core policies
read inside vLLM's scheduler, and the P/D proxy against fake instances."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.core.latency.predictor import Predictor
from kairos.core.latency.profile import Profile
from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.core.queue_columns import DECODE_FIELDS, Columns
from kairos.core.slo import SLO
from kairos.integrations.vllm.proxy import Backend, ProxyState, create_proxy_app
from kairos.integrations.vllm.views import (
    XARG_ARRIVAL,
    XARG_PREFILLED,
    XARG_TPOT,
    XARG_TTFT,
    DecodeQueue,
    DecodeState,
    PlainSamplingParams,
    PlainVllmRequest,
    PrefillState,
    RequestMirror,
)
from tests.conftest import make_profile


def _req(rid: str, prompt: int, **xargs: float) -> PlainVllmRequest:
    params = PlainSamplingParams(dict(xargs) or None)
    return PlainVllmRequest(rid, prompt, arrival_time=100.0, sampling_params=params)


def test_mirror_takes_arrival_and_slo_from_xargs_and_falls_back_to_defaults() -> None:
    mirror = RequestMirror(SLO(2.0, 0.1))
    a = mirror.get(
        _req("a", 100, **{XARG_ARRIVAL: 42.0, XARG_TTFT: 0.5, XARG_TPOT: 0.03, XARG_PREFILLED: 43})
    )
    assert (a.arrival, a.ttft_slo, a.tpot_slo) == (42.0, 0.5, 0.03)
    assert a.prefill_end == a.decode_anchor == 43.0
    b = mirror.get(_req("b", 10))  # sent straight to vLLM: no xargs
    assert (b.arrival, b.ttft_slo, b.tpot_slo) == (100.0, 2.0, 0.1)
    bad = mirror.get(_req("c", 10, **{XARG_TTFT: -1.0}))  # never crashes the engine core
    assert bad.slo == SLO(2.0, 0.1)
    assert len({a.id, b.id, bad.id}) == 3


def test_mirror_follows_vllm_counters_and_forgets_finished_requests() -> None:
    mirror = RequestMirror(SLO(2.0, 0.1))
    v = _req("a", 100)
    r = mirror.get(v)
    v.num_computed_tokens, v.num_output_tokens, v.num_preemptions = 100, 7, 1
    assert mirror.get(v) is r
    assert mirror.source(r) is v  # decisions map back to vLLM's requests
    # Fully computed prompt: one token still counts as uncached (the one that samples).
    assert (r.cached_tokens, r.output_tokens, r.preemptions) == (99, 7, 1)
    mirror.forget_all_but(["other"])
    assert len(mirror) == 0
    assert mirror.get(v) is not r


def test_mirror_dates_the_first_token_the_instance_emits() -> None:
    # vLLM's P/D decode instance: deadlines run from the hand-off until the first token,
    # then from the step that emitted it (the TPOT clock starts there).
    mirror = RequestMirror(SLO(2.0, 0.1))
    v = _req("a", 100, **{XARG_PREFILLED: 43.0})
    r = mirror.get(v, 44.0)
    assert r.first_token is None and r.decode_anchor == 43.0
    v.num_output_tokens = 1
    assert mirror.get(v, 44.5).decode_anchor == 44.5
    v.num_output_tokens = 5
    assert mirror.get(v, 45.0).first_token == 44.5  # dated once


def test_prefill_policy_orders_vllms_queue_by_urgency(profile: Profile) -> None:
    """FCFS takes the long head-of-line prompt; Kairos takes the short urgent ones first."""
    mirror = RequestMirror(SLO(1.0, 0.1))
    now = 10.0
    vreqs = [
        _req("long", 6000, **{XARG_ARRIVAL: 9.9, XARG_TTFT: 5.0}),
        *(_req(f"s{i}", 200, **{XARG_ARRIVAL: 9.95, XARG_TTFT: 0.4}) for i in range(3)),
    ]
    view = PrefillState(
        waiting=sorted((mirror.get(v) for v in vreqs), key=lambda r: r.arrival),
        max_batch_tokens=4096,
        max_batch_requests=64,
        kv_free_tokens=100_000,
    )
    predictor = Predictor.from_profile(profile)
    fcfs = PREFILL_POLICIES.create("fcfs", predictor=predictor).schedule(view, now)
    kairos = PREFILL_POLICIES.create("kairos", predictor=predictor).schedule(view, now)
    assert fcfs.batch[0].prompt_tokens == 6000
    assert [r.prompt_tokens for r in kairos.batch] == [200, 200, 200]


def test_decode_state_feeds_the_decode_policy_its_budget(profile: Profile) -> None:
    """With a TPOT SLO just above a small batch's step time, Kairos admits only what fits,
    where continuous batching admits everyone."""
    mirror = RequestMirror(SLO(1.0, 0.1))
    predictor = Predictor.from_profile(profile)
    # Room for a fourth request (K = 3 * 1020 + 1000) but not a fifth.
    tpot = predictor.decode_step_time(4, 4100) / 0.95
    now = 50.0
    running = [_req(f"r{i}", 1000, **{XARG_TPOT: tpot, XARG_PREFILLED: now - 1}) for i in range(3)]
    for v in running:
        v.num_output_tokens = 20
    waiting = [_req(f"w{i}", 1000, **{XARG_TPOT: tpot, XARG_PREFILLED: now}) for i in range(20)]
    view = DecodeState(
        running=[mirror.get(v) for v in running],
        waiting=[mirror.get(v) for v in waiting],
        transferring=0,
        kv_capacity_tokens=200_000,
        kv_free_tokens=200_000 - 3 * 1020,
        max_batch_size=256,
    )
    assert view.kv_tokens == 3 * 1020 and view.waiting_tokens == 20 * 1000
    assert view.generated(view.running[0]) == 20
    assert view.running[0].decode_anchor == now - 1
    kairos = DECODE_POLICIES.create("kairos", predictor=predictor).schedule(view, now)
    fcfs = DECODE_POLICIES.create("fcfs", predictor=predictor).schedule(view, now)
    assert len(kairos.admit) == 1
    assert len(fcfs.admit) == 20


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sets(st.integers(0, 29), max_size=30), st.sets(st.integers(0, 29))),
        min_size=1,
        max_size=8,
    )
)
def test_kept_decode_queue_reads_as_the_candidates_read_afresh(
    steps: list[tuple[set[int], set[int]]],
) -> None:
    """The plugin's kept queue, synced step after step with a changing candidate set (some
    requests run and come back preempted, with output), holds exactly the candidates, and
    its kept columns give the decisions that columns built afresh from them give."""
    tpot = 0.02
    vreqs = [
        _req(f"v{i}", 100 + 37 * i, **{XARG_TPOT: tpot, XARG_PREFILLED: 5.0}) for i in range(30)
    ]
    mirror = RequestMirror(SLO(1.0, 0.1))
    kept = DecodeQueue(mirror)
    predictor = Predictor.from_profile(make_profile())
    for present, ran in steps:
        for i in ran - present:  # ran while away; back as preempted, holding its output
            vreqs[i].num_output_tokens += 3
            vreqs[i].num_preemptions += 1
        candidates = [vreqs[i] for i in sorted(present)]
        queue = kept.sync(candidates)
        fresh = [mirror.get(v) for v in candidates]
        assert {r.id for r in queue} == {r.id for r in fresh}
        assert queue.tokens == sum(r.context_tokens for r in fresh)
        # The same requests as a plain list in the kept queue's order: the policy builds
        # their columns itself (``Columns.of``), as it did inside vLLM before the kept queue.
        listed = list(queue)
        cols, ref = queue.columns, Columns.of(DECODE_FIELDS, listed)
        assert cols is not None
        order = np.argsort(cols["seq"])
        for name in DECODE_FIELDS:
            assert cols[name][order].tolist() == ref[name].tolist()
        states = [
            DecodeState(
                running=[],
                waiting=w,
                transferring=0,
                kv_capacity_tokens=20_000,
                kv_free_tokens=20_000,
                max_batch_size=8,
            )
            for w in (queue, listed)
        ]
        for name in ("kairos", "fcfs"):
            policy = DECODE_POLICIES.create(name, predictor=predictor)
            a, b = (policy.schedule(state, 6.0) for state in states)
            assert [r.id for r in a.admit] == [r.id for r in b.admit]


def test_kept_decode_queue_puts_a_preempted_request_first() -> None:
    mirror = RequestMirror(SLO(1.0, 0.1))
    kept = DecodeQueue(mirror)
    a, b = _req("a", 10, **{XARG_PREFILLED: 1.0}), _req("b", 10, **{XARG_PREFILLED: 1.0})
    kept.sync([a])
    a.num_output_tokens, a.num_preemptions = 4, 1
    assert [r.id for r in kept.sync([])] == []
    queue = kept.sync([b, a])  # a ran, was preempted and is back
    assert [mirror.source(r).request_id for r in queue] == ["a", "b"]
    assert queue.tokens == 14 + 10
    assert np.array_equal(np.sort(queue.columns["out"]), [0, 4])  # type: ignore[index]


# --- the proxy -----------------------------------------------------------------------------


class FakeInstances:
    """A prefill and a decode instance behind one httpx mock transport."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.prefill_status = 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        role = "prefill" if request.url.port == 9001 else "decode"
        if request.url.path == "/health":
            return httpx.Response(200)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "smollm2"}]})
        body = json.loads(request.content)
        self.calls.append((role, body))
        if role == "prefill":
            if self.prefill_status != 200:
                return httpx.Response(self.prefill_status, json={"error": {"message": "too long"}})
            return httpx.Response(
                200,
                json={
                    "choices": [{"text": "x"}],
                    "kv_transfer_params": {"block": 7},
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1},
                },
            )
        if body.get("stream"):

            async def sse() -> Any:
                for i in range(3):
                    yield f"data: {json.dumps({'n': i})}\n\n".encode()
                yield b"data: [DONE]\n\n"

            return httpx.Response(200, content=sse())
        return httpx.Response(200, json={"choices": [{"text": "abc"}], "usage": {"total": 3}})


@pytest.fixture
def proxy() -> tuple[TestClient, FakeInstances]:
    fake = FakeInstances()
    state = ProxyState(
        prefill=[Backend("prefill", 0, "http://127.0.0.1:9001")],
        decode=[Backend("decode", 0, "http://127.0.0.1:9002")],
        default_slo=SLO(2.0, 0.1),
        transport=httpx.MockTransport(fake.handle),
    )
    with TestClient(create_proxy_app(state)) as client:
        yield client, fake


def test_proxy_hands_kv_from_prefill_to_decode_with_slos(
    proxy: tuple[TestClient, FakeInstances],
) -> None:
    client, fake = proxy
    r = client.post(
        "/v1/completions",
        json={"model": "smollm2", "prompt": "hi", "max_tokens": 5},
        headers={"x-slo-ttft-ms": "300"},
    )
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "abc"
    (p_role, p_body), (d_role, d_body) = fake.calls
    assert (p_role, d_role) == ("prefill", "decode")
    assert p_body["max_tokens"] == 1 and p_body["stream"] is False
    assert p_body["kv_transfer_params"] == {"do_remote_decode": True}
    assert p_body["vllm_xargs"][XARG_TTFT] == 0.3
    assert p_body["vllm_xargs"][XARG_TPOT] == 0.1
    assert d_body["max_tokens"] == 5
    assert d_body["kv_transfer_params"] == {"block": 7}
    x = d_body["vllm_xargs"]
    assert x[XARG_ARRIVAL] <= x[XARG_PREFILLED]


def test_proxy_logs_each_hop_and_sends_server_timing() -> None:
    fake, log = FakeInstances(), io.StringIO()
    state = ProxyState(
        prefill=[Backend("prefill", 0, "http://127.0.0.1:9001")],
        decode=[Backend("decode", 0, "http://127.0.0.1:9002")],
        default_slo=SLO(2.0, 0.1),
        transport=httpx.MockTransport(fake.handle),
        request_log=log,
    )
    with TestClient(create_proxy_app(state)) as client:
        body = {"model": "smollm2", "prompt": "hi", "max_tokens": 3}
        plain = client.post("/v1/completions", json=body)
        stream = client.post("/v1/completions", json=dict(body, stream=True))
    assert "prefill;dur=" in plain.headers["server-timing"]
    assert "decode;dur=" in plain.headers["server-timing"]
    assert "prefill;dur=" in stream.headers["server-timing"]
    first, second = (json.loads(line) for line in log.getvalue().splitlines())
    assert first["status"] == second["status"] == "ok"
    assert first["arrival"] <= first["prefilled"] <= first["end"]
    assert first["first_chunk"] is None  # not streamed
    assert second["prefilled"] <= second["first_chunk"] <= second["end"]
    assert first["prompt_tokens"] == second["prompt_tokens"] == 2  # the prefill's count


def test_proxy_relays_the_decode_stream(proxy: tuple[TestClient, FakeInstances]) -> None:
    client, _ = proxy
    body = {"model": "smollm2", "prompt": "hi", "max_tokens": 3, "stream": True}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200
    events = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) == 4


def test_proxy_bad_input_names_the_problem(proxy: tuple[TestClient, FakeInstances]) -> None:
    client, fake = proxy
    r = client.post("/v1/completions", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = client.post(
        "/v1/completions",
        json={"model": "smollm2", "prompt": "hi"},
        headers={"x-slo-tpot-ms": "fast"},
    )
    assert r.status_code == 400 and "x-slo-tpot-ms" in r.json()["error"]["message"]
    fake.prefill_status = 400  # vLLM's own 4xx (e.g. prompt too long) is relayed as is
    r = client.post("/v1/completions", json={"model": "smollm2", "prompt": "hi"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "too long"
    assert client.get("/health").json()["status"] == "ok"


def test_serve_vllm_without_vllm_says_how_to_install() -> None:
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    r = subprocess.run(
        [sys.executable, "-m", "kairos.cli", "serve", "--engine", "vllm", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "vLLM is not installed" in r.stderr and "install-vllm-cpu.sh" in r.stderr


KV = Path("/tmp/kv")


def test_both_roles_get_the_same_small_kv_block() -> None:
    # The hand-off moves whole blocks; with vLLM's CPU default of 128 the decode instance
    # recomputed every prompt under 129 tokens.
    from kairos.integrations.vllm.instances import InstanceSpec, VllmOptions, command

    opts = VllmOptions("m", "m", "storage", "p", 1.0, 0.05)
    for role in ("prefill", "decode"):
        cmd = command(InstanceSpec(role, 0, 8000, "kairos"), opts, Path("/tmp/kv"))
        assert cmd[cmd.index("--block-size") + 1] == "32"
    opts.block_size = 64
    cmd = command(InstanceSpec("decode", 0, 8000, "vllm"), opts, Path("/tmp/kv"))
    assert cmd[cmd.index("--block-size") + 1] == "64"


def test_prefill_never_chunks_a_prompt_the_storage_connector_saves() -> None:
    # It saves the blocks of a prompt's first step under the whole prompt's key: a chunked
    # prompt reached the decode instance short and killed it.
    from kairos.integrations.vllm.instances import InstanceSpec, VllmOptions, command

    for connector, chunks in (("storage", False), ("nixl", True)):
        opts = VllmOptions("m", "m", connector, "p", 1.0, 0.05)
        for policy in ("vllm", "kairos"):
            prefill = command(InstanceSpec("prefill", 0, 8000, policy), opts, KV)
            assert ("--no-enable-chunked-prefill" not in prefill) == chunks
            decode = command(InstanceSpec("decode", 0, 8000, policy), opts, KV)
            assert "--no-enable-chunked-prefill" not in decode


def test_a_baseline_role_is_only_timed_when_steps_are_logged() -> None:
    # vLLM's own scheduling gets no plugin, unless steps are logged: then the timing-only
    # one, so the baseline run can be refitted (kairos profile --from-steps) on its own steps.
    from kairos.integrations.vllm.instances import (
        PLUGINS,
        TIMERS,
        InstanceSpec,
        VllmOptions,
        command,
    )

    opts = VllmOptions("m", "m", "storage", "p", 1.0, 0.05)
    for role in ("prefill", "decode"):
        assert "--scheduler-cls" not in command(InstanceSpec(role, 0, 8000, "vllm"), opts, KV)
    opts.sched_log_dir = Path("/tmp/sched")
    for role in ("prefill", "decode"):
        cmd = command(InstanceSpec(role, 0, 8000, "vllm"), opts, KV)
        assert cmd[cmd.index("--scheduler-cls") + 1] == TIMERS[role]
        cmd = command(InstanceSpec(role, 0, 8000, "kairos"), opts, KV)
        assert cmd[cmd.index("--scheduler-cls") + 1] == PLUGINS[role]
