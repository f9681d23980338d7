"""A 2 KiB HTML page, the same for every request: what a profile (wasp) or proxy_cache (nginx)
makes cacheable in the `cached` scenario."""

BODY = (b"<!DOCTYPE html><html><head><title>cached page</title></head><body>"
        + b"<p>" + b"wasp caches this page in its front. " * 55 + b"</p></body></html>")
HEADERS = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
