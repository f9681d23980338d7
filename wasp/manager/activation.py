"""Socket activation (sd_listen_fds(3)): listening sockets systemd opened for the manager.

systemd passes them as descriptors 3, 4, ... (LISTEN_FDS of them, for LISTEN_PID), named by
LISTEN_FDNAMES (a .socket unit's FileDescriptorName=, by default the unit's own name). The
manager uses an inherited socket instead of binding the address itself, so a port below 1024
needs no root in wasp and connections that arrive while wasp (re)starts wait in systemd's socket.

Which planned address (listeners.plan) a socket serves, `match`:

* **named**: a socket whose name is a site's name serves that site's binding on the socket's
  port (for a Unix socket: the site's Unix binding), whatever IP the socket is bound to: a
  `*:80` binding may be served from `ListenStream=192.0.2.7:80` named after the site;
* **unnamed** (any other name, e.g. "wasp.socket" or "unknown"): by address, exactly, or a
  dual-stack `[::]:P` (BindIPv6Only=both, systemd's default for `ListenStream=P`) for the
  `0.0.0.0:P` of a `*:P` binding.

The front keys its listeners by the socket's own address and routes by each connection's local
address, so a socket always serves on its own port. A socket that matches nothing is reported
and closed (systemd keeps its own copy); an address no socket matched is bound as usual.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass

from wasp.config.bindings import parse_binding
from wasp.config.model import UNIX_PREFIX, Config
from wasp.manager.listeners import WILDCARD_V4, Address, _ip

SD_LISTEN_FDS_START = 3
#: More than this in LISTEN_FDS is not a real socket unit (wasp plans far fewer addresses).
MAX_INHERITED = 4096


@dataclass
class Inherited:
    fd: int
    name: str
    address: Address         # as listeners.plan spells it: ("unix:/path", 0) or (ip, port)
    dual_stack: bool = False  # an AF_INET6 socket that also takes IPv4 (IPV6_V6ONLY off)


def describe(sock: socket.socket) -> tuple[Address, bool]:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        path = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
        return (UNIX_PREFIX + path, 0), False
    dual = False
    if sock.family == socket.AF_INET6:
        dual = not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    return (str(name[0]), int(name[1])), dual


def inherit(count: int, names: tuple[str, ...], start: int = SD_LISTEN_FDS_START
            ) -> tuple[list[tuple[Inherited, socket.socket]], list[str]]:
    """Take descriptors 3..3+count-1 (`start` is for tests): the stream sockets that listen, each with its name and
    address, and a problem line for every other descriptor (closed). Every descriptor taken is
    made close-on-exec, so no front or worker inherits systemd's sockets by accident."""
    taken: list[tuple[Inherited, socket.socket]] = []
    problems: list[str] = []
    if count > MAX_INHERITED:
        problems.append(f"socket activation: LISTEN_FDS={count}; only the first {MAX_INHERITED} are looked at")
        count = MAX_INHERITED
    missing = []
    for i in range(count):
        fd = start + i
        name = names[i] if i < len(names) else ""
        try:
            os.set_inheritable(fd, False)
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            if exc.errno == errno.EBADF:
                missing.append(fd)
            else:
                problems.append(f"socket activation: descriptor {fd} ({name or 'unnamed'}): {exc.strerror or exc}")
            continue
        if not stat.S_ISSOCK(mode):
            problems.append(f"socket activation: descriptor {fd} ({name or 'unnamed'}) is not a socket; ignored")
            os.close(fd)
            continue
        sock = socket.socket(fileno=fd)
        try:
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
            address, dual = describe(sock)
        except OSError as exc:
            problems.append(f"socket activation: descriptor {fd} ({name or 'unnamed'}): {exc.strerror or exc}")
            sock.close()
            continue
        if kind != socket.SOCK_STREAM or not listening or sock.family not in (
                socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
            problems.append(f"socket activation: descriptor {fd} ({name or 'unnamed'}) is not a "
                            "listening TCP or Unix stream socket (ListenStream=); ignored")
            sock.close()
            continue
        sock.setblocking(False)
        taken.append((Inherited(fd, name, address, dual), sock))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        problems.append(f"socket activation: LISTEN_FDS names descriptors that are not open: {shown}")
    return taken, problems


def _site_addresses(config: Config) -> dict[str, list[Address]]:
    """Each started site's planned addresses (as plan() spells them), by site name."""
    out: dict[str, list[Address]] = {}
    for site in config.sites:
        if not site.server_auto_start:
            continue
        for text in site.bindings:
            binding = parse_binding(text)
            if binding.ip.startswith(UNIX_PREFIX):
                address = (binding.ip, 0)
            else:
                address = (WILDCARD_V4 if binding.ip in ("*", "") else _ip(binding.ip), binding.port)
            out.setdefault(site.name, []).append(address)
    return out


def _planned_for(address: Address, planned: list[Address]) -> Address | None:
    """plan() folds a port's specific IPv4 addresses into its wildcard: follow that."""
    if address in planned:
        return address
    if not address[0].startswith(UNIX_PREFIX) and ":" not in address[0]:
        wild = (WILDCARD_V4, address[1])
        if wild in planned:
            return wild
    return None


def match(config: Config, planned: list[Address], inherited: list[Inherited]) -> tuple[dict[Address, int], list[Inherited]]:
    """(planned address -> index in `inherited`, the sockets that serve nothing). Sans I/O."""
    by_site = _site_addresses(config)
    out: dict[Address, int] = {}
    unused: list[Inherited] = []
    for index, item in enumerate(inherited):
        target: Address | None = None
        ip, port = item.address
        if item.name in by_site:
            for address in by_site[item.name]:
                unix = address[0].startswith(UNIX_PREFIX)
                if unix == ip.startswith(UNIX_PREFIX) and (unix or address[1] == port):
                    target = _planned_for(address, planned)
                    if target is not None and target not in out:
                        break
                    target = None
        if target is None:
            if item.address in planned:
                target = item.address
            elif item.dual_stack and ip in ("::", "::0") and (WILDCARD_V4, port) in planned:
                target = (WILDCARD_V4, port)
        if target is None or target in out:
            unused.append(item)
        else:
            out[target] = index
    return out, unused
