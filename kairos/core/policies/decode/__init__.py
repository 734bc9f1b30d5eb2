"""Decode policies; each module registers itself."""

from kairos.core.policies.decode import fcfs as fcfs
from kairos.core.policies.decode import kairos as kairos
from kairos.core.policies.decode import static_cap as static_cap

__all__ = ["fcfs", "kairos", "static_cap"]
