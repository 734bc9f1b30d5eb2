"""A workload trace: when requests arrive and how long their prompts and outputs are.

A ``Trace`` is the only thing the simulator, the benchmark client and the transforms exchange.
It is immutable (frozen dataclass over read-only arrays), so a loaded trace can be cached and
shared without anyone mutating it behind another user's back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


class TraceError(ValueError):
    """A trace file (or row) that cannot be read; the message says where and why.

    Format: ``"<file> line <n>, field <name>: <problem>"`` so a user can open the file at the
    right line. ``line`` is 1-based and counts the header, like an editor does.
    """

    def __init__(self, file: str, line: int | None, field: str | None, problem: str) -> None:
        where = file
        if line is not None:
            where += f" line {line}"
        if field is not None:
            where += f", field {field}"
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem


def _frozen(values: npt.ArrayLike, dtype: type[np.generic], name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if dtype is np.int64 and array.size and array.dtype.kind not in "iu":
        # Silently truncating 12.7 tokens to 12 would hide a bug in whoever built the trace.
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    out = np.array(array, dtype=dtype)  # a private copy, so the caller cannot mutate ours
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests in arrival order: ``arrivals[i]`` seconds after the first, with token counts.

    Invariants (checked on construction): equal lengths, arrivals finite, non-decreasing and
    starting at exactly 0.0, token counts >= 1. An empty trace is allowed (a time slice can be
    empty); loaders never return one.
    """

    name: str
    arrivals: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        # object.__setattr__ because the dataclass is frozen; we only normalise our own fields.
        object.__setattr__(self, "arrivals", _frozen(self.arrivals, np.float64, "arrivals"))
        for field in ("input_tokens", "output_tokens"):
            object.__setattr__(self, field, _frozen(getattr(self, field), np.int64, field))
        self._validate()

    def _validate(self) -> None:
        n = len(self.arrivals)
        for field in ("input_tokens", "output_tokens"):
            if len(getattr(self, field)) != n:
                raise ValueError(
                    f"trace {self.name!r}: {field} has {len(getattr(self, field))} entries, "
                    f"arrivals has {n}"
                )
        if n == 0:
            return
        bad = np.flatnonzero(~np.isfinite(self.arrivals))
        if bad.size:
            i = int(bad[0])
            value = float(self.arrivals[i])
            raise ValueError(f"trace {self.name!r}: arrivals[{i}] = {value} is not finite")
        if self.arrivals[0] != 0.0:
            raise ValueError(
                f"trace {self.name!r}: arrivals[0] = {float(self.arrivals[0])!r}, expected 0.0 "
                "(rebase the arrivals so the first request arrives at 0)"
            )
        back = np.flatnonzero(np.diff(self.arrivals) < 0)
        if back.size:
            i = int(back[0]) + 1
            raise ValueError(
                f"trace {self.name!r}: arrivals[{i}] = {float(self.arrivals[i])!r} is before "
                f"arrivals[{i - 1}] = {float(self.arrivals[i - 1])!r}"
            )
        for field in ("input_tokens", "output_tokens"):
            values: np.ndarray = getattr(self, field)
            small = np.flatnonzero(values < 1)
            if small.size:
                i = int(small[0])
                raise ValueError(f"trace {self.name!r}: {field}[{i}] = {values[i]} is not >= 1")

    def __len__(self) -> int:
        return len(self.arrivals)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last arrival (0.0 for fewer than two requests)."""
        if len(self) < 2:
            return 0.0
        return float(self.arrivals[-1] - self.arrivals[0])

    @property
    def rate(self) -> float:
        """Mean request rate ``(n - 1) / duration`` in req/s: n arrivals span n - 1 gaps.

        0.0 for fewer than two requests; ``inf`` when all requests arrive at the same instant.
        """
        if len(self) < 2:
            return 0.0
        if self.duration == 0.0:
            return float("inf")
        return (len(self) - 1) / self.duration

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare arrays with ``==`` and fail on their truth value.
        if not isinstance(other, Trace):
            return NotImplemented
        return (
            self.name == other.name
            and self.source == other.source
            and np.array_equal(self.arrivals, other.arrivals)
            and np.array_equal(self.input_tokens, other.input_tokens)
            and np.array_equal(self.output_tokens, other.output_tokens)
        )

    __hash__ = None  # type: ignore[assignment]  # equal traces must hash alike; arrays cannot

    def __repr__(self) -> str:
        # The default repr would print three full arrays; a summary is what anyone wants to see.
        return (
            f"Trace(name={self.name!r}, n={len(self)}, duration={self.duration:.1f}s, "
            f"rate={self.rate:.3g}/s, source={self.source!r})"
        )
