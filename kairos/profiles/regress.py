"""Least-squares fitting of the latency models' linear forms (numpy only).

Shared by the profile builder from kernel tables (``kairos.profiles.fit``) and the profiler of a
live engine (``kairos profile``).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

SEED = 20250101
HOLDOUT_FRACTION = 0.2


def nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact non-negative least squares for a few columns, by trying every active set.

    With three coefficients there are seven subsets; the best feasible unconstrained solution
    over them is the NNLS optimum. This keeps the fit on numpy alone (no scipy needed).
    """
    best: tuple[float, np.ndarray] | None = None
    cols = a.shape[1]
    for size in range(1, cols + 1):
        for subset in itertools.combinations(range(cols), size):
            x, *_ = np.linalg.lstsq(a[:, subset], y, rcond=None)
            if (x < 0).any():
                continue
            full = np.zeros(cols)
            full[list(subset)] = x
            residual = float(np.sum((a @ full - y) ** 2))
            if best is None or residual < best[0]:
                best = (residual, full)
    assert best is not None  # a single column always has a non-negative solution for y > 0
    return best[1]


def fit_relative(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Minimise sum(((x @ c - t) / t)^2) over c >= 0 on ~80% of rows; report both MAPEs."""
    return _fit(x, t, relative=True)


def fit_absolute(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Minimise sum((x @ c - t)^2) over c >= 0 on every row; the holdout MAPE is that of the
    same fit on ~80% of the rows, scored on the rest.

    With a free constant column the residuals sum to zero, so the model's total time over the
    rows is the measured total: what a queue or a TPOT integrates (hence every row, not 80%).
    The relative fit weights every row alike and, on right-skewed times, comes out short.
    Also reported: ``total_ratio`` (measured over modelled total) and ``log_sd``, the spread
    of the rows around the model (the sigma of ``kairos sim --noise``).
    """
    _, err = _fit(x, t, relative=False)  # for the holdout figures only
    coef = nnls(x, t)
    modelled = x @ coef
    ape = np.abs(modelled - t) / t
    err.update(
        mape_fit=round(float(ape.mean()), 4),
        max_ape_fit=round(float(ape.max()), 4),
        n_fit=len(t),
        objective="least squares on absolute error, coefficients >= 0, on every row",
        total_ratio=round(float(t.sum() / modelled.sum()), 4),
        log_sd=round(float(np.log(t / modelled).std()), 4),
    )
    return coef, err


def _fit(x: np.ndarray, t: np.ndarray, *, relative: bool) -> tuple[np.ndarray, dict[str, Any]]:
    order = np.random.default_rng(SEED).permutation(len(t))
    n_hold = round(HOLDOUT_FRACTION * len(t))
    hold, fit = np.sort(order[:n_hold]), np.sort(order[n_hold:])
    # Dividing each row by its target turns absolute into relative residuals.
    a, y = (x[fit] / t[fit, None], np.ones(len(fit))) if relative else (x[fit], t[fit])
    coef = nnls(a, y)
    ape = np.abs(x @ coef - t) / t
    return coef, {
        "mape_fit": round(float(ape[fit].mean()), 4),
        "mape_holdout": round(float(ape[hold].mean()), 4),
        "n_fit": len(fit),
        "n_holdout": len(hold),
        "max_ape_fit": round(float(ape[fit].max()), 4),
        "max_ape_holdout": round(float(ape[hold].max()), 4),
        "objective": f"least squares on {'relative' if relative else 'absolute'} error, "
        "coefficients >= 0",
    }
