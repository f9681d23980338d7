"""The management site on https on every address (allowed with TLS only): the login link is
https, the session cookie is `__Host-`, Secure, HttpOnly and SameSite=Strict, and the plain-http
cookie name does not log in."""

from __future__ import annotations

import pytest
import requests

from tls_support import CA

CONFIG = """
{pool_timing}
[management]
enabled = true
bindings = [{ binding = "https/*:MGMT_PORT:", certificate = "CERT", key = "KEY" }]

[[pools]]
name = "Static"
[[sites]]
name = "Files"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Static"
physical_path = "www"
"""


@pytest.fixture(scope="module")
def server(wasp_module_server):
    ca = CA(wasp_module_server.dir / "pki")
    cert, key = ca.issue("mgmt.example.test", ip="127.0.0.1")
    (wasp_module_server.dir / "www").mkdir()
    port = wasp_module_server.free_port()
    srv = wasp_module_server(CONFIG.replace("MGMT_PORT", str(port)).replace("CERT", str(cert))
                             .replace("KEY", str(key)))
    srv.mgmt = f"https://127.0.0.1:{port}"
    srv.ca = str(ca.path)

    def up() -> bool:
        try:
            return requests.get(srv.mgmt + "/login", verify=srv.ca, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    srv.wait_until(up, 30, what="the management site on https")
    return srv


def test_https_login_sets_a_host_prefixed_secure_cookie(server):
    link = server.cli("management", "token").stdout.split()[0]
    assert link.startswith("https://")
    link = link.replace(link.split("/")[2], server.mgmt.split("/")[2])  # "*" is printed as 127.0.0.1
    r = requests.get(link, verify=server.ca, allow_redirects=False, timeout=20)
    assert r.status_code == 303, r.text
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-wasp_mgmt=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    ok = requests.get(server.mgmt + "/api/session", cookies={"__Host-wasp_mgmt": value},
                      verify=server.ca, timeout=20)
    assert ok.status_code == 200 and ok.json()["user"] == "token"
    plain = requests.get(server.mgmt + "/api/session", cookies={"wasp_mgmt": value},
                         verify=server.ca, timeout=20)
    assert plain.status_code == 401
    csrf = ok.json()["csrf"]
    wrong_origin = requests.post(server.mgmt + "/api/reload", cookies={"__Host-wasp_mgmt": value},
                                 headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1"},
                                 verify=server.ca, timeout=20)
    assert wrong_origin.status_code == 403  # http:// is another origin than https://
