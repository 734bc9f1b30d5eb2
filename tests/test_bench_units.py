"""kairos bench pieces without a server: SSE reading, token spreading, prompts, calibration."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from kairos.bench.client import PerfClock, Target
from kairos.bench.http import HTTPClient, HTTPError
from kairos.bench.prompts import Calibration, PromptBuilder, probe_lengths
from kairos.bench.stream import StreamState, error_text, spread_tokens
from kairos.commands import bench as bench_cmd
from kairos.commands import sim as sim_cmd


def feed(state: StreamState, events: list[object], t0: float = 0.0) -> StreamState:
    for k, event in enumerate(events):
        data = event if isinstance(event, str) else json.dumps(event)
        state.feed(f"data: {data}", t0 + k)
        state.feed("", t0 + k)
    return state


def test_completions_stream_one_token_per_text_chunk() -> None:
    state = feed(
        StreamState(),
        [
            {"choices": [{"index": 0, "text": " a"}]},
            {"choices": [{"index": 0, "text": ""}]},  # no text: no token
            {"choices": [{"index": 0, "text": " b", "finish_reason": "length"}]},
            {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
            "[DONE]",
        ],
    )
    assert state.done and state.error is None
    assert state.token_times().tolist() == [0.0, 2.0]
    assert (state.prompt_tokens, state.completion_tokens) == (7, 2)


def test_chat_stream_skips_the_role_chunk() -> None:
    state = feed(
        StreamState(),
        [
            {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"delta": {"content": "x"}}]},
            {"choices": [{"delta": {"content": "y"}}]},
            {"choices": [], "usage": None},
            "[DONE]",
        ],
    )
    assert state.token_times().tolist() == [1.0, 2.0]
    assert state.prompt_tokens is None


@pytest.mark.parametrize(
    "events",
    [
        [{"choices": [{"text": "a"}]}, {"error": {"message": "engine died", "code": 500}}],
        ["not json"],
    ],
)
def test_error_events_are_recorded(events: list[object]) -> None:
    state = feed(StreamState(), [*events, "[DONE]"])
    assert state.error is not None
    assert "engine died" in state.error or "unparseable" in state.error


def test_sse_event_error_field() -> None:
    state = StreamState()
    state.feed("event: error", 0.0)
    state.feed('data: {"message": "overloaded"}', 0.0)
    assert state.error == "stream error: overloaded"


def test_error_text_reads_openai_fastapi_and_plain_bodies() -> None:
    assert error_text(b'{"error": {"message": "too long", "type": "x"}}') == "too long"
    assert error_text(b'{"detail": "queue full"}') == "queue full"
    assert error_text(b'{"error": {"error": {"message": "nested", "code": 400}}}') == "nested"
    assert error_text(b"Bad Gateway") == "Bad Gateway"


def test_spread_more_tokens_than_chunks_by_text_length() -> None:
    # 3 chunks, 6 tokens: each chunk one token, the 3 extra by text length 1:2:5 -> 0, 1, 2.
    times = spread_tokens([1.0, 2.0, 3.0], [1, 2, 5], 6)
    assert times.tolist() == [1.0, 2.0, 2.0, 3.0, 3.0, 3.0]


def test_spread_fewer_tokens_than_chunks_keeps_first_and_last() -> None:
    times = spread_tokens([0.0, 1.0, 2.0, 3.0, 4.0], [1] * 5, 3)
    assert times.tolist() == [0.0, 2.0, 4.0]


def test_spread_without_usage_is_one_token_per_chunk() -> None:
    assert spread_tokens([0.5, 0.7], [3, 3], None).tolist() == [0.5, 0.7]
    assert len(spread_tokens([], [], 5)) == 0  # no chunk: no time to give any token


def test_prompts_are_deterministic_distinct_and_sized() -> None:
    builder = PromptBuilder(seed=1)
    a, b = builder.prompt(0, 50), builder.prompt(1, 50)
    assert a == PromptBuilder(seed=1).prompt(0, 50)
    assert a != b and a != PromptBuilder(seed=2).prompt(0, 50)
    assert len(a.split()) == 50
    # Different first 16 words: a block-level prefix cache cannot share them.
    assert len({builder.prompt(i, 16) for i in range(100)}) == 100
    with pytest.raises(ValueError, match="at least one word"):
        builder.prompt(0, 0)


def test_calibration_fit_and_inverse() -> None:
    cal = Calibration.fit((16, 128), (16 + 30, 128 + 30))  # e.g. a chat template of 30 tokens
    assert (cal.a, cal.b) == (30.0, 1.0)
    assert cal.words_for(500) == 470 and cal.tokens_for(470) == 500
    assert cal.words_for(10) == 1  # shorter than the template: as short as possible
    double = Calibration.fit((10, 110), (21, 221))  # two tokens per word, one BOS
    assert double.words_for(201) == 100
    with pytest.raises(ValueError, match="b > 0"):
        Calibration.fit((10, 20), (5, 5))


def test_probe_lengths_stay_inside_the_trace_range() -> None:
    assert probe_lengths(100_000) == (128, 1024)
    assert probe_lengths(300) == (37, 300)
    lo, hi = probe_lengths(1)
    assert 2 <= lo < hi


def test_target_validates_and_normalises_the_url() -> None:
    t = Target("http://h:8000/v1/", "m", "chat")
    assert t.endpoint_url == "http://h:8000/v1/chat/completions"
    with pytest.raises(ValueError, match="'ftp://h'"):
        Target("ftp://h", "m")
    with pytest.raises(ValueError, match="'embeddings'"):
        Target("http://h", "m", "embeddings")


def test_workload_matches_kairos_sim() -> None:
    args = argparse.Namespace(
        trace="azure-code",
        start=100.0,
        duration=300.0,
        num_requests=50,
        rate_scale=2.5,
        length_scale=1.0,
        max_input_tokens=None,
        max_output_tokens=None,
        min_input_tokens=None,
    )
    assert bench_cmd.workload(args) == sim_cmd.workload(args)
    shrunk = argparse.Namespace(**{**vars(args), "length_scale": 0.125})
    assert bench_cmd.workload(shrunk) == sim_cmd.workload(shrunk)
    full, small = bench_cmd.workload(args), bench_cmd.workload(shrunk)
    assert small.input_tokens.sum() < full.input_tokens.sum()
    capped = bench_cmd.workload(argparse.Namespace(**{**vars(args), "max_input_tokens": 64}))
    assert capped.input_tokens.max() == 64
    assert np.array_equal(capped.output_tokens, sim_cmd.workload(args).output_tokens)


def test_bench_never_imports_the_simulator_or_the_server() -> None:
    code = (
        "import sys, kairos.bench, kairos.bench.plots, kairos.commands.bench\n"
        "bad = [m for m in sys.modules if m.startswith(('kairos.sim', 'kairos.serve'))]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- the bench's HTTP client ---------------------------------------------------------------
class _Scripted(asyncio.Protocol):
    """A server that answers each request with the next scripted reply, in pieces."""

    def __init__(self, replies: list[list[bytes]], seen: list[bytes]) -> None:
        self.replies, self.seen = replies, seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.seen.append(data)
        if b"\r\n\r\n" not in data:
            return
        pieces = self.replies.pop(0)
        for piece in pieces:
            if piece == b"<close>":
                self.transport.close()
                return
            self.transport.write(piece)


async def _exchange(replies: list[list[bytes]], requests: int) -> tuple[list[object], int]:
    """Run ``requests`` GETs with an SSE line sink against a scripted server."""
    seen: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Scripted(replies, seen), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    out: list[object] = []
    async with HTTPClient(PerfClock(), timeout=5) as client:
        for _ in range(requests):
            lines: list[str] = []
            try:
                sink = lines.append
                r = await client.request(
                    "GET", f"http://127.0.0.1:{port}/x", on_line=lambda s, t, sink=sink: sink(s)
                )
                out.append((r.status, lines, r.body))
            except HTTPError as e:
                out.append(str(e))
    server.close()
    connections = sum(1 for d in seen if d.startswith(b"GET"))
    return out, connections


def test_http_client_reads_chunked_sse_split_anywhere_and_reuses_the_connection() -> None:
    body = b"data: one\n\ndata: two\n\n"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    raw = head + chunked
    pieces = [raw[i : i + 3] for i in range(0, len(raw), 3)]  # cut through every boundary
    sized = b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nnope!"
    out, requests = asyncio.run(_exchange([pieces, [sized]], 2))
    assert out[0] == (200, ["data: one", "", "data: two", ""], b"")
    assert out[1] == (404, [], b"nope!")  # a non-2xx body comes back whole
    assert requests == 2


def test_http_client_errors_are_http_errors() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\ndata:\r\n"
    out, _ = asyncio.run(_exchange([[head, b"<close>"], [b"<close>"]], 2))
    assert out[0] == "connection lost mid-response"
    assert out[1] == "the server closed the connection without answering"


def test_http_client_refused_connection() -> None:
    async def go() -> str:
        async with HTTPClient(PerfClock()) as client:
            try:
                await client.request("GET", "http://127.0.0.1:9/")
            except HTTPError as e:
                return str(e)
        return "no error"

    assert asyncio.run(go()).startswith("cannot connect to 127.0.0.1:9")
