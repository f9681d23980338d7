"""The kept-connection bookkeeping of an external FastCGI server (fastcgi_pool.External) with
fake connections: the bound over busy and idle ones, waiters handed a released connection,
the queue limit, dropping closed ones, and `fresh`."""

from __future__ import annotations

import asyncio

import pytest

from wasp.config.sections.fast_cgi import FastCgiApplication
from wasp.worker.fastcgi_pool import External, FastCgiFailure, QueueFull


class FakeConn:
    def __init__(self, n):
        self.n = n
        self.closed = False
        self.eof = False
        self.size = 0

    def close(self):
        self.closed = True


def external(keep=2, queue_length=1000):
    ext = External("unix:/nowhere", FastCgiApplication(full_path="unix:/nowhere", keep_connections=keep,
                                                        queue_length=queue_length))
    made = []

    async def connect():
        conn = FakeConn(len(made))
        made.append(conn)
        return conn
    ext.connect = connect
    return ext, made


def run(coro):
    return asyncio.run(coro)


def test_a_released_connection_is_reused_and_the_bound_holds():
    async def main():
        ext, made = external(keep=2)
        deadline = asyncio.get_running_loop().time() + 10
        a, ra = await ext.acquire(deadline)
        b, rb = await ext.acquire(deadline)
        assert (ra, rb) == (False, False) and len(made) == 2
        third = asyncio.ensure_future(ext.acquire(deadline))
        await asyncio.sleep(0)
        assert not third.done() and len(made) == 2       # waits: no third connection
        ext.release(a, True)
        conn, reused = await third
        assert conn is a and reused and len(made) == 2   # handed over directly
        ext.release(b, True)
        assert ext.take_idle() is b
        ext.release(b, True)
        ext.release(conn, True)
        assert ext.open == 2 and len(ext.idle) == 2
        ext.shutdown()
        assert a.closed and b.closed
    run(main())


def test_an_unhealthy_or_closed_connection_frees_its_place():
    async def main():
        ext, made = external(keep=1)
        deadline = asyncio.get_running_loop().time() + 10
        a, _ = await ext.acquire(deadline)
        waiter = asyncio.ensure_future(ext.acquire(deadline))
        await asyncio.sleep(0)
        ext.release(a, False)                            # not reusable: closed, place freed
        b, reused = await waiter
        assert a.closed and b is not a and not reused and ext.open == 1
        ext.release(b, True)
        b.eof = True                                     # the server closed it while idle
        c, reused = await ext.acquire(deadline)
        assert c is not b and b.closed and not reused and ext.open == 1
    run(main())


def test_fresh_never_takes_a_kept_connection():
    async def main():
        ext, made = external(keep=2)
        deadline = asyncio.get_running_loop().time() + 10
        a, _ = await ext.acquire(deadline)
        ext.release(a, True)
        b, reused = await ext.acquire(deadline, fresh=True)
        assert b is not a and not reused and ext.open == 2
    run(main())


def test_the_queue_limit_and_the_deadline():
    async def main():
        ext, made = external(keep=1, queue_length=1)
        loop = asyncio.get_running_loop()
        a, _ = await ext.acquire(loop.time() + 10)
        first = asyncio.ensure_future(ext.acquire(loop.time() + 0.05))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await ext.acquire(loop.time() + 10)
        with pytest.raises(FastCgiFailure):
            await first                                  # past its deadline
        assert not ext.waiters and ext.open == 1
    run(main())


def test_keep_zero_opens_and_closes_every_time():
    async def main():
        ext, made = external(keep=0)
        deadline = asyncio.get_running_loop().time() + 10
        a, _ = await ext.acquire(deadline)
        b, _ = await ext.acquire(deadline)
        ext.release(a, True)
        assert a.closed and b is not a and not ext.idle
    run(main())


def test_a_handed_over_waiter_is_never_formatted():
    """A waiter `release` gave a connection was popped already: taking it out again must not
    ask the deque (whose miss formats the future's repr on every handed-over request)."""
    formatted = []

    class Watched(asyncio.Future):
        def __repr__(self):
            formatted.append(1)
            return "<Watched>"

    async def main():
        loop = asyncio.get_running_loop()
        loop.create_future = lambda: Watched(loop=loop)
        ext, made = external(keep=1)
        a, _ = await ext.acquire(loop.time() + 10)
        waiters = [asyncio.ensure_future(ext.acquire(loop.time() + 10)) for _ in range(3)]
        await asyncio.sleep(0)
        ext.release(a, True)
        conn, reused = await waiters[0]
        assert conn is a and reused
        waiters[1].cancel()                              # a cancelled waiter leaves the queue
        await asyncio.sleep(0)
        assert len(ext.waiters) == 1
        ext.release(conn, True)
        assert (await waiters[2])[0] is a
        assert not ext.waiters and not formatted
    run(main())
