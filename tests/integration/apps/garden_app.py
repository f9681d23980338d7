"""WSGI app for web-garden tests: "/pid" returns the worker's PID; "/hold?port=N" connects to the
test's listener on 127.0.0.1:N, sends the worker's PID and occupies a WSGI thread until the test
sends a byte back (60 s at most)."""

import os
import socket
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hold":
        port = int(parse_qs(environ["QUERY_STRING"])["port"][0])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(str(os.getpid()).encode())
            sock.recv(1)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
