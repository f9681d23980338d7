"""The worker's data channel writer: frames from many threads and from the loop reach the front
whole and in order, through a full kernel buffer too, and a close never pulls the descriptor from
under a thread that is sending."""

from __future__ import annotations

import asyncio
import socket
import threading

from wasp.wire import frames as fr
from wasp.worker.datachannel import DataChannel, _unsent_many


class Ctx:
    def __init__(self, sid):
        self.sid = sid
        self.cancelled = False
        self.finished = False

    def cancel(self):
        self.cancelled = True


def _channel(loop, sock, closed=None):
    return DataChannel(sock, loop, on_request=lambda *a: None, on_drain=lambda c: None,
                       on_close=(closed.append if closed is not None else lambda c: None),
                       on_done=lambda ctx: None)


def _read_frames(sock, count, timeout=10.0):
    sock.settimeout(timeout)
    reader = fr.FrameReader()
    got = []
    while len(got) < count:
        data = sock.recv(1 << 20)
        assert data, "the channel closed early"
        got += reader.feed(data)
    assert reader.buffered == 0
    return got


def test_unsent_many_keeps_order_and_cuts_the_partial_buffer():
    batch = [b"abc", b"defg", b"hi"]
    assert _unsent_many(batch, 0) == batch
    assert [bytes(b) for b in _unsent_many(batch, 2)] == [b"c", b"defg", b"hi"]
    assert [bytes(b) for b in _unsent_many(batch, 3)] == [b"defg", b"hi"]
    assert [bytes(b) for b in _unsent_many(batch, 8)] == [b"i"]
    assert _unsent_many(batch, 9) == []


def test_frames_from_many_threads_arrive_whole_and_in_each_streams_order():
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    channel = _channel(loop, ours)
    threads, per_thread = 8, 300
    body = bytes(range(256)) * 40   # 10 KiB: some sends are partial

    def sender(sid):
        ctx = Ctx(sid)
        for n in range(per_thread):
            assert channel.send_frame(ctx, fr.pack_body(sid, n.to_bytes(4, "little") + body))
        assert channel.send_final(ctx, fr.pack_end(sid))

    try:
        workers = [threading.Thread(target=sender, args=(sid,)) for sid in range(1, threads + 1)]
        for t in workers:
            t.start()
        got = []
        reader = fr.FrameReader()
        theirs.setblocking(False)

        async def drain():
            # The test's side reads slowly at first, so the kernel buffer fills and the loop's
            # writer has to take over from the threads.
            await asyncio.sleep(0.2)
            while len(got) < threads * (per_thread + 1):
                try:
                    data = theirs.recv(65536)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                assert data
                got.extend(reader.feed(data))

        loop.run_until_complete(asyncio.wait_for(drain(), 30))
        for t in workers:
            t.join(10)
        seen = {sid: [] for sid in range(1, threads + 1)}
        for ftype, _flags, sid, payload in got:
            if ftype == fr.FrameType.BODY:
                assert payload[4:] == body
                seen[sid].append(int.from_bytes(payload[:4], "little"))
            else:
                assert ftype == fr.FrameType.END and len(seen[sid]) == per_thread
        assert all(order == list(range(per_thread)) for order in seen.values())
        assert channel.backlog == 0 and not channel._sending
    finally:
        channel.close()
        theirs.close()
        loop.close()


def test_a_full_kernel_buffer_hands_the_rest_to_the_loops_writer():
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    channel = _channel(loop, ours)
    big = b"x" * (4 << 20)   # far more than a socket buffer
    try:
        t = threading.Thread(target=channel.send_raw, args=(fr.pack_body(1, big),))
        t.start()
        t.join(10)
        assert not t.is_alive()          # the thread did not wait for the front
        assert 0 < channel.backlog < len(big) + fr.HEADER_SIZE
        threading.Thread(target=channel.send_raw, args=(fr.pack_end(1),)).start()

        async def read_all():
            reader = fr.FrameReader()
            theirs.setblocking(False)
            out = []
            while len(out) < 2:
                try:
                    data = theirs.recv(1 << 20)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                out += reader.feed(data)
            return out

        (t1, _f1, _s1, p1), (t2, _f2, _s2, _p2) = loop.run_until_complete(
            asyncio.wait_for(read_all(), 30))
        assert (t1, t2) == (fr.FrameType.BODY, fr.FrameType.END) and p1 == big
        assert channel.backlog == 0 and not channel._sending and not channel._writer_armed
    finally:
        channel.close()
        theirs.close()
        loop.close()


def test_loop_frames_are_corked_until_the_turn_ends_then_sent_once():
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    channel = _channel(loop, ours)
    try:
        async def write():
            channel.send_raw(fr.pack_window(3, 10))
            channel.send_raw(fr.pack_window(3, 20))
            # nothing sent yet: both wait in the cork, and count as queued
            assert channel._cork and channel.backlog == 2 * len(fr.pack_window(3, 10))
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        loop.run_until_complete(write())
        got = _read_frames(theirs, 2)
        assert [fr.unpack_window(p) for _t, _f, _s, p in got] == [10, 20]
    finally:
        channel.close()
        theirs.close()
        loop.close()


