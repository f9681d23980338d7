"""The front's Python per request, in-process: the real front code on fake transports.

Drives `tests/unit/front_fakes.FrontRig` (a real `Server`, `HttpConnection`s and a `WorkerLink` on
fake transports) through two paths and prints the CPU µs per request (`time.process_time`, best
of --batches batches of --n requests):

* relay: an HTTP/1.1 GET with Host, User-Agent and Accept parsed, routed, framed to a fake worker,
  its RESPONSE (FIN) frame read back and the response written (the WSGI/ASGI hello path);
* hit:   the same GET answered from the response cache (the cached page path);

The fake worker's own packing of the response (~1 µs) is part of "relay". No sockets, no event
loop: what is left of a real front's µs/request is the kernel and uvloop.

    python bench/hotpath.py                 # both paths
    python bench/compiled.py                # the same, pure against Cython-compiled modules
    python bench/hotpath.py --profile relay # cProfile of one path, top 30 by own time
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import tempfile
import time
from pathlib import Path

# The script's own directory holds bench/h2.py, which would shadow the h2 library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit"))

from front_fakes import FrontRig, make_config  # noqa: E402

from wasp.config import model  # noqa: E402
from wasp.wire import frames as fr  # noqa: E402

REQUEST = (b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\n\r\n")
BLOCK = b"200 OK\r\nContent-Type: text/plain\r\n"


def rig_for(tmp) -> FrontRig:
    """As bench/run.py's wasp: the access log off (--wasp-log turns it on there; --log here)."""
    config = make_config(Path(tmp))
    if not LOG:
        for site in config.sites:
            site.log = model.SiteLog(enabled=False)
    return FrontRig(Path(tmp), config=config)


LOG = False


def relay_rig(tmp):
    rig = rig_for(tmp)
    worker = rig.worker(capacity=1000)
    conn, transport = rig.connect()
    link = worker.link
    respond = fr.pack_response
    to_worker = worker.transport

    def one():
        conn.data_received(REQUEST)
        rig.loop.run_soon()
        # the stream id is in the REQUEST frame's header (u32 at offset 6)
        out = to_worker.out
        sid = int.from_bytes(out[6:10], "little")
        out.clear()
        link.data_received(respond(sid, BLOCK, 13, body=b"Hello, world!"))
        rig.loop.run_soon()
        transport.out.clear()
    one.rig, one.client, one.worker = rig, transport, worker  # for tests/unit/test_bench_hotpath.py
    return one


def hit_rig(tmp):
    rig = rig_for(tmp)
    worker = rig.worker(capacity=1000)
    conn, transport = rig.connect()
    for _ in range(3):  # the 2nd is stored (frequent_hit_threshold 2), then every one is a hit
        conn.data_received(REQUEST)
        for sid, _head, _fin in worker.requests():
            worker.feed(fr.pack_cache(sid, fr.CacheHint(fr.CACHE_FOR_TIME_PERIOD, 3600.0, []))
                        + fr.pack_response(sid, BLOCK, 13, body=b"Hello, world!"))
        rig.loop.run_soon()
        transport.out.clear()
    assert rig.server.cache.entries, "the page was not cached"

    def one():
        conn.data_received(REQUEST)
        rig.loop.run_soon()
        transport.out.clear()
    one.rig, one.client, one.worker = rig, transport, worker
    return one


PATHS = {"relay": relay_rig, "hit": hit_rig}


def measure(one, n: int, batches: int) -> float:
    for _ in range(n):
        one()
    best = float("inf")
    for _ in range(batches):
        t0 = time.process_time()
        for _ in range(n):
            one()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", help="relay, hit (default both)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--log", action="store_true", help="the W3C access log on (IIS's default)")
    args = ap.parse_args()
    global LOG
    LOG = args.log
    native = sorted(name for name, mod in sys.modules.items()
                    if name.startswith("wasp.") and (getattr(mod, "__file__", "") or "").endswith(".so"))
    print(f"compiled wasp modules: {', '.join(native) or 'none'}")
    gc.freeze()
    for name in args.paths or list(PATHS):
        with tempfile.TemporaryDirectory() as tmp:
            one = PATHS[name](tmp)
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(args.n * 5):
                    one()
                prof.disable()
                print(f"== {name}")
                pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            else:
                print(f"{name}: {measure(one, args.n, args.batches):.2f} µs/request")


if __name__ == "__main__":
    main()
