"""Plain WSGI app (no framework) for tests that kill workers.

"/" names itself, "/pid" returns the worker's PID, "/raise" raises out of the app so the worker
itself must turn the failure into a 500.
"""

import os


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/raise":
        raise RuntimeError("crashy: raised out of the WSGI callable on purpose")
    if path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/":
        body = b"crashy"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = app
