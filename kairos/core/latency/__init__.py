"""Latency models (spec section 3): prefill batch time, decode step time, KV transfer time."""

from kairos.core.latency.correction import OnlineCorrection
from kairos.core.latency.decode import DecodeModel
from kairos.core.latency.kv_transfer import KVTransferModel
from kairos.core.latency.prefill import PrefillModel
from kairos.core.latency.profile import ModelSpec, Profile

__all__ = [
    "DecodeModel",
    "KVTransferModel",
    "ModelSpec",
    "OnlineCorrection",
    "PrefillModel",
    "Profile",
]
