"""The link a decode instance pulls KV caches over: one transfer at a time, FIFO."""

from __future__ import annotations

from kairos.core.latency.kv_transfer import KVTransferModel


class KVLink:
    __slots__ = ("busy_until", "bytes_moved", "model", "transfers")

    def __init__(self, model: KVTransferModel) -> None:
        self.model = model
        self.busy_until = 0.0
        self.transfers = 0
        self.bytes_moved = 0

    def schedule(self, now: float, tokens: int) -> float:
        """Queue a transfer of ``tokens`` tokens' KV; returns when it completes."""
        start = self.busy_until if self.busy_until > now else now
        self.busy_until = start + self.model.time(tokens)
        self.transfers += 1
        self.bytes_moved += tokens * self.model.bytes_per_token
        return self.busy_until
