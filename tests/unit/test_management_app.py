"""The management site as config ([management] -> the WMSvc pool and site), its WSGI app with an
in-memory admin API, and the admin API pieces it needs (routes, log tails, who did it)."""

from __future__ import annotations

import io
import json
import os
import urllib.parse

import pytest

from wasp.config import management
from wasp.config.load import load_text
from wasp.errors import ConfigError
from wasp.management import app as mgmt_app
from wasp.management import sessions
from wasp.manager import admin, mgmtops

BASE = """
[[pools]]
name = "P"
[[sites]]
name = "S"
id = 1
bindings = ["http/127.0.0.1:8080:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "m:app"
"""


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(text)
    return [(p.path, p.message) for p in info.value.problems]


def test_off_by_default_and_then_nothing_is_added():
    config = load_text(BASE)
    assert not config.management.enabled
    assert [p.name for p in config.pools] == ["P"] and [s.id for s in config.sites] == [1]


def test_enabled_adds_its_own_pool_and_site_on_8172(tmp_path):
    config = load_text("[management]\nenabled = true\n" + BASE)
    pool = config.pools[-1]
    site = config.sites[-1]
    assert pool.name == management.POOL_NAME and site.name == management.SITE_NAME
    assert site.id == 8172 and site.bindings == ["http/127.0.0.1:8172:"]
    assert site.applications[0].pool == pool.name and site.applications[0].app == management.APP_SPEC
    settings = json.loads(pool.environment_variables[management.ENV])
    assert settings["run_dir"] == config.server.run_dir and os.path.isabs(settings["run_dir"])
    assert settings["session_timeout"] == 1200 and settings["group"] == ""
    assert "UriQuery" not in site.log.log_ext_file_flags  # the login link's token stays out of the log


@pytest.mark.parametrize("binding", ["http/*:8172:", "http/0.0.0.0:8172:", "http/10.1.2.3:8172:",
                                     "http/[::]:8172:"])
def test_a_non_loopback_binding_without_tls_is_refused_with_its_path(binding):
    found = problems(f'[management]\nenabled = true\nbindings = ["{binding}"]\n' + BASE)
    assert found and found[0][0] == "management.bindings[0]"
    assert "not a loopback address" in found[0][1]


@pytest.mark.parametrize("binding", ["http/127.0.0.1:8172:", "http/127.5.0.1:9000:", "http/[::1]:8172:",
                                     "http/unix:/run/wasp-mgmt.sock:"])
def test_loopback_bindings_need_no_tls(binding):
    config = load_text(f'[management]\nenabled = true\nbindings = ["{binding}"]\n' + BASE)
    assert config.sites[-1].name == management.SITE_NAME


def test_an_https_binding_needs_a_certificate():
    found = problems('[management]\nenabled = true\nbindings = ["https/*:8172:"]\n' + BASE)
    assert found[0][0] == "management.bindings[0]" and "certificate" in found[0][1]


def test_site_id_pool_name_and_binding_clashes_are_named():
    found = problems("[management]\nenabled = true\nsite_id = 1\n" + BASE)
    assert ("management.site_id" in [p for p, _ in found])
    found = problems("[management]\nenabled = true\n" + BASE.replace('"P"', '"WMSvc"'))
    assert any(p == "management" and "WMSvc" in m for p, m in found)
    found = problems('[management]\nenabled = true\n' + BASE.replace("8080", "8172"))
    assert any("already used" in m for _, m in found)


def test_unknown_management_keys_are_errors():
    found = problems("[management]\nenabled = true\nport = 1\n" + BASE)
    assert found[0][0] == "management.port"


# ---------------------------------------------------------------- the app, with a fake admin API

class FakeAdmin:
    def __init__(self):
        self.calls = []

    def call(self, method, target, body=None):
        self.calls.append((method, target, (body or {}).get("user", ""), body))
        if target.startswith("/pools"):
            return 200, [{"name": "P", "state": "Started"}] if method == "GET" else {"ok": True, "message": "done"}
        return 200, {"ok": True}


