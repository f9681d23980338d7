"""The public API for writing pipeline modules in Python (IIS's managed modules).

A module is a class deriving from `Module`. For each request phase it wants, it defines a method
named after the phase in lower case (`begin_request`, `authenticate_request`, `authorize_request`,
... `end_request`) that takes a `Request` and returns CONTINUE or FINISH (or raises an `HttpError`:
the request gets IIS's error page for that status and substatus). It is registered in wasp.toml
by dotted path, under a name of your choosing:

    [[modules.add]]                       # or: modules = [ { name = ..., type = ... } ]
    name = "api_key"
    type = "mysite.mods:ApiKey"           # "package.module:Class", imported from the
    pre_condition = "managedHandler"      # application's python_path / virtualenv; optional

    [api_key]                             # the module's own section, named after its entry
    keys = ["..."]

The module's own section is a msgspec Struct named by the class attribute `section`; every field
needs a default. It can be set wherever any section can (server, site, application, `[[locations]]`,
web.toml) and is merged like the others; `request.config.<entry name>` (or `self.settings(request)`)
is the request's effective value. A bad value stops the worker at start with the key and its line.

One instance serves every request of one application: `setup(app)` runs once when the worker starts
(read settings there, open what you need), `cleanup()` when it exits. Phase methods run on the
worker's event loop, before any WSGI thread is taken: keep them quick and never block in them.

This module is the stable surface: names not listed in `__all__` are internal and may change.
"""

from __future__ import annotations

from typing import Any, ClassVar

from wasp.errors import BadRequest, Forbidden, HttpError, NotFound
from wasp.wire.http import reason_phrase
from wasp.worker.authn import Unauthorized
from wasp.worker.registry import CONTINUE, FINISH, Phase, Status

#: Phases a Python module may hook: all of IIS's deterministic notifications but the handler's
#: own (a Python module is not a handler; the handler mapping list chooses those).
PHASES = tuple(p for p in Phase if p is not Phase.EXECUTE_REQUEST_HANDLER)


class AppInfo:
    """What `Module.setup` learns about the application it serves."""

    __slots__ = ("key", "path", "physical_path", "config")

    def __init__(self, key: str, path: str, physical_path: str, config: Any):
        self.key = key                      # "1/" or "1/api": site id and application path
        self.path = path                    # the application's URL path, "/" or "/api"
        self.physical_path = physical_path  # its content folder, "" when it has none
        self.config = config                # its root's effective sections (`config.<section>`)

    def __repr__(self) -> str:
        return f"AppInfo({self.key!r})"


class Module:
    """Base class of a Python module. Subclasses define phase methods (see the module docstring)."""

    #: The msgspec Struct of the module's own section, or None for a module without settings.
    section: ClassVar[type | None] = None
    #: The entry's name in the `modules` list (set by the worker before `setup`).
    name: str = ""

    def setup(self, app: AppInfo) -> None:
        """Once per application, at worker start. Raise to refuse to start (a load failure)."""

    def cleanup(self) -> None:
        """Once, when the worker exits."""

    def settings(self, request: "Request") -> Any:
        """This module's effective section for the request's URL (its `section` Struct)."""
        return getattr(request._ctx.config, self.name)


