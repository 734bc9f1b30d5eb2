"""Shipped hardware profiles: they load, they are physically sane, and they are reproducible."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kairos.core.latency.profile import Profile
from kairos.profiles import DEFAULT_PROFILE, available_profiles, load_profile

REPO = Path(__file__).resolve().parents[1]
SHARED_PROFILES = REPO.parent / "shared" / "profiles"
SHIPPED = ["llama3-70b-h100-tp8", "llama3-8b-a100", "llama3-8b-h100"]  # fitted from kernels
# Measured by `kairos profile` on a running vLLM (docs/vllm.md); -pd adds the P/D pair's
# prefill and KV hand-off (`kairos profile --handoff`).
MEASURED = ["smollm2-135m-cpu", "smollm2-135m-cpu-pd"]
# Datasheet peaks per GPU (bf16 dense tensor FLOP/s, HBM bytes/s): no real step can beat them.
PEAK = {"H100-SXM-80GB": (989e12, 3.35e12), "A100-SXM-80GB": (312e12, 2.039e12)}
GIB = 2**30
# Held-out MAPE bound. The fits reach 1.7-4.3%; 10% still flags a broken fit or composition,
# while leaving room for refits on new data. Errors of this size are a constant-ish bias the
# online correction (kP, kD) absorbs within a few batches; the cross-checks between measurement
# sources differ by far more (17-60%), so a tighter bound would be false precision.
MAX_HOLDOUT_MAPE = 0.10
SCHEMA_KEYS = {
    "name", "description", "model", "hardware", "kv_capacity_tokens", "model_limits",
    "prefill", "decode", "kv_transfer", "source", "fit_error",
}  # fmt: skip


def raw(name: str) -> dict[str, Any]:
    text = resources.files("kairos.profiles").joinpath("data", f"{name}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.fixture(params=SHIPPED)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_available_profiles_lists_the_shipped_ones() -> None:
    assert available_profiles() == sorted(SHIPPED + MEASURED)
    assert DEFAULT_PROFILE in SHIPPED


def test_measured_cpu_profile_says_how_it_was_measured() -> None:
    profile = load_profile("smollm2-135m-cpu")
    assert profile.source["measured_by"].startswith("kairos profile --url")
    assert profile.fit_error["decode"]["mape_fit"] < 0.25
    assert profile.decode.step_time(16, 4000) > profile.decode.step_time(1, 100)
    assert profile.prefill.time_one(512) > profile.prefill.time_one(16)


def test_pd_profile_carries_a_fitted_hand_off() -> None:
    profile = load_profile("smollm2-135m-cpu-pd")
    assert profile.source["handoff_measured_by"].startswith("kairos profile --url")
    assert profile.fit_error["kv_transfer"]["fitted"] is True
    assert profile.fit_error["prefill"]["mape_fit"] < 0.10
    assert profile.kv_transfer.time(1024) > profile.kv_transfer.time(16) > 0
    assert profile.decode == load_profile("smollm2-135m-cpu").decode


def test_profile_loads_with_the_schema_layout(name: str) -> None:
    profile = load_profile(name)
    assert isinstance(profile, Profile)
    assert profile.name == name
    assert set(raw(name)) == SCHEMA_KEYS


def test_kv_capacity_fits_in_gpu_memory(name: str) -> None:
    p = load_profile(name)
    kv_bytes_per_gpu = p.kv_capacity_tokens * p.model.kv_bytes_per_token / p.num_gpus
    # The KV cache gets what weights and the reserve leave of 90% of 80 GiB: between a third
    # and all of that 90%.
    assert 0.3 * 80 * GIB < kv_bytes_per_gpu < 0.9 * 80 * GIB


def test_step_times_respect_hardware_floors(name: str) -> None:
    p = load_profile(name)
    params = raw(name)["source"]["kv_capacity"]["params"]
    flops, bandwidth = PEAK[p.gpu]
    # Prefill of 1k tokens does at least 2 FLOPs per parameter per token on the TP group.
    assert p.prefill.time_one(1024) > 2 * params * 1024 / (flops * p.num_gpus)
    # A decode step reads every weight at least once.
    assert p.decode.step_time(1, 1024) > 2 * params / (bandwidth * p.num_gpus)


def test_llama3_8b_h100_is_in_the_plausible_range() -> None:
    p = load_profile("llama3-8b-h100")
    # 16.4 TFLOP at 989 TFLOP/s is 16.6 ms, so the brief's suggested 30 ms lower bound would
    # demand under 56% of peak; the measured GEMMs run near 80% of peak.
    assert 0.017 < p.prefill.time_one(1024) < 0.2
    assert 0.005 < p.decode.step_time(1, 1024) < 0.03


def test_decode_is_monotone_in_batch_and_kv(name: str) -> None:
    d = load_profile(name).decode
    grid = np.array([[d.step_time(b, k) for k in (0, 1024, 65536, 400_000)] for b in (1, 64, 512)])
    assert (np.diff(grid, axis=0) >= 0).all()
    assert (np.diff(grid, axis=1) > 0).all()
    assert 0.005 < d.step_time(1, 1024) < 0.03


def test_prefill_is_monotone_in_tokens(name: str) -> None:
    p = load_profile(name).prefill
    times = [p.time_one(n) for n in (1, 128, 1024, 8192, 16384)]
    assert times == sorted(times)


def test_fit_error_is_recorded_and_small(name: str) -> None:
    errors = raw(name)["fit_error"]
    for predictor in ("prefill", "decode"):
        e = errors[predictor]
        assert {"mape_fit", "mape_holdout", "n_fit", "n_holdout"} <= set(e)
        assert e["n_holdout"] == pytest.approx(0.2 * (e["n_fit"] + e["n_holdout"]), abs=1)
        assert 0 <= e["mape_fit"] < MAX_HOLDOUT_MAPE
        assert 0 <= e["mape_holdout"] < MAX_HOLDOUT_MAPE


def test_source_names_data_licences_and_command(name: str) -> None:
    source = raw(name)["source"]
    assert source["fit_command"].startswith("python -m kairos.profiles.fit")
    assert any(f.startswith("aiconfigurator/") for f in source["data"])
    assert all(u["licence"] in {"Apache-2.0", "MIT"} for u in source["upstream"].values())


def test_unknown_profile_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match="llama3-8b-h100") as info:
        load_profile("no-such-profile")
    assert "no-such-profile" in str(info.value)


def test_missing_profile_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_profile(str(tmp_path / "absent.json"))


def test_profile_loads_from_a_path(tmp_path: Path) -> None:
    data = raw(DEFAULT_PROFILE)
    data["name"] = "my-copy"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    assert load_profile(str(path)).name == "my-copy"


def test_nnls_is_exact_and_non_negative() -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("yaml")
    from kairos.profiles.regress import nnls

    a = np.array([[1.0, 1, 1], [1, 2, 4], [1, 3, 9], [1, 4, 16]])
    assert np.allclose(nnls(a, a @ np.array([2.0, 0.5, 0.1])), [2.0, 0.5, 0.1])
    # The unconstrained optimum has a negative slope; NNLS must clamp it to zero.
    clamped = nnls(a[:, :2], np.array([4.0, 3, 2, 1]))
    assert clamped[1] == 0 and clamped[0] == pytest.approx(2.5)


def test_interpolation_is_exact_on_the_shapes_it_assumes() -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("yaml")
    from kairos.profiles.tables import GemmTable, RaggedTable

    m, n, k = np.meshgrid([1, 64, 4096], [1024, 4096], [1024, 4096], indexing="ij")
    affine = 0.01 + 1e-9 * m * n * k  # milliseconds, affine in m * n * k
    gemm = GemmTable(m.ravel(), n.ravel(), k.ravel(), affine.ravel())
    assert gemm.time(2048, 2048, 3072) == pytest.approx((0.01 + 1e-9 * 2048**2 * 3072) * 1e-3)
    # Batch 4 was measured only up to length 512: longer lengths scale batch 2 by 4 / 2.
    attn = RaggedTable(np.array([2, 2, 4]), np.array([512, 4096, 512]), np.array([1.0, 8, 2]))
    assert attn.time(4, 4096) == pytest.approx(16e-3)


def test_refit_reproduces_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    if not (SHARED_PROFILES / "aiconfigurator").is_dir():
        pytest.skip(f"measured data not available at {SHARED_PROFILES} (only in the dev setup)")
    pytest.importorskip("pyarrow", reason="re-fitting needs the 'fit' extra")
    pytest.importorskip("yaml", reason="re-fitting needs the 'fit' extra")
    from kairos.profiles.fit import main

    assert main(["--shared-profiles", str(SHARED_PROFILES), "--out", str(tmp_path)]) == 0
    shipped = resources.files("kairos.profiles").joinpath("data")
    for profile in SHIPPED:
        fresh = (tmp_path / f"{profile}.json").read_bytes()
        assert fresh == shipped.joinpath(f"{profile}.json").read_bytes(), profile
