"""The `wasp` admin commands against a running server (appcmd's list/recycle/stop/start), and a
web garden."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import re
import threading

import pytest
import requests

CONFIG = """
{pool_timing}
[[pools]]
name = "PoolA"

[[pools]]
name = "PoolB"

[[sites]]
name = "Site A"
id = 1
bindings = ["http/127.0.0.1:{port}:a.test"]
[[sites.applications]]
path = "/"
pool = "PoolA"
app = "crashy:app"
python_path = ["{apps}"]

[[sites]]
name = "Site B"
id = 2
bindings = ["http/127.0.0.1:{port}:b.test"]
[[sites.applications]]
path = "/"
pool = "PoolB"
app = "crashy:app"
python_path = ["{apps}"]
[[sites.applications]]
path = "/flask"
pool = "PoolB"
app = "flask_app:app"
python_path = ["{apps}"]
"""


def get(server, host: str, path: str = "/pid", timeout: float = 30) -> requests.Response:
    return requests.get(server.url + path, headers={"Host": host}, timeout=timeout)


@pytest.fixture
def server(wasp_server):
    server = wasp_server(CONFIG)
    for host in ("a.test", "b.test"):
        r = get(server, host)
        assert r.status_code == 200, (host, r.status_code, r.text[:300], server.diagnostics())
    return server


def lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def test_list_text_forms(server):
    port = server.port
    sites = lines(server.cli("list", "sites"))
    assert f'SITE "Site A" (id:1,bindings:http/127.0.0.1:{port}:a.test,state:Started)' in sites, sites
    assert f'SITE "Site B" (id:2,bindings:http/127.0.0.1:{port}:b.test,state:Started)' in sites, sites
    apps = lines(server.cli("list", "apps"))
    for expected in ('APP "Site A/" (applicationPool:PoolA)', 'APP "Site B/" (applicationPool:PoolB)',
                     'APP "Site B/flask" (applicationPool:PoolB)'):
        assert expected in apps, apps
    pools = lines(server.cli("list", "pools"))
    for name in ("PoolA", "PoolB"):
        assert any(re.fullmatch(rf'APPPOOL "{name}" \(.*state:Started\)', line) for line in pools), pools
    pid_a = int(get(server, "a.test").text)
    pid_b = int(get(server, "b.test").text)
    wps = lines(server.cli("list", "wp"))
    assert f'WP "{pid_a}" (applicationPool:PoolA)' in wps, wps
    assert f'WP "{pid_b}" (applicationPool:PoolB)' in wps, wps
    assert len(wps) == 2, wps


def test_status_is_one_screen_of_the_whole_server(server):
    pid_a = int(get(server, "a.test").text)
    for _ in range(3):
        get(server, "b.test")
    text = server.cli("status").stdout
    first = text.splitlines()[0]
    assert re.match(r"\u25cf wasp \S+ - started since \d+[smhd]", first), text
    assert f"config: {server.config}" in text, text
    assert "fronts: 1/1 answering" in text, text
    assert "Site A (id 1) Started: " in text and "Site B (id 2) Started: " in text, text
    assert re.search(r"PoolA Started: 1/1 workers, queue 0, in flight 0, served \d+", text), text
    pool_a = text[text.index("PoolA Started"):text.index("PoolB Started")]
    assert f"pid {pid_a} Ready, up " in pool_a, text
    assert "Last events:" in text and "9014 Information" in text, text  # a worker became ready
    summary = json.loads(server.cli("status", "--json").stdout)
    assert summary["server"]["state"] == "Started" and summary["server"]["pid"] == server.proc.pid
    assert {p["name"]: p["state"] for p in summary["pools"]} == {"PoolA": "Started", "PoolB": "Started"}
    assert pid_a in [w["pid"] for w in summary["workers"]]
    assert len(summary["events"]) <= 5 and summary["cache"].keys() == {"entries", "bytes"}


def test_status_of_a_server_that_is_not_running_exits_3(server):
    server.stop()
    result = server.cli("status", check=False)
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    assert "wasp is not running" in result.stderr, result.stderr


def test_list_json_forms(server):
    pid_a = int(get(server, "a.test").text)
    wps = server.list_json("wp")
    assert {"pid": pid_a, "pool": "PoolA"}.items() <= next(r for r in wps if r["pid"] == pid_a).items(), wps
    assert sorted(r["pool"] for r in wps) == ["PoolA", "PoolB"], wps
    for what, needle in (("sites", "Site A"), ("apps", "PoolA"), ("pools", "PoolB")):
        data = server.list_json(what)
        assert isinstance(data, list) and data, (what, data)
        assert needle in json.dumps(data), (what, data)
    pools = {row["name"]: row for row in server.list_json("pools")}
    assert pools["PoolA"].get("state") == "Started", pools


def test_recycle_under_load_changes_pids_and_loses_nothing(server):
    old = set(server.worker_pids("PoolA"))
    assert len(old) == 1, old
    stop = threading.Event()
    results: list[object] = []
    lock = threading.Lock()

    def hammer():
        session = requests.Session()
        for _ in range(1500):
            if stop.is_set():
                return
            try:
                r = session.get(server.url + "/pid", headers={"Host": "a.test"}, timeout=30)
                outcome = int(r.text) if r.status_code == 200 else f"{r.status_code} {r.text[:80]!r}"
            except requests.RequestException as exc:
                outcome = repr(exc)
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        server.wait_until(lambda: len(results) >= 60, 30, what="load before the recycle")
        result = server.cli("recycle", "pool", "PoolA")
        print("recycle said:", result.stdout.strip())
        new = server.wait_until(lambda: (set(server.worker_pids("PoolA")) - old) or None, 45, interval=0.2,
                                what=lambda: f"a new PoolA worker after recycle\n{server.diagnostics()}")
        server.wait_until(lambda: any(isinstance(r, int) and r in new for r in list(results)), 30,
                          what="requests answered by the new worker")
        mark = len(results)
        server.wait_until(lambda: len(results) >= max(mark + 40, 300), 60, what="load after the recycle")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    failures = [r for r in results if not isinstance(r, int)]
    assert not failures, f"{len(failures)} of {len(results)} requests failed during recycle: {failures[:10]}"
    seen = collections.Counter(results)
    assert set(seen) & old and set(seen) & new, seen
    server.wait_until(lambda: set(server.worker_pids("PoolA")).isdisjoint(old), 30,
                      what=lambda: f"old worker {old} gone from `list wp`")


def test_stop_pool_gives_503_and_start_serves_again(server):
    server.cli("stop", "pool", "PoolA")
    seen = []

    def stopped():
        r = get(server, "a.test", "/")
        seen.append(r.status_code)
        return r.status_code == 503 and [r]  # a Response is falsy when its status is an error

    [r] = server.wait_until(stopped, 30, interval=0.2, what=lambda: f"503 after stop pool (saw {seen})")
    assert "Service Unavailable" in r.text
    assert get(server, "b.test", "/").text == "crashy", "stopping PoolA disturbed PoolB"
    pools = lines(server.cli("list", "pools"))
    assert any(re.fullmatch(r'APPPOOL "PoolA" \(.*state:Stopped\)', line) for line in pools), pools
    assert not server.worker_pids("PoolA"), "a stopped pool still lists workers"

    server.cli("start", "pool", "PoolA")
    server.wait_until(lambda: get(server, "a.test", "/").status_code == 200, 45, interval=0.2,
                      what=lambda: f"PoolA serving after start pool\n{server.diagnostics()}")
    assert get(server, "a.test", "/").text == "crashy"
    server.wait_until(lambda: re.search(r"\b503\b.*\bDisabled\b", server.output()), 15,
                      what=lambda: f"a '503 ... Disabled' HTTPERR line for the stopped pool\n{server.diagnostics()}")


GARDEN = """
{pool_timing}
[[pools]]
name = "Garden"
max_processes = 2
threads = 2
start_mode = "{start_mode}"

