"""ARR's farms in a worker (wasp/worker/farms.py): balancing, affinity, taking servers out and
back in, and the proxy handler's small helpers; config of web_farms and the proxy section."""

import time

import pytest

from wasp.config import model
from wasp.config.load import load_text
from wasp.errors import ConfigError
from wasp.worker.farms import Farm, Farms, parse_status_match, split_host, split_url
from wasp.worker.modules.reverse_proxy import _cookie, origin_form


def farm(algorithm="WeightedRoundRobin", weights=(100, 100), probe="", use_cookie=False):
    return Farm(model.WebFarm(
        name="f", servers=[model.FarmServer(address=f"10.0.0.{i}", http_port=8000 + i, weight=w)
                           for i, w in enumerate(weights)],
        application_request_routing=model.FarmRouting(
            load_balancing=model.FarmLoadBalancing(algorithm=algorithm),
            affinity=model.FarmAffinity(use_cookie=use_cookie),
            health_check=model.FarmHealthCheck(url=probe, interval=model.Duration(30)))))


def picks(f, n, **kw):
    return [f.pick("http", b"/x", None, **kw).port for _ in range(n)]


def test_round_robin_rotates_and_weights_share_smoothly():
    assert picks(farm(), 6) == [8000, 8001] * 3
    got = picks(farm(weights=(300, 100)), 8)
    assert got.count(8000) == 6 and got.count(8001) == 2
    assert got[:4] != [8000, 8000, 8000, 8001][::-1]  # smooth: the light one is not starved to the end
    assert picks(farm(weights=(0, 100)), 3) == [8001] * 3


def test_least_requests_and_request_hash():
    f = farm("LeastRequests")
    a, b = f.servers("http")
    a.active = 2
    assert picks(f, 3) == [8001] * 3
    h = farm("RequestHash", weights=(100, 100, 100))
    assert len({h.pick("http", b"/same", None).port for _ in range(5)}) == 1


def test_affinity_cookie_names_a_server_until_it_is_out():
    f = farm(use_cookie=True)
    a, b = f.servers("http")
    assert f.pick("http", b"/", b.cookie.encode()) is b
    assert f.pick("http", b"/", b"nonsense").port in (8000, 8001)
    b.mark_down("test")
    assert f.pick("http", b"/", b.cookie.encode()) is a


def test_in_band_failure_without_probe_comes_back_after_the_interval():
    f = farm()
    a, b = f.servers("http")
    a.mark_down("refused")
    assert picks(f, 3) == [8001] * 3
    a.down_until = time.monotonic() - 1
    assert 8000 in picks(f, 3)


def test_with_a_probe_a_failed_server_waits_for_a_passing_check():
    f = farm(probe="http://f/health")
    a, b = f.servers("http")
    a.mark_down("refused")
    assert not a.healthy
    a.down_until = 0
    assert picks(f, 2) == [8001] * 2
    a.mark_up()
    assert 8000 in picks(f, 2)


def test_no_server_is_none_and_exclude_skips_tried():
    f = farm()
    a, b = f.servers("http")
    assert f.pick("http", b"/", None, exclude=[a]) is b
    assert f.pick("http", b"/", None, exclude=[a, b]) is None
    off = Farm(model.WebFarm(name="o", enabled=False, servers=[model.FarmServer(address="h")]))
    assert off.pick("http", b"/", None) is None


def test_helpers():
    assert parse_status_match("200-399, 418") == [(200, 399), (418, 418)]
    assert split_url("http://farm1:81/a/b?q") == ("http", "farm1:81", b"/a/b?q")
    assert split_url("https://h") == ("https", "h", b"/")
    assert split_host("h", "https") == ("h", 443) and split_host("[::1]:8080", "http") == ("::1", 8080)
    assert origin_form(b"/p?q") == b"/p?q" and origin_form(b"http://evil/p?q") == b"/p?q"
    assert origin_form(b"http://evil?q") == b"/?q" and origin_form(b"*") == b"/"
    assert _cookie([(b"Cookie", b"a=1; ARRAffinity=xyz")], b"ARRAffinity") == b"xyz"
    farms = Farms()
    assert farms.direct_server("http", "127.0.0.1:9") is farms.direct_server("http", "127.0.0.1:9")
    assert farms.direct_server("http", "b").host_header == b"b"


BASE = ('[[pools]]\nname = "P"\n[[sites]]\nname = "S"\nid = 1\nbindings = ["http/*:8080:"]\n'
        '[[sites.applications]]\npath = "/"\npool = "P"\nphysical_path = "."\n')


def test_web_farms_config_is_strict():
    config = load_text(BASE + '[[web_farms]]\nname = "farm1"\n[[web_farms.servers]]\naddress = "10.0.0.1"\n'
                              '[proxy]\nenabled = true\nurl = "http://farm1"\n')
    assert config.web_farms[0].servers[0].http_port == 80
    assert config.web_farms[0].application_request_routing.affinity.cookie_name == "ARRAffinity"
    bad = [
        ('[[web_farms]]\nname = "a"\n[[web_farms]]\nname = "A"\n', "web_farms[1].name"),
        ('[[web_farms]]\nname = "a"\n[[web_farms.servers]]\naddress = "h"\nweight = -1\n', "web_farms[0].servers[0].weight"),
        ('[[web_farms]]\nname = "a"\nbogus = 1\n', "web_farms[0].bogus"),
        ('[[web_farms]]\nname = "a"\n[web_farms.application_request_routing.health_check]\nurl = "ftp://x"\n',
         "web_farms[0].application_request_routing.health_check.url"),
        ('[[web_farms]]\nname = "a"\n[web_farms.application_request_routing.load_balancing]\nalgorithm = "Random"\n',
         "web_farms[0].application_request_routing.load_balancing.algorithm"),
        ('[proxy]\nurl = "http://user@evil/"\n', "proxy.url"),
        ('[proxy]\nurl = "gopher://x"\n', "proxy.url"),
        ('[proxy]\nx_forwarded_for_header_name = "X Bad"\n', "proxy.x_forwarded_for_header_name"),
    ]
    for text, path in bad:
        with pytest.raises(ConfigError) as info:
            load_text(BASE + text)
        assert path in str(info.value), (path, str(info.value))


def test_handler_map_sends_a_proxy_url_to_reverse_proxy():
    from wasp.config.sections.handlers import Handlers
    from wasp.errors import NotFound
    from wasp.worker.handlers import HandlerMap

    class Ctx:
        proxy_url = "http://farm1/x"
        handler = None
    proxy = object()
    ctx = Ctx()
    HandlerMap(Handlers(), {"reverse_proxy": proxy}, None).map(ctx)
    assert ctx.handler is proxy
    with pytest.raises(NotFound) as info:  # a rewrite to a URL, but no reverse proxy here: 404.4
        HandlerMap(Handlers(), {}, None).map(Ctx())
    assert info.value.substatus == 4


def _forwarding_head(proxied: bool, client=("203.0.113.7", 5555), **proxy):
    from types import SimpleNamespace

    from wasp.config.sections.proxy import Proxy
    from wasp.wire.frames import RequestHead
    from wasp.worker.modules.reverse_proxy import ReverseProxyModule
    head = RequestHead(app="1/", method="GET", target=b"/a?b", path=b"/a", query=b"b", version="1.1",
                       headers=[(b"Host", b"www.test"), (b"X-Forwarded-For", b"198.51.100.1, 10.0.0.2"),
                                (b"Forwarded", b"for=198.51.100.1"), (b"X-Original-URL", b"/spoof")],
                       client=client, server=("127.0.0.1", 80), scheme="https", proxied=proxied)
    ctx = SimpleNamespace(head=head)
    farms = Farms()
    server = farms.direct_server("http", "10.1.1.1:8000")
    module = ReverseProxyModule.__new__(ReverseProxyModule)
    return module._head(ctx, Proxy(enabled=True, **proxy), server, "10.1.1.1:8000", b"/a?b", "none", -1, False)


def test_forwarding_headers_replace_untrusted_and_keep_a_trusted_chain():
    untrusted = _forwarding_head(False)
    assert b"X-Forwarded-For: 203.0.113.7:5555\r\n" in untrusted and b"198.51.100.1" not in untrusted
    assert b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: www.test\r\n" in untrusted
    assert b'Forwarded: for="203.0.113.7:5555";proto=https;host="www.test"\r\n' in untrusted
    assert b"X-Original-URL: /a?b\r\n" in untrusted and b"/spoof" not in untrusted
    assert b"Host: 10.1.1.1:8000\r\n" in untrusted
    trusted = _forwarding_head(True)
    assert b"X-Forwarded-For: 198.51.100.1, 10.0.0.2\r\n" in trusted
    assert b"Forwarded: for=198.51.100.1, for=" in trusted
    v6 = _forwarding_head(False, client=("2001:db8::1", 0), include_port_in_x_forwarded_for=False,
                          x_forwarded_for_header_name="X-Client-IP", preserve_host_header=True, forwarded=False)
    assert b"X-Client-IP: [2001:db8::1]\r\n" in v6 and b"X-Forwarded-For" not in v6
    assert b"Host: www.test\r\n" in v6 and b"Forwarded:" not in v6
