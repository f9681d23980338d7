"""The manager's children as processes: killing them safely and hearing when they exit.

A pidfd (Linux 5.3+) turns readable when its process exits, so exits arrive on the event loop
like any other input, with no SIGCHLD handler, and a kill through the pidfd can never hit a
recycled pid.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from typing import Callable

from wasp.common.channel import ControlChannel

#: How long an exit waits for the last messages on the child's control channel.
EOF_GRACE = 1.0


class Child:
    """A started process and (for the front and workers) its control channel."""

    def __init__(self, proc: subprocess.Popen, channel: ControlChannel | None = None):
        self.proc = proc
        self.channel = channel
        self.pidfd: int | None = None
        self.reaped = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        if self.reaped or self.proc.returncode is not None:
            return
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                self.proc.kill()
        except OSError:
            pass


class Reaper:
    """Reaps children and posts an item for each exit to the manager's input queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, post: Callable[[tuple], None]):
        self.loop = loop
        self.post = post
        self._tasks: set[asyncio.Task] = set()

    def watch(self, child: Child, exit_item: Callable[[int], tuple],
              eof: asyncio.Event | None = None) -> None:
        """Post `exit_item(returncode)` once `child` has exited and been reaped.

        With `eof` (set when its control channel reads EOF) the exit waits for the channel's last
        messages, up to EOF_GRACE: a worker's `load_failed` must be handled before its exit."""
        proc = child.proc
        try:
            child.pidfd = os.pidfd_open(proc.pid)
        except OSError:
            child.pidfd = None

        def exited() -> None:
            if child.pidfd is not None:
                self.loop.remove_reader(child.pidfd)
            code = proc.poll()
            if code is None:
                try:
                    code = proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    code = -1
            child.reaped = True
            if child.pidfd is not None:
                os.close(child.pidfd)
                child.pidfd = None
            if eof is None or eof.is_set():
                self.post(exit_item(code))
            else:
                task = self.loop.create_task(after_eof(code))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        async def after_eof(code: int) -> None:
            try:
                await asyncio.wait_for(eof.wait(), EOF_GRACE)
            except asyncio.TimeoutError:
                pass  # a grandchild holds the channel open; the exit cannot wait for it
            self.post(exit_item(code))

        if child.pidfd is not None:
            self.loop.add_reader(child.pidfd, exited)
        else:
            # No pidfd (old kernel): wait in a thread; rare enough not to need a SIGCHLD reaper.
            self.loop.run_in_executor(None, proc.wait).add_done_callback(
                lambda _f: self.loop.call_soon_threadsafe(exited))

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


class PassedFds:
    """Our copies of descriptors sent with SCM_RIGHTS, closed once their channel wrote them (the
    kernel takes its own reference at the write; closing earlier would send a closed or reused
    descriptor number)."""

    RECHECK = 0.05

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._held: list[tuple[ControlChannel, list]] = []
        self._timer: asyncio.TimerHandle | None = None

    def hold(self, channel: ControlChannel, socks: list) -> None:
        self._held.append((channel, socks))

    def release(self) -> None:
        keep = []
        for channel, socks in self._held:
            if channel.closed or channel.pending == 0:
                for sock in socks:
                    sock.close()
            else:
                keep.append((channel, socks))
        self._held = keep
        if keep and self._timer is None:
            self._timer = self.loop.call_later(self.RECHECK, self._again)

    def _again(self) -> None:
        self._timer = None
        self.release()
