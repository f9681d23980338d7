"""Deploys without downtime, including bad ones (docs/deploys.md): `wasp deploy pool`, an
initialization page that fails, app_offline.htm and recycling.monitor_changes_to, on real
processes under a bounded load loop that must see nothing but 200s (or the 503s app_offline.htm
asks for)."""

from __future__ import annotations

from process_support import Load, events, get, gone, pid_of, process_config, wait_event

APP = '''import os


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/warm" and os.path.exists(os.path.join(os.path.dirname(__file__), "warm-fails")):
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"not warm"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''
BROKEN = "import os\nraise ZeroDivisionError('the deploy is broken')\n"


def deploy_config(appdir, pool_extra: str = "", app_extra: str = "") -> str:
    return process_config(f"""
[[pools]]
name = "P"
start_mode = "always_running"
{pool_extra}

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{{port}}:"]
[[sites.applications]]
path = "/"
pool = "P"
app = "deployed:app"
python_path = ["{appdir}"]
{app_extra}
""")


def write_app(appdir, text: str, tag: str = "") -> None:
    # A different size each time, so a stale .pyc is never used.
    (appdir / "deployed.py").write_text(text + f"# {tag}\n")


def test_deploy_reports_a_broken_import_with_its_traceback_and_loses_nothing(wasp_server, tmp_path):
    appdir = tmp_path / "site"
    appdir.mkdir()
    write_app(appdir, APP, "v1")
    server = wasp_server(deploy_config(appdir))
    first = pid_of(server, "/")
    with Load(server, "/", threads=3) as load:
        load.wait_for(50)
        write_app(appdir, BROKEN, "v2")
        result = server.cli("deploy", "pool", "P", check=False, timeout=120)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "ZeroDivisionError: the deploy is broken" in result.stderr
        assert "Traceback" in result.stderr and f"({first}) keeps serving" in result.stderr
        load.wait_for(50)
        write_app(appdir, APP, "v3")
        result = server.cli("deploy", "pool", "P", check=False, timeout=120)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert 'APPPOOL object "P" deployed' in result.stdout
        load.wait_for(50)
    assert set(load.outcomes) == {200}, (load.outcomes, load.errors[:3])
    # The failed replacement is retried in the background too: once the code is fixed a retry
    # may win before the second deploy, which then recycles once more (2 or 3 PIDs).
    assert first in load.pids and len(load.pids) >= 2, load.pids
    assert pid_of(server, "/") != first


def test_a_failing_initialization_page_fails_the_deploy_and_the_old_worker_serves(wasp_server, tmp_path):
    appdir = tmp_path / "site"
    appdir.mkdir()
    write_app(appdir, APP, "v1")
    server = wasp_server(deploy_config(appdir, app_extra='initialization_pages = ["/warm"]'))
    first = pid_of(server, "/")
    (appdir / "warm-fails").write_text("")
    with Load(server, "/", threads=3) as load:
        load.wait_for(30)
        result = server.cli("deploy", "pool", "P", check=False, timeout=120)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "initialization page /warm" in result.stderr and "answered 500" in result.stderr
        load.wait_for(30)
    assert set(load.outcomes) == {200} and set(load.pids) == {first}, (load.outcomes, load.pids)
    (appdir / "warm-fails").unlink()
    # The failed replacement is retried; once the page answers 200 the new worker takes over.
    server.wait_until(lambda: get(server, "/").text != str(first), 90,
                      what=lambda: f"a new worker once /warm answers 200\n{server.diagnostics()}")
    server.wait_until(lambda: gone(first), 30, what=f"the old worker {first} to exit")


def test_app_offline_htm_answers_503_with_its_page_while_it_exists(wasp_server, tmp_path):
    appdir = tmp_path / "site"
    appdir.mkdir()
    write_app(appdir, APP, "v1")
    server = wasp_server(deploy_config(appdir))
    pid = pid_of(server, "/")
    page = "<html><body>Back in five minutes</body></html>"
    (appdir / "app_offline.htm").write_text(page)
    server.wait_until(lambda: get(server, "/").status_code == 503, 30, what="app_offline.htm to apply")
    r = get(server, "/anything?x=1")
    assert r.status_code == 503 and r.text == page and r.headers["Content-Type"] == "text/html"
    (appdir / "app_offline.htm").unlink()
    server.wait_until(lambda: get(server, "/").status_code == 200, 30, what="app_offline.htm to go")
    assert pid_of(server, "/") == pid  # the same worker: app_offline.htm recycles nothing


def test_monitor_changes_to_recycles_the_pool_when_the_file_changes(wasp_server, tmp_path):
    appdir = tmp_path / "site"
    appdir.mkdir()
    write_app(appdir, APP, "v1")
    stamp = tmp_path / "deployed.stamp"
    stamp.write_text("1")
    server = wasp_server(deploy_config(appdir, f"""
[pools.recycling]
monitor_changes_to = ["{stamp}"]
"""))
    first = pid_of(server, "/")
    with Load(server, "/", threads=2) as load:
        load.wait_for(20)
        stamp.write_text("two")
        [recycled] = wait_event(server, 9023, pool="P", timeout=30)
        assert recycled["reason"] == "monitor_changes_to" and str(stamp) in recycled["files"]
        server.wait_until(lambda: gone(first), 60, what=f"the old worker {first} to exit")
        load.wait_for(20)
    assert set(load.outcomes) == {200}, (load.outcomes, load.errors[:3])
    assert pid_of(server, "/") != first
    assert len(events(server, 9023, pool="P")) == 1
