"""A pool's virtualenv read from disk (wasp.config.venv) and put first on sys.path in the worker
(wasp.worker.venv); and the config rules around `virtualenv`. No process is started."""

from __future__ import annotations

import os
import site
import sys
import textwrap

import pytest

from wasp.config import venv as venvs
from wasp.config.load import load, load_text
from wasp.errors import ConfigError
from wasp.worker import venv as worker_venv

OURS = f"{sys.version_info[0]}.{sys.version_info[1]}"


def make_venv(path, version: str = OURS + ".3", key: str = "version"):
    site_packages = path / "lib" / f"python{'.'.join(version.split('.')[:2])}" / "site-packages"
    site_packages.mkdir(parents=True)
    (path / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = false\n{key} = {version}\n")
    return site_packages


def test_a_venv_is_read_with_its_version_and_site_packages(tmp_path):
    site_packages = make_venv(tmp_path / "v")
    found = venvs.inspect(str(tmp_path / "v"))
    assert found.version == sys.version_info[:2] and found.site_dirs == (str(site_packages),)
    assert venvs.problem(str(tmp_path / "v")) is None


def test_virtualenv_tools_version_info_key_is_understood(tmp_path):
    make_venv(tmp_path / "v", version=OURS + ".1.final.0", key="version_info")
    assert venvs.inspect(str(tmp_path / "v")).version == sys.version_info[:2]


@pytest.mark.parametrize("setup, expected", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("x"), "is not a directory"),
    (lambda p: p.mkdir(), "is not a virtualenv: cannot read"),
    (lambda p: (p.mkdir(), (p / "pyvenv.cfg").write_text("home = /usr/bin\n")), "names no Python version"),
    (lambda p: (p.mkdir(), (p / "pyvenv.cfg").write_text(f"version = {OURS}.0\n")), "has no site-packages folder"),
])
def test_what_is_not_a_usable_venv_says_why(tmp_path, setup, expected):
    path = tmp_path / "v"
    setup(path)
    assert expected in venvs.problem(str(path))


def test_a_venv_of_another_python_version_is_refused_with_the_fix(tmp_path):
    make_venv(tmp_path / "v", version="3.99.0")
    problem = venvs.problem(str(tmp_path / "v"))
    assert f"is a Python 3.99 virtualenv, but the server runs Python {OURS}" in problem
    assert f"{sys.executable} -m venv {tmp_path / 'v'}" in problem


def test_activation_puts_the_venv_before_the_servers_packages(tmp_path, monkeypatch):
    site_packages = make_venv(tmp_path / "v")
    extra = tmp_path / "editable"
    extra.mkdir()
    (site_packages / "app.pth").write_text(f"{extra}\n")  # an editable install of the app
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "prefix", sys.prefix)
    monkeypatch.setattr(sys, "exec_prefix", sys.exec_prefix)
    base = sys.base_prefix
    added = worker_venv.activate(str(tmp_path / "v"))
    assert added == [str(site_packages), str(extra)]
    ours = [sys.path.index(p) for p in site.getsitepackages() if p in sys.path]
    assert ours and sys.path.index(str(site_packages)) < min(ours)
    assert sys.path.index(str(extra)) < min(ours)
    stdlib = os.path.dirname(os.__file__)
    assert sys.path.index(stdlib) < sys.path.index(str(site_packages))  # the stdlib is not shadowed
    assert sys.prefix == sys.exec_prefix == str(tmp_path / "v") and sys.base_prefix == base


_SITE = '[[sites]]\nname = "S"\nid = 1\nbindings = ["http/*:8080:"]\n[[sites.applications]]\npool = "P"\napp = "m:app"\n'


def test_python_and_virtualenv_together_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        load_text(textwrap.dedent("""
            [[pools]]
            name = "P"
            python = "/usr/bin/python3"
            virtualenv = "/srv/venv"
            """) + _SITE)
    [problem] = info.value.problems
    assert problem.path == "pools[0].virtualenv" and "not both" in problem.message and problem.line == 5


def test_a_relative_virtualenv_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "wasp.toml").write_text('[[pools]]\nname = "P"\nvirtualenv = "venv"\n' + _SITE)
    assert load(str(tmp_path / "wasp.toml")).pools[0].virtualenv == str(tmp_path / "venv")


def test_the_readme_example_loads():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Per-pool virtualenvs", 1)[1].split("\n## ", 1)[0]
    [example] = re.findall(r"```toml\n(.*?)```", section, re.S)
    # The README shows the pool; a config needs a site too.
    [pool] = load_text(example + _SITE.replace('pool = "P"', 'pool = "shop"')).pools
    assert pool.virtualenv == "/srv/shop/venv" and pool.python == ""
