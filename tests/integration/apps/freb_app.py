"""A WSGI app for the FREB tests: fast, slow, failing and 404 answers."""

import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.endswith("/slow"):
        time.sleep(0.4)
    if path.endswith("/boom"):
        raise RuntimeError("boom from the app")
    if path.endswith("/gone"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"the app says not found"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "sid=secret-cookie")])
    return [b"hello"]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    status = 404 if scope["path"].endswith("/gone") else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"asgi says hi"})
