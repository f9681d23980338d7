"""Python modules for test_server_modules.py (wasp.modules API)."""

from __future__ import annotations

import msgspec

from wasp.modules import CONTINUE, Forbidden, Module


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