class Request:
    """One request as a module sees it. Valid only during the phase call that receives it."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx):
        self._ctx = ctx

    # ---- what was asked ----
    @property
    def method(self) -> str:
        return self._ctx.head.method

    @property
    def path(self) -> str:
        """The URL path as the front cooked it (percent-decoded, dot segments resolved)."""
        return self._ctx.head.path.decode("utf-8", "surrogateescape")

    @property
    def app_path(self) -> str:
        """The path below the application's own path ("/x" for "/api/x" in application "/api")."""
        ctx = self._ctx
        return ctx.head.path[ctx.app.prefix_len:].decode("utf-8", "surrogateescape") or "/"

    @property
    def query(self) -> str:
        """The raw query string, without "?"."""
        return self._ctx.head.query.decode("latin-1")

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first request header called `name` (any case), or `default`."""
        wanted = name.lower().encode("latin-1")
        for key, value in self._ctx.head.headers:
            if len(key) == len(wanted) and key.lower() == wanted:
                return value.decode("latin-1")
        return default

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every request header, in order, as (name as sent, value)."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._ctx.head.headers]

    @property
    def client_address(self) -> str:
        """The client's IP address (the trusted proxy's client when server.trusted_proxies says so)."""
        return self._ctx.head.client[0]

    @property
    def client_port(self) -> int:
        return self._ctx.head.client[1]

    @property
    def scheme(self) -> str:
        return self._ctx.head.scheme

    # ---- where it goes ----
    @property
    def config(self) -> Any:
        """The URL's effective sections: `request.config.default_document`, `request.config.api_key`."""
        return self._ctx.config

    @property
    def handler(self) -> str:
        """The id of the handler module the request is mapped to ("python_app", "static_file"),
        "" before MAP_REQUEST_HANDLER."""
        handler = self._ctx.handler
        return handler.id if handler is not None else ""

    @property
    def items(self) -> dict:
        """Scratch space for this request, shared by every module (created on first use)."""
        ctx = self._ctx
        if ctx.items is None:
            ctx.items = {}
        return ctx.items

    # ---- who asked ----
    @property
    def user(self) -> str | None:
        """None: no authentication module produced a user yet; "": anonymous; else the name."""
        return self._ctx.user

    @property
    def auth_type(self) -> str:
        return self._ctx.auth_type

    def set_user(self, name: str, auth_type: str) -> None:
        """The request runs as `name` ("" = anonymous): the W3C log's cs-username, REMOTE_USER
        and AUTH_TYPE for WSGI apps, the ASGI scope's "user". A named user's response is never
        cached by the front."""
        self._ctx.set_user(name, auth_type)

    @property
    def private(self) -> bool:
        return self._ctx.private

    @private.setter
    def private(self, value: bool) -> None:
        """Set True when the answer depends on who asked (a key, an address): the front then
        never serves this response from its cache to someone else."""
        if value:
            self._ctx.private = True

    # ---- answering ----
    def respond(self, status: int, body: bytes | str = b"", headers=(), *,
                content_type: str = "text/plain; charset=utf-8") -> Status:
        """Answer the request now and return FINISH (the remaining phases up to LOG_REQUEST are
        skipped): `return request.respond(200, "pong")`."""
        if not isinstance(status, int) or not 100 <= status <= 999 or status in (101, 204, 304) \
                and body:
            raise ValueError(f"respond: bad status {status!r} (or a body with {status})")
        if isinstance(body, str):
            body = body.encode("utf-8")
        lines = [f"{status} {reason_phrase(status)}\r\n"]
        names = set()
        for name, value in headers:
            name, value = str(name), str(value)
            if not name or any(c in name for c in ":\r\n\0 ") or any(c in value for c in "\r\n\0"):
                raise ValueError(f"respond: bad header {name!r}: {value!r}")
            names.add(name.lower())
            lines.append(f"{name}: {value}\r\n")
        if body and "content-type" not in names:
            lines.append(f"Content-Type: {content_type}\r\n")
        if "content-length" in names:
            raise ValueError("respond: Content-Length is set from the body")
        lines.append(f"Content-Length: {len(body)}\r\n")
        ctx = self._ctx
        if ctx.started:
            raise RuntimeError("respond: the request was already answered")
        ctx.respond("".join(lines).encode("latin-1"), bytes(body))
        return FINISH

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


__all__ = ["Module", "Request", "AppInfo", "Phase", "PHASES", "CONTINUE", "FINISH", "Status",
           "HttpError", "BadRequest", "Unauthorized", "Forbidden", "NotFound"]
