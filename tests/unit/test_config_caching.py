"""The caching sections: defaults, inheritance from site to application, validation."""

from __future__ import annotations

import pytest

from wasp.config.load import load_text
from wasp.errors import ConfigError

BASE = """
[[pools]]
name = "P"
[[sites]]
name = "S"
id = 1
bindings = ["http/*:8080:"]
{site}
[[sites.applications]]
path = "/"
pool = "P"
app = "m:app"
{app}
[[sites.applications]]
path = "/other"
pool = "P"
app = "m:app"
"""


def load(site: str = "", app: str = "", top: str = ""):
    return load_text(top + BASE.format(site=site, app=app))


def test_defaults_are_iis_and_http_sys():
    config = load()
    assert config.cache.max_response_size == 262144
    assert config.cache.frequent_hit_threshold == 2
    assert config.cache.frequent_hit_time_period == 10.0
    assert config.cache.scavenger_period == 120.0
    assert config.cache.max_cache_size == 0
    caching = config.sites[0].applications[0].caching
    assert caching.enabled and caching.enable_kernel_cache and caching.profiles == []


def test_an_application_inherits_what_it_does_not_set():
    site = """[sites.caching]
enable_kernel_cache = false
[[sites.caching.profiles]]
extension = ".html"
kernel_caching_policy = "CacheForTimePeriod"
"""
    app = """[sites.applications.caching]
enable_kernel_cache = true
"""
    config = load(site, app)
    own, other = config.sites[0].applications
    assert own.caching.enable_kernel_cache is True
    assert [p.extension for p in own.caching.profiles] == [".html"]     # the site's profiles
    assert other.caching.enable_kernel_cache is False
    app = """[[sites.applications.caching.profiles]]
extension = "*"
"""
    own = load(site, app).sites[0].applications[0]
    # profiles is IIS's collection keyed by extension: an array adds after the inherited entries,
    assert [p.extension for p in own.caching.profiles] == [".html", "*"]
    assert own.caching.enable_kernel_cache is False
    # { clear = true, add = [...] } replaces them, and adding an inherited extension is an error.
    app = """[sites.applications.caching]
profiles = { clear = true, add = [ { extension = "*" } ] }
"""
    own = load(site, app).sites[0].applications[0]
    assert [p.extension for p in own.caching.profiles] == ["*"]
    with pytest.raises(ConfigError) as info:
        load(site, """[[sites.applications.caching.profiles]]\nextension = ".HTML"\n""")
    assert "sites[0].applications[0].caching.profiles[0]" in str(info.value)
    assert "already in the list (sites[0].caching.profiles[0])" in str(info.value)


@pytest.mark.parametrize("text,message", [
    ('[[sites.caching.profiles]]\nextension = "html"\n', "sites[0].caching.profiles[0].extension"),
    ('[[sites.caching.profiles]]\nextension = ".a/b"\n', "is not a URL extension"),
    ('[[sites.caching.profiles]]\nextension = ".x"\npolicy = "Sometimes"\n', "sites[0].caching.profiles[0].policy"),
    ('[[sites.caching.profiles]]\nextension = ".x"\nvary_by_headers = ["a b"]\n', "is not an HTTP header name"),
    ('[sites.caching]\nsize = 1\n', "sites[0].caching.size"),
])
def test_bad_values_name_their_key(text, message):
    with pytest.raises(ConfigError) as info:
        load(text)
    assert message in str(info.value)


def test_server_wide_limits_are_checked():
    with pytest.raises(ConfigError) as info:
        load(top='[cache]\nfrequent_hit_threshold = 0\nscavenger_period = "0s"\n')
    text = str(info.value)
    assert "cache.frequent_hit_threshold" in text and "cache.scavenger_period" in text
