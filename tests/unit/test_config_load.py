"""The strict loader: types, units, ranges, literals, syntax, paths and lines, all problems at once."""

from __future__ import annotations

import os
import textwrap

import pytest

from wasp.config.load import load, load_text, merge
from wasp.config.model import Config, Duration, Size
from wasp.errors import ConfigError

SITE = '''
[[pools]]
name = "DefaultAppPool"

[[sites]]
name = "Default Web Site"
id = 1
bindings = ["http/*:8080:"]

[[sites.applications]]
path = "/"
app = "m:app"
'''


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


def site_for(pool: str) -> str:
    """A minimal site for fragments that test something else: a config must serve something."""
    return (f'\n[[sites]]\nname = "s"\nid = 1\nbindings = ["http/*:8080:"]\n'
            f'[[sites.applications]]\npath = "/"\npool = "{pool}"\napp = "m:app"\n')


def test_minimal_config_source():
    config = load_text(SITE)
    assert config.source == "<string>"


@pytest.mark.parametrize("text", ["", "\n\n", '[server]\nrun_dir = "run"\n',
                                  SITE[:SITE.index("[[sites]]")]])
def test_empty_or_truncated_config_is_an_error(text):
    """It would decode to all defaults and serve nothing: no port, no worker."""
    with pytest.raises(ConfigError) as info:
        load_text(text)
    [problem] = info.value.problems
    assert problem.path == "sites" and "no site is defined" in problem.message


def test_site_with_no_binding_is_an_error():
    path, line, message = one(SITE.replace('bindings = ["http/*:8080:"]', "bindings = []"))
    assert (path, line) == ("sites[0].bindings", 8) and "has no binding" in message


def test_application_with_neither_app_nor_physical_path_is_an_error():
    path, line, message = one(SITE.replace('app = "m:app"\n', ""))
    assert (path, line) == ("sites[0].applications[0]", 10)
    assert "neither app" in message and "physical_path" in message


def test_physical_path_must_be_an_existing_folder(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "file.txt").write_text("x")
    config_file = tmp_path / "wasp.toml"
    config_file.write_text(SITE.replace('app = "m:app"', 'physical_path = "www"'))
    assert load(str(config_file)).sites[0].applications[0].physical_path == str(tmp_path / "www")
    for value, what in (("nope", "does not exist"), ("file.txt", "is not a folder")):
        config_file.write_text(SITE.replace('app = "m:app"', f'physical_path = "{value}"'))
        with pytest.raises(ConfigError) as info:
            load(str(config_file))
        [problem] = info.value.problems
        assert (problem.path, problem.line) == ("sites[0].applications[0].physical_path", 12)
        assert problem.message == f"physical_path {tmp_path / value} {what}"


def test_minimal_site_loads_with_defaults():
    config = load_text(SITE)
    pool = config.pools[0]
    assert pool.queue_length == 1000
    assert pool.process_model.idle_timeout == 1200
    assert isinstance(pool.process_model.idle_timeout, Duration)
    assert isinstance(config.limits.max_request_bytes, Size)
    assert config.sites[0].applications[0].pool == "DefaultAppPool"


def test_unknown_key_with_suggestion():
    path, line, message = one('''
        [[pools]]
        name = "p"
        [pools.process_model]
        idle_timeot = "5m"
    ''')
    assert (path, line) == ("pools[0].process_model.idle_timeot", 5)
    assert "unknown key" in message and "idle_timeout" in message


def test_unknown_top_level_key_and_section():
    found = problems('''
        colour = "red"
        [serverz]
        run_dir = "x"
    ''')
    assert [(p, line) for p, line, _ in found] == [("colour", 2), ("serverz", 3)]
    assert "server" in found[1][2]


def test_source_cannot_be_set_from_the_file():
    assert one('source = "x"')[0] == "source"


def test_wrong_type():
    path, line, message = one('''
        [[pools]]
        name = "p"
        threads = "many"
    ''')
    assert (path, line) == ("pools[0].threads", 4)
    assert message == "expected an integer, got a string"


def test_bool_is_not_an_integer_and_integer_is_not_a_bool():
    found = problems('''
        [[pools]]
        name = "p"
        threads = true
        auto_start = 1
    ''')
    assert [(p, m) for p, _, m in found] == [
        ("pools[0].threads", "expected an integer, got a boolean"),
        ("pools[0].auto_start", "expected a boolean, got an integer"),
    ]


def test_table_expected():
    path, line, message = one('''
        [[pools]]
        name = "p"
        process_model = 5
    ''')
    assert (path, line) == ("pools[0].process_model", 4)
    assert "expected a table" in message


