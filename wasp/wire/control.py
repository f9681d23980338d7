"""Messages on the manager <-> front and manager <-> worker control channels. No I/O.

A message is a u32 LE length and a msgpack map with an "op" key. A message that carries file
descriptors (sent with SCM_RIGHTS alongside its first byte) says how many in "nfds"; the receiver
takes that many from the descriptors that arrived, in order. docs/internals.md lists every op.
"""

from __future__ import annotations

import struct

import msgspec

_LEN = struct.Struct("<I")
MAX_MESSAGE = 64 * 1024 * 1024
#: Linux's SCM_MAX_FD: no message can carry more descriptors than one sendmsg passes.
MAX_FDS = 253

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()


class ControlProtocolError(Exception):
    """The peer broke the protocol: a message over MAX_MESSAGE, one that does not decode, or one
    that is not a map with an "op" (and a descriptor count 0..MAX_FDS). The only error `feed`
    raises."""


def encode(message: dict) -> bytes:
    body = _enc.encode(message)
    return _LEN.pack(len(body)) + body


class MessageReader:
    """Bytes in, decoded message dicts out."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict]:
        self._buf += data
        out = []
        buf = self._buf
        while len(buf) >= 4:
            (length,) = _LEN.unpack_from(buf)
            if length > MAX_MESSAGE:
                raise ControlProtocolError(f"control message of {length} bytes")
            if len(buf) < 4 + length:
                break
            try:
                message = _dec.decode(bytes(buf[4:4 + length]))
            except msgspec.MsgspecError as exc:
                raise ControlProtocolError(f"undecodable control message: {exc}") from None
            del buf[:4 + length]
            if not isinstance(message, dict) or "op" not in message:
                raise ControlProtocolError("control message without op")
            nfds = message.get("nfds", 0)
            if type(nfds) is not int or not 0 <= nfds <= MAX_FDS:
                raise ControlProtocolError(f"control message with nfds={nfds!r}")
            out.append(message)
        return out
