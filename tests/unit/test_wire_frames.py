"""The frame codec refuses malformed payloads with its own error (found by fuzz/frames.py).

A worker runs applications, so the front reads its frames as untrusted input, and the worker reads
the front's the same way: a payload that does not decode must raise `ProtocolError` (the channel
is torn down), never msgspec's or struct's errors, and never decode into something else.
"""

from __future__ import annotations

import pytest

from wasp.wire import control
from wasp.wire import frames as fr
from wasp.wire.frames import ProtocolError


@pytest.mark.parametrize("decode", [fr.unpack_hello, fr.unpack_request, fr.unpack_file, fr.unpack_cache])
@pytest.mark.parametrize("payload", [b"", b"\x93", b"\xc1", b"\x93\x01\x02", b"\x93\xa1x\x02\x03",
                                     b"\xdd\xff\xff\xff\xff"])
def test_msgpack_payloads_that_do_not_decode_raise_protocol_error(decode, payload):
    with pytest.raises(ProtocolError):
        decode(payload)


@pytest.mark.parametrize("payload", [b"", b"\x00" * 13])
def test_a_response_payload_shorter_than_its_fixed_part_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        fr.unpack_response(payload)


@pytest.mark.parametrize("block_len", [-1, -14, 6, 2 ** 31 - 1])
def test_a_response_block_length_outside_the_payload_is_a_protocol_error(block_len):
    # 14 bytes of fixed part, then 5 bytes: a block length below 0 or past the end is a lie; before
    # the fix -1 gave an empty block and a body that began inside the fixed part.
    payload = fr._RESP.pack(0, 5, block_len) + b"200 O"
    with pytest.raises(ProtocolError):
        fr.unpack_response(payload)


def test_a_response_round_trips_with_and_without_an_inline_body():
    block = b"200 OK\r\nA: b\r\n"
    frame = fr.pack_response(3, block, 5, 7, b"hello")
    [(ftype, flags, sid, payload)] = fr.FrameReader().feed(frame)
    assert (ftype, flags, sid) == (fr.FrameType.RESPONSE, fr.FLAG_FIN, 3)
    assert fr.unpack_response(payload) == (7, 5, block, b"hello")
    [(_, flags, _, payload)] = fr.FrameReader().feed(fr.pack_response(3, block, -1))
    assert flags == 0 and fr.unpack_response(payload) == (0, -1, block, b"")


@pytest.mark.parametrize("payload", [b"", b"\x01\x00\x00", b"\x01\x00\x00\x00\x00"])
def test_a_window_payload_that_is_not_four_bytes_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        fr.unpack_window(payload)


@pytest.mark.parametrize("payload", [b"\x01", b"\xf4\x01\x00"])
def test_an_abort_payload_that_is_not_a_u16_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        fr.unpack_abort(payload)


def test_an_abort_without_a_status_means_500():
    assert fr.unpack_abort(b"") == 500 and fr.unpack_abort(fr._U16.pack(503)) == 503


def test_an_abort_may_carry_a_substatus():
    [(_ftype, _flags, _sid, payload)] = fr.FrameReader().feed(fr.pack_abort(7, 0, 503))
    assert fr.unpack_abort(payload) == 0 and fr.abort_substatus(payload) == 503
    [(_ftype, _flags, _sid, payload)] = fr.FrameReader().feed(fr.pack_abort(7, 503))
    assert len(payload) == 2 and fr.abort_substatus(payload) == 0


def test_a_frame_over_the_payload_limit_is_refused_from_its_header_alone():
    reader = fr.FrameReader()
    with pytest.raises(ProtocolError):
        reader.feed(fr.pack_header(fr.FrameType.BODY, 1, fr.MAX_PAYLOAD + 1))


@pytest.mark.parametrize("body", [b"\xc1", b"\x93\x01", b"\xdd\xff\xff\xff\xff", b"\x81\xa2op"])
def test_control_messages_that_do_not_decode_raise_the_codecs_error(body):
    with pytest.raises(control.ControlProtocolError):
        control.MessageReader().feed(control._LEN.pack(len(body)) + body)


@pytest.mark.parametrize("nfds", [-1, "2", 1.5, 10 ** 6])
def test_a_control_message_with_a_bad_descriptor_count_is_refused(nfds):
    with pytest.raises(control.ControlProtocolError):
        control.MessageReader().feed(control.encode({"op": "x", "nfds": nfds}))


def test_control_messages_round_trip_across_split_reads():
    data = control.encode({"op": "a", "n": 1}) + control.encode({"op": "b", "nfds": 2})
    reader = control.MessageReader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i:i + 1])
    assert got == [{"op": "a", "n": 1}, {"op": "b", "nfds": 2}]


def test_frame_reader_views_only_large_payloads_that_fill_most_of_the_read():
    body = bytes(range(256)) * 100                    # 25,600 bytes
    big = fr.pack_response(1, b"200 OK\r\n", len(body), body=body)
    small = fr.pack_response(2, b"200 OK\r\n", 5, body=b"hello")
    reader = fr.FrameReader(views=True)
    [(_, _, sid, payload)] = reader.feed(big)
    assert sid == 1 and isinstance(payload, memoryview)
    substatus, length, block, got = fr.unpack_response(payload)
    assert type(block) is bytes and block == b"200 OK\r\n"
    assert isinstance(got, memoryview) and bytes(got) == body and length == len(body)
    # A small payload, and a large one sharing its read with more than its own size: copies.
    [(_, _, _, payload)] = reader.feed(small)
    assert type(payload) is bytes
    frames = reader.feed(big + b"\0" * (len(big) + 1))
    assert type(frames[0][3]) is bytes and fr.unpack_response(frames[0][3])[3] == body
    # Split across reads: assembled, then viewed; the default reader always copies.
    reader = fr.FrameReader(views=True)
    assert reader.feed(big[:1000]) == []
    [(_, _, _, payload)] = reader.feed(big[1000:])
    assert bytes(fr.unpack_response(payload)[3]) == body
    [(_, _, _, payload)] = fr.FrameReader().feed(big)
    assert type(payload) is bytes


@pytest.mark.parametrize("views", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 10, 4096, 65536])
def test_frames_cut_anywhere_across_reads_come_out_whole(chunk, views):
    big = bytes(range(256)) * 1024                      # 256 KiB payload
    stream = (fr.pack_window(1, 5) + fr.pack_body(3, big) + fr.pack_end(3)
              + fr.pack_response(4, b"200 OK\r\n", 2, 0, b"ok"))
    reader = fr.FrameReader(views=views)
    got = []
    for pos in range(0, len(stream), chunk):
        got += reader.feed(stream[pos:pos + chunk])
        assert reader.buffered < len(big) + 2 * fr.HEADER_SIZE + chunk
    assert reader.buffered == 0
    assert [(t, s) for t, _f, s, _p in got] == [(fr.FrameType.WINDOW, 1), (fr.FrameType.BODY, 3),
                                                (fr.FrameType.END, 3), (fr.FrameType.RESPONSE, 4)]
    assert got[1][3] == big and type(got[1][3]) is bytes
    assert all(type(p) is bytes for _t, _f, _s, p in got)


def test_a_frame_over_the_limit_is_refused_when_its_header_completes_in_a_later_read():
    reader = fr.FrameReader()
    header = fr.pack_header(fr.FrameType.BODY, 1, fr.MAX_PAYLOAD + 1)
    assert reader.feed(fr.pack_end(2) + header[:4]) != []
    with pytest.raises(ProtocolError):
        reader.feed(header[4:])
