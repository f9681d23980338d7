"""Mutated corpus requests, fed in random pieces, with a worker answering at random: no exception
escapes the connection, nothing leaks (streams, worker slots, queue entries, connections)."""

from __future__ import annotations

import random

import pytest

from front_fakes import FrontRig
from test_front_corpus import FILES, load
from wasp.wire import frames as fr
from wasp.wire.frames import FLAG_FIN, FrameType
from wasp.front.workers import LinkState

REQUESTS = [load(p)[1] for p in FILES]


def mutate(rnd: random.Random) -> bytes:
    data = bytearray(b"".join(rnd.choice(REQUESTS) for _ in range(rnd.randint(1, 3))))
    for _ in range(rnd.randint(0, 4)):
        i = rnd.randrange(len(data) or 1)
        op = rnd.random()
        if op < 0.4 and data:
            data[i] = rnd.randrange(256)
        elif op < 0.7:
            data[i:i] = bytes([rnd.choice(b"\r\n:% /.\x00aA0")])
        elif data:
            del data[i]
    return bytes(data)


def answer(rnd, worker) -> None:
    for ftype, flags, sid, _ in worker.frames():
        if ftype == FrameType.REQUEST and flags & FLAG_FIN or ftype == FrameType.END:
            choice = rnd.random()
            if choice < 0.6:
                worker.respond(sid, b"ok")
            elif choice < 0.7:
                worker.feed(fr.pack_abort(sid))
            elif choice < 0.8:
                worker.feed(fr.pack_response(sid, b"200 OK\r\n", -1), fr.pack_body(sid, b"abc"), fr.pack_end(sid))
            elif choice < 0.9:
                worker.feed(fr.pack_response(sid, b"101 Switching Protocols\r\n", -1))


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_requests(tmp_path, seed):
    rnd = random.Random(seed)
    for _ in range(150):
        rig = FrontRig(tmp_path)
        faults = []
        rig.server.on_fault = faults.append
        worker = rig.worker(capacity=2)
        conn, _ = rig.connect()
        data = mutate(rnd)
        pos = 0
        while pos < len(data):
            n = rnd.randint(1, 200)
            conn.data_received(data[pos:pos + n])
            pos += n
            answer(rnd, worker)
            if rnd.random() < 0.05:
                rig.advance(200)
        if rnd.random() < 0.3:
            conn.eof_received()
        if rnd.random() < 0.3:
            worker.crash()
        rig.advance(5)
        conn.connection_lost(None)
        assert faults == [], data
        if worker.link.state is not LinkState.CLOSED:
            assert worker.link.streams == {} and worker.link.inflight == 0, data
        assert not rig.server.dispatcher.pools["P"].queue
        assert not rig.server.connections
        rig.server.close_logs()
