"""systemd integration, sans PID 1: sd_notify messages, the environment, socket activation
matching, journal priorities and the unit `wasp install-service` writes."""

from __future__ import annotations

import io
import os
import socket
import textwrap

import pytest

from wasp.cli import service
from wasp.common import journal
from wasp.config.load import load_text
from wasp.manager import activation, systemd
from wasp.manager.activation import Inherited
from wasp.manager.listeners import ListenerSet, plan
from wasp.manager.supervisor import Supervisor


def cfg(text: str = "", bindings=("http/*:8080:",), name: str = "Web", pool: str = ""):
    return load_text(textwrap.dedent(f"""
        [[pools]]
        name = "P"
        {pool}
        [[sites]]
        name = "{name}"
        id = 1
        bindings = {list(bindings)!r}
        [[sites.applications]]
        path = "/"
        app = "m:app"
        pool = "P"
        """).replace("'", '"') + text)


# ---------------------------------------------------------------------- the environment

def test_environment_counts_only_for_this_pid():
    env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "12",
           "LISTEN_FDS": "2", "LISTEN_PID": "12", "LISTEN_FDNAMES": "Web:other"}
    mine = systemd.read_environment(env, 12)
    assert mine == systemd.SystemdEnvironment("/run/n", 4000000, 2, ("Web", "other"))
    theirs = systemd.read_environment(env, 13)  # inherited by a child: not for it
    assert theirs.watchdog_usec == 0 and theirs.listen_fds == 0 and theirs.listen_fdnames == ()


def test_environment_garbage_is_ignored():
    env = {"WATCHDOG_USEC": "soon", "LISTEN_FDS": "-3", "LISTEN_PID": "7"}
    assert systemd.read_environment(env, 7) == systemd.SystemdEnvironment()


def test_take_environment_removes_the_variables():
    env = {"NOTIFY_SOCKET": "@x", "LISTEN_FDS": "1", "LISTEN_PID": "5", "LISTEN_FDNAMES": "a",
           "WATCHDOG_USEC": "1", "WATCHDOG_PID": "5", "PATH": "/bin", "JOURNAL_STREAM": "1:2"}
    found = systemd.take_environment(env, pid=5)
    assert found.listen_fds == 1 and found.notify_socket == "@x"
    # JOURNAL_STREAM stays: the children share the manager's stderr.
    assert env == {"PATH": "/bin", "JOURNAL_STREAM": "1:2"}


def test_notify_address():
    assert systemd.notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert systemd.notify_address("@abstract") == b"\0abstract"
    assert systemd.notify_address("vsock:2:1234") is None


def test_message_fields_cannot_smuggle_lines():
    assert systemd.message(READY=1, STATUS="a\nWATCHDOG=trigger") == b"READY=1\nSTATUS=a WATCHDOG=trigger\n"


# ---------------------------------------------------------------------- sd_notify over a socket

@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_notifier_sends_datagrams(notify_socket):
    path, sock = notify_socket
    n = systemd.Notifier(systemd.SystemdEnvironment(notify_socket=path, watchdog_usec=2_000_000))
    assert n.active and n.watchdog_interval == 1.0
    n.ready("ok")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ok\n"
    n.reloading()
    fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1"
    assert abs(int(fields["MONOTONIC_USEC"]) - __import__("time").monotonic() * 1e6) < 5e6
    n.tick(100.0, "s")                          # first due at once
    assert sock.recv(4096) == b"WATCHDOG=1\nSTATUS=s\n"
    assert n.watchdog_due(100.5) == 101.0       # then every half WATCHDOG_USEC
    n.tick(100.5)
    n.tick(101.0)
    assert sock.recv(4096) == b"WATCHDOG=1\n"
    n.stopping()
    assert sock.recv(4096).startswith(b"STOPPING=1\n")
    n.close()


def test_notifier_without_systemd_is_silent():
    n = systemd.Notifier(systemd.SystemdEnvironment())
    assert not n.active and n.watchdog_due(0.0) is None
    n.ready("x")
    n.tick(1.0)


def test_notifier_survives_a_gone_socket(tmp_path):
    n = systemd.Notifier(systemd.SystemdEnvironment(notify_socket=str(tmp_path / "nobody")))
    n.ready("x")  # ENOENT: dropped, counted, no exception
    assert n.dropped == 1


# ---------------------------------------------------------------------- readiness and status

