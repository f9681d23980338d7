"""Locations, locking and web.toml resolution (wasp/config/hierarchy.py) and the worker's per-URL
cache (wasp/worker/urlconfig.py), on temp folders."""

from __future__ import annotations

import pytest

from wasp.config import hierarchy
from wasp.config.load import load_text
from wasp.errors import ConfigError

from wasp.worker.application import Application

from worker_fakes import make_ctx

BASE = ('[[pools]]\nname = "P"\n[[sites]]\nname = "Site"\nid = 1\nbindings = ["http/*:80:"]\n'
        '[[sites.applications]]\npath = "/"\npool = "P"\nphysical_path = "{root}"\n'
        '[[sites.applications]]\npath = "/api"\npool = "P"\nphysical_path = "{root}"\n')


def loaded(tmp_path, extra: str = ""):
    return load_text(BASE.replace("{root}", str(tmp_path)) + extra)


def problems(tmp_path, extra: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        loaded(tmp_path, extra)
    return [(p.path, p.message) for p in info.value.problems]


@pytest.mark.parametrize("extra, path, message", [
    ('[[locations]]\npath = "Nope/x"\n', "locations[0].path", "no site is named \"Nope\""),
    ('[[locations]]\n', "locations[0].path", "required"),
    ('[[locations]]\npath = "Site/a/../b"\n', "locations[0].path", "segment"),
    ('[[locations]]\npath = "Site/x"\noverride_mode = "deny"\n', "locations[0].override_mode", "not allowed"),
    ('[[locations]]\npath = "Site/x"\ncolour = 1\n', "locations[0].colour", "unknown key"),
    ('[[locations]]\npath = "Site/x"\n[locations.http_errors]\nerror_mode = 1\n',
     "locations[0].http_errors.error_mode", "is not allowed"),
    ('[[locations]]\npath = "Site/x"\n[locations.http_errors]\n[[locations]]\npath = "site/X/"\n'
     '[locations.http_errors]\n', "locations[1].http_errors", "already set for \"site/X/\" in locations[0]"),
    ('[[locations]]\npath = "Site/x"\n[locations.modules]\nremove = ["no_such"]\n',
     "locations[0].modules.remove[0]", "not in the inherited list"),
    ('[[locations]]\npath = "Site/api/x"\n[locations.default_document]\nfiles = { remove = ["nope"] }\n',
     "locations[0].default_document.files.remove[0]", "not in the inherited list"),
])
def test_location_errors_name_their_path(tmp_path, extra, path, message):
    found = problems(tmp_path, extra)
    assert any(p == path and message in m for p, m in found), found


def app_of(config, path: str) -> Application:
    site = config.sites[0]
    entry = next(a for a in site.applications if a.path == path)
    return Application(site, entry, config.sections)


LOCATIONS = ('[[locations]]\npath = "Site"\n[locations.default_document]\nfiles = ["site.html"]\n'
             '[[locations]]\npath = "Site/api"\n[locations.default_document]\nfiles = ["api.html"]\n'
             '[[locations]]\npath = "Site/API/deep/"\n[locations.default_document]\nfiles = ["deep.html"]\n'
             '[[locations]]\npath = "Site/api/page.html"\n[locations.http_errors]\nerror_mode = "Custom"\n'
             '[[locations]]\npath = "Site/docs"\noverride_mode = "Deny"\n[locations.default_document]\n')


@pytest.mark.parametrize("app_path, url, files, mode", [
    ("/", "/", ["site.html"], "DetailedLocalOnly"),
    ("/", "/docs/x.html", ["site.html"], "DetailedLocalOnly"),
    ("/", "/api-not/", ["site.html"], "DetailedLocalOnly"),   # a prefix of a segment is not a parent
    ("/api", "/api/", ["api.html", "site.html"], "DetailedLocalOnly"),
    ("/api", "/api/deep/", ["deep.html", "api.html", "site.html"], "DetailedLocalOnly"),
    ("/api", "/api/Deep/more/x.html", ["deep.html", "api.html", "site.html"], "DetailedLocalOnly"),
    ("/api", "/api/page.html", ["api.html", "site.html"], "Custom"),     # a location naming a file
    ("/api", "/api/page.html.bak", ["api.html", "site.html"], "DetailedLocalOnly"),
    # repeated slashes name the same folders (static_file skips empty segments)
    ("/api", "/api//deep/", ["deep.html", "api.html", "site.html"], "DetailedLocalOnly"),
    ("/api", "/api///deep//x.html", ["deep.html", "api.html", "site.html"], "DetailedLocalOnly"),
    ("/api", "/api//page.html", ["api.html", "site.html"], "Custom"),
])
def test_locations_apply_to_their_path_and_below(tmp_path, app_path, url, files, mode):
    app = app_of(loaded(tmp_path, LOCATIONS), app_path)
    config = make_ctx(app, path=url).config
    assert config.default_document.files[:len(files)] == files
    assert config.http_errors.error_mode == mode


def test_flat_application_has_no_url_cache(tmp_path):
    app = app_of(loaded(tmp_path), "/")
    assert app.urls is not None  # it has a physical_path: a web.toml may appear
    config = load_text(BASE.replace("{root}", str(tmp_path)).replace('name = "P"\n', 'name = "P"\n'
                       'enable_configuration_override = false\n', 1))
    from wasp.worker.application import pool_applications
    root = pool_applications(config, "P")[0]
    assert root.urls is None and make_ctx(root).config is root.sections


def test_web_toml_lock_and_unlock(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "web.toml").write_text('[default_document]\nenabled = false\n')
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "web.toml").write_text('[access]\nssl_flags = []\n')
    (tmp_path / "shut").mkdir()
    (tmp_path / "shut" / "web.toml").write_text('\n[access]\nssl_flags = []\n')
    app = app_of(loaded(tmp_path, LOCATIONS + '[[locations]]\npath = "Site/open"\noverride_mode = "Allow"\n'
                        '[locations.access]\n'), "/")
    docs = make_ctx(app, path="/docs/").config
    assert docs.fault is not None and docs.fault.substatus == 19
    assert "locked by locations[4]" in str(docs.fault)
    assert make_ctx(app, path="/open/").config.fault is None
    shut = make_ctx(app, path="/shut/x").config.fault
    assert "override_mode_default" in str(shut) and ("Config File", f"{tmp_path}/shut/web.toml, line 2") in shut.detail_rows


