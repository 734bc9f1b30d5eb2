"""Policy unit tests on hand-built views, and the Moore-Hodgson optimality check."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.core.decode_state import DecodeBook, RequestQueue
from kairos.core.latency.predictor import Predictor
from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.core.policies.moore_hodgson import moore_hodgson
from kairos.core.queue_columns import PREFILL_FIELDS
from kairos.core.request import Request
from kairos.core.slo import SLO
from kairos.core.static_views import StaticDecodeView, StaticPrefillView
from tests.conftest import make_profile

PROFILE = make_profile()


def predictor() -> Predictor:
    return Predictor.from_profile(PROFILE)


def request(i: int, arrival: float, prompt: int, ttft: float = 1.0, tpot: float = 0.05) -> Request:
    return Request(i, arrival, prompt, SLO(ttft, tpot))


def max_on_time(jobs: list[tuple[float, float, int]], start: float) -> int:
    """Brute force: the largest subset that EDF order finishes on time."""
    for size in range(len(jobs), 0, -1):
        for subset in itertools.combinations(jobs, size):
            t = start
            ok = True
            for deadline, p, _ in sorted(subset):
                t += p
                ok = ok and t <= deadline
            if ok:
                return size
    return 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 10.0), st.floats(0.01, 3.0)), min_size=0, max_size=8))
def test_moore_hodgson_matches_brute_force(raw):
    jobs = sorted((d, p, i) for i, (d, p) in enumerate(raw))
    on_time, late = moore_hodgson(jobs, 0.0)
    assert len(on_time) + len(late) == len(jobs)
    t = 0.0
    for deadline, p, _ in on_time:  # the kept set really is on time, in deadline order
        t += p
        assert t <= deadline + 1e-12
    assert len(on_time) == max_on_time(jobs, 0.0)


@pytest.mark.parametrize("name", ["fcfs", "sjf", "edf", "edf-relegate", "kairos"])
def test_prefill_policies_respect_batch_limits(name):
    policy = PREFILL_POLICIES.create(name, predictor=predictor())
    waiting = [request(i, 0.01 * i, 3_000) for i in range(10)]
    view = StaticPrefillView(waiting, max_batch_tokens=8_000, kv_free_tokens=7_000)
    batch = policy.schedule(view, now=0.2).batch
    assert 1 <= len(batch) <= 2
    assert sum(r.prompt_tokens for r in batch) <= 7_000


def test_kairos_prefill_removes_head_of_line_blocking():
    # A 30k-token prompt arrived first; five short prompts behind it can all still be on time.
    long = request(0, 0.0, 30_000, ttft=1.0)
    shorts = [request(i, 0.01, 500, ttft=0.3) for i in range(1, 6)]
    view = StaticPrefillView([long, *shorts], max_batch_tokens=16_384)
    fcfs = PREFILL_POLICIES.create("fcfs", predictor=predictor()).schedule(view, 0.02)
    kairos = PREFILL_POLICIES.create("kairos", predictor=predictor()).schedule(view, 0.02)
    assert fcfs.batch == [long]
    assert set(kairos.batch) == set(shorts)


def test_kairos_prefill_runs_hopeless_work_when_nothing_is_feasible():
    # Work conservation: both are hopeless, the higher response ratio (the short one) goes.
    late_long = request(0, 0.0, 8_000, ttft=0.1)
    late_short = request(1, 0.0, 200, ttft=0.1)
    view = StaticPrefillView([late_long, late_short], max_batch_requests=1)
    # At 0.3 s both are past their deadline but not yet old enough for the starvation guard.
    decision = PREFILL_POLICIES.create("kairos", predictor=predictor()).schedule(view, 0.3)
    assert decision.batch == [late_short] and not decision.reject


def test_kairos_prefill_drop_hopeless_rejects_instead():
    late = request(0, 0.0, 8_000, ttft=0.1)
    ok = request(1, 0.25, 200, ttft=1.0)
    policy = PREFILL_POLICIES.create("kairos", predictor=predictor(), drop_hopeless=True)
    decision = policy.schedule(StaticPrefillView([late, ok]), 0.3)
    assert decision.batch == [ok] and decision.reject == [late]


def test_kairos_prefill_starvation_guard_promotes_old_requests():
    old = request(0, 0.0, 2_000, ttft=0.5)  # waited 6 s > 10 * T
    older = request(1, -0.5, 2_000, ttft=0.5)
    fresh = request(2, 5.99, 100, ttft=0.5)
    decision = PREFILL_POLICIES.create("kairos", predictor=predictor()).schedule(
        StaticPrefillView([older, old, fresh], max_batch_tokens=2_100), 6.0
    )
    # The oldest aged request leads; only one aged request per batch; on-time work fills in.
    assert decision.batch == [older, fresh]


def test_kairos_prefill_predicts_what_is_left_of_a_chunked_prompt():
    # 28k of a 30k prompt are prefilled: 2k tokens are left, but they attend over all 30k.
    # Counting only those 2k (0.131 s) it would look on time for its 0.135 s deadline and
    # lead; with the prefix attention (0.153 s) it is hopeless and the short one goes.
    pred = predictor()
    resumed = Request(0, 0.0, 30_000, SLO(0.135, 0.05), cached_tokens=28_000)
    short = request(1, 0.0, 500, ttft=1.0)
    view = StaticPrefillView([resumed, short], max_batch_tokens=2_000)
    decision = PREFILL_POLICIES.create("kairos", predictor=pred).schedule(view, 0.0)
    assert decision.batch == [short]


def run_chunk(pred: Predictor, batch: list[Request], chunk: int) -> tuple[float, list[Request]]:
    """One chunked-prefill iteration, as the simulator runs it: (duration, requests done)."""
    budget, s, s2, done = chunk, 0, 0, []
    for r in batch:
        take = min(r.prompt_tokens - r.cached_tokens, budget)
        budget -= take
        s += take
        s2 += take * take + 2 * take * r.cached_tokens
        if r.cached_tokens + take == r.prompt_tokens:
            done.append(r)
        else:
            r.cached_tokens += take
        if not budget:
            break
    return pred.prefill_time(s, s2), done


@settings(max_examples=40, deadline=None)
@given(
    chunk=st.integers(512, 4_096),
    old_prompt=st.integers(1, 16_000),
    share=st.floats(0.05, 0.5),
    burst=st.floats(0.01, 0.5),
)
def test_kairos_prefill_guard_serves_aged_work_within_its_share(chunk, old_prompt, share, burst):
    """No starvation under sustained overload, with chunked prefill: a new on-time request
    arrives at every chunk boundary, faster than the instance serves them, so on-time work
    never runs out; the aged request still finishes, at the guard's share of the instance."""
    pred = predictor()
    policy = PREFILL_POLICIES.create("kairos", predictor=pred, guard_share=share, guard_burst=burst)
    old = request(0, 0.0, old_prompt, ttft=0.005)  # hopeless at once, aged after 0.05 s
    waiting, now, aged_at = [old], 0.0, None
    while old in waiting:
        waiting.append(request(len(waiting) + 1_000_000, now, 1_000, ttft=0.5))
        if aged_at is None and now > 0.05:
            aged_at = now
        decision = policy.schedule(StaticPrefillView(waiting), now)
        duration, done = run_chunk(pred, decision.batch, chunk)
        waiting = [r for r in waiting if r not in done]
        now += duration
        assert now < 1e4, "the aged request starved"
    assert aged_at is not None, "it ran before it aged, so it was not hopeless"
    # The guard is charged the aged request's own cost (work plus attention over its prompt):
    # it may spend its burst at once, then ``share`` of the time, one chunk of overdraft.
    c1, c2 = pred.prefill.c1, pred.prefill.c2
    cost = c1 * old_prompt + c2 * old_prompt**2
    one_chunk = c1 * chunk + c2 * (old_prompt**2 - max(old_prompt - chunk, 0) ** 2)
    iteration = pred.prefill_time(chunk, chunk * chunk + 2 * chunk * old_prompt)
    leads = -(-old_prompt // chunk)
    assert now <= aged_at + max(cost - burst, 0.0) / share + (leads + 2) * iteration
    assert now >= aged_at + (cost - one_chunk - burst) / share


def decode_request(i: int, prompt: int, first_token: float, tpot: float = 0.05) -> Request:
    r = request(i, 0.0, prompt, tpot=tpot)
    r.first_token = first_token
    r.output_tokens = 1
    return r


@settings(max_examples=150, deadline=None)
@given(
    running=st.lists(st.integers(10, 20_000), max_size=40),
    waiting=st.lists(st.integers(10, 20_000), min_size=1, max_size=40),
    tpot=st.floats(0.01, 0.2),
)
def test_kairos_decode_packing_stays_within_step_budget(running, waiting, tpot):
    pred = predictor()
    policy = DECODE_POLICIES.create("kairos", predictor=pred)
    run = [decode_request(i, n, 0.0, tpot) for i, n in enumerate(running)]
    wait = [decode_request(100 + i, n, 0.0, tpot) for i, n in enumerate(waiting)]
    view = StaticDecodeView(wait, run)
    decision = policy.schedule(view, now=0.0)
    batch = run + decision.admit
    step = pred.decode_step_time(len(batch), sum(r.prompt_tokens + 1 for r in batch))
    if run:
        # Its own predictor says the grown batch meets the budget, unless nothing was admitted.
        assert not decision.admit or step <= (1 - policy.margin) * tpot + 1e-12
    else:
        assert decision.admit, "an idle instance must admit someone"
    contexts = [r.prompt_tokens for r in decision.admit]
    assert contexts == sorted(contexts), "shortest context first"


@settings(max_examples=150, deadline=None)
@given(
    running=st.lists(
        st.tuples(st.integers(10, 20_000), st.floats(0.0, 4.0), st.integers(1, 200)),
        min_size=1,
        max_size=40,
    ),
    waiting=st.lists(st.integers(10, 20_000), max_size=40),
    tpot=st.floats(0.01, 0.2),
    max_batch=st.integers(1, 64),
)
def test_kairos_b_skips_only_banked_requests_that_do_not_fit(running, waiting, tpot, max_batch):
    # Running request i: prompt, seconds since its first token, tokens so far (banked slack
    # first_token + tpot * tokens - now, anything from far behind to far ahead).
    now = 10.0
    pred = predictor()
    policy = DECODE_POLICIES.create("kairos-b", predictor=pred)
    run = [decode_request(i, n, now - age, tpot) for i, (n, age, _) in enumerate(running)]
    made = {i: g for i, (_, _, g) in enumerate(running)}
    wait = [decode_request(100 + i, n, now - 0.001, tpot) for i, n in enumerate(waiting)]
    view = StaticDecodeView(
        wait, run, generated_tokens=made, max_batch_size=max(max_batch, len(run))
    )
    decision = policy.schedule(view, now=now)
    if not wait:
        return  # the runtimes consult a policy only when someone waits (or memory is short)
    skipped = {r.id for r in decision.skip}
    assert len(skipped) == len(decision.skip) < len(run), "a request twice, or every one"
    assert len(run) + len(decision.admit) <= view.max_batch_size
    ctx = {r.id: r.prompt_tokens + view.generated(r) for r in run + wait}
    for r in decision.skip:
        assert r in run and policy.slack(view, r, now) >= policy.skip_after * tpot
    # The step that runs: everyone not skipped, and the admitted (when they join).
    runs = [r for r in run if r.id not in skipped] + decision.admit
    k = sum(ctx[r.id] for r in runs)
    budget = (1 - policy.margin) * tpot
    for r in decision.skip:
        # Skipped because it did not fit beside the others.
        assert pred.decode_step_time(len(runs) + 1, k + ctx[r.id]) > budget - 1e-12
    must = [r for r in run if policy.slack(view, r, now) < policy.skip_after * tpot]
    must_k = sum(ctx[r.id] for r in must)
    if must and pred.decode_step_time(len(must), must_k) <= budget and decision.skip:
        # Whoever must run fits: skips then keep the step within the budget.
        assert pred.decode_step_time(len(runs), k) <= budget + 1e-12


def test_kairos_decode_preempts_the_request_with_most_slack():
    pred = predictor()
    policy = DECODE_POLICIES.create("kairos", predictor=pred)
    behind = decode_request(0, 1_000, first_token=0.0)  # 10 tokens in 1 s: behind schedule
    ahead = decode_request(1, 1_000, first_token=0.9)  # 10 tokens in 0.1 s: well ahead
    view = StaticDecodeView(
        [], [behind, ahead], generated_tokens={0: 10, 1: 10}, kv_capacity_tokens=2_021
    )
    decision = policy.schedule(view, now=1.0)
    assert decision.preempt == [ahead]


def first_token_case(slack: float, ttft: float) -> tuple[Predictor, StaticDecodeView, Request]:
    """vLLM's P/D at a boundary t = 10 s: 40 running requests fill the step budget (one
    more would overrun it by about 0.6 ms) and have banked ``slack`` seconds each; one
    request waits with no token yet, prefilled at 9.9 s, TTFT deadline ``ttft`` after its
    arrival at 9.0 s."""
    pred = predictor()
    tau = pred.decode_step_time(41, 41 * 1_001) / 0.95 - 0.0006
    running = [
        decode_request(i, 1_000, first_token=10.0 + slack - tau, tpot=tau) for i in range(40)
    ]
    fresh = Request(99, 9.0, 500, SLO(ttft, tau))
    fresh.prefill_end = 9.9
    view = StaticDecodeView([fresh], running, generated_tokens={i: 1 for i in range(40)})
    return pred, view, fresh


def lead(pred: Predictor, view: StaticDecodeView, r: Request) -> float:
    """When a first token admitted now would come, seen from now (the policy's estimate)."""
    batch, kv = len(view.running), view.kv_tokens
    return pred.kv_transfer.time(r.prompt_tokens) + 2 * pred.decode_step_time(
        batch + 1, kv + r.prompt_tokens
    )


def test_kairos_decode_admits_a_due_first_token_on_banked_slack():
    pred, view, fresh = first_token_case(slack=0.5, ttft=1.0)
    policy = DECODE_POLICIES.create("kairos", predictor=pred)
    step = pred.decode_step_time(40, view.kv_tokens)
    # Not yet due: it waits (no budget), and the policy asks to be woken when it comes due.
    early = 10.0 + lead(pred, view, fresh) + policy.ttft_guard_steps * step + 0.05
    fresh.ttft_slo = early - fresh.arrival
    decision = policy.schedule(view, now=10.0)
    assert decision.admit == []
    assert decision.wake_at == pytest.approx(10.05)
    # Due (the deadline falls inside the guard): admitted over the budget, since 40 requests
    # with 0.5 s of slack each absorb the 0.6 ms overrun.
    fresh.ttft_slo = 10.0 + lead(pred, view, fresh) + 0.5 * step - fresh.arrival
    assert policy.schedule(view, now=10.0).admit == [fresh]


def test_kairos_decode_holds_a_due_first_token_without_slack():
    # 1 ms of slack over 16 steps does not cover a 0.6 ms overrun per step.
    pred, view, fresh = first_token_case(slack=0.001, ttft=1.0)
    policy = DECODE_POLICIES.create("kairos", predictor=pred)
    fresh.ttft_slo = 10.0 + lead(pred, view, fresh) + 0.001 - fresh.arrival  # due
    assert policy.schedule(view, now=10.0).admit == []


def test_kairos_decode_does_not_protect_requests_already_behind():
    # Running requests behind their deadlines cannot be saved by holding a first token back.
    pred, view, fresh = first_token_case(slack=-0.2, ttft=1.0)
    policy = DECODE_POLICIES.create("kairos", predictor=pred)
    fresh.ttft_slo = 10.0 + lead(pred, view, fresh) + 0.001 - fresh.arrival  # due
    assert policy.schedule(view, now=10.0).admit == [fresh]


def test_kairos_decode_does_not_rush_a_first_token_already_late():
    pred, view, fresh = first_token_case(slack=0.5, ttft=1.0)
    policy = DECODE_POLICIES.create("kairos", predictor=pred)
    fresh.ttft_slo = 10.0 + lead(pred, view, fresh) - 0.001 - fresh.arrival  # cannot make it
    decision = policy.schedule(view, now=10.0)
    assert decision.admit == [] and decision.wake_at is None


def test_kairos_decode_ignores_ttft_once_prefill_emitted_the_first_token():
    # The default convention: a waiting request already has its first token (output 1).
    pred, view, fresh = first_token_case(slack=0.5, ttft=1.0)
    fresh.output_tokens, fresh.first_token = 1, 9.9
    fresh.ttft_slo = 10.0 + lead(pred, view, fresh) + 0.001 - fresh.arrival
    decision = DECODE_POLICIES.create("kairos", predictor=pred).schedule(view, now=10.0)
    assert decision.admit == [] and decision.wake_at is None


@pytest.mark.parametrize("name", ["fcfs", "static-cap", "kairos"])
def test_decode_policies_relieve_memory_pressure(name):
    policy = DECODE_POLICIES.create(name, predictor=predictor())
    running = [decode_request(i, 1_000, 0.0) for i in range(4)]
    view = StaticDecodeView([], running, kv_capacity_tokens=4_005)  # 4 * 1001 used, 1 free
    decision = policy.schedule(view, now=0.1)
    freed = sum(r.prompt_tokens + 1 for r in decision.preempt)
    assert view.kv_free_tokens + freed >= len(running) - len(decision.preempt)


def test_static_cap_is_largest_batch_meeting_tpot():
    pred = predictor()
    policy = DECODE_POLICIES.create("static-cap", predictor=pred, typical_context=2_000)
    cap = policy.cap(0.03, 512)
    budget = 0.95 * 0.03
    assert pred.decode_step_time(cap, cap * 2_000) <= budget
    assert pred.decode_step_time(cap + 1, (cap + 1) * 2_000) > budget


def reference_decode_admission(policy, view: StaticDecodeView, now: float) -> list[Request]:
    """Kairos decode's admission rules (module docstring, rules 2-6) one request at a time,
    as plain loops: the oracle for the vectorised implementation. No preemption here."""
    pred, keep = policy.predictor, 1.0 - policy.margin
    step = pred.decode_step_time
    batch, kv = len(view.running) + view.transferring, view.kv_tokens
    free = view.kv_free_tokens
    tau_min = min((r.tpot_slo for r in view.running), default=None)
    spent = bool(batch) and tau_min is not None and step(batch + 1, kv + 1) > keep * tau_min
    queue = list(view.waiting)

    def waited(r: Request) -> float:
        return (now - r.decode_anchor) / r.tpot_slo

    over = [r for r in queue if waited(r) > policy.reserve_after]
    reserved = [max(over, key=waited)] if over else []  # max keeps the first of equals
    guard = policy.ttft_guard_steps * step(max(batch, 1), max(kv, 1))
    due = []
    for r in queue:
        if r.output_tokens == 0:
            first = (
                now
                + pred.kv_transfer.time(r.prompt_tokens)
                + 2.0 * step(batch + 1, kv + r.prompt_tokens)
            )
            if first <= r.ttft_deadline < first + guard:
                due.append(r)
    due.sort(key=lambda r: r.ttft_deadline)
    allowance = 0.0
    if due:
        slacks = [policy.slack(view, r, now) for r in view.running]
        allowance = min((s for s in slacks if s >= 0.0), default=float("inf"))
        allowance /= policy.slack_horizon
    fresh, hopeless = [], []
    if not spent:
        for r in queue:
            if r in reserved:
                continue
            late = waited(r) > policy.hopeless_after if r.output_tokens else now > r.ttft_deadline
            (hopeless if late else fresh).append(r)
    fresh.sort(key=lambda r: r.prompt_tokens + r.output_tokens)
    hopeless.sort(key=lambda r: r.prompt_tokens + r.output_tokens)
    admit: list[Request] = []
    inf = float("inf")
    for group, extra in ((due, allowance), (reserved, inf), (fresh, 0.0), (hopeless, 0.0)):
        for r in group:
            if r in admit:
                continue
            ctx = r.prompt_tokens + r.output_tokens
            tau = r.tpot_slo if tau_min is None else min(tau_min, r.tpot_slo)
            if batch >= view.max_batch_size or ctx + (batch + 1) * policy.growth_steps > free:
                break
            if batch and extra < inf and step(batch + 1, kv + ctx) > keep * tau + extra:
                break
            admit.append(r)
            batch, kv, free, tau_min = batch + 1, kv + ctx, free - ctx, tau
    return admit


def waiting_case(i: int, prompt: int, out: int, age: float, ttft: float, tpot: float) -> Request:
    """A request waiting for decode at t = 10 s: prefilled ``age`` seconds ago, with its
    first token then (``out`` > 0) or none yet (vLLM's P/D)."""
    r = Request(i, 10.0 - age - 0.05, prompt, SLO(ttft, tpot))
    r.prefill_end = 10.0 - age
    r.output_tokens = out
    if out:
        r.first_token = r.prefill_end
    return r


@settings(max_examples=200, deadline=None)
@given(
    running=st.lists(st.integers(10, 4_000), max_size=30),
    waiting=st.lists(
        st.tuples(
            st.integers(10, 4_000),  # prompt
            st.sampled_from([0, 1, 1, 7]),  # output tokens so far (0: no token yet)
            st.sampled_from([0.0, 0.01, 0.2, 2.0, 40.0]) | st.floats(0.0, 1.0),  # since prefill
            st.sampled_from([0.05, 0.3]) | st.floats(0.05, 1.0),  # TTFT SLO
            st.sampled_from([0.01, 0.02, 0.05]),  # TPOT SLO
        ),
        min_size=1,
        max_size=120,
    ),
    capacity=st.sampled_from([20_000, 200_000, 10**7]),
    max_batch=st.sampled_from([8, 64, 512]),
    tpot=st.sampled_from([0.01, 0.03, 0.2]),
    one_by_one=st.sampled_from([0, 3, 32]),
    preempted=st.integers(0, 4),
)
def test_kairos_decode_admission_matches_the_one_at_a_time_rules(
    running, waiting, capacity, max_batch, tpot, one_by_one, preempted
):
    pred = predictor()
    policy = DECODE_POLICIES.create("kairos", predictor=pred, reserve_after=100.0)
    policy.one_by_one = one_by_one  # 0: every candidate in the vectorised pass
    run = [decode_request(i, n, 9.0, tpot) for i, n in enumerate(running)]
    used = sum(r.prompt_tokens + 1 for r in run)
    wait = [waiting_case(100 + i, *w) for i, w in enumerate(waiting)]
    # Room for every running request's next token: no preemption (the oracle has none).
    view = StaticDecodeView(wait, run, kv_capacity_tokens=max(capacity, used + len(run)))
    view.max_batch_size = max_batch
    expected = reference_decode_admission(policy, view, now=10.0)
    assert policy.schedule(view, now=10.0).admit == expected
    # The same instance as the runtimes keep it (the queue keeps its columns).
    book = DecodeBook(0, kv_capacity_tokens=view.kv_capacity_tokens, max_batch_size=max_batch)
    for r in run:
        book.enqueue(r)
        book.admit(r)
        book.join(r)
    for r in wait:
        book.enqueue(r)
    assert policy.schedule(book, now=10.0).admit == expected
    # Requests with output that were preempted wait at the front of the queue (vLLM's rule),
    # which numbers them below zero: they are still admitted shortest context first.
    book = DecodeBook(0, kv_capacity_tokens=view.kv_capacity_tokens, max_batch_size=max_batch)
    for r in run:
        book.enqueue(r)
        book.admit(r)
        book.join(r)
    back = [r for r in wait if r.output_tokens][:preempted]
    for r in wait:
        if r not in back:
            book.enqueue(r)
    for r in back:
        book.requeue(r)
    assert policy.schedule(book, now=10.0).admit == reference_decode_admission(policy, book, 10.0)


def test_kairos_decode_admits_due_first_tokens_earliest_deadline_first():
    pred = predictor()
    policy = DECODE_POLICIES.create("kairos", predictor=pred)
    guard = policy.ttft_guard_steps * pred.decode_step_time(1, 1)
    first = 10.0 + pred.kv_transfer.time(500) + 2.0 * pred.decode_step_time(1, 500)
    queue = []
    for i in range(3):  # queued latest deadline first, all inside the guard
        r = Request(i, 9.0, 500, SLO(first + guard * (0.8 - 0.2 * i) - 9.0, 0.05))
        r.prefill_end = 9.9
        queue.append(r)
    decision = policy.schedule(StaticDecodeView(queue), now=10.0)
    assert decision.admit == queue[::-1]


def reference_prefill_batch(policy, view: StaticPrefillView, now: float):
    """Kairos prefill (module docstring, rules 1-5) over ``Request`` objects one at a time:
    the oracle for the columnar implementation. A fresh policy: the guard has its credit."""
    pred = policy.predictor

    def p_of(r: Request) -> float:
        u, done = r.prompt_tokens - r.cached_tokens, r.cached_tokens
        k, m = pred.prefill_correction.factor, pred.prefill
        return k * (m.c0 + m.c1 * u + m.c2 * u * u + 2.0 * m.c2 * u * done)

    promoted, feasible, hopeless = [], [], []
    for r in view.waiting:
        job = (r.arrival + r.ttft_slo, p_of(r), r)
        if now - r.arrival > policy.max_wait_factor * r.ttft_slo:
            promoted.append(job)
        elif now + (1.0 - policy.margin) * job[1] > job[0]:
            hopeless.append(job)
        else:
            feasible.append(job)
    lead = [min(promoted, key=lambda j: j[2].arrival)] if promoted else []
    hopeless += [j for j in promoted if j not in lead]
    reject = [r for _, _, r in hopeless] if policy.drop_hopeless else []

    def fill(jobs, on_time: bool) -> list[Request]:
        k, m = pred.prefill_correction.factor, pred.prefill
        batch, s, s2, kv_free, earliest = [], 0, 0, view.kv_free_tokens, float("inf")
        for _, _, r in lead:
            if r.prompt_tokens <= kv_free:
                batch.append(r)
                s = r.prompt_tokens - r.cached_tokens
                s2 = s * s + 2 * s * r.cached_tokens
                kv_free -= r.prompt_tokens
        for deadline, _, r in jobs:
            u = r.prompt_tokens - r.cached_tokens
            if r.prompt_tokens > kv_free or (batch and s + u > view.max_batch_tokens):
                continue
            a2 = u * u + 2 * u * r.cached_tokens
            if on_time:
                tight = min(earliest, deadline)
                if now + k * (m.c0 + m.c1 * (s + u) + m.c2 * (s2 + a2)) > tight:
                    continue
                earliest = tight
            batch.append(r)
            s, s2, kv_free = s + u, s2 + a2, kv_free - r.prompt_tokens
            if len(batch) >= view.max_batch_requests or s >= view.max_batch_tokens:
                break
        return batch

    late = []
    if feasible:
        feasible.sort(key=lambda j: j[0])
        on_time, late = moore_hodgson(feasible, now)
        batch = fill(on_time, True)
        if batch:
            return batch, reject
    rest = late if policy.drop_hopeless else late + hopeless
    rest.sort(key=lambda j: -(now - j[2].arrival + j[1]) / j[1])
    return fill(rest, False), reject


@settings(max_examples=200, deadline=None)
@given(
    queue=st.lists(
        st.tuples(
            st.floats(0.0, 30.0) | st.sampled_from([5.0, 9.0]),  # arrival
            st.integers(2, 20_000),  # prompt
            st.floats(0.0, 0.99),  # part of it cached
            st.sampled_from([0.2, 1.0, 3.0]),  # TTFT SLO
        ),
        max_size=80,
    ),
    drop=st.booleans(),
    max_tokens=st.sampled_from([2_048, 16_384]),
    kv_free=st.sampled_from([10_000, 10**6]),
)
def test_kairos_prefill_matches_the_one_at_a_time_rules(queue, drop, max_tokens, kv_free):
    pred = predictor()
    reqs = []
    for i, (arrival, prompt, part, ttft) in enumerate(sorted(queue)):
        r = request(i, arrival, prompt, ttft=ttft)
        r.cached_tokens = int(part * (prompt - 1))
        reqs.append(r)
    kept = RequestQueue(PREFILL_FIELDS)
    for r in reqs:
        kept.append(r, r.prompt_tokens)
    for waiting in (reqs, kept):
        view = StaticPrefillView(waiting, max_batch_tokens=max_tokens, kv_free_tokens=kv_free)
        policy = PREFILL_POLICIES.create("kairos", predictor=pred, drop_hopeless=drop)
        decision = policy.schedule(view, now=31.0)
        expected = reference_prefill_batch(policy, view, now=31.0)
        assert (decision.batch, decision.reject) == expected
