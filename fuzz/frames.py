"""Fuzz harness: the front <-> worker frame codec (wasp/wire/frames.py), both directions.

Each input is used twice:

* as a raw byte stream from a peer: `FrameReader` fed in pieces (split where the input says) must
  yield exactly the frames a reference walk of the whole stream finds, raise only `ProtocolError`
  and only for a frame over MAX_PAYLOAD, and hold no more than one partial frame; every payload
  decoder (`unpack_*`) given any frame's payload either decodes it or raises `ProtocolError`, and
  allocates no more than a small multiple of the payload while doing so;
* as a recipe (atheris's FuzzedDataProvider) for frames of every type with arbitrary field values:
  packed, concatenated, read back in pieces and decoded, they must equal what was packed.
"""

from __future__ import annotations

import tracemalloc

import atheris

from split import pieces
from wasp.wire import frames as fr
from wasp.wire.frames import FLAG_FIN, FrameType, ProtocolError

_U16, _U32 = 2 ** 16 - 1, 2 ** 32 - 1
_I64 = 2 ** 63
#: What a decoder may allocate beyond its input: a RequestHead of N tiny headers costs ~200 bytes
#: of Python objects per 3 input bytes, so allow 128 per byte plus a fixed cost.
_ALLOC_PER_BYTE = 128
_ALLOC_FIXED = 64 * 1024

_DECODERS = (fr.unpack_hello, fr.unpack_request, fr.unpack_file, fr.unpack_response,
             fr.unpack_window, fr.unpack_abort, fr.unpack_cache)


def seeds():
    head = fr.RequestHead("1/", "GET", b"/a?b", b"/a", b"b", "1.1", [(b"Host", b"x")],
                          ("127.0.0.1", 5), ("127.0.0.1", 80), "http", 3, False, True)
    yield fr.pack_hello(fr.Hello(1, 2, 3)) + fr.pack_request(7, head, True) + fr.pack_body(7, b"abc") \
        + fr.pack_end(7)
    yield fr.pack_response(7, b"200 OK\r\nA: b\r\n", 5, 0, b"hello") + fr.pack_window(7, 100)
    yield fr.pack_file(9, fr.FileSpan(b"200 OK\r\n", "/etc/hostname", 0, 10)) + fr.pack_abort(9, 503) \
        + fr.pack_cancel(3) + fr.pack_drain()
    yield fr.pack_cache(9, fr.CacheHint(fr.CACHE_FOR_TIME_PERIOD, 30.0, ["accept-encoding"], 0)) \
        + fr.pack_response(9, b"200 OK\r\n", 2, 0, b"ok")
    yield fr.pack_header(FrameType.BODY, 1, fr.MAX_PAYLOAD + 1)


def _reference(stream: bytes) -> tuple[list, bool, int]:
    """(frames, over-limit error, bytes left over) of a whole stream, walked the obvious way."""
    frames = []
    pos = 0
    while len(stream) - pos >= fr.HEADER_SIZE:
        length, ftype, flags, stream_id = fr.HEADER.unpack_from(stream, pos)
        if length > fr.MAX_PAYLOAD:
            return frames, True, 0
        start = pos + fr.HEADER_SIZE
        if start + length > len(stream):
            break
        frames.append((ftype, flags, stream_id, stream[start:start + length]))
        pos = start + length
    return frames, False, len(stream) - pos


def _read(pieces: list[bytes], views: bool = False) -> tuple[list, bool, int]:
    reader = fr.FrameReader(views=views)
    frames = []
    fed = 0
    for piece in pieces:
        fed += len(piece)
        try:
            frames += reader.feed(piece)
        except ProtocolError:
            return frames, True, 0
        assert reader.buffered <= min(fed, fr.HEADER_SIZE + fr.MAX_PAYLOAD), reader.buffered
    return frames, False, reader.buffered


def _decode_garbage(payload: bytes) -> None:
    for decode in _DECODERS:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        try:
            decode(payload)
        except ProtocolError:
            pass
        peak = tracemalloc.get_traced_memory()[1] - before
        assert peak <= _ALLOC_PER_BYTE * len(payload) + _ALLOC_FIXED, (decode.__name__, peak, len(payload))


def check_stream(data: bytes) -> None:
    cuts = data[-8:]
    want, want_error, want_left = _reference(data)
    for views in (False, True):   # the worker's reader, and the front's (large payloads as views)
        got, got_error, got_left = _read(pieces(data, cuts), views)
        assert got_error == want_error, (got_error, want_error)
        if want_error:
            assert got == want[:len(got)]
        else:
            assert got == want and got_left == want_left, (len(got), len(want), got_left, want_left)
    _decode_garbage(data)
    for _ftype, _flags, _sid, payload in want[:8]:
        _decode_garbage(payload)


def _text(fdp, n: int = 24) -> str:
    return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, n))


def _blob(fdp, n: int = 64) -> bytes:
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, n))


