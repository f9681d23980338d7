"""The manager's life: graceful SIGTERM, strict config errors, SIGHUP reloads, an app that cannot
be imported, and the embedded default site."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading

import psutil
import pytest
import requests

MAIN = """
{pool_timing}
[[pools]]
name = "Main"

[[sites]]
name = "Main Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Main"
app = "{root_app}"
python_path = ["{apps}"]
"""

NEW_APP = """
[[pools]]
name = "NewPool"

[[sites.applications]]
path = "/new"
pool = "NewPool"
app = "flask_app:app"
python_path = ["{apps}"]
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_finishes_in_flight_request_and_exits_0(wasp_server, tmp_path):
    server = wasp_server(MAIN.replace("{root_app}", "flask_app:app"))
    assert requests.get(server.url + "/", timeout=30).status_code == 200, server.diagnostics()
    mark = tmp_path / "slow-started"
    outcome: dict[str, object] = {}

    def slow():
        try:
            r = requests.get(server.url + f"/slow?s=3&mark={mark}", timeout=60)
            outcome["status"], outcome["text"] = r.status_code, r.text
        except requests.RequestException as exc:
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    server.wait_until(mark.exists, 30, what="the slow request to reach the app")
    children = [p.pid for p in server.children()]
    assert children, "no children before SIGTERM"
    server.signal(signal.SIGTERM)
    thread.join(60)
    assert outcome.get("status") == 200, f"in-flight request: {outcome}\n{server.diagnostics()}"
    assert str(outcome["text"]).startswith("slept 3")
    try:
        code = server.proc.wait(45)
    except subprocess.TimeoutExpired:
        pytest.fail(f"manager still running 45s after SIGTERM\n{server.diagnostics()}")
    assert code == 0, f"manager exit code {code}\n{server.diagnostics()}"
    server.wait_until(lambda: not any(alive(pid) for pid in children), 15,
                      what=lambda: f"children {children} to exit; alive: {[p for p in children if alive(p)]}")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


BAD = """\
[server]
log_dirr = "logs"

[[pools]]
name = "P"
max_processes = "two"

[[sites]]
name = "S"
id = 1
bindings = ["http/127.0.0.1:notaport:"]
[[sites.applications]]
path = "/"
pool = "Nope"
"""
# (dotted path pattern, line) of every problem in BAD; "[0]" may also be written ".0".
BAD_PROBLEMS = [
    (r"server\.log_dirr", 2),
    (r"pools(\[0\]|\.0)\.max_processes", 6),
    (r"sites(\[0\]|\.0)\.bindings", 11),
    (r"sites(\[0\]|\.0)\.applications(\[0\]|\.0)\.pool", 14),
]


