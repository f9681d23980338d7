"""WSGI app answering a 100 KiB text/plain body, to weigh body relay against per-request cost."""

BODY = (b"0123456789abcdef" * 6400)  # 102400 bytes, built once at import
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
