"""Isolation per pool: the account workers run as (never root by default when the manager is
root), the pool's own interpreter (a real venv), its environment variables, and CPU and memory
limits (cgroup v2 where the machine allows it, a clear event where it does not)."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile

import psutil
import pytest

from process_support import PROCAPPS, events, get, gone, one_pool, pid_of, process_config, wait_event
from wasp.manager import cgroups, identity, spawn

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="workers change user only when the manager runs as root")


def _usable_by(acct, python: str, pythonpath: list[str]) -> str:
    """'' when `acct` can start a worker with this interpreter, else the error."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(pythonpath)}
    try:
        done = subprocess.run([python, "-c", "import wasp.worker.worker, uvloop"], env=env, cwd="/",
                              user=acct.uid, group=acct.gid, extra_groups=list(acct.groups),
                              capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return str(exc)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]


@pytest.fixture(scope="module")
def runtime():
    """(python, PYTHONPATH entries) that the default worker account can use.

    The server's own interpreter when that account can run it; otherwise (a pyenv under /root,
    say) a system interpreter of the same version with copies of the worker's compiled
    dependencies in a world-readable folder. Skips when neither works."""
    if os.geteuid() != 0:
        pytest.skip("workers change user only when the manager runs as root")
    acct = identity.account(identity.default_user())
    if identity.blocked(str(PROCAPPS), acct, 5):
        pytest.skip(f"{acct.user} cannot read the test apps: {identity.blocked(str(PROCAPPS), acct, 5)}")
    root = spawn.package_root()
    if not _usable_by(acct, sys.executable, [root]):
        yield sys.executable, [root]
        return
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system is None or os.path.realpath(system).startswith(sys.prefix):
        pytest.skip(f"{acct.user} cannot run {sys.executable} and there is no system {version}")
    deps = tempfile.mkdtemp(prefix="wasp-runtime-", dir="/tmp")
    try:
        os.chmod(deps, 0o755)
        import msgspec
        import uvloop
        for module in (msgspec, uvloop):
            source = os.path.dirname(module.__file__)
            shutil.copytree(source, os.path.join(deps, os.path.basename(source)))
        for folder, dirs, files in os.walk(deps):
            for name in dirs + files:
                os.chmod(os.path.join(folder, name), 0o755)
        problem = _usable_by(acct, system, [root, deps])
        if problem:
            pytest.skip(f"{acct.user} cannot start a worker with {system}: {problem}")
        yield system, [root, deps]
    finally:
        shutil.rmtree(deps, ignore_errors=True)


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


IDENTITY_POOLS = """
[[pools]]
name = "Default"
start_mode = "always_running"
python = "{python}"
environment_variables = { PYTHONPATH = "{pythonpath}" }

[[pools]]
name = "Named"
start_mode = "always_running"
python = "{python}"
environment_variables = { PYTHONPATH = "{pythonpath}" }
identity = { user = "daemon", group = "{group}" }

[[sites]]
name = "Site"
id = 1
bindings = ["http/127.0.0.1:{port}:"]
[[sites.applications]]
path = "/"
pool = "Default"
app = "procapp:app"
python_path = ["{procapps}"]
[[sites.applications]]
path = "/named"
pool = "Named"
app = "procapp:app"
python_path = ["{procapps}"]
"""


