"""Kairos as vLLM's scheduler: ``--scheduler-cls kairos.integrations.vllm.scheduler.<Class>``.

* ``KairosPrefillScheduler`` (prefill instances): before each vLLM step the core prefill policy
  picks the batch from the waiting queue (urgency order, Moore-Hodgson, back-fill, guard);
  vLLM then sees only those requests, in that order, and schedules them with its own token
  budget, block allocation, chunking and KV connector. Requests the policy left out wait.
* ``KairosDecodeScheduler`` (decode instances): the core decode policy decides which waiting
  requests (KV received, or receivable) join the batch, under its step-time budget and KV
  headroom, and whom to preempt; vLLM runs every running request each step. Requests the
  policy did not admit are hidden from vLLM for that step.

Both subclass vLLM 0.32's ``AsyncScheduler`` and call ``super().schedule()``: the policy only
chooses *which* requests vLLM may consider, never *how* they run, so connectors, allocation
and vLLM's own preemption keep working. The version is pinned (``check_vllm_version``).

Configuration comes from the environment of the vLLM process (``kairos serve --engine vllm``
sets it): ``KAIROS_POLICY`` (a registered policy name), ``KAIROS_PROFILE`` (profile name or
JSON path for the predictor), ``KAIROS_TTFT_SLO`` / ``KAIROS_TPOT_SLO`` (defaults for requests
without ``vllm_xargs``), ``KAIROS_POLICY_OPTIONS`` (JSON object of policy options) and
``KAIROS_SCHED_LOG`` (optional JSON-lines file: one line per step that the policy shaped).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from typing import Any

from kairos.integrations.vllm import DEFAULT_VLLM_PROFILE, check_decode_policy, check_vllm_version

check_vllm_version()

from vllm.v1.core.sched.async_scheduler import AsyncScheduler  # noqa: E402
from vllm.v1.request import RequestStatus  # noqa: E402

from kairos.core.latency.predictor import Predictor  # noqa: E402
from kairos.core.policies import DECODE_POLICIES, PREFILL_POLICIES  # noqa: E402
from kairos.core.slo import SLO  # noqa: E402
from kairos.integrations.vllm.views import (  # noqa: E402
    DecodeQueue,
    DecodeState,
    PrefillState,
    RequestMirror,
)
from kairos.profiles import load_profile  # noqa: E402


def _env_config() -> dict[str, Any]:
    options = json.loads(os.environ.get("KAIROS_POLICY_OPTIONS", "{}") or "{}")
    if not isinstance(options, dict):
        raise ValueError("KAIROS_POLICY_OPTIONS must be a JSON object")
    return {
        "policy": os.environ.get("KAIROS_POLICY", "kairos"),
        "profile": os.environ.get("KAIROS_PROFILE", DEFAULT_VLLM_PROFILE),
        "slo": SLO(
            float(os.environ.get("KAIROS_TTFT_SLO", "5.0")),
            float(os.environ.get("KAIROS_TPOT_SLO", "0.2")),
        ),
        "options": options,
        "log": os.environ.get("KAIROS_SCHED_LOG") or None,
    }


class _KairosBase(AsyncScheduler):  # type: ignore[misc]
    role = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.policy.value != "fcfs":
            raise ValueError(
                f"Kairos's {self.role} scheduler orders the queue itself: start vLLM with "
                f"--scheduling-policy fcfs (got {self.policy.value})"
            )
        cfg = _env_config()
        self.kairos_predictor = Predictor.from_profile(load_profile(cfg["profile"]))
        self.kairos_mirror = RequestMirror(cfg["slo"])
        self.kairos_policy_name = cfg["policy"]
        self._kairos_log = open(cfg["log"], "a", encoding="utf-8") if cfg["log"] else None  # noqa: SIM115
        self._kairos_options = cfg["options"]
        # Online correction: (schedule time, raw prediction, shape) of steps in flight.
        self._kairos_inflight: dict[int, tuple[float, float, tuple[float, float]]] = {}
        self._kairos_last_update = 0.0

    # --- shared helpers -------------------------------------------------------------------
    def _kv_free_tokens(self) -> int:
        return int(self.kv_cache_manager.block_pool.get_num_free_blocks()) * self.block_size

    def _kv_capacity_tokens(self) -> int:
        return int(self.kv_cache_manager.block_pool.num_gpu_blocks) * self.block_size

    def _log(self, record: dict[str, Any]) -> None:
        if self._kairos_log is not None:
            self._kairos_log.write(json.dumps(record) + "\n")
            self._kairos_log.flush()

    def shutdown(self) -> None:
        super().shutdown()
        if self._kairos_log is not None:
            self._kairos_log.close()

    def _prune(self) -> None:
        if len(self.kairos_mirror) > len(self.requests) + 256:
            self.kairos_mirror.forget_all_but(self.requests)

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any) -> Any:
        now = time.time()
        entry = self._kairos_inflight.pop(id(scheduler_output), None)
        if entry is not None:
            scheduled_at, raw, shape = entry
            actual = now - max(scheduled_at, self._kairos_last_update)
            if raw > 0 and actual > 0:
                self._observe_step(actual, raw, shape)
                # The step as this engine ran it under load: `kairos profile --from-steps`
                # fits a profile on these.
                self._log({"t": now, "role": self.role, "step": list(shape), "seconds": actual})
        self._kairos_last_update = now
        return super().update_from_output(scheduler_output, model_runner_output)

    def _observe_step(self, actual: float, raw: float, shape: tuple[float, float]) -> None:
        raise NotImplementedError

    def _remember(self, output: Any, raw: float, shape: tuple[float, float]) -> None:
        if len(self._kairos_inflight) > 64:  # outputs vLLM never reported back
            self._kairos_inflight.clear()
        self._kairos_inflight[id(output)] = (time.time(), raw, shape)


class _PrefillTiming(_KairosBase):
    """The prefill role's step timing (and online correction), with or without a policy."""

    role = "prefill"

    def _schedule_and_measure(self, args: Any, kwargs: Any) -> Any:
        output = super().schedule(*args, **kwargs)
        s = s2 = 0
        for rid, n in output.num_scheduled_tokens.items():
            v = self.requests.get(rid)
            # vLLM has already advanced num_computed_tokens by the n scheduled tokens.
            if v is None or v.num_computed_tokens - n >= v.num_prompt_tokens:
                return output  # a step with decode work in it is no prefill sample
            s += n
            s2 += n * n
        if s:
            self._remember(output, self.kairos_predictor.prefill.time(s, s2), (s, s2))
        return output

    def _observe_step(self, actual: float, raw: float, shape: tuple[float, float]) -> None:
        self.kairos_predictor.observe_prefill(actual, shape[0], shape[1])


