"""``kairos serve`` without processes: the proxy's scheduler driven by fake worker messages,
the decode state machine, the mirrors, validation, rendering, messages and the tokenizer."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from kairos.core.decisions import DecodeDecision, PolicyContractError
from kairos.core.latency.predictor import Predictor
from kairos.core.latency.profile import Profile
from kairos.core.policies import DECODE_POLICIES
from kairos.core.request import Request, RequestState
from kairos.core.slo import SLO, SLO_CLASSES
from kairos.core.snapshot import DecodeView
from kairos.serve import messages as m
from kairos.serve.api.render import Rendering
from kairos.serve.api.schemas import ChatRequest, CompletionRequest
from kairos.serve.api.validate import admit
from kairos.serve.config import ServeConfig
from kairos.serve.errors import BadRequest, Overloaded, Unavailable, WorkerFailed
from kairos.serve.job import Job, record
from kairos.serve.mirrors import DecodeMirror
from kairos.serve.proxy import Proxy
from kairos.serve.tokenizer import count_chat_tokens, count_tokens, detokenize
from kairos.serve.workers.decode_state import DecodeState
from tests.conftest import make_profile

SLO_ = SLO(1.0, 0.05)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, m.Message]] = []

    def send(self, kind: str, instance: int, msg: m.Message) -> bool:
        self.sent.append((kind, instance, msg))
        return True

    def take(self) -> list[tuple[str, int, m.Message]]:
        sent, self.sent = self.sent, []
        return sent


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t


def make_proxy(
    profile: Profile, *, decode: int = 2, max_queue: int = 8
) -> tuple[Proxy, FakeTransport, FakeClock]:
    transport, clock = FakeTransport(), FakeClock()
    config = ServeConfig(decode_instances=decode, max_queue=max_queue)
    return Proxy(config, profile, transport, clock), transport, clock  # type: ignore[arg-type]


def submit(proxy: Proxy, prompt: int, max_tokens: int = 4) -> Job:
    r = Request(proxy.new_id(), proxy.clock.now(), prompt, SLO_, max_output_tokens=max_tokens)
    job = Job(r, f"client-{r.id}", max_tokens)
    proxy.submit(job)
    return job


def done(batch: m.PrefillBatch, instance: int = 0, end: float = 100.1) -> m.PrefillDone:
    specs = batch.requests
    s = sum(x.prompt_tokens for x in specs)
    s2 = sum(x.prompt_tokens**2 for x in specs)
    handoffs = [m.KVHandoff(x, instance, x.prompt_tokens, end) for x in specs]
    return m.PrefillDone(instance, batch.batch_id, 100.0, end, end - 100.0, s, s2, s, handoffs)


def update(instance: int, tokens: list[int], **kw: object) -> m.DecodeUpdate:
    fields: dict[str, object] = dict(
        time=101.0,
        step_time=0.0,
        predicted_raw=0.0,
        finished=[],
        admitted=[],
        preempted=[],
        joined=[],
        kv_tokens=0,
        reserved=0,
        transferring=0,
    )
    fields.update(kw)
    return m.DecodeUpdate(instance=instance, tokens=tokens, **fields)  # type: ignore[arg-type]


# --- the proxy's scheduler ---------------------------------------------------------------------
def test_prefill_pulls_from_the_global_queue_and_decode_policy_places(profile: Profile) -> None:
    proxy, transport, _ = make_proxy(profile)
    j1, j2, j3 = submit(proxy, 10), submit(proxy, 20), submit(proxy, 5)
    [(kind, inst, first)] = transport.take()
    assert (kind, inst) == ("prefill", 0) and isinstance(first, m.PrefillBatch)
    assert [x.id for x in first.requests] == [j1.request.id]  # the worker was free at once
    assert [r.id for r in proxy.queue] == [j2.request.id, j3.request.id]
    assert proxy.prefill[0].kv_used == 10
    proxy.handle(done(first))
    sent = transport.take()
    # The next batch first (the instance idles until it has it), then j1 -> decode 0 (FCFS:
    # most free memory, ties to the lowest).
    assert (sent[1][0], sent[1][1], type(sent[1][2])) == ("decode", 0, m.KVHandoff)
    second = sent[0][2]
    assert isinstance(second, m.PrefillBatch)
    assert [x.id for x in second.requests] == [j2.request.id, j3.request.id]
    assert j1.token_times == [100.1] and j1.request.output_tokens == 1
    proxy.handle(done(second, end=100.2))
    placed = [(i, msg.request.id) for _, i, msg in transport.take() if isinstance(msg, m.KVHandoff)]
    # j2 goes to the empty decode 1; j3 back to decode 0, which has less waiting context.
    assert placed == [(1, j2.request.id), (0, j3.request.id)]
    assert proxy.predictor.prefill_correction.samples == 2


def test_tokens_stream_and_kv_is_released_once(profile: Profile) -> None:
    proxy, transport, _ = make_proxy(profile, decode=1)
    job = submit(proxy, 10, max_tokens=3)
    proxy.handle(done(transport.take()[0][2]))  # type: ignore[arg-type]
    rid = job.request.id
    proxy.handle(m.KVReleased(rid, 0))
    proxy.handle(m.KVReleased(rid, 0))  # a duplicate must not free twice
    assert proxy.prefill[0].kv_used == 0
    released = [msg for kind, _, msg in transport.take() if kind == "prefill"]
    assert released == [m.KVReleased(rid, 0)]
    proxy.handle(update(0, [], joined=[rid], reserved=11, kv_tokens=11))
    assert [r.id for r in proxy.decode[0].running] == [rid]
    proxy.handle(update(0, [rid], time=101.0, step_time=0.01, predicted_raw=0.01))
    proxy.handle(update(0, [rid], time=101.01, finished=[rid]))
    assert job.status == "finished" and job.token_times == [100.1, 101.0, 101.01]
    assert not proxy.jobs and not proxy.decode[0].running
    rec = record(job)
    assert rec.output_tokens == 3 and rec.ttft == pytest.approx(0.1)
    assert proxy.predictor.decode_correction.samples == 1


def test_single_token_request_ends_at_prefill(profile: Profile) -> None:
    proxy, transport, _ = make_proxy(profile)
    job = submit(proxy, 7, max_tokens=1)
    proxy.handle(done(transport.take()[0][2]))  # type: ignore[arg-type]
    assert job.status == "finished" and len(job.token_times) == 1
    assert proxy.prefill[0].kv_used == 0
    assert [type(x[2]) for x in transport.take()] == [m.KVReleased]


def test_cancel_frees_kv_wherever_the_request_is(profile: Profile) -> None:
    proxy, transport, _ = make_proxy(profile, decode=1)
    prefilling, queued = submit(proxy, 10), submit(proxy, 20)
    batch = transport.take()[0][2]
    proxy.cancel(queued)
    assert queued.status == "cancelled" and not proxy.queue
    proxy.cancel(prefilling)  # mid-prefill: the prompt KV is released at once
    assert proxy.prefill[0].kv_used == 0
    proxy.handle(done(batch))  # type: ignore[arg-type]
    assert not any(isinstance(x[2], m.KVHandoff) for x in transport.take())
    decoding = submit(proxy, 5)
    proxy.handle(done(transport.take()[0][2]))  # type: ignore[arg-type]
    transport.take()
    proxy.cancel(decoding)
    sent = [(kind, type(msg)) for kind, _, msg in transport.take()]
    assert ("decode", m.Cancel) in sent and ("prefill", m.KVReleased) in sent
    assert proxy.prefill[0].kv_used == 0 and not proxy.jobs


def test_dead_decode_worker_fails_its_requests_only(profile: Profile) -> None:
    proxy, transport, _ = make_proxy(profile)
    a, b = submit(proxy, 10), submit(proxy, 10)
    proxy.handle(done(transport.take()[0][2]))  # type: ignore[arg-type]
    proxy.handle(done(transport.take()[0][2]))  # type: ignore[arg-type]  (b's batch went first)
    assert (a.request.decode_instance, b.request.decode_instance) == (0, 1)
    proxy.worker_died("decode", 0)
    assert a.status == "failed" and isinstance(a.error, WorkerFailed) and a.error.status == 502
    assert b.status is None
    assert proxy.prefill[0].kv_used == 10  # b's KV still waits to be pulled
    proxy.worker_died("decode", 1)
    with pytest.raises(Unavailable):
        submit(proxy, 3)


def test_queue_bound(profile: Profile) -> None:
    proxy, _, _ = make_proxy(profile, max_queue=2)
    for _ in range(3):  # one prefilling, two waiting
        submit(proxy, 1000)
    with pytest.raises(Overloaded) as e:
        submit(proxy, 5)
    assert e.value.status == 429 and e.value.retry_after >= 1


# --- the decode worker's state machine ------------------------------------------------------
def decode_state(profile: Profile, capacity: int = 100_000) -> DecodeState:
    policy = DECODE_POLICIES.create("fcfs", predictor=Predictor.from_profile(profile))
    return DecodeState(
        0,
        kv_capacity_tokens=capacity,
        max_batch_size=8,
        policy=policy,
        kv_transfer=profile.kv_transfer,
    )


def handed(rid: int, prompt: int, max_tokens: int) -> Request:
    r = Request(rid, 0.0, prompt, SLO_, max_output_tokens=max_tokens)
    r.first_token = 0.5
    r.output_tokens = 1
    return r


def test_decode_state_admits_pulls_fifo_joins_and_retires(profile: Profile) -> None:
    st = decode_state(profile)
    st.enqueue(handed(1, 100, 3))
    st.enqueue(handed(2, 50, 2))
    b = st.boundary(1.0)
    (r1, t1), (r2, t2) = b.admitted
    kv = profile.kv_transfer
    assert t1 == pytest.approx(1.0 + kv.time(101)) and t2 == pytest.approx(t1 + kv.time(51))
    assert st.transferring == 2 and st.reserved == 152 and st.kv_tokens == 0
    assert st.landed(1, t1) is r1 and st.landed(2, t2) is r2
    assert [r.id for r in st.boundary(t2).joined] == [1, 2]
    assert st.kv_tokens == 152 and st.transferring == 0
    assert st.end_step(2.0) == ([1, 2], [2])  # request 2 wanted 2 tokens in all
    assert st.end_step(2.1) == ([1], [1])
    assert st.idle and st.reserved == 0 and st.kv_tokens == 0
    assert r1.state == RequestState.FINISHED and r1.output_tokens == 3


def test_decode_state_cancel_frees_reservations(profile: Profile) -> None:
    st = decode_state(profile)
    for rid in (1, 2, 3):
        st.enqueue(handed(rid, 10, 100))
    st.boundary(0.0)
    st.landed(1, 1.0)
    st.landed(2, 1.0)
    st.boundary(1.0)  # 1 and 2 run, 3 is in flight
    st.enqueue(handed(4, 10, 100))
    assert st.cancel(1) is not None and st.cancel(3) is not None and st.cancel(4) is not None
    assert st.landed(3, 2.0) is None  # its transfer landed after the cancel
    assert st.cancel(2) is not None and st.cancel(99) is None
    assert st.reserved == 0 and st.kv_tokens == 0 and st.idle and not list(st.waiting)


def two_running(st: DecodeState, prompt: int, max_tokens: int) -> None:
    """Requests 1 and 2 placed at 0 s, their KV landed at 0.1 s, both running from then."""
    for rid in (1, 2):
        st.enqueue(handed(rid, prompt, max_tokens))
    st.boundary(0.0)
    st.landed(1, 0.1)
    st.landed(2, 0.1)
    st.boundary(0.1)


def test_decode_state_preempts_under_memory_pressure(profile: Profile) -> None:
    st = decode_state(profile, capacity=50)
    two_running(st, 20, 100)
    for t in range(4):  # 42 -> 50 tokens: full after four steps
        st.end_step(1.0 + t)
    b = st.boundary(5.0)
    assert [r.id for r in b.preempted] == [2]  # newest first (FCFS)
    assert [r.id for r in st.waiting] == [2] and st.kv_free_tokens >= len(st.running)


def test_decode_state_runs_a_step_without_the_requests_that_skip_it(profile: Profile) -> None:
    # Mode B in the worker: a skipped request keeps its KV, gets no token from the step,
    # and the step is timed without it; the skip lasts one step.
    st = decode_state(profile)
    inner = st._policy

    class SkipOne:
        name = "skip-one"

        def schedule(self, view: DecodeView, now: float) -> DecodeDecision:
            decision = inner.schedule(view, now)
            decision.skip = [r for r in view.running if r.id == 1]
            return decision

        def place(self, request: Request, instances: Sequence[DecodeView], now: float) -> int:
            return 0

    two_running(st, 100, 50)
    st._policy = SkipOne()
    st.enqueue(handed(3, 10, 50))  # someone waits, so the policy is consulted
    st.boundary(0.2)
    assert st.skipping(1) and st.step_batch() == (1, 101)
    assert st.kv_tokens == 202 and st.reserved == 202 + 11
    assert st.end_step(0.3) == ([2], [])
    st._policy = inner
    st.boundary(0.3)
    assert not st.skipping(1) and st.step_batch() == (2, 203)
    assert st.end_step(0.4) == ([1, 2], [])
    # Skipping every running request would leave the step empty: refused.
    st._policy = SkipOne()
    st.cancel(2)
    st.enqueue(handed(4, 10, 50))
    with pytest.raises(PolicyContractError, match="skipped every request"):
        st.boundary(0.5)


def test_decode_mirror_follows_updates() -> None:
    mirror = DecodeMirror(0, kv_capacity_tokens=1000, max_batch_size=4)
    r = handed(1, 10, 5)
    mirror.enqueue(r)
    assert mirror.waiting_tokens == 11
    mirror.apply(update(0, [], admitted=[1], reserved=11, transferring=1), {1: r})
    assert mirror.waiting_tokens == 0 and mirror.kv_free_tokens == 989
    mirror.apply(update(0, [], joined=[1], reserved=11, kv_tokens=11), {1: r})
    assert list(mirror.running) == [r]
    mirror.apply(update(0, [1], preempted=[1]), {1: r})
    assert list(mirror.waiting) == [r] and not mirror.running


# --- the HTTP edge -----------------------------------------------------------------------------
def completion(**kw: object) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "m", "prompt": "a b c", **kw})


def test_admit_reads_slo_from_headers_body_and_classes(profile: Profile) -> None:
    default = SLO(1.0, 0.05)
    assert admit(completion(), {}, profile, default).slo == default
    body = completion(slo={"ttft_ms": 300, "tpot_ms": 60})
    assert admit(body, {}, profile, default).slo == SLO(0.3, 0.06)
    assert (
        admit(completion(slo="interactive"), {}, profile, default).slo
        == SLO_CLASSES["interactive"].slo
    )
    headers = {"x-slo-ttft-ms": "200", "x-slo-tpot-ms": "70"}
    adm = admit(body, headers, profile, default)  # headers win over the body
    assert adm.slo == SLO(0.2, 0.07) and adm.max_tokens == 16 and adm.prompt_tokens == 3


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        ({"slo": {"tpot_ms": 1}}, {}, "fastest possible decode step"),
        ({}, {"x-slo-ttft-ms": "nan"}, "x-slo-ttft-ms"),
        ({}, {"x-slo-tpot-ms": "inf"}, "x-slo-tpot-ms"),
        ({"prompt": "x " * 40_000}, {}, "context limit"),
        ({"max_tokens": 32_768}, {}, "plus max_tokens"),
        ({"prompt": [1, 2, 3], "slo": "gold"}, {}, "unknown SLO class"),
    ],
)
def test_admit_rejects(
    profile: Profile, body: dict[str, object], headers: dict[str, str], says: str
) -> None:
    with pytest.raises(BadRequest, match=says):
        admit(completion(**body), headers, profile, SLO(1.0, 0.05))


def test_kv_capacity_also_limits_the_prompt() -> None:
    small = make_profile(kv_capacity_tokens=100)
    with pytest.raises(BadRequest, match="KV cache capacity"):
        admit(completion(prompt="w " * 150), {}, small, SLO(1.0, 0.05))


def test_chat_prompt_counts_the_words_of_every_message(profile: Profile) -> None:
    chat = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "one two"},
                {"role": "user", "content": [{"type": "text", "text": "three four five"}]},
            ],
            "max_completion_tokens": 7,
        }
    )
    adm = admit(chat, {}, profile, SLO(1.0, 0.05))
    assert (adm.prompt_tokens, adm.max_tokens) == (5, 7)


def test_rendering_streams_openai_chunks() -> None:
    rd = Rendering(chat=True, response_id="chatcmpl-x", model="m", created=1, max_tokens=3)
    events = [e for e in rd.tokens(0, 3).decode().split("\n\n") if e]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events]
    assert [c["choices"][0]["delta"].get("role") for c in chunks] == ["assistant", None, None]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "length"]
    usage = json.loads(rd.usage_chunk(4, 3).decode().removeprefix("data: "))
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 7
    body = Rendering(chat=False, response_id="cmpl-x", model="m", created=1, max_tokens=2).body(
        4, 2
    )
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == " tok tok"


def test_tokenizer_is_exact_on_its_own_output() -> None:
    assert count_tokens("  hello   world\n again ") == 3
    assert count_chat_tokens(["a b", "c"]) == 3
    assert count_tokens(detokenize(17)) == 17


@pytest.mark.parametrize(
    "msg",
    [
        m.WorkerReady("decode", 1, 1234),
        m.PrefillBatch(3, [m.RequestSpec(1, 0.5, 10, 4, 1.0, 0.05)]),
        m.KVReleased(5, 0),
        m.Cancel(9),
        update(0, [1, 2], finished=[2], admitted=[3], kv_tokens=7, reserved=9),
        m.Shutdown(),
    ],
)
def test_messages_round_trip(msg: m.Message) -> None:
    assert m.decode(m.encode(msg)) == msg


def test_frames_survive_any_split() -> None:
    msgs: list[m.Message] = [m.Cancel(3), m.KVReleased(4, 1), m.Shutdown()]
    data = b"".join(bytes(m.frame(x)) for x in msgs)
    for size in (1, 2, 5, len(data)):
        reader = m.FrameReader()
        got = [x for i in range(0, len(data), size) for x in reader.feed(data[i : i + size])]
        assert got == msgs
