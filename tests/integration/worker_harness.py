"""Start a real `python -m wasp.worker` and play both the manager and the front over socketpairs.

Used by tests/integration/test_worker_*.py and the worker micro benchmark. Blocking sockets,
no event loop: the test is the peer, step by step.
"""

from __future__ import annotations

import array
import os
import pathlib
import select
import socket
import subprocess
import sys
import tempfile
import time

from wasp.config import model
from wasp.wire import control, frames
from wasp.wire.frames import FLAG_FIN, FrameType, INITIAL_WINDOW

REPO = pathlib.Path(__file__).resolve().parents[2]
APPS = pathlib.Path(__file__).resolve().parent / "worker_apps"


def make_config(apps: list[dict], pool: dict | None = None) -> model.Config:
    """One site (id 1) whose applications all run in pool "P"."""
    pool_fields = {"name": "P", **(pool or {})}
    return model.Config(
        pools=[model.Pool(**pool_fields)],
        sites=[model.Site(name="S", id=1, bindings=["http/127.0.0.1:8080:"],
                          applications=[model.Application(pool=pool_fields["name"], **a) for a in apps])])


class Response:
    def __init__(self):
        self.status = 0
        self.substatus = 0
        self.headers: list[tuple[str, str]] = []
        self.content_length = -1
        self.body = bytearray()
        self.kind = ""          # "response" (FIN), "stream", "file", "abort"
        self.file: frames.FileSpan | None = None
        self.abort_status = 0
        self.done = False
        self.frames = 0

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def _block(self, block: bytes) -> None:
        lines = block.decode("latin-1").split("\r\n")
        self.status = int(lines[0][:3])
        self.headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if line]

    def __repr__(self) -> str:
        return f"<Response {self.kind} {self.status}.{self.substatus} {len(self.body)}B>"


class Front:
    """The front's end of a data channel."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = frames.FrameReader()
        self.pending: list[tuple[int, int, int, bytes]] = []
        self.next_sid = 1
        self.hello = None
        self.drained_windows: dict[int, int] = {}

    def recv_frames(self, timeout: float = 30.0) -> list:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise TimeoutError("no frame from the worker")
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("data channel closed")
        return self.reader.feed(data)

    def next_frame(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while not self.pending:
            self.pending.extend(self.recv_frames(max(0.01, deadline - time.monotonic())))
        return self.pending.pop(0)

    def read_hello(self) -> frames.Hello:
        ftype, _flags, _sid, payload = self.next_frame()
        assert ftype == FrameType.HELLO, ftype
        self.hello = frames.unpack_hello(payload)
        return self.hello

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self, app: str, method: str, path: str, headers=None, query: str = "",
             content_length: int = -1, websocket: bool = False, client=("127.0.0.1", 50000)):
        raw_headers = [(b"Host", b"localhost:8080")]
        for name, value in (headers or []):
            raw_headers.append((name.encode("latin-1"), value.encode("latin-1")))
        target = path.encode("utf-8") + (b"?" + query.encode() if query else b"")
        return frames.RequestHead(app=app, method=method, target=target, path=path.encode("utf-8"),
                                  query=query.encode(), version="1.1", headers=raw_headers,
                                  client=client, server=("127.0.0.1", 8080),
                                  content_length=content_length, websocket=websocket)

    def start(self, head: frames.RequestHead, has_body: bool) -> int:
        sid = self.next_sid
        self.next_sid += 1
        self.send(frames.pack_request(sid, head, has_body))
        return sid

    def request(self, app: str, method: str, path: str, headers=None, body=None, query: str = "",
                chunk: int = 65536, client=("127.0.0.1", 50000), on_progress=None) -> Response:
        """One request; `body` is bytes or an iterable of bytes, sent within the worker's WINDOW."""
        length = len(body) if isinstance(body, (bytes, bytearray)) else -1
        head = self.head(app, method, path, headers, query, content_length=length, client=client)
        sid = self.start(head, body is not None)
        response = Response()
        credit = INITIAL_WINDOW
        if body is not None:
            pieces = ([bytes(body[i:i + chunk]) for i in range(0, len(body), chunk)]
                      if isinstance(body, (bytes, bytearray)) else body)
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    while credit <= 0 and not response.done:
                        credit += self._pump(sid, response, block=True)
                    if response.done:
                        break
                    n = min(credit, len(view))
                    self.send(frames.pack_body(sid, bytes(view[:n])))
                    credit -= n
                    view = view[n:]
                    credit += self._pump(sid, response, block=False)
                    if on_progress:
                        on_progress()
                if response.done:
                    break
            if not response.done:
                self.send(frames.pack_end(sid))
        while not response.done:
            self._pump(sid, response, block=True)
            if on_progress:
                on_progress()
        return response

    def _pump(self, sid: int, response: Response, block: bool) -> int:
        """Handle frames for `sid`; returns WINDOW credit the worker granted us. Frames of other
        streams stay in `pending` for whoever reads next."""
        granted = 0
        mine = [f for f in self.pending if f[2] == sid]
        if not mine:
            if block:
                deadline = time.monotonic() + 30.0
                while not mine:
                    batch = self.recv_frames(max(0.01, deadline - time.monotonic()))
                    self.pending.extend(batch)
                    mine = [f for f in batch if f[2] == sid]
            else:
                ready, _, _ = select.select([self.sock], [], [], 0)
                if ready:
                    self.pending.extend(self.recv_frames(0))
                    mine = [f for f in self.pending if f[2] == sid]
        if mine:
            self.pending = [f for f in self.pending if f[2] != sid]
        for frame in mine:
            granted += self.handle(frame, response)
        return granted

    def handle(self, frame, response: Response) -> int:
        ftype, flags, sid, payload = frame
        response.frames += 1
        if ftype == FrameType.RESPONSE:
            sub, length, block, inline = frames.unpack_response(payload)
            response._block(block)
            response.substatus = sub
            response.content_length = length
            if flags & FLAG_FIN:
                response.body += inline
                response.kind = "response"
                response.done = True
            else:
                response.kind = "stream"
        elif ftype == FrameType.BODY:
            response.body += payload
            self.send(frames.pack_window(sid, len(payload)))
        elif ftype == FrameType.END:
            response.done = True
        elif ftype == FrameType.FILE:
            span = frames.unpack_file(payload)
            response._block(span.status_and_headers)
            response.file = span
            response.kind = "file"
            with open(span.path, "rb") as f:
                f.seek(span.offset)
                response.body += f.read(span.length)
            response.done = True
        elif ftype == FrameType.ABORT:
            response.kind = "abort"
            response.abort_status = frames.unpack_abort(payload)
            response.done = True
        elif ftype == FrameType.WINDOW:
            return frames.unpack_window(payload)
        return 0

    def close(self) -> None:
        self.sock.close()


