"""wasp.front.accept with several fronts: the accept batch, and leaving the queue to the others
while over the share (then always serving it after one pause). A real listening socket, a fake
loop that records what the acceptor asks of it."""

from __future__ import annotations

import socket

import pytest

from wasp.front import accept
from wasp.front.accept import Acceptor


class Loop:
    def __init__(self):
        self.readers = {}
        self.timers = []
        self.tasks = []

    def add_reader(self, fd, cb):
        self.readers[fd] = cb

    def remove_reader(self, fd):
        self.readers.pop(fd, None)

    def call_later(self, delay, cb):
        self.timers.append((delay, cb))
        return Timer()

    def create_task(self, coro):
        coro.close()  # the connection's start is not what is tested here
        self.tasks.append(coro)


class Timer:
    def cancel(self):
        pass


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    clients = [socket.create_connection(sock.getsockname()) for _ in range(10)]
    yield sock
    for c in clients:
        c.close()
    sock.close()


def test_a_shared_socket_is_accepted_in_small_batches(listener):
    loop = Loop()
    acceptor = Acceptor(loop, listener, lambda: None, batch=accept.SHARED_ACCEPT_BATCH)
    acceptor._ready()
    assert len(loop.tasks) == accept.SHARED_ACCEPT_BATCH
    assert acceptor.starting == accept.SHARED_ACCEPT_BATCH  # counted until their start ends
    acceptor.close()


def test_over_the_share_it_pauses_once_then_serves_the_queue(listener):
    loop = Loop()
    asked = []
    acceptor = Acceptor(loop, listener, lambda: None, batch=4,
                        defer=lambda starting: asked.append(starting) or True)
    fd = listener.fileno()
    acceptor._ready()
    assert loop.tasks == [] and fd not in loop.readers       # left to the other fronts
    [(delay, resume)] = loop.timers
    assert delay == accept.DEFER
    resume()
    assert fd in loop.readers
    acceptor._ready()                                         # nobody took them: serve them now
    assert len(loop.tasks) == 4
    acceptor._ready()                                         # and pause again
    assert len(loop.tasks) == 4 and len(loop.timers) == 2
    assert asked == [0, 4]
    acceptor.close()


def test_a_lone_front_never_defers(listener):
    loop = Loop()
    acceptor = Acceptor(loop, listener, lambda: None)
    acceptor._ready()
    assert len(loop.tasks) == 10 and loop.timers == []
    acceptor.close()
