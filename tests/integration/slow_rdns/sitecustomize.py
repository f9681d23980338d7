"""Test support, on the PYTHONPATH of a server test_server_rdns_pending.py starts: in a worker
(WASP_POOL is set) the reverse lookup of 127.0.0.1 writes `<WASP_SLOW_RDNS>/started` and then
waits for `<WASP_SLOW_RDNS>/release` (at most 60 s) before asking the real resolver: a name
server as slow as the test wants, without timing."""

import os
import pathlib
import socket
import time

_folder = os.environ.get("WASP_SLOW_RDNS")
if _folder and os.environ.get("WASP_POOL"):
    _folder = pathlib.Path(_folder)
    _real = socket.gethostbyaddr

    def gethostbyaddr(address):
        if address == "127.0.0.1":
            (_folder / "started").write_text(str(os.getpid()))
            deadline = time.monotonic() + 60
            while not (_folder / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return _real(address)

    socket.gethostbyaddr = gethostbyaddr
