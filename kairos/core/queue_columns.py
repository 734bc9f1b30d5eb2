"""A waiting queue's requests as numpy columns, kept in step with the queue.

The policies scan their whole waiting queue at every decision; over a thousand queued
``Request`` objects that Python loop alone costs a few hundred microseconds, more than the
scheduling budget (1% of a 9 ms decode step). What they read of a waiting request does not
change while it waits (its prompt, output so far, SLOs, arrival and hand-off times), so a
queue can record those numbers once, when the request enters, and a policy reads them as
arrays in a few vectorised operations.

``Columns`` keeps one row per queued request: ``add`` appends a row, ``remove`` moves the last
row into the gap (O(1)), so rows are not in queue order; ``seq`` records the queue order
(ascending ``seq`` is iteration order) for the policies' tie-breaks. A queue that keeps no
columns (a plain list, vLLM's queue) is read through ``columns_of``, which builds a read-only
snapshot of them in one pass: the same numbers, at about twice the cost of the loop over
``Request`` objects that the columns replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from kairos.core.request import Request

# name -> (dtype, what the row holds for a request)
Fields = Mapping[str, tuple[type, Callable[[Request], float]]]
Rows = np.ndarray[Any, Any]  # row numbers of a ``Columns``, in some order
NO_ROWS: Rows = np.empty(0, np.int64)

# What the decode policies read of a waiting request. ``ctx`` is its context: a waiting
# request is not running, so its KV is ``prompt + output_tokens``.
DECODE_FIELDS: Fields = {
    "ctx": (np.int64, lambda r: r.context_tokens),
    "out": (np.int64, lambda r: r.output_tokens),
    "anchor": (np.float64, lambda r: r.decode_anchor),
    "tau": (np.float64, lambda r: r.tpot_slo),
    "ttft_deadline": (np.float64, lambda r: r.ttft_deadline),
}


# What the prefill policies read of a waiting request. ``cached`` is what of its prompt is in
# KV already (a prefix hit, or the chunks prefilled so far): fixed while it waits, since a
# chunked prompt leaves the queue for each chunk.
PREFILL_FIELDS: Fields = {
    "prompt": (np.int64, lambda r: r.prompt_tokens),
    "cached": (np.int64, lambda r: r.cached_tokens),
    "arrival": (np.float64, lambda r: r.arrival),
    "ttft": (np.float64, lambda r: r.ttft_slo),
}


class Columns:
    """Numpy columns, one row per request; see the module docstring."""

    __slots__ = ("_arrays", "_row", "fields", "n", "requests")

    def __init__(self, fields: Fields, capacity: int = 64) -> None:
        self.fields = fields
        self._arrays: dict[str, np.ndarray[Any, Any]] = {
            name: np.empty(capacity, dtype) for name, (dtype, _) in fields.items()
        }
        self._arrays["seq"] = np.empty(capacity, np.int64)
        self._row: dict[int, int] = {}  # request id -> row (empty in a read-only snapshot)
        self.requests: list[Request] = []  # row -> request
        self.n = 0

    @classmethod
    def of(cls, fields: Fields, requests: Iterable[Request]) -> Columns:
        """A read-only snapshot of requests read in queue order (``seq`` is their position)."""
        reqs = list(requests)
        cols = cls(fields, capacity=max(len(reqs), 1))
        cols._arrays["seq"][: len(reqs)] = np.arange(len(reqs))
        for name, (dtype, get) in fields.items():
            cols._arrays[name][: len(reqs)] = np.fromiter(map(get, reqs), dtype, len(reqs))
        cols.requests = reqs
        cols.n = len(reqs)
        return cols

    @classmethod
    def chain(cls, first: Columns, second: Columns) -> Columns:
        """A read-only snapshot of the rows of ``first`` then ``second``, read as one queue
        in that order."""
        cols = cls(first.fields, capacity=max(first.n + second.n, 1))
        n = first.n
        for name, a in cols._arrays.items():
            a[:n] = first[name]
            a[n : n + second.n] = second[name]
        if n and second.n:  # renumber the second queue's rows after the first's
            seq = cols._arrays["seq"]
            seq[n : n + second.n] += int(seq[:n].max()) - int(seq[n : n + second.n].min()) + 1
        cols.requests = first.requests + second.requests
        cols.n = n + second.n
        return cols

    def __getitem__(self, name: str) -> np.ndarray[Any, Any]:
        return self._arrays[name][: self.n]

    def add(self, r: Request, seq: int) -> None:
        i = self.n
        if i == self._arrays["seq"].shape[0]:
            for name, a in self._arrays.items():
                grown = np.empty(2 * i, a.dtype)
                grown[:i] = a
                self._arrays[name] = grown
        for name, (_, get) in self.fields.items():
            self._arrays[name][i] = get(r)
        self._arrays["seq"][i] = seq
        self._row[r.id] = i
        self.requests.append(r)
        self.n = i + 1

    def remove(self, rid: int) -> None:
        i = self._row.pop(rid)
        last = self.n - 1
        moved = self.requests.pop()
        if i != last:
            for a in self._arrays.values():
                a[i] = a[last]
            self.requests[i] = moved
            self._row[moved.id] = i
        self.n = last


def columns_of(queue: Iterable[Request], fields: Fields) -> Columns:
    """The queue's own columns when it keeps them with these fields, else built from it."""
    cols = getattr(queue, "columns", None)
    if isinstance(cols, Columns) and cols.fields is fields:
        return cols
    return Columns.of(fields, queue)
