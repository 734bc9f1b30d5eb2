"""Shared fixtures: a small, hand-made profile so tests do not depend on fitted data."""

from __future__ import annotations

import pytest

from kairos.core.latency import DecodeModel, KVTransferModel, ModelSpec, PrefillModel, Profile


def make_profile(*, kv_capacity_tokens: int = 200_000, max_decode_batch_size: int = 256) -> Profile:
    model = ModelSpec("test-model", layers=32, kv_heads=8, head_dim=128)
    return Profile(
        name="test",
        description="hand-made profile for tests",
        model=model,
        gpu="test-gpu",
        num_gpus=1,
        kv_capacity_tokens=kv_capacity_tokens,
        prefill=PrefillModel(c0=0.01, c1=6e-5, c2=2e-10),
        decode=DecodeModel(d0=0.008, d1=5e-5, d2=4e-8),
        kv_transfer=KVTransferModel(0.001, model.kv_bytes_per_token, 25e9),
        max_prefill_batch_tokens=8192,
        max_decode_batch_size=max_decode_batch_size,
        max_context_tokens=32_768,
    )


@pytest.fixture
def profile() -> Profile:
    return make_profile()