@ROOT_ONLY
def test_root_manager_runs_workers_as_an_unprivileged_account(wasp_server, runtime):
    python, pythonpath = runtime
    default = identity.account(identity.default_user())
    group = grp.getgrgid(default.gid).gr_name  # not daemon's own primary group
    server = wasp_server(process_config(IDENTITY_POOLS.replace("{python}", python).replace(
        "{pythonpath}", os.pathsep.join(pythonpath)).replace("{group}", group)))
    daemon = identity.account("daemon", group)
    info = get(server, "/info").json()
    assert (info["uid"], info["euid"], info["gid"]) == (default.uid, default.uid, default.gid), info
    assert info["env"]["HOME"] == default.home and info["env"]["USER"] == default.user
    named = get(server, "/named/info").json()
    assert (named["euid"], named["gid"]) == (daemon.uid, default.gid) and daemon.uid != default.uid, named
    started = {e["pool"]: e["user"] for e in events(server, 9013)}
    assert started == {"Default": default.user, "Named": "daemon"}
    assert not events(server, 9019), "a warning about the default account"
    # Start-up says who each pool runs as when it is not the invoking user (root).
    said = [line for line in server.stderr_path.read_text().splitlines() if "runs as user" in line]
    assert sorted(said) == sorted([
        f'wasp: pool "Default" runs as user {default.user} (uid {default.uid}); set identity.user to change it',
        f'wasp: pool "Named" runs as user daemon (uid {daemon.uid}); set identity.user to change it',
    ]), said
    # The front and the manager stay as the manager's user.
    [front] = server.processes("front")
    assert front.uids().effective == 0 and psutil.Process(server.proc.pid).uids().effective == 0
    # The app can be read (it answered); it cannot write where it should not.
    for folder in (pythonpath[-1], server.logs, server.run_dir):
        r = get(server, f"/write?path={folder}/intruder")
        assert r.text.startswith("refused"), (folder, r.text)
    assert not (server.logs / "intruder").exists()


@ROOT_ONLY
def test_a_named_account_that_cannot_run_the_interpreter_is_refused_clearly(wasp_server):
    acct = identity.account("nobody")
    why = identity.blocked(os.path.realpath(sys.executable), acct, 5)
    if why is None:
        pytest.skip(f"nobody can run {sys.executable} here: nothing to refuse")
    server = wasp_server(one_pool('start_mode = "always_running"\nidentity = { user = "nobody" }\n'
                                  "[pools.failure]\nrapid_fail_protection_max_crashes = 1"))
    [event] = wait_event(server, 9012, 15, pool="P")
    assert "user 'nobody' cannot use" in event["error"] and why in event["error"]
    assert get(server, "/pid").status_code == 503


