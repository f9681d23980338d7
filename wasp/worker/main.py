"""`python -m wasp.worker --control-fd N --worker-id K --pool NAME`: the worker process's main.

The only place in the worker that configures logging, handles signals and picks exit codes:
0 normal, 3 boot error (bad arguments, no control channel), 4 an app failed to load.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from wasp.common import journal

EXIT_BOOT_ERROR = 3


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m wasp.worker", add_help=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--worker-id", type=int, required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--virtualenv", default="", help="the pool's venv, put first on sys.path")
    parser.add_argument("--service", action="store_true", help="a tcp pool's worker (service.py)")
    parser.add_argument("--log-level", default=os.environ.get("WASP_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else EXIT_BOOT_ERROR
    journal.install()  # stderr is the journal's stream: lines get priorities
    logging.basicConfig(
        stream=sys.stderr, level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format=f"%(asctime)s worker {args.worker_id} [{args.pool}] pid {os.getpid()} "
               f"%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("wasp.worker")
    # The manager's terminal sends Ctrl-C to the whole process group; the manager decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["WASP_POOL"] = args.pool
    os.environ["WASP_WORKER_ID"] = str(args.worker_id)
    try:
        control = socket.socket(fileno=args.control_fd)
        if control.family != socket.AF_UNIX:
            raise OSError(f"descriptor {args.control_fd} is not a Unix socket")
    except OSError as exc:
        log.error("no control channel on fd %s: %s", args.control_fd, exc)
        return EXIT_BOOT_ERROR

    import uvloop

    from wasp.worker.worker import Worker

    if args.virtualenv:
        try:
            _enter_virtualenv(args.virtualenv)
        except ValueError as exc:
            log.error("cannot use virtualenv %s: %s", args.virtualenv, exc)
            return EXIT_BOOT_ERROR
    if args.service:
        from wasp.worker.service import ServiceWorker

        worker = ServiceWorker(args.worker_id, args.pool, control)
    else:
        worker = Worker(args.worker_id, args.pool, control)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, worker.request_stop)
        return await worker.run()

    try:
        code = uvloop.run(run()) if hasattr(uvloop, "run") else _run_legacy(run)
    except Exception:
        log.exception("worker failed")
        return 1
    log.info("exit %d (served %d)", code, worker.stats.served)
    logging.shutdown()
    return code


def _enter_virtualenv(path: str) -> None:
    # What wasp imports later on (WebSocket support) is imported now, from the server's packages,
    # before the venv's come first: the venv's versions are for the app.
    try:
        import wasp.worker.hosting.websocket  # noqa: F401
    except ImportError:
        pass
    from wasp.worker.venv import activate

    activate(path)


def _run_legacy(run):
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(run())
