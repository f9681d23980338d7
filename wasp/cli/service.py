"""`wasp install-service`: a systemd unit (and optionally a socket unit) for a config file.

    wasp install-service [-c FILE] [--name NAME] [--user USER] [--group GROUP] [--socket]
                         [--watchdog SECONDS] [--read-write DIR]... [--unit-dir DIR] [--print]

The unit is derived from the config (docs/systemd.md): Type=notify (the manager sends READY=1
when the pools' startup is done), ExecReload sends SIGHUP, KillMode=mixed (SIGTERM reaches the
manager only, which drains the fronts and workers itself; whatever is left when TimeoutStopSec,
computed from shutdown_delay and the pools' shutdown_time_limit, runs out gets SIGKILL), and
hardening that fits the config: NoNewPrivileges when no pool switches identity, ProtectSystem=
strict with ReadWritePaths for run_dir, log_dir and the Unix socket folders, PrivateTmp.
`--socket` adds NAME.socket with a ListenStream= per listening address, so systemd binds the
ports (below 1024 too) and the manager runs unprivileged with `--user`.

`render_service` and `render_socket` are pure: they take the config and return the unit text.
"""

from __future__ import annotations

import os
import pwd
import grp
import re
import sys

from wasp.config.bindings import parse_binding
from wasp.config.model import UNIX_PREFIX, Config

DEFAULT_UNIT_DIR = "/etc/systemd/system"
DEFAULT_WATCHDOG = 60.0
#: What TimeoutStopSec adds to the server's own drain deadline: the manager kills what is left
#: at its deadline and needs a moment to reap it and write its last events.
STOP_MARGIN = 15.0
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+")


class ServiceError(ValueError):
    """A unit that cannot be written for this config and these options."""


def register(sub) -> None:
    p = sub.add_parser("install-service", help="write a systemd unit for this config "
                                               "(Type=notify, socket activation, hardening)")
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default ./wasp.toml)")
    p.add_argument("--name", default="wasp", help="unit name (default wasp: wasp.service)")
    p.add_argument("--user", default="", help="run the manager as this user (User=); not with "
                   "pools that set identity.user, which need a root manager")
    p.add_argument("--group", default="", help="Group= (default: the user's primary group)")
    p.add_argument("--socket", action="store_true", help="also write NAME.socket: systemd "
                   "listens on the bindings and passes the sockets (ports below 1024 without root)")
    p.add_argument("--watchdog", type=float, default=DEFAULT_WATCHDOG, metavar="SECONDS",
                   help=f"WatchdogSec= (default {DEFAULT_WATCHDOG:g}; 0 = none)")
    p.add_argument("--read-write", action="append", default=[], metavar="DIR",
                   help="another folder the applications write to (ReadWritePaths=); repeat")
    p.add_argument("--unit-dir", default=DEFAULT_UNIT_DIR, metavar="DIR",
                   help=f"where the units go (default {DEFAULT_UNIT_DIR})")
    p.add_argument("--print", action="store_true", help="print the unit(s) instead of writing them")
    p.set_defaults(func=cmd_install_service)


# ---------------------------------------------------------------------- rendering (pure)

def quote(word: str) -> str:
    """One word of a unit file command line or path: `%` and `$` escaped, quoted when needed."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%$+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def identity_pools(config: Config) -> list[str]:
    return [f"pools[{i}].identity.user" for i, p in enumerate(config.pools) if p.identity.user]


def stop_timeout(config: Config) -> float:
    """The server's graceful-stop deadline (Supervisor.shutdown) plus STOP_MARGIN."""
    limits = [float(p.process_model.shutdown_time_limit) for p in config.pools] or [90.0]
    return float(config.server.shutdown_delay) + max(limits) + STOP_MARGIN


def unix_dirs(config: Config) -> list[str]:
    out = []
    for site in config.sites:
        for text in site.bindings:
            binding = parse_binding(text)
            if binding.ip.startswith(UNIX_PREFIX):
                folder = os.path.dirname(binding.ip[len(UNIX_PREFIX):])
                if folder and folder not in out:
                    out.append(folder)
    return out


