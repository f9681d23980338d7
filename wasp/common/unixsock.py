"""A small helper every process and the CLI use on Unix sockets."""

from __future__ import annotations

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