def test_startup_done_waits_for_always_running_workers():
    config = cfg(pool='start_mode = "always_running"\nmax_processes = 2')
    sup = Supervisor(config, cpu_count=4, fronts=1)
    sup.start(0.0, 0.0)
    assert not systemd.startup_done(sup, 1.0, 0.0)
    ids = list(sup.workers)
    sup.worker_spawned(ids[0], 100)
    sup.worker_ready(ids[0], 1.0)
    assert not systemd.startup_done(sup, 1.0, 0.0)
    sup.worker_spawned(ids[1], 101)
    sup.worker_ready(ids[1], 1.5)
    assert systemd.startup_done(sup, 1.5, 0.0)
    assert systemd.status_line(sup, 12.34, True) == "1/1 pools started, 2 workers ready, 12.3 requests/s"


def test_startup_done_gives_up_after_the_startup_time_limit():
    config = cfg(pool='start_mode = "always_running"')
    sup = Supervisor(config, cpu_count=4, fronts=1)
    sup.start(0.0, 0.0)
    assert not systemd.startup_done(sup, 89.0, 0.0)
    assert systemd.startup_done(sup, 90.0, 0.0)
    assert systemd.status_line(sup, 0.0, False).startswith("Starting: ")


def test_on_demand_pools_are_ready_at_once():
    sup = Supervisor(cfg(), cpu_count=4, fronts=1)
    sup.start(0.0, 0.0)
    assert systemd.startup_done(sup, 0.0, 0.0)


def test_request_rate_from_pongs():
    rate = systemd.RequestRate()
    rate.update(10.0, {0: {"pools": {"P": {"served": 100}}}})
    assert rate.rate == 0.0
    rate.update(20.0, {0: {"pools": {"P": {"served": 300}, "Q": {"served": 50}}}})
    assert rate.rate == 25.0
    rate.update(30.0, {0: {"pools": {"P": {"served": 5}}}})   # a restarted front: skipped
    assert rate.rate == 25.0
    rate.update(40.0, {0: {"pools": "garbage"}})
    assert rate.rate == 25.0


# ---------------------------------------------------------------------- socket activation

def test_unnamed_sockets_match_by_address():
    config = cfg(bindings=["http/127.0.0.1:8080:", "http/*:8081:"])
    planned = plan(config)
    inherited = [Inherited(3, "wasp.socket", ("127.0.0.1", 8080)),
                 Inherited(4, "wasp.socket", ("::", 8081), dual_stack=True),
                 Inherited(5, "wasp.socket", ("127.0.0.1", 9999))]
    matched, unused = activation.match(config, planned, inherited)
    assert matched == {("127.0.0.1", 8080): 0, ("0.0.0.0", 8081): 1}
    assert unused == [inherited[2]]


def test_ipv6_only_socket_does_not_serve_the_ipv4_wildcard():
    config = cfg(bindings=["http/*:8081:"])
    matched, unused = activation.match(config, plan(config), [Inherited(3, "", ("::", 8081))])
    assert matched == {} and len(unused) == 1


def test_named_socket_serves_the_sites_binding_on_its_port():
    config = cfg(bindings=["http/*:80:", "http/*:443:"], name="Shop")
    inherited = [Inherited(3, "Shop", ("192.0.2.7", 443)), Inherited(4, "Shop", ("192.0.2.7", 80))]
    matched, unused = activation.match(config, plan(config), inherited)
    assert matched == {("0.0.0.0", 443): 0, ("0.0.0.0", 80): 1} and unused == []


def test_named_socket_for_a_unix_binding():
    config = cfg(bindings=["http/unix:/run/wasp/web.sock:"], name="Web")
    inherited = [Inherited(3, "Web", ("unix:/run/systemd-made.sock", 0))]
    matched, _ = activation.match(config, plan(config), inherited)
    assert matched == {("unix:/run/wasp/web.sock", 0): 0}


def test_two_sockets_for_one_address_use_the_first():
    config = cfg(bindings=["http/127.0.0.1:8080:"])
    inherited = [Inherited(3, "", ("127.0.0.1", 8080)), Inherited(4, "", ("127.0.0.1", 8080))]
    matched, unused = activation.match(config, plan(config), inherited)
    assert matched == {("127.0.0.1", 8080): 0} and unused == [inherited[1]]


def test_stopped_site_name_matches_nothing():
    config = cfg('\n', bindings=["http/*:8080:"], name="Web")
    config.sites[0].server_auto_start = False
    matched, unused = activation.match(config, plan(config), [Inherited(3, "Web", ("127.0.0.1", 8080))])
    assert matched == {} and len(unused) == 1


