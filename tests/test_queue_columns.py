"""A queue's numpy columns stay in step with the queue through any appends and removals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.core.decode_state import RequestQueue
from kairos.core.queue_columns import DECODE_FIELDS, Columns, columns_of
from kairos.core.request import Request
from kairos.core.slo import SLO


def waiting_request(i: int, prompt: int, out: int, tpot: float) -> Request:
    r = Request(i, arrival=0.1 * i, prompt_tokens=prompt, slo=SLO(0.5 + 0.01 * i, tpot))
    r.prefill_end = 1.0 + 0.01 * i
    r.output_tokens = out
    if out:
        r.first_token = r.prefill_end
    return r


# An op: (kind, request index): 0 append, 1 append at the front, 2 discard.
ops = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 60)), max_size=300)


@settings(max_examples=150, deadline=None)
@given(ops=ops)
def test_columns_follow_the_queue(ops):
    queue = RequestQueue(DECODE_FIELDS)
    pool = {i: waiting_request(i, 10 + 7 * i, i % 3, 0.01 + 0.001 * i) for i in range(61)}
    for kind, i in ops:
        r = pool[i]
        if kind == 2:
            queue.discard(i)
        elif r not in queue:
            (queue.append if kind == 0 else queue.append_front)(r, r.prompt_tokens)
    cols = queue.columns
    assert cols is not None and cols.n == len(queue)
    # Ascending seq is the queue's iteration order.
    by_seq = [cols.requests[i] for i in np.argsort(cols["seq"])]
    assert by_seq == list(queue)
    # Every row holds its own request's numbers: the same as columns built from a list.
    built = Columns.of(DECODE_FIELDS, list(queue))
    rows = {r.id: i for i, r in enumerate(cols.requests)}
    order = [rows[r.id] for r in built.requests]
    for name in DECODE_FIELDS:
        assert np.array_equal(cols[name][order], built[name]), name


def test_columns_of_reads_a_list_and_reuses_a_queue_s_own():
    reqs = [waiting_request(i, 100 + i, 1, 0.02) for i in range(5)]
    built = columns_of(reqs, DECODE_FIELDS)
    assert built.requests == reqs and list(built["seq"]) == [0, 1, 2, 3, 4]
    assert list(built["ctx"]) == [101 + i for i in range(5)]
    queue = RequestQueue(DECODE_FIELDS)
    for r in reqs:
        queue.append(r, r.prompt_tokens + 1)
    assert columns_of(queue, DECODE_FIELDS) is queue.columns


def test_a_request_never_prefilled_is_refused_by_name_and_the_queue_is_unchanged():
    queue = RequestQueue(DECODE_FIELDS)
    with pytest.raises(ValueError, match=r"request 7 .* not been prefilled"):
        queue.append(Request(7, 0.0, 10, SLO(1.0, 0.05)), 10)
    assert len(queue) == 0 and queue.tokens == 0 and queue.columns.n == 0
