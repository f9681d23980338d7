"""How children are started: their command lines and environment (no process is started)."""

from __future__ import annotations

import os
import sys

from wasp.manager import spawn
from wasp.manager.identity import Account


def test_front_command():
    assert spawn.front_command(7, [3, 4]) == [sys.executable, "-m", "wasp.front", "--control-fd", "7",
                                              "--listen-fds", "3,4"]


def test_worker_command_uses_the_pools_python():
    assert spawn.worker_command(9, 2, "Pool A") == [sys.executable, "-m", "wasp.worker", "--control-fd",
                                                    "9", "--worker-id", "2", "--pool", "Pool A"]
    assert spawn.worker_command(9, 2, "P", "/venv/bin/python")[0] == "/venv/bin/python"


def test_worker_env_has_pool_variables_and_finds_wasp():
    env = spawn.worker_env("P", 3, {"DJANGO_SETTINGS_MODULE": "site.settings", "APP_POOL_ID": "custom"})
    assert env["DJANGO_SETTINGS_MODULE"] == "site.settings"
    assert env["APP_POOL_ID"] == "custom"  # the pool's own variables win
    assert env["WASP_POOL"] == "P" and env["WASP_WORKER_ID"] == "3"
    root = os.path.dirname(os.path.dirname(os.path.abspath(spawn.__file__)))
    root = os.path.dirname(root)
    assert root in env.get("PYTHONPATH", "").split(os.pathsep) or root in sys.path


def test_worker_runs_as_the_account_with_its_home(monkeypatch):
    seen = {}

    def fake_popen(argv, pass_fds, env, user=None, group=None, extra_groups=None):
        seen.update(argv=argv, env=env, user=user, group=group, extra_groups=extra_groups)
        raise OSError("not really starting it")

    monkeypatch.setattr(spawn, "_popen", fake_popen)
    account = Account("svc", 990, 991, (44,), "/var/lib/svc")
    try:
        spawn.spawn_worker(1, "P", {"USER": "kept"}, account=account)
    except OSError:
        pass
    assert (seen["user"], seen["group"], seen["extra_groups"]) == (990, 991, [44])
    assert seen["env"]["HOME"] == "/var/lib/svc" and seen["env"]["LOGNAME"] == "svc"
    assert seen["env"]["USER"] == "kept"  # the pool's own variables win


def test_no_account_keeps_the_managers_user(monkeypatch):
    seen = {}

    def fake_popen(argv, pass_fds, env, user=None, group=None, extra_groups=None):
        seen.update(user=user, group=group, extra_groups=extra_groups)
        raise OSError("not really starting it")

    monkeypatch.setattr(spawn, "_popen", fake_popen)
    try:
        spawn.spawn_worker(1, "P", {})
    except OSError:
        pass
    assert seen == {"user": None, "group": None, "extra_groups": None}
