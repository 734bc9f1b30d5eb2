"""Simulator invariants (Hypothesis), determinism, exact cases and a queueing closed form."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairos.cli import main
from kairos.core.request import Request, RequestState
from kairos.core.slo import SLO
from kairos.sim import ClusterConfig, ControlPlane, simulate
from kairos.sim.cluster import Cluster
from kairos.sim.workload import build_requests
from tests.conftest import make_profile

SLO_ = SLO(ttft=1.0, tpot=0.05)


def workload(seed: int, n: int, rate: float, max_in: int, max_out: int):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    arrivals -= arrivals[0]
    inputs = rng.integers(1, max_in + 1, n)
    outputs = rng.integers(1, max_out + 1, n)
    return arrivals, inputs, outputs


def check_invariants(last: list[float]):
    def hook(now: float, cluster: Cluster) -> None:
        assert now >= last[0], "simulated time went backwards"
        last[0] = now
        for p in cluster.prefill:
            assert 0 <= p.kv_used <= p.kv_capacity_tokens
        for d in cluster.decode:
            assert 0 <= d.kv_free_tokens <= d.kv_capacity_tokens
            assert d.kv_tokens >= 0
            assert len(d.running) <= d.max_batch_size
            # The book's K is the batch's context as the view reports it, including the
            # steps advance_to folded in between boundaries.
            assert d.kv_tokens == sum(r.prompt_tokens + d.generated(r) for r in d.running)
            assert d.transferring >= 0 and d.kv_tokens <= d.reserved

    return hook


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 80),
    rate=st.floats(0.5, 200.0),
    n_p=st.integers(1, 3),
    n_d=st.integers(1, 3),
    kv_capacity=st.integers(6_000, 60_000),
    max_batch=st.integers(1, 32),
    decode=st.sampled_from(["fcfs", "kairos", "kairos-b"]),
    control=st.sampled_from([ControlPlane(), ControlPlane(0.0006, 0.0003, 0.0002, 0.0004)]),
)
def test_invariants_hold(seed, n, rate, n_p, n_d, kv_capacity, max_batch, decode, control):
    arrivals, inputs, outputs = workload(seed, n, rate, 4_000, 300)
    profile = make_profile(kv_capacity_tokens=kv_capacity, max_decode_batch_size=max_batch)
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    config = ClusterConfig(
        prefill_instances=n_p, decode_instances=n_d, seed=seed, noise=0.1, control=control
    )
    hook = check_invariants([0.0])
    seen: list[Cluster] = []

    def on_event(now: float, cluster: Cluster) -> None:
        seen[:] = [cluster]
        hook(now, cluster)

    def on_place(r: Request, views: object, index: int) -> None:
        # Placement reads the decode views between boundaries, as of their last step.
        assert r.first_token is not None
        hook(r.first_token + control.report, seen[0])

    result = simulate(
        requests,
        true_out,
        profile,
        config,
        decode_policy=decode,
        on_event=on_event,
        on_place=on_place,
    )

    assert [r.id for r in result.records] == list(range(n)), "a request was lost or duplicated"
    for req, rec, out in zip(requests, result.records, true_out, strict=True):
        # Nothing is silently dropped: every request ends finished, or rejected with a reason.
        assert req.state in (RequestState.FINISHED, RequestState.REJECTED), rec
        if req.state is RequestState.REJECTED:
            assert rec.error and req.prompt_tokens > kv_capacity
            continue
        assert rec.output_tokens == out
        t = rec.token_times
        assert np.all(np.diff(t) > 0), "token times must strictly increase"
        # The records hold when the client reads each token: ``delivery`` after its emission.
        emitted = t - control.delivery
        assert req.arrival <= req.prefill_start <= req.prefill_end == req.first_token
        np.testing.assert_allclose(req.first_token, emitted[0], rtol=0, atol=1e-12)
        if out > 1:
            assert req.first_token <= req.kv_start <= req.kv_end <= req.decode_start <= emitted[1]
        np.testing.assert_allclose(req.finish, emitted[-1], rtol=0, atol=1e-12)
        # The metrics come from the timeline alone.
        assert rec.ttft == t[0] - req.arrival
        assert rec.tpot == (0.0 if out == 1 else (t[-1] - t[0]) / (out - 1))


def test_same_seed_same_result_byte_for_byte(profile):
    arrivals, inputs, outputs = workload(3, 400, 20.0, 3_000, 200)

    def run():
        requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
        config = ClusterConfig(prefill_instances=2, decode_instances=2, noise=0.2, seed=7)
        res = simulate(requests, true_out, profile, config)
        return [(r.to_json(), r.token_times.tobytes()) for r in res.records]

    assert run() == run()


def test_single_request_matches_closed_form(profile):
    prompt, out = 1_000, 50
    requests, true_out = build_requests(np.array([0.0]), np.array([prompt]), np.array([out]), SLO_)
    rec = simulate(requests, true_out, profile, ClusterConfig()).records[0]
    prefill = profile.prefill.time_one(prompt)
    transfer = profile.kv_transfer.time(prompt + 1)
    d = profile.decode
    steps = [d.step_time(1, prompt + 1 + j) for j in range(out - 1)]
    assert rec.ttft == prefill
    np.testing.assert_allclose(rec.token_times[-1], prefill + transfer + sum(steps), rtol=1e-12)
    np.testing.assert_allclose(rec.itl[1:], steps[1:], rtol=1e-9)


def test_first_token_on_decode_adds_the_hand_off_and_one_step(profile):
    # vLLM's P/D: the decode instance emits every token, the first after the KV hand-off.
    prompt, out = 1_000, 50
    requests, true_out = build_requests(np.array([0.0]), np.array([prompt]), np.array([out]), SLO_)
    config = ClusterConfig(first_token_on_decode=True)
    rec = simulate(requests, true_out, profile, config).records[0]
    prefill = profile.prefill.time_one(prompt)
    transfer = profile.kv_transfer.time(prompt)
    steps = [profile.decode.step_time(1, prompt + j) for j in range(out)]
    assert len(rec.token_times) == out
    np.testing.assert_allclose(rec.ttft, prefill + transfer + steps[0], rtol=1e-12)
    np.testing.assert_allclose(rec.token_times[-1], prefill + transfer + sum(steps), rtol=1e-12)


def test_control_plane_latencies_delay_each_leg(profile):
    # One request on an idle cluster: every leg adds once; decode starts after the report.
    prompt, out = 1_000, 50
    cp = ControlPlane(ingress=0.0006, dispatch=0.0003, report=0.0002, egress=0.0004)
    requests, true_out = build_requests(np.array([0.0]), np.array([prompt]), np.array([out]), SLO_)
    base = simulate(requests, true_out, profile, ClusterConfig()).records[0]
    requests, true_out = build_requests(np.array([0.0]), np.array([prompt]), np.array([out]), SLO_)
    rec = simulate(requests, true_out, profile, ClusterConfig(control=cp)).records[0]
    np.testing.assert_allclose(rec.ttft, base.ttft + 0.0015, rtol=0, atol=1e-12)
    # The hand-off starts once the scheduler hears of the prefill: the first gap grows by it.
    np.testing.assert_allclose(rec.token_times[1:], base.token_times[1:] + 0.0017, atol=1e-12)


def test_control_plane_keeps_a_prefill_instance_between_batches(profile):
    # One prompt per batch: the second starts a report and a dispatch after the first ended.
    requests, true_out = build_requests(
        np.array([0.0, 0.0]), np.array([1_000, 1_000]), np.array([2, 2]), SLO_
    )
    cp = ControlPlane(dispatch=0.0003, report=0.0002)
    config = ClusterConfig(max_prefill_batch_requests=1, control=cp)
    first, second = simulate(requests, true_out, profile, config).records
    assert first.prefill_start is not None and second.prefill_start is not None
    gap = second.prefill_start - first.prefill_start
    np.testing.assert_allclose(gap, profile.prefill.time_one(1_000) + 0.0005, atol=1e-12)
    assert first.prefill_start == 0.0003


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ingres=1", "NAME=MS"),
        ("ingress", "NAME=MS"),
        ("ingress=x", "not a number"),
        ("report=-1", ">= 0"),
        ("egress=nan", ">= 0"),
    ],
)
def test_control_plane_parse_names_the_problem(text, problem):
    with pytest.raises(ValueError, match=problem):
        ControlPlane.parse(text)
    assert ControlPlane.parse("ingress=0.5, egress=2") == ControlPlane(ingress=0.0005, egress=0.002)


def test_a_join_cost_stalls_the_step_the_newcomer_joins_at(profile):
    # Profile.decode_join: the step a request joins at also loads its KV, for everyone in it.
    join = 0.05
    staller = dataclasses.replace(profile, decode_join=join)
    prompt, out = 1_000, 50
    arrivals = np.array([0.0, 0.3])  # the second joins while the first is decoding
    requests, true_out = build_requests(arrivals, np.array([prompt] * 2), np.array([out] * 2), SLO_)
    config = ClusterConfig(first_token_on_decode=True)
    plain = simulate(requests, true_out, profile, config).records
    requests, true_out = build_requests(arrivals, np.array([prompt] * 2), np.array([out] * 2), SLO_)
    stalled = simulate(requests, true_out, staller, config).records
    # Alone, the first request's own join costs its first token exactly ``join``.
    np.testing.assert_allclose(stalled[0].ttft, plain[0].ttft + join, rtol=1e-9)
    # The second's join lengthens one of the first request's gaps by ``join`` (to within the
    # newcomer's own share of a step, which shifts by a step between the two runs); the
    # other gaps move by microseconds at most.
    extra = np.asarray(stalled[0].itl) - np.asarray(plain[0].itl)
    assert np.sum(extra > 1e-4) == 1 and np.max(extra) == pytest.approx(join, abs=2e-4)
    assert len(stalled[1].token_times) == out


def test_first_token_on_decode_keeps_every_token_under_load(profile):
    arrivals, inputs, outputs = workload(seed=3, n=300, rate=40.0, max_in=2_000, max_out=60)
    outputs[0] = 1  # a one-token answer still goes through decode
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    config = ClusterConfig(prefill_instances=2, decode_instances=2, first_token_on_decode=True)
    result = simulate(
        requests, true_out, profile, config, prefill_policy="kairos", decode_policy="kairos"
    )
    assert [len(r.token_times) for r in result.records] == list(true_out)
    assert all(r.status == "finished" for r in result.records)
    assert all(r.ttft > profile.prefill.time_one(r.input_tokens) for r in result.records)
    # The decode instance dates each first token (its TPOT clock starts there) as emitted.
    firsts = np.array([r.first_token for r in requests])
    np.testing.assert_array_equal(firsts, [rec.token_times[0] for rec in result.records])


def test_decode_policy_wake_up_stops_the_closed_form_run(profile, monkeypatch):
    # A policy that holds a request back until t = 0.5 s and asks to decide again then gets
    # a boundary at the first step boundary at or after it, though nothing else happens.
    from kairos.core.policies import DECODE_POLICIES

    seen: list[float] = []

    class Waker:
        name = "waker"

        def __init__(self, predictor: object) -> None:
            self.inner = DECODE_POLICIES.create("fcfs", predictor=predictor)

        def schedule(self, view, now):  # type: ignore[no-untyped-def]
            seen.append(now)
            decision = self.inner.schedule(view, now)
            if now < 0.5:
                decision.admit = [r for r in decision.admit if r.id == 0]
                decision.wake_at = 0.5
            return decision

        def place(self, request, instances, now):  # type: ignore[no-untyped-def]
            return 0

    monkeypatch.setitem(DECODE_POLICIES._factories, "test-waker", Waker)
    # Request 0 decodes for about 3 s alone; request 1 waits for the wake-up.
    arrivals, inputs, outputs = np.array([0.0, 0.0]), np.array([100, 150]), np.array([400, 5])
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    result = simulate(requests, true_out, profile, ClusterConfig(), decode_policy="test-waker")
    after = [t for t in seen if t >= 0.5]
    assert after, "the policy was not consulted again after its wake-up time"
    assert after[0] - 0.5 <= profile.decode.step_time(1, 600)
    assert result.records[1].token_times[1] < 0.5 + 3 * profile.decode.step_time(2, 800)


def test_a_skipped_step_leaves_one_gap_of_two_steps(profile, monkeypatch):
    # Mode B's mechanism: request 0 sits out the step at the boundary where request 2 is
    # admitted, and gets its next token a step later; the others run on, in a smaller batch.
    from kairos.core.policies import DECODE_POLICIES

    skipped_at: list[float] = []

    class Skipper:
        name = "skipper"

        def __init__(self, predictor: object) -> None:
            self.inner = DECODE_POLICIES.create("fcfs", predictor=predictor)

        def schedule(self, view, now):  # type: ignore[no-untyped-def]
            decision = self.inner.schedule(view, now)
            zero = [r for r in view.running if r.id == 0]
            if zero and len(view.running) == 2 and not skipped_at and decision.admit:
                decision.skip = zero
                skipped_at.append(now)
            return decision

        def place(self, request, instances, now):  # type: ignore[no-untyped-def]
            return 0

    monkeypatch.setitem(DECODE_POLICIES._factories, "test-skipper", Skipper)
    arrivals, inputs, outputs = (
        np.array([0.0, 0.0, 0.3]),
        np.array([100, 150, 200]),
        np.array([200, 200, 20]),
    )
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    hook = check_invariants([0.0])
    result = simulate(
        requests, true_out, profile, ClusterConfig(), decode_policy="test-skipper", on_event=hook
    )
    assert skipped_at
    r0, r1 = result.records[0], result.records[1]
    assert [rec.output_tokens for rec in result.records] == list(outputs)
    gaps0, gaps1 = np.diff(r0.token_times[1:]), np.diff(r1.token_times[1:])
    # Request 0 has one gap of two steps; request 1 got a token at the step 0 sat out.
    long = np.nonzero(gaps0 > 1.5 * np.median(gaps0))[0]
    assert len(long) == 1
    t_before = r0.token_times[1 + long[0]]
    during = r1.token_times[
        (r1.token_times > t_before) & (r1.token_times < t_before + gaps0[long[0]])
    ]
    assert len(during) == 1
    # The skipped step ran without request 0: it took the two-request step time (B = 1 plus
    # nothing joined yet), shorter than the steps around it.
    assert during[0] - t_before < np.median(gaps1)


def test_kairos_b_skips_under_load_and_every_token_arrives(profile):
    # Ten long decodes bank slack (9.3 ms steps against an 11 ms TPOT), then a burst of 60
    # short requests needs more than the 10.45 ms budget: the banked ones sit steps out.
    arrivals = np.concatenate([np.zeros(10), np.full(60, 1.0)])
    inputs = np.concatenate([np.full(10, 2_000), np.full(60, 300)])
    outputs = np.concatenate([np.full(10, 400), np.full(60, 50)])
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO(5.0, 0.011))
    skips = [0]

    def count(now: float, cluster: Cluster) -> None:
        skips[0] += sum(len(d._skipping) for d in cluster.decode)
        check(now, cluster)

    check = check_invariants([0.0])
    result = simulate(
        requests, true_out, profile, ClusterConfig(), decode_policy="kairos-b", on_event=count
    )
    assert skips[0] > 0, "the workload never made mode B skip"
    assert [rec.output_tokens for rec in result.records] == list(outputs)
    assert all(r.status == "finished" for r in result.records)


def test_prefill_queue_matches_md1_mean_wait(profile):
    """One prefill instance, batches of one, equal prompts, Poisson arrivals: an M/D/1 queue.

    Mean wait W = rho * D / (2 * (1 - rho)) (Pollaczek-Khinchine with deterministic service).
    """
    n, prompt, rho = 40_000, 2_000, 0.7
    service = profile.prefill.time_one(prompt)
    rate = rho / service
    rng = np.random.default_rng(11)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    arrivals -= arrivals[0]
    requests, true_out = build_requests(
        arrivals, np.full(n, prompt), np.ones(n, dtype=np.int64), SLO_
    )
    config = ClusterConfig(max_prefill_batch_requests=1)
    result = simulate(requests, true_out, profile, config)
    waits = np.array([r.ttft for r in result.records]) - service
    expected = rho * service / (2 * (1 - rho))
    # Drop the warm-up; the standard error of the mean at this n is about 2%.
    assert abs(waits[2_000:].mean() - expected) / expected < 0.06


def test_decode_memory_pressure_preempts_and_still_finishes():
    # Tight KV memory: FCFS must preempt, and every request must still finish exactly.
    profile = make_profile(kv_capacity_tokens=5_000, max_decode_batch_size=64)
    arrivals, inputs, outputs = workload(5, 60, 50.0, 1_500, 400)
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    result = simulate(requests, true_out, profile, ClusterConfig())
    assert sum(r.preemptions for r in result.records) > 0
    assert all(r.finished for r in result.records)
    assert [r.output_tokens for r in result.records] == true_out


def test_prompt_over_capacity_is_rejected_with_reason(profile):
    requests, true_out = build_requests(
        np.array([0.0, 0.1]), np.array([100_000, 10]), np.array([5, 5]), SLO_
    )
    records = simulate(requests, true_out, profile, ClusterConfig()).records
    assert records[0].status == "rejected" and "100000 tokens" in records[0].error
    assert records[1].finished


def test_online_correction_learns_a_slower_truth(profile):
    arrivals, inputs, outputs = workload(1, 500, 5.0, 2_000, 100)
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    config = ClusterConfig(truth_scale=1.3)
    result = simulate(requests, true_out, profile, config)
    # The corrected predictor converges, so its mean error is far below the 30% bias.
    assert result.predictor_mape["prefill"] < 0.1
    assert result.predictor_mape["decode"] < 0.1


def test_predictor_kinds_oracle_exact_uncorrected_biased(profile):
    arrivals, inputs, outputs = workload(1, 300, 5.0, 2_000, 100)
    config = ClusterConfig(truth_scale=1.3)
    mape = {}
    for kind in ("oracle", "uncorrected"):
        requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
        mape[kind] = simulate(requests, true_out, profile, config, predictor=kind).predictor_mape
    # Without noise the oracle knows every step time; the uncorrected model is 1/1.3 too fast.
    assert mape["oracle"]["prefill"] < 1e-9 and mape["oracle"]["decode"] < 1e-9
    assert abs(mape["uncorrected"]["prefill"] - (1 - 1 / 1.3)) < 1e-6


def test_policies_can_predict_with_another_profile_than_the_truth(profile):
    # The truth is the profile; the policies predict with a probed one whose prefill is
    # half as slow. The first batch is predicted with the policy profile (no correction yet)
    # and takes the truth's time; the uncorrected predictor stays off by the factor.
    c = profile.prefill
    probed = dataclasses.replace(
        profile, prefill=dataclasses.replace(c, c0=c.c0 / 2, c1=c.c1 / 2, c2=c.c2 / 2)
    )
    requests, true_out = build_requests(np.array([0.0]), np.array([1_000]), np.array([5]), SLO_)
    rec = simulate(requests, true_out, profile, ClusterConfig(), policy_profile=probed).records[0]
    assert rec.predicted_prefill == pytest.approx(probed.prefill.time_one(1_000))
    assert rec.ttft == pytest.approx(profile.prefill.time_one(1_000))
    arrivals, inputs, outputs = workload(1, 100, 5.0, 2_000, 20)
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    res = simulate(
        requests, true_out, profile, ClusterConfig(), predictor="uncorrected", policy_profile=probed
    )
    assert res.predictor_mape["prefill"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="oracle predicts with the truth"):
        simulate(
            requests, true_out, profile, ClusterConfig(), predictor="oracle", policy_profile=probed
        )


def test_unknown_predictor_is_named(profile):
    import pytest

    requests, true_out = build_requests(*workload(1, 5, 5.0, 100, 10), SLO_)
    with pytest.raises(ValueError, match="unknown predictor 'psychic'"):
        simulate(requests, true_out, profile, ClusterConfig(), predictor="psychic")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    n_p=st.integers(1, 3),
    chunk=st.integers(1, 3_000),
    policy=st.sampled_from(["fcfs", "sjf", "edf-relegate", "kairos"]),
)
def test_chunked_prefill_invariants(seed, n, n_p, chunk, policy):
    arrivals, inputs, outputs = workload(seed, n, 50.0, 4_000, 50)
    requests, true_out = build_requests(arrivals, inputs, outputs, SLO_)
    config = ClusterConfig(prefill_instances=n_p, prefill_chunk_tokens=chunk, seed=seed)
    owner: dict[int, int] = {}

    def hook(now: float, cluster: Cluster) -> None:
        for p in cluster.prefill:
            assert 0 <= p.kv_used <= p.kv_capacity_tokens
            assert sum(p.takes) <= chunk, "an iteration exceeded the chunk budget"
            for r in p.batch:
                # A prompt's chunks all run on the instance that holds its KV.
                assert owner.setdefault(r.id, p.instance_id) == p.instance_id

    result = simulate(
        requests, true_out, make_profile(), config, prefill_policy=policy, on_event=hook
    )
    assert all(r.finished for r in result.records), "a chunked request never finished"
    assert [rec.output_tokens for rec in result.records] == list(outputs)


def test_chunked_prefill_single_request_sums_its_chunks(profile):
    requests, true_out = build_requests(np.zeros(1), np.array([2_500]), np.array([1]), SLO_)
    config = ClusterConfig(prefill_chunk_tokens=1_000)
    rec = simulate(requests, true_out, profile, config).records[0]
    m = profile.prefill
    # Chunks of 1000, 1000, 500 over prefixes of 0, 1000, 2000 tokens: the squares add up to
    # the whole prompt's, so only the fixed cost per iteration is paid three times.
    expected = sum(
        m.time(u, u * u + 2 * u * done) for u, done in ((1000, 0), (1000, 1000), (500, 2000))
    )
    assert abs(rec.ttft - expected) < 1e-12
    assert abs(expected - (m.time(2_500, 2_500**2) + 2 * m.c0)) < 1e-12


def test_chunking_lets_a_short_prompt_overtake_a_long_one(profile):
    # A 20k-token prompt arrives first; a short one right after. Whole-prompt FCFS makes the
    # short one wait the full prefill; with 2k chunks Kairos re-plans and runs it next.
    arrivals, inputs, outputs = np.array([0.0, 0.001]), np.array([20_000, 100]), np.ones(2, int)
    ttft = {}
    for chunk in (None, 2_000):
        requests, true_out = build_requests(arrivals, inputs, outputs, SLO(0.5, 0.05))
        config = ClusterConfig(prefill_chunk_tokens=chunk)
        records = simulate(requests, true_out, profile, config, prefill_policy="kairos").records
        ttft[chunk] = records[1].ttft
    assert ttft[2_000] < 0.5 < ttft[None]


def test_cli_control_latency_adds_its_legs_and_names_a_bad_leg(tmp_path, capsys):
    base = ["sim", "--trace", "azure-conv", "--num-requests", "20", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    legs = "ingress=1,dispatch=2,report=3,egress=4"
    assert main([*base, "--control-latency", legs, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    # An idle cluster at the trace's own rate: every first token is 10 ms later.
    assert b["median_ttft_ms"] == pytest.approx(a["median_ttft_ms"] + 10.0, abs=1e-6)
    with pytest.raises(SystemExit) as e:
        main([*base, "--control-latency", "ingres=1", "--out", str(tmp_path / "c")])
    assert e.value.code == 2
    assert "'ingres=1': expected NAME=MS" in capsys.readouterr().err
