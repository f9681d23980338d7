"""The line locator: dotted paths to lines of a TOML text."""

from __future__ import annotations

from wasp.config.locate import LineLocator, parent_path

TEXT = '''\
# comment with key = 1
[server]
run_dir = "run"   # trailing
log_dir = """
not_a_key = 1
"""

[pool_defaults.process_model]
idle_timeout = "20m"

[[pools]]
name = "a"

[[pools]]
name = "b"
process_model.ping_interval = "5s"
[pools.recycling]
schedule = [
  "03:00",   # first
  "04:00", "05:00",
]

[[sites]]
name = "s"
bindings = ["http/*:80:", "http/*:81:"]
[[sites.applications]]
path = "/"
[[sites.applications]]
"path" = "/api"
env = { a = "[", b = 2 }
pool = "x"

[[sites]]
name = "t"
[[sites.applications]]
path = "/"
'''


def test_lines():
    loc = LineLocator(TEXT)
    assert loc.line_of("server") == 2
    assert loc.line_of("server.run_dir") == 3
    assert loc.line_of("server.log_dir") == 4
    assert loc.line_of("pool_defaults.process_model.idle_timeout") == 9
    assert loc.line_of("pools[0]") == 11
    assert loc.line_of("pools[0].name") == 12
    assert loc.line_of("pools[1].name") == 15
    assert loc.line_of("pools[1].process_model.ping_interval") == 16
    assert loc.line_of("pools[1].recycling") == 17
    assert loc.line_of("pools[1].recycling.schedule") == 18
    assert loc.line_of("pools[1].recycling.schedule[0]") == 19
    assert loc.line_of("pools[1].recycling.schedule[1]") == 20
    assert loc.line_of("pools[1].recycling.schedule[2]") == 20
    assert loc.line_of("sites[0].bindings[1]") == 25
    assert loc.line_of("sites[0].applications[0].path") == 27
    assert loc.line_of("sites[0].applications[1].path") == 29
    assert loc.line_of("sites[0].applications[1].pool") == 31
    assert loc.line_of("sites[1].name") == 34
    assert loc.line_of("sites[1].applications[0].path") == 36


def test_strings_are_not_keys():
    loc = LineLocator(TEXT)
    assert "server.not_a_key" not in loc.lines
    assert "not_a_key" not in loc.lines


def test_falls_back_to_enclosing_table():
    loc = LineLocator(TEXT)
    assert loc.line_of("pools[1].threads") == 14
    assert loc.line_of("pools[1].process_model.idle_timeout") == 16  # the dotted key's parent
    assert loc.line_of("sites[1].applications[0].pool") == 35
    assert loc.line_of("limits.max_url") is None


def test_parent_path():
    assert parent_path("a.b[2].c") == "a.b[2]"
    assert parent_path("a.b[2]") == "a.b"
    assert parent_path("a") == ""
