"""The sans-I/O parts of `wasp upgrade` (wasp/manager/upgrade.py) and its admin route."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from wasp.manager import admin, upgrade


def test_route():
    assert admin.route("POST", "/upgrade") == ("upgrade", {})
    with pytest.raises(admin.RouteError) as err:
        admin.route("GET", "/upgrade")
    assert err.value.status == 405


def test_parse_ready_and_logs():
    ready, logs = upgrade.parse(["log wasp: starting", "ready 1234"])
    assert ready == 1234 and logs == ["wasp: starting"]
    assert upgrade.parse(["log a", "log b"]) == (None, ["a", "b"])
    assert upgrade.parse(["ready nonsense"])[0] is None
    many = [f"log {i}" for i in range(100)]
    assert len(upgrade.parse(many)[1]) == upgrade.KEEP_LINES


def test_child_inactive_without_the_variable():
    env = {}
    child = upgrade.Child(env)
    assert not child.active
    child.send("log x")  # nothing to send to: no error
    child.ready()


def test_child_pipe_lines_never_carry_a_newline():
    r, w = os.pipe()
    child = upgrade.Child({upgrade.ENV_FD: str(w)})
    assert child.active
    child.send("log two\nlines")
    child.ready()
    data = os.read(r, 4096).decode()
    os.close(r)
    assert data == f"log two lines\nready {os.getpid()}\n"
    assert not child.active


def test_shim_puts_sockets_at_3_and_sets_listen_pid(tmp_path):
    """The exec shim, with `-m wasp` replaced by a probe: descriptors 3.. are the listening
    sockets in order, LISTEN_PID is the exec'd process's own pid, the pipe is elsewhere."""
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
    r, w = os.pipe()
    probe = ("import os, socket, sys\n"
             "ports = [socket.socket(fileno=os.dup(3 + i)).getsockname()[1] for i in range(int(os.environ['LISTEN_FDS']))]\n"
             "print(os.getpid(), os.environ['LISTEN_PID'], os.environ['LISTEN_FDNAMES'], *ports)\n"
             "os.write(int(os.environ['WASP_UPGRADE_FD']), b'ok')\n")
    shim = upgrade.SHIM.replace('[sys.executable, "-m", "wasp", *sys.argv[1:]]', '[sys.executable, "-c", sys.argv[1]]')
    env = dict(os.environ, WASP_UPGRADE_SOCKETS=",".join(str(s.fileno()) for s in socks),
               WASP_UPGRADE_NAMES="upgrade:upgrade", WASP_UPGRADE_FD=str(w))
    proc = subprocess.run([sys.executable, "-c", shim, probe], env=env, capture_output=True, text=True,
                          pass_fds=[*(s.fileno() for s in socks), w], timeout=30)
    os.close(w)
    assert proc.returncode == 0, proc.stderr
    pid, listen_pid, names, *ports = proc.stdout.split()
    assert pid == listen_pid and names == "upgrade:upgrade"
    assert [int(p) for p in ports] == [s.getsockname()[1] for s in socks]
    assert os.read(r, 10) == b"ok"
    os.close(r)
    for s in socks:
        s.close()
