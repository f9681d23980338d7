"""Fuzz harness: what a CGI or FastCGI application sends the worker, the one peer a PHP bug or a
compromised script controls: wasp/wire/fastcgi.py's `Reader` (records from the application's
socket) and wasp/wire/cgi.py's `HeadParser` (the response head in its stdout).

Each input is used three ways:

* as FastCGI bytes: `Reader` fed in pieces gives the same events (or the same refusal) as the
  whole stream at once, raises nothing but FastCgiError, and holds no more than one record;
* as a CGI response: `HeadParser` fed in pieces gives the same head (or CgiHeadError) as the
  whole output, and a head it accepts builds a response block with exactly one CRLF per line and
  no NUL (nothing a script writes can split the response or add a header of its choosing);
* as a recipe for name-value pairs, which must round-trip through encode_pairs/decode_pairs.
"""

from __future__ import annotations

import atheris

from split import pieces
from wasp.wire import cgi, fastcgi


def seeds():
    rid = 1
    yield (fastcgi.stream(fastcgi.STDOUT, rid, b"Content-Type: text/html\r\n\r\nhello")
           + fastcgi.record(fastcgi.STDERR, rid, b"warning") + fastcgi.record(fastcgi.STDOUT, rid)
           + fastcgi.pack_end_request(rid))
    yield fastcgi.record(fastcgi.GET_VALUES_RESULT, 0, fastcgi.encode_pairs([("FCGI_MPXS_CONNS", "0")]))
    yield b"Status: 404 Not Found\nContent-Type: text/plain\nX-A: b\n\nbody"
    yield b"Location: http://example.test/\r\n\r\n"


def _events(reader, parts) -> tuple[list, bool]:
    out = []
    for part in parts:
        refused = False
        try:
            got = reader.feed(part)
        except fastcgi.FastCgiError as exc:
            got, refused = exc.events, True
        for event in got:
            out.append((type(event).__name__, getattr(event, "data", None),
                        getattr(event, "app_status", None), getattr(event, "protocol_status", None),
                        getattr(event, "pairs", None)))
        if refused:
            return out, True
        assert reader.buffered < 8 + 0xFFFF + 255 + 8
    return out, False


def check_fastcgi(data: bytes) -> None:
    want, refused = _events(fastcgi.Reader(1), [data])
    got, got_refused = _events(fastcgi.Reader(1), pieces(data, data[-8:]))
    assert got_refused == refused and got == want, (got, want)


def _head(parts):
    parser = cgi.HeadParser(limit=4096)
    try:
        for part in parts:
            head = parser.feed(part)
            if head is not None:
                break
        else:
            head = parser.finish()
    except cgi.CgiHeadError:
        return None
    return head


def check_cgi(data: bytes) -> None:
    whole = _head([data])
    split = _head(pieces(data, data[:8]))
    assert (whole is None) == (split is None)
    if whole is None:
        return
    assert (whole.status, whole.reason, whole.headers, whole.content_length) == \
        (split.status, split.reason, split.headers, split.content_length)
    block = whole.block()
    lines = 1 + len(whole.headers)
    assert block.count(b"\r\n") == lines and block.count(b"\n") == lines and block.count(b"\r") == lines
    assert b"\x00" not in block and 100 <= whole.status <= 999


def check_pairs(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    pairs = [(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)), fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)))
             for _ in range(fdp.ConsumeIntInRange(0, 5))]
    assert fastcgi.decode_pairs(fastcgi.encode_pairs(pairs)) == pairs
    try:
        fastcgi.decode_pairs(data)
    except fastcgi.FastCgiError:
        pass


def test_one_input(data: bytes) -> None:
    check_fastcgi(data)
    check_cgi(data)
    check_pairs(data)
