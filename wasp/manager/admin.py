"""The admin API: HTTP/1.1 and JSON on a Unix socket (run_dir/admin.sock, mode 0600).

    curl --unix-socket run/admin.sock http://wasp/pools

GET  /sites /apps /pools /wp /requests /cache /events?since=N /status /metrics /logs?kind=&site=&lines=
POST /pools/<name>/recycle|stop|start   /sites/<name>/start|stop   /reload   /cache/flush?site=&url=
POST /wp/<pid>/stacks   /management/token        GET /pools/<name> (its effective settings)
GET  /config?path=&section=&effective=1   /config/history   /backups
POST /config/changes   /config/history/<N>/restore   /backups   /backups/<name>/restore
DELETE /backups/<name>                         (docs/appcmd.md; handlers in config_api.py)

One request per connection (the answer carries `Connection: close`). Parsing and routing are
sans-I/O (`RequestParser`, `route`); `serve` wires them to a socket and to a dispatch coroutine the
manager provides.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import httptools

from wasp.wire.http import reason_phrase

MAX_BODY = 64 * 1024
MAX_HEAD = 16 * 1024
READ_TIMEOUT = 10.0


class AdminProtocolError(Exception):
    status = 400


class BodyTooLarge(AdminProtocolError):
    status = 413


@dataclass
class AdminRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: The connecting process's (pid, uid, gid) from SO_PEERCRED: who made an admin change.
    peer: tuple[int, int, int] | None = None


class RequestParser:
    """Bytes in, one `AdminRequest` out once it is complete."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._head_bytes = 0
        self._done = False
        self.request: AdminRequest | None = None

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > MAX_BODY:
            raise BodyTooLarge("request body too large")

    def on_message_complete(self) -> None:
        self._done = True

    def feed(self, data: bytes) -> AdminRequest | None:
        if not self._done:
            self._head_bytes += len(data)
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as exc:
                # httptools wraps what a callback raises; find ours.
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, BodyTooLarge):
                    raise cause from None
                raise AdminProtocolError(f"bad request: {exc}") from exc
            if not self._done and not self._body and self._head_bytes > MAX_HEAD:
                raise AdminProtocolError("request head too large")
        if self._done and self.request is None:
            parsed = httptools.parse_url(self._url)
            path = urllib.parse.unquote((parsed.path or b"/").decode("latin-1"))
            query = dict(urllib.parse.parse_qsl((parsed.query or b"").decode("latin-1")))
            self.request = AdminRequest(self._parser.get_method().decode("latin-1"), path, query,
                                        self._headers, bytes(self._body))
        return self.request


class RouteError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


POOL_VERBS = ("recycle", "stop", "start")
SITE_VERBS = ("stop", "start")
LISTS = ("sites", "apps", "pools", "wp", "requests", "cache", "events", "status", "metrics", "logs",
         "traces")


def route(method: str, path: str) -> tuple[str, dict]:
    """(handler name, arguments) for a request line; RouteError for 404/405."""
    parts = [p for p in path.split("/") if p]
    if len(parts) == 1 and parts[0] in LISTS:
        if method not in ("GET", "HEAD"):
            raise RouteError(405, f"{method} not allowed on /{parts[0]}")
        return parts[0], {}
    if len(parts) == 3 and parts[0] == "traces":  # one FREB file (wasp/manager/traces.py)
        if method not in ("GET", "HEAD"):
            raise RouteError(405, f"{method} not allowed on {path}")
        return "trace_file", {"site": parts[1], "file": parts[2]}
    if len(parts) == 1 and parts[0] == "reload":
        if method != "POST":
            raise RouteError(405, f"{method} not allowed on /reload")
        return "reload", {}
    if parts == ["upgrade"]:
        if method != "POST":
            raise RouteError(405, f"{method} not allowed on /upgrade")
        return "upgrade", {}
    if parts == ["cache", "flush"]:
        if method != "POST":
            raise RouteError(405, f"{method} not allowed on {path}")
        return "cache_flush", {}
    if len(parts) == 3 and parts[0] == "pools" and parts[2] in POOL_VERBS:
        if method != "POST":
            raise RouteError(405, f"{method} not allowed on {path}")
        return parts[2] + "_pool", {"name": parts[1]}
    if len(parts) == 2 and parts[0] == "pools":
        if method not in ("GET", "HEAD"):
            raise RouteError(405, f"{method} not allowed on {path}")
        return "pool_settings", {"name": parts[1]}
    config = route_config(method, parts, path)
    if config is not None:
        return config
    if len(parts) == 3 and parts[0] == "sites" and parts[2] in SITE_VERBS:
        if method != "POST":
            raise RouteError(405, f"{method} not allowed on {path}")
        return parts[2] + "_site", {"name": parts[1]}
    if parts == ["management", "token"]:
        if method != "POST":
            raise RouteError(405, f"{method} not allowed on {path}")
        return "management_token", {}
    if len(parts) == 3 and parts[0] == "wp" and parts[2] == "stacks":
        if method != "POST":
            raise RouteError(405, f"{method} not allowed on {path}")
        if not parts[1].isdigit():
            raise RouteError(404, f"no such worker process: {parts[1]}")
        return "stacks", {"pid": int(parts[1])}
    raise RouteError(404, f"no such resource: {path}")


