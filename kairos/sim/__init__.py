"""Trace-driven discrete-event simulator of a P/D-disaggregated cluster."""

from kairos.sim.config import ClusterConfig
from kairos.sim.run import SimResult, simulate

__all__ = ["ClusterConfig", "SimResult", "simulate"]
