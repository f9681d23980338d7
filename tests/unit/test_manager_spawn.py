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


def test_a_pool_virtualenv_runs_on_the_servers_interpreter():
    argv = spawn.worker_command(9, 2, "P", virtualenv="/srv/app/venv")
    assert argv[:3] == [sys.executable, "-m", "wasp.worker"]
    assert argv[-2:] == ["--virtualenv", "/srv/app/venv"]


def test_a_pool_python_runs_the_boot_program_that_finds_wasp():
    argv = spawn.worker_command(9, 2, "P", "/venv/bin/python")
    assert argv[:2] == ["/venv/bin/python", "-c"] and argv[3:] == [
        "--control-fd", "9", "--worker-id", "2", "--pool", "P"]
    compile(argv[2], "<boot>", "exec")
    assert repr(tuple(sys.version_info[:2])) in argv[2] and spawn.package_root() in argv[2]
    # The server's own interpreter named as `python` is no foreign interpreter.
    assert spawn.worker_command(9, 2, "P", sys.executable)[1:3] == ["-m", "wasp.worker"]


def _top_level_names(dist_name: str, seen: set[str]) -> set[str]:
    import importlib.metadata as md
    import re

    dist = md.distribution(dist_name)
    names = set((dist.read_text("top_level.txt") or "").split())
    if not names:
        names = {f.parts[0].removesuffix(".py") for f in dist.files or ()
                 if f.parts[0].endswith(".py") or (len(f.parts) > 1 and f.parts[1] == "__init__.py")}
    for requirement in dist.requires or ():
        if "extra ==" in requirement:
            continue
        dep = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        if dep.lower() not in seen:
            seen.add(dep.lower())
            names |= _top_level_names(dep, seen)
    return names


def test_worker_imports_are_wasps_runtime_dependencies():
    names = _top_level_names("wasp-server", {"wasp-server", *spawn.SERVER_ONLY_IMPORTS})
    assert set(spawn.WORKER_IMPORTS) == names | {"wasp"}


def test_a_worker_never_imports_the_server_only_dependencies():
    import subprocess
    import sys

    code = ("import sys, wasp.worker.main, wasp.worker.hosting.wsgi, wasp.worker.hosting.asgi; "
            f"print(sorted(n for n in {spawn.SERVER_ONLY_IMPORTS!r} if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_virtualenv_is_activated_in_the_environment_and_pool_variables_win():
    env = spawn.worker_environment("P", 1, {}, virtualenv="/srv/venv")
    assert env["VIRTUAL_ENV"] == "/srv/venv"
    assert env["PATH"].split(os.pathsep)[0] == "/srv/venv/bin"
    assert spawn.worker_environment("P", 1, {"PATH": "/only"}, virtualenv="/srv/venv")["PATH"] == "/only"
    assert "VIRTUAL_ENV" not in spawn.worker_environment("P", 1, {})