def route_config(method: str, parts: list[str], path: str) -> tuple[str, dict] | None:
    """The configuration routes (wasp/manager/config_api.py), or None."""
    def only(*methods: str) -> None:
        if method not in methods:
            raise RouteError(405, f"{method} not allowed on {path}")

    if parts == ["config"]:
        only("GET", "HEAD")
        return "config_get", {}
    if parts == ["config", "changes"]:
        only("POST")
        return "config_change", {}
    if parts == ["config", "history"]:
        only("GET", "HEAD")
        return "config_history", {}
    if len(parts) == 4 and parts[:2] == ["config", "history"] and parts[3] == "restore":
        only("POST")
        return "config_restore", {"number": parts[2]}
    if parts == ["backups"]:
        only("GET", "HEAD", "POST")
        return ("backup_list" if method != "POST" else "backup_add"), {}
    if len(parts) == 3 and parts[0] == "backups" and parts[2] == "restore":
        only("POST")
        return "backup_restore", {"name": parts[1]}
    if len(parts) == 2 and parts[0] == "backups":
        only("DELETE")
        return "backup_delete", {"name": parts[1]}
    return None


def peer_credentials(writer) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    sock = writer.get_extra_info("socket")
    if sock is None or getattr(sock, "family", None) != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", raw)


class Text:
    """A payload sent as it is (GET /metrics: the Prometheus text format), not as JSON."""

    __slots__ = ("body", "content_type")

    def __init__(self, body: str, content_type: str):
        self.body = body
        self.content_type = content_type


def render(status: int, payload, head_only: bool = False) -> bytes:
    if isinstance(payload, Text):
        body, content_type = payload.body.encode("utf-8"), payload.content_type
    else:
        body, content_type = json.dumps(payload, indent=1, default=str).encode() + b"\n", "application/json"
    head = (f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    return head if head_only else head + body


Dispatch = Callable[[str, dict, AdminRequest], Awaitable[tuple[int, object]]]


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            dispatch: Dispatch) -> None:
    parser = RequestParser()
    try:
        request = None
        while request is None:
            data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
            if not data:
                return
            request = parser.feed(data)
        request.peer = peer_credentials(writer)
        try:
            name, args = route(request.method, request.path)
        except RouteError as exc:
            writer.write(render(exc.status, {"error": str(exc)}))
        else:
            try:
                status, payload = await dispatch(name, args, request)
            except Exception as exc:  # the admin API must answer, whatever went wrong inside
                status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
            writer.write(render(status, payload, head_only=request.method == "HEAD"))
        await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
    except AdminProtocolError as exc:
        writer.write(render(exc.status, {"error": str(exc)}))
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(path: str, dispatch: Dispatch) -> asyncio.AbstractServer:
    """Listen on `path` (replacing a stale socket file); only the owner may connect."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(
            lambda r, w: handle_connection(r, w, dispatch), path=path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return server
