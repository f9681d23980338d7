"""The listening sockets: which to bind (a pure plan) and the set the manager holds open.

The manager owns these sockets for its whole life, so a port never closes while the front
restarts: connections that arrive meanwhile wait in the kernel's backlog.
"""

from __future__ import annotations

import errno
import os
import socket
import stat

from wasp.common.unixsock import answers
from wasp.config.bindings import parse_binding
from wasp.config.model import UNIX_PREFIX, Config

BACKLOG = 2048
WILDCARD_V4 = "0.0.0.0"
#: A Unix socket binding's file: owner and group may connect (put a proxy such as nginx in the
#: group), others may not.
UNIX_MODE = 0o660

Address = tuple[str, int]


def _ip(text: str) -> str:
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def plan(config: Config) -> list[Address]:
    """One address per distinct ip:port of the started sites' bindings, in config order.

    A port with a `*` binding gets only 0.0.0.0:port; the front tells the sites apart by the
    connection's local address. Sites with server_auto_start = false are not listened for.
    """
    wanted: list[Address] = []
    for site in config.sites:
        if not site.server_auto_start:
            continue
        for text in site.bindings:
            binding = parse_binding(text)
            if binding.ip.startswith(UNIX_PREFIX):
                if (binding.ip, 0) not in wanted:
                    wanted.append((binding.ip, 0))
                continue
            ip = WILDCARD_V4 if binding.ip in ("*", "") else _ip(binding.ip)
            wanted.append((ip, binding.port))
    wildcard_ports = {port for ip, port in wanted if ip == WILDCARD_V4}
    out: list[Address] = []
    for ip, port in wanted:
        if port in wildcard_ports and ip != WILDCARD_V4 and ":" not in ip:
            ip = WILDCARD_V4
        if (ip, port) not in out:
            out.append((ip, port))
    return out


def bind_unix(path: str) -> socket.socket:
    """Listen on a Unix socket at `path`, mode UNIX_MODE. A socket file left by a server that is
    gone is replaced; one something still listens on is EADDRINUSE; any other file is left alone
    (EEXIST): wasp never deletes what is not a socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        if answers(path):
            raise OSError(errno.EADDRINUSE, f"something listens on {path}")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~UNIX_MODE)  # never, even for an instant, wider than UNIX_MODE
    try:
        sock.bind(path)
        os.chmod(path, UNIX_MODE)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock


def bind(address: Address) -> socket.socket:
    ip, port = address
    if ip.startswith(UNIX_PREFIX):
        return bind_unix(ip[len(UNIX_PREFIX):])
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((ip, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class BindError(Exception):
    def __init__(self, address: Address, error: OSError):
        self.address = address
        self.error = error
        where = address[0] if address[0].startswith(UNIX_PREFIX) else f"{address[0]}:{address[1]}"
        super().__init__(f"cannot listen on {where}: {error.strerror or error}")


class ListenerSet:
    """The sockets the manager holds, keyed by address."""

    def __init__(self) -> None:
        self.sockets: dict[Address, socket.socket] = {}
        self.files: dict[Address, tuple[int, int] | None] = {}  # a Unix socket's file (dev, ino)
        #: Sockets systemd passed (activation.py), by the planned address each serves: used
        #: instead of binding that address, for the manager's whole life (a reload that drops
        #: the address and a later one that brings it back get the same socket).
        self.inherited: dict[Address, socket.socket] = {}

    def adopt(self, sockets: dict[Address, socket.socket]) -> None:
        self.inherited.update(sockets)

    def _open(self, address: Address) -> socket.socket:
        inherited = self.inherited.get(address)
        if inherited is not None:
            return inherited.dup()
        return bind(address)

    def apply(self, addresses: list[Address]) -> None:
        """Hold exactly these addresses: keep the ones already open, bind the new ones, close the
        rest. On a bind failure nothing changes (new sockets are closed) and BindError is raised.
        """
        new: dict[Address, socket.socket] = {}
        removed = [a for a in self.sockets if a not in addresses]
        try:
            for address in addresses:
                if address in self.sockets:
                    continue
                try:
                    new[address] = self._open(address)
                except OSError as exc:
                    # 0.0.0.0:P replacing 127.0.0.1:P (or the reverse) clashes with the socket
                    # it replaces: close those of that port and try once more.
                    clashing = [a for a in removed if a[1] == address[1] and a in self.sockets
                                and not a[0].startswith(UNIX_PREFIX)]
                    if exc.errno != errno.EADDRINUSE or not clashing:
                        raise BindError(address, exc) from exc
                    for a in clashing:
                        self.sockets.pop(a).close()
                    try:
                        new[address] = bind(address)
                    except OSError as exc2:
                        raise BindError(address, exc2) from exc2
        except BindError:
            for sock in new.values():
                sock.close()
            raise
        for address in removed:
            sock = self.sockets.pop(address, None)
            if sock is not None:
                _close(address, sock, self.files.pop(address, None))
        self.sockets.update(new)
        # systemd's Unix socket files are systemd's: never unlinked by wasp.
        self.files.update((a, _file_id(a)) for a in new
                          if a[0].startswith(UNIX_PREFIX) and a not in self.inherited)
        # Keep the config's order: the front receives them as a list.
        self.sockets = {a: self.sockets[a] for a in addresses}

    def ordered(self) -> tuple[list[list], list[int]]:
        """(listeners for the `config` message, their descriptors) in the same order."""
        addresses = list(self.sockets)
        return [[ip, port] for ip, port in addresses], [self.sockets[a].fileno() for a in addresses]

    def close(self) -> None:
        for address, sock in self.sockets.items():
            _close(address, sock, self.files.get(address))
        self.sockets.clear()
        self.files.clear()
        for sock in self.inherited.values():
            sock.close()
        self.inherited.clear()


def _file_id(address: Address) -> tuple[int, int] | None:
    try:
        st = os.lstat(address[0][len(UNIX_PREFIX):])
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _close(address: Address, sock: socket.socket, file_id: tuple[int, int] | None) -> None:
    """Close a listener; a Unix socket's file goes too, when it is still the one we bound (not
    one another server has put there since)."""
    if address[0].startswith(UNIX_PREFIX) and file_id is not None and _file_id(address) == file_id:
        try:
            os.unlink(address[0][len(UNIX_PREFIX):])
        except OSError:
            pass
    sock.close()
