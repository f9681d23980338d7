"""tcp pools (docs/services.md): binding syntax, config rules, how a service app is called."""

from __future__ import annotations

import asyncio

import pytest

from wasp.config.load import load_text
from wasp.config.services import parse_service_binding, plan
from wasp.errors import ConfigError
from wasp.worker.service import detect_kind

SITE = """
[[sites]]
name = "S"
id = 1
bindings = ["http/127.0.0.1:8080:"]
[[sites.applications]]
path = "/"
pool = "Web"
app = "m:app"
[[pools]]
name = "Web"
"""


@pytest.mark.parametrize("text, address", [
    ("net.tcp/808:*", ("0.0.0.0", 808)),
    ("net.tcp/127.0.0.1:9000", ("127.0.0.1", 9000)),
    ("net.tcp/[::1]:9000", ("::1", 9000)),
    ("net.pipe/unix:/run/wasp/echo.sock", ("unix:/run/wasp/echo.sock", 0)),
])
def test_service_bindings(text, address):
    assert parse_service_binding(text) == address


@pytest.mark.parametrize("text", [
    "808:*", "tcp/127.0.0.1:9000", "net.tcp/127.0.0.1", "net.tcp/localhost:80", "net.tcp/1.2.3.4:99999",
    "net.tcp/[::1]9000", "net.pipe//run/x.sock", "net.pipe/unix:relative.sock", "net.tcp/1.2.3.4:-1",
    "net.pipe/unix:/" + "x" * 200,
])
def test_bad_service_bindings_say_why(text):
    with pytest.raises(ValueError, match="binding|port|address|path|IPv6"):
        parse_service_binding(text)


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(text)
    return "\n".join(str(p) for p in info.value.problems)


def test_a_tcp_pool_loads_and_is_planned():
    config = load_text(SITE + """
[[pools]]
name = "Echo"
protocol = "tcp"
[pools.service]
bindings = ["net.tcp/127.0.0.1:9000", "net.pipe/unix:/tmp/e.sock"]
app = "echo:LineEcho"
kind = "protocol"
""")
    assert plan(config) == {"Echo": [("127.0.0.1", 9000), ("unix:/tmp/e.sock", 0)]}


def test_a_tcp_pool_alone_needs_no_site():
    config = load_text("""
[[pools]]
name = "Echo"
protocol = "tcp"
[pools.service]
bindings = ["net.tcp/808:*"]
app = "echo:LineEcho"
""")
    assert config.sites == [] and plan(config) == {"Echo": [("0.0.0.0", 808)]}


def test_tcp_pool_config_errors_name_the_key():
    text = problems(SITE + """
[[pools]]
name = "Echo"
protocol = "tcp"
[pools.service]
bindings = ["net.tcp/127.0.0.1:8080", "bogus", "net.tcp/127.0.0.1:8080"]
[[pools]]
name = "Other"
protocol = "tcp"
[[pools]]
name = "Half"
[pools.service]
bindings = ["net.tcp/127.0.0.1:9100"]
""")
    assert "pools[1].service.app" in text
    assert "pools[1].service.bindings[1]" in text
    assert "pools[1].service.bindings[2]" in text and "already used" in text
    assert "pools[2].service.bindings" in text and "pools[2].service.app" in text
    assert "pools[3].protocol" in text
    assert "sites[0].bindings[0]" in text  # 8080 is the site's port and the service's


def test_an_http_application_cannot_use_a_tcp_pool():
    text = problems(SITE.replace('pool = "Web"', 'pool = "Echo"') + """
[[pools]]
name = "Echo"
protocol = "tcp"
[pools.service]
bindings = ["net.tcp/127.0.0.1:9000"]
app = "m:f"
""")
    assert "sites[0].applications[0].pool" in text and "tcp pool" in text


def test_an_unknown_service_key_is_named():
    text = problems(SITE + """
[[pools]]
name = "Echo"
protocol = "tcp"
[pools.service]
bindings = ["net.tcp/127.0.0.1:9000"]
app = "m:f"
handler = "x"
""")
    assert "pools[1].service.handler" in text or "handler" in text


class Proto(asyncio.Protocol):
    pass


def no_args():
    return Proto()


async def stream(reader, writer):
    pass


def raw(sock, address):
    pass


def three(a, b, c):
    pass


def test_detect_kind():
    assert detect_kind(Proto) == "protocol"
    assert detect_kind(no_args) == "protocol"
    assert detect_kind(stream) == "stream"
    assert detect_kind(raw) == "socket"
    assert detect_kind(raw, "protocol") == "protocol"  # declared wins
    with pytest.raises(ValueError, match="cannot tell"):
        detect_kind(three)
    with pytest.raises(ValueError, match="not an asyncio protocol"):
        detect_kind(int)
    with pytest.raises(ValueError, match="not a callable"):
        detect_kind(42)
