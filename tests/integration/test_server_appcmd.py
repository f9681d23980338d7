"""appcmd that changes things (docs/appcmd.md), against a real server: `wasp add|set|delete`
edit wasp.toml keeping its comments, every change is validated before it is written and applied
at once (only the changed pool recycles, event 5080), history, restore and backups."""

from __future__ import annotations

import json
import socket
import threading
import tomllib

from process_support import PROCAPPS, events, get, pid_of, process_config, wait_event

HEADER = "# Production config: keep this comment.\n"


def config() -> str:
    return HEADER + process_config("""
[[pools]]
name = "P"  # the first pool
start_mode = "always_running"

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]  # loopback only
[[sites.applications]]
path = "/"
pool = "P"
app = "procapp:app"
python_path = ["{procapps}"]
""")


def last_seq(server) -> int:
    found = events(server)
    return found[-1]["seq"] if found else 0


def test_add_a_pool_and_an_app_then_a_pool_setting_recycles_only_that_pool(wasp_server):
    server = wasp_server(config())
    before = server.config.read_text()
    p_pid = pid_of(server, "/pid")
    out = server.cli("add", "pool", "api", "startMode=always_running", "/maxProcesses:1")
    assert out.stdout.splitlines() == ['APPPOOL object "api" added']
    out = server.cli("add", "app", "Site/api", "applicationPool=api", "app=procapp:app",
                     f'python_path=["{PROCAPPS}"]')
    assert out.stdout.splitlines() == ['APP object "Site/api" added']
    # The pool gained an application: its worker is recycled (overlapped) to load it. The old
    # worker does not host /api, so the front holds /api's requests in the pool queue until the
    # new worker is up (HELLO names its apps): 200 at once, never 500.
    assert get(server, "/api/pid").status_code == 200
    api_pid = pid_of(server, "/api/pid")
    assert api_pid != p_pid
    assert pid_of(server, "/pid") == p_pid
    text = server.config.read_text()
    assert text.startswith(HEADER) and "# the first pool" in text and "# loopback only" in text
    assert all(line in text.splitlines() for line in before.splitlines())  # only additions

    seq = last_seq(server)
    out = server.cli("set", "pool", "api", "queue_length=500", "--user", "alice")
    assert out.stdout.splitlines() == ['APPPOOL object "api" changed']
    wait_event(server, 5080, pool="api", after=seq)
    server.wait_until(lambda: get(server, "/api/pid").text != str(api_pid), 30,
                      what=lambda: server.diagnostics())
    assert pid_of(server, "/pid") == p_pid  # the other pool kept its worker
    assert not [e for e in events(server, 5080, pool="P") if e["seq"] > seq]
    changed = [e for e in events(server, 9070) if e["seq"] > seq]
    assert len(changed) == 1 and changed[0]["user"].startswith("alice (via ")
    assert "pools[name='api'].queue_length = 500" in changed[0]["message"]
    pools = {p["name"]: p for p in tomllib.loads(server.config.read_text())["pools"]}
    assert pools["api"]["queue_length"] == 500


def test_a_bad_change_is_refused_with_the_dotted_path_and_the_server_keeps_serving(wasp_server):
    server = wasp_server(config())
    pid = pid_of(server, "/pid")
    before = server.config.read_bytes()
    bad = server.cli("set", "pool", "P", "queue_length=1", check=False)
    assert bad.returncode == 2
    assert "pools[0].queue_length: 1 is out of range" in bad.stderr
    assert f"{server.config}:" in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("ERROR ( message:the change was refused")
    missing = server.cli("set", "pool", "Nope", "threads=2", check=False)
    assert missing.returncode == 1
    assert 'ERROR ( message:Cannot find APPPOOL object with identifier "Nope". )' in missing.stderr
    duplicate = server.cli("add", "pool", "p", check=False)
    assert 'Failed to add duplicate collection element "p".' in duplicate.stderr
    # Valid, but the running server cannot apply it (the port is taken): undone.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = server.cli("add", "binding", "Site", f"http/127.0.0.1:{port}:", check=False)
    assert busy.returncode == 1 and "could not apply it, so it was undone" in busy.stderr
    assert server.config.read_bytes() == before
    assert pid_of(server, "/pid") == pid
    assert [e for e in events(server, 9071)]
    history = json.loads(server.cli("config", "history", "--json").stdout)
    assert history == []  # nothing was written, so nothing was kept
    server.cli("reload")
    audited = [e for e in events(server, 9075) if e.get("action") == "reload"]
    assert audited and "(uid " in audited[0]["user"] and audited[0]["outcome"] == "done"


