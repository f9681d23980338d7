"""The `wasp` command: argument handling, validate, locating the server, talking to the admin API.

The admin API side is a real `wasp.manager.admin` server on a Unix socket in a thread, with a
fake dispatch: no processes are started.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest

from wasp.cli import main as cli
from wasp.manager import admin

GOOD = """
[server]
run_dir = "run"
log_dir = "logs"

[[pools]]
name = "P"

[[sites]]
name = "S"
id = 1
bindings = ["http/127.0.0.1:8080:"]
[[sites.applications]]
path = "/"
app = "m:app"
pool = "P"
"""

BAD = """
[[pools]]
name = "P"
max_processes = "two"
"""


def test_validate_good(tmp_path, capsys):
    path = tmp_path / "wasp.toml"
    path.write_text(GOOD)
    assert cli.main(["validate", "-c", str(path)]) == 0
    assert "configuration OK" in capsys.readouterr().out


def test_validate_bad_prints_every_problem_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    assert cli.main(["validate", "-c", str(path)]) == 2
    out = capsys.readouterr().out
    assert "max_processes" in out and ":4:" in out


def test_serve_bad_config_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    assert cli.main(["serve", "-c", str(path)]) == 2
    assert "max_processes" in capsys.readouterr().err


def test_serve_usage_errors(tmp_path, capsys):
    assert cli.main(["serve", "--bind", "127.0.0.1:9"]) == 2
    assert cli.main(["serve", "-c", "x.toml", "mod:app"]) == 2


def test_locate_run_dir(tmp_path, monkeypatch):
    path = tmp_path / "wasp.toml"
    path.write_text(GOOD)
    args = cli.build_parser().parse_args(["list", "pools", "-c", str(path)])
    assert cli.locate_run_dir(args) == str(tmp_path / "run")
    args = cli.build_parser().parse_args(["list", "pools", "--run-dir", "elsewhere"])
    assert cli.locate_run_dir(args) == os.path.abspath("elsewhere")
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["list", "pools"])
    assert cli.locate_run_dir(args) == str(tmp_path / "run")  # ./wasp.toml


def test_not_running_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["list", "pools", "--run-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR ( message:") and "not running" in err


def test_unknown_object(tmp_path, capsys):
    assert cli.main(["list", "gizmos", "--run-dir", str(tmp_path)]) == 2
    assert "not supported" in capsys.readouterr().err


def test_events_from_the_file_when_not_running(tmp_path, capsys):
    path = tmp_path / "wasp.toml"
    path.write_text(GOOD)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "events.jsonl").write_text(
        json.dumps({"seq": 1, "time": "t", "id": 9001, "level": "Information", "message": "hello"}) + "\n")
    assert cli.main(["events", "-c", str(path)]) == 0
    assert "9001 Information: hello" in capsys.readouterr().out


class FakeServer:
    """admin.serve on a Unix socket in a background loop, answering from canned data."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, "admin.sock")
        self.calls = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def dispatch(self, name, args, request):
        self.calls.append((name, args))
        if name == "pools":
            return 200, [{"name": "P", "state": "Started", "workers": 1, "queue": 3}]
        if name == "wp":
            return 200, [{"pid": 4242, "pool": "P", "state": "Ready"}]
        if name == "recycle_pool":
            if args["name"] != "P":
                return 404, {"error": f'Cannot find APPPOOL object with identifier "{args["name"]}".'}
            return 200, {"ok": True, "message": '"P" successfully recycled'}
        if name == "events":
            return 200, [{"seq": 5, "time": "t", "id": 5079, "level": "Information", "message": "m"}]
        return 404, {"error": "nope"}

    def __enter__(self):
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(admin.serve(self.path, self.dispatch), self.loop).result(10)
        return self

    def __exit__(self, *exc):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def fake(tmp_path):
    with FakeServer(str(tmp_path)) as server:
        yield server


def test_admin_socket_is_private(fake):
    assert os.stat(fake.path).st_mode & 0o777 == 0o600


def test_list_text_and_json(fake, tmp_path, capsys):
    run_dir = str(tmp_path)
    assert cli.main(["list", "pools", "--run-dir", run_dir]) == 0
    assert capsys.readouterr().out == 'APPPOOL "P" (workers:1,queue:3,state:Started)\n'
    assert cli.main(["list", "apppools", "--run-dir", run_dir]) == 0  # appcmd's name works too
    capsys.readouterr()
    assert cli.main(["list", "wp", "--json", "--run-dir", run_dir]) == 0
    assert json.loads(capsys.readouterr().out)[0]["pid"] == 4242
    assert cli.main(["list", "wp", "--text", "*", "--run-dir", run_dir]) == 0
    assert capsys.readouterr().out == 'WP\n  WP.NAME:"4242"\n  APPPOOL.NAME:"P"\n  state:"Ready"\n'
    assert cli.main(["list", "wp", "--text", "state", "--run-dir", run_dir]) == 0
    assert capsys.readouterr().out == "Ready\n"


def test_recycle_and_unknown_pool(fake, tmp_path, capsys):
    run_dir = str(tmp_path)
    assert cli.main(["recycle", "pool", "P", "--run-dir", run_dir]) == 0
    assert capsys.readouterr().out.strip() == '"P" successfully recycled'
    assert cli.main(["recycle", "apppool", "X", "--run-dir", run_dir]) == 1
    assert capsys.readouterr().err.strip() == 'ERROR ( message:Cannot find APPPOOL object with identifier "X". )'


def test_events_via_api(fake, tmp_path, capsys):
    assert cli.main(["events", "--run-dir", str(tmp_path), "--since", "4"]) == 0
    assert "5079 Information: m" in capsys.readouterr().out
    assert ("events", {}) in fake.calls
