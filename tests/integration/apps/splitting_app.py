"""Apps that try to split their own response with a header value (for test_server_splitting)."""

EVIL = "ok\r\nSet-Cookie: evil=1"


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Note", EVIL)])
    return [b"body"]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-note", EVIL.encode())]})
    await send({"type": "http.response.body", "body": b"body"})
