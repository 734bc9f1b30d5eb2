"""Figures of one run: TTFT/TPOT CDFs against the SLO, and SLO attainment over the run.

Built on ``matplotlib.figure.Figure`` directly rather than pyplot: no global figure state and no
GUI backend, so plotting works headless and from threads (rendering goes through Agg).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kairos.core.record import RequestRecord

LATENCY_FILE = "latency_cdf.png"
ATTAINMENT_FILE = "attainment.png"


def write_plots(out_dir: Path, records: Sequence[RequestRecord], title: str) -> list[Path]:
    """Both figures into ``out_dir``; returns their paths. Needs matplotlib (the plot extra)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / LATENCY_FILE, out_dir / ATTAINMENT_FILE]
    _latency_cdfs(records, title, paths[0])
    _attainment_over_time(records, title, paths[1])
    return paths


def _latency_cdfs(records: Sequence[RequestRecord], title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    done = [r for r in records if r.finished]
    panels = (
        ("TTFT", [r.ttft for r in done], [r.ttft_slo for r in done]),
        # Single-token requests have no TPOT to speak of (metrics leaves them out too).
        ("TPOT", [r.tpot for r in done if r.output_tokens > 1], [r.tpot_slo for r in done]),
    )
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, (name, values, slos) in zip(fig.subplots(1, 2), panels, strict=True):
        ms = np.sort(np.array([v for v in values if v is not None], dtype=np.float64)) * 1e3
        if len(ms):
            ax.step(ms, np.arange(1, len(ms) + 1) / len(ms), where="post", label=name)
        # The SLO may differ per request in general; one line per distinct value.
        for slo in sorted(set(slos)):
            ax.axvline(slo * 1e3, color="tab:red", linestyle="--", label=f"SLO {slo * 1e3:g} ms")
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("fraction of finished requests")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)


def _attainment_over_time(records: Sequence[RequestRecord], title: str, path: Path) -> None:
    """Attainment of requests grouped by arrival time, in equal-width windows.

    Every request counts, rejected and failed ones as misses, as in the summary: a dip shows
    when during the run the server fell behind (a burst in the trace, or a growing queue).
    """
    from matplotlib.figure import Figure

    arrivals = np.array([r.arrival for r in records], dtype=np.float64)
    # About 20 requests per window, 1 to 50 windows: fewer is noise, more is unreadable.
    bins = int(np.clip(len(records) // 20, 1, 50))
    edges = np.linspace(0.0, max(float(arrivals.max(initial=0.0)), 1e-9), bins + 1)
    which = np.clip(np.searchsorted(edges, arrivals, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    # The load per window behind the curves, so a dip can be matched to a burst.
    load = ax.twinx()
    load.stairs(counts / (edges[1] - edges[0]), edges, fill=True, color="0.9", label="arrivals")
    load.set_ylabel("arrivals (req/s)")
    load.set_ylim(0, 3 * max(1, counts.max()) / (edges[1] - edges[0]))  # the bottom third
    ax.set_zorder(load.get_zorder() + 1)
    ax.patch.set_visible(False)
    for label, met, style in (
        ("TTFT", [r.ttft_met for r in records], {"color": "tab:blue"}),
        ("TPOT", [r.tpot_met for r in records], {"color": "tab:orange"}),
        # Last and thickest: the headline, drawn over the TTFT or TPOT curve it often equals.
        ("joint", [r.slo_met for r in records], {"color": "black", "linewidth": 2}),
    ):
        hits = np.bincount(which, weights=np.array(met, dtype=np.float64), minlength=bins)
        # Empty windows (a lull in the trace) are gaps, not 0% attainment.
        with np.errstate(invalid="ignore", divide="ignore"):
            ax.stairs(np.where(counts > 0, hits / counts, np.nan), edges, label=label, **style)
    ax.set_xlabel("arrival time (s)")
    ax.set_ylabel("SLO attainment")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    width = edges[1] - edges[0]
    fig.suptitle(f"{title}: SLO attainment of the requests arriving in each {width:.3g} s window")
    fig.savefig(path, dpi=120)
