"""WSGI apps for the worker tests."""
import os
import sys


def hello(environ, start_response):
    body = b"Hello, world!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def echo_environ(environ, start_response):
    keys = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "HTTP_COOKIE", "HTTP_X_MULTI",
            "CONTENT_TYPE", "CONTENT_LENGTH", "APP_WARMING_UP", "wsgi.url_scheme"]
    lines = [f"{k}={environ.get(k)!r}" for k in keys]
    lines.append(f"WASP_POOL={os.environ.get('WASP_POOL')}")
    lines.append(f"WASP_WORKER_ID={os.environ.get('WASP_WORKER_ID')}")
    body = "\n".join(lines).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def upload(environ, start_response):
    """Reads the body in 64 KiB pieces and answers with the byte count and a checksum."""
    stream = environ["wsgi.input"]
    total = 0
    check = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        total += len(chunk)
        check = (check + sum(chunk[::4096])) % 1000003
    body = f"{total} {check}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def download(environ, start_response):
    """Streams N bytes (?n=) as 64 KiB chunks of a repeating pattern."""
    n = int(environ.get("QUERY_STRING", "n=0").partition("=")[2] or 0)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = bytes(range(256)) * 256

    def chunks():
        left = n
        while left > 0:
            piece = block[:min(left, len(block))]
            left -= len(piece)
            yield piece
    return chunks()


def raises(environ, start_response):
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom")
    if environ["PATH_INFO"] == "/late":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"partial" * 10000
            yield b"x" * 300000
            raise RuntimeError("late boom")
        return gen()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]


def writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    return [b"returned"]


def file_app(environ, start_response):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "www", "hello.txt")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](open(path, "rb"))


def errors_app(environ, start_response):
    print("to wsgi.errors", file=environ["wsgi.errors"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def make_app(greeting="hi"):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]
    return app


def _validated():
    from wsgiref.validate import validator

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/body":
            data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [data]
        if environ["PATH_INFO"] == "/lines":
            lines = environ["wsgi.input"].readlines()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"%d" % len(lines)]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return iter([b"ok"])
    return validator(app)


validated = _validated()
