"""Chunked-body limits: wasp.wire.chunked against llhttp, and the front against endless framing."""

from __future__ import annotations

import random

import httptools
import pytest

from front_fakes import FrontRig, split_responses
from wasp.config import model
from wasp.wire.chunked import ChunkScanner, head_end

HEAD = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


class _Trace:
    def __init__(self):
        self.done_at = None
        self.body = 0
        self.complete = False
        self.pos = 0

    def on_headers_complete(self):
        self.done_at = self.pos

    def on_body(self, data):
        self.body += len(data)

    def on_message_complete(self):
        self.complete = True


def _llhttp(trace):
    parser = httptools.HttpRequestParser(trace)
    parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True, lenient_optional_lf_after_cr=True)
    return parser


def _random_head(rnd: random.Random) -> bytes:
    eol = [b"\r\n", b"\n"]
    lines = [rnd.choice([b"", b"\r\n", b"\n"]) + b"GET /%d HTTP/1.1" % rnd.randrange(100)]
    for i in range(1 + rnd.randrange(5)):  # llhttp ends a head with no fields later; needs Host anyway
        lines.append(b"X-%d: %s" % (i, b"v" * rnd.randrange(20)))
    return b"".join(line + rnd.choice(eol) for line in lines) + rnd.choice(eol)


def test_head_end_agrees_with_llhttp_at_every_split():
    rnd = random.Random(7)
    for _ in range(300):
        head = _random_head(rnd)
        trace = _Trace()
        parser = _llhttp(trace)
        for i in range(len(head)):   # byte by byte: where llhttp says the head ends
            trace.pos = i + 1
            parser.feed_data(head[i:i + 1])
            if trace.done_at:
                break
        assert trace.done_at == len(head), head
        data = head + b"5\r\nhello"
        assert head_end(data) == len(head), head
        cut = rnd.randrange(1, len(head))
        first, second = data[:cut], data[cut:]
        assert head_end(first) in (-1, len(first)) or head_end(first) < cut
        if head_end(first) == -1:
            assert head_end(second, 0, first) == len(head) - cut, (head, cut)


def _random_body(rnd: random.Random) -> tuple[bytes, int]:
    eol = rnd.choice([b"\r\n", b"\n"])
    parts = []
    total = 0
    for _ in range(rnd.randrange(4)):
        size = rnd.randrange(1, 300)
        total += size
        ext = rnd.choice([b"", b";a=b", b';q="x y"', b";k"])
        data = bytes(rnd.randrange(256) for _ in range(size))
        if eol == b"\n" and data[:1] == b"\n":
            data = b"x" + data[1:]  # "size LF LF" is refused as ambiguous (test_front_split_reads)
        parts.append(b"%x%s%s%s%s" % (size, ext, eol, data, eol))
    parts.append(b"0\r\n")  # after "0\n" llhttp takes no empty line as the end (the front: 400)
    for i in range(rnd.randrange(3)):
        parts.append(b"T-%d: t%s" % (i, eol))
    parts.append(eol)
    return b"".join(parts), total


def test_scanner_ends_where_llhttp_ends_the_body():
    rnd = random.Random(11)
    for _ in range(300):
        body, total = _random_body(rnd)
        trace = _Trace()
        parser = _llhttp(trace)
        parser.feed_data(HEAD)
        scanner = ChunkScanner(0, 16384, 16384)
        pos = 0
        data = body + b"GET / HTTP/1.1\r\n"
        cuts = sorted(rnd.sample(range(1, len(data)), min(4, len(data) - 1)))
        for a, b in zip([0] + cuts, cuts + [len(data)]):
            piece = data[a:b]
            end = scanner.feed(piece)
            if not scanner.done:
                assert end == len(piece)
            parser.feed_data(piece[:end])
            pos += end
            if scanner.done:
                break
        assert scanner.done and trace.complete and pos == len(body), body
        assert scanner.data_bytes == trace.body == total


