"""Python modules through a real server: the documented example (docs/examples/api_key.py)
protecting a static folder and a Flask app alike, modules added per location, managedHandler and
run_all_managed_modules_for_all_requests, a module that raises (500 for that request only), a
module's own section (respond + FINISH), and modules that fail to load (the worker exits with
the load-failure code and the pool's log says why, naming the key and line of a bad value)."""

from __future__ import annotations

import pytest
import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "Mods"

[[sites]]
name = "Mod Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.log.custom_fields]]
log_field_name = "x-modules"
source_name = "WASP_MODULES"
source_type = "server_variable"
[[sites.applications]]
path = "/"
pool = "Mods"
physical_path = "www"
python_path = ["{examples}", "{apps}"]
[sites.applications.modules]
run_all_managed_modules_for_all_requests = true
add = [{ name = "crash", type = "pipe_modules:Crash" },
       { name = "blocker", type = "pipe_modules:Blocker", pre_condition = "managedHandler" },
       { name = "ping", type = "pipe_modules:Ping" }]
[sites.applications.ping]
answer = "pong!"
[[sites.applications]]
path = "/flask"
pool = "Mods"
app = "flask_app:app"
physical_path = "flaskwww"
python_path = ["{apps}", "{examples}"]
[sites.applications.modules]
add = [{ name = "blocker", type = "pipe_modules:Blocker", pre_condition = "managedHandler" }]

[[locations]]
path = "Mod Site/private"
[[locations.modules.add]]
name = "api_key"
type = "api_key:ApiKey"
[locations.api_key]
keys = { bot = "k-123", other = "k-456" }

[[locations]]
path = "Mod Site/gate"
[[locations.modules.add]]
name = "gate"
type = "pipe_modules:AsyncGate"

[[locations]]
path = "Mod Site/flask/pid"
[[locations.modules.add]]
name = "gate"
type = "pipe_modules:AsyncGate"

[[locations]]
path = "Mod Site/wt"
override_mode = "Allow"
[locations.modules]
run_all_managed_modules_for_all_requests = true

[[locations]]
path = "Mod Site/wtbad"
override_mode = "Allow"
[locations.modules]
run_all_managed_modules_for_all_requests = true

