"""Small helpers every process and the CLI use on Unix sockets."""

from __future__ import annotations

import http.client
import socket


def answers(path: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on the Unix socket at `path` (a live server, as
    opposed to a stale socket file left by one that died)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 to the Unix socket at `path` (the admin API: the CLI and the management site)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("wasp", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock
