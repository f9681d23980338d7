"""wasp.front.routing: binding precedence (HTTP.sys) and longest application path (IIS)."""

from __future__ import annotations

import pytest

from wasp.config import model
from wasp.front.routing import Router
from wasp.wire.http import InvalidHostname


def site(site_id, bindings, apps=("/",), **kw):
    return model.Site(name=f"s{site_id}", id=site_id, bindings=list(bindings),
                      applications=[model.Application(path=p, pool=f"pool{site_id}") for p in apps], **kw)


def router(*sites):
    return Router(model.Config(pools=[model.Pool(name=f"pool{s.id}") for s in sites], sites=list(sites)))


def site_id(r, ip, port, host):
    return r.table(ip, port).site_for(host).id


@pytest.fixture
def four():
    """One site per kind of binding on port 80."""
    return router(
        site(1, ["http/*:80:"]),                        # any IP, any host
        site(2, ["http/10.0.0.1:80:"]),                 # exact IP, any host
        site(3, ["http/*:80:www.example.test"]),        # any IP, exact host
        site(4, ["http/10.0.0.1:80:www.example.test"]),  # exact IP, exact host
    )


def test_exact_ip_and_host_beats_everything(four):
    assert site_id(four, "10.0.0.1", 80, b"www.example.test") == 4


def test_wildcard_ip_with_exact_host_beats_exact_ip_with_any_host(four):
    assert site_id(four, "10.0.0.2", 80, b"www.example.test") == 3
    r = router(site(2, ["http/10.0.0.1:80:"]), site(3, ["http/*:80:www.example.test"]))
    assert site_id(r, "10.0.0.1", 80, b"www.example.test") == 3


def test_exact_ip_any_host_beats_wildcard_any(four):
    assert site_id(four, "10.0.0.1", 80, b"other.test") == 2


def test_wildcard_any_is_the_last_resort(four):
    assert site_id(four, "10.0.0.2", 80, b"other.test") == 1
    assert site_id(four, "10.0.0.2", 80, None) == 1


def test_host_compares_case_insensitively_without_port(four):
    assert site_id(four, "10.0.0.1", 80, b"WWW.Example.Test:80") == 4
    assert site_id(four, "10.0.0.2", 80, b"www.example.test:8080") == 3


def test_other_port_matches_nothing(four):
    assert four.table("10.0.0.1", 81).site_for(b"www.example.test") is None
    with pytest.raises(InvalidHostname):
        four.route("10.0.0.1", 81, b"www.example.test", b"/")


def test_no_any_host_binding_means_unknown_hosts_are_invalid_hostname():
    r = router(site(1, ["http/127.0.0.1:80:a.test"]))
    assert site_id(r, "127.0.0.1", 80, b"a.test") == 1
    assert r.table("127.0.0.1", 80).site_for(b"b.test") is None
    with pytest.raises(InvalidHostname):
        r.route("127.0.0.1", 80, b"b.test", b"/")


def test_malformed_host_is_invalid_hostname(four):
    with pytest.raises(InvalidHostname):
        four.table("10.0.0.1", 80).site_for(b"bad host")


def test_wildcard_socket_addresses_normalise():
    r = router(site(1, ["http/127.0.0.1:80:"]), site(2, ["http/[::1]:80:"]))
    assert site_id(r, "127.0.0.1", 80, b"x") == 1
    assert site_id(r, "::ffff:127.0.0.1", 80, b"x") == 1
    assert site_id(r, "::1", 80, b"x") == 2
    assert r.table("0.0.0.0", 80).site_for(b"x") is None


def test_stopped_sites_are_not_routed():
    r = router(site(1, ["http/*:80:"], server_auto_start=False), site(2, ["http/*:80:b.test"]))
    assert r.table("1.2.3.4", 80).site_for(b"a.test") is None
    assert site_id(r, "1.2.3.4", 80, b"b.test") == 2


def test_host_lookups_are_cached_and_bounded(four):
    table = four.table("10.0.0.1", 80)
    for i in range(5000):
        table.site_for(b"h%d.test" % i)
    assert len(table._cache) <= 4096


# ---- applications ----

@pytest.fixture
def apps():
    return router(site(1, ["http/*:80:"], apps=("/", "/api", "/api/v2", "/Shop")))


@pytest.mark.parametrize("path, app", [
    (b"/", "/"),
    (b"/index.html", "/"),
    (b"/api", "/api"),
    (b"/api/", "/api"),
    (b"/api/x", "/api"),
    (b"/apix", "/"),
    (b"/api/v2", "/api/v2"),
    (b"/api/v2/users", "/api/v2"),
    (b"/api/v20", "/api"),
    (b"/API/V2/x", "/api/v2"),
    (b"/shop/cart", "/Shop"),
    (b"*", "/"),
])
def test_longest_segment_prefix_wins(apps, path, app):
    entry = apps.route("1.2.3.4", 80, b"h", path)
    assert entry.path == app
    assert entry.key == "1" + app
    assert entry.pool == "pool1"
    assert entry.site.id == 1


def test_site_without_root_application_has_no_app_for_other_paths():
    r = router(site(1, ["http/*:80:"], apps=("/api",)))
    assert r.route("1.2.3.4", 80, b"h", b"/api/x").path == "/api"
    assert r.route("1.2.3.4", 80, b"h", b"/other") is None


def test_application_keys_are_site_id_and_path():
    r = router(site(7, ["http/*:80:"], apps=("/", "/a")))
    assert sorted(r.apps) == ["7/", "7/a"]


def test_a_unix_socket_routes_by_its_path():
    r = router(site(1, ["http/unix:/run/a.sock:"]), site(2, ["http/unix:/run/b.sock:api.test", "http/*:80:"]))
    assert site_id(r, "unix:/run/a.sock", 0, b"anything") == 1
    assert site_id(r, "unix:/run/b.sock", 0, b"api.test") == 2
    with pytest.raises(InvalidHostname):
        r.route("unix:/run/b.sock", 0, b"other.test", b"/")
    assert site_id(r, "127.0.0.1", 80, b"x") == 2
