"""Flask app for the end-to-end tests: a real framework behind wasp's WSGI hosting.

Routes: "/" hello, "/pid" the worker's PID, "/slow?s=2" sleeps (optionally touching `mark` first so
a test knows the request reached the app), "/upload" streams the body (after `pause` seconds), "/upload-raw" reads
wsgi.input directly (tells a werkzeug quirk from a hosting bug), "/download?mb=N" streams N MiB,
"/echo" the path and query, "/boom" raises.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import time

from flask import Flask, Response, jsonify, request

app = Flask(__name__)

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * 4096  # 1 MiB


@app.get("/")
def hello():
    return "Hello from Flask"


@app.get("/pid")
def pid():
    return str(os.getpid())


@app.get("/slow")
def slow():
    mark = request.args.get("mark")
    if mark:
        pathlib.Path(mark).write_text(str(os.getpid()))
    seconds = float(request.args.get("s", "2"))
    time.sleep(seconds)
    return f"slept {seconds} in {os.getpid()}"


@app.get("/echo")
def echo():
    return f"{request.script_root}|{request.path}|{request.query_string.decode()}"


@app.post("/upload")
def upload():
    # ?pause=S: a slow app that does not read its body for S seconds (the front must stop
    # reading the client instead of buffering the upload).
    time.sleep(float(request.args.get("pause", "0")))
    digest = hashlib.sha256()
    count = 0
    while True:
        chunk = request.stream.read(CHUNK)
        if not chunk:
            break
        count += len(chunk)
        digest.update(chunk)
    return jsonify(bytes=count, sha256=digest.hexdigest(), pid=os.getpid())


@app.post("/upload-raw")
def upload_raw():
    stream = request.environ["wsgi.input"]
    digest = hashlib.sha256()
    count = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        count += len(chunk)
        digest.update(chunk)
    return jsonify(bytes=count, sha256=digest.hexdigest(), pid=os.getpid())


@app.get("/download")
def download():
    mib = int(request.args.get("mb", "1"))

    def generate():
        for _ in range(mib):
            yield PATTERN

    return Response(generate(), mimetype="application/octet-stream")


@app.get("/boom")
def boom():
    raise RuntimeError("boom on purpose")
