"""The front gives the same answer however the client's bytes are split into reads (found by
fuzz/http1.py, which feeds every input in one piece and in many and compares).

Before: a head's raw bytes were counted only in reads that did not begin it, so an incomplete
header line over max_field_length got 431 when trickled but no answer in one read, and a line
padded with whitespace (which on_header does not see) was refused or accepted by read size.
"""

from __future__ import annotations

import pytest

from front_fakes import FrontRig, split_responses
from wasp.config import model
from wasp.wire.frames import FLAG_FIN, FrameType

LIMITS = dict(max_request_bytes=model.Size(2048), max_field_length=model.Size(512),
              max_allowed_content_length=model.Size(1024))


def answer(tmp_path, data: bytes, piece: int | None):
    rig = FrontRig(tmp_path, limits=model.Limits(**LIMITS))
    worker = rig.worker()
    conn, transport = rig.connect()
    pieces = [data] if piece is None else [data[i:i + piece] for i in range(0, len(data), piece)]
    for part in pieces:
        if transport.closed or transport.eof:
            break
        conn.data_received(part)
        for sid, _head, fin in worker.requests():
            worker.respond(sid, b"ok")
    return [status for status, _, _ in split_responses(transport.take())]


SPLITS = [None, 1, 7, 100, 511, 513]


@pytest.mark.parametrize("piece", SPLITS)
def test_an_unfinished_header_line_over_max_field_length_is_refused_in_any_read(tmp_path, piece):
    assert answer(tmp_path, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 600, piece) == [431]


@pytest.mark.parametrize("piece", SPLITS)
def test_a_line_padded_with_whitespace_counts_its_raw_bytes_in_any_read(tmp_path, piece):
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad:" + b" " * 600 + b"v\r\n\r\n"
    assert answer(tmp_path, data, piece) == [431]


@pytest.mark.parametrize("piece", SPLITS)
def test_a_header_line_at_max_field_length_passes_in_any_read(tmp_path, piece):
    name = b"X-Edge"
    value = b"v" * (512 - len(name) - 2)  # "X-Edge: vvv...": 512 bytes before the CRLF
    data = b"GET / HTTP/1.1\r\nHost: x\r\n" + name + b": " + value + b"\r\n\r\n"
    assert answer(tmp_path, data, piece) == [200]


@pytest.mark.parametrize("piece", SPLITS)
def test_an_unfinished_head_over_the_raw_bound_is_refused_in_any_read(tmp_path, piece):
    data = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d:%s\r\n" % (i, b" " * 300) for i in range(12))
    assert answer(tmp_path, data, piece) == [431]


@pytest.mark.parametrize("piece", SPLITS)
def test_a_bad_header_before_the_limit_is_the_error_in_any_read(tmp_path, piece):
    # llhttp refuses the space in the name at byte 30; the line's limit would break at byte 540:
    # the first fault in byte order is the answer, whatever the reads.
    data = b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: " + b"a" * 600
    assert answer(tmp_path, data, piece) == [400]


@pytest.mark.parametrize("lead", [b"", b"\r\n", b"\n\r\n"])
@pytest.mark.parametrize("piece", SPLITS)
def test_a_request_line_is_held_to_max_url_not_max_field_length(tmp_path, piece, lead):
    # The request line is no header field: a target of 600 bytes passes max_url (16 KiB), even
    # after the empty lines a client may send before it.
    data = lead + b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert answer(tmp_path, data, piece) == [200]


def answer_pieces(tmp_path, pieces: list[bytes]):
    rig = FrontRig(tmp_path, limits=model.Limits(**LIMITS))
    worker = rig.worker()
    conn, transport = rig.connect()
    for part in pieces:
        conn.data_received(part)
        for _ in range(20):  # bounded: each round answers what reached the worker
            frames = worker.frames()
            if not frames:
                break
            for ftype, flags, sid, _payload in frames:
                if ftype == FrameType.END or ftype == FrameType.REQUEST and flags & FLAG_FIN:
                    worker.respond(sid, b"ok")
    return [status for status, _, _ in split_responses(transport.take())]


HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
BODY = b"800\r\n" + (b"a" * 63 + b"\n") * 32 + b"\r\n0\r\n\r\n"  # 2048 bytes declared


@pytest.mark.parametrize("cut", range(len(HEAD) - 3, len(HEAD)))
def test_a_head_whose_last_line_end_comes_a_byte_at_a_time_still_starts_the_chunk_scanner(tmp_path, cut):
    # Before: a read of one byte kept only that byte as the "tail" the next read's head end is
    # looked for with, so the end of "\r\n" + "\r" + "\n..." was missed, llhttp took the body
    # without the scanner, and a chunk over max_allowed_content_length went to the worker.
    reads = [HEAD[:cut]] + [HEAD[i:i + 1] for i in range(cut, len(HEAD) - 1)] + [HEAD[-1:] + BODY]
    assert answer_pieces(tmp_path, reads) == [413]
    assert answer_pieces(tmp_path, [HEAD + BODY]) == [413]