def _tls(fdp) -> fr.TlsInfo | None:
    if not fdp.ConsumeBool():
        return None
    return fr.TlsInfo(_text(fdp, 8), _text(fdp), fdp.ConsumeInt(8), _text(fdp), _text(fdp, 64), _text(fdp),
                      _text(fdp), _text(fdp, 16))


def _frame(fdp) -> tuple[bytes, tuple]:
    """One packed frame and (type, flags, stream, decoded payload) as it must read back."""
    kind = fdp.ConsumeIntInRange(0, 10)
    sid = fdp.ConsumeIntInRange(0, _U32)
    if kind == 0:
        hello = fr.Hello(fdp.ConsumeInt(8), fdp.ConsumeInt(8), fdp.ConsumeInt(8))
        return fr.pack_hello(hello), (FrameType.HELLO, 0, 0, hello)
    if kind == 1:
        head = fr.RequestHead(
            _text(fdp), _text(fdp, 8), _blob(fdp), _blob(fdp), _blob(fdp), _text(fdp, 4),
            [(_blob(fdp, 16), _blob(fdp, 16)) for _ in range(fdp.ConsumeIntInRange(0, 6))],
            (_text(fdp, 8), fdp.ConsumeIntInRange(0, 65535)), (_text(fdp, 8), fdp.ConsumeIntInRange(0, 65535)),
            _text(fdp, 5), fdp.ConsumeInt(8), fdp.ConsumeBool(), fdp.ConsumeBool(), _tls(fdp), fdp.ConsumeBool())
        body = fdp.ConsumeBool()
        return fr.pack_request(sid, head, body), (FrameType.REQUEST, 0 if body else FLAG_FIN, sid, head)
    if kind == 2:
        span = fr.FileSpan(_blob(fdp), _text(fdp), fdp.ConsumeInt(8), fdp.ConsumeInt(8))
        return fr.pack_file(sid, span), (FrameType.FILE, 0, sid, span)
    if kind == 3:
        block = _blob(fdp)
        length = fdp.ConsumeIntInRange(-_I64, _I64 - 1)
        substatus = fdp.ConsumeIntInRange(0, _U16)
        body = _blob(fdp) if fdp.ConsumeBool() else None
        return (fr.pack_response(sid, block, length, substatus, body),
                (FrameType.RESPONSE, 0 if body is None else FLAG_FIN, sid, (substatus, length, block, body or b"")))
    if kind == 4:
        increment = fdp.ConsumeIntInRange(0, _U32)
        return fr.pack_window(sid, increment), (FrameType.WINDOW, 0, sid, increment)
    if kind == 5:
        status = fdp.ConsumeIntInRange(0, _U16)
        return fr.pack_abort(sid, status), (FrameType.ABORT, 0, sid, status)
    if kind == 6:
        data = _blob(fdp, 256)
        return fr.pack_body(sid, data), (FrameType.BODY, 0, sid, data)
    if kind == 7:
        return fr.pack_end(sid), (FrameType.END, 0, sid, b"")
    if kind == 8:
        return fr.pack_cancel(sid), (FrameType.CANCEL, 0, sid, b"")
    if kind == 9:
        hint = fr.CacheHint(fdp.ConsumeInt(8), fdp.ConsumeRegularFloat(),
                            [_text(fdp, 12) for _ in range(fdp.ConsumeIntInRange(0, 4))], fdp.ConsumeInt(8))
        return fr.pack_cache(sid, hint), (FrameType.CACHE, 0, sid, hint)
    return fr.pack_drain(), (FrameType.DRAIN, 0, 0, b"")


_PAYLOAD = {FrameType.HELLO: fr.unpack_hello, FrameType.REQUEST: fr.unpack_request,
            FrameType.FILE: fr.unpack_file, FrameType.RESPONSE: fr.unpack_response,
            FrameType.WINDOW: fr.unpack_window, FrameType.ABORT: fr.unpack_abort,
            FrameType.CACHE: fr.unpack_cache}


def check_round_trip(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    packed = []
    want = []
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        frame, expected = _frame(fdp)
        packed.append(frame)
        want.append(expected)
    stream = b"".join(packed)
    got, error, left = _read(pieces(stream, fdp.ConsumeBytes(8)))
    assert not error and left == 0, (error, left)
    assert len(got) == len(want), (len(got), len(want))
    for (ftype, flags, sid, payload), (w_type, w_flags, w_sid, w_value) in zip(got, want):
        assert (ftype, flags, sid) == (w_type, w_flags, w_sid), ((ftype, flags, sid), (w_type, w_flags, w_sid))
        decode = _PAYLOAD.get(ftype)
        value = decode(payload) if decode is not None else payload
        assert value == w_value, (FrameType(ftype).name, value, w_value)


def test_one_input(data: bytes) -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    check_stream(data)
    check_round_trip(data)
