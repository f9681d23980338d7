"""What a pool's `virtualenv` is: its Python version and its site-packages folders, read from the
venv on disk (pyvenv.cfg and lib/pythonX.Y/site-packages). No process is started.

Shared by `wasp validate` and the manager (which check it) and the worker (which puts the
folders first on sys.path, see `wasp.worker.venv`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


class NotAVirtualenv(ValueError):
    """The folder cannot serve as a pool's virtualenv; the message says why and what to do."""


@dataclass(frozen=True)
class Virtualenv:
    path: str
    version: tuple[int, int]  # major, minor of the interpreter it was made with
    site_dirs: tuple[str, ...]  # its site-packages folders that exist, purelib first


def read_config(path: str) -> dict[str, str]:
    """pyvenv.cfg's "key = value" lines (keys lower-cased). Raises OSError."""
    values = {}
    with open(os.path.join(path, "pyvenv.cfg"), encoding="utf-8", errors="replace") as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip().lower()] = value.strip()
    return values


def _version(values: dict[str, str]) -> tuple[int, int] | None:
    # venv writes "version", virtualenv writes "version_info"; both start with "3.11".
    for key in ("version_info", "version"):
        parts = values.get(key, "").split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return int(parts[0]), int(parts[1])
    return None


def inspect(path: str) -> Virtualenv:
    """The venv at `path`. Raises NotAVirtualenv when it is missing, has no pyvenv.cfg or no
    version in it, or has no site-packages folder for that version."""
    if not os.path.isdir(path):
        raise NotAVirtualenv(f"{path} is not a directory" if os.path.exists(path)
                             else f"{path} does not exist")
    try:
        values = read_config(path)
    except OSError as exc:
        raise NotAVirtualenv(f"{path} is not a virtualenv: cannot read {exc.filename}: "
                             f"{exc.strerror or exc}; make one with: python3 -m venv {path}") from None
    version = _version(values)
    if version is None:
        raise NotAVirtualenv(f"{os.path.join(path, 'pyvenv.cfg')} names no Python version "
                             "(no version = X.Y line)")
    lib = f"python{version[0]}.{version[1]}"
    candidates = [os.path.join(path, "lib", lib, "site-packages"),
                  os.path.join(path, "lib64", lib, "site-packages")]
    site_dirs: list[str] = []
    for folder in candidates:
        # lib64 is often a symlink to lib: one folder, listed once.
        if os.path.isdir(folder) and os.path.realpath(folder) not in map(os.path.realpath, site_dirs):
            site_dirs.append(folder)
    if not site_dirs:
        raise NotAVirtualenv(f"{path} has no site-packages folder for Python "
                             f"{version[0]}.{version[1]} ({candidates[0]})")
    return Virtualenv(path, version, tuple(site_dirs))


def problem(path: str) -> str | None:
    """Why the venv at `path` cannot serve a pool of this server, or None when it can."""
    try:
        venv = inspect(path)
    except NotAVirtualenv as exc:
        return str(exc)
    ours = sys.version_info[:2]
    if venv.version != ours:
        return (f"{path} is a Python {venv.version[0]}.{venv.version[1]} virtualenv, but the server "
                f"runs Python {ours[0]}.{ours[1]} ({sys.executable}); its compiled packages would not "
                f"load. Recreate it with: {sys.executable} -m venv {path}, or use python = "
                f"\"{os.path.join(path, 'bin', 'python')}\" with wasp-server installed in it")
    return None
