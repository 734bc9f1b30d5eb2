"""``kairos experiment``: the evaluation of spec section 8, written to docs/results.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kairos.experiments.workloads import WORKLOADS


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "experiment",
        help="run the rate/SLO sweeps, goodput search and ablation; write docs/results.md",
        description="Run every policy pair over rate and SLO sweeps on the bundled real traces "
        "and a seeded synthetic long-tail workload, "
        "search DistServe-style goodput, and write OUT/results.md with figures (needs "
        "matplotlib: pip install -e '.[plot]'). Uses every core.",
    )
    p.add_argument("--out", type=Path, default=Path("docs"), help="output directory (docs)")
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {', '.join(WORKLOADS)}",
    )
    p.add_argument("--instances", default="1,2", help="cluster sizes N (NPND), default 1,2")
    p.add_argument("--seeds", type=int, default=3, help="trace windows per point (default 3)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kairos.experiments.results import run_everything

    workloads = [w.strip() for w in args.workloads.split(",")]
    for w in workloads:
        if w not in WORKLOADS:
            raise ValueError(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    instances = [int(x) for x in args.instances.split(",")]
    command = (
        "kairos " + " ".join(sys.argv[1:])
        if sys.argv[1:2] == ["experiment"]
        else ("kairos experiment")
    )
    run_everything(args.out, workloads, instances, list(range(args.seeds)), command)
    return 0
