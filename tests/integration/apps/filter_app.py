"""WSGI app for the request filtering tests: answers "app <path>" and, for a POST, the number of
body bytes it read (a chunked body is read to the end with wsgi.input.read())."""


def app(environ, start_response):
    body = f"app {environ['PATH_INFO']}"
    if environ["REQUEST_METHOD"] == "POST":
        body += f" read {len(environ['wsgi.input'].read())}"
    data = body.encode("utf-8", "surrogateescape")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
