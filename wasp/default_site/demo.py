"""The Default Web Site's demo: a plain WSGI app (no framework) showing what a worker sees.

  /        the request as the app received it, the worker's PID and its pool (WASP_POOL)
  /echo    GET: a form; POST: the body sent back (in a page for browsers, else as text/plain)
  /time    the worker's clock as JSON
"""

from __future__ import annotations

import datetime
import html
import json
import os
import time

MAX_ECHO = 1024 * 1024  # bytes of a POST body the echo page reads; the rest is reported, not echoed

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h1 span { color: #d99a00; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .25rem .5rem;
  border-bottom: 1px solid rgba(127,127,127,.3); vertical-align: top; } th { width: 14rem; }
code, pre, td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9em; }
pre { background: rgba(127,127,127,.12); padding: .75rem; white-space: pre-wrap; word-break: break-all; }
nav a { margin-right: 1rem; color: #d99a00; }
"""


def app(environ, start_response):
    """WSGI entry point: routes on PATH_INFO below the application's path."""
    path = environ.get("PATH_INFO", "") or "/"
    method = environ.get("REQUEST_METHOD", "GET")
    if path == "/":
        return _respond(start_response, "200 OK", _page(environ, "Request", _request_info(environ)))
    if path == "/echo":
        if method == "POST":
            return _echo(environ, start_response)
        if method in ("GET", "HEAD"):
            return _respond(start_response, "200 OK", _page(environ, "Echo", _echo_form(environ)))
        return _respond(start_response, "405 Method Not Allowed", b"Method Not Allowed\n",
                        "text/plain; charset=utf-8", [("Allow", "GET, HEAD, POST")])
    if path == "/time":
        now = time.time()
        body = json.dumps({
            "epoch": now,
            "utc": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(),
            "local": datetime.datetime.fromtimestamp(now).astimezone().isoformat(),
            "pid": os.getpid(),
        }).encode()
        return _respond(start_response, "200 OK", body, "application/json")
    return _respond(start_response, "404 Not Found",
                    _page(environ, "Not found", f"<p>No page at <code>{_e(path)}</code>.</p>"))


def _request_info(environ) -> str:
    rows = [
        ("Method", environ.get("REQUEST_METHOD", "")),
        ("Script name", environ.get("SCRIPT_NAME", "")),
        ("Path info", environ.get("PATH_INFO", "")),
        ("Query string", environ.get("QUERY_STRING", "")),
        ("Protocol", environ.get("SERVER_PROTOCOL", "")),
        ("Client", f"{environ.get('REMOTE_ADDR', '')}:{environ.get('REMOTE_PORT', '')}"),
        ("Server", f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"),
        ("Worker PID", str(os.getpid())),
        ("Pool", os.environ.get("WASP_POOL", "(WASP_POOL not set)")),
        ("Multithreaded", str(environ.get("wsgi.multithread", ""))),
        ("Multiprocess", str(environ.get("wsgi.multiprocess", ""))),
    ]
    headers = sorted((key[5:].replace("_", "-").title(), value) for key, value in environ.items()
                     if key.startswith("HTTP_"))
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").title(), environ[key]))
    return (f"<h2>Request</h2>{_table(rows)}<h2>Headers</h2>{_table(headers)}")


def _echo_form(environ) -> str:
    action = _e(environ.get("SCRIPT_NAME", "") + "/echo")
    return (f'<p>POST a body to <code>{action}</code> and it comes back. From a shell: '
            f'<code>curl -d hello http://HOST{action}</code></p>'
            f'<form method="post" action="{action}" enctype="text/plain">'
            '<p><textarea name="text" rows="6" cols="60"></textarea></p>'
            '<p><button type="submit">Echo</button></p></form>')


def _echo(environ, start_response):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    # Without a Content-Length (chunked upload), read until the server says the body has ended.
    body = stream.read(min(length, MAX_ECHO)) if length else stream.read(MAX_ECHO)
    accept = environ.get("HTTP_ACCEPT", "")
    if "text/html" not in accept:
        # Never the sender's Content-Type: echoing it would let any page make us serve its HTML.
        return _respond(start_response, "200 OK", body, "text/plain; charset=utf-8")
    text = body.decode("utf-8", "replace")
    note = f"<p>{len(body)} bytes" + (f" of {length} shown" if length > len(body) else "") + ".</p>"
    return _respond(start_response, "200 OK", _page(environ, "Echo", f"{note}<pre>{_e(text)}</pre>"))


def _page(environ, title: str, content: str) -> bytes:
    base = _e(environ.get("SCRIPT_NAME", ""))
    nav = (f'<nav><a href="{base}/">request</a><a href="{base}/echo">echo</a>'
           f'<a href="{base}/time">time</a><a href="/">welcome page</a></nav>')
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>wasp demo: {_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1><span>wasp</span> demo: {_e(title)}</h1>{nav}{content}</body></html>").encode()


def _table(rows) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _respond(start_response, status: str, body: bytes, content_type: str = "text/html; charset=utf-8",
             extra: list | None = None):
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
    start_response(status, headers + (extra or []))
    return [body]
