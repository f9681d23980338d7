"""What `wasp validate` (and serve, and a reload) checks on this machine beyond the loader:
wasp.manager.environment. These run the interpreter a pool names (spawn.probe), once per test."""

from __future__ import annotations

import sys

from wasp.config.load import load
from wasp.manager import environment, spawn


_SITE = '\n[[sites]]\nname = "S"\nid = 1\nbindings = ["http/*:8080:"]\n[[sites.applications]]\npool = "P"\napp = "m:app"\n'


def _config(tmp_path, pool: str):
    path = tmp_path / "wasp.toml"
    path.write_text(f'[server]\nrun_dir = "run"\n\n[[pools]]\nname = "P"\n{pool}\n{_SITE}')
    return load(str(path)), str(path)


def test_a_usable_config_has_no_problems(tmp_path):
    config, _ = _config(tmp_path, f'python = "{sys.executable}"\nidentity = {{ user = "root", group = "0" }}')
    assert environment.check(config) == []


def test_a_missing_python_is_reported_with_its_path_and_line(tmp_path):
    config, path = _config(tmp_path, 'python = "/nonexistent/bin/python"')
    [problem] = environment.check(config)
    assert (problem.path, problem.line, problem.file) == ("pools[0].python", 6, path)
    assert problem.message == "/nonexistent/bin/python does not exist"


def test_a_python_command_not_on_path(tmp_path):
    config, _ = _config(tmp_path, 'python = "python-that-is-not-there"')
    [problem] = environment.check(config)
    assert problem.message == "no 'python-that-is-not-there' on PATH"


def test_a_python_that_is_no_program(tmp_path):
    config, _ = _config(tmp_path, f'python = "{tmp_path}"')
    [problem] = environment.check(config)
    assert "is not an executable file" in problem.message


def test_another_python_gets_wasp_from_the_server(tmp_path):
    # A link to the base interpreter outside any venv: none of wasp's packages are its own.
    python = tmp_path / "python3"
    python.symlink_to(sys._base_executable)
    config, _ = _config(tmp_path, f'python = "{python}"')
    assert environment.check(config) == []


def test_a_python_that_cannot_import_wasp_says_so_and_how_to_fix_it(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text('import sys\nsys.modules["msgspec"] = None\n')
    python = tmp_path / "python3"
    python.symlink_to(sys._base_executable)
    config, _ = _config(tmp_path, f'python = "{python}"\nenvironment_variables = {{ PYTHONPATH = "{hooks}" }}')
    [problem] = environment.check(config)  # with the pool's own environment, as its workers get it
    assert problem.path == "pools[0].python"
    assert f"{python} (Python {sys.version_info[0]}.{sys.version_info[1]}) cannot import wasp: " \
           "import of msgspec halted" in problem.message, problem.message
    assert "Use virtualenv = " in problem.message and "pip install wasp-server" in problem.message


def test_a_python_that_is_not_python(tmp_path):
    config, _ = _config(tmp_path, 'python = "/bin/false"')
    [problem] = environment.check(config)
    assert problem.message == "python '/bin/false' exited with code 1 while importing wasp: no output"


def test_a_virtualenv_that_is_not_one(tmp_path):
    config, _ = _config(tmp_path, 'virtualenv = "nothing-here"')
    [problem] = environment.check(config)
    assert problem.path == "pools[0].virtualenv" and "does not exist" in problem.message


def test_identity_accounts_must_exist(tmp_path):
    config, _ = _config(tmp_path, 'identity = { user = "no-such-user-wasp", group = "no-such-group-wasp" }')
    problems = environment.check(config)
    assert [(p.path, p.message) for p in problems] == [
        ("pools[0].identity.user", "no user 'no-such-user-wasp' on this machine"),
        ("pools[0].identity.group", "no group 'no-such-group-wasp' on this machine")]
    assert environment.check(config, identities=False) == []