class WorkerProcess:
    """A worker child; the test holds the manager's end of its control channel."""

    def __init__(self, pool: str = "P", worker_id: int = 1, env: dict | None = None):
        self.control, child = socket.socketpair()
        self.reader = control.MessageReader()
        self.fds: list[int] = []
        self.messages: list[dict] = []
        self.log = tempfile.NamedTemporaryFile(prefix="wasp-worker-", suffix=".log", delete=False)
        full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wasp.worker", "--control-fd", str(child.fileno()),
             "--worker-id", str(worker_id), "--pool", pool],
            pass_fds=[child.fileno()], cwd=str(REPO), env=full_env,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        child.close()
        self.pid = self.proc.pid

    def send(self, message: dict, fds: list[int] | None = None) -> None:
        if fds:
            message = dict(message, nfds=len(fds))
        data = control.encode(message)
        if fds:
            self.control.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            self.control.sendall(data)

    def recv(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while not self.messages:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no control message from the worker; log:\n{self.output()}")
            ready, _, _ = select.select([self.control], [], [], left)
            if not ready:
                continue
            data = self.control.recv(1 << 20)
            if not data:
                raise EOFError(f"control channel closed; log:\n{self.output()}")
            self.messages.extend(self.reader.feed(data))
        return self.messages.pop(0)

    def init(self, config: model.Config, pool: str = "P", timeout: float = 60.0) -> dict:
        self.send({"op": "init", "config": model.encode(config), "pool": pool})
        return self.recv(timeout)

    def attach(self) -> Front:
        ours, theirs = socket.socketpair()
        self.send({"op": "attach"}, [theirs.fileno()])
        theirs.close()
        front = Front(ours)
        front.read_hello()
        return front

    def ping(self, ping_id: int = 1) -> dict:
        self.send({"op": "ping", "id": ping_id})
        return self.recv()

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        self.log.flush()
        return pathlib.Path(self.log.name).read_text(errors="replace")

    def stop_process(self) -> None:
        """Teardown: end the child by its PID whatever state the test left it in."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.control.close()
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