def test_listener_set_uses_the_inherited_socket_and_keeps_it_across_reloads():
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    address = held.getsockname()
    listeners = ListenerSet()
    listeners.adopt({address: held})
    listeners.apply([address])   # binding it ourselves would be EADDRINUSE
    served = listeners.sockets[address]
    assert served.fileno() != held.fileno() and served.getsockname() == address
    listeners.apply([])          # a reload drops it: our copy closes, the inherited one stays
    assert held.fileno() >= 0
    listeners.apply([address])   # and a later reload gets it back
    assert listeners.sockets[address].getsockname() == address
    listeners.close()
    assert held.fileno() == -1


def test_inherit_takes_listening_stream_sockets():
    # Two descriptors side by side the way systemd passes them (at 3 and 4 there; here at
    # 900 and 901, which nothing else in the test process uses), then take them.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert not _open(900) and not _open(901)
    os.dup2(listening.fileno(), 900)
    os.dup2(dgram.fileno(), 901)
    try:
        taken, problems = activation.inherit(2, ("web",), start=900)
        assert [(t.fd, t.name, t.address) for t, _ in taken] == [(900, "web", listening.getsockname())]
        assert not os.get_inheritable(900)
        assert problems and "descriptor 901" in problems[0] and "ListenStream" in problems[0]
        assert not _open(901)          # not a listening stream socket: closed
        for _, sock in taken:
            sock.close()
    finally:
        for fd in (900, 901):
            if _open(fd):
                os.close(fd)
        listening.close()
        dgram.close()


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------- journal priorities

@pytest.mark.parametrize("line,prio", [
    ("wasp: event 5002 Error: Application pool 'P' is being disabled\n", journal.ERR),
    ("wasp: event 5009 Warning: A process serving ...\n", journal.WARNING),
    ("wasp: event 9001 Information: wasp started\n", journal.INFO),
    ("config reload rejected: pools[0].name: ...\n", journal.ERR),
    ("wasp: cannot start front 0: EAGAIN\n", journal.ERR),
    ("wasp: SIGTERM: stopping gracefully\n", journal.NOTICE),
    ("wasp.front: cannot serve 0.0.0.0:80: EACCES\n", journal.ERR),
    ("2026-01-01 10:00:00,1 worker 3 [P] pid 9 WARNING app: slow\n", journal.WARNING),
    ("2026-01-01 10:00:00,1 worker 3 [P] pid 9 ERROR app: boom\n", journal.ERR),
    ("Traceback (most recent call last):\n", journal.ERR),
    ("hello from the app\n", journal.INFO),
])
def test_priorities(line, prio):
    assert journal.priority(line) == prio


def test_priority_stream_prefixes_each_line_once():
    out = io.StringIO()
    stream = journal.PriorityStream(out)
    stream.write("wasp: event 5002 Error: a\nplain ")
    stream.write("continued\n")
    stream.write("")
    assert out.getvalue() == "<3>wasp: event 5002 Error: a\n<6>plain continued\n"


def test_is_journal_compares_device_and_inode(tmp_path):
    path = tmp_path / "stream"
    with open(path, "w") as f:
        st = os.fstat(f.fileno())
        assert journal.is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, f.fileno())
        assert not journal.is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, f.fileno())
        assert not journal.is_journal({"JOURNAL_STREAM": "junk"}, f.fileno())
        assert not journal.is_journal({}, f.fileno())


# ---------------------------------------------------------------------- the unit

def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_service_unit(tmp_path):
    config = cfg(textwrap.dedent("""
        [server]
        shutdown_delay = "5s"
        """), pool='[pools.process_model]\nshutdown_time_limit = "30s"')
    config.server.run_dir, config.server.log_dir = "/srv/w/run", "/srv/w/logs"
    text = service.render_service(config, "/srv/w/wasp.toml", python="/opt/py/bin/python3")
    lines = _lines(text)
    assert "Type=notify" in lines and "NotifyAccess=main" in lines
    assert "ExecStart=/opt/py/bin/python3 -m wasp serve -c /srv/w/wasp.toml" in lines
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines
    assert "KillMode=mixed" in lines
    assert "TimeoutStopSec=50s" in lines          # 5 s lame duck + 30 s drain + margin
    assert "WatchdogSec=60s" in lines
    assert "NoNewPrivileges=yes" in lines and "ProtectSystem=strict" in lines
    assert "PrivateTmp=yes" in lines
    assert "ReadWritePaths=/srv/w/run /srv/w/logs" in lines
    assert not any(line.startswith("User=") for line in lines)
    assert not any(l.startswith("Delegate=") for l in lines)


