"""Admin API pieces the management site needs: the tail of a log, a worker's thread stacks, a
pool's effective settings, and the management site's login token and session key (who did an
action is event 9075, api.py's AUDITED).

`MgmtOps` is a mixin of `Manager` (main.py) like `AdminApi`; the functions above it do no more
I/O than reading a file's end or writing the two secrets.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from typing import TYPE_CHECKING, TextIO

import msgspec

from wasp.config import management

if TYPE_CHECKING:
    from wasp.manager.admin import AdminRequest

#: Lines `GET /logs` returns at most, and bytes of the file's end it reads at most.
MAX_LINES = 1000
MAX_TAIL_BYTES = 1024 * 1024
STACKS_TIMEOUT = 5.0

_ACCESS_NAME = re.compile(r"u_ex\d{6}(\d\d)?(_x)?\.log")
_HTTPERR_NAME = re.compile(r"httperr(\d+)\.log")


class LogQueryError(Exception):
    status = 400


def log_file(log_dir: str, kind: str, site_id: int | None) -> str | None:
    """The newest access log of site `site_id` (`W3SVC<id>/u_ex...log`) or HTTPERR file."""
    if kind == "access":
        if site_id is None:
            raise LogQueryError("an access log needs site=<site id>")
        folder = os.path.join(log_dir, f"W3SVC{site_id}")
        pattern = _ACCESS_NAME
        key = lambda name: name  # u_exYYMMDD[HH] sorts by time
    elif kind == "httperr":
        folder = os.path.join(log_dir, "httperr")
        pattern = _HTTPERR_NAME
        key = lambda name: int(_HTTPERR_NAME.fullmatch(name).group(1))
    else:
        raise LogQueryError("kind must be access or httperr")
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return None
    return os.path.join(folder, max(names, key=key)) if names else None


def tail(path: str, lines: int) -> list[str]:
    """The last `lines` lines of a file, reading at most MAX_TAIL_BYTES of its end."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        start = max(0, size - MAX_TAIL_BYTES)
        f.seek(start)
        data = f.read(size - start)
    text = data.decode("utf-8", "replace").splitlines()
    if start:
        text = text[1:]  # the first line read is cut
    return text[-lines:] if lines else []


def logs_query(log_dir: str, query: dict[str, str], site_ids: set[int]) -> dict:
    kind = query.get("kind", "access")
    try:
        lines = int(query.get("lines", "200"))
    except ValueError:
        raise LogQueryError("lines must be an integer") from None
    if not 1 <= lines <= MAX_LINES:
        raise LogQueryError(f"lines must be 1..{MAX_LINES}")
    site_id = None
    if kind == "access":
        text = query.get("site", "")
        if not text.isdigit() or int(text) not in site_ids:
            raise LogQueryError(f"site must be the id of a configured site, not {text!r}")
        site_id = int(text)
    path = log_file(log_dir, kind, site_id)
    if path is None:
        return {"kind": kind, "site": site_id, "file": "", "lines": []}
    return {"kind": kind, "site": site_id, "file": path, "lines": tail(path, lines)}


def _write_secret(run_dir: str, name: str, data: bytes) -> None:
    path = os.path.join(run_dir, name)
    tmp = path + ".new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def new_token(run_dir: str) -> str:
    token = secrets.token_urlsafe(32)
    _write_secret(run_dir, management.TOKEN_FILE, token.encode())
    return token


def prepare_secrets(run_dir: str) -> tuple[str, bytes]:
    """A new one-time login token and session key for this start (run_dir, mode 0600): sessions
    of an earlier run end, and the token printed at start is the one that works."""
    key = secrets.token_bytes(32)
    _write_secret(run_dir, management.KEY_FILE, key)
    return new_token(run_dir), key


def login_urls(config, token: str) -> list[str]:
    from wasp.config.bindings import parse_binding
    urls = []
    for entry in config.management.bindings:
        b = parse_binding(entry)
        if b.ip.startswith("unix:"):
            continue
        host = b.host or (b.ip if b.ip not in ("*", "") else "127.0.0.1")
        if ":" in host:
            host = f"[{host}]"
        urls.append(f"{b.protocol}://{host}:{b.port}/login?token={token}")
    return urls


def _plain(value):
    """Duration and Size (float and int subclasses) as plain numbers."""
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    raise NotImplementedError(type(value))


class MgmtOps:
    """`Manager`'s handlers for the management site's operations (main.py has the attributes)."""

    def prepare_management(self, stderr: TextIO) -> None:
        if not self.config.management.enabled:
            return
        token, _ = prepare_secrets(self.run_dir)
        urls = login_urls(self.config, token)
        stderr.write("The management site is at " + (", ".join(urls) or "its Unix socket")
                     + "\n(the link logs in once; `wasp management token` prints a new one)\n")
        stderr.flush()

    def pool_settings(self, name: str) -> tuple[int, object]:
        """A pool's effective settings (its [[pools]] entry over [pool_defaults] over the
        defaults), for the management site's editor."""
        rec = self.sup.pools.get(name)
        if rec is None:
            return 404, {"error": f'Cannot find APPPOOL object with identifier "{name}".'}
        return 200, {"name": name, "builtin": name == management.POOL_NAME,
                     "settings": msgspec.to_builtins(rec.settings, enc_hook=_plain)}

    def management_token(self) -> tuple[int, object]:
        """`wasp management token`: a new one-time login link (the old one stops working)."""
        if not self.config.management.enabled:
            return 409, {"error": "the management site is not enabled ([management] enabled = true)"}
        token = new_token(self.run_dir)
        return 200, {"token": token, "urls": login_urls(self.config, token)}

    def logs_rows(self, request: AdminRequest) -> tuple[int, object]:
        try:
            return 200, logs_query(self.log_dir, request.query, {s.id for s in self.config.sites})
        except LogQueryError as exc:
            return exc.status, {"error": str(exc)}
        except OSError as exc:
            return 500, {"error": f"cannot read the log: {exc.strerror or exc}"}

    async def worker_stacks(self, pid: int) -> tuple[int, object]:
        """Every thread's stack of worker `pid` (the watchdog's report, on demand)."""
        found = [(wid, child) for wid, child in list(self.workers.items()) if child.pid == pid]
        if not found:
            return 404, {"error": f"no worker process has pid {pid}"}
        wid, child = found[0]
        ping_id = self.sup.new_ping_id()
        future = self.loop.create_future()
        self.waiters[ping_id] = future
        child.channel.send({"op": "dump_stacks", "id": ping_id})
        try:
            answer = await asyncio.wait_for(future, STACKS_TIMEOUT)
        except asyncio.TimeoutError:
            return 504, {"error": f"worker process {pid} did not answer within {STACKS_TIMEOUT:g} seconds"}
        finally:
            self.waiters.pop(ping_id, None)
        rec = self.sup.workers.get(wid)
        return 200, {"pid": pid, "pool": rec.pool if rec else "", "stacks": answer.get("stacks", "")}
