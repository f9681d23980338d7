"""Process titles, when the optional `setproctitle` package is installed (not a dependency).

Without it `ps` still shows each process's role from its argv (`-m wasp.front`, `--pool NAME`).
"""

from __future__ import annotations


def set_title(title: str) -> bool:
    """Set this process's title; False when setproctitle is not available."""
    try:
        import setproctitle
    except ImportError:
        return False
    setproctitle.setproctitle(title)
    return True
