"""Where a server keeps its admin socket and pid file when no config file names a run_dir, and
how that folder is made safe.

The fallback lives under one per-user base: `$XDG_RUNTIME_DIR/wasp` (a per-user tmpfs on systemd
machines) or else `/tmp/wasp-<uid>`. Each server gets its own folder below it, derived from the
project: `<base>/<dir name>-<hash of the project dir>-<hash of what it serves>`, so that two
`wasp serve app:app` from two projects (or on two ports) run side by side, and the admin commands
run from the same project find their server again (wasp/cli/locate.py).

A local user can create `/tmp/wasp-<uid>` before us (as a symlink, or a folder they own or can
write): `private_dir` creates each folder 0700 and refuses one that is a symlink, is not ours or
has any group or other permission bit. /tmp is sticky, so once a folder is ours nobody else can
rename or replace it; the checks are made on a descriptor opened with O_NOFOLLOW so that what is
checked is what was opened.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

ADMIN_SOCKET = "admin.sock"


class RunDirError(Exception):
    """A run dir that is unsafe to use (wrong owner, mode, a symlink) or cannot be made."""


def run_dir_base() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "wasp")
    return f"/tmp/wasp-{os.getuid()}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def project_prefix(project_dir: str) -> str:
    """`<dir name>-<hash of the project dir>-`: the start of every run dir of that project."""
    project_dir = os.path.abspath(project_dir)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(project_dir) or "root")[:32].lstrip(".") or "root"
    return f"{name}-{_digest(project_dir)}-"


def project_run_dir(project_dir: str, *serves: str) -> str:
    """The run dir of a server started in `project_dir` serving `serves` (app spec, bindings)."""
    return os.path.join(run_dir_base(), project_prefix(project_dir) + _digest(*serves))


def private_dir(path: str, create: bool = True, forbidden: int = 0o077) -> None:
    """Make sure `path` is a folder of ours that nobody else can enter: create it 0700 (with
    `create`), refuse a symlink, a non-folder, another owner or any of the `forbidden` group/other
    permission bits (all of them by default; a run_dir the config names only needs to be safe
    from writes by others, `forbidden=0o022`, since its admin socket is 0600 itself)."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RunDirError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist") from None
    except OSError as exc:
        if os.path.islink(path):
            raise RunDirError(f"refusing {path}: it is a symbolic link (someone else may have "
                              "made it; remove it or name another run_dir)") from None
        raise RunDirError(f"refusing {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            raise RunDirError(f"refusing {path}: it is not a folder")
        if st.st_uid != os.geteuid():
            raise RunDirError(f"refusing {path}: it belongs to uid {st.st_uid}, not to us "
                              f"(uid {os.geteuid()}); remove it or name another run_dir")
        if st.st_mode & forbidden:
            what = "enter" if forbidden & 0o055 else "write to"
            raise RunDirError(f"refusing {path}: its mode is {stat.S_IMODE(st.st_mode):04o}, others "
                              f"may {what} it; chmod 700 it, or remove it")
        if st.st_mode & 0o700 != 0o700:  # a umask took some of our own bits
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def default_site_run_dir() -> str:
    """The run dir of the embedded Default Web Site (`wasp serve` with no file and no app)."""
    return os.path.join(run_dir_base(), "default-site")
