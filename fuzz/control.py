"""Fuzz harness: the control-channel codec (wasp/wire/control.py) that ControlChannel
(wasp/common/channel.py) runs on every read from the manager, the front and each worker.

Each input is used twice:

* as bytes from a peer: `MessageReader` fed in pieces must give the same messages (or the same
  refusal) as a reference walk of the whole stream, raise nothing but `ControlProtocolError`,
  never hold more than one unfinished message, and every message it yields is a map with an "op"
  and a descriptor count 0..MAX_FDS that ControlChannel can use as is;
* as a recipe (FuzzedDataProvider) for messages with arbitrary values: encoded, read back in
  pieces, they must equal what was sent.
"""

from __future__ import annotations

import atheris
import msgspec

from split import pieces
from wasp.wire import control
from wasp.wire.control import ControlProtocolError

_dec = msgspec.msgpack.Decoder()


def seeds():
    yield control.encode({"op": "ping", "seq": 1}) + control.encode({"op": "stats", "rss": 10 ** 9})
    yield control.encode({"op": "worker_ready", "pool": "P", "nfds": 1, "pid": 42})
    yield control.encode({"op": "config", "sites": [{"name": "S", "bindings": ["http/*:80:"]}]})
    yield control._LEN.pack(control.MAX_MESSAGE + 1)


def _reference(stream: bytes) -> tuple[list, bool, int]:
    """(messages, refused, bytes left) of a whole stream, walked the obvious way."""
    out = []
    pos = 0
    while len(stream) - pos >= 4:
        (length,) = control._LEN.unpack_from(stream, pos)
        if length > control.MAX_MESSAGE:
            return out, True, 0
        if len(stream) - pos - 4 < length:
            break
        try:
            message = _dec.decode(stream[pos + 4:pos + 4 + length])
        except msgspec.DecodeError:
            return out, True, 0
        if not isinstance(message, dict) or "op" not in message:
            return out, True, 0
        nfds = message.get("nfds", 0)
        if type(nfds) is not int or not 0 <= nfds <= control.MAX_FDS:
            return out, True, 0
        out.append(message)
        pos += 4 + length
    return out, False, len(stream) - pos


def _read(pieces: list[bytes]) -> tuple[list, bool]:
    reader = control.MessageReader()
    out = []
    for piece in pieces:
        try:
            got = reader.feed(piece)
        except ControlProtocolError:
            return out, True
        for message in got:
            assert isinstance(message, dict) and "op" in message
            n = message.get("nfds", 0)
            assert type(n) is int and 0 <= n <= control.MAX_FDS
        out += got
        assert len(reader._buf) <= 4 + control.MAX_MESSAGE
    return out, False


def check_stream(data: bytes) -> None:
    want, refused, _left = _reference(data)
    got, got_refused = _read(pieces(data, data[-8:]))
    assert got_refused == refused, (got_refused, refused)
    if refused:
        # the messages of the read that broke the rules are lost with the channel
        assert got == want[:len(got)]
    else:
        assert got == want, (got, want)


def _value(fdp, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 7 if depth < 2 else 4)
    if kind == 0:
        return fdp.ConsumeInt(8)
    if kind == 1:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 32))
    if kind == 2:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32))
    if kind == 3:
        return fdp.ConsumeBool()
    if kind == 4:
        return None
    if kind == 5:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {fdp.ConsumeUnicodeNoSurrogates(8): _value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))}


def check_round_trip(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    sent = []
    for _ in range(fdp.ConsumeIntInRange(1, 6)):
        message = {fdp.ConsumeUnicodeNoSurrogates(8): _value(fdp) for _ in range(fdp.ConsumeIntInRange(0, 5))}
        message["op"] = fdp.ConsumeUnicodeNoSurrogates(16)
        if fdp.ConsumeBool():
            message["nfds"] = fdp.ConsumeIntInRange(0, control.MAX_FDS)
        sent.append(message)
    stream = b"".join(control.encode(m) for m in sent)
    got, refused = _read(pieces(stream, fdp.ConsumeBytes(8)))
    assert not refused and got == sent, (got, sent)


def test_one_input(data: bytes) -> None:
    check_stream(data)
    check_round_trip(data)
