"""Flask app for the httpErrors / httpRedirect / httpProtocol / output cache tests.

"/own404" answers its own 404 with a body, "/empty404" an empty 404, "/stream404" a streamed
one, "/boom" raises, "/errors/page" is an ExecuteURL error page (it counts its calls), "/count" and "/cached" count the calls
that reach the app (the output cache tests), "/options" answers OPTIONS itself, "/calls" the
counters.
"""

from __future__ import annotations

import collections
import threading

from flask import Flask, Response, jsonify, request

app = Flask(__name__)
app.config["PROPAGATE_EXCEPTIONS"] = True  # an exception reaches wasp: its 500, not Flask's page
_lock = threading.Lock()
_calls: collections.Counter = collections.Counter()


def _count(name: str) -> int:
    with _lock:
        _calls[name] += 1
        return _calls[name]


@app.get("/own404")
def own404():
    return "flask-own-404-body", 404


@app.get("/empty404")
def empty404():
    return Response(b"", status=404)


@app.get("/stream404")
def stream404():
    return Response((part for part in (b"streamed-", b"404")), status=404)


@app.get("/boom")
def boom():
    raise RuntimeError("errors-app-secret-91c2")


@app.get("/errors/page")
def error_page():
    n = _count("errors/page")
    return Response(f"flask-error-page call={n} method={request.method}", mimetype="text/html",
                    headers={"ETag": '"child"', "Set-Cookie": "child=1"})


@app.get("/errors/failing")
def failing_page():
    raise RuntimeError("the error page itself fails")


@app.route("/options", methods=["GET", "OPTIONS"])
def options():
    if request.method == "OPTIONS":
        return Response(b"", status=204, headers={"Allow": "GET, OPTIONS", "X-App-Options": "1"})
    return "options page"


@app.get("/redirected")
def redirected():
    return Response("redirected-by-app", status=302, headers={"Location": "/elsewhere"})


@app.get("/cached")
def cached():
    n = _count("cached")
    headers = {}
    if request.args.get("cc"):
        headers["Cache-Control"] = request.args["cc"]
    if request.args.get("cookie"):
        headers["Set-Cookie"] = "a=1"
    if request.args.get("vary"):
        headers["Vary"] = request.args["vary"]
    if request.args.get("wasp"):
        headers["X-Wasp-Output-Cache"] = request.args["wasp"]
    lang = request.headers.get("Accept-Language", "")
    return Response(f"cached call={n} q={request.query_string.decode()} lang={lang}",
                    headers=headers)


@app.get("/big")
def big():
    _count("big")
    return "x" * (300 * 1024)


@app.get("/calls")
def calls():
    with _lock:
        response = jsonify(dict(_calls))
    response.headers["Cache-Control"] = "no-store"  # never from a cache: the tests count with it
    return response
