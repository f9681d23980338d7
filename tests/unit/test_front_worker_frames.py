"""A worker frame whose payload does not decode tears that worker's channel down, as a framing
error does, on both ends: it is the peer breaking the protocol, not a bug in the front or the
worker (found by fuzz/frames.py: the codec used to raise struct's and msgspec's errors)."""

from __future__ import annotations

import socket

import pytest

from front_fakes import FrontRig
from wasp.worker.datachannel import DataChannel
from wasp.wire import frames as fr


def _bad_frames(sid):
    return [fr.pack(fr.FrameType.WINDOW, sid, b"\x01\x00"),
            fr.pack(fr.FrameType.FILE, sid, b"\x93\x01"),
            fr.pack(fr.FrameType.RESPONSE, sid, b"\x00" * 13),
            fr.pack(fr.FrameType.RESPONSE, sid, fr._RESP.pack(0, 0, -1) + b"200 OK\r\n"),
            fr.pack(fr.FrameType.USER, sid, b"Basic\0\xff"),
            fr.pack(fr.FrameType.USER, sid, b"no separator")]


@pytest.mark.parametrize("index", range(6))
def test_front_closes_a_worker_link_that_sends_an_undecodable_payload(tmp_path, index):
    rig = FrontRig(tmp_path)
    faults = []
    rig.server.on_fault = faults.append
    worker = rig.worker()
    conn, client = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _head, _fin)] = worker.requests()
    worker.feed(_bad_frames(sid)[index])
    assert faults == []
    assert worker.transport.closed
    worker.crash()  # the transport's close ends in connection_lost
    # The frame's own request is answered 502, a bad gateway (for a WINDOW frame the response had
    # not started, so the front can still answer it), and nothing leaks.
    assert client.take().startswith(b"HTTP/1.1 502 ")
    assert worker.link.streams == {} and worker.link.inflight == 0


class _Loop:
    def add_reader(self, fd, callback):
        self.reader = callback

    def remove_reader(self, fd):
        self.reader = None

    def call_soon(self, callback, *args):
        pass


def test_worker_closes_a_channel_whose_window_payload_does_not_decode():
    ours, theirs = socket.socketpair()
    closed = []
    loop = _Loop()
    channel = DataChannel(ours, loop, on_request=lambda *a: None, on_drain=lambda c: None,
                          on_close=closed.append, on_done=lambda ctx: None)
    try:
        windows = []

        class Ctx:
            sid = 1
            cancelled = False

            def on_window(self, n):
                windows.append(n)

            def cancel(self):
                pass

        channel.streams[1] = Ctx()
        theirs.sendall(fr.pack_window(1, 5) + fr.pack(fr.FrameType.WINDOW, 1, b"\x01"))
        loop.reader()
        assert windows == [5]
        assert closed == [channel] and channel.closed and channel.streams == {}
    finally:
        channel.close()
        theirs.close()


@pytest.mark.parametrize("block", [b"+20 OK\r\n", b"20 OK\r\n", b" 200 OK\r\n", b"2_0 OK\r\n",
                                   b"2000 OK\r\n", b"099 Low\r\n", b"OK\r\n"])
@pytest.mark.parametrize("as_file", [False, True])
def test_a_worker_status_that_is_not_three_digits_is_a_bad_gateway(tmp_path, block, as_file):
    # The front writes "HTTP/1.1 " + the worker's block: int(block[:3]) took "+20", "2_0" and
    # " 20", and the client got an invalid status line.
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    conn, client = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _head, _fin)] = worker.requests()
    if as_file:
        worker.feed(fr.pack_file(sid, fr.FileSpan(block, str(tmp_path / "none"), 0, 0)))
    else:
        worker.respond(sid, b"ok", block=block)
    assert client.take().startswith(b"HTTP/1.1 502 ")


def test_the_user_a_worker_names_reaches_the_w3c_log(tmp_path):
    # cs-username: the worker's authentication module set a user; the USER frame came with the
    # response. A space in the name is escaped as IIS escapes it ("+").
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    conn, client = rig.connect()
    conn.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _head, _fin)] = worker.requests()
    worker.feed(fr.pack_user(sid, "ada lovelace", "Basic"))
    worker.respond(sid, b"ok")
    conn.data_received(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid2, _head, _fin)] = worker.requests()
    worker.respond(sid2, b"ok")
    assert client.take().count(b"HTTP/1.1 200 OK") == 2
    rig.server.flush_logs()
    folder = tmp_path / "logs" / "W3SVC1"
    [log] = sorted(folder.glob("*.log"))
    lines = [line for line in log.read_text().splitlines() if not line.startswith("#")]
    assert [line.split(" ")[7] for line in lines] == ["ada+lovelace", "-"]


def test_a_traced_request_gets_the_front_s_times_once_it_is_sent(tmp_path):
    # FREB (docs/freb.md): TRACE before the last frame; the front answers TRACED (stream 0)
    # with its times and the bytes it wrote, when it logs the request. Untraced requests get none.
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    conn, client = rig.connect()
    conn.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _head, _fin)] = worker.requests()
    rig.loop.now += 0.25
    worker.feed(fr.pack_trace(sid, 4242))
    worker.respond(sid, b"traced")
    sent = client.take()
    assert sent.startswith(b"HTTP/1.1 200 OK")
    traced = [f for f in worker.frames() if f[0] == fr.FrameType.TRACED]
    assert len(traced) == 1 and traced[0][2] == 0
    token, until_answer_us, after_us, nbytes = fr.unpack_traced(traced[0][3])
    assert token == 4242 and until_answer_us == 250000 and after_us == 0 and nbytes == len(sent)
    conn.data_received(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid2, _head, _fin)] = worker.requests()
    worker.respond(sid2, b"plain")
    assert [f for f in worker.frames() if f[0] == fr.FrameType.TRACED] == []


def test_a_trace_frame_of_the_wrong_size_breaks_the_protocol(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    conn, client = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _head, _fin)] = worker.requests()
    worker.feed(fr.pack(fr.FrameType.TRACE, sid, b"\x01\x02"))
    assert worker.transport.closed


def test_a_request_read_after_the_worker_s_eof_waits_for_the_next_worker(tmp_path):
    """A killed worker's EOF and a new request can be read in the same loop turn, before the
    transport's connection_lost runs: the request must wait for the replacement, not go to the
    dead worker and come back 503 Connection_Abandoned_By_AppPool (seen in a CI run of
    test_blocked_event_loop_misses_pings_and_is_replaced)."""
    rig = FrontRig(tmp_path)
    old = rig.worker(worker_id=1)
    old.link.eof_received()
    conn, client = rig.connect()
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert old.requests() == []
    old.crash()
    rig.loop.run_soon()
    assert client.take() == b""
    new = rig.worker(worker_id=2)
    [(sid, _head, _fin)] = new.requests()
    new.respond(sid)
    rig.loop.run_soon()
    assert client.take().startswith(b"HTTP/1.1 200 ")


def test_a_link_that_broke_the_protocol_gets_no_new_request(tmp_path):
    rig = FrontRig(tmp_path)
    worker = rig.worker()
    first, _ = rig.connect()
    first.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(sid, _head, _fin)] = worker.requests()
    worker.feed(_bad_frames(sid)[0])
    second, _ = rig.connect(peername=("127.0.0.1", 50001))
    second.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert worker.link.streams == {}     # it waits in the queue for a worker that keeps to it
