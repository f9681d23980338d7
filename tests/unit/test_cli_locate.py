"""Finding a server's run dir without validating its config file, the -b forms, and the safety
of the fallback run dirs (wasp/config/rundir.py)."""

from __future__ import annotations

import os
import stat

import pytest

from wasp.cli import locate
from wasp.cli import main as cli
from wasp.cli.binds import BindError, parse_bind
from wasp.config import rundir

INVALID = """
[server]
run_dir = "state/run"
log_dir = "state/logs"

[[pools]]
name = "P"
max_processes = "two"
unknown_key = 1
"""


def test_run_dir_of_an_invalid_config_is_read_without_validating(tmp_path):
    path = tmp_path / "wasp.toml"
    path.write_text(INVALID)
    assert locate.dirs_from_file(str(path)) == (str(tmp_path / "state" / "run"), str(tmp_path / "state" / "logs"))
    args = cli.build_parser().parse_args(["list", "pools", "-c", str(path)])
    assert cli.locate_run_dir(args) == str(tmp_path / "state" / "run")


def test_run_dir_defaults_when_the_file_names_none(tmp_path):
    path = tmp_path / "wasp.toml"
    path.write_text("[[pools]]\nname = 3\n")
    assert locate.dirs_from_file(str(path)) == (str(tmp_path / "run"), str(tmp_path / "logs"))


@pytest.mark.parametrize("text", ["[server\nrun_dir = 'x'", '[server]\nrun_dir = 5\n', b"\xff\xfe"])
def test_unreadable_run_dir_says_why_and_suggests_run_dir(tmp_path, capsys, text):
    path = tmp_path / "wasp.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert cli.main(["list", "pools", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR ( message:") and "--run-dir" in err and str(path) in err, err


def test_reload_with_an_invalid_file_reaches_for_the_server(tmp_path, capsys):
    path = tmp_path / "wasp.toml"
    path.write_text(INVALID)
    # No server runs: the error is that, not the file's problems.
    assert cli.main(["reload", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Cannot reach the wasp server" in err and str(tmp_path / "state" / "run") in err, err
    assert "max_processes" not in err


@pytest.mark.parametrize("text, ip_port", [
    ("8000", "127.0.0.1:8000"), ("localhost:8000", "127.0.0.1:8000"), (":8000", "*:8000"),
    ("*:8000", "*:8000"), ("0.0.0.0:8000", "0.0.0.0:8000"), ("127.0.0.1:80", "127.0.0.1:80"),
    ("[::]:8000", "[::]:8000"), ("[::1]:8000", "[::1]:8000"), ("[0:0::1]:9", "[::1]:9"),
    ("unix:/run/app.sock", "unix:/run/app.sock"),
])
def test_bind_forms(text, ip_port):
    assert parse_bind(text) == ip_port


def test_unix_bind_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_bind("unix:app.sock") == f"unix:{tmp_path}/app.sock"


@pytest.mark.parametrize("text, says", [
    ("foo:bar", "-b: 'foo:bar' is not HOST:PORT, :PORT, PORT or unix:PATH"),
    ("example.com:80", "does not look up host names"), ("127.0.0.1:0", "outside 1-65535"),
    ("::1:8000", "brackets"), ("[::1]8000", "[ADDRESS]:PORT"), ("[zz]:80", "not an IPv6 address"),
    ("", "is not HOST:PORT"), ("localhost", "is not HOST:PORT"), ("99999", "outside 1-65535"),
    ("unix:", "needs the path"), ("unix:/" + "a" * 120, "at most 107 bytes"),
])
def test_bind_errors_speak_the_users_terms(text, says):
    with pytest.raises(BindError) as info:
        parse_bind(text)
    assert says in str(info.value)
    assert "http/" not in str(info.value)


def test_serve_bad_bind_is_usage_in_those_terms(capsys):
    assert cli.main(["serve", "m:app", "-b", "foo:bar"]) == 2
    err = capsys.readouterr().err
    assert "-b: 'foo:bar' is not HOST:PORT, :PORT, PORT or unix:PATH" in err and "http/" not in err


def test_serve_one_app_flags_need_app_spec(capsys):
    for flags in (["--workers", "2"], ["--threads", "2"], ["-b", "8000"]):
        assert cli.main(["serve", *flags]) == 2
    assert "goes with APP_SPEC" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == "wasp 0.1.0\n"


@pytest.mark.parametrize("text, seq, seconds", [("0", 0, None), ("42", 42, None), ("30s", 0, 30),
                                                ("10m", 0, 600), ("1h", 0, 3600), ("2d", 0, 172800)])
def test_since_forms(text, seq, seconds):
    assert cli.parse_since(text) == (seq, seconds)


@pytest.mark.parametrize("text", ["-1", "ten", "10x", "m", "1.5.2h", "nanh"])
def test_since_rejects_other_text(text):
    with pytest.raises(cli.Usage):
        cli.parse_since(text)


# ---------------------------------------------------------------------- the run dir's safety

def test_private_dir_is_created_0700(tmp_path):
    path = tmp_path / "base"
    old = os.umask(0o077 | 0o200)  # a umask that even takes our own write bit
    try:
        rundir.private_dir(str(path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
    rundir.private_dir(str(path))  # ours and private: accepted again


@pytest.mark.parametrize("mode", [0o777, 0o750, 0o701, 0o1777])
def test_private_dir_refuses_group_or_other_bits(tmp_path, mode):
    path = tmp_path / "base"
    path.mkdir()
    os.chmod(path, mode)
    with pytest.raises(rundir.RunDirError, match=f"{mode:04o}.*chmod 700"):
        rundir.private_dir(str(path))
    assert stat.S_IMODE(os.lstat(path).st_mode) == mode  # refused, not silently "fixed"


@pytest.mark.parametrize("mode,refused", [(0o755, False), (0o750, False), (0o775, True), (0o757, True)])
def test_a_named_run_dir_may_be_readable_but_never_writable_by_others(tmp_path, mode, refused):
    path = tmp_path / "run"
    path.mkdir()
    os.chmod(path, mode)
    if refused:
        with pytest.raises(rundir.RunDirError, match="may write to it"):
            rundir.private_dir(str(path), forbidden=0o022)
    else:
        rundir.private_dir(str(path), forbidden=0o022)
    assert stat.S_IMODE(os.lstat(path).st_mode) == mode


def test_private_dir_refuses_a_symlink(tmp_path):
    target = tmp_path / "theirs"
    target.mkdir(mode=0o700)
    link = tmp_path / "base"
    link.symlink_to(target)
    with pytest.raises(rundir.RunDirError, match="symbolic link"):
        rundir.private_dir(str(link))


def test_private_dir_refuses_a_file(tmp_path):
    path = tmp_path / "base"
    path.write_text("")
    with pytest.raises(rundir.RunDirError):
        rundir.private_dir(str(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_private_dir_refuses_another_owner(tmp_path):
    import pwd
    nobody = pwd.getpwnam("nobody")
    path = tmp_path / "base"
    path.mkdir(mode=0o700)
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(rundir.RunDirError, match=f"belongs to uid {nobody.pw_uid}"):
        rundir.private_dir(str(path))


def test_locating_ignores_an_unsafe_base(tmp_path, monkeypatch):
    base = tmp_path / "wasp"
    base.mkdir()
    os.chmod(base, 0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert locate.live_servers(str(tmp_path)) == ([], [])
