"""Trace file formats and ``load_file``: one registry entry per format.

Formats:
  ``azure``    CSV ``TIMESTAMP,ContextTokens,GeneratedTokens`` (Azure LLM inference trace 2023);
               TIMESTAMP is naive wall-clock time with 7 fractional digits.
  ``mooncake`` JSONL ``{"timestamp": ms, "input_length", "output_length", "hash_ids"}``
               (Mooncake FAST'25); ``hash_ids`` is checked to be a list but not kept.
  ``generic``  CSV or JSONL with ``arrival`` (seconds), ``input_tokens``, ``output_tokens``;
               a CSV header row is optional (without one the columns are in that order).

Every format is strict: a broken row raises ``TraceError`` naming the file, the 1-based line and
the field. Nothing is skipped except blank lines, because a trace with silently dropped
requests would give plausible but wrong benchmark numbers. Arrivals are rebased so the first
request arrives at 0.0. Gzip files (detected by their magic bytes) are read transparently.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from kairos.core.registry import Registry
from kairos.traces.trace import Trace, TraceError


class Columns(NamedTuple):
    arrivals: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray


class TraceFormat(Protocol):
    def sniff(self, first_line: str) -> bool:
        """Whether a file whose first non-blank line is ``first_line`` has this format."""
        ...

    def parse(self, text: str, file: str) -> Columns:
        """Parse the whole decoded file; ``file`` is the name used in error messages."""
        ...


FORMATS: Registry[TraceFormat] = Registry("trace format")

_GZIP_MAGIC = b"\x1f\x8b"


class _Rows:
    """Accumulates rows and enforces what every format shares: tokens >= 1, time never goes back.

    Times are kept relative to the first row as exact Python numbers (integer nanoseconds for
    Azure, integer milliseconds for Mooncake), so the float conversion happens once, at the end.
    """

    def __init__(self, file: str, fields: tuple[str, str, str], units_per_second: float) -> None:
        self.file = file
        self.time_field, self.input_field, self.output_field = fields
        self.units_per_second = units_per_second
        self.times: list[float] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._first: float = 0
        self._prev: tuple[float, object, int] | None = None  # (time, raw value, line)

    def add(self, line: int, time: float, raw_time: object, inp: object, out: object) -> None:
        if self._prev is None:
            self._first = time
        elif time < self._prev[0]:
            _, prev_raw, prev_line = self._prev
            raise TraceError(
                self.file,
                line,
                self.time_field,
                f"{raw_time!r} is before the previous row's {prev_raw!r} (line {prev_line}): "
                "time goes backwards",
            )
        self._prev = (time, raw_time, line)
        self.times.append(time - self._first)
        self.inputs.append(_token_count(inp, self.file, line, self.input_field))
        self.outputs.append(_token_count(out, self.file, line, self.output_field))

    def columns(self) -> Columns:
        if not self.times:
            raise TraceError(self.file, None, None, "no requests in the file")
        # Division (not multiplication by 1e-9) so integer ticks round correctly to float64.
        arrivals = np.array(self.times, dtype=np.float64) / self.units_per_second
        return Columns(
            arrivals, np.array(self.inputs, dtype=np.int64), np.array(self.outputs, np.int64)
        )


def _token_count(value: object, file: str, line: int, field: str) -> int:
    if isinstance(value, str):
        try:
            count = int(value)
        except ValueError:
            problem = f"{value!r} is not an integer" if value.strip() else "is empty"
            raise TraceError(file, line, field, problem) from None
    elif isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        raise TraceError(file, line, field, f"{value!r} is not an integer")
    if count < 1:
        raise TraceError(file, line, field, f"{count} tokens; a request needs at least 1")
    return count


def _number(value: object, file: str, line: int, field: str) -> float:
    """A finite number from a CSV cell or a JSON value (ints stay exact ints)."""
    if isinstance(value, str):
        if not value.strip():
            raise TraceError(file, line, field, "is empty")
        try:
            value = float(value)
        except ValueError:
            raise TraceError(file, line, field, f"{value!r} is not a number") from None
    elif not isinstance(value, int | float) or isinstance(value, bool):
        raise TraceError(file, line, field, f"{value!r} is not a number")
    if not math.isfinite(value):
        raise TraceError(file, line, field, f"{value!r} is not finite")
    return value


_AZURE_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")


def _azure_parser(file: str) -> Callable[[str, int], int]:
    """A parser from '2023-11-16 18:15:46.6805900' to integer nanoseconds since year 1.

    Integer arithmetic keeps all 7 fractional digits; ``float`` seconds since the epoch would
    only keep about 0.2 us, and ``datetime`` would drop the seventh digit.
    """
    day_cache: dict[str, int] = {}  # every row of a one-hour trace shares one date

    def parse(raw: str, line: int) -> int:
        match = _AZURE_TIMESTAMP.fullmatch(raw.strip())
        if match is None:
            raise TraceError(
                file,
                line,
                "TIMESTAMP",
                f"{raw!r} is not a timestamp like '2023-11-16 18:15:46.6805900'",
            )
        date, hh, mm, ss, fraction = match.groups()
        day = day_cache.get(date)
        if day is None:
            try:
                day = day_cache[date] = datetime.date.fromisoformat(date).toordinal()
            except ValueError:
                raise TraceError(file, line, "TIMESTAMP", f"{raw!r} has no such date") from None
        hour, minute, second = int(hh), int(mm), int(ss)
        if hour > 23 or minute > 59 or second > 59:
            raise TraceError(file, line, "TIMESTAMP", f"{raw!r} has no such time of day")
        seconds = day * 86_400 + hour * 3_600 + minute * 60 + second
        return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))

    return parse


def _parse_csv(
    text: str,
    file: str,
    fields: tuple[str, str, str],
    parse_time: Callable[[str, int], float],
    units_per_second: float,
    header_optional: bool = False,
) -> Columns:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = _Rows(file, fields, units_per_second)
    index = (0, 1, 2)  # without a header the columns are in the canonical order
    first = True
    for row in reader:
        if len(row) <= 1 and not (row and row[0].strip()):
            continue  # blank lines (a trailing newline) hold no request
        line = reader.line_num
        if first:
            first = False
            header = _header_index(row, fields, file, line, header_optional)
            if header is not None:
                index = header
                continue
        if len(row) <= max(index):
            field = next(f for f, i in zip(fields, index, strict=True) if i >= len(row))
            raise TraceError(file, line, field, f"missing (the row has {len(row)} fields)")
        time_raw, inp, out = row[index[0]], row[index[1]], row[index[2]]
        rows.add(line, parse_time(time_raw, line), time_raw, inp, out)
    return rows.columns()


def _header_index(
    row: list[str], fields: tuple[str, str, str], file: str, line: int, optional: bool
) -> tuple[int, int, int] | None:
    """Column positions of ``fields`` in a header row; None if it is data (optional header)."""
    names = [cell.strip() for cell in row]
    if optional and _looks_numeric(names[0]):
        return None
    for field in fields:
        if field not in names:
            raise TraceError(file, line, field, f"column missing from the header {row!r}")
    time_col, input_col, output_col = (names.index(field) for field in fields)
    return time_col, input_col, output_col


def _looks_numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _parse_jsonl(
    text: str,
    file: str,
    fields: tuple[str, str, str],
    units_per_second: float,
    list_fields: tuple[str, ...] = (),
) -> Columns:
    rows = _Rows(file, fields, units_per_second)
    time_field, input_field, output_field = fields
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            problem = f"not valid JSON ({err.msg} at column {err.colno})"
            raise TraceError(file, line, None, problem) from None
        if not isinstance(record, dict):
            raise TraceError(file, line, None, f"expected a JSON object, got {raw.strip()[:40]!r}")
        for field in fields:
            if field not in record:
                raise TraceError(file, line, field, "missing")
        for field in list_fields:  # optional, but when present it must be a list
            if not isinstance(record.get(field, []), list):
                raise TraceError(file, line, field, f"{record[field]!r} is not a list")
        time = _number(record[time_field], file, line, time_field)
        rows.add(line, time, record[time_field], record[input_field], record[output_field])
    return rows.columns()


@FORMATS.register("azure")
class AzureFormat:
    FIELDS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

    def sniff(self, first_line: str) -> bool:
        return {cell.strip() for cell in first_line.split(",")} == set(self.FIELDS)

    def parse(self, text: str, file: str) -> Columns:
        return _parse_csv(text, file, self.FIELDS, _azure_parser(file), 1e9)


@FORMATS.register("mooncake")
class MooncakeFormat:
    FIELDS = ("timestamp", "input_length", "output_length")

    def sniff(self, first_line: str) -> bool:
        return first_line.lstrip().startswith("{") and '"input_length"' in first_line

    def parse(self, text: str, file: str) -> Columns:
        return _parse_jsonl(text, file, self.FIELDS, 1e3, list_fields=("hash_ids",))


@FORMATS.register("generic")
class GenericFormat:
    FIELDS = ("arrival", "input_tokens", "output_tokens")

    def sniff(self, first_line: str) -> bool:
        if first_line.lstrip().startswith("{"):
            return '"input_tokens"' in first_line
        cells = [cell.strip() for cell in first_line.split(",")]
        return set(self.FIELDS) <= set(cells) or (len(cells) >= 3 and _looks_numeric(cells[0]))

    def parse(self, text: str, file: str) -> Columns:
        if _first_line(text).lstrip().startswith("{"):
            return _parse_jsonl(text, file, self.FIELDS, 1.0)

        def seconds(raw: str, line: int) -> float:
            return _number(raw, file, line, "arrival")

        return _parse_csv(text, file, self.FIELDS, seconds, 1.0, header_optional=True)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise TraceError(path.name, None, None, f"not a readable gzip file ({err})") from None
    try:
        return data.decode("utf-8-sig")  # -sig: spreadsheet exports often start with a BOM
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise TraceError(path.name, line, None, f"not UTF-8 text ({err.reason})") from None


def _first_line(text: str) -> str:
    for line in io.StringIO(text):  # lazy: only the head of the file is looked at
        if line.strip():
            return line.strip()
    return ""


def _trace_stem(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return Path(name).stem or name


def sniff_format(first_line: str, file: str) -> str:
    """The name of the registered format that recognises this first line."""
    for name in FORMATS.names():
        if FORMATS.create(name).sniff(first_line):
            return name
    problem = f"cannot tell the trace format from its first line {first_line[:60]!r}"
    raise TraceError(file, None, None, f"{problem}; pass format= one of {FORMATS.names()}")


def load_file(path: str | os.PathLike[str], format: str | None = None) -> Trace:
    """Load a trace file (optionally gzipped); ``format=None`` sniffs it from the first line."""
    path = Path(path)
    text = _read_text(path)
    first = _first_line(text)
    if not first:
        raise TraceError(path.name, None, None, "the file is empty (no requests)")
    name = format if format is not None else sniff_format(first, path.name)
    columns = FORMATS.create(name).parse(text, path.name)
    return Trace(
        name=_trace_stem(path),
        arrivals=columns.arrivals,
        input_tokens=columns.input_tokens,
        output_tokens=columns.output_tokens,
        source=f"{path.name} ({name} format)",
    )
