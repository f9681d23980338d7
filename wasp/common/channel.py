"""A control channel over a Unix stream socket on an asyncio loop, able to pass descriptors.

Used by the manager, the front and the workers alike; the codec is `wasp.wire.control`.
"""

from __future__ import annotations

import array
import asyncio
import collections
import os
import socket
from typing import Callable

from wasp.wire import control

_MAX_FDS = 64


class ControlChannel:
    """Sends and receives control messages. `on_message(msg, fds)` runs on the loop for each one;
    `on_close()` once when the peer is gone."""

    def __init__(self, sock: socket.socket, on_message: Callable[[dict, list[int]], None],
                 on_close: Callable[[], None], loop: asyncio.AbstractEventLoop | None = None):
        sock.setblocking(False)
        self.sock = sock
        self.loop = loop or asyncio.get_running_loop()
        self._on_message = on_message
        self._on_close = on_close
        self._reader = control.MessageReader()
        self._fds: collections.deque[int] = collections.deque()
        self._out: collections.deque[tuple[memoryview, list[int]]] = collections.deque()
        self._writing = False
        self.closed = False
        self.loop.add_reader(sock.fileno(), self._readable)

    # ---- sending ----
    def send(self, message: dict, fds: list[int] | None = None) -> None:
        if self.closed:
            return
        if fds:
            message = dict(message, nfds=len(fds))
        self._out.append((memoryview(control.encode(message)), list(fds or ())))
        if not self._writing:
            self._flush()

    def _flush(self) -> None:
        while self._out:
            data, fds = self._out[0]
            try:
                if fds:
                    n = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                    array.array("i", fds))])
                else:
                    n = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            if n < len(data):
                self._out[0] = (data[n:], [])
                break
            self._out.popleft()
        if self._out and not self._writing:
            self._writing = True
            self.loop.add_writer(self.sock.fileno(), self._writable)
        elif not self._out and self._writing:
            self._writing = False
            self.loop.remove_writer(self.sock.fileno())

    def _writable(self) -> None:
        self._flush()

    @property
    def pending(self) -> int:
        """Messages queued but not yet written. Descriptors passed with `send` must stay open
        until this is 0 (or the channel is closed): the kernel takes its copy at the write."""
        return len(self._out)

    # ---- receiving ----
    def _readable(self) -> None:
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(
                262144, socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
                self._fds.extend(fds)
        if not data:
            self.close()
            return
        try:
            messages = self._reader.feed(data)
        except control.ControlProtocolError:
            self.close()
            return
        for message in messages:
            n = message.get("nfds", 0)
            fds = [self._fds.popleft() for _ in range(min(n, len(self._fds)))]
            self._on_message(message, fds)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.remove_reader(self.sock.fileno())
            if self._writing:
                self.loop.remove_writer(self.sock.fileno())
        except (ValueError, OSError):
            pass
        self.sock.close()
        while self._fds:
            os.close(self._fds.popleft())
        self._on_close()
