"""Flask app for the execution-limit, health and request-list tests (test_exec_*.py).

/pid            the worker's pid
/hang           sleeps forever in `hang_here_forever` (the name the stuck report must show)
/stream-hang    sends a first chunk, then sleeps forever
/wait           waits until the file named by $EXEC_RELEASE exists (at most 120 s), then answers
"""

import os
import time

from flask import Flask, Response

app = Flask(__name__)


def hang_here_forever():
    for _ in range(1_000_000):
        time.sleep(0.5)


def wait_for_release():
    release = os.environ.get("EXEC_RELEASE", "")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (release and os.path.exists(release)):
        time.sleep(0.05)


@app.route("/pid")
def pid():
    return str(os.getpid())


@app.route("/hang")
def hang():
    hang_here_forever()
    return "never"


@app.route("/stream-hang")
def stream_hang():
    def body():
        yield b"first chunk\n"
        hang_here_forever()
        yield b"never\n"
    return Response(body(), mimetype="text/plain")


@app.route("/wait")
def wait():
    wait_for_release()
    return "released"