def _venv(path, broken_uvloop: bool = False):
    """A real venv (python -m venv, no pip, no wasp) with packages of its own in site-packages:
    `venvonly`, and `certifi` and `msgspec` that shadow the server's (ORIGIN = "venv" tells them
    apart). With `broken_uvloop`, an interpreter on which uvloop cannot be imported."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    [site_packages] = (path / "lib").glob("python*/site-packages")
    (site_packages / "venvonly.py").write_text('ORIGIN = "venv"\n')
    for name in ("certifi", "msgspec"):
        (site_packages / name).mkdir()
        (site_packages / name / "__init__.py").write_text('ORIGIN = "venv"\n')
    if broken_uvloop:
        _break_uvloop(path)
    return path, site_packages


def _break_uvloop(venv) -> None:
    [site_packages] = (venv / "lib").glob("python*/site-packages")
    # Not a uvloop.py in site-packages: wasp's dependencies come from the server ahead of the
    # venv's. What stops the import is the interpreter's own start-up, as a site hook could.
    (site_packages / "sitecustomize.py").write_text('import sys\nsys.modules["uvloop"] = None\n')


def _module(server, name: str) -> dict:
    r = get(server, f"/module?name={name}")
    assert r.status_code == 200, (r.status_code, r.text[:300], server.diagnostics())
    return r.json()


def test_pool_python_from_a_venv_and_its_environment_variables(wasp_server, tmp_path):
    # A venv of the server's Python with nothing of wasp in it: the workers get wasp and its
    # dependencies from the server, after the venv's own packages.
    venv, site_packages = _venv(tmp_path / "venv")
    python = venv / "bin" / "python"
    server = wasp_server(one_pool(
        f'python = "{python}"\nenvironment_variables = {{ PROCAPP_COLOR = "teal" }}'))
    info = get(server, "/info").json()
    assert info["executable"] == str(python) and info["prefix"] == str(venv), info
    assert info["env"]["PROCAPP_COLOR"] == "teal" and info["env"]["APP_POOL_ID"] == "P"
    worker = psutil.Process(info["pid"])
    assert worker.cmdline()[0] == str(python)
    assert _module(server, "venvonly")["origin"] == "venv"
    certifi = _module(server, "certifi")  # the server has a certifi too (requests needs it)
    assert certifi["origin"] == "venv" and certifi["file"].startswith(str(site_packages)), certifi
    wasp = _module(server, "wasp")
    assert wasp["file"].startswith(spawn.package_root()), wasp
    # wasp's dependencies are the server's, even where the venv has its own copy.
    msgspec = _module(server, "msgspec")
    assert msgspec["origin"] == "" and not msgspec["file"].startswith(str(venv)), msgspec
    # Only wasp and its dependencies come from the server, not the rest of its packages.
    assert not any(p.startswith(sys.prefix) for p in wasp["path"]), wasp["path"]


def test_pool_virtualenv_runs_on_the_servers_python_with_the_venv_first(wasp_server):
    venv, site_packages = _venv(wasp_server.dir / "appenv")
    server = wasp_server(one_pool('virtualenv = "appenv"'))  # relative to the config file
    info = get(server, "/info").json()
    assert info["executable"] == sys.executable and info["prefix"] == str(venv), info
    assert psutil.Process(info["pid"]).cmdline()[0] == sys.executable
    own = _module(server, "venvonly")
    assert own["origin"] == "venv" and own["virtual_env"] == str(venv), own
    certifi = _module(server, "certifi")
    assert certifi["origin"] == "venv" and certifi["file"].startswith(str(site_packages)), certifi
    path = certifi["path"]
    ours = [i for i, p in enumerate(path) if p.startswith(sys.prefix) and p.endswith("site-packages")]
    assert ours and path.index(str(site_packages)) < min(ours), path
    # wasp's own msgspec was imported before the venv came first; the venv's does not replace it.
    msgspec = _module(server, "msgspec")
    assert msgspec["origin"] == "" and not msgspec["file"].startswith(str(venv)), msgspec


def test_a_python_that_cannot_import_wasp_gives_one_clear_event(wasp_server, tmp_path):
    venv, _ = _venv(tmp_path / "venv")
    server = wasp_server(one_pool(f'python = "{venv}/bin/python"'))  # on demand: no worker yet
    _break_uvloop(venv)
    for _ in range(3):
        assert get(server, "/pid").status_code == 503
    [event] = wait_event(server, 9012, 15, pool="P")
    error = event["error"]
    assert "cannot import wasp" in error and "import of uvloop halted" in error, error
    assert f'virtualenv = "{venv}"' in error and "pip install wasp-server" in error, error
    wait_event(server, 5002, 15, pool="P")
    assert len(events(server, 9012, pool="P")) == 1
    assert not events(server, 5009), "a crash event for a worker that never started"


def test_a_python_that_is_gone_gives_one_clear_event(wasp_server, tmp_path):
    venv, _ = _venv(tmp_path / "venv")
    server = wasp_server(one_pool(f'python = "{venv}/bin/python"'))
    shutil.rmtree(venv)
    assert get(server, "/pid").status_code == 503
    [event] = wait_event(server, 9012, 15, pool="P")
    assert f"python '{venv}/bin/python' does not exist" in event["error"], event
    wait_event(server, 5002, 15, pool="P")
    assert not events(server, 5009), "a crash event (pid 0) for a process that never started"


def test_serve_refuses_a_pool_python_or_virtualenv_it_cannot_use(wasp_server, tmp_path):
    venv, _ = _venv(tmp_path / "venv", broken_uvloop=True)
    other = tmp_path / "old"
    (other / "lib" / "python3.99" / "site-packages").mkdir(parents=True)
    (other / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.99.1\n")
    text = one_pool(f'python = "{venv}/bin/python"') + f"""
