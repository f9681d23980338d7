"""File change notification for the response cache: Linux inotify through ctypes.

A cached static file must go when it changes (CacheUntilChange). The watcher watches the file's
directory and every directory above it up to "/", and hands out one token per link of the path,
(watch descriptor, name): ("/srv/www", "a.css"), ("/srv", "www"), ("/", "srv"). An event on a
watched directory naming a token's name (the file written, its attributes changed, it or a folder
on its path renamed, removed, replaced) invalidates the entries that depend on that token; an event
on the directory itself (it was removed or moved, or its watch went away) invalidates every token
of that directory; a queue overflow invalidates every file entry.

Watches are shared: a directory is watched once, and its watch removed when no entry depends on
any token of it. Without inotify (not Linux, no libc, the per-user watch limit reached) the front
does not cache files at all, rather than serve them stale.
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import errno
import fcntl
import os
import struct
import termios
from typing import Callable

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
        | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
_SELF = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED
_EVENT = struct.Struct("iIII")

Token = tuple  # (watch descriptor, name bytes)


def _libc():
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def parse_events(data: bytes) -> list[tuple[int, int, bytes]]:
    """inotify's read() buffer -> [(wd, mask, name)]. Pure: unit-tested with packed bytes."""
    events = []
    pos = 0
    size = _EVENT.size
    while pos + size <= len(data):
        wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
        name = data[pos + size:pos + size + length].rstrip(b"\0")
        events.append((wd, mask, name))
        pos += size + length
    return events


def path_links(path: str) -> list[tuple[str, bytes]]:
    """("/srv/www/a.css") -> [("/srv/www", b"a.css"), ("/srv", b"www"), ("/", b"srv")]."""
    links = []
    path = os.path.normpath(path)
    while True:
        parent, name = os.path.split(path)
        if not name:
            break
        links.append((parent, os.fsencode(name)))
        if parent == path:
            break
        path = parent
    return links


class FileWatcher:
    """inotify on the front's loop. `on_change(token)` for a changed link, `on_dir_gone(wd)` when
    a watched directory itself changed, `on_overflow()` when events were lost."""

    def __init__(self, loop, on_change: Callable[[Token], None], on_dir_gone: Callable[[int], None],
                 on_overflow: Callable[[], None]):
        self.loop = loop
        self.on_change = on_change
        self.on_dir_gone = on_dir_gone
        self.on_overflow = on_overflow
        self.fd = -1
        self.error = ""
        self._by_dir: dict[str, int] = {}
        self._dirs: dict[int, str] = {}
        self._names: dict[int, set[bytes]] = {}   # wd -> names with live tokens
        self._queued = array.array("i", [0])      # FIONREAD's answer, for poll
        self._polled = False                       # poll asked the kernel in this loop turn
        self._libc = _libc()
        if self._libc is None:
            self.error = "no C library with inotify"
            return
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            self.error = f"inotify_init1: {os.strerror(ctypes.get_errno())}"
            return
        self.fd = fd
        loop.add_reader(fd, self._readable)

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def watch_file(self, path: str) -> list[Token] | None:
        """Tokens for every link of the real path of `path`, or None when it cannot be watched."""
        if self.fd < 0:
            return None
        tokens = []
        for directory, name in path_links(os.path.realpath(path)):
            wd = self._by_dir.get(directory)
            if wd is None:
                wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), MASK)
                if wd < 0:
                    code = ctypes.get_errno()
                    self.error = f"inotify_add_watch {directory}: {os.strerror(code)}"
                    for token in tokens:
                        self.release(token)
                    return None
                old = self._dirs.get(wd)
                if old is not None and old != directory:  # the same directory by another name
                    self._by_dir.pop(old, None)
                self._by_dir[directory] = wd
                self._dirs[wd] = directory
            self._names.setdefault(wd, set()).add(name)
            tokens.append((wd, name))
        return tokens

    def release(self, token: Token) -> None:
        """No entry depends on `token` any more; unwatch its directory when it was the last."""
        wd, name = token
        names = self._names.get(wd)
        if names is None:
            return
        names.discard(name)
        if not names:
            self._forget(wd, remove=True)

    def close(self) -> None:
        if self.fd >= 0:
            try:
                self.loop.remove_reader(self.fd)
            except Exception:
                pass
            os.close(self.fd)
            self.fd = -1

    def _forget(self, wd: int, remove: bool) -> None:
        self._names.pop(wd, None)
        directory = self._dirs.pop(wd, None)
        if directory is not None and self._by_dir.get(directory) == wd:
            del self._by_dir[directory]
        if remove and self.fd >= 0:
            self._libc.inotify_rm_watch(self.fd, wd)

    def poll(self) -> None:
        """Handle the events already queued now. A hit on a file entry calls this first, so a
        change made before the request was read is never answered from the cache (the loop may
        hand us the client's bytes before the inotify descriptor's: a keep-alive connection
        that was ready in the last turn stays ahead of it in epoll's ready list).

        Once per loop turn is enough: every request this turn reads was readable when the loop's
        poll returned, and so was every change made before such a request was sent, since its
        client sent it after the change. The first hit of a turn asks the kernel; the others
        (about 60 a turn under load) pay one attribute test instead of an ioctl."""
        if self._polled:
            return
        fd = self.fd
        if fd < 0:
            return
        self._polled = True
        self.loop.call_soon(self._next_turn)
        # Ask how many event bytes are queued first: an empty queue (nearly every hit) then costs
        # one ioctl, not a read that fails with EAGAIN (a third of the time, without the exception).
        try:
            fcntl.ioctl(fd, termios.FIONREAD, self._queued, True)
        except OSError:
            pass   # (the read below reports what is wrong)
        else:
            if not self._queued[0]:
                return
        self._readable()

    def _next_turn(self) -> None:
        self._polled = False

    def _readable(self) -> None:
        while self.fd >= 0:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                self.error = f"reading inotify: {exc}"
                self.close()
                self.on_overflow()
                return
            if not data:
                return
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        for wd, mask, name in parse_events(data):
            if mask & IN_Q_OVERFLOW:
                self.on_overflow()
            elif mask & _SELF or not name:
                if wd in self._dirs:
                    self.on_dir_gone(wd)
                    if mask & IN_IGNORED:
                        self._forget(wd, remove=False)
            elif name in self._names.get(wd, ()):
                self.on_change((wd, name))