[[sites]]
name = "Garden Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Garden"
app = "flask_app:app"
python_path = ["{apps}"]
"""


@pytest.mark.parametrize("start_mode", ["always_running", "on_demand"])
def test_web_garden_uses_two_workers(wasp_server, start_mode):
    server = wasp_server(GARDEN.replace("{start_mode}", start_mode))
    pids: set[int] = set()
    errors: list[str] = []

    def one():
        try:
            r = requests.get(server.url + "/slow?s=0.3", timeout=60)
            if r.status_code == 200:
                pids.add(int(r.text.rsplit(" ", 1)[1]))
            else:
                errors.append(f"{r.status_code} {r.text[:80]}")
        except requests.RequestException as exc:
            errors.append(repr(exc))

    for _ in range(20):
        threads = [threading.Thread(target=one, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        if len(pids) >= 2:
            break
    assert not errors, errors[:5]
    assert len(pids) == 2, f"saw worker PIDs {pids} with max_processes = 2\n{server.diagnostics()}"
    assert len(server.processes("worker", "Garden")) == 2


def test_admin_errors_use_appcmd_wording(server):
    missing = server.cli("stop", "pool", "Nope", check=False)
    assert missing.returncode == 1, (missing.returncode, missing.stdout, missing.stderr)
    assert 'ERROR ( message:Cannot find APPPOOL object with identifier "Nope". )' in missing.stderr, missing.stderr
    assert server.cli("stop", "pool", "PoolB").stdout.strip() == '"PoolB" successfully stopped'
    again = server.cli("stop", "pool", "PoolB", check=False)
    assert again.returncode == 1
    assert "ERROR ( message:Command execution failed. The object has already been stopped. )" in again.stderr, again.stderr
    assert server.cli("start", "pool", "PoolB").stdout.strip() == '"PoolB" successfully started'
    assert server.cli("recycle", "apppool", "PoolA").stdout.strip() == '"PoolA" successfully recycled'
    usage = server.cli("list", "bananas", check=False)
    assert usage.returncode == 2, (usage.returncode, usage.stdout, usage.stderr)


def test_list_requests_shows_an_in_flight_request(server, tmp_path):
    mark = tmp_path / "listed"
    done = {}

    def slow():
        r = get(server, "b.test", f"/flask/slow?s=3&mark={mark}", timeout=60)
        done["status"] = r.status_code

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    server.wait_until(mark.exists, 30, what="the slow request to reach the app")
    listed = lines(server.cli("list", "requests"))
    thread.join(60)
    assert done.get("status") == 200
    pattern = (r'REQUEST "[^"]+" \(url:GET /flask/slow\?s=3&mark=\S+, time:\d+ msec, '
               r'client:127\.0\.0\.1, stage:ExecuteRequestHandler, module:python_app\)')
    assert any(re.fullmatch(pattern, line) for line in listed), listed
    rows = server.list_json("requests")
    assert rows == [] or all("url" in row for row in rows), rows


def test_admin_command_without_a_server_is_exit_1(wasp_server, tmp_path):
    result = wasp_server.run_wasp("list", "pools", "--run-dir", str(tmp_path / "nothing-here"), cwd=tmp_path)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "ERROR ( message:Cannot reach the wasp server" in result.stderr, result.stderr


# ---------------------------------------------------------------------- a broken config file

BROKEN = """
[[pools]]
name = "PoolA"
max_processes = "two"
"""


def test_admin_commands_reach_the_server_while_its_config_is_broken(server):
    server.config.write_text(server.config.read_text() + BROKEN)
    assert server.cli("validate", check=False).returncode == 2  # it really is invalid
    pools = lines(server.cli("list", "pools"))
    assert any(line.startswith('APPPOOL "PoolA"') for line in pools), pools
    assert lines(server.cli("events")), "no events through -c of a broken file"
    assert server.cli("recycle", "pool", "PoolA").stdout.strip() == '"PoolA" successfully recycled'
    reload = server.cli("reload", check=False)
    assert reload.returncode == 1, (reload.returncode, reload.stdout, reload.stderr)
    assert "max_processes" in reload.stderr and "configuration reload rejected" in reload.stderr, reload.stderr
    events = [json.loads(line) for line in (server.logs / "events.jsonl").read_text().splitlines()]
    assert any(e["id"] == 9005 and "max_processes" in str(e) for e in events), events[-5:]
    assert get(server, "b.test", "/").text == "crashy", "the rejected reload disturbed the server"
    # The plain lines carry each event's sequence number, and --since takes one or a duration.
    # (More events may come meanwhile: the recycled worker exits; so compare prefixes.)
    listed = lines(server.cli("events"))
    seqs = [int(line.split()[0].lstrip("#")) for line in listed]
    assert all(line.startswith("#") for line in listed) and seqs == sorted(seqs) and len(seqs) >= 3, listed
    assert lines(server.cli("events", "--since", str(seqs[-2])))[:1] == listed[-1:]
    assert lines(server.cli("events", "--since", "1h"))[:len(listed)] == listed


def test_recycle_every_started_pool_and_text_errors(server):
    old = {row["pid"]: row["pool"] for row in server.list_json("wp")}
    server.cli("stop", "pool", "PoolB")
    result = server.cli("recycle", "pool", "*")
    assert lines(result) == ['"PoolA" successfully recycled'], result.stdout  # PoolB is stopped
    server.wait_until(lambda: not (set(server.worker_pids("PoolA")) & {p for p, n in old.items() if n == "PoolA"}),
                      45, interval=0.2, what="the recycled PoolA worker gone")
    star = server.cli("stop", "pool", "*", check=False)
    assert star.returncode == 2 and "only for recycle" in star.stderr, star.stderr
    unknown = server.cli("list", "pools", "--text", "colour", check=False)
    assert unknown.returncode == 2, (unknown.returncode, unknown.stdout, unknown.stderr)
    assert 'Unknown attribute "colour"' in unknown.stderr, unknown.stderr
    assert sorted(lines(server.cli("list", "pools", "--text", "APPPOOL.NAME"))) == ["PoolA", "PoolB"]


# ---------------------------------------------------------------------- `wasp serve APP_SPEC`

HELLO = '''
import os


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.path.basename(os.getcwd()).encode() + b" " + os.path.basename(os.path.dirname(__file__)).encode()]
'''


@pytest.fixture
def projects():
    """Two project folders any worker account can read (pytest's tmp_path is 0700 root's)."""
    import shutil
    import tempfile
    top = tempfile.mkdtemp(prefix="wasp-projects-")
    os.chmod(top, 0o755)
    dirs = []
    for name in ("alpha", "beta"):
        path = pathlib.Path(top) / name
        path.mkdir(mode=0o755)
        (path / "app.py").write_text(HELLO)
        os.chmod(path / "app.py", 0o644)
        dirs.append(path)
    yield dirs
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def xdg():
    """A short XDG_RUNTIME_DIR (a Unix socket path has ~100 bytes; pytest's tmp_path is long)."""
    import shutil
    import tempfile
    path = pathlib.Path(tempfile.mkdtemp(prefix="wx-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_two_single_app_servers_side_by_side(wasp_server, xdg, projects):
    tmp_path = xdg
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    servers = []
    for project in projects:
        port = wasp_server.free_port()
        servers.append(wasp_server(None, port=port, args=["serve", "app:app", "-b", f"localhost:{port}",
                                                          "--workers", "2", "--threads", "3"],
                                   env=env, admin_sock=None, cwd=project))
    for project, server in zip(projects, servers):
        r = requests.get(server.url + "/", timeout=30)
        assert (r.status_code, r.text.split()[-1]) == (200, project.name), server.diagnostics()
        # From the project folder with no -c and no --run-dir, the CLI finds this server.
        found = wasp_server.run_wasp("list", "sites", cwd=project, env=env)
        assert found.returncode == 0, (found.stdout, found.stderr)
        assert f"http/127.0.0.1:{server.port}:" in found.stdout, found.stdout
        pool = wasp_server.run_wasp("list", "pools", "--json", cwd=project, env=env)
        (row,) = json.loads(pool.stdout)
        assert row["name"] == "DefaultAppPool"
    bases = sorted(p.name for p in (tmp_path / "wasp").iterdir())
    assert len(bases) == 2 and bases[0].startswith("alpha-") and bases[1].startswith("beta-"), bases
    assert os.stat(tmp_path / "wasp").st_mode & 0o777 == 0o700
    for server in servers:
        assert server.stop() == 0


def test_run_dir_flag_on_serve(wasp_server, tmp_path, projects):
    port = wasp_server.free_port()
    run_dir = tmp_path / "mine"
    server = wasp_server(None, port=port, args=["serve", "app:app", "-b", str(port), "--run-dir", str(run_dir)],
                         admin_sock=run_dir / "admin.sock", cwd=projects[0])
    assert requests.get(server.url + "/", timeout=30).status_code == 200
    assert json.loads(server.cli("list", "wp", "--json").stdout)
    assert os.stat(run_dir).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("unsafe", ["mode", "owner", "symlink"])
def test_a_pre_created_unsafe_base_is_refused(wasp_server, xdg, projects, unsafe):
    tmp_path = xdg
    base = tmp_path / "wasp"
    if unsafe == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        base.symlink_to(tmp_path / "elsewhere")
    else:
        base.mkdir(mode=0o700)
        if unsafe == "mode":
            os.chmod(base, 0o777)
        else:
            if os.geteuid() != 0:
                pytest.skip("chown to another user needs root")
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(base, nobody.pw_uid, nobody.pw_gid)
    port = wasp_server.free_port()
    result = wasp_server.run_wasp("serve", "app:app", "-b", str(port), cwd=projects[0],
                                  env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 1, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert f"refusing {base}" in result.stderr, result.stderr
    if unsafe == "symlink":
        assert not list((tmp_path / "elsewhere").iterdir()), "wasp wrote through the symlink"


# ---------------------------------------------------------------------- start|stop site

def test_stop_site_stops_listening_and_start_listens_again(wasp_server):
    own = wasp_server.free_port()
    text = CONFIG.replace('bindings = ["http/127.0.0.1:{port}:b.test"]',
                          f'bindings = ["http/127.0.0.1:{{port}}:b.test", "http/127.0.0.1:{own}:"]')
    server = wasp_server(text)
    assert get(server, "b.test", "/").text == "crashy" and get(server, "a.test", "/").text == "crashy"
    pids = set(server.worker_pids())
    assert len(pids) == 2, pids
    assert requests.get(f"http://127.0.0.1:{own}/", timeout=30).text == "crashy"
    assert server.cli("stop", "site", "Site B").stdout.strip() == '"Site B" successfully stopped.'
    # Its own port closed; on the shared port its host no longer routes; Site A is untouched.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{own}/", timeout=30)
    r = get(server, "b.test", "/")
    assert r.status_code == 400 and "Invalid Hostname" in r.text, (r.status_code, r.text[:200])
    assert get(server, "a.test", "/").text == "crashy"
    sites = lines(server.cli("list", "sites"))
    assert any(line.startswith('SITE "Site B"') and line.endswith("state:Stopped)") for line in sites), sites
    assert any(line.startswith('SITE "Site A"') and line.endswith("state:Started)") for line in sites), sites
    assert set(server.worker_pids()) == pids, "stopping a site touched the workers"
    again = server.cli("stop", "site", "Site B", check=False)
    assert again.returncode == 1 and "already been stopped" in again.stderr, again.stderr
    missing = server.cli("stop", "site", "Nope", check=False)
    assert missing.returncode == 1
    assert 'ERROR ( message:Cannot find SITE object with identifier "Nope". )' in missing.stderr, missing.stderr

    assert server.cli("start", "site", "Site B").stdout.strip() == '"Site B" successfully started.'
    assert requests.get(f"http://127.0.0.1:{own}/", timeout=30).text == "crashy"
    assert get(server, "b.test", "/").text == "crashy"
    sites = lines(server.cli("list", "sites"))
    assert all(line.endswith("state:Started)") for line in sites), sites


# ---------------------------------------------------------------------- -b unix:PATH

ENV_APP = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ.get('REMOTE_ADDR')} {environ.get('PATH_INFO')}".encode()]
'''


def unix_get(path: str, target: str) -> tuple[int, bytes]:
    import http.client
    import socket as socket_module

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(path)

    conn = UnixConnection("localhost", timeout=30)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_serve_on_a_unix_socket(wasp_server, xdg, projects):
    project = projects[0]
    (project / "envapp.py").write_text(ENV_APP)
    os.chmod(project / "envapp.py", 0o644)
    sock_path = xdg / "app.sock"
    port = wasp_server.free_port()
    server = wasp_server(None, port=port, args=["serve", "envapp:app", "-b", f"unix:{sock_path}", "-b", str(port),
                                                "--run-dir", str(xdg / "run")],
                         admin_sock=xdg / "run" / "admin.sock", cwd=project)
    status, body = unix_get(str(sock_path), "/hello")
    assert (status, body) == (200, b"127.0.0.1 /hello"), server.diagnostics()
    assert os.stat(sock_path).st_mode & 0o777 == 0o660
    assert requests.get(server.url + "/tcp", timeout=30).text == "127.0.0.1 /tcp"
    sites = lines(server.cli("list", "sites"))
    assert f"bindings:http/unix:{sock_path}:,http/127.0.0.1:{port}:" in sites[0], sites
    # A second server cannot take the socket while the first listens on it.
    second = wasp_server.run_wasp("serve", "envapp:app", "-b", f"unix:{sock_path}", "--run-dir", str(xdg / "run2"),
                                  cwd=project)
    assert second.returncode == 1 and f"cannot listen on unix:{sock_path}" in second.stderr, second.stderr
    assert unix_get(str(sock_path), "/still")[0] == 200
    assert server.stop() == 0
    assert not sock_path.exists(), "the socket file outlived the server"
