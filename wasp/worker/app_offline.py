"""`app_offline.htm` (ASP.NET Core Module's App_Offline): while a file of that name is in an
application's root, every request of the application is answered 503 with the file's content,
and the application's code is not run. Deploy tools drop it in before copying new code and remove
it afterwards (docs/deploys.md).

The root is the application's `physical_path`, or its first `python_path` folder when it has no
physical_path. The file is looked at (one stat) at most once a second per application, so it
takes effect within a second of being created or removed; its content is read again when its
size or mtime changes. At most MAX_BYTES of it are sent.
"""

from __future__ import annotations

import os
import time

NAME = "app_offline.htm"
RECHECK_S = 1.0
MAX_BYTES = 1 << 20


class OfflineCheck:
    __slots__ = ("path", "next_check", "page", "stamp")

    def __init__(self, root: str):
        self.path = os.path.join(root, NAME) if root else ""
        self.next_check = 0.0
        self.page: bytes | None = None
        self.stamp: tuple[int, int] | None = None

    def current(self, now: float | None = None) -> bytes | None:
        """The page to answer with, or None when the application is online."""
        if not self.path:
            return None
        now = time.monotonic() if now is None else now
        if now < self.next_check:
            return self.page
        self.next_check = now + RECHECK_S
        try:
            st = os.stat(self.path)
        except OSError:
            self.page, self.stamp = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self.stamp or self.page is None:
            try:
                with open(self.path, "rb") as f:
                    self.page = f.read(MAX_BYTES)
                self.stamp = stamp
            except OSError:
                self.page = b""  # there, but unreadable: still offline, with an empty page
        return self.page


def for_app(config) -> OfflineCheck:
    root = config.physical_path or (config.python_path[0] if config.python_path else "")
    return OfflineCheck(root)


def response(page: bytes) -> tuple[bytes, bytes]:
    block = (f"503 Service Unavailable\r\nContent-Type: text/html\r\n"
             f"Content-Length: {len(page)}\r\nCache-Control: no-cache\r\n").encode("latin-1")
    return block, page
