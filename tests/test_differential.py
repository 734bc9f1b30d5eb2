"""The differential test: one trace slice through ``kairos serve`` (emulated) + ``kairos bench``
and through ``kairos sim``, compared (benchmarks/differential.py does the work and prints the
same figures for a longer slice).

2 prefill + 2 decode instances, Kairos policies on both sides, 80 Azure-conv requests at 5x
their real rate, with SLOs under which attainment means something (TTFT 50 ms, TPOT 10 ms:
about 9 in 10 requests meet both in the simulator, the rest miss their TTFT).

A run during which other processes took more than half a core is repeated once; if that one
is disturbed too, the timing bounds are skipped (its timings would measure the other
processes: benchmarks/differential.py, ``ForeignLoad``) and only the checks that do not
depend on timing are made.

What is asserted, and why each bound:
- Every request finishes.
- Placements: every decode placement, on each side, is what the policy returns for the
  inputs that side recorded (``placement_inputs`` of every decode instance, replayed
  offline), and one that read the same inputs on both sides is decided the same way: so
  each difference is a difference of inputs. Inputs differ through timing (a decode step, a
  finish or a KV landing falls between the two runtimes' moments of placement), and one such
  difference changes the state every later placement reads, so an exact match of all of
  them is not a property a real-time server can promise. At least half must match: a coarse
  bound (80, 80 and 63 of 80 in three runs here with the control plane modelled, 76, 75 and
  48 before; it depends on how early the first race comes) that only catches views which
  differ from the start.
- Joint attainment within 2 points (the issue's bound; 2 points of 80 requests is one).
- Median TTFT within 5% (the issue's bound) of the simulator's, the simulator modelling
  the server's control plane (``kairos.sim.ControlPlane``: the HTTP edge, the hops to and
  from the prefill workers and the first token's way out, each leg the median this run
  measured; 1.6-1.8 ms per request on the two cores this suite runs on, 15-16% of the
  11 ms median of this slice, which the simulator without them misses by). Three runs:
  1.2%, 0.6%, 0.2%. The legs are fixed costs per message; the queueing they cause under
  load (an instance idles a dispatch and a report between batches) is the simulator's to
  get right, and it fails when it does not.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from kairos.core.slo import SLO
from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow

REQUESTS = 80
RATE_SCALE = 5.0
SLO_ = SLO(0.05, 0.01)
MIN_PLACEMENTS_EQUAL = 0.5


def load_differential() -> ModuleType:
    return load("differential")


def test_sim_and_serve_agree(tmp_path: Path) -> None:
    diff = load_differential()
    trace = diff.workload(REQUESTS, RATE_SCALE, 256)
    for attempt in range(2):
        outcome = diff.compare(trace, SLO_, 2, "kairos", "kairos", tmp_path / str(attempt))
        if not outcome.disturbed:
            break
    report = outcome.report()
    print(report)  # shown when the test fails

    # Whatever the machine's load: every request served, and every decode placement on both
    # sides is what the policy decides on the inputs that side recorded, so each placement
    # that differs differs because its inputs did.
    assert outcome.statuses == {"finished": REQUESTS}, report
    p = outcome.placements
    assert p.replayed == REQUESTS, report
    assert p.reproduced_sim == p.reproduced_serve == p.replayed, report
    assert p.decode_same_inputs == 0 and p.same_inputs_same_decision == p.same_inputs, report
    if outcome.disturbed:
        # Timings taken while other processes held the cores measure those processes.
        pytest.skip(
            f"timing bounds not checked: other processes used {outcome.foreign_load:.2f} cores"
        )
    assert p.equal >= MIN_PLACEMENTS_EQUAL * p.total, report
    # Informative SLOs: neither side meets every request, neither misses most.
    assert 0.6 <= outcome.joint_sim <= 0.97, report
    assert abs(outcome.joint_diff) <= diff.MAX_JOINT_DIFF, report
    assert outcome.ttft_diff < diff.MAX_TTFT_DIFF, report
