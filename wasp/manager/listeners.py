"""The listening sockets: which to bind (a pure plan) and the set the manager holds open.

The manager owns these sockets for its whole life, so a port never closes while the front
restarts: connections that arrive meanwhile wait in the kernel's backlog.
"""

from __future__ import annotations

import errno
import socket

from wasp.config.bindings import parse_binding
from wasp.config.model import Config

BACKLOG = 2048
WILDCARD_V4 = "0.0.0.0"

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


def bind(address: Address) -> socket.socket:
    ip, port = address
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
        super().__init__(f"cannot listen on {address[0]}:{address[1]}: {error.strerror or error}")


class ListenerSet:
    """The sockets the manager holds, keyed by address."""

    def __init__(self) -> None:
        self.sockets: dict[Address, socket.socket] = {}

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
                    new[address] = bind(address)
                except OSError as exc:
                    # 0.0.0.0:P replacing 127.0.0.1:P (or the reverse) clashes with the socket
                    # it replaces: close those of that port and try once more.
                    clashing = [a for a in removed if a[1] == address[1] and a in self.sockets]
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
                sock.close()
        self.sockets.update(new)
        # Keep the config's order: the front receives them as a list.
        self.sockets = {a: self.sockets[a] for a in addresses}

    def ordered(self) -> tuple[list[list], list[int]]:
        """(listeners for the `config` message, their descriptors) in the same order."""
        addresses = list(self.sockets)
        return [[ip, port] for ip, port in addresses], [self.sockets[a].fileno() for a in addresses]

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()
