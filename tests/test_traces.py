"""Tests for kairos.traces: bundled data, loaders, error reporting, transforms, synthesis."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.traces import (
    Trace,
    TraceError,
    available_traces,
    cap_lengths,
    load_file,
    load_trace,
    scale_to_rate,
    slice_count,
    slice_time,
    synthetic_trace,
    time_scale,
)
from kairos.traces.bundled import NAMED_TRACES
from kairos.traces.synth import (
    AZURE_CODE,
    SYNTHETIC_TRACES,
    Constant,
    gamma_arrivals,
    poisson_arrivals,
)

FIXTURES = Path(__file__).parent / "fixtures" / "traces"
REPO = Path(__file__).resolve().parents[1]
# The development copies live next to the checkout (../shared) or inside it (shared/).
SHARED = next(
    (p for p in (REPO.parent / "shared" / "traces", REPO / "shared" / "traces") if p.is_dir()),
    None,
)
SHARED_ORIGINALS = {
    "azure-conv": "azure_llm_2023/AzureLLMInferenceTrace_conv.csv",
    "azure-code": "azure_llm_2023/AzureLLMInferenceTrace_code.csv",
    "mooncake-conv": "mooncake_fast25/conversation_trace_0-2400s.jsonl",
    "mooncake-synthetic": "mooncake_fast25/synthetic_trace.jsonl",
}


def _bundled_bytes(name: str) -> bytes:
    data = resources.files("kairos.traces") / "data" / NAMED_TRACES[name].file
    return gzip.decompress(data.read_bytes())


def _trace(arrivals: list[float], inputs: list[int] | None = None) -> Trace:
    n = len(arrivals)
    return Trace("t", np.array(arrivals), np.array(inputs or [10] * n), np.full(n, 5))


# --- bundled traces -----------------------------------------------------------------------

# rows, duration (s), input mean, output mean: from /work/shared/traces/README.md
BUNDLED_STATS = {
    "azure-conv": (19_366, 3_501.7, 1_155, 211),
    "azure-code": (8_819, 3_436.0, 2_048, 27.9),
    "mooncake-conv": (7_851, 2_397, 12_428, 347),
    "mooncake-synthetic": (3_993, 1_022, 15_325, 149),
}


@pytest.mark.parametrize("name", sorted(BUNDLED_STATS))
def test_bundled_trace_matches_published_statistics(name: str) -> None:
    rows, duration, input_mean, output_mean = BUNDLED_STATS[name]
    trace = load_trace(name)
    assert trace.name == name
    assert len(trace) == rows
    assert trace.duration == pytest.approx(duration, abs=0.1)
    assert trace.input_tokens.mean() == pytest.approx(input_mean, rel=0.001)
    assert trace.output_tokens.mean() == pytest.approx(output_mean, rel=0.002)
    assert trace.arrivals[0] == 0.0
    assert "Apache-2.0" in trace.source or "CC-BY-4.0" in trace.source


def test_available_traces_lists_the_required_names() -> None:
    assert {"azure-conv", "azure-code", "mooncake-conv"} <= set(available_traces())


@pytest.mark.parametrize("name", sorted(NAMED_TRACES))
def test_bundled_data_is_byte_identical_to_upstream(name: str) -> None:
    assert hashlib.sha256(_bundled_bytes(name)).hexdigest() == NAMED_TRACES[name].sha256


@pytest.mark.skipif(SHARED is None, reason="no shared/traces development copies here")
@pytest.mark.parametrize("name", sorted(SHARED_ORIGINALS))
def test_bundled_data_equals_shared_original(name: str) -> None:
    assert SHARED is not None
    original = (SHARED / SHARED_ORIGINALS[name]).read_bytes()
    assert hashlib.sha256(_bundled_bytes(name)).digest() == hashlib.sha256(original).digest()


def test_load_trace_accepts_a_path_and_rejects_unknown_names() -> None:
    assert len(load_trace(str(FIXTURES / "azure_tiny.csv"))) == 5
    with pytest.raises(ValueError, match="azure-conv") as info:
        load_trace("azure-chat")
    assert "mooncake-conv" in str(info.value)


# --- loaders on fixtures ------------------------------------------------------------------


def test_azure_loader_keeps_seven_fractional_digits_and_crosses_midnight() -> None:
    trace = load_file(FIXTURES / "azure_tiny.csv")
    assert trace.name == "azure_tiny"
    expected = [0.0, 4.314579, 4.3145791, 20_653.3194099, 20_653.31941]
    np.testing.assert_allclose(trace.arrivals, expected, rtol=0, atol=1e-9)
    assert trace.arrivals[2] - trace.arrivals[1] == pytest.approx(1e-7, abs=1e-10)
    assert trace.input_tokens.tolist() == [374, 396, 879, 91, 1000]
    assert trace.output_tokens.tolist() == [44, 109, 31, 2, 1000]


def test_mooncake_loader_converts_ms_and_rebases() -> None:
    trace = load_file(FIXTURES / "mooncake_tiny.jsonl")
    assert trace.arrivals.tolist() == [0.0, 0.0, 1.5, 60.0]
    assert trace.input_tokens.tolist() == [6758, 7322, 2290, 12]
    assert trace.output_tokens.tolist() == [500, 490, 316, 1]


@pytest.mark.parametrize(
    ("fixture", "arrivals"),
    [
        ("generic_tiny.csv", [0.0, 0.0, 0.75, 9.5]),
        ("generic_noheader.csv", [0.0, 0.5, 0.75]),
        ("generic_tiny.jsonl", [0.0, 0.5, 2.0]),
    ],
)
def test_generic_loader_csv_and_jsonl(fixture: str, arrivals: list[float]) -> None:
    trace = load_file(FIXTURES / fixture)
    assert trace.arrivals.tolist() == arrivals
    assert trace.input_tokens.tolist()[:3] == [100, 200, 300]
    assert trace.output_tokens.tolist()[:3] == [20, 30, 40]


@pytest.mark.parametrize(
    ("fixture", "fmt"),
    [
        ("azure_tiny.csv", "azure"),
        ("mooncake_tiny.jsonl", "mooncake"),
        ("generic_tiny.csv", "generic"),
        ("generic_tiny.jsonl", "generic"),
    ],
)
def test_format_is_sniffed_and_gzip_is_transparent(tmp_path: Path, fixture: str, fmt: str) -> None:
    plain = load_file(FIXTURES / fixture)
    assert plain == load_file(FIXTURES / fixture, fmt)
    packed = tmp_path / f"{fixture}.gz"
    packed.write_bytes(gzip.compress((FIXTURES / fixture).read_bytes()))
    from_gz = load_file(packed)
    assert from_gz.name == plain.name
    np.testing.assert_array_equal(from_gz.arrivals, plain.arrivals)
    np.testing.assert_array_equal(from_gz.input_tokens, plain.input_tokens)


def test_unknown_format_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="generic"):
        load_file(FIXTURES / "azure_tiny.csv", "splitwise")


# --- broken files: every error names the file, the line and the field ------------------------

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZURE_OK = "2023-11-16 18:15:46.6805900,374,44\n"
MOONCAKE_OK = '{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [0]}\n'
GENERIC_HEADER = "arrival,input_tokens,output_tokens\n"

BROKEN = [
    # (file name, content, line, field, words in the message)
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK + "2023-11-16 18:15:47.0,abc,44\n",
        3,
        "ContextTokens",
        "'abc' is not an integer",
    ),
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK * 2 + "2023-11-16 18:15:47.0,12\n",
        4,
        "GeneratedTokens",
        "missing",
    ),
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK + "2023-11-16 18:15:47.0,0,44\n",
        3,
        "ContextTokens",
        "at least 1",
    ),
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK + "2023-11-16 18:15:47.0,5,-3\n",
        3,
        "GeneratedTokens",
        "at least 1",
    ),
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK + "2023-11-16 18:15:46.6805899,5,3\n",
        3,
        "TIMESTAMP",
        "backwards",
    ),
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK + "16/11/2023 18:15:47,5,3\n",
        3,
        "TIMESTAMP",
        "not a timestamp",
    ),
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK + "2023-02-30 18:15:47.0,5,3\n",
        3,
        "TIMESTAMP",
        "no such date",
    ),
    (
        "az.csv",
        AZURE_HEADER + AZURE_OK + "2023-11-16 24:15:47.0,5,3\n",
        3,
        "TIMESTAMP",
        "no such time",
    ),
    ("az.csv", AZURE_HEADER + AZURE_OK + "2023-11-16 18:15:47.0,,3\n", 3, "ContextTokens", "empty"),
    (
        "mc.jsonl",
        MOONCAKE_OK * 3 + '{"timestamp": 5, "input_length": 10}\n',
        4,
        "output_length",
        "missing",
    ),
    (
        "mc.jsonl",
        MOONCAKE_OK + '{"timestamp": "x", "input_length": 1, "output_length": 1}\n',
        2,
        "timestamp",
        "not a number",
    ),
    (
        "mc.jsonl",
        MOONCAKE_OK + '{"timestamp": 5, "input_length": 2.5, "output_length": 1}\n',
        2,
        "input_length",
        "not an integer",
    ),
    (
        "mc.jsonl",
        MOONCAKE_OK + '{"timestamp": 5, "input_length": 3, "output_length": 0}\n',
        2,
        "output_length",
        "at least 1",
    ),
    (
        "mc.jsonl",
        '{"timestamp": 9, "input_length": 3, "output_length": 1}\n' + MOONCAKE_OK,
        2,
        "timestamp",
        "backwards",
    ),
    (
        "mc.jsonl",
        MOONCAKE_OK + '{"timestamp": 9, "input_length": 3, "output_length": 1, "hash_ids": 7}\n',
        2,
        "hash_ids",
        "not a list",
    ),
    ("gen.csv", GENERIC_HEADER + "0,1,1\n1.5,2,2\n1.0,3,3\n", 4, "arrival", "backwards"),
    ("gen.csv", GENERIC_HEADER + "0,1,1\nnan,2,2\n", 3, "arrival", "not finite"),
    ("gen.csv", GENERIC_HEADER + "0,1,1\nsoon,2,2\n", 3, "arrival", "not a number"),
    ("gen.csv", "0,1,1\n\n2,3,x\n", 3, "output_tokens", "not an integer"),
    (
        "gen.jsonl",
        '{"arrival": 0, "input_tokens": 1, "output_tokens": 1}\n'
        '{"arrival": 1, "input_tokens": 1}\n',
        2,
        "output_tokens",
        "missing",
    ),
]


@pytest.mark.parametrize(("fname", "content", "line", "field", "words"), BROKEN)
def test_broken_row_names_file_line_and_field(
    tmp_path: Path, fname: str, content: str, line: int, field: str, words: str
) -> None:
    path = tmp_path / fname
    path.write_text(content)
    with pytest.raises(TraceError) as info:
        load_file(path)
    message = str(info.value)
    assert message.startswith(f"{fname} line {line}, field {field}: "), message
    assert words in message
    assert (info.value.line, info.value.field) == (line, field)


def test_broken_row_inside_gzip_is_reported_too(tmp_path: Path) -> None:
    path = tmp_path / "az.csv.gz"
    path.write_bytes(gzip.compress((AZURE_HEADER + AZURE_OK + "x,1,1\n").encode()))
    with pytest.raises(TraceError, match=r"^az\.csv\.gz line 3, field TIMESTAMP: 'x'"):
        load_file(path)


@pytest.mark.parametrize(
    ("fname", "content", "words"),
    [
        ("empty.csv", "", "empty"),
        ("blank.jsonl", "\n\n  \n", "empty"),
        ("header_only.csv", AZURE_HEADER, "no requests"),
        ("mystery.txt", "hello world\n", "cannot tell the trace format"),
        ("notjson.jsonl", MOONCAKE_OK + "{oops\n", "line 2: not valid JSON"),
        ("bad.csv.gz", "\x1f\x8bnot really gzip", "gzip"),
    ],
)
def test_unreadable_files_raise_trace_error(
    tmp_path: Path, fname: str, content: str, words: str
) -> None:
    path = tmp_path / fname
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(TraceError, match=fname.replace(".", r"\.")) as info:
        load_file(path)
    assert words in str(info.value)


def test_trace_error_message_format() -> None:
    err = TraceError("azure_conv.csv", 17, "ContextTokens", "'abc' is not an integer")
    assert str(err) == "azure_conv.csv line 17, field ContextTokens: 'abc' is not an integer"
    assert isinstance(err, ValueError)


# --- the Trace invariants ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrivals", "inputs", "words"),
    [
        ([0.0, 2.0, 1.0], [1, 1, 1], "arrivals[2] = 1.0 is before arrivals[1] = 2.0"),
        ([1.0, 2.0], [1, 1], "arrivals[0] = 1.0, expected 0.0"),
        ([0.0, float("nan")], [1, 1], "arrivals[1] = nan is not finite"),
        ([0.0, 1.0], [1, 0], "input_tokens[1] = 0 is not >= 1"),
        ([0.0, 1.0], [1], "input_tokens has 1 entries, arrivals has 2"),
    ],
)
def test_trace_rejects_broken_columns(arrivals: list[float], inputs: list[int], words: str) -> None:
    with pytest.raises(ValueError) as info:
        Trace("t", np.array(arrivals), np.array(inputs), np.ones(len(arrivals), np.int64))
    assert words in str(info.value)


def test_trace_rejects_fractional_tokens_and_is_read_only() -> None:
    with pytest.raises(ValueError, match="integers"):
        Trace("t", np.zeros(1), np.array([1.5]), np.array([1]))
    trace = _trace([0.0, 1.0, 3.0])
    with pytest.raises(ValueError):
        trace.arrivals[0] = 5.0
    assert trace.duration == 3.0
    assert trace.rate == pytest.approx(2 / 3)
    assert _trace([]).rate == 0.0 and len(_trace([])) == 0


# --- transforms ----------------------------------------------------------------------------

# Gaps are 0 (simultaneous arrivals, common in Mooncake) or at least a microsecond: subnormal
# gaps would make the rate overflow to inf, which no real trace has.
gaps = st.lists(st.just(0.0) | st.floats(1e-6, 100.0), min_size=1, max_size=60)


def _from_gaps(values: list[float]) -> Trace:
    arrivals = np.concatenate(([0.0], np.cumsum(values)))
    return _trace(arrivals.tolist(), list(range(1, len(arrivals) + 1)))


@settings(max_examples=60, deadline=None)
@given(gaps, st.floats(0.01, 100.0))
def test_time_scale_preserves_count_order_and_scales_rate(values: list[float], x: float) -> None:
    trace = _from_gaps(values)
    scaled = time_scale(trace, x)
    assert len(scaled) == len(trace)
    np.testing.assert_array_equal(scaled.input_tokens, trace.input_tokens)
    assert np.all(np.diff(scaled.arrivals) >= 0)
    if trace.duration > 0:
        assert scaled.rate == pytest.approx(trace.rate * x, rel=1e-9)
        assert scale_to_rate(trace, 7.0).rate == pytest.approx(7.0, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(gaps, st.floats(0.0, 3000.0), st.floats(0.0, 3000.0))
def test_slice_time_keeps_the_window_and_rebases(values: list[float], a: float, b: float) -> None:
    trace = _from_gaps(values)
    start, end = min(a, b), max(a, b)
    part = slice_time(trace, start, end)
    inside = (trace.arrivals >= start) & (trace.arrivals < end)
    assert len(part) == int(inside.sum())
    np.testing.assert_array_equal(part.input_tokens, trace.input_tokens[inside])
    if len(part):
        assert part.arrivals[0] == 0.0
        assert part.duration <= end - start


@settings(max_examples=60, deadline=None)
@given(gaps, st.data())
def test_slice_count_takes_consecutive_requests(values: list[float], data: st.DataObject) -> None:
    trace = _from_gaps(values)
    start = data.draw(st.integers(0, len(trace)))
    count = data.draw(st.integers(0, len(trace) - start))
    part = slice_count(trace, count, start)
    assert len(part) == count
    np.testing.assert_array_equal(part.input_tokens, trace.input_tokens[start : start + count])
    if count:
        assert part.arrivals[0] == 0.0
        np.testing.assert_allclose(
            np.diff(part.arrivals), np.diff(trace.arrivals)[start:][: count - 1]
        )


def test_transform_errors_quote_the_bad_value() -> None:
    trace = _trace([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="-2"):
        time_scale(trace, -2)
    with pytest.raises(ValueError, match="has 3 requests"):
        slice_count(trace, 3, start=1)
    with pytest.raises(ValueError, match="start <= end"):
        slice_time(trace, 2.0, 1.0)
    with pytest.raises(ValueError, match="cannot be scaled"):
        scale_to_rate(_trace([0.0]), 1.0)


def test_transforms_on_a_real_trace_record_provenance() -> None:
    trace = load_trace("azure-conv")
    doubled = time_scale(trace, 2.0)
    assert doubled.rate == pytest.approx(2 * trace.rate)
    assert "time_scale x2" in doubled.source and "Azure" in doubled.source
    capped = cap_lengths(trace, 2048, 256)
    assert capped.input_tokens.max() == 2048 and capped.output_tokens.max() == 256
    assert np.array_equal(capped.arrivals, trace.arrivals)
    assert (capped.input_tokens == np.minimum(trace.input_tokens, 2048)).all()
    first_minute = slice_time(trace, 0.0, 60.0)
    assert 37 <= len(first_minute) <= 507  # per-minute counts in the README range


# --- synthetic traces ----------------------------------------------------------------------


def test_synthetic_trace_is_reproducible_by_seed() -> None:
    a, b = synthetic_trace(500, 4.0, seed=3), synthetic_trace(500, 4.0, seed=3)
    assert a == b
    assert a != synthetic_trace(500, 4.0, seed=4)
    assert np.array_equal(poisson_arrivals(50, 2.0, 1), poisson_arrivals(50, 2.0, 1))
    # Lengths draw from their own stream: other lengths, same arrivals.
    c = synthetic_trace(500, 4.0, seed=3, input_dist=AZURE_CODE[0], output_dist=Constant(7))
    assert np.array_equal(c.arrivals, a.arrivals)
    assert (c.output_tokens == 7).all()


@pytest.mark.parametrize("cv", [0.0, 0.5, 1.0, 3.0])
def test_synthetic_arrivals_have_the_requested_rate_and_cv(cv: float) -> None:
    rate = 5.0
    trace = synthetic_trace(40_000, rate, cv=cv, seed=11)
    assert trace.rate == pytest.approx(rate, rel=0.05)
    gaps_ = np.diff(trace.arrivals)
    assert gaps_.std() / gaps_.mean() == pytest.approx(cv, abs=0.06 * max(cv, 1.0))
    assert gamma_arrivals(3, rate, cv, seed=0)[0] == 0.0


def test_synthetic_lengths_resemble_azure_conv() -> None:
    trace = synthetic_trace(40_000, 5.0, seed=0)
    assert 1_000 <= trace.input_tokens.mean() <= 1_400  # real: 1,155
    assert 100 <= np.median(trace.output_tokens) <= 200  # real: 129
    assert trace.output_tokens.max() <= 1_000
    assert trace.input_tokens.min() >= 1 and trace.output_tokens.min() >= 1


def test_named_synthetic_trace_loads_by_name_and_is_decode_heavy() -> None:
    trace = load_trace("synthetic-longtail")
    assert "synthetic-longtail" in available_traces()
    assert trace.name == "synthetic-longtail" and len(trace) == 14_400
    assert trace.rate == pytest.approx(4.0, rel=0.05)
    # The same on every machine: generated from its seed, not from a file.
    spec = SYNTHETIC_TRACES["synthetic-longtail"]
    assert spec.generate("x") == replace(trace, name="x")
    # Long-tailed, and more output per request than Azure conv (median 129).
    assert 220 <= np.median(trace.output_tokens) <= 280
    assert np.percentile(trace.input_tokens, 99) >= 8 * np.median(trace.input_tokens)
    assert trace.input_tokens.max() <= 32_000 and trace.output_tokens.max() <= 4_000
    # Three 600 s windows of the evaluation fit in it.
    assert trace.arrivals[-1] >= 1_800


def test_scale_lengths_keeps_the_shape_and_at_least_one_token() -> None:
    from kairos.traces import scale_lengths, synthetic_trace

    trace = synthetic_trace(200, 5.0, seed=3)
    small = scale_lengths(trace, 0.1)
    assert small.input_tokens.min() >= 1 and small.output_tokens.min() >= 1
    assert np.array_equal(small.arrivals, trace.arrivals)
    # Order of lengths is kept (up to rounding ties): the long tail stays a long tail.
    assert np.all(np.diff(small.input_tokens[np.argsort(trace.input_tokens)]) >= 0)
    assert "scale_lengths x0.1" in small.source
    with pytest.raises(ValueError, match="length scale"):
        scale_lengths(trace, 0.0)
