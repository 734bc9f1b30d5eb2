"""Scheduling cost: time per prefill decision with 1,000 queued requests, and per decode
decision with 256 running and 1,000 waiting. Target: under 1% of the predicted step time
being scheduled (about 200 microseconds or less).

    python benchmarks/policy_overhead.py [--repeat 200] [--rounds 5]

Decode is timed on the queues the simulator and the server keep, and through the vLLM
scheduler plugin's views (``kairos.integrations.vllm.views``, over stand-ins for vLLM's
requests, so vLLM need not be installed): mirroring vLLM's running and waiting requests into
the view is part of that decision's cost.

Each figure is the best of ``rounds`` rounds of ``repeat`` calls: on a shared machine the
minimum is the cost of the code, the rest is other work.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from kairos.core.decode_state import DecodeBook, RequestQueue
from kairos.core.latency.predictor import Predictor
from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES
from kairos.core.queue_columns import PREFILL_FIELDS
from kairos.core.request import Request
from kairos.core.slo import SLO
from kairos.core.static_views import StaticPrefillView
from kairos.integrations.vllm.views import (
    XARG_PREFILLED,
    XARG_TPOT,
    DecodeQueue,
    DecodeState,
    PlainSamplingParams,
    PlainVllmRequest,
    RequestMirror,
)
from kairos.profiles import DEFAULT_PROFILE, load_profile
from kairos.traces import load_trace


def per_call(fn, repeat: int, rounds: int) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    profile = load_profile(DEFAULT_PROFILE)
    pred = Predictor.from_profile(profile)
    trace = load_trace("azure-conv")
    rng = np.random.default_rng(0)
    idx = rng.choice(len(trace), 2256, replace=False)
    lengths = trace.input_tokens[idx].tolist()
    slo = SLO(0.5, 0.015)
    now = 10.0
    queued = [Request(i, now - rng.uniform(0, 1.0), lengths[i], slo) for i in range(1000)]
    queued.sort(key=lambda r: r.arrival)
    # The queue as the simulator keeps it (with columns), and as a plain list (the server's
    # proxy and vLLM's plugin: the policy builds the columns at each decision).
    kept = RequestQueue(PREFILL_FIELDS)
    for r in queued:
        kept.append(r, r.prompt_tokens)
    pviews = [(StaticPrefillView(kept), ""), (StaticPrefillView(queued), ", lists")]  # type: ignore[arg-type]
    step_p = pred.prefill_time(sum(lengths[:8]), sum(n * n for n in lengths[:8]))

    def decode_request(i: int) -> Request:
        r = Request(i, 0.0, lengths[i], slo)
        r.first_token = now - rng.uniform(0, 2.0)
        r.output_tokens = 1
        return r

    running = [decode_request(1000 + i) for i in range(256)]
    waiting = [decode_request(1256 + i) for i in range(1000)]

    def book(n_running: int) -> DecodeBook:
        """An instance as the simulator and the server keep one (the queue keeps columns)."""
        b = DecodeBook(0, kv_capacity_tokens=10**7, max_batch_size=512)
        for r in running[:n_running]:
            b.enqueue(r)
            b.admit(r)
            b.join(r)
        for r in waiting:
            b.enqueue(r)
        return b

    dview = book(256)

    print(f"profile {profile.name}; prefill: 1,000 queued; decode: 256 running, 1,000 waiting")
    for pview, label in pviews:
        for name in PREFILL_POLICIES.names():
            policy = PREFILL_POLICIES.create(name, predictor=pred)
            t = per_call(lambda p=policy, v=pview: p.schedule(v, now), args.repeat, args.rounds)
            print(
                f"prefill {name + label:32s} {t * 1e6:8.1f} us per decision "
                f"({100 * t / step_p:.2f}% of a {step_p * 1e3:.0f} ms batch)"
            )
    # 256 long-context requests spend the TPOT step budget, so Kairos only looks for a
    # reservation; 32 leave room for a burst of admissions (the other path).
    # Between them, the steady state of a loaded instance: room for a few more. The most
    # running requests with room for at least one (admissions fall as the batch grows).
    kairos = DECODE_POLICIES.create("kairos", predictor=pred)
    lo, hi = 32, 256
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if kairos.schedule(book(mid), now).admit else (lo, mid)
    small = book(32)
    cases = [(dview, "256 running"), (book(lo), f"{lo} running"), (small, "32 running")]

    def report(name: str, label: str, view: Any, admit: list[Request], t: float) -> None:
        # The step this decision schedules: the running batch with what it admits.
        step = pred.decode_step_time(
            len(view.running) + len(admit), view.kv_tokens + sum(r.context_tokens for r in admit)
        )
        print(
            f"decode  {name + ', ' + label:36s} {t * 1e6:8.1f} us per decision "
            f"({100 * t / step:.2f}% of a {step * 1e3:.1f} ms step; admits {len(admit)})"
        )

    for view, label in cases:
        for name in DECODE_POLICIES.names():
            policy = DECODE_POLICIES.create(name, predictor=pred)
            t = per_call(lambda p=policy, v=view: p.schedule(v, now), args.repeat, args.rounds)
            admit = policy.schedule(view, now).admit
            report(name, label, view, admit, t)

    # The same 32-running instance inside vLLM (``KairosDecodeScheduler``): each decision
    # refreshes the running requests' mirrors, syncs the kept waiting queue with vLLM's
    # candidates (unchanged here, the steady state between arrivals) and builds the view.
    def stand_in(r: Request) -> PlainVllmRequest:
        xargs: dict[str, Any] = {XARG_TPOT: r.tpot_slo, XARG_PREFILLED: r.decode_anchor}
        return PlainVllmRequest(
            f"v{r.id}",
            r.prompt_tokens,
            num_output_tokens=r.output_tokens,
            sampling_params=PlainSamplingParams(xargs),
        )

    vrunning = [stand_in(r) for r in small.running]
    vwaiting = [stand_in(r) for r in waiting]
    kv_free = 10**7 - small.kv_tokens
    for name in DECODE_POLICIES.names():
        policy = DECODE_POLICIES.create(name, predictor=pred)
        mirror = RequestMirror(slo)
        for v, r in zip(vrunning, small.running, strict=True):  # first tokens as in the book
            mirror.get(v).first_token = r.first_token
        queue = DecodeQueue(mirror)

        def plugin_view(m: RequestMirror = mirror, q: DecodeQueue = queue) -> DecodeState:
            return DecodeState(
                running=[m.get(v, now) for v in vrunning],
                waiting=q.sync(vwaiting),
                transferring=0,
                kv_capacity_tokens=10**7,
                kv_free_tokens=kv_free,
                max_batch_size=512,
            )

        t = per_call(lambda p=policy, f=plugin_view: p.schedule(f(), now), args.repeat, args.rounds)
        view = plugin_view()
        report(name, "32 running, vLLM plugin", view, policy.schedule(view, now).admit, t)


if __name__ == "__main__":
    main()