[[pools]]
name = "Old"
virtualenv = "{other}"
"""
    config = tmp_path / "wasp.toml"
    config.write_text(wasp_server.expand(text, wasp_server.free_port()))
    validate = wasp_server.run_wasp("validate", "-c", str(config), timeout=60)
    assert validate.returncode == 2, validate.stdout
    assert "pools[0].python: " in validate.stdout and "cannot import wasp" in validate.stdout, validate.stdout
    assert "pools[1].virtualenv: " in validate.stdout and "Python 3.99 virtualenv" in validate.stdout
    assert f"{config}:" in validate.stdout  # with the file and line, like any config problem
    done = wasp_server.run_wasp("serve", "-c", str(config), timeout=60)
    assert done.returncode == 2 and "pools[1].virtualenv: " in done.stderr, (done.stdout, done.stderr)


def _cgroup_problem() -> str:
    """'' when this machine lets the manager apply a memory limit, else why not."""
    try:
        tree = cgroups.CgroupTree.discover(os.getpid())
        offered = open(os.path.join(tree.base, "cgroup.controllers")).read().split()
    except (cgroups.Unavailable, OSError) as exc:
        return str(exc)
    if "memory" not in offered:
        return f"the cgroup v2 memory controller is not available in {tree.base} (it offers: {' '.join(offered) or 'none'})"
    if not os.access(tree.base, os.W_OK):
        return f"{tree.base} is not writable"
    return ""


def test_cgroup_limits_are_applied_or_the_reason_is_logged(wasp_server):
    server = wasp_server(one_pool(
        'start_mode = "always_running"\nmemory_limit = "256MB"\n[pools.cpu]\nlimit = 50000\naction = "throttle"'))
    pid = pid_of(server)
    applied, refused = events(server, 9018, pool="P"), events(server, 9017, pool="P")
    assert applied or refused, "neither 9018 nor 9017 for a pool with limits"
    if refused:
        print("\nlimits not applied here:", refused[0]["reason"])
        assert refused[0]["reason"] and "limits of application pool 'P' are not applied" in refused[0]["message"]
        assert "Warning" == refused[0]["level"]
        return
    path = applied[0]["cgroup"]
    print("\nlimits applied in", path)
    with open(f"/proc/{pid}/cgroup") as f:
        assert path.endswith(f.read().strip().split("::")[-1])
    assert open(os.path.join(path, "memory.max")).read().strip() == str(256 << 20)
    quota, period = open(os.path.join(path, "cpu.max")).read().split()
    assert int(quota) == round(0.5 * len(os.sched_getaffinity(0)) * int(period))


def test_memory_limit_is_enforced_by_the_kernel(wasp_server):
    problem = _cgroup_problem()
    if problem:
        pytest.skip(f"cgroup v2 memory limits cannot be applied on this machine: {problem}")
    server = wasp_server(one_pool('start_mode = "always_running"\nmemory_limit = "128MB"'))
    first = pid_of(server)
    try:
        get(server, "/alloc?mb=400")
    except Exception:
        pass
    [crash] = wait_event(server, 5009, 20, pool="P")
    assert crash["pid"] == first and crash["code"] == -9  # the kernel's OOM killer, inside the pool's cgroup
    assert pid_of(server) != first


def test_cpu_limit_kill_w3wp_kills_a_worker_over_its_share(wasp_server):
    """cpu.limit works with or without cgroups for no_action and kill_w3wp: the manager measures
    the pool's CPU time. The limit is a share of the whole machine: 0.4 CPU-seconds per 2 s here
    whatever the number of CPUs, which one busy thread uses up."""
    limit = max(1, 20000 // len(os.sched_getaffinity(0)))
    server = wasp_server(one_pool(
        f'start_mode = "always_running"\n[pools.cpu]\nlimit = {limit}\naction = "kill_w3wp"\n'
        'reset_interval = "2s"'))
    first = pid_of(server)
    try:
        get(server, "/burn?s=5", timeout=30)
    except Exception:
        pass
    [event] = wait_event(server, 9020, 15, pool="P")
    assert event["action"] == "kill_w3wp" and float(event["used_pct"]) > limit / 1000
    server.wait_until(lambda: gone(first), 10, what="the worker over its CPU share to be killed")
    assert pid_of(server) != first
    assert not events(server, 5002)