[[locations]]
path = "Mod Site/flask/echo"
[[locations.modules.add]]
name = "api_key"
type = "api_key:ApiKey"
[locations.api_key]
header = "Authorization-Key"
keys = { flaskbot = "f-789" }
"""


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def server(wasp_module_server):
    d = wasp_module_server.dir
    write(d / "www/index.html", "home")
    write(d / "www/private/secret.txt", "the secret")
    write(d / "www/gate/page.txt", "behind the gate")
    write(d / "flaskwww/static.txt", "flask static")
    write(d / "www/wt/web.toml", '[[modules.add]]\nname = "wt_ping"\ntype = "pipe_modules:Ping"\n'
                                 '[wt_ping]\nanswer = "web.toml pong"\n')
    write(d / "www/wtbad/web.toml", '[[modules.add]]\nname = "gone"\ntype = "no_such_xyz:Gone"\n')
    write(d / "www/wtbad/x.txt", "x")
    examples = wasp_module_server.repo / "docs" / "examples"
    config = CONFIG.replace("{examples}", str(examples))
    server = wasp_module_server(config)
    server.wait_until = wasp_module_server.wait_until
    return server


def get(server, path: str, **headers) -> requests.Response:
    return requests.get(server.url + path, headers=headers, timeout=30)


@pytest.mark.parametrize("path, header", [("/private/secret.txt", "X-API-Key"),
                                          ("/flask/echo", "Authorization-Key")])
def test_the_api_key_example_protects_static_files_and_a_flask_app_alike(server, path, header):
    key = "k-123" if path.startswith("/private") else "f-789"
    r = get(server, path)
    assert r.status_code == 401, (r.status_code, r.text[:300], server.diagnostics())
    assert get(server, path, **{header: "wrong"}).status_code == 403
    assert get(server, path, **{header: key + "x"}).status_code == 403
    assert get(server, path, **{header: key[:-1]}).status_code == 403
    r = get(server, path, **{header: key})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.text == ("the secret" if path.startswith("/private") else "/flask|/echo|")


@pytest.mark.parametrize("target", [
    "/private/secret.txt", "/PRIVATE/secret.txt", "/Private/Secret.txt", "/private//secret.txt",
    "//private/secret.txt", "/./private/secret.txt", "/x/../private/secret.txt",
    "/%70rivate/secret.txt", "/private%2fsecret.txt", "/private%2Fsecret.txt",
    "/private/./secret.txt", "/private/secret.txt;x=1", "/private;/secret.txt",
    "/%2570rivate/secret.txt", "/private/secret.txt%00", "/private%5csecret.txt",
    "/private/secret.txt.", "/private./secret.txt", "/private/SECRET.TXT",
])
def test_no_path_trick_reaches_the_protected_file_without_the_key(server, target):
    with server.connect() as conn:
        r = conn.request("GET", target)
    assert r.status != 200 or b"the secret" not in r.body, (target, r.status)
    assert r.status in (400, 401, 404), (target, r.status)


def test_the_key_s_name_reaches_the_w3c_log(server):
    assert get(server, "/private/secret.txt", **{"X-API-Key": "k-456"}).status_code == 200
    server.wait_until(lambda: " other " in server.output(), timeout=20)


def test_the_modules_of_a_request_reach_the_w3c_log(server):
    assert get(server, "/private/secret.txt?log", **{"X-API-Key": "k-123"}).status_code == 200
    assert get(server, "/index.html?log").status_code == 200

    def lines():
        return [line for line in server.output().splitlines() if "?log" in line or " log " in line]

    def logged():
        found = {}
        for line in server.output().splitlines():
            for stem in ("/private/secret.txt", "/index.html"):
                if f" {stem} log " in line:
                    found[stem] = line.split()[-1]
        return found if len(found) == 2 else None

    server.wait_until(logged, timeout=20)
    found = logged()
    assert found["/private/secret.txt"].split(",")[-1] == "api_key", found
    assert "crash,blocker,ping" in found["/index.html"] and "api_key" not in found["/index.html"]
    assert "static_file" in found["/index.html"]


@pytest.mark.parametrize("path", ["/", "/index.html", "/flask/", "/flask/static.txt", "/flask/apix"])
def test_the_key_is_asked_only_where_the_module_is_configured(server, path):
    assert get(server, path).status_code in (200, 404), path


def test_managed_handler_modules_run_only_for_the_python_app(server):
    assert get(server, "/flask/", **{"X-Block": "1"}).status_code == 403
    assert get(server, "/flask/static.txt", **{"X-Block": "1"}).text == "flask static"
    assert get(server, "/flask/nothing.txt", **{"X-Block": "1"}).status_code == 403  # to the app
    # run_all_managed_modules_for_all_requests (the root application): static files too
    assert get(server, "/index.html?b", **{"X-Block": "1"}).status_code == 403
    assert get(server, "/index.html?b").text == "home"


@pytest.mark.parametrize("held, release", [("/gate/page.txt", "/gate/x"),       # static file
                                           ("/flask/pid", "/flask/pid")])    # WSGI app
def test_async_phases_are_pending_steps_and_hold_nobody_else(server, held, release):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(get, server, held, **{"X-Hold": "1"})
        # The held request awaits on the worker's loop; the same worker answers this one (its
        # module sees one waiter: the hold arrived first) and that releases the held one.
        def release_it():
            r = get(server, release, **{"X-Release": "1"})
            return r if r.text == "released 1" else None
        r = server.wait_until(release_it, 30, what="the held request to be waiting")
        assert r.status_code == 200
        r = waiting.result(timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.text == "behind the gate" if held.startswith("/gate") else r.text.isdigit()
    # An async step can answer (respond + FINISH) and its exception is a 500 for that request.
    r = get(server, held, **{"X-Async-Answer": "1"})
    assert (r.status_code, r.text) == (200, "answered after an await")
    assert get(server, held, **{"X-Async-Fail": "1"}).status_code == 500
    assert get(server, held).status_code == 200


def test_a_module_that_raises_is_500_for_that_request_only(server):
    pids = {p.pid for p in server.processes("worker")}
    # (a query string keeps the front's response cache out of it)
    r = get(server, "/index.html?crash", **{"X-Crash": "1"})
    assert r.status_code == 500
    assert get(server, "/index.html?crash").text == "home"
    assert {p.pid for p in server.processes("worker")} == pids
    assert "crash on purpose" in server.output()


def test_a_module_reads_its_own_section_and_answers(server):
    r = get(server, "/ping")
    assert (r.status_code, r.text, r.headers["X-Handler"]) == (200, "pong!", "-")
    assert get(server, "/flask/ping").status_code == 404  # not configured there: the app's 404


def test_a_web_toml_adds_a_python_module_where_a_location_unlocks_modules(server):
    r = get(server, "/wt/wt_ping")
    assert (r.status_code, r.text) == (200, "web.toml pong"), (r.status_code, r.text[:500])
    assert get(server, "/wt_ping").status_code == 404       # only below its folder
    r = get(server, "/wtbad/x.txt")
    assert r.status_code == 500 and "HTTP Error 500.19" in r.text, r.text[:300]  # cannot load:
    assert get(server, "/index.html?wtbad").text == "home"   # 500.19 for that folder only
    assert "module 'gone' (type = 'no_such_xyz:Gone') cannot be imported" in server.output()


BROKEN = """
{pool_timing}
[[pools]]
name = "{pool}"

[[sites]]
name = "Broken"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "{pool}"
physical_path = "www"
python_path = ["{apps}"]
modules = [{ name = "ping", type = "{type}" }]
[sites.applications.ping]
{setting}
"""


@pytest.mark.parametrize("pool, type_, setting, expected", [
    ("BadImport", "no_such_package_xyz.mods:Ping", "", [
        "module 'ping' (type = 'no_such_package_xyz.mods:Ping') cannot be imported: "
        "ModuleNotFoundError"]),
    ("NoPhase", "pipe_modules:NoPhase", "", ["defines no phase method"]),
    ("BadValue", "pipe_modules:Ping", 'times = "three"', [
        "wasp.toml:{line}: sites[0].applications[0].ping.times: expected an integer"]),
])
def test_a_module_that_fails_to_load_stops_the_worker_and_the_pool_says_why(
        wasp_server, pool, type_, setting, expected):
    (wasp_server.dir / "www").mkdir()
    text = BROKEN.replace("{pool}", pool).replace("{type}", type_).replace("{setting}", setting)
    server = wasp_server(text)
    seen = []

    def unavailable():
        seen.append(requests.get(server.url + "/", timeout=60).status_code)
        return seen[-1] == 503

    server.wait_until(unavailable, 90, interval=0.2,
                      what=lambda: f"503 from the broken pool (saw {seen})\n{server.diagnostics()}")
    out = server.output()
    line = server.config.read_text().splitlines().index(setting) + 1 if setting else 0
    for text in expected + [f"event 9009 Error: A process serving application pool '{pool}' failed "
                            "to load its application: application 1/: cannot load its modules"]:
        text = text.replace("{line}", str(line))
        assert text in out, f"{text!r} not in\n{server.diagnostics(80)}"
