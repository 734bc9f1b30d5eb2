"""The trace-slice options ``kairos sim`` and ``kairos bench`` share, so both run one workload."""

from __future__ import annotations

import argparse
from typing import Any

from kairos.traces import Trace, load_trace, select


def add_length_options(w: Any) -> None:
    w.add_argument(
        "--length-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiply prompt and output lengths by X (e.g. 0.125 to fit a small CPU model)",
    )
    w.add_argument(
        "--max-input-tokens",
        type=int,
        metavar="N",
        help="cap prompt lengths at N (e.g. the model's context); never capped otherwise",
    )
    w.add_argument("--max-output-tokens", type=int, metavar="N", help="cap output lengths at N")
    w.add_argument(
        "--min-input-tokens",
        type=int,
        metavar="N",
        help="raise shorter prompts to N tokens (e.g. after --length-scale)",
    )


def trace_slice(args: argparse.Namespace) -> Trace:
    """The trace window, count, rate scale, then lengths scaled and capped (``select``)."""
    return select(
        load_trace(args.trace),
        start=args.start,
        duration=args.duration,
        num_requests=args.num_requests,
        rate_scale=args.rate_scale,
        length_scale=args.length_scale,
        max_input=args.max_input_tokens,
        max_output=args.max_output_tokens,
        min_input=args.min_input_tokens,
    )
