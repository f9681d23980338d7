"""`wasp serve APP_SPEC -b ...`: the listen addresses people type, turned into the IP:PORT part of
an appcmd binding ("http/IP:PORT:"). Pure functions.

    8000             127.0.0.1:8000 (only this machine)
    localhost:8000   127.0.0.1:8000
    :8000, *:8000    every IPv4 address (binding "*")
    0.0.0.0:8000     every IPv4 address
    [::]:8000        every IPv6 address; [::1]:8000 IPv6 loopback
    unix:PATH        a Unix socket (made absolute; mode 0660, see wasp/manager/listeners.py)
"""

from __future__ import annotations

import ipaddress
import os

from wasp.config.bindings import MAX_UNIX_PATH

FORMS = "HOST:PORT, :PORT, PORT or unix:PATH"


class BindError(ValueError):
    """A -b value that is none of the forms; the message is in the user's terms."""


def _port(text: str, port: str) -> int:
    if not (port.isascii() and port.isdigit()):
        raise BindError(f"-b: {text!r} is not {FORMS}")
    value = int(port)
    if not 1 <= value <= 65535:
        raise BindError(f"-b: {text!r}: port {value} is outside 1-65535")
    return value


def parse_bind(text: str) -> str:
    """The "IP:PORT" of a binding for one -b value; BindError naming the forms."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path or path.endswith("/"):
            raise BindError(f"-b: {text!r}: unix:PATH needs the path of the socket file")
        path = os.path.abspath(path)
        if "\0" in path or len(path.encode("utf-8", "surrogateescape")) > MAX_UNIX_PATH:
            raise BindError(f"-b: {text!r}: a Unix socket path has at most {MAX_UNIX_PATH} bytes")
        return f"unix:{path}"
    if text.isascii() and text.isdigit():
        return f"127.0.0.1:{_port(text, text)}"
    if text.startswith("["):
        literal, close, rest = text[1:].partition("]")
        if not close or not rest.startswith(":"):
            raise BindError(f"-b: {text!r} is not {FORMS} (an IPv6 address is written [ADDRESS]:PORT)")
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            raise BindError(f"-b: {text!r}: {literal!r} is not an IPv6 address") from None
        return f"[{address.compressed}]:{_port(text, rest[1:])}"
    host, colon, port = text.rpartition(":")
    if not colon:
        raise BindError(f"-b: {text!r} is not {FORMS}")
    if ":" in host:
        raise BindError(f"-b: {text!r}: put an IPv6 address in brackets, e.g. [::1]:{port}")
    number = _port(text, port)
    if host in ("", "*"):
        return f"*:{number}"
    if host.lower() == "localhost":
        return f"127.0.0.1:{number}"
    try:
        return f"{ipaddress.IPv4Address(host)}:{number}"
    except ValueError:
        raise BindError(f"-b: {text!r} is not {FORMS} ({host!r} is not localhost, * or an IP "
                        "address; wasp does not look up host names)") from None
