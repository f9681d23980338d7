"""Python modules for test_server_modules.py (wasp.modules API)."""

from __future__ import annotations

import msgspec

from wasp.modules import CONTINUE, Forbidden, HttpError, Module


class Crash(Module):
    """Raises for a request carrying X-Crash: that request gets 500, the next ones do not."""

    def begin_request(self, request):
        if request.header("X-Crash"):
            raise RuntimeError("crash on purpose")
        return CONTINUE


class Blocker(Module):
    """403 for a request carrying X-Block (registered with pre_condition = "managedHandler")."""

    def authorize_request(self, request):
        if request.header("X-Block"):
            raise Forbidden("blocked")
        return CONTINUE


class PingSettings(msgspec.Struct):
    answer: str = "pong"
    times: int = 1


class Ping(Module):
    """Answers /<its entry name> (in any folder) itself with its section's `answer` (respond +
    FINISH)."""

    section = PingSettings

    def begin_request(self, request):
        if request.app_path.endswith("/" + self.name):
            s = self.settings(request)
            return request.respond(200, s.answer * s.times, [("X-Handler", request.handler or "-")])
        return CONTINUE


class NoPhase(Module):
    """Defines no phase method: refused at load."""


class AsyncGate(Module):
    """`async def` phases (pending steps). AUTHORIZE_REQUEST: a request with X-Hold waits, on the
    worker's event loop, until a request with X-Release comes (which answers "released <how many
    were waiting>"; bounded: 30 s, then 503); one with
    X-Async-Fail raises after awaiting (500). BEGIN_REQUEST answers X-Async-Answer itself after an
    await (respond + FINISH)."""

    def setup(self, app):
        self.released = None
        self.waiting = 0

    async def begin_request(self, request):
        import asyncio

        await asyncio.sleep(0)
        if request.header("X-Async-Answer"):
            return request.respond(200, "answered after an await", [("X-Gate", "answer")])
        return CONTINUE

    async def authorize_request(self, request):
        import asyncio

        if self.released is None:
            self.released = asyncio.Event()
        if request.header("X-Release"):
            if self.waiting:  # nobody waiting yet: nothing to release (the test asks again)
                self.released.set()
                self.released = asyncio.Event()
            return request.respond(200, f"released {self.waiting}")
        if request.header("X-Hold"):
            self.waiting += 1
            try:
                await asyncio.wait_for(self.released.wait(), 30)
            except asyncio.TimeoutError:
                raise HttpError("never released", status=503) from None
            finally:
                self.waiting -= 1
        if request.header("X-Async-Fail"):
            await asyncio.sleep(0)
            raise RuntimeError("async failure on purpose")
        return CONTINUE

