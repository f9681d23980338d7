"""CgiModule: runs a CGI script (RFC 3875) for each request it is mapped to.

A handler entry maps URLs to it: `{ name = "CGI-sh", path = "*.sh", modules = "cgi",
resource_type = "File", require_access = "Execute" }` runs the script itself;
`script_processor = "/usr/bin/php-cgi"` runs that executable with the script's path as its
argument. The executable must be allowed by `cgi_restriction` (IIS's isapiCgiRestriction,
404.2 otherwise). The process runs as the worker (the pool's identity), in the script's
directory, with the meta-variables of wasp/worker/gateway.py and only PATH from the worker's
environment; it is its own process group (killed whole) and dies with the worker
(PR_SET_PDEATHSIG).

The request body streams to its stdin (a chunked one is read whole first: CGI needs
CONTENT_LENGTH); its stdout is the response (a head, then the body, relayed with back-pressure).
Past `cgi.timeout` the process group is killed: 502.1 if no response had started. A script that
exits without a complete head: 502.2 (IIS: "the specified CGI application misbehaved by not
returning a complete set of HTTP headers"). Its stderr goes to the worker's log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal

from wasp.errors import HttpError, NotFound
from wasp.worker import gateway
from wasp.worker.context import Cancelled
from wasp.worker.flow import to_async
from wasp.worker.procs import spawn_child
from wasp.worker.registry import FINISH, Module, Phase, register

log = logging.getLogger("wasp.worker.cgi")

#: How much script stderr is kept for the log per request.
STDERR_KEEP = 8 * 1024


class CgiTimeout(HttpError):
    status = 502
    substatus = 1
    reason = "Internal"


class CgiMisbehaved(HttpError):
    status = 502
    substatus = 2
    reason = "Internal"


class NotAllowed(NotFound):
    substatus = 2  # IIS: ISAPI or CGI restriction


def allowed(section, executable: str) -> bool:
    """`cgi_restriction`: may `executable` run? An entry with allowed = false wins."""
    verdict = None
    for entry in section.entries:
        path = entry.path
        if executable == path or (path.endswith("/") and executable.startswith(path)):
            if not entry.allowed:
                return False
            verdict = True
    return verdict if verdict is not None else section.not_listed_cgis_allowed


def command_for(mapping, script_path: str) -> list[str]:
    processor = mapping.script_processor if mapping is not None else ""
    if not processor:
        return [script_path]
    path, arguments = gateway.split_processor(processor)
    return [path, *shlex.split(arguments), script_path]


@register("cgi", phases=(Phase.EXECUTE_REQUEST_HANDLER,))
class CgiModule(Module):
    def setup(self, app) -> None:
        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None
        self.threaded = app.threaded

    def wants(self, phase) -> bool:
        # A script needs content. In a threaded application it runs on the loop too.
        return self.root is not None

    def execute_request_handler(self, ctx):
        # In a threaded application (a WSGI app, or web_dav) this handler is not blocking, so
        # it runs on the loop: its body is read there (flow.to_async).
        to_async(ctx)
        return self.run(ctx)

    async def run(self, ctx):
        script = gateway.find_script(ctx, self.root)
        argv = command_for(ctx.mapping, script.path)
        executable = os.path.realpath(argv[0])
        section = ctx.config.cgi_restriction
        # listed as configured (/usr/bin/php-cgi) or as what it resolves to (php-cgi8.2)
        if not (allowed(section, executable) or (argv[0] != executable and allowed(section, argv[0]))):
            raise NotAllowed(f"{executable} is not allowed by cgi_restriction")
        if len(argv) == 1 and not os.access(executable, os.X_OK):
            raise HttpError("the script is not executable", status=403, substatus=1)
        env = gateway.environ(ctx, script)
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        body = b""
        if ctx.head.content_length < 0 and ctx.body is not None:
            body = await gateway.read_unsized(ctx)
            env["CONTENT_LENGTH"] = str(len(body))
        timeout = float(ctx.config.cgi.timeout)
        proc = await spawn_child(argv, env=env, cwd=os.path.dirname(script.path))
        relay = gateway.Relay(ctx, CgiMisbehaved("the CGI script did not return a valid response head"))
        feeder = asyncio.ensure_future(self._feed(ctx, proc, body))
        errors = asyncio.ensure_future(_collect(proc.stderr))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout > 0 else None
        try:
            while True:
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    raise CgiTimeout(f"the CGI script ran past cgi.timeout ({timeout:g} s)")
                try:
                    data = await asyncio.wait_for(proc.stdout.read(65536), left)
                except asyncio.TimeoutError:
                    raise CgiTimeout(f"the CGI script ran past cgi.timeout ({timeout:g} s)") from None
                if not data:
                    break
                await relay.feed(data)
            try:
                code = await asyncio.wait_for(proc.wait(), max(0.1, deadline - loop.time())
                                              if deadline is not None else None)
            except asyncio.TimeoutError:
                raise CgiTimeout("the CGI script closed its output but did not exit") from None
            if relay.head is None and code != 0:
                raise CgiMisbehaved(f"the CGI script exited with status {code} before its response head")
            await relay.finish()
        finally:
            feeder.cancel()
            _kill(proc)
            stderr = await _finish_stderr(errors)
            if stderr:
                log.warning("CGI %s wrote to stderr: %s", script.path,
                            stderr.decode("utf-8", "replace").rstrip())
        return FINISH

    async def _feed(self, ctx, proc, body: bytes) -> None:
        stdin = proc.stdin
        try:
            if body:
                stdin.write(body)
                await stdin.drain()
            elif ctx.body is not None:
                while True:
                    data, more = await ctx.body.take()
                    if data:
                        stdin.write(data)
                        await stdin.drain()
                    if not more:
                        break
        except (BrokenPipeError, ConnectionResetError, Cancelled):
            pass  # the script does not read its input: fine
        except HttpError:
            _kill(proc)  # 413 already answered by the body reader
        finally:
            try:
                stdin.close()
            except Exception:
                pass


async def _collect(stream) -> bytes:
    kept = bytearray()
    while True:
        data = await stream.read(65536)
        if not data:
            return bytes(kept)
        if len(kept) < STDERR_KEEP:
            kept += data[:STDERR_KEEP - len(kept)]


async def _finish_stderr(task) -> bytes:
    try:
        return await asyncio.wait_for(task, 1.0)
    except (asyncio.TimeoutError, Exception):
        task.cancel()
        return b""


def _kill(proc) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