def test_list_item_type():
    path, line, message = one('''
        [[pools]]
        name = "p"
        [pools.recycling]
        schedule = ["03:00", 4]
    ''')
    assert (path, line) == ("pools[0].recycling.schedule[1]", 5)
    assert "expected a string" in message


def test_unquoted_toml_time_gets_a_hint():
    path, _, message = one('''
        [[pools]]
        name = "p"
        recycling.schedule = [03:00:00]
    ''')
    assert path == "pools[0].recycling.schedule[0]"
    assert "got a time" in message and "quotes" in message


@pytest.mark.parametrize("value, fragment", [
    ('"-5s"', "negative"), ("-5", "negative"), ('"5 minutes"', "not a duration"), ("true", "got a boolean"),
])
def test_bad_duration(value, fragment):
    path, line, message = one(f'''
        [[pools]]
        name = "p"
        [pools.process_model]
        ping_interval = "1m"
        idle_timeout = {value}
    ''')
    assert (path, line) == ("pools[0].process_model.idle_timeout", 6)
    assert fragment in message


def test_durations_and_sizes_decode():
    config = load_text('''
        [limits]
        connection_timeout = "250ms"
        header_wait_timeout = 30
        max_request_bytes = "64KiB"
        max_url = 4096
        max_allowed_content_length = "1.5GB"
        [[pools]]
        name = "p"
        recycling.memory = "512MB"
        recycling.private_memory = "512MiB"
        recycling.time = "1d"
    ''' + site_for("p"))
    assert config.limits.connection_timeout == 0.25
    assert config.limits.header_wait_timeout == 30.0
    assert config.limits.max_request_bytes == 65536
    assert config.limits.max_url == 4096
    assert config.limits.max_allowed_content_length == 1_500_000_000
    assert config.pools[0].recycling.memory == 512_000_000
    assert config.pools[0].recycling.private_memory == 512 * 1024 * 1024
    assert config.pools[0].recycling.time == 86400


@pytest.mark.parametrize("value, fragment", [
    ('"-1MB"', "negative"), ('"12 furlongs"', "not a size"), ("1.5", "whole number"), ('"0.5B"', "whole number"),
])
def test_bad_size(value, fragment):
    path, line, message = one(f'''
        [limits]
        max_url = {value}
    ''')
    assert (path, line) == ("limits.max_url", 3)
    assert fragment in message


@pytest.mark.parametrize("key, value", [("queue_length", 9), ("queue_length", 65536), ("max_processes", 0),
                                        ("threads", 1025)])
def test_out_of_range(key, value):
    path, line, message = one(f'''
        [[pools]]
        name = "p"
        {key} = {value}
    ''')
    assert (path, line) == (f"pools[0].{key}", 4)
    assert "out of range" in message and "allowed" in message


def test_site_id_must_be_positive():
    path, _, message = one(SITE.replace("id = 1", "id = 0"))
    assert path == "sites[0].id"
    assert "at least 1" in message


def test_literal_lists_allowed_values():
    path, line, message = one('''
        [[pools]]
        name = "p"
        start_mode = "eager"
    ''')
    assert (path, line) == ("pools[0].start_mode", 4)
    assert message == '"eager" is not allowed; expected one of "on_demand", "always_running"'


def test_missing_required_keys():
    found = problems('''
        [[sites]]
        name = "s"
    ''')
    assert [(p, line) for p, line, _ in found] == [("sites[0].id", 2), ("sites[0].bindings", 2)]
    assert all("required key is missing" in m for _, _, m in found)


def test_toml_syntax_error_has_its_line():
    path, line, message = one('''
        [server]
        run_dir = "x"
        log_dir =
    ''')
    assert path == "" and line == 4
    assert message.startswith("TOML syntax error")


def test_toml_duplicate_key_is_a_syntax_error():
    _, line, message = one('[server]\nrun_dir = "a"\nrun_dir = "b"\n')
    assert line == 3 and "TOML" in message


def test_many_problems_at_once_sorted_by_line():
    found = problems('''
        [server]
        run_dir = 5
        [limits]
        max_url = "big"
        [[pools]]
        name = "a|b"
        threads = 0
        [[pools]]
        name = "p"
        start_mode = "sometimes"
        [[sites]]
        name = "s"
        id = 1
        bindings = ["https/*:443:"]
        [[sites.applications]]
        path = "api"
        pool = "nope"
        app = "m:app"
    ''')
    assert [(p, line) for p, line, _ in found] == [
        ("server.run_dir", 3), ("limits.max_url", 5), ("pools[0].name", 7), ("pools[0].threads", 8),
        ("pools[1].start_mode", 11), ("sites[0].bindings[0]", 15), ("sites[0].applications", 16),
        ("sites[0].applications[0].path", 17), ("sites[0].applications[0].pool", 18),
    ]


