"""Micro benchmark of one worker behind a fake front (no HTTP): requests/s through the data channel.

    PYTHONPATH=. python tests/integration/worker_microbench.py [wsgi|asgi|static] [seconds] [inflight]

The fake front keeps `inflight` requests outstanding (default: the worker's capacity), reusing
stream ids as their responses arrive, and batches its writes the way the real front does per
read. It shares the machine's cores with the worker, as the real front would.
"""

from __future__ import annotations

import sys
import time

import psutil

from worker_harness import APPS, WorkerProcess, make_config

from wasp.wire import frames
from wasp.wire.frames import FLAG_FIN, FrameType


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "wsgi"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    spec = {"wsgi": {"app": "hello_wsgi:hello"}, "asgi": {"app": "hello_asgi:hello"},
            "static": {"physical_path": str(APPS / "www")}}[mode]
    path = "/hello.txt" if mode == "static" else "/"
    worker = WorkerProcess()
    try:
        threads = int(sys.argv[4]) if len(sys.argv) > 4 else 16
        ready = worker.init(make_config([dict(path="/", python_path=[str(APPS)], **spec)],
                                        pool={"threads": threads}))
        assert ready["op"] == "ready", ready
        front = worker.attach()
        inflight = int(sys.argv[3]) if len(sys.argv) > 3 else front.hello.capacity
        head = front.head("1/", "GET", path, headers=[("User-Agent", "wrk"), ("Accept", "*/*")])
        packed = {sid: frames.pack_request(sid, head, False) for sid in range(1, inflight + 1)}
        sock = front.sock
        reader = front.reader
        sock.sendall(b"".join(packed.values()))
        done = 0
        proc = psutil.Process(worker.pid)
        cpu0 = proc.cpu_times()
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            data = sock.recv(1 << 20)
            out = []
            for ftype, flags, sid, _payload in reader.feed(data):
                if (ftype == FrameType.RESPONSE and flags & FLAG_FIN) or ftype in (
                        FrameType.FILE, FrameType.END, FrameType.ABORT):
                    done += 1
                    out.append(packed[sid])
            now = time.perf_counter()
            if now >= deadline:
                break
            if out:
                sock.sendall(b"".join(out))
        elapsed = time.perf_counter() - start
        cpu1 = proc.cpu_times()
        cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        print(f"{mode}: {done / elapsed:,.0f} requests/s ({done} in {elapsed:.1f}s, {inflight} in flight); "
              f"worker CPU {cpu / done * 1e6:.1f} us/request ({cpu / elapsed * 100:.0f}% of a core)")
    finally:
        worker.stop_process()


if __name__ == "__main__":
    main()
