"""The experiment harness on a tiny slice: one point runs, seeds average, the report renders."""

from __future__ import annotations

import pytest

from kairos.experiments.report import operating_table, plot_rate_sweep
from kairos.experiments.runner import Point, run_point
from kairos.experiments.sweeps import mean_over_seeds, operating_rate
from kairos.experiments.workloads import Workload


def test_harness_end_to_end(tmp_path, monkeypatch):
    from kairos.experiments import workloads

    tiny = Workload("tiny", "azure-conv", 0.5, 0.015, 60.0, (4.0, 6.0))
    monkeypatch.setitem(workloads.WORKLOADS, "tiny", tiny)
    rows = [
        run_point(Point("tiny", rate, p, d, seed=seed))
        for rate in (4.0, 6.0)
        for p, d in (("fcfs", "fcfs"), ("sjf", "fcfs"), ("kairos", "kairos"))
        for seed in (0, 1)
    ]
    assert all(0.0 <= r["joint_attainment"] <= 1.0 for r in rows)
    # Different seeds are different trace windows, so they really differ.
    assert rows[0]["num_requests"] != rows[1]["num_requests"]
    avg = mean_over_seeds(rows, ("workload", "instances", "rate_scale", "prefill", "decode"))
    assert len(avg) == 6 and all(r["seeds"] == 2 for r in avg)
    rate = operating_rate(rows, "tiny", 1)
    lines, gains = operating_table(rows, "tiny", 1, rate)
    assert len(lines) == 2 + 3 and "**kairos/kairos**" in "".join(lines)
    assert gains["best_other"] in ("fcfs/fcfs", "sjf/fcfs")
    plot_rate_sweep(rows, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_ablation_ladder_and_cdfs(tmp_path, monkeypatch):
    from kairos.experiments import sweeps, workloads
    from kairos.experiments.report import ablation_tables, plot_latency_cdfs

    tiny = Workload("tiny", "azure-conv", 0.5, 0.015, 60.0, (4.0, 6.0))
    monkeypatch.setitem(workloads.WORKLOADS, "tiny", tiny)
    # One worker: the spawned pool would not see the monkeypatched workload.
    monkeypatch.setattr(sweeps, "run_all", lambda points, job=run_point: map(job, points))
    ladder = sweeps.ablation(["tiny"], [1], [0], {("tiny", 1): 6.0})
    assert len(ladder) == len(sweeps.LADDER) * len(sweeps.TRUTHS)
    mismatched = [r for r in ladder if r["truth"] == "mismatched"]
    assert all(r["truth_scale"] == 1.25 and r["rate_scale"] == 6.0 / 1.25 for r in mismatched)
    by = {(r["truth"], r["predictor"], r["decode"]): r for r in ladder}
    # The uncorrected predictor never learns the 25% slowdown; the fitted one does.
    assert (
        by[("mismatched", "uncorrected", "kairos")]["predictor_mape_prefill"]
        > by[("mismatched", "fitted", "kairos")]["predictor_mape_prefill"]
    )
    text = "\n".join(ablation_tables(ladder))
    assert "kairos/kairos (oracle)" in text and "Ground truth: mismatched" in text
    rates = {("tiny", 1): 6.0}
    chunk_rows = sweeps.chunked(["tiny"], [1], [0], rates)
    assert {r["prefill_chunk"] for r in chunk_rows} == {sweeps.CHUNK}
    whole = [run_point(Point("tiny", 6.0, p, d)) for p, d in sweeps.PAIRS]
    for r in whole:
        r["rate_scale"] = 6.0
    from kairos.experiments.results import _chunked_section

    section = _chunked_section(whole, chunk_rows, rates)
    table = [line for line in section if " -> " in line]
    assert len(table) == 1 + len(sweeps.PAIRS)  # the description, then one row per pair
    assert any(line.startswith("| kairos/kairos vs best other, chunked (pp) |") for line in section)
    modes = sweeps.decode_modes(["tiny"], [1], [0], rates)
    assert {(r["rate_scale"], r["decode"]) for r in modes} == {
        (6.0, "kairos"),
        (6.0, "kairos-b"),
    }
    from kairos.experiments.results import _modes_section

    section = _modes_section(modes, rates)
    rows = [line for line in section if line.startswith("| tiny | 1P1D | 6* |")]
    assert len(rows) == 1 and rows[0].count(" -> ") == 3
    cdfs = sweeps.latency_cdfs(["tiny"], rates)
    assert all(len(r["ttft_s"]) > 10 for r in cdfs)
    plot_latency_cdfs(cdfs, {"tiny": (0.5, 0.015)}, tmp_path / "cdf.png")
    assert (tmp_path / "cdf.png").stat().st_size > 1000


def test_goodput_reports_an_unreachable_target_as_not_reached(monkeypatch):
    from kairos.experiments import sweeps, workloads
    from kairos.experiments.results import _goodput_section

    # 0.5 s TTFT is reachable at a low rate; 1 ms is not reachable at any rate.
    for name, ttft in (("easy", 0.5), ("impossible", 0.001)):
        w = Workload(name, "azure-conv", ttft, 0.015, 60.0, (4.0,))
        monkeypatch.setitem(workloads.WORKLOADS, name, w)
    monkeypatch.setattr(sweeps, "run_all", lambda points, job=run_point: map(job, points))
    monkeypatch.setattr(sweeps, "GOODPUT_PAIRS", (sweeps.BASELINE,))
    rows = {r["workload"]: r for r in sweeps.goodput(["easy", "impossible"], [1], [0], 3)}
    assert rows["easy"]["goodput_req_s"] > 0 and rows["easy"]["below_rate_scale"] is None
    assert rows["impossible"]["goodput_req_s"] is None
    # Three halvings from [0.05, 8]: the lowest rate tried.
    assert rows["impossible"]["below_rate_scale"] == 0.05 + (8.0 - 0.05) / 8
    text = "\n".join(_goodput_section(list(rows.values())))
    assert "| impossible | 1P1D | fcfs/fcfs | not reached (<" in text


def _sweep(pair, points):
    from kairos.experiments.sweeps import METRICS

    return [
        {
            **dict.fromkeys(METRICS),
            "workload": "w",
            "instances": 1,
            "rate_scale": rate,
            "prefill": pair[0],
            "decode": pair[1],
            "seed": seed,
            "tpot_attainment": att + (0.01 if seed else -0.01),  # the seeds average to att
            "decode_throughput": tok,
        }
        for rate, att, tok in points
        for seed in (0, 1)
    ]


def test_throughput_at_tpot_interpolates_the_crossing_and_names_bounds():
    from kairos.experiments.report import throughput_at_tpot
    from kairos.experiments.results import _relative

    pair = ("fcfs", "fcfs")
    rows = _sweep(pair, [(1.0, 0.99, 100.0), (2.0, 0.9, 200.0), (3.0, 0.5, 280.0)])
    tok, rate, how = throughput_at_tpot(rows, "w", 1, pair, 0.8)
    # 0.9 -> 0.5 crosses 0.8 a quarter of the way from rate 2 to 3.
    assert how == "at" and rate == pytest.approx(2.25) and tok == pytest.approx(220.0)
    assert throughput_at_tpot(rows, "w", 1, pair, 0.4)[::2] == (280.0, "at least")
    assert throughput_at_tpot(rows, "w", 1, pair, 0.995)[::2] == (100.0, "below")
    with pytest.raises(ValueError, match="no rate-sweep rows for kairos/kairos"):
        throughput_at_tpot(rows, "w", 1, ("kairos", "kairos"), 0.8)
    assert _relative((110.0, 0, "at"), (100.0, 0, "at")) == "+10.0%"
    assert _relative((110.0, 0, "at least"), (100.0, 0, "at")) == ">= +10.0%"
    assert _relative((90.0, 0, "at"), (100.0, 0, "at least")) == "<= -10.0%"
    assert _relative((110.0, 0, "at least"), (100.0, 0, "at least")) == "-"


def test_slo_sweep_and_cdfs_run_on_the_smallest_cluster_asked_for(monkeypatch):
    """``kairos experiment --instances 2`` (no 1P1D): both run on 2P2D instead of failing
    on the missing 1P1D operating rate."""
    from kairos.experiments import sweeps, workloads
    from kairos.experiments.results import _slo_section

    tiny = Workload("tiny", "azure-conv", 0.5, 0.015, 60.0, (4.0, 6.0))
    monkeypatch.setitem(workloads.WORKLOADS, "tiny", tiny)
    monkeypatch.setattr(sweeps, "run_all", lambda points, job=run_point: map(job, points))
    rates = {("tiny", 2): 6.0}
    rows = sweeps.slo_sweep(["tiny"], {"tiny": 6.0}, [0], 2, scales=(1.0,))
    assert rows and {r["instances"] for r in rows} == {2}
    assert _slo_section(rows, rates)[0].startswith("## SLO scale sweep (2P2D,")
    cdfs = sweeps.latency_cdfs(["tiny"], rates, instances=2)
    assert {r["instances"] for r in cdfs} == {2}
