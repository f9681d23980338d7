"""The management site (IIS Manager in a browser): a WSGI app the built-in `WMSvc` pool hosts.

It serves the pages (static/, plain HTML, CSS and JavaScript modules: no build step, nothing
from the internet) and a JSON API under /api/ that the pages call. Every answer of that API comes
from the manager's admin API (client.py); this app keeps no state of the server's and reaches
into nothing else. It adds the login (sessions.py): the one-time token the server prints at start,
or the password of a member of `[management] group` checked by the credential store of the
server-level `basic_authentication` section; and it names the logged-in user (`user` in the JSON
body) on every change, so the event log says who did it (9070-9075).

Settings come from the pool's environment (wasp/config/management.py writes them).
"""

from __future__ import annotations

import fcntl
import html
import json
import mimetypes
import os
import re
import secrets
import threading
import time
import urllib.parse

from wasp.config import management
from wasp.management import forms, sessions
from wasp.management.client import Admin
from wasp.wire.http import reason_phrase

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_FORM = 16 * 1024
MAX_JSON = 64 * 1024

#: GET /api/<name> forwards to the admin API's GET /<name>, with these query keys only.
READS = {"status", "sites", "apps", "pools", "wp", "requests", "events", "logs", "cache"}
READ_QUERY = {"since", "kind", "site", "lines"}
#: POST /api/... forwards these admin commands (pool and site names hold no "/").
_CHANGES = [
    re.compile(r"pools/[^/]+/(recycle|stop|start)"),
    re.compile(r"sites/[^/]+/(start|stop)"),
    re.compile(r"wp/\d{1,10}/stacks"),
    re.compile(r"reload"),
    re.compile(r"cache/flush"),
]
CHANGE_QUERY = {"site", "url"}
TRACES_PAGE = 50
_STATUS_FILTER = re.compile(r"[1-5][0-9]{0,2}(\.[0-9]{1,5})?")
_POOL_SETTINGS = re.compile(r"pools/[^/]+")
_RESTORE = re.compile(r"config/history/\d{1,10}/restore")


def _quoted(rest: str) -> str:
    return "/".join(urllib.parse.quote(p, safe="") for p in rest.split("/"))

SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'; object-src 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]


def _static_files() -> dict[str, str]:
    files = {}
    for name in os.listdir(STATIC):
        if re.fullmatch(r"[a-z0-9_-]+\.(js|css|html|svg)", name):
            files[name] = os.path.join(STATIC, name)
    return files


