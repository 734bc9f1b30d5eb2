"""benchmarks/client_check.py: clients held against the proxy's hop log of their own run."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.benchmark_scripts import load


@pytest.fixture(scope="module")
def cc() -> ModuleType:
    return load("client_check")


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _hop(arrival: float, first: float, end: float, prompt: int) -> dict[str, object]:
    return {"arrival": arrival, "prefilled": arrival + 0.1, "first_chunk": first, "end": end,
            "prefill_instance": 0, "decode_instance": 0, "prompt_tokens": prompt,
            "status": "ok"}  # fmt: skip


def _kairos_row(arrival: float, prompt: int, n: int, ttft: float, tpot: float) -> dict[str, object]:
    return {"arrival": arrival, "input_tokens": prompt, "output_tokens": n, "status": "finished",
            "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3}  # fmt: skip


def test_match_skips_lines_the_client_did_not_send(cc: ModuleType) -> None:
    sent = [cc.Sent(0.0, 100, 5, True, 1.0, 0.1), cc.Sent(1.0, 50, 5, True, 1.0, 0.1)]
    hops = [
        cc.Hop(998.0, 998.5, 998.9, 64, True),  # kairos bench's calibration requests
        cc.Hop(999.0, 999.5, 999.9, 513, True),
        cc.Hop(1000.0, 1001.0, 1001.4, 101, True),  # counted one token more than the client
        cc.Hop(1001.0, 1002.0, 1002.4, 50, True),
    ]
    pairs = cc.match(sent, hops)
    assert [(s.prompt_tokens, h.arrival) for s, h in pairs] == [(100, 1000.0), (50, 1001.0)]


def test_match_pairs_by_time_when_two_sends_arrive_swapped(cc: ModuleType) -> None:
    sends = ((0.0, 10), (5.0, 129), (5.001, 126), (9.0, 40))
    sent = [cc.Sent(t, n, 5, True, 1.0, 0.1) for t, n in sends]
    arrivals = ((100.0, 10), (105.0015, 126), (105.002, 129), (109.0, 40))
    hops = [cc.Hop(t, t + 1.0, t + 1.4, n, True) for t, n in arrivals]
    pairs = cc.match(sent, hops)
    assert [(s.prompt_tokens, h.prompt_tokens) for s, h in pairs] == [
        (10, 10), (129, 129), (126, 126), (40, 40)
    ]  # fmt: skip


def test_match_leaves_out_a_request_the_proxy_never_saw(cc: ModuleType) -> None:
    sent = [cc.Sent(0.0, 100, 5, True, 1.0, 0.1), cc.Sent(1.0, 500, 5, True, 1.0, 0.1)]
    hops = [cc.Hop(1000.0, 1001.0, 1001.4, 100, True)]
    assert len(cc.match(sent, hops)) == 1


def test_a_client_that_reads_late_is_caught(tmp_path: Path, cc: ModuleType) -> None:
    """The proxy saw every first byte within the 1 s TTFT SLO; a client whose event loop
    read them 0.3 s late misses two of the three, and the check says so."""
    run = tmp_path / "run"
    hops = [_hop(100.0 + i, 100.0 + i + t, 100.0 + i + t + 0.4, 20 + i)
            for i, t in enumerate((0.5, 0.8, 0.9))]  # fmt: skip
    _write_jsonl(run / "hops.jsonl", hops)
    rows = [_kairos_row(float(i), 20 + i, 5, t + 0.3, 0.1) for i, t in enumerate((0.5, 0.8, 0.9))]
    _write_jsonl(run / "bench" / "requests.jsonl", rows)
    (run / "clients.json").write_text(json.dumps({"kairos bench": [99.0, 200.0]}))
    check = cc.check_run(run, 1.0, 0.15)["kairos bench"]
    assert check["matched"] == 3
    assert check["client"]["ttft"] == pytest.approx(100 / 3)
    assert check["proxy"]["ttft"] == 100.0
    assert check["proxy"]["tpot"] == 100.0  # 0.4 s over 4 gaps
    assert check["mean_ttft_gap_ms"] == pytest.approx(300.0)
    assert check["mean_tpot_gap_ms"] == pytest.approx(0.0, abs=1e-9)
    assert check["max_transit_ms"] == pytest.approx(0.0, abs=1e-9)


def test_vllm_bench_rows_use_vllms_tpot(tmp_path: Path, cc: ModuleType) -> None:
    path = tmp_path / "vb.json"
    path.write_text(json.dumps({
        "start_times": [5.0, 6.0], "input_lens": [30, 40], "output_lens": [11, 1],
        "ttfts": [0.5, 0.2], "latencies": [1.5, 0.2], "errors": ["", ""],
    }))  # fmt: skip
    a, b = cc.vllm_bench_rows(path)
    assert a.tpot == pytest.approx(0.1) and a.ttft == 0.5
    assert b.tpot == 0.0  # one token: vLLM counts TPOT as 0 for goodput
    path.write_text(json.dumps({"completed": 2}))
    with pytest.raises(ValueError, match="save-detailed"):
        cc.vllm_bench_rows(path)


def test_a_request_that_failed_mid_stream_misses_on_the_client_side(
    tmp_path: Path, cc: ModuleType
) -> None:
    """Its first token came in time, but it did not finish: a miss, as RequestRecord has it."""
    run = tmp_path / "run"
    _write_jsonl(run / "hops.jsonl", [_hop(100.0, 100.5, 100.9, 20), _hop(101.0, 101.5, 101.9, 21)])
    rows = [_kairos_row(0.0, 20, 5, 0.5, 0.1), _kairos_row(1.0, 21, 5, 0.5, 0.1)]
    rows[1].update(status="failed", tpot_ms=None)
    _write_jsonl(run / "bench" / "requests.jsonl", rows)
    (run / "clients.json").write_text(json.dumps({"kairos bench": [99.0, 200.0]}))
    check = cc.check_run(run, 1.0, 0.15)["kairos bench"]
    assert check["client"]["ttft"] == 50.0
    assert check["proxy"]["ttft"] == 100.0


def test_a_second_round_is_checked_against_its_own_window(tmp_path: Path, cc: ModuleType) -> None:
    """Two rounds of kairos bench on one server: each is read from its own folder and held
    against the proxy's lines of its own window, not the other round's."""
    run = tmp_path / "run"
    hops = [_hop(100.0, 100.5, 100.9, 20), _hop(300.0, 302.0, 302.4, 20)]
    _write_jsonl(run / "hops.jsonl", hops)
    _write_jsonl(run / "bench" / "requests.jsonl", [_kairos_row(0.0, 20, 5, 0.5, 0.1)])
    _write_jsonl(run / "bench-2" / "requests.jsonl", [_kairos_row(0.0, 20, 5, 2.0, 0.1)])
    windows = {"kairos bench": [99.0, 200.0], "kairos bench #2": [299.0, 400.0]}
    (run / "clients.json").write_text(json.dumps(windows))
    checks = cc.check_run(run, 1.0, 0.15)
    assert checks["kairos bench"]["proxy"]["ttft"] == 100.0
    assert checks["kairos bench #2"]["proxy"]["ttft"] == 0.0
    assert checks["kairos bench #2"]["mean_ttft_gap_ms"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("client", ["kairos bench", "vllm bench"])
@pytest.mark.parametrize("round_", [1, 2, 12])
def test_a_client_runs_name_reads_back(cc: ModuleType, client: str, round_: int) -> None:
    assert cc.client_round(cc.client_run(client, round_)) == (client, round_)


@pytest.mark.parametrize("name", ["curl", "vllm bench #1", "vllm bench #x", "kairos bench #"])
def test_an_unknown_client_run_is_named(cc: ModuleType, name: str) -> None:
    with pytest.raises(ValueError, match="unknown client run"):
        cc.client_round(name)
