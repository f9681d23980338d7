"""wasp.worker.eager: coroutines start on the caller's stack; a Task only when they suspend."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
import uvloop

from wasp.worker import eager

var = contextvars.ContextVar("var", default="unset")


def run(main):
    return uvloop.run(main())


def test_a_coroutine_that_never_suspends_needs_no_task():
    seen = []

    async def handler():
        seen.append("ran")
        return 1

    async def main():
        assert eager.start(asyncio.get_running_loop(), handler()) is None
        assert seen == ["ran"]  # before start() returned, not on a later loop turn

    run(main)


def test_a_suspending_coroutine_continues_in_a_task_with_its_result():
    async def handler(fut):
        value = await fut
        await asyncio.sleep(0)
        return value * 2

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = eager.start(loop, handler(fut))
        assert task is not None and not task.done()
        fut.set_result(21)
        assert await task == 42

    run(main)


def test_cancelling_the_task_reaches_the_coroutine():
    cleaned = []

    async def handler():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    async def main():
        task = eager.start(asyncio.get_running_loop(), handler())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == ["cancelled"]

    run(main)


def test_errors_of_the_first_step_propagate_and_later_ones_land_in_the_task():
    async def fails_at_once():
        raise ValueError("first")

    async def fails_later():
        await asyncio.sleep(0)
        raise KeyError("later")

    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError):
            eager.start(loop, fails_at_once())
        task = eager.start(loop, fails_later())
        with pytest.raises(KeyError):
            await task

    run(main)


def test_each_request_gets_its_own_context():
    async def handler(name, fut):
        var.set(name)
        await fut
        return var.get()

    async def main():
        loop = asyncio.get_running_loop()
        a, b = loop.create_future(), loop.create_future()
        ta = eager.start(loop, handler("a", a))
        tb = eager.start(loop, handler("b", b))
        assert var.get() == "unset"  # nothing leaked into the caller's context
        a.set_result(None)
        b.set_result(None)
        assert (await ta, await tb) == ("a", "b")

    run(main)