def test_url_cache_is_one_entry_per_directory_and_drops_on_change(tmp_path):
    (tmp_path / "d").mkdir()
    app = app_of(loaded(tmp_path), "/")
    first = make_ctx(app, path="/d/a.html").config
    assert make_ctx(app, path="/d/b.html").config is first
    assert first.default_document.files[0] == "Default.htm"
    assert not app.urls.changed()
    (tmp_path / "d" / "web.toml").write_text('[default_document]\nfiles = ["mine.html"]\n')
    assert app.urls.changed()
    assert make_ctx(app, path="/d/a.html").config.default_document.files[0] == "mine.html"


def test_random_urls_cannot_grow_the_cache_without_bound(tmp_path, monkeypatch):
    from wasp.worker import urlconfig
    monkeypatch.setattr(urlconfig, "CACHE_LIMIT", 8)
    app = app_of(loaded(tmp_path), "/")
    for n in range(50):
        make_ctx(app, path=f"/r{n}/x")
    assert len(app.urls.cache) <= 8


@pytest.mark.parametrize("rel, sub, expected", [
    ("/", True, [""]),
    ("/a/b/", True, ["", "/a", "/a/b"]),
    ("/a/b", True, ["", "/a"]),
    ("/a/../b/", True, ["", "/a"]),
    ("/a/b/", False, [""]),
])
def test_content_dirs(rel, sub, expected):
    assert hierarchy.content_dirs("/srv", rel, sub) == ["/srv" + e for e in expected]
