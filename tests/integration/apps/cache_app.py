"""A WSGI app for the response cache tests: each path counts the requests that reached it and says
so in its body, with the response headers the path's name asks for."""

import itertools
import threading

_lock = threading.Lock()
_counts: dict[str, itertools.count] = {}

HEADERS = {
    "/page": [],
    "/cookie": [("Set-Cookie", "session=1; Path=/")],
    "/varystar": [("Vary", "*")],
    "/private": [("Cache-Control", "private")],
    "/nostore": [("Cache-Control", "no-store")],
    "/nocache": [("Cache-Control", "no-cache")],
    "/lang": [("Vary", "Accept-Language")],
}


def application(environ, start_response):
    path = environ["PATH_INFO"]
    url = environ["SCRIPT_NAME"] + path
    with _lock:
        n = next(_counts.setdefault(url, itertools.count(1)))
    if environ["REQUEST_METHOD"] == "POST" or environ.get("CONTENT_LENGTH"):
        environ["wsgi.input"].read()
    body = f"{url} {n} {environ.get('HTTP_ACCEPT_LANGUAGE', '-')}".encode()
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers + HEADERS.get(path, []))
    return [body]
