"""The configuration hierarchy through a real server: server -> site -> application -> location
-> web.toml inheritance seen by default_document and http_errors, web.toml picked up without a
restart, never served (404.8), a bad or locked web.toml giving 500.19 for its folder only (and
refused by `wasp validate`), allow_sub_dir_config / enable_configuration_override, and modules
removed for an application."""

from __future__ import annotations

import pytest
import requests

CONFIG = """
{pool_timing}
[http_errors]
error_mode = "Detailed"
[default_document]
files = ["server.html"]

[[pools]]
name = "Hier"
[[pools]]
name = "NoOverride"
enable_configuration_override = false

[[sites]]
name = "Hier Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[sites.default_document]
files = ["site.html"]
[[sites.applications]]
path = "/"
pool = "Hier"
physical_path = "www"
[[sites.applications]]
path = "/nosub"
pool = "Hier"
physical_path = "www2"
allow_sub_dir_config = false
[[sites.applications]]
path = "/nooverride"
pool = "NoOverride"
physical_path = "www3"
[[sites.applications]]
path = "/bare"
pool = "Hier"
physical_path = "www4"
[sites.applications.modules]
remove = ["static_file", "default_document"]
[sites.applications.http_errors]
error_mode = "Custom"

[[locations]]
path = "Hier Site/loc"
[locations.default_document]
files = ["loc.html"]

[[locations]]
path = "hier site/LOCKED"
override_mode = "Deny"
[locations.default_document]
enabled = true

[[locations]]
path = "Hier Site/private"
[locations.anonymous_authentication]
enabled = false

[[locations]]
path = "Hier Site/unlocked"
override_mode = "Allow"
[locations.access]
ssl_flags = []
"""

PAGES = ["index.html", "server.html", "site.html", "loc.html", "wt.html", "other.html"]


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    for folder in ("www/dir", "www/loc", "www/wt", "www/bad", "www/locked", "www/acc", "www/unlocked",
                   "www/wt/deeper", "www/private", "www/anon"):
        for page in PAGES:
            write(d / folder / page, f"{folder}/{page}")
    write(d / "www/wt/web.toml", '[default_document]\nfiles = ["wt.html"]\n')
    write(d / "www/bad/web.toml", '[default_document]\n\nenabled = "yes"\n')
    write(d / "www/locked/web.toml", '[default_document]\nfiles = ["index.html"]\n')
    write(d / "www/acc/web.toml", '# access is locked by default (IIS: overrideModeDefault Deny)\n'
                                  '[access]\nssl_flags = ["ssl"]\n')
    write(d / "www/unlocked/web.toml", '[access]\nssl_flags = []\n')
    write(d / "www/anon/web.toml", '[anonymous_authentication]\nenabled = false\n')
    write(d / "www2/web.toml", '[default_document]\nfiles = ["root.html"]\n')
    write(d / "www2/root.html", "www2/root.html")
    write(d / "www2/sub/web.toml", '[default_document]\nfiles = ["a.html"]\n')
    write(d / "www2/sub/a.html", "www2/sub/a.html")
    write(d / "www2/sub/index.html", "www2/sub/index.html")
    write(d / "www3/web.toml", "this is not TOML [\n")
    write(d / "www3/index.html", "www3/index.html")
    write(d / "www4/index.html", "www4/index.html")
    server = wasp_module_server(CONFIG)
    server.wait_until, server.run_wasp = wasp_module_server.wait_until, wasp_module_server.run_wasp
    return server


def get(server, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=30)


@pytest.mark.parametrize("path, body", [
    ("/dir/", "www/dir/site.html"),        # the site's file comes before the server's (prepend)
    ("/loc/", "www/loc/loc.html"),         # the location's before the site's
    ("/LOC/", None),                       # (no such folder on a case-sensitive disk: 404)
    ("/wt/", "www/wt/wt.html"),            # the web.toml's before everything in wasp.toml
    ("/wt/deeper/", "www/wt/deeper/wt.html"),  # and below its folder
    ("/unlocked/", "www/unlocked/site.html"),  # access is unlocked there by a location
    ("/nosub/", "www2/root.html"),         # the application root's web.toml is read...
    ("/nosub/sub/", "www2/sub/index.html"),  # ...not a sub-folder's (allow_sub_dir_config)
    ("/nooverride/", "www3/index.html"),   # the pool ignores web.toml: the bad one does no harm
])
def test_the_levels_reach_default_document(server, path, body):
    r = get(server, path)
    if body is None:
        assert r.status_code == 404
    else:
        assert (r.status_code, r.text) == (200, body), (r.status_code, r.text[:500], server.diagnostics())


