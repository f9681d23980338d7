"""Apps that show who the server says the user is: WSGI `app` answers JSON of REMOTE_USER and
AUTH_TYPE; ASGI `asgi_app` answers JSON of the scope's `user` extension."""

from __future__ import annotations

import json


def app(environ, start_response):
    body = json.dumps({"REMOTE_USER": environ.get("REMOTE_USER"),
                       "AUTH_TYPE": environ.get("AUTH_TYPE")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"user": scope.get("extensions", {}).get("user")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