def test_history_restore_and_backups(wasp_server):
    server = wasp_server(config())
    original = server.config.read_text()
    assert server.cli("backup", "add", "before").stdout.strip() == 'BACKUP object "before" added'
    assert server.cli("backup", "list").stdout.splitlines() == ['BACKUP "before"']
    server.cli("set", "pool", "P", "threads=4")
    server.cli("set", "config", "Site", "--section", "default_document", "enabled=false",
               "+files.[value='home.html']")
    rows = json.loads(server.cli("config", "history", "--json").stdout)
    assert [r["user"].split(" ")[0] for r in rows][0] == "(outside"
    assert "+threads = 4" in rows[1]["diff"] and rows[1]["what"].startswith("set pools[name='P'].threads")
    text = server.cli("config", "history").stdout
    assert f'HISTORY "{rows[1]["number"]}" (time:' in text and "    +threads = 4" in text
    view = json.loads(server.cli("list", "config", "Site", "--section", "default_document", "--json").stdout)
    doc = view["sections"]["default_document"]
    assert doc["enabled"] == {"value": False, "set_at": "wasp.toml sites[name='Site']"}
    assert doc["files"]["value"][0] == "home.html"

    pid = pid_of(server, "/pid")
    seq = last_seq(server)
    out = server.cli("config", "restore", str(rows[0]["number"]))
    assert out.stdout.splitlines() == [f'Restored configuration from history "{rows[0]["number"]}"']
    assert server.config.read_text() == original
    wait_event(server, 5080, pool="P", after=seq)  # threads went back: the pool recycled
    server.wait_until(lambda: get(server, "/pid").text != str(pid), 30, what=server.diagnostics)
    restored = [e for e in events(server, 9072) if e["seq"] > seq]
    assert restored and "history" in restored[0]["message"]

    server.cli("set", "pool", "P", "threads=8")
    out = server.cli("backup", "restore", "before")
    assert out.stdout.strip() == 'Restored configuration from backup "before"'
    assert server.config.read_text() == original
    assert server.cli("backup", "delete", "before").stdout.strip() == 'BACKUP object "before" deleted'
    gone = server.cli("backup", "restore", "before", check=False)
    assert gone.returncode == 1 and 'Cannot find BACKUP object with identifier "before"' in gone.stderr


def test_concurrent_changes_are_serialized_and_none_is_lost(wasp_server):
    from wasp.cli.client import AdminClient

    server = wasp_server(config())
    client = AdminClient(str(server.run_dir), timeout=120)
    errors = []

    def change(n: int) -> None:
        try:
            client.post_json("/config/changes", {"target": {"pool": "P"}, "edits": [
                {"op": "set", "path": f"environment_variables.K{n}", "value": str(n)}]})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=change, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    env = tomllib.loads(server.config.read_text())["pools"][0]["environment_variables"]
    assert env == {f"K{n}": str(n) for n in range(6)}
    # A change computed from an old text is refused (409) and writes nothing.
    before = server.config.read_text()
    stale = server.cli("set", "pool", "P", "threads=2", check=False)
    assert stale.returncode == 0
    try:
        client.post_json("/config/changes", {"base": "0" * 64, "edits": [
            {"op": "set", "path": "limits.max_connections", "value": 9}]})
    except Exception as exc:  # noqa: BLE001
        assert getattr(exc, "status", None) == 409
    else:
        raise AssertionError("a stale base was accepted")
    assert "max_connections" not in server.config.read_text()
    assert before != server.config.read_text()  # the threads=2 change stands


def test_without_a_running_server_a_change_is_validated_and_written(wasp_server):
    server = wasp_server(config(), start=False)
    out = server.cli("set", "pool", "P", "threads=3")
    assert out.stdout.splitlines() == [
        'APPPOOL object "P" changed',
        f"the server is not running: the change is written to {server.config} and takes effect when it starts"]
    assert tomllib.loads(server.config.read_text())["pools"][0]["threads"] == 3
    bad = server.cli("set", "pool", "P", "threads=0", check=False)
    assert bad.returncode == 2 and "pools[0].threads" in bad.stderr
    assert tomllib.loads(server.config.read_text())["pools"][0]["threads"] == 3
    rows = json.loads(server.cli("config", "history", "--json").stdout)
    assert len(rows) == 2 and "server not running" in rows[1]["user"]
    server.start()
    assert pid_of(server, "/pid") > 0


def test_a_web_toml_change_applies_and_cannot_leave_the_physical_path(wasp_server, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "home.html").write_text("home page")
    text = config().replace('[[sites.applications]]\npath = "/"',
                            f'[[sites.applications]]\npath = "/static"\npool = "P"\n'
                            f'physical_path = "{www}"\n\n[[sites.applications]]\npath = "/"')
    server = wasp_server(text)
    assert get(server, "/static/").status_code != 200
    out = server.cli("set", "config", "Site/static", "--section", "default_document", "--commit", "web",
                     "+files.[value='home.html']")
    assert out.stdout.splitlines() == [
        f'Applied configuration changes to section "default_document" for '
        f'"MACHINE/WEBROOT/APPHOST/Site/static" at configuration commit path "{www / "web.toml"}"']
    assert tomllib.loads((www / "web.toml").read_text()) == {"default_document": {"files": ["home.html"]}}
    server.wait_until(lambda: get(server, "/static/").text == "home page", 20, what=server.diagnostics)
    escape = server.cli("set", "config", "Site/static/../..", "--section", "default_document",
                        "--commit", "web", "enabled=false", check=False)
    assert escape.returncode == 1 and '"." or ".." segment' in escape.stderr
    locked = server.cli("set", "config", "Site/static", "--section", "handlers", "--commit", "web",
                        "access_policy=Read", check=False)
    assert locked.returncode == 2 and "locked" in locked.stderr
    assert tomllib.loads((www / "web.toml").read_text()) == {"default_document": {"files": ["home.html"]}}