@pytest.mark.parametrize("path", ["/wt/web.toml", "/wt/WEB.TOML", "/nosub/web.toml", "/wt/web.toml/x"])
def test_web_toml_is_never_served(server, path):
    r = get(server, path)
    assert r.status_code == 404 and "HTTP Error 404.8" in r.text, (r.status_code, r.text[:300])


def test_a_bad_web_toml_is_500_19_for_its_folder_only(server):
    r = get(server, "/bad/index.html")
    assert r.status_code == 500 and "HTTP Error 500.19" in r.text, r.text[:500]
    assert "IIS Web Core" in r.text and "BeginRequest" in r.text
    assert "default_document.enabled: expected a boolean" in r.text
    assert "www/bad/web.toml, line 3" in r.text
    assert get(server, "/dir/index.html").status_code == 200


@pytest.mark.parametrize("path, locked_by", [
    ("/locked/", "locations[1] (override_mode = &quot;Deny&quot;)"),
    ("/acc/", "the section&#x27;s default (override_mode_default = &quot;Deny&quot;)"),
])
def test_a_locked_section_in_web_toml_is_500_19_naming_both_places(server, path, locked_by):
    r = get(server, path)
    assert r.status_code == 500 and "HTTP Error 500.19" in r.text, r.text[:500]
    assert "This configuration section cannot be used at this path." in r.text
    assert "0x80070021" in r.text and locked_by in r.text, r.text
    assert f"www{path}web.toml, line" in r.text


def test_removed_modules_leave_no_handler_and_http_errors_of_the_application(server):
    r = get(server, "/bare/index.html")
    assert r.status_code == 404
    assert "404 - File or directory not found." in r.text and "404.4" not in r.text  # Custom page


def test_web_toml_change_is_picked_up_without_a_restart(server):
    d = server.dir
    pids = {p.pid for p in server.children()}
    assert get(server, "/wt/").text == "www/wt/wt.html"
    write(d / "www/wt/web.toml", '[default_document]\nfiles = { clear = true, add = ["other.html"] }\n')
    server.wait_until(lambda: get(server, "/wt/").text == "www/wt/other.html", timeout=20)
    write(d / "www/dir/web.toml", '[default_document]\nfiles = ["loc.html"]\n')   # a new file
    server.wait_until(lambda: get(server, "/dir/").text == "www/dir/loc.html", timeout=20)
    (d / "www/dir/web.toml").unlink()                                             # and gone again
    server.wait_until(lambda: get(server, "/dir/").text == "www/dir/site.html", timeout=20)
    assert {p.pid for p in server.children()} == pids  # the same worker: no restart


def test_validate_checks_every_web_toml(server):
    result = server.run_wasp("validate", "-c", str(server.config))
    assert result.returncode == 2, result.stdout
    out = result.stdout
    assert "www/bad/web.toml:3: default_document.enabled: expected a boolean" in out, out
    assert "www/locked/web.toml:1: This configuration section cannot be used at this path." in out
    assert "locked by locations[1]" in out and "www/acc/web.toml:2:" in out
    assert "www/anon/web.toml:1:" in out  # authentication sections are locked by default
    assert "the configuration is invalid (4 problems)" in out
    for fine in ("www/wt/web.toml", "www/unlocked/web.toml", "www2/sub/web.toml", "www3/web.toml"):
        assert fine not in out, out


def test_no_user_is_401_2_for_static_files_and_the_log_says_so(server):
    # Anonymous authentication off for a path and no other scheme: no module produces a user.
    r = get(server, "/private/index.html")
    assert r.status_code == 401 and "HTTP Error 401.2" in r.text, (r.status_code, r.text[:300])
    assert "www-authenticate" not in {k.lower() for k in r.headers}  # no scheme to offer
    assert get(server, "/dir/index.html").status_code == 200  # anonymous elsewhere
    # authentication sections are locked (IIS overrideModeDefault="Deny"): not in a web.toml.
    r = get(server, "/anon/index.html")
    assert r.status_code == 500 and "HTTP Error 500.19" in r.text, r.text[:300]

    def logged():
        lines = [line.split(" ") for path in (server.dir / "logs").rglob("u_ex*.log")
                 for line in path.read_text().splitlines() if not line.startswith("#")]
        return [f for f in lines if f[4] == "/private/index.html"]
    server.wait_until(lambda: logged(), what="the 401.2 in the W3C log")
    assert [(f[11], f[12]) for f in logged()][-1] == ("401", "2")