class KairosPrefillScheduler(_PrefillTiming):
    """Prefill role: the core prefill policy chooses the batch; vLLM runs it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kairos_policy = PREFILL_POLICIES.create(
            self.kairos_policy_name, predictor=self.kairos_predictor, **self._kairos_options
        )

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        queue = self.waiting
        if len(queue) < 2 or self.kv_holding_waiting:
            # Nothing to choose between (or vLLM must first drain requests holding blocks).
            return self._schedule_and_measure(args, kwargs)
        now = time.time()
        self._prune()
        mirror = self.kairos_mirror
        vreqs = list(queue)
        krs = sorted((mirror.get(v) for v in vreqs), key=lambda r: r.arrival)
        # The running prefills (chunked, partly done) take their share of the token budget.
        busy = sum(
            min(v.num_prompt_tokens - v.num_computed_tokens, self.max_num_scheduled_tokens)
            for v in self.running
            if v.num_computed_tokens < v.num_prompt_tokens
        )
        view = PrefillState(
            waiting=krs,
            max_batch_tokens=max(1, self.max_num_scheduled_tokens - busy),
            max_batch_requests=max(1, self.max_num_running_reqs - len(self.running)),
            kv_free_tokens=self._kv_free_tokens(),
        )
        decision = self.kairos_policy.schedule(view, now)
        rejected = {mirror.source(r).request_id for r in decision.reject}
        if rejected:
            self.finish_requests(rejected, RequestStatus.FINISHED_ABORTED)
        chosen = [mirror.source(r) for r in decision.batch]
        taken = {v.request_id for v in chosen} | rejected
        hidden = [v for v in vreqs if v.request_id not in taken]
        self._log(
            {
                "t": now,
                "role": self.role,
                "waiting": len(vreqs),
                "correction": round(self.kairos_predictor.prefill_correction.factor, 4),
                "batch": [v.request_id for v in chosen],
                "batch_prompt_tokens": [v.num_prompt_tokens for v in chosen],
                "arrival_order": [mirror.source(r).request_id for r in krs[: len(chosen)]],
            }
        )
        return self._run_with(chosen, hidden, args, kwargs)

    def _run_with(self, visible: list[Any], hidden: Iterable[Any], args: Any, kwargs: Any) -> Any:
        queue = self.waiting
        queue.clear()
        queue.extend(visible)
        try:
            return self._schedule_and_measure(args, kwargs)
        finally:
            # Whatever vLLM left (or put back by preemption) stays first, the rest follow.
            queue.extend(hidden)


class _DecodeTiming(_KairosBase):
    """The decode role's step timing (and online correction), with or without a policy."""

    role = "decode"

    def _schedule_and_measure(self, args: Any, kwargs: Any) -> Any:
        output = super().schedule(*args, **kwargs)
        batch = kv = 0
        for rid, n in output.num_scheduled_tokens.items():
            v = self.requests.get(rid)
            if v is None or n != 1:
                # A KV load or a recomputed prompt tail is in this step: not a decode sample.
                return output
            batch += 1
            kv += v.num_prompt_tokens + v.num_output_tokens
        if batch:
            self._remember(output, self.kairos_predictor.decode.step_time(batch, kv), (batch, kv))
        return output

    def _observe_step(self, actual: float, raw: float, shape: tuple[float, float]) -> None:
        self.kairos_predictor.observe_decode(actual, raw)


