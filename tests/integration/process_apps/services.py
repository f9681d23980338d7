"""Non-HTTP services for test_process_services.py: each answers a line with "PID line"."""

import asyncio
import os


class LineEcho(asyncio.Protocol):
    """An asyncio protocol factory (the class itself)."""

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.transport.write(b"%d %s\n" % (os.getpid(), line))


def socket_echo(sock, address):
    """A raw-socket handler, on a thread of its own, blocking reads."""
    with sock.makefile("rb") as reader:
        for line in reader:
            sock.sendall(b"%d %s" % (os.getpid(), line))


async def stream_echo(reader, writer):
    """An asyncio streams handler."""
    while line := await reader.readline():
        writer.write(b"%d %s" % (os.getpid(), line))
        await writer.drain()


def factory_that_crashes():
    raise RuntimeError("the factory is broken")
