"""summarize() against hand-computed values, edge cases and Hypothesis invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.core.metrics import summarize
from kairos.core.record import RequestRecord

MS = 1e3


def rec(
    rid: int,
    arrival: float,
    times: list[float],
    status: str = "finished",
    ttft_slo: float = 1.0,
    tpot_slo: float = 0.6,
    input_tokens: int = 10,
) -> RequestRecord:
    return RequestRecord(
        id=rid,
        arrival=arrival,
        input_tokens=input_tokens,
        ttft_slo=ttft_slo,
        tpot_slo=tpot_slo,
        status=status,
        token_times=np.array(times, dtype=np.float64),
    )


# Five requests whose every statistic is worked out by hand below.
#   r0: TTFT 1.0, TPOT (3-1)/3, ITL 0.5 0.5 1.0, E2E 3.0  -> TTFT met, TPOT missed (0.667 > 0.6)
#   r1: TTFT 0.5, TPOT 0.5,     ITL 0.5,         E2E 1.0  -> both met
#   r2: one token: TTFT 2.0, TPOT 0 (not in TPOT stats), E2E 2.0 -> TTFT missed, TPOT met
#   r3: rejected, no tokens                                -> both missed
#   r4: failed after two tokens (not in latency stats)     -> both missed; last event at 5.5
CASE = [
    rec(0, 0.0, [1.0, 1.5, 2.0, 3.0]),
    rec(1, 1.0, [1.5, 2.0]),
    rec(2, 2.0, [4.0]),
    rec(3, 3.0, [], status="rejected"),
    rec(4, 3.5, [5.0, 5.5], status="failed"),
]

EXPECTED_FIELDS = {
    "num_requests", "num_finished", "num_rejected", "num_failed", "completed", "failed",
    "duration", "total_input_tokens", "total_output_tokens", "request_throughput",
    "output_throughput", "total_token_throughput", "ttft_attainment", "tpot_attainment",
    "joint_attainment", "request_goodput", "goodput", "decode_throughput",
    "steady_window_start", "steady_window_end",
} | {
    f"{stat}_{metric}_ms"
    for metric in ("ttft", "tpot", "itl", "e2el")
    for stat in ("mean", "median", "std", "p50", "p90", "p99")
}  # fmt: skip


@pytest.fixture(scope="module")
def case() -> dict[str, object]:
    return summarize(CASE, num_decode_instances=2)


def test_field_names_are_the_documented_set(case: dict[str, object]) -> None:
    assert set(case) == EXPECTED_FIELDS


def test_counts_duration_and_throughput(case: dict[str, object]) -> None:
    assert case["num_requests"] == 5
    assert (case["num_finished"], case["num_rejected"], case["num_failed"]) == (3, 1, 1)
    assert (case["completed"], case["failed"]) == (3, 2)  # vLLM: failed = did not complete
    assert case["duration"] == pytest.approx(5.5)  # first arrival 0 to the failed r4's 5.5
    assert case["total_input_tokens"] == 30
    assert case["total_output_tokens"] == 7  # finished only: 4 + 2 + 1
    assert case["request_throughput"] == pytest.approx(3 / 5.5)
    assert case["output_throughput"] == pytest.approx(7 / 5.5)
    assert case["total_token_throughput"] == pytest.approx(37 / 5.5)


def test_ttft_stats(case: dict[str, object]) -> None:
    # samples 1.0, 0.5, 2.0 s; linear percentiles on sorted [0.5, 1, 2]
    assert case["mean_ttft_ms"] == pytest.approx(7 / 6 * MS)
    assert case["median_ttft_ms"] == pytest.approx(1.0 * MS)
    assert case["std_ttft_ms"] == pytest.approx(math.sqrt(42 / 108) * MS)
    assert case["p50_ttft_ms"] == pytest.approx(1.0 * MS)
    assert case["p90_ttft_ms"] == pytest.approx(1.8 * MS)  # rank 1.8: 1 + 0.8 * (2 - 1)
    assert case["p99_ttft_ms"] == pytest.approx(1.98 * MS)


def test_tpot_stats_skip_single_token_requests(case: dict[str, object]) -> None:
    # samples 2/3 and 0.5 s; r2's TPOT of 0 is not a sample
    assert case["mean_tpot_ms"] == pytest.approx((2 / 3 + 0.5) / 2 * MS)
    assert case["median_tpot_ms"] == pytest.approx((2 / 3 + 0.5) / 2 * MS)
    assert case["p90_tpot_ms"] == pytest.approx((0.5 + 0.9 / 6) * MS)


def test_itl_stats_use_every_gap_of_finished_requests(case: dict[str, object]) -> None:
    # gaps 0.5 0.5 1.0 (r0) and 0.5 (r1); the failed r4's gap and cross-request gaps excluded
    assert case["mean_itl_ms"] == pytest.approx(0.625 * MS)
    assert case["median_itl_ms"] == pytest.approx(0.5 * MS)
    assert case["p90_itl_ms"] == pytest.approx(0.85 * MS)  # rank 2.7 on [.5, .5, .5, 1]
    assert case["std_itl_ms"] == pytest.approx(np.std([0.5, 0.5, 1.0, 0.5]) * MS)


def test_e2el_stats(case: dict[str, object]) -> None:
    assert case["mean_e2el_ms"] == pytest.approx(2.0 * MS)
    assert case["median_e2el_ms"] == pytest.approx(2.0 * MS)
    assert case["p99_e2el_ms"] == pytest.approx(2.98 * MS)


def test_attainment_counts_rejected_and_failed_as_misses(case: dict[str, object]) -> None:
    assert case["ttft_attainment"] == pytest.approx(2 / 5)  # r0, r1
    assert case["tpot_attainment"] == pytest.approx(2 / 5)  # r1, r2 (single token: TPOT 0)
    assert case["joint_attainment"] == pytest.approx(1 / 5)  # r1
    assert case["goodput"] == pytest.approx(1 / 5.5)
    assert case["request_goodput"] == case["goodput"]


def test_single_token_request_has_no_tpot_or_itl_samples_but_meets_tpot() -> None:
    s = summarize([rec(0, 0.0, [0.5], tpot_slo=0.0)], num_decode_instances=1)
    assert s["tpot_attainment"] == 1.0
    assert s["joint_attainment"] == 1.0
    for metric in ("tpot", "itl"):
        assert all(s[f"{k}_{metric}_ms"] is None for k in ("mean", "median", "std", "p99"))
    assert s["mean_ttft_ms"] == pytest.approx(500.0)


def test_decode_throughput_counts_only_decode_tokens_inside_the_window() -> None:
    # Decode tokens (all but each request's first): 1.5 2.0 3.0 (r0), 2.0 (r1), 5.5 (r4).
    # In [1.0, 4.5): four of them; the first tokens at 1.0, 1.5 and 4.0 do not count.
    s = summarize(CASE, num_decode_instances=2, steady_window=(1.0, 4.5))
    assert s["decode_throughput"] == pytest.approx(4 / 3.5 / 2)
    # Half-open window: a token exactly at the end is left for the next window.
    s = summarize(CASE, num_decode_instances=1, steady_window=(2.0, 3.0))
    assert s["decode_throughput"] == pytest.approx(2 / 1.0)  # 2.0 (r0) and 2.0 (r1), not 3.0


def test_default_window_runs_from_10_to_90_percent_arrived() -> None:
    # Ten requests arrive at 0..9; 10% have arrived at t=0 and 90% at t=8. Each emits a decode
    # token at arrival + 1, so the tokens at 1..7 fall in [0, 8).
    records = [rec(i, float(i), [i + 0.5, i + 1.0]) for i in range(10)]
    s = summarize(records, num_decode_instances=1)
    assert (s["steady_window_start"], s["steady_window_end"]) == (0.0, 8.0)
    assert s["decode_throughput"] == pytest.approx(7 / 8)


def test_no_window_when_arrivals_do_not_spread() -> None:
    s = summarize([rec(0, 1.0, [2.0, 3.0])], num_decode_instances=1)
    assert s["decode_throughput"] is None


@pytest.mark.parametrize(
    "records",
    [
        [],
        [rec(0, 0.0, [], status="rejected")],  # duration 0: no rates
        [rec(0, 0.0, [], status="rejected"), rec(1, 1.0, [], status="failed")],
        CASE,
    ],
)
def test_summary_is_strict_json(records: list[RequestRecord]) -> None:
    s = summarize(
        records, num_decode_instances=1, predictor_mape={"prefill": float("nan"), "decode": None}
    )
    assert json.loads(json.dumps(s, allow_nan=False)) == s
    assert s["predictor_mape_prefill"] is None


def test_empty_run_has_counts_and_no_statistics() -> None:
    s = summarize([], num_decode_instances=1)
    assert s["num_requests"] == 0 and s["completed"] == 0
    assert s["joint_attainment"] is None and s["mean_ttft_ms"] is None and s["duration"] is None


def test_predictor_mape_and_extra_fields() -> None:
    s = summarize(
        CASE, num_decode_instances=1, predictor_mape={"prefill": 0.07}, extra={"policy": "edf"}
    )
    assert s["predictor_mape_prefill"] == pytest.approx(0.07)
    assert s["policy"] == "edf"
    with pytest.raises(ValueError, match="'goodput'"):
        summarize(CASE, num_decode_instances=1, extra={"goodput": 1.0})


def test_invalid_arguments_are_quoted() -> None:
    with pytest.raises(ValueError, match="got 0"):
        summarize(CASE, num_decode_instances=0)
    with pytest.raises(ValueError, match=r"\(3.0, 3.0\)"):
        summarize(CASE, num_decode_instances=1, steady_window=(3.0, 3.0))


# --- Hypothesis: invariants on arbitrary runs ---------------------------------------------------

record_st = st.builds(
    lambda rid, arrival, delay, gaps, status, ttft_slo, tpot_slo: rec(
        rid,
        arrival,
        [] if status == "rejected" else list(arrival + delay + np.cumsum([0.0, *gaps])),
        status=status,
        ttft_slo=ttft_slo,
        tpot_slo=tpot_slo,
    ),
    st.integers(0, 10_000),
    st.floats(0, 100),
    st.floats(0, 5),
    st.lists(st.floats(0, 1), max_size=8),
    st.sampled_from(["finished", "finished", "rejected", "failed"]),
    st.floats(0.01, 3),
    st.floats(0.01, 0.5),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(record_st, max_size=30))
def test_invariants(records: list[RequestRecord]) -> None:
    s = summarize(records, num_decode_instances=3)
    json.dumps(s, allow_nan=False)
    if records:
        fractions = [s[f"{k}_attainment"] for k in ("ttft", "tpot", "joint")]
        assert all(0.0 <= f <= 1.0 for f in fractions)
        assert s["joint_attainment"] <= min(s["ttft_attainment"], s["tpot_attainment"])
        # joint is combined from the two flags in metrics; it must agree with the record's own.
        assert s["joint_attainment"] == pytest.approx(np.mean([r.slo_met for r in records]))
    for metric in ("ttft", "tpot", "itl", "e2el"):
        p50, p90, p99 = (s[f"p{p}_{metric}_ms"] for p in (50, 90, 99))
        if p50 is not None:
            assert p50 <= p90 <= p99
            assert s[f"median_{metric}_ms"] == p50
    if s["decode_throughput"] is not None:
        assert s["decode_throughput"] >= 0
