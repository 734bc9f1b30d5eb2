"""Run results on disk (``summary.json``, ``requests.jsonl``) and on the terminal (rich tables).

The numbers come from :func:`kairos.core.metrics.summarize`; this module only writes and shows
them, so the simulator, the server benchmark and the CLI report a run the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kairos.core.metrics import PERCENTILES
from kairos.core.record import RequestRecord

SUMMARY_FILE = "summary.json"
REQUESTS_FILE = "requests.jsonl"

_LATENCIES = (("TTFT", "ttft"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2E", "e2el"))
_ATTAINMENT = (
    ("joint", "joint_attainment"),
    ("TTFT", "ttft_attainment"),
    ("TPOT", "tpot_attainment"),
)


def write_run(out_dir: Path, summary: Mapping[str, Any], records: Sequence[RequestRecord]) -> None:
    """Write ``summary.json`` and ``requests.jsonl`` (one row per request, in id order).

    ``allow_nan=False`` makes a NaN that slipped into a summary fail here, loudly, instead of
    producing a file that strict JSON readers (jq, browsers, pandas with some engines) reject.
    Sorted keys keep files diffable between runs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2, sort_keys=True, allow_nan=False)
    (out_dir / SUMMARY_FILE).write_text(text + "\n", encoding="utf-8")
    with (out_dir / REQUESTS_FILE).open("w", encoding="utf-8") as f:
        for record in sorted(records, key=lambda r: r.id):
            f.write(json.dumps(record.to_json(), allow_nan=False) + "\n")


def print_summary(summary: Mapping[str, Any], title: str, console: Console | None = None) -> None:
    """One run: attainment, latency distributions, throughput, goodput and predictor MAPE."""
    console = console or Console()
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("metric")
    for column in ("mean", *(f"p{p}" for p in PERCENTILES)):
        table.add_column(column, justify="right")
    for label, key in _LATENCIES:
        fields = [f"mean_{key}_ms", *(f"p{p}_{key}_ms" for p in PERCENTILES)]
        table.add_row(f"{label} (ms)", *(_fmt(summary.get(f)) for f in fields))

    facts = Table.grid(padding=(0, 2))
    facts.add_column()
    facts.add_column(justify="right")
    for label, key in _ATTAINMENT:
        facts.add_row(f"{label} attainment", _pct(summary.get(key)))
    facts.add_row("requests (finished/rejected/failed)", _counts(summary))
    facts.add_row("request throughput (req/s)", _fmt(summary.get("request_throughput")))
    facts.add_row("output throughput (tok/s)", _fmt(summary.get("output_throughput")))
    facts.add_row("decode throughput (tok/s/inst)", _fmt(summary.get("decode_throughput")))
    facts.add_row("goodput (req/s)", _fmt(summary.get("goodput")))
    for key in sorted(k for k in summary if k.startswith("predictor_mape_")):
        facts.add_row(f"MAPE {key.removeprefix('predictor_mape_')}", _pct(summary[key]))
    console.print(table)
    console.print(facts)


def print_comparison(
    summaries: Mapping[str, Mapping[str, Any]], console: Console | None = None
) -> None:
    """Several runs side by side, one row each (e.g. keyed by ``"prefill+decode"`` policy)."""
    console = console or Console()
    table = Table(
        title="comparison",
        title_justify="left",
        caption="attainment %, p99 in ms, decode tok/s per instance",
        caption_justify="left",
    )
    table.add_column("run")
    for header in ("joint", "TTFT", "TPOT", "p99 TTFT", "p99 TPOT", "decode"):
        table.add_column(header, justify="right")
    # Bold the best joint attainment: the headline number a comparison is read for.
    joints = [s.get("joint_attainment") for s in summaries.values()]
    best = max((j for j in joints if j is not None), default=None)
    for name, s in summaries.items():
        joint = _pct(s.get("joint_attainment"))
        if best is not None and s.get("joint_attainment") == best and len(summaries) > 1:
            joint = f"[bold]{joint}[/bold]"
        table.add_row(
            name,
            joint,
            _pct(s.get("ttft_attainment")),
            _pct(s.get("tpot_attainment")),
            _fmt(s.get("p99_ttft_ms")),
            _fmt(s.get("p99_tpot_ms")),
            _fmt(s.get("decode_throughput")),
        )
    console.print(table)


def _counts(summary: Mapping[str, Any]) -> str:
    parts = (summary.get(k) for k in ("num_finished", "num_rejected", "num_failed"))
    return "/".join("-" if v is None else str(v) for v in parts)


def _fmt(value: Any) -> str:
    """A number to two decimals; '-' for a metric without samples (None)."""
    return "-" if value is None else f"{value:.2f}"


def _pct(fraction: Any) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"