def test_many_pipelined_upgrades_wasp_does_not_speak_in_one_read(tmp_path):
    # Before: each request with an Upgrade the front does not speak (h2c) re-entered
    # data_received with the rest of the read, so 1500 of them in one read (about 100 KB, well
    # under one 256 KiB read) raised RecursionError out of the protocol callback.
    n = 1500
    req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    conn, transport = rig.connect()
    conn.data_received(req * n)
    statuses = []
    for _ in range(n + 1):  # bounded: one answer per round
        answered = worker.requests()
        if not answered:
            break
        for sid, _head, _fin in answered:
            worker.respond(sid, b"ok")
        statuses += [s for s, _, _ in split_responses(transport.take())]
    assert statuses == [200] * n


BARE_CR = (b"POST /upload HTTP/1.1\r\nHost: x\nTransfer-Encoding: chunked\r\n\r"
           b"0\r\nX-B: 2\r\n\n\rGET /next HTTP/1.1\r\nHost: x\r\n\r\n")


@pytest.mark.parametrize("piece", SPLITS)
def test_a_head_ended_by_a_bare_cr_is_refused_in_any_read(tmp_path, piece):
    # Found by fuzz/http1.py: llhttp ends a head at a CR without its LF only once it sees the next
    # byte, so the cut the front made after the CR left llhttp still in the head; the next piece
    # (the body) went to llhttp with no ChunkScanner walking it, and the scanner born meanwhile
    # raised AttributeError out of data_received. A bare CR ends no line (RFC 9112 §2.2): 400.
    assert answer(tmp_path, BARE_CR, piece) == [400]


@pytest.mark.parametrize("lead", [b"", b"\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_a_bare_cr_at_the_end_of_a_read_is_refused_when_the_next_byte_comes(tmp_path, lead):
    head = lead + b"GET /a HTTP/1.1\r\nHost: x\r\n\r"
    statuses = answer_pieces(tmp_path, [head, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert statuses[-1] == 400 and statuses[:-1] == ([200] if lead.startswith(b"GET") else [])


def test_a_crlf_split_after_its_cr_still_ends_the_head(tmp_path):
    assert answer_pieces(tmp_path, [b"GET / HTTP/1.1\r\nHost: x\r\n\r", b"\n"]) == [200]


@pytest.mark.parametrize("cut", range(1, 6))
def test_empty_lines_with_a_bare_cr_between_requests_are_skipped_in_any_read(tmp_path, cut):
    # Found by fuzz/http1.py: llhttp skips CRs and LFs between requests; a "head end" found among
    # them with the previous read's tail (no head in progress) refused the next request with 400
    # when the read ended inside them, and not when they came in one read.
    gap = b"\r\n\r\r\n"
    first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + gap[:cut]
    second = gap[cut:] + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    assert answer_pieces(tmp_path, [first + second]) == [200, 200]
    assert answer_pieces(tmp_path, [first, second]) == [200, 200]


# A whole head in one read, shorter than a header line may be, skips head_end and the HeadScanner
# (connection.py's common read): every form near that shortcut answers as when trickled.
WHOLE_HEADS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                       # the shortcut
    b"GET / HTTP/1.1\r\n\r\n",                                  # no header at all: 400, no Host
    b"GET / HTTP/1.1\nHost: x\n\n",                             # bare LFs: the general path
    b"GET / HTTP/1.1\r\nHost: x\r\n\n",                         # CRLF then a bare LF
    b"GET / HTTP/1.1\r\nHost: x\n\r\n",                         # LF then CRLF
    b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",                   # an empty line before the request
    b"GET / HTTP/1.1\r\nHost: x\r\n\rX: y\r\n\r\n",             # a bare CR ending a line early
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 470 + b"\r\n\r\n",   # 511 bytes: the shortcut
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 471 + b"\r\n\r\n",   # 512: the general path
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 600 + b"\r\n\r\n",   # over the line limit: 431
]


@pytest.mark.parametrize("data", WHOLE_HEADS)
def test_a_whole_head_in_one_read_answers_as_when_trickled(tmp_path, data):
    one = answer(tmp_path / "one", data, None)
    assert one == answer(tmp_path / "trickled", data, 1) == answer(tmp_path / "sevens", data, 7)
    assert one, data


CHUNKED = b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("cut", [None, *range(1, 16)])
def test_a_chunk_size_line_ending_in_lf_lf_is_400_in_any_read(tmp_path, cut):
    # Found by fuzz/http1.py: llhttp reads "4\n\n" as one line end (the second LF is taken as the
    # first one's partner) where a bare-LF parser reads a line end and a data byte. In one read the
    # front accepted it (body "\r\r\r\n"), cut after "4\n\n" it said 400: now 400 at every cut.
    body = b"4\n\n\r\r\r\n\r\n0\r\n\r\n"
    data = CHUNKED + body
    rig = FrontRig(tmp_path, limits=model.Limits(**LIMITS))
    worker = rig.worker()
    conn, transport = rig.connect()
    pieces = [data] if cut is None else [data[:len(CHUNKED) + cut], data[len(CHUNKED) + cut:]]
    for part in pieces:
        if transport.closed or transport.eof:
            break
        conn.data_received(part)
    assert worker.requests() == [] or all(not fin for _sid, _head, fin in worker.requests())
    assert [status for status, _, _ in split_responses(transport.take())] == [400]


@pytest.mark.parametrize("piece", SPLITS)
def test_bare_lf_chunk_lines_without_the_ambiguity_still_pass(tmp_path, piece):
    data = CHUNKED + b"4\nabcd\n5\r\n12345\r\n0\r\n\r\n"
    assert answer(tmp_path, data, piece) == [200]
