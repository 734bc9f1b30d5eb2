"""A profile refitted on the steps an engine ran under load (``kairos profile --from-steps``).

``kairos profile`` probes a quiet engine one request (or one batch) at a time. A served
engine shares its machine with API servers, the proxy and the client, and steps under load
take longer: on the project's 2-core VM the Kairos plugins' online correction put decode
steps at 1.1 to 1.8 times the probed profile, and the simulator driven by that profile said
100% attainment where the real pair reached 72 to 77% (docs/vllm.md). The Kairos vLLM
scheduler plugins log every step they time (``{"role", "step": [shape], "seconds"}``, shape
``[sum tokens, sum of squares]`` for prefill and ``[batch size, KV tokens]`` for decode);
refitting the step models on those gives the simulator the engine as it ran. The KV
hand-off and the engine's limits are kept from the base profile.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kairos.profiling.build import fit_decode_columns, fit_prefill_columns

# Fewer samples than this for a role keep the base profile's model for it.
MIN_SAMPLES = 10


@dataclass(frozen=True, slots=True)
class StepSamples:
    """Timed steps by role: rows of (shape[0], shape[1], seconds)."""

    prefill: np.ndarray
    decode: np.ndarray


def read_steps(paths: Iterable[Path]) -> StepSamples:
    """The step records of scheduler logs; other records (decisions) are skipped."""
    rows: dict[str, list[tuple[float, float, float]]] = {"prefill": [], "decode": []}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON line ({e.msg})") from None
                if "step" not in rec:
                    continue
                role, shape, seconds = rec.get("role"), rec["step"], rec.get("seconds")
                if role not in rows or not isinstance(shape, list) or len(shape) != 2:
                    raise ValueError(f"{path}:{n}: a step record needs a role and a 2-item shape")
                if not isinstance(seconds, int | float) or not seconds > 0:
                    raise ValueError(f"{path}:{n}: step seconds must be > 0, got {seconds!r}")
                rows[role].append((float(shape[0]), float(shape[1]), float(seconds)))
    return StepSamples(*(np.array(rows[k], dtype=float).reshape(-1, 3) for k in rows))


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
        coef, err = fit(rows[:, 0], rows[:, 1], rows[:, 2])
        err["what"] = f"{what} as the engine ran them under load (kairos profile --from-steps)"
        err["median_seconds"] = round(float(np.median(rows[:, 2])), 6)
        doc[role]["coefficients"] = coef
        fit_error[role] = err
        refitted.append(role)
    if not refitted:
        raise ValueError(
            f"fewer than {MIN_SAMPLES} timed steps for either role ({len(samples.prefill)} "
            f"prefill, {len(samples.decode)} decode): were the logs written by the Kairos "
            "scheduler plugins (kairos serve --engine vllm --sched-log-dir)?"
        )
    doc["description"] = f"{doc.get('description', '')}; {' and '.join(refitted)} refitted in situ"
    doc.setdefault("source", {})["steps_fitted_by"] = source
    return doc
