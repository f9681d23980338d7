"""A client of the manager's admin API (HTTP/1.1 + JSON on run_dir/admin.sock)."""

from __future__ import annotations

import json
import os
import urllib.parse

from wasp.common.unixsock import UnixHTTPConnection


class ServerNotRunning(Exception):
    def __init__(self, socket_path: str, detail: str):
        self.socket_path = socket_path
        super().__init__(f"wasp is not running (no server answers on {socket_path}: {detail})")


class AdminError(Exception):
    """The server answered with an error; `message` is appcmd-style text."""

    def __init__(self, status: int, message: str, payload=None):
        self.status = status
        self.message = message
        self.payload = payload
        super().__init__(message)


class AdminClient:
    def __init__(self, run_dir: str, timeout: float = 30.0):
        self.socket_path = os.path.join(run_dir, "admin.sock")
        self.timeout = timeout

    def request(self, method: str, path: str, timeout: float | None = None, body: bytes | None = None):
        conn = UnixHTTPConnection(self.socket_path, timeout or self.timeout)
        try:
            try:
                conn.connect()
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise ServerNotRunning(self.socket_path, exc.strerror or str(exc)) from None
            headers = {"Host": "wasp"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = {"error": body.decode("utf-8", "replace")}
        if response.status >= 400:
            message = payload.get("error", f"HTTP {response.status}") if isinstance(payload, dict) else str(payload)
            raise AdminError(response.status, message, payload)
        return payload

    def get(self, what: str, **query):
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self.request("GET", f"/{what}{suffix}")

    def pool_command(self, verb: str, pool: str, timeout: float | None = None):
        return self.request("POST", f"/pools/{urllib.parse.quote(pool, safe='')}/{verb}", timeout)

    def site_command(self, verb: str, site: str):
        return self.request("POST", f"/sites/{urllib.parse.quote(site, safe='')}/{verb}")

    def cache_flush(self, site: str = "", url: str = ""):
        query = urllib.parse.urlencode({k: v for k, v in (("site", site), ("url", url)) if v})
        return self.request("POST", "/cache/flush" + (f"?{query}" if query else ""))

    def post_json(self, path: str, payload, method: str = "POST"):
        """A configuration request (docs/appcmd.md) with a JSON body."""
        return self.request(method, path, body=json.dumps(payload).encode())

    def reload(self):
        return self.request("POST", "/reload")
