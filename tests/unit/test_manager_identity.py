"""Which account a pool's workers run as, decided from mode bits (no process is started)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile

import pytest

from wasp.config.model import Identity
from wasp.manager import identity
from wasp.manager.identity import Account

NOBODY = Account("nobody", 65534, 65534, (), "/nonexistent")


@pytest.fixture
def tree():
    """A folder every user can reach (pytest's own tmp folder is private to its user)."""
    top = tempfile.mkdtemp(prefix="wasp-identity-")
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def make(path: str, mode: int, uid: int | None = None, gid: int | None = None, file: bool = False) -> str:
    if file:
        with open(path, "w") as f:
            f.write("#!/bin/sh\n")
    else:
        os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if (uid is not None or gid is not None) and os.geteuid() == 0:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    return path


def test_blocked_names_the_folder_that_stops_the_user(tree):
    private = make(os.path.join(tree, "private"), 0o700)
    python = make(os.path.join(private, "python"), 0o755, file=True)
    why = identity.blocked(python, NOBODY, 5)
    assert why is not None and why.startswith(f"{private} is drwx------ ")
    assert identity.blocked(tree, NOBODY, 5) is None


def test_blocked_checks_the_last_component_for_what_is_asked(tree):
    unreadable = make(os.path.join(tree, "app.py"), 0o600, file=True)
    assert identity.blocked(unreadable, NOBODY, 4) is not None
    assert identity.blocked(os.path.join(tree, "missing"), NOBODY, 4).endswith("No such file or directory")


def test_group_bits_apply_to_the_users_groups(tree):
    shared = make(os.path.join(tree, "shared"), 0o750, uid=0, gid=4242)
    member = Account("svc", 990, 990, (4242,), "/")
    outsider = Account("svc", 990, 990, (), "/")
    assert identity.blocked(shared, member, 5) is None
    assert identity.blocked(shared, outsider, 5) is not None


def test_root_is_never_blocked(tree):
    private = make(os.path.join(tree, "private"), 0o700)
    assert identity.blocked(private, Account("root", 0, 0, (), "/root"), 5) is None


def test_a_manager_that_is_not_root_keeps_its_user():
    assert identity.resolve(Identity(), sys.executable, "/", [], euid=1000) == identity.Resolved(None)
    resolved = identity.resolve(Identity(user="nobody"), sys.executable, "/", [], euid=1000)
    assert resolved.account is None
    [warning] = resolved.warnings
    assert "identity.user 'nobody' is ignored" in warning


def test_root_defaults_to_an_unprivileged_account(tree):
    python = make(os.path.join(tree, "python"), 0o755, file=True)
    resolved = identity.resolve(Identity(), python, tree, [tree], euid=0)
    assert resolved.account is not None and resolved.account.uid != 0
    assert resolved.account.user == identity.default_user()
    assert resolved.warnings == ()


def test_default_account_that_cannot_run_the_interpreter_falls_back_with_a_warning(tree):
    private = make(os.path.join(tree, "private"), 0o700)
    python = make(os.path.join(private, "python"), 0o755, file=True)
    resolved = identity.resolve(Identity(), python, tree, [], euid=0)
    assert resolved.account is None
    [warning] = resolved.warnings
    assert "run as root" in warning and private in warning and "identity.user" in warning


def test_a_named_account_is_never_replaced(tree):
    private = make(os.path.join(tree, "private"), 0o700)
    python = make(os.path.join(private, "python"), 0o755, file=True)
    with pytest.raises(PermissionError, match="user 'nobody' cannot use"):
        identity.resolve(Identity(user="nobody"), python, tree, [], euid=0)


def test_unreadable_app_folders_are_reported(tree):
    python = make(os.path.join(tree, "python"), 0o755, file=True)
    app = make(os.path.join(tree, "app"), 0o700)
    resolved = identity.resolve(Identity(user="nobody"), python, tree, [app], euid=0)
    assert resolved.account.user == "nobody"
    [warning] = resolved.warnings
    assert "cannot read" in warning and app in warning


def test_explicit_root_and_unknown_users():
    resolved = identity.resolve(Identity(user="root"), sys.executable, "/", [], euid=0)
    assert resolved.account.uid == 0 and resolved.warnings == ()
    with pytest.raises(KeyError):
        identity.resolve(Identity(user="no-such-user-wasp"), sys.executable, "/", [], euid=0)
    with pytest.raises(KeyError):
        identity.account("nobody", "no-such-group-wasp")


def test_account_takes_the_named_group_and_login_groups():
    acct = identity.account("nobody", "0")
    assert acct.user == "nobody" and acct.gid == 0
    assert identity.environment(acct) == {"HOME": acct.home, "USER": "nobody", "LOGNAME": "nobody"}


def test_mode_string_in_messages(tree):
    private = make(os.path.join(tree, "p"), 0o700)
    assert stat.filemode(os.stat(private).st_mode) in identity.blocked(os.path.join(private, "x"), NOBODY, 4)
