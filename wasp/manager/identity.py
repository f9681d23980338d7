"""Which account a pool's workers run as (IIS processModel identity). No process is started here.

A manager running as root never runs a pool's workers as root unless told to: a pool that names no
`identity.user` runs as the dedicated system user `wasp` when the system has one, else as `nobody`
(IIS's ApplicationPoolIdentity: an unprivileged account of its own). A manager that is not root
cannot switch users, so its workers run as itself and `identity` is ignored.

The one exception is spelled out in `resolve`: when the default account cannot even execute the
interpreter or read the wasp package (a pyenv under /root, say), no worker could ever start, so the
workers run as the manager's user and the caller logs why (event 9019). An identity the config
names is never replaced.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass

#: Tried in order for a pool that names no identity when the manager is root.
DEFAULT_USERS = ("wasp", "nobody")

_R, _W, _X = 4, 2, 1


@dataclass(frozen=True)
class Account:
    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups (the user's, as login would set them)
    home: str


@dataclass(frozen=True)
class Resolved:
    """The account to switch to (None: run as the manager's own user) and, when the config's
    wish could not be followed or the workers may not be able to read something, why."""

    account: Account | None
    warnings: tuple[str, ...] = ()


def account(user: str, group: str = "") -> Account:
    """Look up a user (name or number) and optionally a group. Raises KeyError."""
    entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    if group:
        gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
    else:
        gid = entry.pw_gid
    try:
        groups = tuple(g for g in os.getgrouplist(entry.pw_name, gid) if g != gid)
    except OSError:
        groups = ()
    return Account(entry.pw_name, entry.pw_uid, gid, groups, entry.pw_dir)


def default_user() -> str:
    for name in DEFAULT_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "nobody"


def blocked(path: str, acct: Account, need: int) -> str | None:
    """Why `acct` cannot use `path` with the access bits `need` (4 read, 2 write, 1 execute/search
    on the last component; every directory above it needs search), or None when it can.

    Mode bits and owners only, as the kernel checks them for an unprivileged user; ACLs are not
    read, so an ACL that grants access is reported as blocked (a false alarm, never a miss)."""
    if acct.uid == 0:
        return None
    path = os.path.abspath(path)
    steps = []
    head = path
    while True:
        steps.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    steps.reverse()  # "/", "/srv", "/srv/app", ...
    for current in steps:
        try:
            st = os.stat(current)
        except OSError as exc:
            return f"{current}: {exc.strerror}"
        bits = need if current == path else _X
        if not _allowed(st, acct, bits):
            return (f"{current} is {stat.filemode(st.st_mode)} "
                    f"{_name(st.st_uid, pwd.getpwuid, 'pw_name')}:{_name(st.st_gid, grp.getgrgid, 'gr_name')}")
    return None


def _allowed(st: os.stat_result, acct: Account, bits: int) -> bool:
    if st.st_uid == acct.uid:
        granted = (st.st_mode >> 6) & 7
    elif st.st_gid == acct.gid or st.st_gid in acct.groups:
        granted = (st.st_mode >> 3) & 7
    else:
        granted = st.st_mode & 7
    return granted & bits == bits


def _name(ident: int, lookup, attr: str) -> str:
    try:
        return getattr(lookup(ident), attr)
    except KeyError:
        return str(ident)


def resolve(identity, interpreter: str, package_root: str, app_paths: list[str],
            euid: int | None = None) -> Resolved:
    """The account for a pool's workers. `identity` is the pool's `Identity`; `interpreter` the
    executable the workers run; `package_root` where `wasp` is imported from; `app_paths` the
    folders of the pool's applications (physical_path, python_path), checked for reading so a
    worker that will not see its app is reported before it fails.

    Raises KeyError for a user or group that does not exist, and PermissionError when the account
    the config names cannot run the interpreter or read wasp."""
    euid = os.geteuid() if euid is None else euid
    named = getattr(identity, "user", "") or ""
    if euid != 0:
        if named:
            return Resolved(None, (f"identity.user {named!r} is ignored: the manager does not run "
                                   "as root, so its workers run as its own user",))
        return Resolved(None)
    acct = account(named or default_user(), getattr(identity, "group", "") or "")
    runtime = [(os.path.realpath(interpreter), _R | _X), (package_root, _R | _X)]
    for path, need in runtime:
        why = blocked(path, acct, need)
        if why is None:
            continue
        if named:
            raise PermissionError(f"user {acct.user!r} cannot use {path}: {why}")
        return Resolved(None, (
            f"its workers run as root, not as the default account {acct.user!r}, which cannot use "
            f"{path} ({why}). Name an account that can in identity.user, or make the interpreter "
            f"and wasp readable by {acct.user!r}; identity.user = \"root\" keeps root and silences "
            "this warning.",))
    warnings = []
    for path in app_paths:
        why = blocked(path, acct, _R | _X)
        if why is not None:
            warnings.append(f"its workers run as {acct.user!r}, who cannot read {path} ({why})")
    return Resolved(acct, tuple(warnings))


def environment(acct: Account) -> dict[str, str]:
    """What a login would set for the account, so an app does not look in root's home."""
    return {"HOME": acct.home, "USER": acct.user, "LOGNAME": acct.user}
