"""WSGI app for the process-model tests (tests/integration/test_process_*.py).

Environment (set per pool with `environment_variables`): PROCAPP_IMPORT_SLEEP seconds to sleep
while being imported (a slow start), PROCAPP_IMPORT_EXIT an exit code to die with at import.

Routes: /pid; /info (JSON: ids, interpreter, environment, warm-up hits); /warm (an
initialization page); /slow?s=&mark= (sleeps, touching `mark` first); /alloc?mb= (keeps N MiB);
/reserve?mb= (keeps N MiB of address space it never touches: virtual memory, not resident);
/spike?mb=&hold= (N MiB for `hold` seconds, then frees them); /hold?mark=&release=
(touches `mark`, then waits until the file `release` exists, at most 60 s); /burn?s= (CPU for s seconds);
/crash (the process exits at once); /write?path= (tries to create a file); /module?name=
(imports a module: JSON with its file, its ORIGIN attribute, sys.path and VIRTUAL_ENV).
"""

import json
import mmap
import os
import sys
import time

IMPORTED_AT = time.time()
if os.environ.get("PROCAPP_IMPORT_SLEEP"):
    time.sleep(float(os.environ["PROCAPP_IMPORT_SLEEP"]))
if os.environ.get("PROCAPP_IMPORT_EXIT"):
    os._exit(int(os.environ["PROCAPP_IMPORT_EXIT"]))
READY_AT = time.time()

warmups = []  # (path, time) of initialization-page requests
held = []     # memory /alloc keeps


def _query(environ) -> dict:
    out = {}
    for part in environ.get("QUERY_STRING", "").split("&"):
        key, _, value = part.partition("=")
        if key:
            out[key] = value
    return out


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    q = _query(environ)
    status = "200 OK"
    if environ.get("APP_WARMING_UP") == "1":
        warmups.append([path, time.time()])
    if path == "/pid":
        body = str(os.getpid())
    elif path in ("/info", "/warm"):
        body = json.dumps({
            "pid": os.getpid(), "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "groups": os.getgroups(), "executable": sys.executable, "prefix": sys.prefix,
            "env": {k: v for k, v in os.environ.items()
                    if k.startswith(("PROCAPP_", "APP_POOL", "WASP_")) or k in ("HOME", "USER")},
            "warmups": warmups, "imported_at": IMPORTED_AT, "ready_at": READY_AT,
            "first_real_request": path == "/info",
        })
    elif path == "/slow":
        if q.get("mark"):
            with open(q["mark"], "w") as f:
                f.write(str(os.getpid()))
        time.sleep(float(q.get("s", "1")))
        body = f"slept {q.get('s', '1')} in {os.getpid()}"
    elif path == "/hold":
        with open(q["mark"], "w") as f:
            f.write(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not os.path.exists(q["release"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        body = f"released in {os.getpid()}"
    elif path == "/alloc":
        held.append(b"\x01" * (int(q.get("mb", "1")) << 20))
        body = f"holding {sum(len(b) for b in held) >> 20} MiB in {os.getpid()}"
    elif path == "/reserve":
        held.append(mmap.mmap(-1, int(q.get("mb", "1")) << 20))  # anonymous pages never touched
        body = f"reserved in {os.getpid()}"
    elif path == "/spike":
        block = b"\x01" * (int(q.get("mb", "1")) << 20)
        time.sleep(float(q.get("hold", "0.1")))
        del block
        body = f"spiked in {os.getpid()}"
    elif path == "/burn":
        end = time.process_time() + float(q.get("s", "1"))
        n = 0
        while time.process_time() < end:
            n += 1
        body = f"burned in {os.getpid()}"
    elif path == "/crash":
        os._exit(1)
    elif path == "/module":
        import importlib
        module = importlib.import_module(q["name"])
        body = json.dumps({"file": module.__file__, "origin": getattr(module, "ORIGIN", ""),
                           "path": sys.path, "virtual_env": os.environ.get("VIRTUAL_ENV", "")})
    elif path == "/write":
        try:
            with open(q["path"], "w") as f:
                f.write("x")
            body = "written"
        except OSError as exc:
            body = f"refused: {exc.strerror}"
    else:
        status, body = "404 Not Found", "not found"
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
