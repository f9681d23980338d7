"""`wasp validate` and Python modules' own sections: a section that is not a table (no import
needed), and the fields decoded for real by importing the module in a child process with the
pool's interpreter and environment (wasp.worker.modcheck): a bad value in wasp.toml, in a
location and in a web.toml, each with its file, line and dotted path; a module that cannot be
imported; an import that hangs is killed after the timeout and reported."""

from __future__ import annotations

import pathlib

import pytest
from conftest import APPS, run_wasp

CONFIG = """
[[pools]]
name = "P"
[[sites]]
name = "S"
id = 1
bindings = ["http/127.0.0.1:1:"]
[[sites.applications]]
path = "/"
pool = "P"
physical_path = "www"
python_path = ["{apps}"]
[sites.applications.modules]
add = [{{ name = "ping", type = "{type}" }}]
{app}
[[locations]]
path = "S/x"
{location}
"""


def setup(tmp_path: pathlib.Path, app="", location="", web=None, type_="pipe_modules:Ping"):
    (tmp_path / "www" / "sub").mkdir(parents=True)
    if web is not None:
        (tmp_path / "www" / "sub" / "web.toml").write_text(web)
    config = tmp_path / "wasp.toml"
    config.write_text(CONFIG.format(apps=APPS, type=type_, app=app, location=location))
    return config


def validate(config):
    done = run_wasp("validate", "-c", str(config))
    return done.returncode, done.stdout + done.stderr


def line_of(config, text):
    return config.read_text().splitlines().index(text) + 1


def test_good_module_sections_validate(tmp_path):
    config = setup(tmp_path, app="[sites.applications.ping]\ntimes = 2",
                   location='[locations.ping]\nanswer = "x"', web='[ping]\nanswer = "web"\n')
    code, out = validate(config)
    assert code == 0 and "configuration OK" in out, out


@pytest.mark.parametrize("where", ["app", "location", "web"])
def test_a_bad_field_names_its_file_line_and_dotted_path(tmp_path, where):
    if where == "app":
        config = setup(tmp_path, app='[sites.applications.ping]\ntimes = "three"')
        line = line_of(config, 'times = "three"')
        expected = f"{config}:{line}: sites[0].applications[0].ping.times: expected an integer"
    elif where == "location":
        config = setup(tmp_path, location="[locations.ping]\nanswer = 5")
        expected = f"{config}:{line_of(config, 'answer = 5')}: locations[0].ping.answer: expected a string"
    else:
        config = setup(tmp_path, web='# a comment\n[ping]\ntimes = "x"\n')
        expected = f"{tmp_path / 'www/sub/web.toml'}:3: ping.times: expected an integer"
    code, out = validate(config)
    assert code == 2 and expected in out, out


@pytest.mark.parametrize("where", ["app", "web"])
def test_a_module_section_must_be_a_table(tmp_path, where):
    config = setup(tmp_path, web="ping = 3\n" if where == "web" else None)
    if where == "app":  # a key of the application's own table (before its sub-tables)
        config.write_text(config.read_text().replace("[sites.applications.modules]",
                                                     "ping = 3\n[sites.applications.modules]"))
    code, out = validate(config)
    path = "sites[0].applications[0].ping" if where == "app" else "ping"
    assert code == 2 and f"{path}: expected a table" in out, out


def test_an_undeclared_section_in_a_web_toml_is_unknown(tmp_path):
    config = setup(tmp_path, web='[pong]\nanswer = "x"\n')
    code, out = validate(config)
    assert code == 2 and "web.toml:1: pong: unknown section" in out, out


def test_a_module_that_cannot_be_imported_is_named(tmp_path):
    config = setup(tmp_path, type_="no_such_package_xyz:Ping")
    code, out = validate(config)
    assert code == 2 and "module 'ping' (type = 'no_such_package_xyz:Ping') cannot be imported" in out, out


def test_an_import_that_hangs_is_killed_and_reported(tmp_path):
    from wasp.config.load import load
    from wasp.manager import environment

    (tmp_path / "hangs_mod_t.py").write_text("import time\ntime.sleep(120)\n")
    config = setup(tmp_path, type_="hangs_mod_t:Ping")
    text = config.read_text().replace(f'python_path = ["{APPS}"]', f'python_path = ["{tmp_path}"]')
    config.write_text(text)
    problems = environment.module_problems(load(str(config)), str(config), timeout=3)
    assert [p.path for p in problems] == ["pools[0]"] and "took over 3s" in problems[0].message, \
        [str(p) for p in problems]
