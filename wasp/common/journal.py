"""Log lines with syslog priorities when stderr is systemd's journal stream.

systemd sets JOURNAL_STREAM=<device>:<inode> for a service whose stderr goes to the journal
(systemd.exec(5)); when fd 2 is that stream, a line may start with `<N>` (sd-daemon(3), N a
syslog priority 0..7) and journald files it under that priority instead of the unit's default,
so `journalctl -p warning -u wasp` shows what went wrong. Each process installs this for itself
(the manager, the fronts and the workers share the stream): a line's priority is judged from its
text, as wasp writes them: its event lines carry their IIS level, "wasp: cannot ..." is an error,
Python's logging and tracebacks carry theirs.
"""

from __future__ import annotations

import io
import os
import re
import sys

EMERG, ALERT, CRIT, ERR, WARNING, NOTICE, INFO, DEBUG = range(8)

_EVENT = re.compile(r"wasp: event \d+ (Error|Warning|Information)\b")
_LEVELS = {"Error": ERR, "Warning": WARNING, "Information": INFO}
#: A worker's logging line: "<time> worker N [pool] pid P LEVEL name: message".
_WORKER = re.compile(r"\S+ \S+ worker \d+ \[[^]]*\] pid \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
_LOGGING = {"DEBUG": DEBUG, "INFO": INFO, "WARNING": WARNING, "ERROR": ERR, "CRITICAL": CRIT}
_ERRORS = ("wasp: cannot ", "config reload rejected", "Traceback ", "ERROR", "CRITICAL",
           "wasp.front: cannot ", "wasp.worker: cannot ")
_WARNINGS = ("WARNING", "wasp.front: ", "wasp.worker: ")


def priority(line: str) -> int:
    """The syslog priority of one line of wasp's stderr."""
    m = _EVENT.match(line)
    if m:
        return _LEVELS[m.group(1)]
    m = _WORKER.match(line)
    if m:
        return _LOGGING[m.group(1)]
    if line.startswith(_ERRORS):
        return ERR
    if line.startswith(_WARNINGS):
        return WARNING
    if line.startswith("wasp: "):
        return NOTICE
    return INFO


def is_journal(environ: dict[str, str], fd: int = 2) -> bool:
    """Whether `fd` is the journal stream JOURNAL_STREAM names."""
    value = environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(fd)
        return st.st_dev == int(dev) and st.st_ino == int(ino)
    except (OSError, ValueError):
        return False


class PriorityStream(io.TextIOBase):
    """A text stream that starts every line it passes on with `<N>`."""

    def __init__(self, inner):
        self.inner = inner
        self._at_start = True

    def write(self, text: str) -> int:
        if not text:
            return 0
        out = []
        for part in text.splitlines(keepends=True):
            if self._at_start:
                out.append(f"<{priority(part)}>")
            out.append(part)
            self._at_start = part.endswith("\n")
        self.inner.write("".join(out))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def fileno(self) -> int:
        return self.inner.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    @property
    def buffer(self):
        return self.inner.buffer

    def __getattr__(self, name: str):
        # Anything else a program asks of stderr (reconfigure, errors, line_buffering...).
        return getattr(self.inner, name)


def install(environ=None) -> bool:
    """Wrap sys.stderr when it is the journal stream; returns whether it did."""
    environ = os.environ if environ is None else environ
    if isinstance(sys.stderr, PriorityStream) or not is_journal(environ):
        return False
    sys.stderr = PriorityStream(sys.stderr)
    return True
