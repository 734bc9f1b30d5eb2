"""Decode policies; each module registers itself."""

from kairos.core.policies.decode import fcfs as fcfs

__all__ = ["fcfs"]
