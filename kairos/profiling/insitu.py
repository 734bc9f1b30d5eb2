"""A profile refitted on the steps an engine ran under load (``kairos profile --from-steps``).

``kairos profile`` probes a quiet engine one request (or one batch) at a time. A served
engine shares its machine with API servers, the proxy and the client, and steps under load
take longer: on the project's 2-core VM the Kairos plugins' online correction put decode
steps at 1.1 to 1.8 times the probed profile, and the simulator driven by that profile said
100% attainment where the real pair reached 72 to 77% (docs/vllm.md). The Kairos vLLM
scheduler plugins log every step they time (``{"role", "step": [shape], "seconds"}``, shape
``[sum tokens, sum of squares]`` for prefill and ``[batch size, KV tokens]`` for decode);
refitting the step models on those gives the simulator the engine as it ran. The plugins
do not time a decode step that admits a request (vLLM's P/D loads its KV and recomputes the
prompt's last partial block in it), but the gap between the timed steps around it is that
step: less the decode model's step, summed and divided by the requests admitted, it is the
profile's ``decode.join_seconds`` (``Profile.decode_join``), which the simulator adds to the
step a request joins at. On runs/vllm-exp-300b it was 125 ms (219 ms with 128-token KV
blocks, when more of each prompt was recomputed). The KV hand-off and the engine's limits are
kept from the base profile.

The step models are fitted on absolute error here (relative error for a probed grid, whose
steps span three orders of magnitude): a queue or a TPOT is a sum of steps, and under load
the steps are right-skewed (some run beside the other engine's, or the proxy's). On
runs/vllm-exp-300e's prefill steps the relative fit's total was 8% short of the measured one,
and the simulator's mean TTFT 19% (vLLM's pair) and 33% (Kairos's) short of the run's; fitted
on absolute error, 7% and 16% (docs/vllm.md). What remains is the steps' spread: a queue
waits longer behind variable steps than behind their mean (Pollaczek-Khinchine), so the refit
reports it as ``fit_error.<role>.log_sd``, the sigma to give ``kairos sim --noise``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kairos.core.latency.decode import DecodeModel
from kairos.profiling.build import fit_decode_columns, fit_prefill_columns

# Fewer samples than this for a role keep the base profile's model for it.
MIN_SAMPLES = 10
# A gap longer than this between two timed decode steps is idle time, not a step.
MAX_JOIN_GAP = 5.0


@dataclass(frozen=True, slots=True)
class StepSamples:
    """Timed steps by role: rows of (shape[0], shape[1], seconds).

    ``joins`` has a row (gap seconds, batch, KV tokens, requests admitted) for each pair of
    consecutive timed decode steps with admissions between them. The plugins do not time
    the step that admits (it loads KV and recomputes a prompt tail), but the gap between its
    neighbours is that step, and the batch after it still holds someone who ran before it
    (so the gap is not idle time).
    """

    prefill: np.ndarray
    decode: np.ndarray
    joins: np.ndarray


def read_steps(paths: Iterable[Path]) -> StepSamples:
    """The step records of scheduler logs, and the decode admissions between them."""
    rows: dict[str, list[tuple[float, float, float]]] = {"prefill": [], "decode": []}
    joins: list[tuple[float, float, float, float]] = []
    for path in paths:
        last_end: float | None = None  # when the previous timed decode step of this log ended
        admitted = 0  # requests the decode policy admitted since
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON line ({e.msg})") from None
                if "step" not in rec:
                    if rec.get("role") == "decode" and isinstance(rec.get("admit"), list):
                        admitted += len(rec["admit"])
                    continue
                role, shape, seconds = rec.get("role"), rec["step"], rec.get("seconds")
                if role not in rows or not isinstance(shape, list) or len(shape) != 2:
                    raise ValueError(f"{path}:{n}: a step record needs a role and a 2-item shape")
                if not isinstance(seconds, int | float) or not seconds > 0:
                    raise ValueError(f"{path}:{n}: step seconds must be > 0, got {seconds!r}")
                batch, kv = float(shape[0]), float(shape[1])
                rows[role].append((batch, kv, float(seconds)))
                end = rec.get("t")
                if role != "decode" or not isinstance(end, int | float):
                    continue
                if last_end is not None and admitted and batch > admitted:
                    gap = end - seconds - last_end
                    if 0.0 < gap < MAX_JOIN_GAP:
                        joins.append((gap, batch, kv, float(admitted)))
                last_end, admitted = float(end), 0
    prefill, decode = (np.array(rows[k], dtype=float).reshape(-1, 3) for k in rows)
    return StepSamples(prefill, decode, np.array(joins, dtype=float).reshape(-1, 4))


def refit(base: dict[str, Any], samples: StepSamples, *, source: str) -> dict[str, Any]:
    """``base`` (a profile document) with its step models refitted on ``samples``."""
    doc = copy.deepcopy(base)
    fit_error = doc.setdefault("fit_error", {})
    refitted = []
    for role, rows, fit, what in (
        ("prefill", samples.prefill, fit_prefill_columns, "P-instance prefill steps"),
        ("decode", samples.decode, fit_decode_columns, "D-instance decode steps"),
    ):
        if len(rows) < MIN_SAMPLES:
            continue
        # Absolute error: queues and TPOTs add step times up, and the relative fit's total
        # fell 8% short of the measured one on runs/vllm-exp-300e's prefill steps. The fit
        # reports the steps' spread around the model too (log_sd, for kairos sim --noise).
        coef, err = fit(rows[:, 0], rows[:, 1], rows[:, 2], absolute=True)
        err["what"] = f"{what} as the engine ran them under load (kairos profile --from-steps)"
        err["median_seconds"] = round(float(np.median(rows[:, 2])), 6)
        doc[role]["coefficients"] = coef
        fit_error[role] = err
        refitted.append(role)
    if len(samples.joins) >= MIN_SAMPLES:
        decode = DecodeModel(**doc["decode"]["coefficients"])
        gap, batch, kv, admitted = samples.joins.T
        # The admitting step is a decode step of the batch plus the newcomers' KV load.
        stall = gap - decode.step_time(batch, kv)
        # The mean stall per request admitted (total over total), not the median: every
        # running request waits through each stall, so its TPOT carries their sum, and the
        # stalls are right-skewed (runs/vllm-exp-300b: median 88 ms, mean 125 ms).
        join = max(0.0, float(stall.sum() / admitted.sum()))
        per_join = stall / admitted
        doc["decode"]["join_seconds"] = round(join, 6)
        fit_error["decode_join"] = {
            "what": "seconds a decode step took longer per request joining at it (the gap "
            "between the timed steps around it, less the decode model's step): total stall "
            "over requests admitted",
            "n": len(per_join),
            "median_seconds": round(float(np.median(per_join)), 6),
            "p10_seconds": round(float(np.percentile(per_join, 10)), 6),
            "p90_seconds": round(float(np.percentile(per_join, 90)), 6),
        }
        refitted.append("decode join")
    if not refitted:
        raise ValueError(
            f"fewer than {MIN_SAMPLES} timed steps for either role ({len(samples.prefill)} "
            f"prefill, {len(samples.decode)} decode): were the logs written by the Kairos "
            "scheduler plugins (kairos serve --engine vllm --sched-log-dir)?"
        )
    doc["description"] = f"{doc.get('description', '')}; {' and '.join(refitted)} refitted in situ"
    doc.setdefault("source", {})["steps_fitted_by"] = source
    return doc
