"""An app module that cannot be imported: the worker must report load_failed and exit 4."""

raise ImportError("broken_import: this module fails on purpose")


def app(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
