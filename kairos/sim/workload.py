"""Turn a trace (arrivals and lengths) into requests with SLOs, plus the hidden true outputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from kairos.core.request import Request
from kairos.core.slo import SLO


def build_requests(
    arrivals: npt.NDArray[np.float64],
    input_tokens: npt.NDArray[np.int64],
    output_tokens: npt.NDArray[np.int64],
    slos: SLO | Sequence[SLO],
) -> tuple[list[Request], list[int]]:
    """Requests with ids 0..n-1 in arrival order, and their true output lengths.

    The true lengths are returned apart from the requests on purpose: only the simulator's
    workers may read them, never a policy.
    """
    n = len(arrivals)
    per_request = not isinstance(slos, SLO)
    if per_request and len(slos) != n:  # type: ignore[arg-type]
        raise ValueError(f"got {len(slos)} SLOs for {n} requests")  # type: ignore[arg-type]
    requests = []
    for i, (a, l_in) in enumerate(zip(arrivals.tolist(), input_tokens.tolist(), strict=True)):
        slo = slos[i] if per_request else slos  # type: ignore[index]
        requests.append(Request(i, a, l_in, slo))  # type: ignore[arg-type]
    return requests, output_tokens.tolist()