class KairosDecodeScheduler(_DecodeTiming):
    """Decode role: the core decode policy admits and preempts; vLLM runs the batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_decode_policy(self.kairos_policy_name)
        self.kairos_policy = DECODE_POLICIES.create(
            self.kairos_policy_name, predictor=self.kairos_predictor, **self._kairos_options
        )
        # Requests the policy admitted that have not started running (KV may be arriving).
        self._kairos_admitted: set[str] = set()
        self._kairos_queue = DecodeQueue(self.kairos_mirror)

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        now = time.time()
        self._prune()
        mirror = self.kairos_mirror
        admitted = self._kairos_admitted
        running_ids = {v.request_id for v in self.running}
        admitted &= set(self.requests) - running_ids
        # One pass over vLLM's queues: the candidates (neither admitted already nor with KV
        # still arriving), and the blocks they hold (an async KV pull allocates them).
        received = self.finished_recving_kv_req_ids
        candidates = []
        held = 0
        for queue in (self.kv_holding_waiting, self.waiting):
            for v in queue:
                if v.request_id in admitted:
                    continue
                remote = v.status == RequestStatus.WAITING_FOR_REMOTE_KVS
                if remote and v.request_id not in received:
                    continue  # loading
                candidates.append(v)
                if remote or v.num_computed_tokens > 0:
                    held += v.num_prompt_tokens + v.num_output_tokens
        waiting = self._kairos_queue.sync(candidates)
        # Refreshed every step, so a first token is dated by the step that emitted it.
        running = [mirror.get(v, self._kairos_last_update) for v in self.running]
        if not candidates:
            return self._schedule_and_measure(args, kwargs)
        view = DecodeState(
            running=running,
            waiting=waiting,
            transferring=len(admitted),
            kv_capacity_tokens=self._kv_capacity_tokens(),
            kv_free_tokens=self._kv_free_tokens() + held,
            max_batch_size=self.max_num_running_reqs,
        )
        decision = self.kairos_policy.schedule(view, now)
        victims = [mirror.source(r) for r in decision.preempt]
        if victims:
            gone = {v.request_id for v in victims}
            self.running = [v for v in self.running if v.request_id not in gone]
            for v in victims:
                self._preempt_request(v, time.monotonic())
        admit_ids = {mirror.source(r).request_id for r in decision.admit}
        admitted |= admit_ids
        hidden = [v for v in candidates if v.request_id not in admit_ids]
        self._log(
            {
                "t": now,
                "role": self.role,
                "running": len(running),
                "waiting": len(waiting),
                "correction": round(self.kairos_predictor.decode_correction.factor, 4),
                "admit": sorted(admit_ids),
                "preempt": len(victims),
                "held_back": len(hidden),
            }
        )
        return self._run_without(hidden, args, kwargs)

    def _run_without(self, hidden: list[Any], args: Any, kwargs: Any) -> Any:
        if not hidden:
            return self._schedule_and_measure(args, kwargs)
        gone = set(map(id, hidden))
        saved = []
        for queue in (self.kv_holding_waiting, self.waiting):
            keep = [v for v in queue if id(v) not in gone]
            saved.append((queue, [v for v in queue if id(v) in gone]))
            queue.clear()
            queue.extend(keep)
        try:
            return self._schedule_and_measure(args, kwargs)
        finally:
            for queue, back in saved:
                queue.extend(back)


class TimedPrefillScheduler(_PrefillTiming):
    """vLLM's own prefill scheduling, unchanged, with its steps timed and logged as the
    Kairos plugin's are: a baseline run then gives ``kairos profile --from-steps`` the engine
    as it ran in that run, instead of borrowing the Kairos run's."""

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        return self._schedule_and_measure(args, kwargs)


class TimedDecodeScheduler(_DecodeTiming):
    """vLLM's own decode scheduling, unchanged, with its steps timed and logged (see
    ``TimedPrefillScheduler``). The requests a step starts are logged as its admissions,
    as the Kairos plugin logs its policy's: ``--from-steps`` reads the stall of the
    (untimed) step they join at from them."""

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        output = self._schedule_and_measure(args, kwargs)
        joined = [new.req_id for new in output.scheduled_new_reqs]
        if joined:
            self._log({"t": time.time(), "role": self.role, "admit": joined})
        return output
