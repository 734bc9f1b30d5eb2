"""Prefill policies; each module registers itself."""

from kairos.core.policies.prefill import fcfs as fcfs

__all__ = ["fcfs"]
