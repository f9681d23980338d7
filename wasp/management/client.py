"""The management site's way to the server: the manager's admin API on run_dir/admin.sock.

It forwards a request's method, path, query and JSON body (with the logged-in `user`, which the
manager writes to the event log with every change) and hands back the API's status and JSON.
"""

from __future__ import annotations

import http.client
import json
import os

from wasp.common.unixsock import UnixHTTPConnection

TIMEOUT = 60.0


class Admin:
    def __init__(self, run_dir: str, timeout: float = TIMEOUT):
        self.socket_path = os.path.join(run_dir, "admin.sock")
        self.timeout = timeout

    def call(self, method: str, target: str, body=None) -> tuple[int, object]:
        headers = {"Host": "wasp"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, target, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return 502, {"error": f"the server's admin API did not answer: {exc}"}
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return 502, {"error": "the admin API's answer is not JSON"}

    def call_raw(self, target: str) -> tuple[int, str, bytes]:
        """GET `target` and hand back (status, content type, body) as sent (a trace's XML)."""
        conn = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request("GET", target, headers={"Host": "wasp"})
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        except (OSError, http.client.HTTPException) as exc:
            return 502, "application/json", json.dumps(
                {"error": f"the server's admin API did not answer: {exc}"}).encode()
        finally:
            conn.close()
