"""The [metrics] table: defaults, and bad values named by their dotted path."""

from __future__ import annotations

import pytest

from wasp.config.load import load_text
from wasp.errors import ConfigError

SITE = '\n[[pools]]\nname = "DefaultAppPool"\n[[sites]]\nname = "s"\nid = 1\nbindings = ["http/*:8080:"]\n[[sites.applications]]\npath = "/"\napp = "m:app"\n'


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_text(text + SITE)
    return [(p.path, p.message) for p in info.value.problems]


def test_defaults_count_and_serve_no_url():
    metrics = load_text(SITE).metrics
    assert metrics.enabled is True and metrics.url == "" and metrics.allowed_ips == ["127.0.0.1", "::1"]


def test_a_plain_path_and_networks_load():
    metrics = load_text('[metrics]\nurl = "/_wasp/metrics"\nallowed_ips = ["10.0.0.0/8", "::1"]\n' + SITE).metrics
    assert metrics.url == "/_wasp/metrics"


@pytest.mark.parametrize("url", ["metrics", "/a/../metrics", "/m?x=1", "/m%20", "/a//b", "/m etrics"])
def test_a_url_that_is_not_a_plain_path_is_refused(url):
    [(path, message)] = problems(f'[metrics]\nurl = "{url}"\n')
    assert path == "metrics.url" and "plain path" in message


def test_a_bad_address_is_named_by_its_index():
    [(path, message)] = problems('[metrics]\nallowed_ips = ["127.0.0.1", "localhost"]\n')
    assert path == "metrics.allowed_ips[1]" and "localhost" in message


def test_unknown_keys_are_refused():
    [(path, _)] = problems('[metrics]\nport = 9100\n')
    assert path == "metrics.port"
