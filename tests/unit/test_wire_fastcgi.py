"""The FastCGI codec (wasp/wire/fastcgi.py) byte for byte, and the CGI head parser
(wasp/wire/cgi.py): what a script may and may not get past it."""

from __future__ import annotations

import struct

import pytest

from wasp.wire import cgi, fastcgi
from wasp.wire.cgi import CgiHeadError, HeadParser
from wasp.wire.fastcgi import EndRequest, FastCgiError, Reader, Stderr, Stdout


def test_begin_request_record_is_the_spec_layout():
    assert fastcgi.pack_begin(1) == bytes([1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    assert fastcgi.pack_begin(258, keep_conn=False)[2:4] == b"\x01\x02"
    assert fastcgi.pack_begin(1, keep_conn=False)[10] == 0


def test_records_are_padded_to_eight_bytes():
    rec = fastcgi.record(fastcgi.STDIN, 1, b"abc")
    assert rec[:8] == struct.pack(">BBHHBx", 1, 5, 1, 3, 5) and len(rec) == 16
    assert fastcgi.record(fastcgi.STDIN, 1) == bytes([1, 5, 0, 1, 0, 0, 0, 0])


def test_long_streams_split_into_records_of_at_most_65535():
    data = b"x" * 200_000
    out = fastcgi.pack_stdin(1, data)
    pos, total = 0, 0
    while pos < len(out):
        _v, rtype, _rid, length, padding = fastcgi.HEADER.unpack_from(out, pos)
        assert rtype == fastcgi.STDIN and 0 < length <= 65535
        total += length
        pos += 8 + length + padding
    assert total == len(data)


def test_name_value_pairs_short_and_long_lengths():
    pairs = [(b"A", b"1"), (b"LONG", b"v" * 200), (b"K" * 130, b"")]
    encoded = fastcgi.encode_pairs(pairs)
    assert encoded[:4] == b"\x01\x01A1"
    assert encoded[4] == 4 and encoded[5:9] == struct.pack(">I", 200 | 0x80000000)
    assert fastcgi.decode_pairs(encoded) == pairs
    assert fastcgi.encode_pairs([("S", "é")]) == b"\x01\x02S\xc3\xa9"
    assert fastcgi.encode_pairs([("S", b"\xff".decode("utf-8", "surrogateescape"))]) == b"\x01\x01S\xff"


@pytest.mark.parametrize("bad", [b"\x05\x01ab", b"\x80\x00", b"\x01", b"\x81\x00\x00\x00\x01ab"])
def test_truncated_pairs_are_refused(bad):
    with pytest.raises(FastCgiError):
        fastcgi.decode_pairs(bad)


def test_params_stream_ends_with_an_empty_record():
    out = fastcgi.pack_params(1, [("A", "1")])
    assert out.endswith(bytes([1, 4, 0, 1, 0, 0, 0, 0]))


def _app_stream(rid=1):
    return (fastcgi.record(fastcgi.STDOUT, rid, b"Content-Type: text/plain\r\n\r\nhi")
            + fastcgi.record(fastcgi.STDERR, rid, b"warn") + fastcgi.record(fastcgi.STDOUT, rid)
            + fastcgi.pack_end_request(rid, 0, fastcgi.REQUEST_COMPLETE))


def test_reader_events_whatever_the_split():
    stream = _app_stream()
    whole = Reader(1).feed(stream)
    assert [type(e) for e in whole] == [Stdout, Stderr, EndRequest]
    reader = Reader(1)
    events = []
    for i in range(len(stream)):
        events += reader.feed(stream[i:i + 1])
    assert [(type(e), getattr(e, "data", None)) for e in events] == \
        [(type(e), getattr(e, "data", None)) for e in whole]
    assert reader.ended and reader.buffered == 0


def test_reader_skips_other_request_ids_and_data_after_the_end():
    stream = fastcgi.record(fastcgi.STDOUT, 7, b"stale") + _app_stream(1) + fastcgi.record(fastcgi.STDOUT, 1, b"late")
    events = Reader(1).feed(stream)
    assert [getattr(e, "data", None) for e in events][:1] == [b"Content-Type: text/plain\r\n\r\nhi"]
    assert b"late" not in [getattr(e, "data", None) for e in events]


@pytest.mark.parametrize("bad", [
    bytes([2, 6, 0, 1, 0, 0, 0, 0]),                       # version 2
    fastcgi.record(fastcgi.STDIN, 1, b"x"),                # a web-server record type
    fastcgi.record(fastcgi.BEGIN_REQUEST, 1, b"\x00" * 8),
    fastcgi.record(fastcgi.END_REQUEST, 1, b"\x00" * 4),   # short END_REQUEST
    fastcgi.record(fastcgi.GET_VALUES_RESULT, 3, b""),     # management record with an id
])
def test_reader_refuses_what_an_application_never_sends(bad):
    with pytest.raises(FastCgiError):
        Reader(1).feed(bad)


def test_reader_keeps_the_events_before_a_bad_record():
    with pytest.raises(FastCgiError) as info:
        Reader(1).feed(fastcgi.record(fastcgi.STDOUT, 1, b"ok") + bytes([9, 6, 0, 1, 0, 0, 0, 0]))
    assert [e.data for e in info.value.events] == [b"ok"]


def test_end_request_statuses():
    (event,) = Reader(1).feed(fastcgi.pack_end_request(1, 3, fastcgi.OVERLOADED))
    assert event.app_status == 3 and event.protocol_status == fastcgi.OVERLOADED


# ---- the CGI head ----

def head_of(data: bytes, limit: int = cgi.MAX_HEAD):
    parser = HeadParser(limit)
    head = parser.feed(data)
    return head if head is not None else parser.finish()


def test_head_with_lf_or_crlf_and_the_body_after_it():
    for sep in (b"\n", b"\r\n"):
        head = head_of(b"Content-Type: text/html" + sep + b"X-A:  b " + sep + sep + b"body")
        assert head.status == 200 and head.headers == [(b"Content-Type", b"text/html"), (b"X-A", b"b")]
        assert head.body == b"body"


def test_status_header_and_reason():
    head = head_of(b"Status: 404 Not Here\nContent-Type: text/plain\n\n")
    assert (head.status, head.reason) == (404, b"Not Here")
    assert head.block() == b"404 Not Here\r\nContent-Type: text/plain\r\n"
    assert head_of(b"Status: 503\n\n").reason == b"Service Unavailable"


def test_location_without_status_is_302():
    head = head_of(b"Location: http://example.test/x\n\n")
    assert head.status == 302 and head.location == b"http://example.test/x"


def test_content_length_and_hop_by_hop():
    head = head_of(b"Content-Length: 5\nConnection: close\nTransfer-Encoding: chunked\n\nhello")
    assert head.content_length == 5 and head.headers == [(b"Content-Length", b"5")]


def test_head_split_anywhere():
    data = b"Status: 201 Created\r\nX-A: 1\r\n\r\nbody"
    for cut in range(1, len(data)):
        parser = HeadParser()
        head = parser.feed(data[:cut])
        body = head.body + data[cut:] if head is not None else None
        if head is None:
            head = parser.feed(data[cut:])
            body = head.body
        assert head.status == 201 and body == b"body"


@pytest.mark.parametrize("bad", [
    b"X-A: a\rSet-Cookie: evil=1\n\n",     # a bare CR: response splitting
    b"X-A: a\x00b\n\n",                      # NUL
    b"Bad Name: x\n\n",                      # not a token
    b"no colon here\n\n",
    b"X-A: a\n folded\n\n",                  # obs-fold
    b"Status: abc\n\n",
    b"Status: 200\nStatus: 404\n\n",
    b"Content-Length: -1\n\n",
    b"Content-Length: 1\nContent-Length: 2\n\n",
    b"Location: a\nLocation: b\n\n",
])
def test_heads_a_script_must_not_get_past(bad):
    with pytest.raises(CgiHeadError):
        head_of(bad)


def test_head_size_limit():
    parser = HeadParser(limit=100)
    with pytest.raises(CgiHeadError):
        parser.feed(b"X-Big: " + b"a" * 200)
    with pytest.raises(CgiHeadError):
        HeadParser(limit=100).feed(b"X-Big: " + b"a" * 200 + b"\n\nbody")


def test_output_that_ends_without_a_blank_line_or_without_anything():
    parser = HeadParser()
    assert parser.feed(b"Content-Type: text/plain\n") is None
    assert parser.finish().headers == [(b"Content-Type", b"text/plain")]
    with pytest.raises(CgiHeadError):
        HeadParser().finish()
