"""Pure core: requests, SLOs, clocks, latency models and scheduling policies (no I/O)."""
