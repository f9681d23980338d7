"""A WSGI backend for the reverse proxy tests, run by gunicorn: says who it is (BACKEND_NAME)
and what reached it, and has the endpoints the tests need (health, slow, big, upload)."""

import hashlib
import json
import os
import threading
import time

NAME = os.environ.get("BACKEND_NAME", "backend")
HEALTH_FILE = os.environ.get("HEALTH_FILE", "")
_lock = threading.Lock()
_count = [0]
_inflight = [0]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    with _lock:
        _count[0] += 1
        count = _count[0]
    if path.endswith("/health"):
        sick = HEALTH_FILE and os.path.exists(HEALTH_FILE)
        start_response("503 Sick" if sick else "200 OK", [("Content-Type", "text/plain")])
        return [b"sick" if sick else b"healthy " + NAME.encode()]
    if path.endswith("/count"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(count - 1).encode()]
    if path.endswith("/inflight"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(_inflight[0]).encode()]
    if path.endswith("/slow"):
        with _lock:
            _inflight[0] += 1
        try:
            time.sleep(float(query or "1"))
        finally:
            with _lock:
                _inflight[0] -= 1
    if path.endswith("/big"):
        n = int(query or "1048576")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def chunks():
            left = n
            block = b"x" * 65536
            while left > 0:
                yield block[:min(left, 65536)]
                left -= 65536
        return chunks()
    if path.endswith("/upload"):
        digest = hashlib.sha256()
        total = 0
        stream = environ["wsgi.input"]
        while True:
            data = stream.read(65536)
            if not data:
                break
            total += len(data)
            digest.update(data)
        body = json.dumps({"name": NAME, "length": total, "sha256": digest.hexdigest()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path.endswith("/redirect"):
        host = environ.get("HTTP_HOST", "")
        start_response("302 Found", [("Location", f"http://{host}/landed"), ("Content-Length", "0")])
        return [b""]
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps({"name": NAME, "method": environ["REQUEST_METHOD"], "path": path, "query": query,
                       "headers": headers, "count": count,
                       "length": len(environ["wsgi.input"].read())}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
