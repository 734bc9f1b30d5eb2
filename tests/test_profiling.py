"""``kairos profile``'s fits: known step times in, the same coefficients out."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from kairos.cli import main
from kairos.profiles import load_profile, profile_json
from kairos.profiling.build import fit_decode, fit_handoff, fit_prefill
from kairos.profiling.measure import DecodePoint, HandoffPoint, PrefillPoint, Prober, _timing

C = (0.05, 0.002, 1e-6)  # prefill c0, c1, c2
D = (0.04, 0.003, 2e-6)  # decode d0, d1, d2


def test_prefill_and_decode_fits_recover_known_coefficients() -> None:
    prefill = [
        PrefillPoint((n,) * b, C[0] + C[1] * n * b + C[2] * n * n * b)
        for n in (16, 64, 256, 512)
        for b in (1, 2, 4)
    ]
    decode = [
        DecodePoint(b, b * k, D[0] + D[1] * b + D[2] * b * k, 10)
        for b in (1, 4, 16)
        for k in (32, 256)
    ]
    pc, perr = fit_prefill(prefill)
    dc, derr = fit_decode(decode)
    np.testing.assert_allclose([pc["c0"], pc["c1"], pc["c2"]], C, rtol=1e-4)
    np.testing.assert_allclose([dc["d0"], dc["d1"], dc["d2"]], D, rtol=1e-4)
    assert perr["mape_fit"] < 1e-4 and derr["mape_fit"] < 1e-4


def test_handoff_fit_separates_the_p_leg_the_hand_off_and_the_first_step() -> None:
    profile = load_profile("smollm2-135m-cpu")
    delta0, bandwidth = 0.08, 5e7
    bpt = profile.kv_transfer.bytes_per_token
    points = []
    for n in (16, 64, 256, 1024):
        p_leg = C[0] + C[1] * n + C[2] * n * n
        total = p_leg + delta0 + n * bpt / bandwidth + profile.decode.step_time(1, n)
        points.append(HandoffPoint(n, total, p_leg))
    fit = fit_handoff(profile, points)
    assert fit.prefill is not None
    np.testing.assert_allclose([fit.prefill[k] for k in ("c0", "c1", "c2")], C, rtol=1e-4)
    np.testing.assert_allclose(fit.kv_transfer["delta0"], delta0, rtol=1e-4)
    np.testing.assert_allclose(fit.kv_transfer["bandwidth_bytes_per_s"], bandwidth, rtol=1e-4)
    # Without the P legs the profile's own prefill stands and is not refitted.
    no_legs = [HandoffPoint(p.tokens, p.seconds + 1.0, None) for p in points]
    assert fit_handoff(profile, no_legs).prefill is None


def test_handoff_fit_refuses_a_profile_slower_than_the_pair() -> None:
    profile = load_profile("smollm2-135m-cpu")
    too_fast = [HandoffPoint(512, 0.01, None)]
    with pytest.raises(ValueError, match="512-token request took 10 ms"):
        fit_handoff(profile, too_fast)


def test_server_timing_parsing() -> None:
    header = "prefill;dur=263.5, decode;dur=12"
    assert _timing(header, "prefill") == pytest.approx(0.2635)
    assert _timing(header, "decode") == pytest.approx(0.012)
    assert _timing(header, "kv") is None
    assert _timing(None, "prefill") is None


def test_prober_reads_the_p_leg_from_the_proxy() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}, headers={"server-timing": "prefill;dur=40"})

    async def probe() -> HandoffPoint:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            return await Prober("http://pd", "m").alone(client, 32)

    point = asyncio.run(probe())
    assert point.tokens == 32 and point.prefill_seconds == pytest.approx(0.04)
    assert point.seconds >= 0


def _step_log(path, rng: np.random.Generator) -> None:
    """A scheduler log as the vLLM plugins write it: decisions and timed steps, both roles."""
    lines = [json.dumps({"t": 0.0, "role": "decode", "running": 3, "admit": []})]
    for _ in range(40):
        s = int(rng.integers(16, 1024))
        lines.append(
            json.dumps(
                {"role": "prefill", "step": [s, s * s], "seconds": C[0] + C[1] * s + C[2] * s * s}
            )
        )
        b, k = int(rng.integers(1, 32)), int(rng.integers(32, 4096))
        lines.append(
            json.dumps({"role": "decode", "step": [b, k], "seconds": D[0] + D[1] * b + D[2] * k})
        )
    path.write_text("\n".join(lines) + "\n")


def test_from_steps_refits_both_models_and_keeps_the_rest_of_the_base(tmp_path, capsys) -> None:
    log, out = tmp_path / "decode0.jsonl", tmp_path / "insitu.json"
    _step_log(log, np.random.default_rng(0))
    argv = ["profile", "--from-steps", str(log), "--base", "smollm2-135m-cpu-pd"]
    assert main([*argv, "--out", str(out), "--name", "insitu"]) == 0
    doc = json.loads(out.read_text())
    base = profile_json("smollm2-135m-cpu-pd")
    p, d = doc["prefill"]["coefficients"], doc["decode"]["coefficients"]
    np.testing.assert_allclose([p["c0"], p["c1"], p["c2"]], C, rtol=1e-4)
    np.testing.assert_allclose([d["d0"], d["d1"], d["d2"]], D, rtol=1e-4)
    assert doc["kv_transfer"] == base["kv_transfer"] and doc["name"] == "insitu"
    assert "--from-steps" in doc["source"]["steps_fitted_by"]
    load_profile(str(out))  # a valid profile file


def test_from_steps_names_a_broken_line_and_too_few_steps(tmp_path, capsys) -> None:
    log, out = tmp_path / "d.jsonl", tmp_path / "x.json"
    log.write_text('{"role": "decode", "step": [1, 10], "seconds": 0.1}\n{"role": "dec\n')
    argv = ["profile", "--from-steps", str(log), "--base", "smollm2-135m-cpu-pd", "--out", str(out)]
    assert main(argv) == 2
    assert f"{log}:2: not a JSON line" in capsys.readouterr().err
    log.write_text('{"role": "decode", "step": [1, 10], "seconds": 0.1}\n')
    assert main(argv) == 2
    assert "fewer than 10 timed steps" in capsys.readouterr().err
    log.write_text('{"role": "decode", "step": [1, 10], "seconds": -1}\n')
    assert main(argv) == 2
    assert "step seconds must be > 0" in capsys.readouterr().err
    assert main(["profile", "--from-steps", str(log), "--out", str(out)]) == 2
    assert "needs --base" in capsys.readouterr().err
    assert not out.exists()


def test_from_steps_measures_the_stall_of_a_decode_step_that_admits(tmp_path) -> None:
    # The plugins do not time the step that admits (KV load, prompt tail); the gap between
    # the timed steps around it is that step: a decode step plus the join cost per newcomer.
    # The stalls are skewed (one admitting step in four stalls 10x longer), and the fit is
    # their total over the requests admitted: the running requests' TPOT carries the sum.
    rng, t = np.random.default_rng(1), 100.0
    lines, stalls, counted = [], 0.0, 0
    for i in range(60):
        b, k = int(rng.integers(3, 16)), int(rng.integers(64, 2048))
        step = D[0] + D[1] * b + D[2] * k
        admitted = 1 + i % 2 if i % 3 == 0 else 0
        if admitted:  # a decision, then the untimed admitting step
            join = 0.6 if i % 4 == 0 else 0.06
            lines.append({"t": t, "role": "decode", "admit": ["x"] * admitted})
            t += step + join * admitted
            if i:  # the first admission comes before any timed step: no gap to read
                stalls, counted = stalls + join * admitted, counted + admitted
        t += step
        lines.append({"t": t, "role": "decode", "step": [b, k], "seconds": step})
    lines.append({"t": t + 9.0, "role": "decode", "admit": ["y"]})  # idle: not a sample
    idle_step = D[0] + D[1] * 2 + D[2] * 99
    lines.append({"t": t + 9.1, "role": "decode", "step": [2, 99], "seconds": idle_step})
    log, out = tmp_path / "decode0.jsonl", tmp_path / "insitu.json"
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    argv = ["profile", "--from-steps", str(log), "--base", "smollm2-135m-cpu-pd"]
    assert main([*argv, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    mean = stalls / counted
    assert doc["decode"]["join_seconds"] == pytest.approx(mean, rel=1e-3)
    assert doc["fit_error"]["decode_join"]["median_seconds"] == pytest.approx(0.06, rel=1e-3)
    assert doc["fit_error"]["decode_join"]["n"] == 19  # 20 admissions, the first before any step
    assert load_profile(str(out)).decode_join == pytest.approx(mean, rel=1e-3)


def test_from_steps_fits_the_total_time_of_skewed_steps(tmp_path) -> None:
    # Under load one prefill step in five runs 1.8x long (beside the other engine's). A queue
    # adds the steps up, so the refit must give back their total: a relative-error fit
    # weights every step alike and comes out short (about 10% here).
    rng = np.random.default_rng(2)
    lines, measured, shapes = [], [], []
    for i in range(200):
        s = int(rng.integers(16, 1024))
        seconds = (C[0] + C[1] * s) * (1.8 if i % 5 == 0 else 1.0)
        lines.append({"role": "prefill", "step": [s, s * s], "seconds": seconds})
        measured.append(seconds)
        shapes.append(s)
    log, out = tmp_path / "prefill0.jsonl", tmp_path / "insitu.json"
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    argv = ["profile", "--from-steps", str(log), "--base", "smollm2-135m-cpu-pd"]
    assert main([*argv, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    prefill = load_profile(str(out)).prefill
    modelled = sum(prefill.time(s, s * s) for s in shapes)
    assert modelled == pytest.approx(sum(measured), rel=0.02)
    err = doc["fit_error"]["prefill"]
    assert err["total_ratio"] == pytest.approx(1.0, abs=0.02)
    # The spread the simulator's --noise takes: log(1.8) on a fifth of the steps.
    assert 0.15 < err["log_sd"] < 0.35