@pytest.fixture
def site(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / management.KEY_FILE).write_bytes(os.urandom(32))
    (run / management.TOKEN_FILE).write_text("the-token")
    application = mgmt_app.ManagementApp({"run_dir": str(run), "hosts": [], "group": "",
                                          "session_timeout": 600})
    application.admin = FakeAdmin()
    return application


def call(application, method, path, headers=None, body=b"", host="127.0.0.1:8172"):
    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "HTTP_HOST": host, "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE",) else "HTTP_" + key] = value
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, headers

    out = b"".join(application(environ, start_response))
    return int(seen["status"].split()[0]), dict((k.lower(), v) for k, v in seen["headers"]), out


def login(application):
    status, headers, _ = call(application, "GET", "/login?token=the-token")
    assert status == 303, headers
    cookie = headers["set-cookie"].split(";")[0]
    status, _, body = call(application, "GET", "/api/session", {"Cookie": cookie})
    assert status == 200
    return cookie, json.loads(body)["csrf"]


def test_pages_and_api_need_a_login(site):
    assert call(site, "GET", "/")[0] == 303
    assert call(site, "GET", "/api/pools")[0] == 401
    assert call(site, "POST", "/api/pools/P/recycle")[0] == 401
    assert site.admin.calls == []
    assert call(site, "GET", "/static/app.js")[0] == 200  # the code is public, the data is not


def test_the_token_logs_in_once(site, tmp_path):
    cookie, csrf = login(site)
    assert call(site, "GET", "/login?token=the-token")[0] == 401  # spent
    assert (tmp_path / "run" / management.TOKEN_FILE).read_text() != "the-token"
    status, _, body = call(site, "GET", "/api/pools", {"Cookie": cookie})
    assert status == 200 and json.loads(body)[0]["name"] == "P"


def test_the_login_form_takes_the_token(site):
    form = urllib.parse.urlencode({"token": "the-token"}).encode()
    status, headers, _ = call(site, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded",
                                                       "Origin": "http://127.0.0.1:8172"}, form)
    assert status == 303 and "SameSite=Strict" in headers["set-cookie"]
    status, _, _ = call(site, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded",
                                                 "Origin": "http://evil.example"}, form)
    assert status == 403


def test_a_change_needs_the_csrf_token_and_names_the_user(site):
    cookie, csrf = login(site)
    assert call(site, "POST", "/api/pools/P/recycle", {"Cookie": cookie})[0] == 403
    assert call(site, "POST", "/api/pools/P/recycle", {"Cookie": cookie, "X-CSRF-Token": "nope"})[0] == 403
    assert call(site, "POST", "/api/pools/P/recycle", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                       "Origin": "http://evil.example"})[0] == 403
    assert site.admin.calls == []
    status, _, body = call(site, "POST", "/api/pools/P/recycle", {"Cookie": cookie, "X-CSRF-Token": csrf})
    assert status == 200
    assert site.admin.calls == [("POST", "/pools/P/recycle", "token", {"user": "token"})]


def test_only_known_admin_operations_are_forwarded(site):
    cookie, csrf = login(site)
    auth = {"Cookie": cookie, "X-CSRF-Token": csrf}
    for path in ("/api/pools/P/delete", "/api/pools/../reload/x", "/api/wp/abc/stacks", "/api/shutdown"):
        assert call(site, "POST", path, auth)[0] == 404, path
    assert call(site, "GET", "/api/management/token", auth)[0] == 404
    assert call(site, "POST", "/api/management/token", auth)[0] == 404
    assert site.admin.calls == []
    call(site, "GET", "/api/events?since=5&evil=1", auth)
    assert site.admin.calls[-1][1] == "/events?since=5"
    call(site, "POST", "/api/pools/a%20b/stop".replace("%20", " "), auth)
    assert site.admin.calls[-1][1] == "/pools/a%20b/stop"


def test_a_foreign_host_is_refused_dns_rebinding(site):
    assert call(site, "GET", "/login", host="evil.example:8172")[0] == 421
    assert call(site, "GET", "/login?token=the-token", host="evil.example")[0] == 421


