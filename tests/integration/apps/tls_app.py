"""Apps that show what they learn of TLS: Flask (WSGI) and a raw ASGI app.

Flask: "/" JSON of the environ's scheme and mod_ssl variables and the URL Flask builds,
"/slow?s=N" sleeps N seconds (for `wasp list requests`). ASGI `asgi_app`: JSON of the scope's
scheme and TLS extension.
"""

from __future__ import annotations

import json
import os
import time

from flask import Flask, jsonify, request

app = Flask(__name__)

_KEYS = ("wsgi.url_scheme", "HTTPS", "SSL_PROTOCOL", "SSL_TLS_SNI", "SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN",
         "SSL_CLIENT_I_DN", "SSL_CLIENT_M_SERIAL", "SSL_CLIENT_CERT")


@app.get("/")
def facts():
    env = request.environ
    return jsonify({**{k: env.get(k) for k in _KEYS}, "url": request.url, "is_secure": request.is_secure})


@app.get("/slow")
def slow():
    # ?until=PATH: until the test creates PATH (at most 30 s), so it ends when the test says.
    until = request.args.get("until")
    if until:
        deadline = time.monotonic() + 30
        while not os.path.exists(until) and time.monotonic() < deadline:
            time.sleep(0.02)
        return "released"
    time.sleep(min(float(request.args.get("s", "2")), 10.0))
    return "slept"


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    tls = scope.get("extensions", {}).get("tls")
    body = json.dumps({"scheme": scope["scheme"], "tls": tls}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
