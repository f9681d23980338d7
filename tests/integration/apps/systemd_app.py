"""The app behind the systemd tests: says hello."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from a socket-activated wasp\n"]
