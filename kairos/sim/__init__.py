"""Trace-driven discrete-event simulator of a P/D-disaggregated cluster."""

from kairos.sim.config import ClusterConfig, ControlPlane
from kairos.sim.run import SimResult, simulate

__all__ = ["ClusterConfig", "ControlPlane", "SimResult", "simulate"]