def writable_dirs(config: Config, extra: list[str]) -> list[str]:
    out: list[str] = []
    logs = [s.log.directory for s in config.sites if s.log.directory]
    if config.log.central_w3c_log_file.directory:
        logs.append(config.log.central_w3c_log_file.directory)
    for path in [config.server.run_dir, config.server.log_dir, *logs, *unix_dirs(config), *extra]:
        path = os.path.abspath(path)
        if path not in out:
            out.append(path)
    return out


def _seconds(value: float) -> str:
    return f"{value:g}s"


def render_service(config: Config, config_file: str, *, name: str = "wasp", user: str = "",
                   group: str = "", socket: bool = False, watchdog: float = DEFAULT_WATCHDOG,
                   read_write: list[str] | None = None, python: str | None = None) -> str:
    if not _UNIT_NAME.fullmatch(name):
        raise ServiceError(f"--name: {name!r} is not a unit name (letters, digits, :_.-)")
    switching = identity_pools(config)
    if user and user != "root" and switching:
        raise ServiceError(f"{switching[0]} is set: workers switch identity, which needs a root "
                           "manager; leave out --user (or clear the pools' identity)")
    python = python or sys.executable
    config_file = os.path.abspath(config_file)
    exec_start = " ".join(quote(w) for w in (python, "-m", "wasp", "serve", "-c", config_file))
    unit = [
        "# Written by `wasp install-service`; see docs/systemd.md.",
        "[Unit]",
        f"Description=wasp web application server ({config_file})",
        "After=network-online.target" + (f" {name}.socket" if socket else ""),
        "Wants=network-online.target",
    ]
    if socket:
        unit.append(f"Requires={name}.socket")
    unit += [
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"WorkingDirectory={quote(os.path.dirname(config_file))}",
        "# SIGTERM to the manager only: it drains the fronts and the workers itself (server.",
        "# shutdown_delay, then each pool's shutdown_time_limit); SIGKILL to what is left after that.",
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={_seconds(stop_timeout(config))}",
        "TimeoutStartSec=" + _seconds(max([float(p.process_model.startup_time_limit) for p in config.pools
                                            if p.start_mode == "always_running"] or [0.0]) + 30.0),
        "Restart=on-failure",
        "RestartSec=2s",
    ]
    if watchdog > 0:
        unit.append(f"WatchdogSec={_seconds(watchdog)}")
    if user:
        unit.append(f"User={user}")
    if group:
        unit.append(f"Group={group}")
    unit.append("LimitNOFILE=65536")
    if any(p.memory_limit or p.cpu.limit for p in config.pools):
        unit.append("# Pools with memory_limit or cpu.limit get cgroups below the unit's own.")
        unit.append("Delegate=cpu memory")
    unit.append("# Hardening")
    if switching:
        unit.append(f"# No NoNewPrivileges=: {', '.join(switching)} switch the workers' identity.")
    else:
        unit.append("NoNewPrivileges=yes")
    unit += ["ProtectSystem=strict",
             "ReadWritePaths=" + " ".join(quote(d) for d in writable_dirs(config, read_write or [])),
             *_private_tmp(config_file, writable_dirs(config, read_write or [])),
             "ProtectKernelModules=yes",
             "ProtectKernelLogs=yes",
             "RestrictSUIDSGID=yes" if not switching else "# RestrictSUIDSGID= left off: identity switching",
             "LockPersonality=yes",
             "RestrictRealtime=yes",
             "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
             "",
             "[Install]",
             "WantedBy=multi-user.target",
             ""]
    return "\n".join(unit)


def _private_tmp(config_file: str, writable: list[str]) -> list[str]:
    """PrivateTmp=yes, unless the config or a folder wasp writes lives under /tmp or /var/tmp
    (the service would see an empty private /tmp instead)."""
    for path in [config_file, *writable]:
        if any(path == t or path.startswith(t + "/") for t in ("/tmp", "/var/tmp")):
            return [f"# No PrivateTmp=: {path} is under {path.split('/')[1] == 'tmp' and '/tmp' or '/var/tmp'}."]
    return ["PrivateTmp=yes"]


