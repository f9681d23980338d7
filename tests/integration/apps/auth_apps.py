"""Apps that report who wasp says the user is: Flask (REMOTE_USER / AUTH_TYPE in the WSGI
environ) and FastAPI (the ASGI scope's `user` extension). "/whoami" answers JSON; "/header"
returns the Authorization header the app received (an app may do its own authentication)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from flask import Flask, jsonify, request

flask_app = Flask(__name__)


@flask_app.route("/whoami", methods=["GET", "POST", "DELETE", "HEAD"])
@flask_app.route("/domain/whoami")
def whoami():
    return jsonify(user=request.environ.get("REMOTE_USER"), auth_type=request.environ.get("AUTH_TYPE"),
                   method=request.method)


@flask_app.get("/secret/page")
def secret_page():
    return jsonify(user=request.environ.get("REMOTE_USER"), page="secret")


@flask_app.get("/header")
def header():
    return jsonify(authorization=request.headers.get("Authorization"),
                   user=request.environ.get("REMOTE_USER"))


@flask_app.get("/wait")
def wait():
    """Holds the request until the file named by ?until= exists (at most 30 s)."""
    import os
    import time

    deadline = time.monotonic() + 30
    while not os.path.exists(request.args["until"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return jsonify(user=request.environ.get("REMOTE_USER"))


@flask_app.get("/go")
def go():
    return "", 302, {"Location": "/flask/whoami"}


fastapi_app = FastAPI()


@fastapi_app.get("/whoami")
async def fastapi_whoami(request: Request):
    user = request.scope.get("extensions", {}).get("user")
    return {"user": user}