class Response(Exception):
    """An answer decided early (errors, redirects): raised, and turned into a response in
    `ManagementApp.__call__` only."""

    def __init__(self, status: str, body: bytes = b"", content_type: str = "application/json",
                 headers: list | None = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


def json_error(status: str, message: str) -> Response:
    return Response(status, json.dumps({"error": message}).encode())


class ManagementApp:
    def __init__(self, settings: dict):
        self.run_dir = settings.get("run_dir", "")
        self.hosts = [h.lower() for h in settings.get("hosts", [])]
        self.group = settings.get("group", "")
        self.timeout = float(settings.get("session_timeout", 1200))
        self.basic = settings.get("basic_authentication") or {}
        self.admin = Admin(self.run_dir)
        self.static = _static_files()
        self._lock = threading.Lock()
        self._key_sig = None
        self._sessions: sessions.Sessions | None = None
        self._store = None
        from wasp.worker.auth.credentials import FailureLimiter
        self.limiter = FailureLimiter(limit=10, window=60.0)

    # ------------------------------------------------------------------ plumbing
    def sessions(self) -> sessions.Sessions:
        """The session codec for the key the manager wrote at this start (a new start ends
        every session)."""
        path = os.path.join(self.run_dir, management.KEY_FILE)
        try:
            st = os.stat(path)
        except OSError:
            raise json_error("503 Service Unavailable", "the management site's key is missing: "
                                                        "restart the server") from None
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if sig != self._key_sig:
                with open(path, "rb") as f:
                    key = f.read()
                revoked = self._sessions.revoked if self._sessions else set()
                self._sessions = sessions.Sessions(key, self.timeout)
                self._sessions.revoked = revoked
                self._key_sig = sig
            return self._sessions

    def __call__(self, environ, start_response):
        try:
            status, body, content_type, headers = self.handle(environ)
        except Response as r:
            status, body, content_type, headers = r.status, r.body, r.content_type, r.headers
        out = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store")] + SECURITY_HEADERS + headers
        start_response(status, out)
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else [b""]

    def handle(self, environ):
        tls = environ.get("wsgi.url_scheme") == "https"
        host = environ.get("HTTP_HOST", "")
        if not sessions.host_allowed(host, self.hosts):
            raise Response("421 Misdirected Request", b"this host name is not the management site's\n",
                           "text/plain; charset=utf-8")
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        if path.startswith("/static/"):
            return self.static_file(path[len("/static/"):], method)
        if path == "/login":
            return self.login(environ, method, tls, host)
        codec = self.sessions()
        now = time.time()
        session = codec.verify(sessions.cookie_value(environ.get("HTTP_COOKIE"), tls), now)
        extra = []
        if session is not None:
            fresh = codec.refreshed(session, now)
            if fresh is not None:
                session = fresh[0]
                extra.append(("Set-Cookie", sessions.set_cookie(fresh[1], tls)))
        if session is None:
            if path.startswith("/api/"):
                raise json_error("401 Unauthorized", "not logged in")
            raise Response("303 See Other", b"", "text/plain", [("Location", "/login")])
        if method == "POST":
            if not sessions.origin_allowed(environ.get("HTTP_ORIGIN"), host, tls):
                raise json_error("403 Forbidden", "the request comes from another site (Origin)")
            if not codec.check_csrf(session, environ.get("HTTP_X_CSRF_TOKEN")):
                raise json_error("403 Forbidden", "missing or wrong CSRF token (X-CSRF-Token)")
        if path == "/logout":
            if method != "POST":
                raise json_error("405 Method Not Allowed", "log out with POST")
            codec.revoke(session)
            return "303 See Other", b"", "text/plain", [("Location", "/login"),
                                                        ("Set-Cookie", sessions.clear_cookie(tls))]
        if path in ("/", "/index.html"):
            return ("200 OK", self.read_static("index.html"), "text/html; charset=utf-8", extra)
        if path == "/api/session":
            body = {"user": session.user, "csrf": codec.csrf_token(session),
                    "timeout_s": self.timeout}
            return "200 OK", json.dumps(body).encode(), "application/json", extra
        if path in ("/trace", "/trace/raw"):
            return self.trace_page(environ, method, raw=path == "/trace/raw") + (extra,)
        if path == "/api/traces" and method in ("GET", "HEAD"):
            return self.traces(environ) + ("application/json", extra)
        if path.startswith("/api/"):
            status, body = self.api(method, path[len("/api/"):], environ, session.user)
            return status, body, "application/json", extra
        raise json_error("404 Not Found", f"no such page: {path}")

    # ------------------------------------------------------------------ pages
    def read_static(self, name: str) -> bytes:
        with open(self.static[name], "rb") as f:
            return f.read()

    def static_file(self, name: str, method: str):
        if method not in ("GET", "HEAD"):
            raise json_error("405 Method Not Allowed", "static files are read with GET")
        if name not in self.static:
            raise json_error("404 Not Found", "no such file")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".js"):
            kind = "text/javascript"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        return "200 OK", self.read_static(name), kind, []

    def login_page(self, status: str, message: str = "", tls: bool = False):
        page = self.read_static("login.html").decode()
        note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
        page = page.replace("<!--MESSAGE-->", note)
        if not self.group:
            page = page.replace('<fieldset id="password-login">', '<fieldset id="password-login" hidden>')
        return status, page.encode(), "text/html; charset=utf-8", []

    def login(self, environ, method: str, tls: bool, host: str):
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if method == "GET" and "token" not in query:
            return self.login_page("200 OK", tls=tls)
        if method == "GET":  # the link printed at start (as Jupyter's)
            form = {"token": query["token"][0]}
        elif method == "POST":
            if not sessions.origin_allowed(environ.get("HTTP_ORIGIN"), host, tls):
                raise json_error("403 Forbidden", "the login comes from another site (Origin)")
            form = self.read_form(environ)
        else:
            raise json_error("405 Method Not Allowed", "log in with GET ?token= or POST")
        client = environ.get("REMOTE_ADDR", "")
        now = time.monotonic()
        if self.limiter.blocked(client, now):
            return self.login_page("429 Too Many Requests", "Too many failed logins; wait a minute.", tls)
        user = None
        if form.get("token"):
            if self.take_token(form["token"]):
                user = "token"
        elif form.get("user") and self.group:
            user = self.check_password(form["user"], form.get("password", ""))
        if user is None:
            self.limiter.failed(client, now)
            return self.login_page("401 Unauthorized", "Login failed: wrong or used token, or wrong "
                                                       "user name or password.", tls)
        _, cookie = self.sessions().issue(user, time.time())
        return "303 See Other", b"", "text/plain", [("Location", "/"),
                                                    ("Set-Cookie", sessions.set_cookie(cookie, tls))]

    def read_form(self, environ) -> dict[str, str]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise json_error("400 Bad Request", "bad Content-Length") from None
        if length > MAX_FORM:
            raise json_error("413 Content Too Large", "the form is too large")
        kind = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise json_error("415 Unsupported Media Type", "send the login form")
        raw = environ["wsgi.input"].read(length).decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, max_num_fields=10).items()}

    def read_json(self, environ) -> dict:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise json_error("400 Bad Request", "bad Content-Length") from None
        if length > MAX_JSON:
            raise json_error("413 Content Too Large", "the body is too large")
        kind = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise json_error("415 Unsupported Media Type", "send JSON (Content-Type: application/json)")
        try:
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError:
            raise json_error("400 Bad Request", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise json_error("400 Bad Request", "the body must be a JSON object")
        return body

    def take_token(self, given: str) -> bool:
        """The one-time token: a match logs in once and replaces the token (under a lock, so
        two logins cannot both spend it)."""
        path = os.path.join(self.run_dir, management.TOKEN_FILE)
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            expected = os.read(fd, 1024).decode("utf-8", "replace").strip()
            if not sessions.token_matches(given, expected):
                return False
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, secrets.token_urlsafe(32).encode())
            return True
        finally:
            os.close(fd)

    def check_password(self, user: str, password: str) -> str | None:
        store = self.store()
        if store is None or len(user) > 256 or len(password) > 1024:
            return None
        try:
            if store.check(user, password) and self.group in store.roles(user):
                return user
        except Exception:  # a store that cannot answer (LDAP down) is a failed login
            return None
        return None

    def store(self):
        if self._store is None and self.group:
            import msgspec
            from wasp.config.sections.authentication import BasicAuthentication
            from wasp.worker.auth.providers import store_for
            section = msgspec.convert(self.basic, BasicAuthentication, strict=False)
            self._store = store_for(section)
        return self._store

    # ------------------------------------------------------------------ traces (FREB)
    def traces(self, environ) -> tuple[str, bytes]:
        """GET /api/traces?site=&status=&page=: the trace files, newest first, TRACES_PAGE a
        page; `status` keeps the codes that start with it (`404`, `404.2`, `5`)."""
        query = {k: v[0] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()}
        wanted = query.get("status", "").strip()
        if wanted and not _STATUS_FILTER.fullmatch(wanted):
            raise json_error("400 Bad Request", "status: a code like 404, 404.2 or 5")
        try:
            page = int(query.get("page", "1"))
        except ValueError:
            raise json_error("400 Bad Request", "page must be a number") from None
        if not 1 <= page <= 100000:
            raise json_error("400 Bad Request", "page must be 1 or more")
        # The manager pages and filters (wasp/manager/traces.py): it reads only the heads of
        # the page shown, so the page costs the same with 50 traces or 5000.
        ask = {"page": str(page), "per_page": str(TRACES_PAGE)}
        site = query.get("site", "")
        if site:
            ask["site"] = site
        if wanted:
            ask["status"] = wanted
        status, body = self.admin.call("GET", "/traces?" + urllib.parse.urlencode(ask))
        if status != 200 or not isinstance(body, dict):
            return f"{status} {reason_phrase(status)}", json.dumps(body).encode()
        return "200 OK", json.dumps(body).encode()

    def trace_page(self, environ, method: str, raw: bool):
        """GET /trace?site=ID&name=frNNNNNN.xml: one trace rendered (freb_view.py); /trace/raw: its XML."""
        if method not in ("GET", "HEAD"):
            raise json_error("405 Method Not Allowed", "traces are read with GET")
        query = {k: v[0] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()}
        site, name = query.get("site", ""), query.get("name", "")
        if not re.fullmatch(r"[0-9]{1,10}", site):
            raise json_error("400 Bad Request", "site: the site's id")
        if not re.fullmatch(r"fr[0-9]{6,10}\.xml", name):
            raise json_error("400 Bad Request", "name: a trace file name (frNNNNNN.xml)")
        status, kind, data = self.admin.call_raw(f"/traces/{site}/{name}")
        if status != 200:
            return f"{status} {reason_phrase(status)}", data, "application/json"
        if raw:
            # Sent as a download, never shown inline: the file's own stylesheet PI and any
            # markup a URL smuggled into it stay inert (nosniff, CSP, attachment).
            raise Response("200 OK", data, "application/xml; charset=utf-8",
                           [("Content-Disposition", f'attachment; filename="{name}"')])
        from wasp.management import freb_view
        try:
            trace = freb_view.parse(data)
        except freb_view.BadTrace as exc:
            raise json_error("422 Unprocessable Content", str(exc)) from None
        href = "/trace/raw?" + urllib.parse.urlencode({"site": site, "name": name})
        body = freb_view.page(trace, site, name, href).encode("utf-8")
        return "200 OK", body, "text/html; charset=utf-8"

    # ------------------------------------------------------------------ the API
    def api(self, method: str, rest: str, environ, user: str) -> tuple[str, bytes]:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if method in ("GET", "HEAD"):
            if rest == "forms/pool":
                return "200 OK", json.dumps(forms.pool_form()).encode()
            if _POOL_SETTINGS.fullmatch(rest) or rest == "config/history":
                return self.forward("GET", "/" + _quoted(rest), query, {"diff"})
            if rest not in READS:
                raise json_error("404 Not Found", f"no such resource: /api/{rest}")
            return self.forward("GET", "/" + rest, query, READ_QUERY)
        if method == "POST" and rest == "validate/pool":
            return "200 OK", json.dumps({"problems": forms.check_pool(self.read_json(environ))}).encode()
        if method == "POST" and (rest == "config/changes" or _RESTORE.fullmatch(rest)):
            body = self.read_json(environ) if rest == "config/changes" else {}
            body["user"] = user  # who the change is by is the session's, never the page's say
            return self.forward("POST", "/" + rest, {}, set(), body=body)
        if method == "POST":
            if not any(p.fullmatch(rest) for p in _CHANGES):
                raise json_error("404 Not Found", f"no such action: /api/{rest}")
            # The admin API writes the user to the event log (9075) with the socket's account.
            return self.forward("POST", "/" + _quoted(rest), query, CHANGE_QUERY, body={"user": user})
        raise json_error("405 Method Not Allowed", f"{method} is not allowed here")

    def forward(self, method: str, target: str, query: dict, allowed: set, body=None):
        kept = {k: v[0] for k, v in query.items() if k in allowed}
        if kept:
            target += "?" + urllib.parse.urlencode(kept)
        status, payload = self.admin.call(method, target, body=body)
        return f"{status} {reason_phrase(status)}", json.dumps(payload).encode()


application = ManagementApp(json.loads(os.environ.get(management.ENV) or "{}"))
