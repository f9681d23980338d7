"""A WSGI app whose requests can be held on a WSGI thread for as long as a test wants.

`/block?port=N` connects to the test's listener on 127.0.0.1:N, says "in", and waits (60 s at
most) until the test sends a byte back: while it waits, it occupies one of the worker's threads.
`/boom` raises, with a message a client must never see unless errors are detailed.
"""

import socket
from urllib.parse import parse_qs

SECRET = "app-secret-7f3a: do not show this to clients"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/block":
        port = int(parse_qs(environ["QUERY_STRING"])["port"][0])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"in")
            released = sock.recv(1)
        body = b"released" if released else b"listener closed"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/boom":
        raise RuntimeError(SECRET)
    body = b"app answered " + path.encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