# ---- the front against endless framing -------------------------------------------------------

def _stream(conn, transport, first: bytes, piece: bytes, budget: int) -> int:
    """Feed `first`, then `piece` until the front answers or closes; the bytes fed."""
    fed = 0
    for data in [first] + [piece] * (budget // len(piece) + 1):
        if transport.out or transport.closed:
            break
        conn.data_received(data)
        fed += len(data)
    return fed


@pytest.mark.parametrize("piece", [1000, 7, 70000], ids=["1k", "7", "70k"])
def test_an_endless_trailer_line_is_431_within_the_limit(tmp_path, piece):
    rig = FrontRig(tmp_path)
    rig.worker()
    conn, transport = rig.connect()
    fed = _stream(conn, transport, HEAD + b"5\r\nhello\r\n0\r\nX-Endless: ", b"a" * piece, 10_000_000)
    [(status, headers, body)] = split_responses(bytes(transport.out))
    assert status == 431 and headers["connection"] == "close"
    assert fed <= len(HEAD) + 30 + 16384 + piece
    assert transport.eof or transport.closed
    other, other_t = rig.connect(peername=("127.0.0.1", 50001))
    other.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not other_t.closed


def test_endless_short_trailer_lines_are_431_within_max_request_bytes(tmp_path):
    rig = FrontRig(tmp_path)
    rig.worker()
    conn, transport = rig.connect()
    fed = _stream(conn, transport, HEAD + b"0\r\n", b"X-T: " + b"t" * 95 + b"\r\n", 10_000_000)
    [(status, _, _)] = split_responses(bytes(transport.out))
    assert status == 431
    assert fed <= 16384 + 102
    rig.server.flush_logs()
    text = (tmp_path / "logs" / "httperr" / "httperr1.log").read_text()
    assert " 431 1 RequestLength " in text


@pytest.mark.parametrize("piece", [1000, 70000], ids=["1k", "70k"])
def test_an_endless_chunk_extension_is_400_within_the_line_limit(tmp_path, piece):
    rig = FrontRig(tmp_path)
    rig.worker()
    conn, transport = rig.connect()
    fed = _stream(conn, transport, HEAD + b"5;ext=", b"e" * piece, 10_000_000)
    [(status, headers, _)] = split_responses(bytes(transport.out))
    assert status == 400 and headers["connection"] == "close"
    assert fed <= len(HEAD) + 16384 + piece


def test_endless_leading_zeros_in_a_chunk_size_are_400(tmp_path):
    rig = FrontRig(tmp_path)
    conn, transport = rig.connect()
    fed = _stream(conn, transport, HEAD, b"0" * 1000, 10_000_000)
    assert split_responses(bytes(transport.out))[0][0] == 400
    assert fed <= len(HEAD) + 16384 + 1000


def test_a_declared_chunk_size_over_the_limit_is_413_1_before_its_bytes(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_allowed_content_length=1000))
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(HEAD)
    for digit in b"3e9":          # 0x3e9 = 1001, one digit a read
        assert not transport.out
        conn.data_received(bytes([digit]))
    [(status, headers, body)] = split_responses(bytes(transport.out))
    assert status == 413 and b"HTTP Error 413.1." in body and headers["connection"] == "close"
    assert worker.frames()[-1][0] != 0  # the request reached the worker and was cancelled
    rig.server.flush_logs()
    w3c = next((tmp_path / "logs" / "W3SVC1").glob("*.log")).read_text()
    assert " 413 1 " in w3c


def test_a_chunked_body_at_the_limit_is_accepted(tmp_path):
    rig = FrontRig(tmp_path, limits=model.Limits(max_allowed_content_length=1000))
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(HEAD + b"3e8\r\n" + b"a" * 1000 + b"\r\n0\r\n\r\n")
    frames = worker.frames()
    assert frames and not transport.out and not transport.closed