def test_a_closed_stream_or_channel_sends_nothing():
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    closed = []
    channel = _channel(loop, ours, closed)
    try:
        ctx = Ctx(5)
        channel.streams[5] = ctx
        done = []
        t = threading.Thread(target=lambda: done.append(
            (channel.send_final(ctx, fr.pack_end(5)), channel.send_frame(ctx, fr.pack_end(5)))))
        t.start()
        t.join(10)
        assert done == [(True, False)] and 5 not in channel.streams
        channel.close()
        assert closed == [channel] and ours.fileno() == -1
        assert channel.send_frame(Ctx(6), fr.pack_end(6)) is False
        assert [t for t, *_ in _read_frames(theirs, 1)] == [fr.FrameType.END]
    finally:
        channel.close()
        theirs.close()
        loop.close()


def test_a_close_during_a_threads_send_leaves_the_descriptor_to_that_thread():
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    channel = _channel(loop, ours)
    in_send = threading.Event()
    release = threading.Event()
    real = ours

    class SlowSocket:
        """The socket as the sending thread sees it: its send blocks until the test says."""

        def __getattr__(self, name):
            return getattr(real, name)

        def send(self, data):
            in_send.set()
            release.wait(10)
            return real.send(data)

    channel.sock = SlowSocket()
    try:
        t = threading.Thread(target=channel.send_raw, args=(fr.pack_end(1),))
        t.start()
        assert in_send.wait(10)
        channel.close()                 # on the loop's thread, while the other thread sends
        assert channel.closed and real.fileno() != -1   # not closed under the sender
        release.set()
        t.join(10)
        assert real.fileno() == -1      # the sender closed it when its send returned
        assert not channel._sending and channel.backlog == 0
    finally:
        release.set()
        real.close()
        theirs.close()
        loop.close()


def _drain_on_loop(loop, sock, count):
    async def read():
        reader = fr.FrameReader()
        sock.setblocking(False)
        out = []
        while len(out) < count:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            assert data
            out += reader.feed(data)
        return out
    return loop.run_until_complete(asyncio.wait_for(read(), 30))


def test_a_large_bytes_body_leaves_in_parts_and_arrives_as_the_same_frame():
    from worker_fakes import make_app, make_ctx
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    channel = _channel(loop, ours)
    body = bytes(range(256)) * 400           # 100 KiB, over ZERO_COPY_MIN
    try:
        ctx = make_ctx(make_app(), channel=channel)
        t = threading.Thread(target=ctx.respond, args=(b"200 OK\r\nX: y\r\n", body))
        t.start()
        t.join(10)
        [(ftype, flags, sid, payload)] = _drain_on_loop(loop, theirs, 1)
        assert (ftype, flags, sid) == (fr.FrameType.RESPONSE, fr.FLAG_FIN, ctx.sid)
        assert fr.HEADER.pack(len(payload), ftype, flags, sid) + payload == fr.pack_response(
            ctx.sid, b"200 OK\r\nX: y\r\n", len(body), 0, body)
    finally:
        channel.close()
        theirs.close()
        loop.close()


def test_a_bytearray_the_app_reuses_after_write_is_sent_as_it_was():
    # Only immutable bytes may wait in the queue uncopied: here the frame waits behind a full
    # kernel buffer while the app overwrites its buffer.
    from worker_fakes import make_app, make_ctx
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    channel = _channel(loop, ours)
    try:
        ctx = make_ctx(make_app(), channel=channel)
        buf = bytearray(b"a" * 40000)

        def app():
            channel.send_raw(fr.pack_body(99, b"z" * (4 << 20)))   # fills the kernel buffer
            ctx.start_response(b"200 OK\r\n", 80000)
            ctx.send_body(buf)
            buf[:] = b"b" * 40000
            ctx.send_body(bytes(buf))
            ctx.end()

        t = threading.Thread(target=app)
        t.start()
        t.join(10)
        assert channel.backlog > 0               # the frames did wait
        got = _drain_on_loop(loop, theirs, 5)
        bodies = [p for ftype, _f, sid, p in got if ftype == fr.FrameType.BODY and sid == ctx.sid]
        assert bodies == [b"a" * 40000, b"b" * 40000]
        assert got[-1][0] == fr.FrameType.END
    finally:
        channel.close()
        theirs.close()
        loop.close()


def test_a_thread_sends_others_frames_a_bounded_number_of_times_then_the_loop_takes_over():
    # While a thread sends, others keep queueing (here: one new frame during every send). The
    # sending thread must get back to its own request: after a few rounds the loop's writer
    # carries on, and every frame still arrives, in order.
    from wasp.worker import datachannel
    ours, theirs = socket.socketpair()
    loop = asyncio.new_event_loop()
    channel = _channel(loop, ours)
    real = ours
    total = 40
    made = [0]
    sender_calls = {}

    class BusySocket:
        def __getattr__(self, name):
            return getattr(real, name)

        def _produce(self):
            ident = threading.get_ident()
            sender_calls[ident] = sender_calls.get(ident, 0) + 1
            if made[0] < total:
                made[0] += 1
                with channel.lock:
                    assert channel._write(fr.pack_window(1, made[0])) is False  # queued

        def send(self, data):
            self._produce()
            return real.send(data)

        def sendmsg(self, buffers):
            self._produce()
            return real.sendmsg(buffers)

    channel.sock = BusySocket()
    try:
        t = threading.Thread(target=channel.send_raw, args=(fr.pack_window(1, 0),))
        t.start()
        t.join(10)
        assert not t.is_alive()
        assert sender_calls[t.ident] == datachannel._SEND_ROUNDS
        got = _drain_on_loop(loop, theirs, total + 1)
        assert [fr.unpack_window(p) for _t, _f, _s, p in got] == list(range(total + 1))
        assert not channel._sending and not channel._writer_armed and channel.backlog == 0
    finally:
        channel.sock = real
        channel.close()
        theirs.close()
        loop.close()
