"""Did the replay run the workload it meant to? Prompt and output lengths, and client lag.

A benchmark can look fine and still be wrong: prompts the server counted differently, a server
that stopped at EOS despite ``ignore_eos``, or a client that could not keep the schedule. These
fields go into ``summary.json`` next to the metrics and any problem is also warned about.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kairos.bench.replay import Replay
from kairos.traces import Trace

# A client that sends more than this late has changed the arrival process it was replaying.
LAG_WARN_SECONDS = 0.05


def check(replay: Replay, trace: Trace) -> dict[str, Any]:
    """Summary fields comparing what was sent and received with what the trace asked for."""
    # Finished requests only: usage comes in the last chunk, which others do not get to.
    finished = [i for i, o in enumerate(replay.outcomes) if o.status == "finished"]
    prompt = _mismatch(
        [replay.outcomes[i].prompt_tokens for i in finished],
        [int(trace.input_tokens[i]) for i in finished],
    )
    output = _mismatch(
        [len(replay.outcomes[i].token_times) for i in finished],
        [int(trace.output_tokens[i]) for i in finished],
    )
    lags_ms = replay.lags * 1e3
    return {
        "prompt_token_mismatches": prompt[0],
        "prompt_token_max_abs_diff": prompt[1],
        "prompt_tokens_unreported": prompt[2],
        "output_token_mismatches": output[0],
        "output_token_max_abs_diff": output[1],
        "send_lag_mean_ms": float(lags_ms.mean()) if len(lags_ms) else None,
        "send_lag_p50_ms": float(np.percentile(lags_ms, 50)) if len(lags_ms) else None,
        "send_lag_p99_ms": float(np.percentile(lags_ms, 99)) if len(lags_ms) else None,
        "send_lag_max_ms": float(lags_ms.max()) if len(lags_ms) else None,
    }


def _mismatch(got: list[int | None], wanted: list[int]) -> tuple[int, int, int]:
    """(count that differ, largest absolute difference, count the server did not report)."""
    diffs = [abs(g - w) for g, w in zip(got, wanted, strict=True) if g is not None]
    return sum(d > 0 for d in diffs), max(diffs, default=0), sum(g is None for g in got)


def warnings(checks: dict[str, Any]) -> list[str]:
    """One line per problem found by :func:`check`, for the terminal."""
    lines = []
    if checks["prompt_token_mismatches"]:
        lines.append(
            f"{checks['prompt_token_mismatches']} responses counted a prompt length other than "
            f"the trace's (max difference {checks['prompt_token_max_abs_diff']} tokens): the "
            "server's tokenizer does not count the prompt words one token each"
        )
    if checks["prompt_tokens_unreported"]:
        lines.append(
            f"{checks['prompt_tokens_unreported']} responses reported no usage.prompt_tokens; "
            "their prompt lengths are unchecked"
        )
    if checks["output_token_mismatches"]:
        lines.append(
            f"{checks['output_token_mismatches']} finished requests streamed an output length "
            f"other than the trace's (max difference {checks['output_token_max_abs_diff']}): "
            "does the server honour ignore_eos?"
        )
    lag = checks["send_lag_p99_ms"]
    if lag is not None and lag > LAG_WARN_SECONDS * 1e3:
        lines.append(
            f"p99 send lag is {lag:.0f} ms: the client fell behind the trace's schedule "
            "(a --max-concurrency cap, or too high a rate for one client process)"
        )
    return lines
