"""The access logs (per site, central, stdout) and the HTTPERR log, buffered in the front.

Lines are formatted by `wasp.wire.w3c` and `wasp.front.logformat`; this module buffers them per
*stream* (one series of files: a site's log, the central W3C log, stdout, HTTPERR) and hands a
stream's buffer to the writer (`wasp.front.logwriter`) when 64 KiB have accumulated, at the
front's once-a-second tick, at a rollover and at exit, as HTTP.sys flushes. The server's writer
is a thread, so a slow disk never holds up the loop; tools and tests get the inline writer.

A `Destination` (compiled per config, routing.py) says where a stream's lines go: its folder,
its format's file names (`wasp.wire.logfiles`: u_exYYMMDD.log ... u_extendN.log, `_x` with
custom fields), its period (hourly, daily, weekly, monthly from the line's time, UTC unless
local_time_rollover; max_size numbers the files and starts the next one when a line would take
the file over truncate_size), its retention. A W3C file gets a header block at the top of the
lines this process appends to it, and a new one in the file when the site's fields change (a
reload), as IIS does. A file is created at its stream's first line (reference §5.7).

An error (disk full, permissions) drops lines and is remembered in `errors` for the process to
report; it never takes the front down.

Several fronts (`front_processes`) write the same files: each opens them O_APPEND and every
hand-over is whole lines in one `write()`, so lines never interleave. A time-named file's name
comes from each line's own time, so fronts agree on it; a numbered file's number is taken from
the folder (the highest, or the next when that one is full) and never below the front's last,
with the file's real size read back after every write: fronts roll over to the same file, a file
may overshoot the size by the lines the other fronts wrote since their last hand-over.
"""

from __future__ import annotations

import os
import re

from wasp.front.logwriter import STDOUT, InlineWriter, Retention, SizeRoll
from wasp.wire import logfiles, w3c

FLUSH_AT = 64 * 1024
_HTTPERR_NAME = re.compile(r"httperr(\d+)\.log")


class Destination:
    """Where one stream's lines go."""

    __slots__ = ("stream", "directory", "log_format", "suffix", "period", "local", "limit",
                 "retention", "roll", "w3c", "signature", "_second", "_key")

    def __init__(self, stream, directory: str, log_format: str = "w3c", suffix: str = "",
                 period: str = "daily", local: bool = False, truncate_size: int = 20971520,
                 retention_days: float = 0.0, max_files: int = 0):
        self.stream = stream
        self.directory = directory       # STDOUT ("-") for the front's standard output
        self.log_format = log_format
        self.suffix = suffix
        self.period = "max_size" if directory == STDOUT else period
        self.local = local
        self.limit = logfiles.truncate_size(truncate_size)
        self.w3c = log_format == "w3c"
        self.retention = None
        self.roll = None
        if directory != STDOUT:
            pattern = logfiles.name_pattern(log_format, self.period, suffix)
            if retention_days or max_files:
                self.retention = Retention(directory, pattern, float(retention_days), int(max_files))
            if self.period == "max_size":
                self.roll = SizeRoll(directory, pattern,
                                     lambda n, f=log_format, s=suffix: logfiles.numbered_name(f, n, s),
                                     self.limit)
        self.signature = (directory, log_format, suffix, self.period, local, self.limit,
                          retention_days, max_files)
        self._second = -1
        self._key = ""

    def key(self, wall: float) -> str:
        """The period's key for a line written at `wall` (computed once a second)."""
        if self.roll is not None or self.directory == STDOUT:
            return ""
        second = int(wall)
        if second != self._second:
            self._second = second
            self._key = logfiles.period_key(second, self.period, self.local)
        return self._key

    def path(self, key: str) -> str:
        if self.directory == STDOUT:
            return STDOUT
        if self.roll is not None:
            return self.directory      # the writer picks the number
        return os.path.join(self.directory, logfiles.file_name(self.log_format, key, self.suffix))


class _Buffer:
    __slots__ = ("dest", "key", "fields", "lines", "size", "sent", "open", "gen")

    def __init__(self, dest: Destination) -> None:
        self.dest = dest
        self.key = ""
        self.fields = ""      # the #Fields value of the header last written (W3C)
        self.lines: list[bytes] = []
        self.size = 0         # bytes buffered
        self.sent = 0         # bytes handed over since the file was opened
        self.open = False
        self.gen = 0          # opens and rolls asked of the writer (logwriter.Executor.generations)


