"""Run one simulation and turn its timeline into request records."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from kairos.core.latency.profile import Profile
from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.core.record import FloatArray, RequestRecord
from kairos.core.request import Request, RequestState
from kairos.core.snapshot import DecodeView
from kairos.sim.cluster import Cluster
from kairos.sim.config import ClusterConfig
from kairos.sim.decode_instance import DecodeInstance
from kairos.sim.predictors import build_predictor


@dataclass
class SimResult:
    records: list[RequestRecord]
    end_time: float
    cpu_seconds: float
    predictor_mape: dict[str, float | None]
    stats: dict[str, object] = field(default_factory=dict)


def simulate(
    requests: Sequence[Request],
    true_output: Sequence[int],
    profile: Profile,
    config: ClusterConfig,
    *,
    prefill_policy: str = "fcfs",
    decode_policy: str = "fcfs",
    policy_options: dict[str, dict[str, object]] | None = None,
    predictor: str = "fitted",
    policy_profile: Profile | None = None,
    progress: Callable[[int], None] | None = None,
    on_event: Callable[[float, Cluster], None] | None = None,
    on_place: Callable[[Request, Sequence[DecodeView], int], None] | None = None,
) -> SimResult:
    """Simulate ``requests`` (sorted by arrival, ids 0..n-1) on a P/D cluster.

    ``predictor`` is one of :data:`kairos.sim.predictors.PREDICTORS`. ``policy_profile`` is
    the profile the policies predict with when it is not the truth (``profile``): a deployed
    scheduler starts from a profile probed on a quiet engine, and the engine under load runs
    otherwise. ``on_place(request, views, index)`` is called after every decode placement,
    with the views the policy read.
    """
    if policy_profile is not None and predictor == "oracle":
        raise ValueError("the oracle predicts with the truth: it takes no policy profile")
    for i, r in enumerate(requests):
        if r.id != i:
            raise ValueError(f"request ids must be 0..n-1 in order; position {i} has id {r.id}")
    options = policy_options or {}
    model = build_predictor(predictor, policy_profile or profile, config)
    cluster = Cluster(
        profile,
        config,
        PREFILL_POLICIES.create(prefill_policy, predictor=model, **options.get("prefill", {})),
        DECODE_POLICIES.create(decode_policy, predictor=model, **options.get("decode", {})),
        model,
        list(true_output),
    )
    cluster.on_place = on_place
    start = time.process_time()
    end = cluster.run(requests, progress, on_event)
    records = build_records(
        requests,
        cluster.decode,
        cluster.errors,
        first_token_on_decode=config.first_token_on_decode,
        delivery=config.control.delivery,
    )
    cpu = time.process_time() - start
    return SimResult(
        records=records,
        end_time=end,
        cpu_seconds=cpu,
        predictor_mape=model.mape(),
        stats={
            "prefill_batches": sum(p.batches for p in cluster.prefill),
            "prefill_busy_s": [p.busy_time for p in cluster.prefill],
            "decode_tokens": [d.tokens_out for d in cluster.decode],
            "kv_transfers": sum(d.link.transfers for d in cluster.decode),
            "preemptions": sum(r.preemptions for r in requests),
        },
    )


def step_end_times(inst: DecodeInstance) -> FloatArray:
    """End time of every step the instance ran; index k is step k (index 0 unused)."""
    if not inst.runs:
        return np.zeros(1)
    runs = np.array(inst.runs, dtype=np.float64)
    counts = runs[:, 1].astype(np.int64)
    total = int(counts.sum())
    # j = 1..n within each run (after the steps of the run already counted), run after run.
    offsets = np.repeat(np.cumsum(counts) - counts - runs[:, 5], counts)
    j = np.arange(1, total + 1, dtype=np.float64) - offsets
    t0 = np.repeat(runs[:, 2], counts)
    first = np.repeat(runs[:, 3], counts)
    inc = np.repeat(runs[:, 4], counts)
    out = np.empty(total + 1)
    out[0] = 0.0
    out[1:] = t0 + j * first + inc * j * (j - 1) * 0.5
    return out


_STATUS = {RequestState.FINISHED: "finished", RequestState.REJECTED: "rejected"}


def build_records(
    requests: Sequence[Request],
    decode: Sequence[DecodeInstance],
    errors: dict[int, str],
    *,
    first_token_on_decode: bool = False,
    delivery: float = 0.0,
) -> list[RequestRecord]:
    """One record per request; token times are gathered in one vectorised pass.

    With ``first_token_on_decode`` every token is a decode step's (``first_token`` only
    notes when the first of them came); otherwise prefill emitted the first token. The
    records hold the times the client reads the tokens: ``delivery`` after the instances
    emit them (``ControlPlane.delivery``)."""
    # One table of every time a token can have: first tokens, then each instance's step ends.
    prefill_first = [None if first_token_on_decode else r.first_token for r in requests]
    firsts = np.array([np.nan if t is None else t for t in prefill_first])
    tables = [firsts]
    bases = []
    base = len(firsts)
    for d in decode:
        ends = step_end_times(d)
        tables.append(ends)
        bases.append(base)
        base += len(ends)
    starts: list[int] = []
    counts: list[int] = []
    for r, first in zip(requests, prefill_first, strict=True):
        if first is not None:
            starts.append(r.id)
            counts.append(1)
        if r.decode_instance is not None:
            b = bases[r.decode_instance] + 1
            for lo, hi in decode[r.decode_instance].stints.get(r.id, ()):
                starts.append(b + lo)
                counts.append(hi - lo)
    count_arr = np.array(counts, dtype=np.int64)
    total = int(count_arr.sum())
    # Index i of the gathered array reads table[start_of_its_range + position_in_range].
    first_pos = np.cumsum(count_arr) - count_arr
    index = np.repeat(np.array(starts, dtype=np.int64) - first_pos, count_arr) + np.arange(total)
    flat = np.concatenate(tables)[index]
    if delivery:
        flat += delivery
    records = []
    pos = 0
    for r in requests:
        n = r.output_tokens  # the first token (if prefill emitted it) and decode's
        records.append(
            RequestRecord(
                id=r.id,
                arrival=r.arrival,
                input_tokens=r.prompt_tokens,
                ttft_slo=r.ttft_slo,
                tpot_slo=r.tpot_slo,
                status=_STATUS.get(r.state, "failed"),
                token_times=flat[pos : pos + n],
                prefill_instance=r.prefill_instance,
                decode_instance=r.decode_instance,
                preemptions=r.preemptions,
                prefill_start=r.prefill_start,
                predicted_prefill=r.predicted_prefill,
                error=errors.get(r.id),
            )
        )
        pos += n
    assert pos == total, "token count mismatch between requests and decode stints"
    return records
