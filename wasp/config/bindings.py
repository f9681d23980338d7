"""Site bindings in appcmd's form: "protocol/IP:PORT:HOST".

Examples: "http/*:8080:" (any address, any host), "http/127.0.0.1:8080:api.example.test",
"http/[::1]:8080:". IP "*" means every address; an empty HOST means any Host header. The host is
kept lower-case because Host headers compare case-insensitively.

A Unix socket takes the place of IP:PORT: "http/unix:/run/wasp/app.sock:" (an absolute path;
HOST after the last ":", empty for any host). Its Binding has ip "unix:/run/wasp/app.sock" and
port 0.
"""

from __future__ import annotations

import ipaddress
import re

from wasp.config.model import UNIX_PREFIX, Binding, SiteBinding

_FORM = "protocol/IP:PORT:HOST, e.g. \"http/*:8080:\" or \"http/127.0.0.1:80:www.example.test\""
#: sun_path holds 108 bytes with the terminating NUL.
MAX_UNIX_PATH = 107
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")


def binding_text(entry: str | SiteBinding) -> str:
    """The appcmd string of a binding entry, written as a string or as a table."""
    return entry.binding if isinstance(entry, SiteBinding) else entry


def parse_binding(text: str | SiteBinding) -> Binding:
    """Parse one binding (a string, or the `binding` of a table); ValueError saying what is wrong
    and what the form is."""
    if isinstance(text, SiteBinding):
        text = text.binding
    if not isinstance(text, str):
        raise ValueError(f"a binding is a string in the form {_FORM}")
    protocol, slash, info = text.partition("/")
    if not slash:
        raise ValueError(f"binding \"{text}\" has no protocol; expected {_FORM}")
    protocol = protocol.strip().lower()
    if protocol not in ("http", "https"):
        raise ValueError(f"binding \"{text}\": unknown protocol \"{protocol}\"; expected \"http\" or \"https\"")
    if info.startswith(UNIX_PREFIX):
        if protocol == "https":
            raise ValueError(f"binding \"{text}\": https is served on TCP ports only; bind the Unix socket with http")
        return _parse_unix(text, protocol, info[len(UNIX_PREFIX):])
    ip, rest = _split_ip(text, info)
    port_text, colon, host = rest.partition(":")
    if not colon:
        raise ValueError(f"binding \"{text}\" must end with \":HOST\" (\":\" alone for any host); expected {_FORM}")
    port = _parse_port(text, port_text)
    host = _parse_host(text, host)
    return Binding(protocol=protocol, ip=ip, port=port, host=host)


def _parse_unix(text: str, protocol: str, rest: str) -> Binding:
    path, colon, host = rest.rpartition(":")
    if not colon:
        raise ValueError(f"binding \"{text}\" must end with \":HOST\" (\":\" alone for any host), "
                         "e.g. \"http/unix:/run/wasp/app.sock:\"")
    if not path.startswith("/"):
        raise ValueError(f"binding \"{text}\": the Unix socket path \"{path}\" must be absolute")
    if "\0" in path or len(path.encode("utf-8", "surrogateescape")) > MAX_UNIX_PATH:
        raise ValueError(f"binding \"{text}\": a Unix socket path has at most {MAX_UNIX_PATH} bytes and no NUL")
    if path.endswith("/"):
        raise ValueError(f"binding \"{text}\": \"{path}\" is a folder, not a socket path")
    return Binding(protocol=protocol, ip=UNIX_PREFIX + path, port=0, host=_parse_host(text, host))


def _split_ip(text: str, info: str) -> tuple[str, str]:
    """The IP part and what follows its ":"."""
    if info.startswith("["):
        end = info.find("]")
        if end < 0:
            raise ValueError(f"binding \"{text}\": IPv6 address has no closing \"]\"")
        literal, rest = info[1:end], info[end + 1:]
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            raise ValueError(f"binding \"{text}\": \"{literal}\" is not an IPv6 address") from None
        if not rest.startswith(":"):
            raise ValueError(f"binding \"{text}\": expected \":PORT\" after the IPv6 address; expected {_FORM}")
        return address.compressed, rest[1:]
    if info.count(":") > 2:
        raise ValueError(f"binding \"{text}\": put an IPv6 address in brackets, e.g. \"http/[::1]:8080:\"")
    ip, colon, rest = info.partition(":")
    if not colon:
        raise ValueError(f"binding \"{text}\" has no port; expected {_FORM}")
    if ip == "*":
        return ip, rest
    if ip == "":
        raise ValueError(f"binding \"{text}\" has no IP address; use \"*\" for every address")
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        raise ValueError(f"binding \"{text}\": \"{ip}\" is not \"*\" or an IP address") from None
    return str(address), rest


def _parse_port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not port_text.isascii():
        raise ValueError(f"binding \"{text}\": port \"{port_text}\" is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"binding \"{text}\": port {port} is outside 1-65535")
    return port


def _parse_host(text: str, host: str) -> str:
    host = host.lower()
    if host == "":
        return host
    if "*" in host:
        raise ValueError(f"binding \"{text}\": wildcard host names are not supported; leave HOST empty for any host")
    name = host[:-1] if host.endswith(".") else host
    if not name or not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"binding \"{text}\": \"{host}\" is not a valid host name")
    return name
