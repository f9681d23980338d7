"""How children are started: their command lines and environment (no process is started)."""

from __future__ import annotations

import os
import sys

from wasp.manager import spawn


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


def test_identity_is_ignored_unless_root(monkeypatch):
    class Identity:
        user = "nobody"
        group = ""

    monkeypatch.setattr(os, "getuid", lambda: 1000)
    assert spawn.identity_of(Identity()) == (None, None)
    monkeypatch.setattr(os, "getuid", lambda: 0)
    user, group = spawn.identity_of(Identity())
    assert user == "nobody" and group is not None
    assert spawn.identity_of(None) == (None, None)
