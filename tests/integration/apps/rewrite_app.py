"""WSGI app for the URL Rewrite tests: it stands in for a front controller (index.php) and for
responses the outbound rules rewrite."""

import gzip
import json


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/out/html":
        # Streamed in small chunks that cut tags in the middle: the rewriter must carry them.
        page = (b'<html><body><a href="http://backend.internal/one">1</a>'
                b'<img src="http://backend.internal/img.png"><a href="/local">x</a>'
                b'<p>http://backend.internal/text-stays</p></body></html>')
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(page)))])
        return (page[i:i + 7] for i in range(0, len(page), 7))
    if path == "/out/plain":
        body = b'<a href="http://backend.internal/one">'
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/out/gzip":
        body = gzip.compress(b'<a href="http://backend.internal/one">')
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Encoding", "gzip"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/out/redirect":
        start_response("302 Found", [("Location", "http://backend.internal/after?x=1"),
                                     ("Content-Length", "0")])
        return [b""]
    body = json.dumps({
        "app": environ.get("WASP_APP", "root"),
        "path": path,
        "script_name": environ.get("SCRIPT_NAME", ""),
        "query": environ["QUERY_STRING"],
        "request_uri": environ.get("REQUEST_URI", ""),
        "original": environ.get("HTTP_X_ORIGINAL_URL", ""),
        "rewrite_url": environ.get("HTTP_X_REWRITE_URL", ""),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def api(environ, start_response):
    environ["WASP_APP"] = "api"
    return app(environ, start_response)


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    body = json.dumps({"app": "asgi", "path": scope["path"], "root_path": scope.get("root_path", ""),
                       "query": scope["query_string"].decode("latin-1"),
                       "original": headers.get("x-original-url", "")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
