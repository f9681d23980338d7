"""The built-in configs: the embedded Default Web Site and `wasp serve module:app`."""

from __future__ import annotations

import os

import pytest

from wasp.config import defaults
from wasp.config.bindings import parse_binding
from wasp.config.defaults import default_config, default_run_dir, single_app_config
from wasp.config.model import decode, encode
from wasp.errors import ConfigError


def test_default_run_dir_uses_xdg_runtime_dir(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_run_dir() == "/run/user/1000/wasp"


def test_default_run_dir_without_xdg(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_run_dir() == f"/tmp/wasp-{os.getuid()}"


def test_default_config(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    config = default_config()
    assert config.server.run_dir == "/run/user/1000/wasp/default-site"
    assert config.server.log_dir == "/run/user/1000/wasp/default-site/logs"
    assert [p.name for p in config.pools] == ["DefaultAppPool"]
    (site,) = config.sites
    assert (site.name, site.id, site.bindings) == ("Default Web Site", 1, ["http/127.0.0.1:8080:"])
    root, demo = site.applications
    assert (root.path, root.pool, root.app) == ("/", "DefaultAppPool", "")
    assert os.path.isabs(root.physical_path)
    assert os.path.isfile(os.path.join(root.physical_path, "index.html"))
    assert (demo.path, demo.pool, demo.app) == ("/demo", "DefaultAppPool", "wasp.default_site.demo:app")
    assert config.source == ""
    assert decode(encode(config)) == config


def test_single_app_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = single_app_config("myproject.wsgi:application", "0.0.0.0:9000")
    (site,) = config.sites
    assert (site.name, site.id) == ("Default Web Site", 1)
    assert parse_binding(site.bindings[0]) == parse_binding("http/0.0.0.0:9000:")
    (app,) = site.applications
    assert (app.path, app.pool, app.app) == ("/", "DefaultAppPool", "myproject.wsgi:application")
    assert app.python_path == [str(tmp_path)]
    assert [p.name for p in config.pools] == ["DefaultAppPool"]


@pytest.mark.parametrize("bind, binding", [
    ("127.0.0.1:8000", "http/127.0.0.1:8000:"), ("*:80", "http/*:80:"), ("[::1]:8000", "http/[::1]:8000:"),
    ("8001", "http/127.0.0.1:8001:"),
])
def test_single_app_config_binds(bind, binding):
    assert single_app_config("m:app", bind).sites[0].bindings == [binding]


def test_single_app_config_default_bind():
    assert single_app_config("m:app").sites[0].bindings == ["http/127.0.0.1:8000:"]


def test_single_app_config_is_validated():
    with pytest.raises(ConfigError) as info:
        single_app_config("not an app", "127.0.0.1:99999")
    assert {p.path for p in info.value.problems} == {"sites[0].applications[0].app", "sites[0].bindings[0]"}


def test_default_site_dir_is_in_the_package():
    assert defaults.default_site_dir().endswith(os.path.join("wasp", "default_site", "www"))


def test_single_app_run_dir_is_per_project_app_and_binding(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    a = single_app_config("app:app").server.run_dir
    assert a == single_app_config("app:app").server.run_dir  # the CLI can derive it again
    assert os.path.dirname(a) == str(tmp_path / "xdg" / "wasp")
    assert os.path.basename(a).startswith("one-")
    assert single_app_config("app:app", "127.0.0.1:8001").server.run_dir != a
    assert single_app_config("other:app").server.run_dir != a
    monkeypatch.chdir(tmp_path / "two")
    assert single_app_config("app:app").server.run_dir != a
    config = single_app_config("app:app", run_dir=str(tmp_path / "mine"))
    assert (config.server.run_dir, config.server.log_dir) == (str(tmp_path / "mine"), str(tmp_path / "mine" / "logs"))


def test_single_app_workers_threads_and_several_bindings():
    config = single_app_config("m:app", ["127.0.0.1:8000", "[::1]:8000"], workers=3, threads=4)
    assert config.sites[0].bindings == ["http/127.0.0.1:8000:", "http/[::1]:8000:"]
    (pool,) = config.pools
    assert (pool.max_processes, pool.threads) == (3, 4)
    with pytest.raises(ConfigError):
        single_app_config("m:app", workers=0)
