"""The W3C access log per site and the HTTPERR log, buffered.

Lines are formatted by `wasp.wire.w3c`; this module owns the files. Like HTTP.sys, lines are
buffered and written when 64 KiB have accumulated, and at the front's once-a-second tick, and at
exit. A site's file is created at its first request (reference §5.7), under
`<log_dir>/W3SVC<id>/u_exYYMMDD[HH][_x].log` (`_x` when the site logs custom fields); a header
block starts every file this process opens, and a new one is written into the file when the site's
fields change (a reload), as IIS does.
Writing is a plain append to the page cache; an error (disk full, permissions) drops lines and is
remembered in `errors` for the process to report, it never takes the front down.

Several fronts (`front_processes`) write the same files: each opens them O_APPEND and every flush
is whole lines in one `write()`, so lines never interleave (each front's header block starts the
file's lines it appends after opening it, as IIS writes one at every start). A W3C file's name
comes from each line's own time, so fronts agree on it; the HTTPERR file's number is taken from
the folder (the highest, or the next when that one is full) and never below the front's last,
with the file's real size read back after every flush: fronts roll over to the same file, a
file may overshoot the size by the lines the other fronts wrote since their last flush.
"""

from __future__ import annotations

import os
import re

from wasp.wire import w3c

FLUSH_AT = 64 * 1024
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


class _LogFile:
    __slots__ = ("path", "fd", "key", "fields", "lines", "size", "written")

    def __init__(self) -> None:
        self.path = ""
        self.fd = -1
        self.key = ""
        self.fields = ""    # the #Fields value of the header last written (W3C files)
        self.lines: list[bytes] = []
        self.size = 0       # bytes buffered
        self.written = 0    # bytes in the file so far (HTTPERR rollover)


class _Files:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def _open(self, f: _LogFile, path: str, fields: str, wall: float) -> None:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f.fd = os.open(path, _OPEN_FLAGS, 0o644)
            f.written = os.fstat(f.fd).st_size
        except OSError as exc:
            self._failed(f"cannot open {path}: {exc.strerror or exc}")
            f.fd = -1
            return
        f.path = path
        f.lines.insert(0, w3c.header(fields, wall))
        f.size += len(f.lines[0])

    def _write(self, f: _LogFile) -> None:
        if not f.lines:
            return
        data = b"".join(f.lines)
        f.lines.clear()
        f.size = 0
        if f.fd < 0:
            return
        try:
            view = memoryview(data)
            while view:
                n = os.write(f.fd, view)
                view = view[n:]
            f.written = os.fstat(f.fd).st_size  # other fronts append to the same file
        except OSError as exc:
            self._failed(f"cannot write {f.path}: {exc.strerror or exc}")

    def _close(self, f: _LogFile) -> None:
        self._write(f)
        if f.fd >= 0:
            try:
                os.close(f.fd)
            except OSError:
                pass
            f.fd = -1

    def _failed(self, message: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(message)


class AccessLog(_Files):
    """W3C extended logs, one file per site and period."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self._sites: dict[int, _LogFile] = {}

    def write(self, site_id: int, key: str, line: bytes, wall: float, fields: str = w3c.W3C_FIELDS,
              suffix: str = "") -> None:
        """`key` is the period key ("YYMMDD" or "YYMMDDHH") for the line's time; `fields` and
        `suffix` are the site's (logformat.LogFormat), IIS's default fields and "" by default."""
        f = self._sites.get(site_id)
        if f is None:
            f = self._sites[site_id] = _LogFile()
        if f.key != key + suffix:
            self._close(f)
            f.key = key + suffix
            f.fields = fields
            self._open(f, os.path.join(self.log_dir, w3c.w3c_file_name(site_id, key, suffix)), fields, wall)
        elif f.fields is not fields and f.fields != fields:
            f.fields = fields    # the site's fields changed: a new header block, same file
            header = w3c.header(fields, wall)
            f.lines.append(header)
            f.size += len(header)
        f.lines.append(line)
        f.size += len(line)
        if f.size >= FLUSH_AT:
            self._write(f)

    def flush(self) -> None:
        for f in self._sites.values():
            if f.lines:
                self._write(f)

    def close(self) -> None:
        for f in self._sites.values():
            self._close(f)
        self._sites.clear()

    def move(self, log_dir: str) -> None:
        """A new config moved server.log_dir: later lines go to files under the new folder."""
        if log_dir != self.log_dir:
            self.close()
            self.log_dir = log_dir


_HTTPERR_NAME = re.compile(r"httperr(\d+)\.log")


class ErrorLog(_Files):
    """`<log_dir>/httperr/httperrN.log`, a new N after HTTPERR_FILE_SIZE bytes, like HTTP.sys."""

    def __init__(self, log_dir: str):
        super().__init__()
        self.log_dir = log_dir
        self._f = _LogFile()
        self._number = 0

    def _first_number(self) -> int:
        folder = os.path.join(self.log_dir, "httperr")
        try:
            names = os.listdir(folder)
        except OSError:
            return 1
        numbers = [int(m.group(1)) for m in map(_HTTPERR_NAME.fullmatch, names) if m]
        if not numbers:
            return 1
        last = max(numbers)
        try:
            full = os.path.getsize(os.path.join(folder, f"httperr{last}.log")) >= w3c.HTTPERR_FILE_SIZE
        except OSError:
            full = False
        return last + 1 if full else last

    def write(self, line: bytes, wall: float) -> None:
        f = self._f
        if f.fd < 0 or f.written + f.size + len(line) > w3c.HTTPERR_FILE_SIZE:
            self._close(f)
            self._number = max(self._number + 1 if self._number else 0, self._first_number())
            self._open(f, os.path.join(self.log_dir, w3c.httperr_file_name(self._number)),
                       w3c.HTTPERR_FIELDS, wall)
            if f.fd < 0:
                self._number = 0
        f.lines.append(line)
        f.size += len(line)
        if f.size >= FLUSH_AT:
            self._write(f)

    def flush(self) -> None:
        if self._f.lines:
            self._write(self._f)

    def close(self) -> None:
        self._close(self._f)

    def move(self, log_dir: str) -> None:
        if log_dir != self.log_dir:
            self.close()
            self.log_dir = log_dir
            self._number = 0