def test_problem_str_names_file_line_and_path(tmp_path):
    path = tmp_path / "wasp.toml"
    path.write_text('[[pools]]\nname = "p"\nthreads = 0\n')
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert str(info.value).startswith(f"{path}:3: pools[0].threads: ")
    assert info.value.problems[0].file == str(path)


def test_load_text_problem_str_without_file():
    with pytest.raises(ConfigError) as info:
        load_text('[[pools]]\nname = "p"\nthreads = 0\n')
    assert str(info.value).startswith("line 3: pools[0].threads: ")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "nope.toml"))
    assert "cannot read" in info.value.problems[0].message


def test_not_utf8(tmp_path):
    path = tmp_path / "wasp.toml"
    path.write_bytes(b'[server]\nrun_dir = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.problems[0].line == 2


# --- pool_defaults ---------------------------------------------------------------------------

def test_pool_defaults_are_inherited_and_overridden():
    config = load_text('''
        [pool_defaults]
        threads = 4
        queue_length = 50
        [pool_defaults.process_model]
        idle_timeout = "5m"
        ping_interval = "10s"
        [pool_defaults.environment_variables]
        A = "1"
        B = "2"
        [[pools]]
        name = "inherits"
        [[pools]]
        name = "overrides"
        threads = 8
        environment_variables = { B = "two", C = "3" }
        [pools.process_model]
        idle_timeout = "0s"
    ''' + site_for("inherits"))
    inherits, overrides = config.pools
    assert (inherits.threads, inherits.queue_length) == (4, 50)
    assert inherits.process_model.idle_timeout == 300
    assert inherits.process_model.ping_interval == 10
    assert inherits.environment_variables == {"A": "1", "B": "2"}
    assert (overrides.threads, overrides.queue_length) == (8, 50)
    assert overrides.process_model.idle_timeout == 0
    assert overrides.process_model.ping_interval == 10  # sub-tables merge key by key
    assert overrides.process_model.startup_time_limit == 90
    assert overrides.environment_variables == {"A": "1", "B": "two", "C": "3"}


def test_pool_defaults_lists_are_replaced_not_merged():
    config = load_text('''
        [pool_defaults.recycling]
        schedule = ["03:00"]
        [[pools]]
        name = "p"
        recycling.schedule = ["04:00"]
    ''' + site_for("p"))
    assert config.pools[0].recycling.schedule == ["04:00"]


def test_pool_defaults_problem_is_reported_once_under_its_own_path():
    found = problems('''
        [pool_defaults]
        threads = 0
        [pool_defaults.process_model]
        idle_timout = "1m"
        [[pools]]
        name = "a"
        [[pools]]
        name = "b"
    ''')
    assert [(p, line) for p, line, _ in found] == [("pool_defaults.threads", 3),
                                                   ("pool_defaults.process_model.idle_timout", 5)]


def test_pool_defaults_cannot_name_a_pool():
    path, line, message = one('''
        [pool_defaults]
        name = "x"
    ''')
    assert (path, line) == ("pool_defaults.name", 3)
    assert "cannot be inherited" in message


def test_pool_defaults_must_be_a_table():
    assert one("pool_defaults = 3")[0] == "pool_defaults"


def test_merge():
    assert merge({"a": 1, "t": {"x": 1, "y": 2}, "l": [1]}, {"t": {"y": 3}, "l": [2], "b": 2}) == \
        {"a": 1, "t": {"x": 1, "y": 3}, "l": [2], "b": 2}


# --- paths ----------------------------------------------------------------------------------

def test_relative_paths_are_made_absolute_against_the_file(tmp_path):
    folder = tmp_path / "conf"
    folder.mkdir()
    (tmp_path / "www").mkdir()
    path = folder / "wasp.toml"
    path.write_text(textwrap.dedent('''
        [server]
        run_dir = "run"
        log_dir = "/var/log/wasp"
        [[pools]]
        name = "p"
        python = "venv/bin/python"
        [[pools]]
        name = "q"
        python = "python3"
        [[sites]]
        name = "s"
        id = 1
        bindings = ["http/*:8080:"]
        [[sites.applications]]
        path = "/"
        pool = "p"
        physical_path = "../www"
        python_path = ["src", "/opt/lib"]
        [[sites.applications]]
        path = "/x"
        app = "m:app"
        pool = "p"
    '''))
    config = load(str(path))
    assert config.source == str(path)
    assert config.server.run_dir == str(folder / "run")
    assert config.server.log_dir == "/var/log/wasp"
    assert config.pools[0].python == str(folder / "venv/bin/python")
    assert config.pools[1].python == "python3"
    app = config.sites[0].applications[0]
    assert app.physical_path == str(tmp_path / "www")
    assert app.python_path == [str(folder / "src"), "/opt/lib"]
    assert config.sites[0].applications[1].physical_path == ""


def test_load_text_resolves_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_text('[server]\nrun_dir = "run"\n' + SITE)
    assert config.server.run_dir == str(tmp_path / "run")


def test_load_relative_path_gives_absolute_source(tmp_path, monkeypatch):
    (tmp_path / "wasp.toml").write_text(SITE)
    monkeypatch.chdir(tmp_path)
    assert load("wasp.toml").source == str(tmp_path / "wasp.toml")


ARCHITECTURE_EXAMPLE = '''
[server]
run_dir = "run"                 # admin socket, pid file
log_dir = "logs"                # W3C logs (W3SVC<site id>/u_exYYMMDD.log), httperr, events

[pool_defaults]                 # applicationPoolDefaults; every pool inherits, may override
queue_length = 1000
max_processes = 1               # >1 = web garden
start_mode = "on_demand"        # or "always_running"
threads = 16                    # WSGI threads per worker
[pool_defaults.process_model]
idle_timeout = "20m"            # "0s" disables
ping_interval = "30s"
ping_response_time = "90s"
startup_time_limit = "90s"
shutdown_time_limit = "90s"
[pool_defaults.recycling]
time = "29h"
requests = 0
schedule = []                   # ["03:00", ...] local time
memory = "0"                    # virtual, "0" = off
private_memory = "0"
disallow_overlapping_rotation = false
[pool_defaults.failure]
rapid_fail_protection = true
rapid_fail_protection_interval = "5m"
rapid_fail_protection_max_crashes = 5
load_balancer_capabilities = "http_level"   # or "tcp_level": close instead of 503

[[pools]]
name = "DefaultAppPool"

[[sites]]
name = "Default Web Site"
id = 1
bindings = ["http/*:8080:", "http/127.0.0.1:8080:api.example.test"]   # appcmd's protocol/ip:port:host

[[sites.applications]]
path = "/"
pool = "DefaultAppPool"
physical_path = "www"           # static content root of this application
app = "mysite.wsgi:application" # optional Python app; interface "auto" | "wsgi" | "asgi"
'''


def test_architecture_example_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "www").mkdir()
    config = load_text(ARCHITECTURE_EXAMPLE)
    assert isinstance(config, Config)
    assert config.pools[0].process_model.idle_timeout == 1200
    assert config.pools[0].recycling.time == 29 * 3600
    assert config.sites[0].applications[0].physical_path == os.path.join(os.getcwd(), "www")


