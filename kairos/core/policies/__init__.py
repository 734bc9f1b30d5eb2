"""Scheduling policies. Importing this package registers every built-in policy."""

from kairos.core.policies import decode as decode
from kairos.core.policies import prefill as prefill
from kairos.core.policies.base import (
    DECODE_POLICIES,
    PREFILL_POLICIES,
    DecodePolicy,
    PrefillPolicy,
)

__all__ = ["DECODE_POLICIES", "PREFILL_POLICIES", "DecodePolicy", "PrefillPolicy"]
