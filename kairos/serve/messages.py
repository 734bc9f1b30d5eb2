"""Every message between the proxy and the workers: typed structs, one tagged union, msgpack.

Proxy -> prefill worker: ``PrefillBatch``, ``KVReleased``, ``Shutdown``.
Prefill worker -> proxy: ``WorkerReady``, ``PrefillDone`` (carrying one ``KVHandoff`` per
request), ``PrefillStatus``.
Proxy -> decode worker: ``KVHandoff`` (the proxy forwards the prefill worker's hand-off to the
decode instance the decode policy placed it on), ``Cancel``, ``Shutdown``.
Decode worker -> proxy: ``WorkerReady``, ``DecodeUpdate`` (one per step: every token of the
step in one message), ``KVReleased`` (the first KV pull landed; the proxy forwards it to the
prefill worker that holds the copy).

Times are ``time.monotonic()`` seconds: CLOCK_MONOTONIC is system-wide, so every process
stamps on the same origin. Request ids are the proxy's integers, not the client's strings.
On the wire each message is a frame: its msgpack length (4 bytes, little-endian), then it.
"""

from __future__ import annotations

import struct

import msgspec


class RequestSpec(msgspec.Struct, frozen=True, array_like=True):
    """What a worker needs to know about a request (the proxy owns the rest)."""

    id: int
    arrival: float
    prompt_tokens: int
    max_tokens: int
    ttft_slo: float
    tpot_slo: float


class WorkerReady(msgspec.Struct, tag=True, array_like=True):
    kind: str  # "prefill" or "decode"
    instance: int
    pid: int


class PrefillBatch(msgspec.Struct, tag=True, array_like=True):
    batch_id: int
    requests: list[RequestSpec]


class KVHandoff(msgspec.Struct, tag=True, array_like=True):
    """A prefilled request whose KV (``kv_tokens`` tokens) waits on ``prefill_instance``."""

    request: RequestSpec
    prefill_instance: int
    kv_tokens: int
    first_token: float  # the prefill emits token 1 (DistServe convention)


class PrefillDone(msgspec.Struct, tag=True, array_like=True):
    instance: int
    batch_id: int
    start: float
    end: float  # when the first tokens were emitted
    busy: float  # what the batch took on the engine (the predictor's online correction)
    sum_tokens: int  # s and s2 of the batch, for the same
    sum_sq_tokens: int
    kv_used: int
    handoffs: list[KVHandoff]


class PrefillStatus(msgspec.Struct, tag=True, array_like=True):
    instance: int
    kv_used: int


class KVReleased(msgspec.Struct, tag=True, array_like=True):
    """The decode side holds its own copy now (or never will): free the prefill copy."""

    request_id: int
    prefill_instance: int


class Cancel(msgspec.Struct, tag=True, array_like=True):
    request_id: int


class DecodeUpdate(msgspec.Struct, tag=True, array_like=True):
    """A decode instance after a step boundary (or a state change while idle).

    ``tokens``: ids that got one token each at ``time`` (empty when no step ran);
    ``finished``, ``admitted``, ``preempted``, ``joined``: what the boundary did. The scalars
    let the proxy's mirror of this instance answer the decode policy's ``place``.
    """

    instance: int
    time: float
    step_time: float  # measured duration of the step (0 when no step ran)
    predicted_raw: float  # the uncorrected model's prediction for that step
    tokens: list[int]
    finished: list[int]
    admitted: list[int]
    preempted: list[int]
    joined: list[int]
    kv_tokens: int
    reserved: int
    transferring: int


class Shutdown(msgspec.Struct, tag=True, array_like=True):
    pass


Message = (
    WorkerReady
    | PrefillBatch
    | KVHandoff
    | PrefillDone
    | PrefillStatus
    | KVReleased
    | Cancel
    | DecodeUpdate
    | Shutdown
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)
_LENGTH = struct.Struct("<I")


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode(data: bytes) -> Message:
    return _decoder.decode(data)


def frame(msg: Message) -> bytearray:
    """``msg`` as one frame for a byte stream."""
    buf = bytearray(_LENGTH.size)
    _encoder.encode_into(msg, buf, _LENGTH.size)
    _LENGTH.pack_into(buf, 0, len(buf) - _LENGTH.size)
    return buf


class FrameReader:
    """Cuts a byte stream back into messages, however the bytes arrive."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        msgs: list[Message] = []
        start, end = 0, len(buf)
        head = _LENGTH.size
        with memoryview(buf) as view:
            while end - start >= head:
                (n,) = _LENGTH.unpack_from(view, start)
                if end - start - head < n:
                    break
                msgs.append(_decoder.decode(view[start + head : start + head + n]))
                start += head + n
        if start:
            del buf[:start]
        return msgs
