"""Web-garden test support: a request held on one worker (apps/garden_app.py `/hold`), so that
the front gives the next request to another worker (the one with the most free places)."""

from __future__ import annotations

import socket
import threading

import requests


class Hold:
    """A request held on a worker's thread (garden_app /hold): the front gives the next request
    to the other worker, the one with more free places."""

    def __init__(self, server):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        port = self.listener.getsockname()[1]
        self.result = {}
        self.thread = threading.Thread(target=lambda: self.result.update(
            r=requests.get(f"{server.url}/hold?port={port}", timeout=60)), daemon=True)
        self.thread.start()
        self.conn, _ = self.listener.accept()
        self.pid = int(self.conn.recv(16))

    def release(self):
        self.conn.sendall(b"x")
        self.conn.close()
        self.listener.close()
        self.thread.join(60)
        assert self.result["r"].status_code == 200