def test_loaded_config_round_trips_through_the_wire(tmp_path, monkeypatch):
    from wasp.config.model import decode, encode
    monkeypatch.chdir(tmp_path)
    (tmp_path / "www").mkdir()
    config = load_text(ARCHITECTURE_EXAMPLE)
    assert decode(encode(config)) == config


# ---- http_errors: site level, application level, inheritance ----

HTTP_ERRORS = '''
[[pools]]
name = "DefaultAppPool"

[[sites]]
name = "A"
id = 1
bindings = ["http/*:8080:a.test"]
[sites.http_errors]
error_mode = "Custom"
[[sites.applications]]
path = "/"
app = "m:app"
[[sites.applications]]
path = "/debug"
app = "m:app"
[sites.applications.http_errors]
error_mode = "Detailed"

[[sites]]
name = "B"
id = 2
bindings = ["http/*:8080:b.test"]
[[sites.applications]]
path = "/"
app = "m:app"
'''


def test_http_errors_default_is_iis_detailed_local_only_and_apps_inherit_the_site():
    config = load_text(HTTP_ERRORS)
    a, b = config.sites
    assert a.http_errors.error_mode == "Custom"
    assert [app.http_errors.error_mode for app in a.applications] == ["Custom", "Detailed"]
    assert b.http_errors.error_mode == "DetailedLocalOnly"
    assert b.applications[0].http_errors.error_mode == "DetailedLocalOnly"
    # what the manager sends a worker carries the effective value of each application
    from wasp.config import model
    again = model.decode(model.encode(config))
    assert [app.http_errors.error_mode for app in again.sites[0].applications] == ["Custom", "Detailed"]


def test_http_errors_bad_value_and_unknown_key_name_their_path():
    found = problems(HTTP_ERRORS.replace('error_mode = "Custom"', 'error_mode = "custom"')
                     .replace('error_mode = "Detailed"', 'errormode = "Detailed"'))
    assert [(path, line) for path, line, _m in found] == [
        ("sites[0].http_errors.error_mode", 10), ("sites[0].applications[1].http_errors.errormode", 18)]
    assert "DetailedLocalOnly" in found[0][2]
