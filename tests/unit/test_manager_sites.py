"""`wasp start|stop site`: the runtime state over server_auto_start (wasp/manager/sites.py)."""

from __future__ import annotations

import pytest

from wasp.config.load import load_data
from wasp.manager import admin, listeners, sites


def config(b_auto_start: bool = True):
    return load_data({
        "pools": [{"name": "P"}],
        "sites": [
            {"name": "A", "id": 1, "bindings": ["http/127.0.0.1:8080:a.test"],
             "applications": [{"path": "/", "pool": "P", "app": "m:app"}]},
            {"name": "B", "id": 2, "bindings": ["http/127.0.0.1:8080:b.test", "http/127.0.0.1:8081:"],
             "server_auto_start": b_auto_start, "applications": [{"path": "/", "pool": "P", "app": "m:app"}]},
        ],
    }, source="")


def test_stop_then_start_a_site():
    c = config()
    stopped = sites.command(c, {}, "stop", "B")
    assert stopped == {"B": False}
    eff = sites.effective(c, stopped)
    assert [s.server_auto_start for s in eff.sites] == [True, False]
    assert [s.server_auto_start for s in c.sites] == [True, True], "the config itself changed"
    # Port 8081 was B's alone: no longer listened for; 8080 stays for A.
    assert listeners.plan(eff) == [("127.0.0.1", 8080)]
    assert listeners.plan(c) == [("127.0.0.1", 8080), ("127.0.0.1", 8081)]
    started = sites.command(c, stopped, "start", "B")
    assert listeners.plan(sites.effective(c, started)) == listeners.plan(c)


def test_start_a_site_the_config_does_not_auto_start():
    c = config(b_auto_start=False)
    assert not sites.is_started(c, {}, "B")
    overrides = sites.command(c, {}, "start", "B")
    assert sites.is_started(c, overrides, "B")
    assert ("127.0.0.1", 8081) in listeners.plan(sites.effective(c, overrides))


@pytest.mark.parametrize("verb, overrides, status, words", [
    ("stop", {"B": False}, 409, "already been stopped"),
    ("start", {}, 409, "already been started"),
])
def test_already_in_that_state(verb, overrides, status, words):
    with pytest.raises(sites.SiteCommandError) as info:
        sites.command(config(), overrides, verb, "B")
    assert info.value.status == status and words in str(info.value)


def test_unknown_site_in_appcmd_words():
    with pytest.raises(sites.SiteCommandError) as info:
        sites.command(config(), {}, "stop", "Nope")
    assert info.value.status == 404
    assert str(info.value) == 'Cannot find SITE object with identifier "Nope".'


def test_reload_forgets_removed_sites():
    assert sites.forget_missing(config(), {"B": False, "Gone": False}) == {"B": False}


def test_admin_routes():
    assert admin.route("POST", "/sites/Default%20Web%20Site/stop".replace("%20", " ")) == (
        "stop_site", {"name": "Default Web Site"})
    assert admin.route("POST", "/sites/A/start") == ("start_site", {"name": "A"})
    with pytest.raises(admin.RouteError):
        admin.route("GET", "/sites/A/stop")
    with pytest.raises(admin.RouteError):
        admin.route("POST", "/sites/A/recycle")
