"""The reverse proxy's backend codec (wasp/wire/backend.py): requests it builds, responses it reads."""

import pytest

from wasp.wire.backend import (LAST_CHUNK, BackendError, BadRequestHeader, ResponseReader, chunk,
                               request_head, response_block)


def test_request_head_drops_framing_and_hop_by_hop():
    headers = [(b"Host", b"client.example"), (b"Content-Length", b"5"), (b"Content-Length", b"7"),
               (b"Transfer-Encoding", b"chunked"), (b"Connection", b"close, X-Secret"),
               (b"X-Secret", b"1"), (b"Keep-Alive", b"300"), (b"TE", b"trailers"),
               (b"Accept", b"*/*"), (b"Upgrade", b"h2c")]
    head = request_head("POST", b"/up?a=1", headers, b"10.0.0.1:8000", body="length", length=3)
    assert head.startswith(b"POST /up?a=1 HTTP/1.1\r\nHost: 10.0.0.1:8000\r\n")
    assert head.count(b"Content-Length") == 1 and b"Content-Length: 3\r\n" in head
    lower = head.lower()
    for gone in (b"transfer-encoding", b"x-secret", b"keep-alive", b"te:", b"upgrade", b"client.example",
                 b"connection"):
        assert gone not in lower
    assert b"Accept: */*\r\n" in head and head.endswith(b"\r\n\r\n")


def test_request_head_chunked_and_empty_post():
    assert b"Transfer-Encoding: chunked\r\n" in request_head("PUT", b"/", [], b"h", body="chunked")
    assert b"Content-Length: 0\r\n" in request_head("POST", b"/", [], b"h")
    assert b"Content-Length" not in request_head("GET", b"/", [], b"h")
    assert b"Connection: close\r\n" in request_head("GET", b"/", [], b"h", keep_alive=False)


@pytest.mark.parametrize("headers", [
    [(b"X-A", b"a\r\nX-Injected: 1")], [(b"X-A", b"a\nb")], [(b"X-A", b"a\x00")], [(b"Bad Name", b"v")],
    [(b"X-A:", b"v")]])
def test_request_head_refuses_unsafe_headers(headers):
    with pytest.raises(BadRequestHeader):
        request_head("GET", b"/", headers, b"h")


def test_request_head_refuses_unsafe_target_and_method():
    for target in (b"/a b", b"/a\r\nX: 1", b"http://evil/"):
        with pytest.raises(BadRequestHeader):
            request_head("GET", target, [], b"h")
    with pytest.raises(BadRequestHeader):
        request_head("GET /x", b"/", [], b"h")
    with pytest.raises(BadRequestHeader):
        request_head("GET", b"/", [], b"h\r\nX: 1")


def test_websocket_head_keeps_upgrade():
    head = request_head("GET", b"/ws", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                                        (b"Sec-WebSocket-Key", b"k")], b"h", websocket=True)
    assert b"Connection: Upgrade\r\nUpgrade: websocket\r\n" in head and b"Sec-WebSocket-Key: k" in head


def test_chunk():
    assert chunk(b"hello") == b"5\r\nhello\r\n" and LAST_CHUNK == b"0\r\n\r\n"


def feed_all(reader, data, step=1):
    for i in range(0, len(data), step):
        reader.feed(data[i:i + step])


def test_reads_a_content_length_response_byte_by_byte():
    r = ResponseReader()
    feed_all(r, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
    assert r.head_done and r.done and r.status == 200 and r.reason == b"OK" and r.keep_alive
    assert r.content_length == 5 and r.take() == b"hello" and r.take() == b""


def test_reads_chunked_and_skips_100_continue():
    r = ResponseReader()
    r.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\n")
    assert r.status == 201 and r.done and r.take() == b"abc"


def test_head_response_with_length_has_no_body():
    r = ResponseReader(head_only=True)
    r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert r.done and r.content_length == 100 and r.take() == b"" and r.keep_alive


def test_close_delimited_body_ends_at_eof_but_length_body_is_cut():
    r = ResponseReader()
    r.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart")
    assert not r.done
    r.eof()
    assert r.done and not r.keep_alive and r.take() == b"part"
    r = ResponseReader()
    r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart")
    with pytest.raises(BackendError):
        r.eof()
    with pytest.raises(BackendError):
        ResponseReader().eof()


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: a\x00\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"NOTHTTP\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_refuses_ambiguous_or_split_responses(raw):
    r = ResponseReader()
    with pytest.raises(BackendError):
        r.feed(raw)
        r.eof()


def test_endless_header_hits_the_limit():
    r = ResponseReader(max_header=1024)
    r.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(BackendError):
        for _ in range(100):
            r.feed(b"X-Filler: " + b"a" * 100 + b"\r\n")


def test_too_many_headers():
    r = ResponseReader(max_headers=10)
    with pytest.raises(BackendError):
        r.feed(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 11 + b"\r\n")


def test_upgrade_keeps_the_tail():
    r = ResponseReader()
    r.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: x\r\n\r\n\x81\x02hi")
    assert r.status == 101 and r.upgraded == b"\x81\x02hi" and not r.keep_alive
    block = response_block(r)
    assert block.startswith(b"101 Switching Protocols\r\n") and b"Upgrade: websocket" in block


def test_response_block_strips_hop_by_hop_and_rewrites():
    r = ResponseReader()
    r.feed(b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1:8000/x\r\nConnection: X-Drop, keep-alive\r\n"
           b"X-Drop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\nSet-Cookie: a=b\r\n\r\n")
    block = response_block(r, rewrite=lambda n, v: v.replace(b"10.0.0.1:8000", b"www.test")
                           if n == b"location" else v, add=[(b"Set-Cookie", b"ARRAffinity=1")])
    assert block == (b"302 Found\r\nLocation: http://www.test/x\r\nSet-Cookie: a=b\r\n"
                     b"Set-Cookie: ARRAffinity=1\r\n")


def test_a_big_head_in_one_read_hits_the_limit_too():
    r = ResponseReader(max_header=1024)
    with pytest.raises(BackendError):
        r.feed(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000 + b"\r\nContent-Length: 0\r\n\r\n")


def test_a_second_response_after_a_204_changes_nothing():
    r = ResponseReader()
    r.feed(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: evil=1\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 204 and r.headers == [(b"X-A", b"1")] and r.done and not r.keep_alive
