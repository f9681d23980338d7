"""docs/configuration.md is generated from model.py and its examples load."""

from __future__ import annotations

import pathlib

import msgspec
import pytest

from wasp.config import model, sections
from wasp.config.docs import EXAMPLE, default_output, full_example, render
from wasp.config.load import load_text

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_docs_are_up_to_date():
    assert pathlib.Path(default_output()) == DOC
    assert DOC.read_text(encoding="utf-8") == render(), \
        "docs/configuration.md is stale: run `python -m wasp.config.docs`"


def test_every_key_is_documented():
    text = render()
    for cls in (model.ServerSettings, model.Limits, model.Pool, model.ProcessModel, model.Recycling,
                model.Failure, model.Site, model.SiteLog, model.Application):
        for info in msgspec.structs.fields(cls):
            if isinstance(info.type, type) and issubclass(info.type, msgspec.Struct):
                assert f".{info.name}]`" in text, info.name  # a sub-table has its own section
            elif info.type == list[model.Application]:
                assert "[[sites.applications]]" in text
            elif info.type == list[model.CustomLogField]:
                assert "[[sites.log.custom_fields]]" in text
            else:
                assert f"| `{info.name}` |" in text, info.name


def test_example_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "www").mkdir()  # the example's physical_path, relative to the config
    config = load_text(EXAMPLE)
    assert [p.name for p in config.pools] == ["DefaultAppPool", "api"]
    assert config.pools[1].environment_variables == {"APP_ENV": "production",
                                                      "DJANGO_SETTINGS_MODULE": "shop.settings"}


def test_full_example_loads_and_equals_the_defaults():
    # An application needs app or physical_path: both default to "", so the example sets one.
    config = load_text(full_example().replace('app = ""', 'app = "m:app"'))
    plain = load_text('[[pools]]\nname = "DefaultAppPool"\n[[sites]]\nname = "Default Web Site"\nid = 1\n'
                      'bindings = ["http/*:8080:"]\n[[sites.applications]]\npath = "/"\napp = "m:app"\n')
    config.pool_defaults = plain.pool_defaults
    for pool in config.pools:  # the replace above also gave the (unused) service an app
        pool.service.app = ""
    # The example writes every section at server level (and http_errors, caching, access for the
    # site and application): they resolve to the defaults, which is all the plain file has.
    assert set(config.sections["server"]) == set(sections.registered())
    for site, app in ((s, a) for s in config.sites for a in s.applications):
        levels = sections.application_levels(config.sections, site.id, f"{site.id}{app.path}")
        effective, _ = sections.resolve(levels, lambda path, message: pytest.fail(f"{path}: {message}"))
        for name, entry in sections.registered().items():
            assert getattr(effective, name) == entry.cls(), name
    config.sections = plain.sections
    assert [f.name for f in config.web_farms] == ["farm1"]  # the example's one farm
    config.web_farms = plain.web_farms
    assert config == plain
