"""Non-HTTP services (IIS's net.tcp / net.pipe bindings on a WAS listener adapter): the bindings
of a `protocol = "tcp"` pool, parsed to the addresses the manager binds. Pure; docs/services.md."""

from __future__ import annotations

import ipaddress

from wasp.config.model import UNIX_PREFIX, Config

TCP = "net.tcp/"
PIPE = "net.pipe/"


def parse_service_binding(text: str) -> tuple[str, int]:
    """"net.tcp/808:*" -> ("0.0.0.0", 808); "net.tcp/127.0.0.1:9000" -> ("127.0.0.1", 9000);
    "net.tcp/[::1]:9000" -> ("::1", 9000); "net.pipe/unix:/run/x.sock" -> ("unix:/run/x.sock", 0).
    ValueError says what is wrong."""
    if text.startswith(PIPE):
        rest = text[len(PIPE):]
        if not rest.startswith(UNIX_PREFIX) or not rest[len(UNIX_PREFIX):].startswith("/"):
            raise ValueError(f"\"{text}\": a net.pipe binding is \"net.pipe/unix:/absolute/path.sock\"")
        path = rest[len(UNIX_PREFIX):]
        if "\x00" in path or len(path.encode()) > 100:
            raise ValueError(f"\"{text}\": the socket path has a NUL or is longer than 100 bytes")
        return (rest, 0)
    if not text.startswith(TCP):
        raise ValueError(f"\"{text}\" is not a service binding: expected \"net.tcp/PORT:*\", "
                         "\"net.tcp/IP:PORT\" or \"net.pipe/unix:/path.sock\"")
    rest = text[len(TCP):]
    if rest.endswith(":*"):  # IIS: "808:*", the port on every address
        host, port_text = "0.0.0.0", rest[:-2]
    elif rest.startswith("["):
        end = rest.find("]:")
        if end < 0:
            raise ValueError(f"\"{text}\": an IPv6 address is written [addr]:port")
        host, port_text = rest[1:end], rest[end + 2:]
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            raise ValueError(f"\"{text}\": no port; expected \"net.tcp/PORT:*\" or \"net.tcp/IP:PORT\"")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"\"{text}\": {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"\"{text}\": {port_text!r} is not a port (0-65535)")
    return (host, int(port_text))


def plan(config: Config) -> dict[str, list[tuple[str, int]]]:
    """pool name -> the addresses its service listens on, for every tcp pool."""
    out: dict[str, list[tuple[str, int]]] = {}
    for pool in config.pools:
        if pool.protocol == "tcp":
            out[pool.name] = [parse_service_binding(b) for b in pool.service.bindings]
    return out
