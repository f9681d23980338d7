"""Installing the peers the benchmark compares against, when they are missing.

Deliberately stdlib only: it runs before psutil may be importable.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

PY_MODULES = ("psutil", "gunicorn", "uvicorn", "uvloop", "httptools", "granian", "cryptography")
PIP_PACKAGES = ("psutil", "gunicorn", "uvicorn[standard]", "granian", "cryptography")
BINARIES = {"nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client"}  # binary -> apt package
INSTALL_TIMEOUT_S = 900


def _have_binary(name: str) -> bool:
    return bool(shutil.which(name) or os.access(f"/usr/sbin/{name}", os.X_OK))


def _run(argv: list[str]) -> None:
    print("+ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, timeout=INSTALL_TIMEOUT_S)


def ensure_peers() -> None:
    """pip-install the Python peers and apt-install nginx and wrk if any is missing.

    Raises `subprocess.CalledProcessError`, `subprocess.TimeoutExpired` or `RuntimeError` when an
    install fails or cannot be attempted.
    """
    missing = [m for m in PY_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        print(f"missing Python modules {', '.join(missing)}; installing {' '.join(PIP_PACKAGES)}")
        _run([sys.executable, "-m", "pip", "install", *PIP_PACKAGES])
        importlib.invalidate_caches()
    absent = [pkg for binary, pkg in BINARIES.items() if not _have_binary(binary)]
    if absent:
        prefix: list[str] = []
        if os.geteuid() != 0:
            if not shutil.which("sudo"):
                raise RuntimeError(f"need {', '.join(absent)} (apt-get install) but not root and no sudo")
            prefix = ["sudo", "-n"]
        print(f"missing {', '.join(absent)}; installing with apt-get")
        env_prefix = prefix + ["env", "DEBIAN_FRONTEND=noninteractive"]
        _run(env_prefix + ["apt-get", "update"])
        _run(env_prefix + ["apt-get", "install", "-y", *absent])
