"""Run files on disk and the terminal tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from kairos.core.metrics import summarize
from kairos.core.record import RequestRecord
from kairos.report import REQUESTS_FILE, SUMMARY_FILE, print_comparison, print_summary, write_run


def rec(rid: int, arrival: float, times: list[float], status: str = "finished") -> RequestRecord:
    return RequestRecord(
        id=rid,
        arrival=arrival,
        input_tokens=16,
        ttft_slo=1.0,
        tpot_slo=0.6,
        status=status,
        token_times=np.array(times, dtype=np.float64),
    )


# Deliberately out of id order: requests.jsonl must come out sorted.
RECORDS = [
    rec(2, 2.0, [4.0]),
    rec(0, 0.0, [1.0, 1.5, 2.0, 3.0]),
    rec(3, 3.0, [], status="rejected"),
    rec(1, 1.0, [1.5, 2.0]),
]


def capture() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, color_system=None), buffer


def test_write_run_round_trips(tmp_path: Path) -> None:
    summary = summarize(RECORDS, num_decode_instances=1, predictor_mape={"prefill": 0.1})
    out = tmp_path / "runs" / "fcfs"  # parents are created
    write_run(out, summary, RECORDS)

    text = (out / SUMMARY_FILE).read_text()
    assert json.loads(text) == summary
    assert list(json.loads(text)) == sorted(summary)  # sorted keys: diffable between runs
    rows = [json.loads(line) for line in (out / REQUESTS_FILE).read_text().splitlines()]
    assert len(rows) == len(RECORDS)
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert rows[0] == RECORDS[1].to_json()


def test_write_run_overwrites_and_refuses_nan(tmp_path: Path) -> None:
    write_run(tmp_path, {"a": 1}, RECORDS)
    write_run(tmp_path, {"a": 2}, RECORDS[:1])
    assert json.loads((tmp_path / SUMMARY_FILE).read_text()) == {"a": 2}
    assert len((tmp_path / REQUESTS_FILE).read_text().splitlines()) == 1
    with pytest.raises(ValueError):
        write_run(tmp_path, {"a": float("nan")}, RECORDS)


def test_print_summary_shows_the_headline_fields() -> None:
    console, buffer = capture()
    summary = summarize(RECORDS, num_decode_instances=1, predictor_mape={"prefill": 0.073})
    print_summary(summary, "fcfs+fcfs @ 2 req/s", console=console)
    out = buffer.getvalue()
    assert "fcfs+fcfs @ 2 req/s" in out
    for label in ("TTFT (ms)", "TPOT (ms)", "ITL (ms)", "E2E (ms)", "joint attainment"):
        assert label in out
    assert "25.0%" in out  # joint: only r1 of four meets both SLOs
    assert "1166.67" in out  # mean TTFT of 1.0, 0.5 and 2.0 s
    assert "MAPE prefill" in out and "7.3%" in out
    assert "3/1/0" in out  # finished/rejected/failed


def test_print_summary_of_an_empty_run_shows_dashes() -> None:
    console, buffer = capture()
    print_summary(summarize([], num_decode_instances=1), "empty", console=console)
    assert "-" in buffer.getvalue()


def test_print_comparison_has_one_row_per_run() -> None:
    console, buffer = capture()
    base = summarize(RECORDS, num_decode_instances=1)
    worse = dict(base, joint_attainment=0.1, p99_ttft_ms=None)
    print_comparison({"fcfs+fcfs": base, "edf+slack": worse}, console=console)
    lines = buffer.getvalue().splitlines()
    assert any("fcfs+fcfs" in line and "25.0%" in line for line in lines)
    assert any("edf+slack" in line and "10.0%" in line for line in lines)