def listen_lines(config: Config) -> list[str]:
    """A ListenStream= per address the manager would bind (listeners.plan)."""
    from wasp.manager.listeners import plan  # the manager's plan: the same addresses, same order

    out = []
    for ip, port in plan(config):
        if ip.startswith(UNIX_PREFIX):
            out.append(f"ListenStream={ip[len(UNIX_PREFIX):]}")
        elif ":" in ip:
            out.append(f"ListenStream=[{ip}]:{port}")
        else:
            out.append(f"ListenStream={ip}:{port}")
    return out


def render_socket(config: Config, config_file: str, *, name: str = "wasp", user: str = "",
                  group: str = "") -> str:
    lines = listen_lines(config)
    if not lines:
        raise ServiceError("--socket: no started site has a binding, so there is nothing to listen on")
    unit = [
        "# Written by `wasp install-service --socket`; see docs/systemd.md.",
        "[Unit]",
        f"Description=wasp listening sockets ({os.path.abspath(config_file)})",
        "",
        "[Socket]",
        *lines,
        "# IPv6 addresses only IPv6, as wasp binds them; 0.0.0.0 lines take IPv4.",
        "BindIPv6Only=ipv6-only",
        "Backlog=2048",
        "NoDelay=yes",
        "SocketMode=0660",
    ]
    if user:
        unit.append(f"SocketUser={user}")
    if group:
        unit.append(f"SocketGroup={group}")
    unit += [f"Service={name}.service", "", "[Install]", "WantedBy=sockets.target", ""]
    return "\n".join(unit)


# ---------------------------------------------------------------------- the command

def cmd_install_service(args) -> int:
    """Exit 0 written (or printed), 2 bad usage or a config the unit cannot serve."""
    from wasp.cli import output

    try:
        return _install(args)
    except ServiceError as exc:
        print(output.error(str(exc)), file=sys.stderr)
        return 2


def _install(args) -> int:
    from wasp.config.load import load

    config_file = os.path.abspath(args.config or "wasp.toml")
    if not os.path.isfile(config_file):
        raise ServiceError(f"{config_file}: no such config file (give -c FILE)")
    config = load(config_file)  # a ConfigError is printed by main with every problem
    service = render_service(config, config_file, name=args.name, user=args.user,
                             group=args.group, socket=args.socket, watchdog=args.watchdog,
                             read_write=args.read_write)
    sock = render_socket(config, config_file, name=args.name, user=args.user,
                         group=args.group) if args.socket else None
    low = [p for ip, p in _tcp(config) if 0 < p < 1024]
    if low and args.user not in ("", "root") and not args.socket:
        print(f"wasp: warning: port {low[0]} is below 1024 and the manager runs as {args.user}: "
              "add --socket so systemd binds it", file=sys.stderr)
    if args.print:
        sys.stdout.write(f"# {args.name}.service\n" + service)
        if sock is not None:
            sys.stdout.write(f"\n# {args.name}.socket\n" + sock)
        return 0
    uid = gid = -1
    if args.user:
        try:
            entry = pwd.getpwnam(args.user)
        except KeyError:
            raise ServiceError(f"--user: no such user {args.user!r}") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if args.group:
        try:
            gid = grp.getgrnam(args.group).gr_gid
        except KeyError:
            raise ServiceError(f"--group: no such group {args.group!r}") from None
    # ProtectSystem=strict leaves only ReadWritePaths writable, and those must exist.
    for folder in writable_dirs(config, args.read_write):
        os.makedirs(folder, exist_ok=True)
        if uid >= 0 and os.geteuid() == 0:
            os.chown(folder, uid, gid)
    os.makedirs(args.unit_dir, exist_ok=True)
    written = [_write(os.path.join(args.unit_dir, f"{args.name}.service"), service)]
    if sock is not None:
        written.append(_write(os.path.join(args.unit_dir, f"{args.name}.socket"), sock))
    for path in written:
        print(f"wrote {path}")
    start = f"{args.name}.socket {args.name}.service" if sock is not None else f"{args.name}.service"
    print(f"next: systemctl daemon-reload && systemctl enable --now {start}")
    return 0


def _tcp(config: Config) -> list[tuple[str, int]]:
    out = []
    for site in config.sites:
        for text in site.bindings:
            binding = parse_binding(text)
            if not binding.ip.startswith(UNIX_PREFIX):
                out.append((binding.ip, binding.port))
    return out


def _write(path: str, text: str) -> str:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path