def test_validate_reports_every_problem_with_path_and_line(wasp_server, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    result = wasp_server.run_wasp("validate", "-c", str(bad), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\n{output}"
    missing = []
    for pattern, line in BAD_PROBLEMS:
        where = re.compile(rf"(:{line}:|line {line}\b)")
        if not any(re.search(pattern, out) and where.search(out) for out in output.splitlines()):
            missing.append(f"{pattern} at line {line}")
    assert not missing, f"not reported: {missing}\n--- output ---\n{output}"


def test_validate_accepts_a_good_file(wasp_server, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(wasp_server.expand(MAIN.replace("{root_app}", "crashy:app"), 8080))
    result = wasp_server.run_wasp("validate", "-c", str(good), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_serve_with_a_bad_config_exits_2(wasp_server, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    result = wasp_server.run_wasp("serve", "-c", str(bad), cwd=tmp_path, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\n{output}"
    assert re.search(BAD_PROBLEMS[0][0], output), output


def test_sighup_rejects_a_broken_config_and_applies_a_good_one(wasp_server):
    text = MAIN.replace("{root_app}", "crashy:app")
    server = wasp_server(text)

    def get(path):
        return requests.get(server.url + path, timeout=30)

    assert get("/").text == "crashy", server.diagnostics()
    assert get("/new/").status_code == 404  # crashy's own 404: "/new" is not an application yet
    main_pid = int(get("/pid").text)

    server.config.write_text(server.config.read_text() + "\n[[pools]]\nname = 3\nbogus = true\n")
    server.signal(signal.SIGHUP)
    server.wait_until(lambda: re.search("rejected", server.output(), re.I), 20,
                      what=lambda: f"'rejected' in the server's output or logs\n{server.diagnostics()}")
    assert server.proc.poll() is None, "a broken config on SIGHUP stopped the server"
    r = get("/")
    assert (r.status_code, r.text) == (200, "crashy")

    server.config.write_text(wasp_server.expand(text + NEW_APP, server.port))
    server.signal(signal.SIGHUP)

    seen = []

    def new_app_served():
        r = get("/new/")
        seen.append(r.status_code)
        return r.status_code == 200 and r.text == "Hello from Flask"

    server.wait_until(new_app_served, 30, interval=0.2,
                      what=lambda: f"/new/ served by Flask after SIGHUP (saw {seen[-5:]})\n{server.diagnostics()}")
    assert get("/new/echo?a=1").text == "/new|/echo|a=1"
    assert get("/").text == "crashy"
    assert int(get("/pid").text) == main_pid, "adding a pool and an app recycled the untouched pool Main"


def test_app_that_fails_to_import_gets_503_and_others_keep_serving(wasp_server):
    server = wasp_server("""
    {pool_timing}
    [[pools]]
    name = "Broken"
    [pools.failure]
    rapid_fail_protection_max_crashes = 2

    [[pools]]
    name = "Good"

    [[sites]]
    name = "Broken Site"
    id = 1
    bindings = ["http/127.0.0.1:{port}:broken.test"]
    [[sites.applications]]
    path = "/"
    pool = "Broken"
    app = "broken_import:app"
    python_path = ["{apps}"]

    [[sites]]
    name = "Good Site"
    id = 2
    bindings = ["http/127.0.0.1:{port}:good.test"]
    [[sites.applications]]
    path = "/"
    pool = "Good"
    app = "crashy:app"
    python_path = ["{apps}"]
    """)

    def get(host):
        return requests.get(server.url + "/", headers={"Host": host}, timeout=60)

    assert get("good.test").text == "crashy", server.diagnostics()
    seen = []

    def unavailable():
        seen.append(get("broken.test").status_code)
        return seen[-1] == 503

    server.wait_until(unavailable, 90, interval=0.2,
                      what=lambda: f"503 from the broken pool (saw {seen})\n{server.diagnostics()}")
    assert set(seen) <= {500, 502, 503}, seen
    assert "broken_import: this module fails on purpose" in server.output(), \
        f"the worker's load_failed reason is not logged\n{server.diagnostics()}"
    assert get("good.test").text == "crashy"
    assert server.proc.poll() is None


def test_embedded_default_site(wasp_server, tmp_path):
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", 8080))
    except OSError:
        pytest.skip("port 8080 is busy on this machine; the embedded default site binds it")
    home = tmp_path / "empty"
    home.mkdir()
    server = wasp_server(None, port=8080, args=["serve"], env={"XDG_RUNTIME_DIR": str(tmp_path)},
                         admin_sock=None, cwd=home)
    r = requests.get("http://127.0.0.1:8080/", timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300], server.diagnostics())
    assert r.headers["Content-Type"].startswith("text/html")
    assert "wasp" in r.text.lower()
    r = requests.get("http://127.0.0.1:8080/demo/", timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300], server.diagnostics())
    assert server.wait_until(lambda: list(tmp_path.rglob("admin.sock")), 10,
                             what=lambda: f"an admin socket under XDG_RUNTIME_DIR={tmp_path}")
    assert server.stop() == 0


def test_second_server_on_the_same_run_dir_exits_1(wasp_server):
    first = wasp_server(MAIN.replace("{root_app}", "crashy:app"))
    second = wasp_server.run_wasp("serve", "-c", str(first.config), cwd=first.dir, timeout=60)
    assert second.returncode == 1, (second.returncode, second.stdout[-2000:], second.stderr[-2000:])
    assert requests.get(first.url + "/", timeout=30).text == "crashy", "the second server disturbed the first"
    assert (first.dir / "run" / "admin.sock").exists()


def test_port_in_use_exits_1_with_the_reason(wasp_server, tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        config = tmp_path / "busy.toml"
        config.write_text(wasp_server.expand(MAIN.replace("{root_app}", "crashy:app"), port))
        result = wasp_server.run_wasp("serve", "-c", str(config), cwd=tmp_path, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, (result.returncode, output[-2000:])
    assert str(port) in output, output[-2000:]


def test_serve_module_app_with_bind(wasp_server, tmp_path):
    port = wasp_server.free_port()
    # Its run dir is derived from the project, app and binding: given here so the test knows it.
    run_dir = tmp_path / "run-flask"
    server = wasp_server(None, port=port, args=["serve", "flask_app:app", "--bind", f"127.0.0.1:{port}",
                                                "--run-dir", str(run_dir)],
                         env={"XDG_RUNTIME_DIR": str(tmp_path)}, admin_sock=run_dir / "admin.sock",
                         cwd=wasp_server.apps)
    r = requests.get(server.url + "/", timeout=30)
    assert (r.status_code, r.text) == (200, "Hello from Flask"), server.diagnostics()
    assert [row["pool"] for row in server.list_json("wp")] == ["DefaultAppPool"]
    assert server.stop() == 0