class _Streams:
    def __init__(self, writer=None) -> None:
        self.writer = writer if writer is not None else InlineWriter()
        self._buffers: dict[object, _Buffer] = {}

    @property
    def errors(self) -> list[str]:
        return self.writer.errors

    def emit(self, dest: Destination, line: bytes, wall: float, fields: str | None = None,
             key: str | None = None) -> None:
        """Buffer one line for `dest`; `fields` is the W3C #Fields value its header names."""
        b = self._buffers.get(dest.stream)
        if b is None:
            b = self._buffers[dest.stream] = _Buffer(dest)
        if key is None:
            key = dest.key(wall)
        if not b.open or b.key != key or b.dest.signature != dest.signature:
            self._hand_over(b)
            b.dest, b.key, b.fields, b.open, b.sent = dest, key, fields or "", True, 0
            b.gen += 1
            self.writer.submit("open", dest.stream, dest.path(key), dest.roll, dest.retention)
            if fields is not None:
                self._add(b, w3c.header(fields, wall))
        elif (fields is not None and b.fields is not fields and b.fields != fields
              and dest.directory != STDOUT):   # stdout mixes the sites: one header, at the start
            b.fields = fields    # the site's fields changed: a new header block, same file
            self._add(b, w3c.header(fields, wall))
        b.dest = dest
        if dest.roll is not None:
            gen, size = self.writer.size(dest.stream)
            written = max(size if gen == b.gen else 0, b.sent)
            if written + b.size + len(line) > dest.limit and (written or b.size):
                self._hand_over(b)
                self.writer.submit("roll", dest.stream)
                b.sent = 0
                b.gen += 1
                if fields is not None:
                    self._add(b, w3c.header(fields, wall))
        b.lines.append(line)
        b.size += len(line)
        if b.size >= FLUSH_AT:
            self._hand_over(b)

    @staticmethod
    def _add(b: _Buffer, data: bytes) -> None:
        b.lines.append(data)
        b.size += len(data)

    def _hand_over(self, b: _Buffer) -> None:
        if not b.lines:
            return
        data = b"".join(b.lines)
        b.lines.clear()
        b.size = 0
        b.sent += len(data)
        self.writer.submit("write", b.dest.stream, data)

    def flush(self) -> None:
        """Hand every buffer to the writer (it writes them on its own time)."""
        for b in self._buffers.values():
            if b.lines:
                self._hand_over(b)

    def sync(self) -> None:
        """Flush and wait until it is in the files."""
        self.flush()
        self.writer.drain()

    def keep_only(self, streams) -> None:
        """A new config: close the streams it no longer writes (a removed site's file)."""
        for stream in [s for s in self._buffers if s not in streams]:
            b = self._buffers.pop(stream)
            self._hand_over(b)
            self.writer.submit("close", stream)

    def close(self) -> None:
        for stream, b in self._buffers.items():
            self._hand_over(b)
            self.writer.submit("close", stream)
        self._buffers.clear()
        self.writer.drain()


class AccessLog(_Streams):
    """W3C (or NCSA, IIS, JSON) logs: one stream per site, the central log, stdout."""

    def __init__(self, log_dir: str, writer=None):
        super().__init__(writer)
        self.log_dir = log_dir
        self._default: dict[tuple[int, str], Destination] = {}

    def write(self, site_id: int, key: str, line: bytes, wall: float, fields: str = w3c.W3C_FIELDS,
              suffix: str = "") -> None:
        """A W3C line for site `site_id`'s log under log_dir, in the file of period key `key`
        ("YYMMDD" or "YYMMDDHH"): the site log without a Destination of its own."""
        dest = self._default.get((site_id, suffix))
        if dest is None:
            dest = self._default[(site_id, suffix)] = Destination(
                site_id, os.path.join(self.log_dir, f"W3SVC{site_id}"), suffix=suffix)
        self.emit(dest, line, wall, fields, key)

    def move(self, log_dir: str) -> None:
        """A new config moved server.log_dir: later lines go to files under the new folder."""
        if log_dir != self.log_dir:
            self.close()
            self._default.clear()
            self.log_dir = log_dir


class ErrorLog(_Streams):
    """`<log_dir>/httperr/httperrN.log`, a new N after HTTPERR_FILE_SIZE bytes, like HTTP.sys."""

    STREAM = "httperr"

    def __init__(self, log_dir: str, writer=None):
        super().__init__(writer)
        self.log_dir = log_dir
        self._dest: Destination | None = None

    def _destination(self) -> Destination:
        limit = w3c.HTTPERR_FILE_SIZE
        dest = self._dest
        if dest is None or dest.limit != limit:
            dest = Destination(self.STREAM, os.path.join(self.log_dir, "httperr"), period="max_size")
            # HTTP.sys's names and limit, not a site log's.
            dest.limit = limit
            dest.roll = SizeRoll(dest.directory, _HTTPERR_NAME, lambda n: f"httperr{n}.log", limit)
            dest.signature = ("httperr", dest.directory, limit)
            self._dest = dest
        return dest

    def write(self, line: bytes, wall: float) -> None:
        self.emit(self._destination(), line, wall, w3c.HTTPERR_FIELDS, "")

    def move(self, log_dir: str) -> None:
        if log_dir != self.log_dir:
            self.close()
            self.log_dir = log_dir
            self._dest = None
