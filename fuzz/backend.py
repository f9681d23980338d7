"""Fuzz harness: the reverse proxy's backend codec (wasp/wire/backend.py), which reads whatever a
backend sends.

Each input is a backend's byte stream (after a first byte choosing HEAD or GET and the cuts):
`ResponseReader` fed in pieces must give the same head and body as fed in one read when both
accept it (a refusal may differ near the head limit, which a read is checked against), raise nothing but `BackendError`, keep an accepted head within `max_header` however it was cut, and every head it accepts must turn into a response block (`response_block`) that has no
CR or LF inside a line and no hop-by-hop header, or be refused with BackendError.
"""

from __future__ import annotations

from split import pieces
from wasp.wire.backend import HOP_BY_HOP, BackendError, ResponseReader, response_block

MAX_HEADER = 2048


def seeds():
    yield b"\x00\x05HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    yield b"\x01\x03HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    yield b"\x00\x07HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    yield b"\x00\x02HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00"
    yield b"\x00\x09HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\nbody until close"
    yield b"\x00\x01HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n"


def _run(stream: bytes, chunks: list[bytes], head_only: bool):
    reader = ResponseReader(head_only=head_only, max_header=MAX_HEADER)
    body = bytearray()
    try:
        for chunk in chunks:
            if reader.done:
                break
            reader.feed(chunk)
            body += reader.take()
            if reader.head_done:
                size = sum(len(n) + len(v) + 4 for n, v in reader.headers)
                assert size <= MAX_HEADER, size  # however the head was cut into reads
            else:
                assert reader._head_bytes <= MAX_HEADER + len(chunk), reader._head_bytes
        if not reader.done:
            reader.eof()
        body += reader.take()
    except BackendError:
        return ("refused",)
    head = (reader.status, reader.reason, tuple(reader.headers)) if reader.head_done else None
    return ("ok", head, bytes(body), reader.done, reader.upgraded)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    head_only = bool(data[0] & 1)
    cuts = data[1:2] * (data[1] % 5)
    stream = data[2:]
    whole = _run(stream, [stream] if stream else [], head_only)
    split = _run(stream, pieces(stream, cuts), head_only)
    if whole[0] == "ok" and split[0] == "ok":
        # An upgrade's tail and the end of a body are where the reads fell: compare what the
        # client would get (the head, and the body of a complete response).
        assert whole[1] == split[1], (whole, split)
        if whole[3] and split[3] and whole[4] is None:
            assert whole[2] == split[2], (whole, split)
    for outcome in (whole, split):
        if outcome[0] != "ok" or outcome[1] is None:
            continue
        reader = ResponseReader(head_only=head_only, max_header=MAX_HEADER)
        reader.status, reader.reason, headers = outcome[1]
        reader.headers = list(headers)
        try:
            block = response_block(reader)
        except BackendError:
            continue
        lines = block.split(b"\r\n")
        assert lines[-1] == b""
        for line in lines[1:-1]:
            assert b"\r" not in line and b"\n" not in line and line.count(b":") >= 1
            name = line.split(b":", 1)[0].lower()
            if reader.status != 101:
                assert name not in HOP_BY_HOP and name != b"content-length", line
