"""Prefill policies; each module registers itself."""

from kairos.core.policies.prefill import edf as edf
from kairos.core.policies.prefill import edf_relegate as edf_relegate
from kairos.core.policies.prefill import fcfs as fcfs
from kairos.core.policies.prefill import kairos as kairos
from kairos.core.policies.prefill import sjf as sjf

__all__ = ["edf", "edf_relegate", "fcfs", "kairos", "sjf"]