def test_logout_revokes_the_session(site):
    cookie, csrf = login(site)
    assert call(site, "POST", "/logout", {"Cookie": cookie})[0] == 403  # CSRF on logout too
    status, headers, _ = call(site, "POST", "/logout", {"Cookie": cookie, "X-CSRF-Token": csrf})
    assert status == 303 and "Max-Age=0" in headers["set-cookie"]
    assert call(site, "GET", "/api/pools", {"Cookie": cookie})[0] == 401


def test_failed_logins_are_limited_per_client(site):
    for _ in range(10):
        assert call(site, "GET", "/login?token=wrong")[0] == 401
    assert call(site, "GET", "/login?token=the-token")[0] == 429


def test_password_logins_are_off_without_a_group(site):
    form = urllib.parse.urlencode({"user": "root", "password": "x"}).encode()
    status, _, body = call(site, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"}, form)
    assert status == 401 and b'id="password-login" hidden' in body


def test_password_login_of_a_group_member(tmp_path):
    bcrypt = pytest.importorskip("bcrypt")
    users = tmp_path / "users"
    users.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n"
                     + "bob:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    groups = tmp_path / "groups"
    groups.write_text("admins: alice\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / management.KEY_FILE).write_bytes(os.urandom(32))
    application = mgmt_app.ManagementApp({"run_dir": str(run), "group": "admins", "session_timeout": 60,
                                          "basic_authentication": {"user_file": str(users),
                                                                   "group_file": str(groups)}})
    head = {"Content-Type": "application/x-www-form-urlencoded"}
    ok = urllib.parse.urlencode({"user": "alice", "password": "secret"}).encode()
    status, headers, _ = call(application, "POST", "/login", head, ok)
    assert status == 303
    cookie = headers["set-cookie"].split(";")[0]
    assert json.loads(call(application, "GET", "/api/session", {"Cookie": cookie})[2])["user"] == "alice"
    for user, password in (("alice", "wrong"), ("bob", "secret"), ("carol", "secret")):
        form = urllib.parse.urlencode({"user": user, "password": password}).encode()
        assert call(application, "POST", "/login", head, form)[0] == 401, user


def test_security_headers_on_every_answer(site):
    _, headers, _ = call(site, "GET", "/login")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"


# ---------------------------------------------------------------- the admin API's side

def test_routes_of_the_new_admin_operations():
    assert admin.route("GET", "/logs") == ("logs", {})
    assert admin.route("POST", "/wp/123/stacks") == ("stacks", {"pid": 123})
    assert admin.route("POST", "/management/token") == ("management_token", {})
    for method, path, status in (("GET", "/wp/123/stacks", 405), ("POST", "/wp/x/stacks", 404),
                                 ("GET", "/management/token", 405), ("POST", "/logs", 405)):
        with pytest.raises(admin.RouteError) as info:
            admin.route(method, path)
        assert info.value.status == status


def test_log_tail_reads_the_newest_file_and_checks_its_arguments(tmp_path):
    site = tmp_path / "W3SVC3"
    site.mkdir()
    (site / "u_ex261201.log").write_text("old\n")
    (site / "u_ex261202.log").write_text("#Fields: date\n" + "".join(f"line {i}\n" for i in range(50)))
    answer = mgmtops.logs_query(str(tmp_path), {"kind": "access", "site": "3", "lines": "5"}, {3})
    assert answer["file"].endswith("u_ex261202.log") and answer["lines"] == [f"line {i}" for i in range(45, 50)]
    err = tmp_path / "httperr"
    err.mkdir()
    (err / "httperr2.log").write_text("two\n")
    (err / "httperr10.log").write_text("ten\n")
    assert mgmtops.logs_query(str(tmp_path), {"kind": "httperr"}, set())["lines"] == ["ten"]
    for query in ({"kind": "access", "site": "4"}, {"kind": "access", "site": "../x"}, {"kind": "x"},
                  {"kind": "httperr", "lines": "0"}, {"kind": "httperr", "lines": "100000"},
                  {"kind": "httperr", "lines": "x"}):
        with pytest.raises(mgmtops.LogQueryError):
            mgmtops.logs_query(str(tmp_path), query, {3})


def test_a_long_log_is_read_from_its_end_only(tmp_path, monkeypatch):
    monkeypatch.setattr(mgmtops, "MAX_TAIL_BYTES", 100)
    path = tmp_path / "f.log"
    path.write_text("".join(f"line {i:04d}\n" for i in range(1000)))
    lines = mgmtops.tail(str(path), 1000)
    assert lines[-1] == "line 0999" and len(lines) < 12 and all(l.startswith("line ") for l in lines)


def test_the_management_sites_actions_are_audited():
    from wasp.manager.api import AUDITED
    assert {"stacks", "management_token", "recycle_pool", "stop_pool", "start_site"} <= AUDITED


def test_prepare_secrets_writes_private_files(tmp_path):
    token, key = mgmtops.prepare_secrets(str(tmp_path))
    assert (tmp_path / management.TOKEN_FILE).read_text() == token and len(key) == 32
    for name in (management.TOKEN_FILE, management.KEY_FILE):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600
    assert mgmtops.new_token(str(tmp_path)) != token


# ---------------------------------------------------------------- the editor's form and checks

from wasp.management import forms  # noqa: E402


def test_the_pool_form_lists_the_models_settings():
    form = {f["path"]: f for f in forms.pool_form()}
    assert "name" not in form
    assert form["queue_length"]["kind"] == "int" and (form["queue_length"]["min"], form["queue_length"]["max"]) == (10, 65535)
    assert form["recycling.time"]["kind"] == "duration" and form["recycling.time"]["default"] == 29 * 3600
    assert form["memory_limit"]["kind"] == "size"
    assert form["start_mode"]["choices"] == ["always_running", "on_demand"]
    assert form["process_model.idle_timeout"]["doc"]
    json.dumps(forms.pool_form())  # what /api/forms/pool sends


def test_check_pool_says_what_the_loader_says_with_paths_inside_the_pool():
    found = {p["path"]: p["message"] for p in forms.check_pool(
        {"queue_length": 5, "recycling": {"time": "soon"}, "bogus": 1})}
    assert found["queue_length"] == "5 is out of range; allowed: 10 to 65535"
    assert "not a duration" in found["recycling.time"] and found["bogus"] == "unknown key"
    assert forms.check_pool({"queue_length": 2000, "recycling": {"time": "12h"}}) == []
    assert forms.check_pool([]) and forms.check_pool({"python": "x", "virtualenv": "y"})


def test_config_changes_carry_the_sessions_user_not_the_pages(site):
    cookie, csrf = login(site)
    body = json.dumps({"target": {"pool": "P"}, "edits": [], "user": "someone-else"}).encode()
    status, _, _ = call(site, "POST", "/api/config/changes", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                             "Content-Type": "application/json"}, body)
    assert status == 200
    method, target, user, sent = site.admin.calls[-1]
    assert (method, target, user) == ("POST", "/config/changes", "token") and sent["user"] == "token"
    assert call(site, "POST", "/api/config/changes", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                      "Content-Type": "text/plain"}, body)[0] == 415
    assert call(site, "POST", "/api/config/changes", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                      "Content-Type": "application/json"}, b"[1]")[0] == 400
    assert call(site, "POST", "/api/config/history/3/restore", {"Cookie": cookie, "X-CSRF-Token": csrf})[0] == 200
    assert site.admin.calls[-1][:2] == ("POST", "/config/history/3/restore")
    assert call(site, "POST", "/api/config/history/x/restore", {"Cookie": cookie, "X-CSRF-Token": csrf})[0] == 404
    status, _, out = call(site, "POST", "/api/validate/pool", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                               "Content-Type": "application/json"},
                          json.dumps({"threads": 0}).encode())
    assert status == 200 and json.loads(out)["problems"][0]["path"] == "threads"


def test_pool_settings_route():
    assert admin.route("GET", "/pools/Apps") == ("pool_settings", {"name": "Apps"})
    with pytest.raises(admin.RouteError):
        admin.route("POST", "/pools/Apps")