def test_identity_switching_keeps_privileges():
    config = cfg(pool='[pools.identity]\nuser = "www-data"')
    lines = _lines(service.render_service(config, "/srv/wasp.toml"))
    assert "NoNewPrivileges=yes" not in lines and "RestrictSUIDSGID=yes" not in lines
    assert any("pools[0].identity.user" in line for line in lines)
    with pytest.raises(service.ServiceError, match=r"pools\[0\]\.identity\.user"):
        service.render_service(config, "/srv/wasp.toml", user="web")


def test_unit_words_are_escaped():
    assert service.quote("/srv/my site/wasp.toml") == '"/srv/my site/wasp.toml"'
    assert service.quote("/srv/100%/$HOME") == "/srv/100%%/$$HOME"
    with pytest.raises(service.ServiceError):
        service.render_service(cfg(), "/srv/wasp.toml", name="a b\nExecStartPre=/bin/sh")


def test_unix_socket_folder_is_writable_and_limits_delegate():
    config = cfg(bindings=["http/unix:/run/web/wasp.sock:"], pool='memory_limit = "1GB"')
    config.server.run_dir, config.server.log_dir = "/srv/run", "/srv/logs"
    lines = _lines(service.render_service(config, "/srv/wasp.toml", user="web", group="web",
                                          watchdog=0, read_write=["/srv/uploads"]))
    assert "ReadWritePaths=/srv/run /srv/logs /run/web /srv/uploads" in lines
    assert "User=web" in lines and "Group=web" in lines
    assert "Delegate=cpu memory" in lines
    assert not any(line.startswith("WatchdogSec") for line in lines)


def test_config_under_tmp_gets_no_private_tmp():
    config = cfg()
    config.server.run_dir, config.server.log_dir = "/tmp/site/run", "/tmp/site/logs"
    lines = _lines(service.render_service(config, "/tmp/site/wasp.toml"))
    assert "PrivateTmp=yes" not in lines


def test_socket_unit_lists_every_planned_address():
    config = cfg(bindings=["http/*:80:", "http/[::1]:443:", "http/unix:/run/web/wasp.sock:"])
    text = service.render_socket(config, "/srv/wasp.toml", name="shop", user="web")
    lines = _lines(text)
    assert [l for l in lines if l.startswith("ListenStream=")] == [
        "ListenStream=0.0.0.0:80", "ListenStream=[::1]:443", "ListenStream=/run/web/wasp.sock"]
    assert "BindIPv6Only=ipv6-only" in lines and "Service=shop.service" in lines
    assert "SocketUser=web" in lines
    assert "Requires=shop.socket" in _lines(service.render_service(config, "/srv/wasp.toml", name="shop", socket=True))


def test_inherit_reports_descriptors_that_are_not_open():
    # 3 + 5000 is far past anything open here; LISTEN_FDS that large is capped and summarised.
    taken, problems = activation.inherit(5000, (), start=200_000)
    for _, sock in taken:
        sock.detach()
    assert any("only the first 4096" in p for p in problems)
    assert any("not open" in p and "more" in p for p in problems)
    assert len(problems) < 4096


def test_priority_stream_passes_the_rest_to_the_real_stream():
    inner = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", line_buffering=True)
    stream = journal.PriorityStream(inner)
    assert stream.line_buffering is True and stream.encoding == "utf-8"
    stream.reconfigure(line_buffering=False)
    assert inner.line_buffering is False


def test_a_state_change_is_resent_when_the_queue_was_full(notify_socket):
    path, sock = notify_socket
    n = systemd.Notifier(systemd.SystemdEnvironment(notify_socket=path))
    sent = 0
    while True:                      # fill systemd's queue (nobody reads it)
        before = n.dropped
        n.send(WATCHDOG=1)
        if n.dropped > before:
            break
        sent += 1
    n.ready("up")                    # refused by the full queue: kept
    assert n.retry_due(5.0) == 5.0 + systemd.RETRY_INTERVAL
    n.send(STATUS="newer")           # nothing newer jumps ahead of it
    for _ in range(sent):
        assert sock.recv(4096) == b"WATCHDOG=1\n"
    n.tick(6.0)
    assert sock.recv(4096) == b"READY=1\nSTATUS=up\n"
    assert n.retry_due(6.0) is None
