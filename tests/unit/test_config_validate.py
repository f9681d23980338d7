"""Rules beyond types: names, paths, bindings, app specs, schedules, and rules across the config."""

from __future__ import annotations

import textwrap

import pytest

from wasp.config.load import load_text
from wasp.errors import ConfigError


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(textwrap.dedent(text))
    # Fragments without [[sites]] test other rules: leave out the "no site" problem they all have.
    return [(p.path, p.line, p.message) for p in info.value.problems
            if not (p.path == "sites" and "[[sites]]" not in text)]


def one(text: str) -> tuple[str, int | None, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def site(bindings='["http/*:8080:"]', apps=('path = "/"',), name="s", id=1) -> str:
    text = f'\n[[sites]]\nname = "{name}"\nid = {id}\nbindings = {bindings}\n'
    for app in apps:
        if "app =" not in app and "physical_path" not in app:
            app += '\napp = "m:app"'  # an application serves something (tested on its own below)
        text += f"\n[[sites.applications]]\n{app}\n"
    return text


POOL = '[[pools]]\nname = "DefaultAppPool"\n'


def test_duplicate_pool_names():
    path, line, message = one(POOL + '[[pools]]\nname = "x"\n[[pools]]\nname = "DefaultAppPool"\n')
    assert (path, line) == ("pools[2].name", 6)
    assert message == "duplicate pool name \"DefaultAppPool\"; already used by pools[0].name"


def test_more_pools_than_the_scoreboard_has_rows():
    # Each pool has a row of the fronts' shared scoreboard: one too many is a config error, not a
    # traceback at start-up.
    from wasp.config.model import MAX_POOLS
    pools = "".join(f'[[pools]]\nname = "p{i}"\n' for i in range(MAX_POOLS + 1))
    path, _line, message = one(pools)
    assert path == "pools"
    assert message == f"{MAX_POOLS + 1} pools; a server runs at most {MAX_POOLS}"


def test_duplicate_site_names_and_ids():
    found = problems(POOL + site(name="a", id=1, bindings='["http/*:1:"]')
                     + site(name="a", id=1, bindings='["http/*:2:"]'))
    assert [(p, line) for p, line, _ in found] == [("sites[1].name", 14), ("sites[1].id", 15)]
    assert "duplicate site name \"a\"" in found[0][2]
    assert "duplicate site id 1" in found[1][2]


def test_application_naming_a_missing_pool():
    path, line, message = one(POOL + site(apps=('path = "/"', 'path = "/api"\npool = "api"')))
    assert (path, line) == ("sites[0].applications[1].pool", 15)
    assert message == 'no pool is named "api"; pools: "DefaultAppPool"'


def test_default_pool_name_must_exist_too():
    path, line, message = one(site())
    assert (path, line) == ("sites[0].applications[0].pool", 7)
    assert "no pools are defined" in message


def test_unused_pools_are_fine():
    config = load_text(POOL + '[[pools]]\nname = "idle"\n' + site())
    assert [p.name for p in config.pools] == ["DefaultAppPool", "idle"]


def test_same_binding_on_two_sites_host_case_insensitive():
    path, line, message = one(POOL + site(bindings='["http/*:80:Example.test"]')
                              + site(name="t", id=2, bindings='["http/*:8081:", "http/*:80:EXAMPLE.TEST"]'))
    assert (path, line) == ("sites[1].bindings[1]", 16)
    assert "http/*:80:example.test" in message and "sites[0].bindings[0]" in message


def test_same_port_different_host_or_ip_is_fine():
    load_text(POOL + site(bindings='["http/*:80:", "http/*:80:a.test", "http/127.0.0.1:80:"]'))


def test_binding_repeated_in_one_site():
    path, _, message = one(POOL + site(bindings='["http/*:80:", "http/*:80:"]'))
    assert path == "sites[0].bindings[1]"
    assert "already used" in message


@pytest.mark.parametrize("binding, fragment", [
    ("https/*:443:", "needs a certificate"), ("http/*:0:", "1-65535"), ("http/*:99999:", "1-65535"),
    ("http/localhost:80:", "IP address"), ("http/::1:80:", "brackets"), ("http/*:80", "HOST"),
])
def test_binding_syntax(binding, fragment):
    path, line, message = one(POOL + site(bindings=f'["http/*:1:", "{binding}"]'))
    assert (path, line) == ("sites[0].bindings[1]", 7)
    assert fragment in message


def test_binding_on_its_own_line_of_a_multiline_array():
    path, line, _ = one(POOL + site(bindings='[\n  "http/*:1:",\n  "http/*:0:",\n]'))
    assert (path, line) == ("sites[0].bindings[1]", 9)


@pytest.mark.parametrize("app_path, fragment", [
    ("api", "must start with"), ("/api/", "must not end with"), ("/a/../b", "segment"), ("/./a", "segment"),
    ("/a//b", "segment"), ("/a?b", "character"), ("", "must start with"),
])
def test_application_path_syntax(app_path, fragment):
    path, line, message = one(POOL + site(apps=('path = "/"', f'path = "{app_path}"')))
    assert (path, line) == ("sites[0].applications[1].path", 14)
    assert fragment in message


def test_duplicate_application_path():
    path, line, message = one(POOL + site(apps=('path = "/"', 'path = "/api"', 'path = "/API"')))
    assert (path, line) == ("sites[0].applications[2].path", 18)
    assert "already used by sites[0].applications[1]" in message


def test_site_without_root_application():
    path, line, message = one(POOL + site(apps=('path = "/api"',)))
    assert (path, line) == ("sites[0].applications", 9)
    assert "no root application" in message


def test_site_without_any_application():
    path, _, message = one(POOL + site(apps=()))
    assert path == "sites[0].applications"
    assert "no root application" in message


@pytest.mark.parametrize("name", ["a|b", "a<b", "a/b", "a[1]", "a+b", "a=b", "a;b", "a:b", "a,b", "a?b",
                                  "a*b", "a@b", 'a\\"b', "a&b", ""])
def test_pool_name_characters(name):
    path, line, _ = one(f'[[pools]]\nname = "{name}"\n')
    assert (path, line) == ("pools[0].name", 2)


def test_pool_name_with_space_and_dot_is_fine():
    load_text('[[pools]]\nname = "My Pool .NET v4.5"\n' + POOL + site())


@pytest.mark.parametrize("name", ["a/b", "a?b", ""])
def test_site_name_characters(name):
    path, _, _ = one(POOL + site(name=name))
    assert path == "sites[0].name"


@pytest.mark.parametrize("entry", ["3:00", "24:00", "12:60", "12:00:60", "noon", "12-00", "12:00:00:00"])
def test_schedule_entries(entry):
    path, line, message = one(f'[[pools]]\nname = "p"\n[pools.recycling]\nschedule = ["03:00", "{entry}"]\n')
    assert (path, line) == ("pools[0].recycling.schedule[1]", 4)
    assert "HH:MM" in message


def test_schedule_good_and_duplicate():
    load_text('[[pools]]\nname = "p"\nrecycling.schedule = ["00:00", "23:59", "12:30:15"]\n' + POOL + site())
    path, _, message = one('[[pools]]\nname = "p"\nrecycling.schedule = ["03:00", "03:00:00"]\n')
    assert path == "pools[0].recycling.schedule[1]" and "twice" in message


@pytest.mark.parametrize("spec", ["mysite.wsgi:application", "app:make()", "a:b.c", "_m1:x"])
def test_app_spec_good(spec):
    load_text(POOL + site(apps=(f'path = "/"\napp = "{spec}"',)))


@pytest.mark.parametrize("spec", ["mysite.wsgi", "mysite.wsgi:", ":app", "my-site:app", "m:f(1)", "m:app()x",
                                  "1m:app", "a b:c"])
def test_app_spec_bad(spec):
    path, line, message = one(POOL + site(apps=(f'path = "/"\napp = "{spec}"',)))
    assert (path, line) == ("sites[0].applications[0].app", 11)
    assert "module.path:attribute" in message


def test_environment_variable_names():
    path, _, _ = one('[[pools]]\nname = "p"\nenvironment_variables = { "A=B" = "x" }\n')
    assert path == "pools[0].environment_variables.A=B"


def test_initialization_pages_are_paths():
    path, _, _ = one(POOL + site(apps=('path = "/"\ninitialization_pages = ["/ok", "warm"]',)))
    assert path == "sites[0].applications[0].initialization_pages[1]"


def test_cross_checks_still_run_when_other_values_are_bad():
    found = problems(POOL + '[[pools]]\nname = "DefaultAppPool"\nthreads = "x"\n'
                     + site(apps=('path = "/"\npool = "missing"',)))
    assert [p for p, _, _ in found] == ["pools[1].name", "pools[1].threads", "sites[0].applications[0].pool"]


def test_an_undecodable_pool_is_not_also_reported_as_missing():
    found = problems('[[pools]]\nname = "p"\nprocess_model = 3\nthreads = "x"\n[[pools]]\nthreads = 4\n'
                     + site(apps=('path = "/"\npool = "p"',)))
    assert [p for p, _, _ in found] == ["pools[0].process_model", "pools[0].threads", "pools[1].name"]


# ---- QoS limits and trusted proxies (issue 7) ----

def test_site_limits_and_web_limits_load_with_iis_meaning():
    config = load_text(textwrap.dedent(POOL + '[limits]\nmin_bytes_per_second = 500\nmax_global_bandwidth = "1MB"\n'
                                       + site() + '[sites.limits]\nmax_connections = 10\n'
                                       'max_bandwidth = "64KiB"\nconnection_timeout = "30s"\n'))
    assert config.limits.min_bytes_per_second == 500
    assert config.limits.max_global_bandwidth == 1_000_000
    limits = config.sites[0].limits
    assert (limits.max_connections, limits.max_bandwidth, limits.connection_timeout) == (10, 65536, 30.0)


def test_defaults_are_unlimited_and_240_bytes_per_second():
    config = load_text(textwrap.dedent(POOL + site()))
    assert config.limits.min_bytes_per_second == 240
    assert config.limits.max_global_bandwidth == 0
    assert (config.sites[0].limits.max_connections, config.sites[0].limits.max_bandwidth) == (0, 0)
    assert config.server.trusted_proxies == [] and config.sites[0].proxy_protocol is False


@pytest.mark.parametrize("where, key", [("[limits]", "max_global_bandwidth"), ("[sites.limits]", "max_bandwidth")])
def test_bandwidth_below_iis_minimum_is_refused(where, key):
    if where == "[limits]":
        text = POOL + f"[limits]\n{key} = 1000\n" + site()
    else:
        text = POOL + site() + f"[sites.limits]\n{key} = 1000\n"
    path, _, message = one(text)
    assert path.endswith(key) and "1024" in message


def test_negative_site_connection_limit_is_refused():
    path, _, message = one(POOL + site() + "[sites.limits]\nmax_connections = -1\n")
    assert path == "sites[0].limits.max_connections"


@pytest.mark.parametrize("bad", ["10.0.0.300", "example.com", "10.0.0.0/33", "", "::1/129"])
def test_trusted_proxies_must_be_addresses_or_networks(bad):
    path, _, message = one(POOL + f'[server]\ntrusted_proxies = ["127.0.0.1", "{bad}"]\n' + site())
    assert path == "server.trusted_proxies[1]" and "CIDR" in message


def test_trusted_proxies_take_addresses_and_networks():
    config = load_text(textwrap.dedent(
        POOL + '[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "10.1.2.3/8"]\n' + site()))
    assert len(config.server.trusted_proxies) == 5


def test_sites_sharing_a_port_must_agree_on_proxy_protocol():
    text = (POOL + site('["http/*:8080:a.test"]\nproxy_protocol = true', name="a", id=1)
            + site('["http/127.0.0.1:8080:b.test"]', name="b", id=2))
    path, _, message = one(text)
    assert path == "sites[1].proxy_protocol" and "port 8080" in message


def test_sites_on_other_ports_may_differ_on_proxy_protocol():
    text = (POOL + site('["http/*:8080:"]\nproxy_protocol = true', name="a", id=1)
            + site('["http/*:8081:"]', name="b", id=2))
    config = load_text(textwrap.dedent(text))
    assert [s.proxy_protocol for s in config.sites] == [True, False]


def test_proxy_protocol_is_refused_on_an_https_binding(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    binding = '[{ binding = "https/*:8443:", certificate = "c.pem", key = "k.pem" }]\nproxy_protocol = true'
    found = problems(POOL + site(binding))
    assert [(p, m) for p, _, m in found if p == "sites[0].proxy_protocol" and "http bindings only" in m], found


# ---- sites.health_url ----

def _with_health(url: str, apps=('path = "/"',)) -> str:
    return POOL + site(apps=apps).replace('bindings = ["http/*:8080:"]\n',
                                          f'bindings = ["http/*:8080:"]\nhealth_url = "{url}"\n')


@pytest.mark.parametrize("url", ["/healthz", "/api/health", "/a-b_c.d/Up"])
def test_a_plain_health_url_is_accepted(url):
    load_text(_with_health(url))


@pytest.mark.parametrize("url", ["healthz", "/h?x=1", "/h#f", "/h%7a", "/a/../h", "/./h", "//h",
                                 "/a b", "/a\\\\b"])
def test_a_health_url_that_is_not_a_plain_path_is_refused(url):
    path, _line, message = one(_with_health(url))
    assert path == "sites[0].health_url" and "not a plain path" in message, message

