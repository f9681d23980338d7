"""The integrated request pipeline, compiled once per application and run as one flat loop.

Compilation walks the phases in IIS order and, within a phase, the modules in configuration order,
collecting each (phase, module, bound method). EXECUTE_REQUEST_HANDLER is one step that calls the
handler MAP_REQUEST_HANDLER chose (or the catch-all handler, like IIS's `StaticFile path="*"` at
the end of the handler list). A step returning FINISH skips ahead to LOG_REQUEST; LOG_REQUEST and
END_REQUEST always run. Any exception from a step becomes a response here and nowhere else:
an HttpError its status page, anything else a logged 500; once a response has started, an ABORT.

The same compiled steps run on the event loop (`run_sync`, static content only), as a task on
the loop (`run_async`, where a step may return an awaitable: the ASGI handler), or split for an
application with a WSGI app: `run_front` runs the phases up to the handler on the loop, and only
when MAP_REQUEST_HANDLER chose a blocking handler (the WSGI host) does the rest, from
EXECUTE_REQUEST_HANDLER on, run on a thread (`run_handler_sync`). A static file, a default
document, a redirect or an error page of such an application never waits for a free thread.
"""

from __future__ import annotations

import asyncio
import logging

from wasp.config.sections.modules import NATIVE_MODULES
from wasp.errors import HttpError, NotFound
from wasp.worker import errorpages
from wasp.worker.authn import check_user
from wasp.worker.context import Cancelled
from wasp.worker.registry import CONTINUE, FINISH, Module, ModuleError, Phase, Status, lookup

log = logging.getLogger("wasp.worker")

#: The modules that run, in order, when nothing is configured: the `modules` section's default
#: (IIS's global module order of the native modules wasp has, wasp/config/sections/modules.py).
DEFAULT_MODULES = NATIVE_MODULES

_TAIL = (Phase.LOG_REQUEST, Phase.END_REQUEST)


class Pipeline:
    def __init__(self, app, module_ids=None):
        if module_ids is None:  # the application's `modules` section
            module_ids = tuple(module_ids_of(app.sections.modules))
        if len(set(module_ids)) != len(module_ids):
            raise ModuleError(f"a module is listed twice in {list(module_ids)}")
        self.app = app
        self.modules: list[Module] = [lookup(module_id)() for module_id in module_ids]
        for module in self.modules:
            module.setup(app)
        for module in self.modules:
            module.validate()
        self.catch_all = next((m for m in reversed(self.modules)
                               if m.is_handler and getattr(m, "catch_all", False)), None)
        self.main: list[tuple] = []
        self.tail: list[tuple] = []
        if getattr(app, "urls", None) is not None:
            # URLs of this application may have a bad web.toml: IIS Web Core's 500.19, first.
            self.main.append((Phase.BEGIN_REQUEST, CORE, _check_config))
        for phase in Phase:
            target = self.tail if phase in _TAIL else self.main
            if phase is Phase.EXECUTE_REQUEST_HANDLER:
                target.append((phase, "", self._execute))
                continue
            steps = len(target)
            for module in self.modules:
                if phase in module.phases and module.wants(phase):
                    target.append((phase, module.id, getattr(module, phase.method)))
            if phase is Phase.AUTHENTICATE_REQUEST and len(target) > steps:
                # Authentication modules ran: one of them must have produced a user (401.2).
                target.append((phase, CORE, check_user))
        stepped = {name for _phase, name, _step in self.main + self.tail}
        #: The modules a request of this application runs through, in order (`list requests`).
        self.active = [m.id for m in self.modules
                       if m.id in stepped or (m.is_handler and m.wants(Phase.EXECUTE_REQUEST_HANDLER))]
        split = next(i for i, (phase, _name, _step) in enumerate(self.main)
                     if phase is Phase.EXECUTE_REQUEST_HANDLER)
        self.before = self.main[:split]  # run on the loop by run_front
        self.after = self.main[split:]   # EXECUTE_REQUEST_HANDLER on
        #: Where a pending request whose handler blocks goes (the worker's WSGI thread queue).
        self.hand_off = None
        self._pending: set = set()

    def cleanup(self) -> None:
        for module in self.modules:
            try:
                module.cleanup()
            except Exception:
                log.exception("cleanup of module %s failed", module.id)

    # ---- the per-request loop ----
    def run_sync(self, ctx) -> None:
        """The whole request on the calling thread (a static-only application's, on the loop)."""
        if self.run_front(ctx):
            self.run_handler_sync(ctx)

    def run_front(self, ctx) -> bool:
        """The phases before the handler, on the loop. True when the mapped handler blocks (WSGI):
        the caller hands the request to a thread, which calls `run_handler_sync`. Otherwise the
        request has been answered and ended here, or it is pending: a step returned an awaitable
        (IIS's RQ_NOTIFICATION_PENDING: a password check on a thread, an LDAP bind) and a task
        carries on with it when it resolves, handing the request to a thread itself
        (`hand_off`) if it gets that far."""
        rest = ()
        try:
            for index, (phase, name, step) in enumerate(self.before):
                ctx.phase = phase
                ctx.module = name
                status = step(ctx)
                if status is FINISH:
                    break
                if status.__class__ is not Status:
                    self._suspend(ctx, status, index + 1)
                    return False
            else:
                handler = ctx.handler or self.catch_all
                if handler is not None and handler.blocking:
                    return True
                rest = self.after
        except Exception as exc:
            self.fail(ctx, exc)
        self._run_sync(ctx, rest)
        return False

    def _suspend(self, ctx, awaitable, index: int) -> None:
        task = ctx.task = asyncio.get_running_loop().create_task(self._resume(ctx, awaitable, index))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _resume(self, ctx, awaitable, index: int) -> None:
        """The rest of `before` after a pending step, then the handler (here, or on a thread)."""
        rest = ()
        try:
            status = await awaitable
            if status is not FINISH:
                for phase, name, step in self.before[index:]:
                    ctx.phase = phase
                    ctx.module = name
                    status = step(ctx)
                    if status.__class__ is not Status:
                        status = await status
                    if status is FINISH:
                        break
                else:
                    handler = ctx.handler or self.catch_all
                    if handler is not None and handler.blocking and self.hand_off is not None:
                        ctx.task = None
                        self.hand_off(ctx)
                        return
                    rest = self.after
        except asyncio.CancelledError:
            self.fail(ctx, Cancelled("request task cancelled"))
            rest = ()
        except Exception as exc:
            self.fail(ctx, exc)
        ctx.task = None
        self._run_sync(ctx, rest)

    def run_handler_sync(self, ctx) -> None:
        """The rest of a request `run_front` handed off: the handler and the last phases."""
        self._run_sync(ctx, self.after)

    def _run_sync(self, ctx, steps) -> None:
        try:
            try:
                for phase, name, step in steps:
                    ctx.phase = phase
                    ctx.module = name
                    if step(ctx) is FINISH:
                        break
            except Exception as exc:
                self.fail(ctx, exc)
            else:
                self._check_answered(ctx)
            for phase, name, step in self.tail:
                ctx.phase = phase
                ctx.module = name
                try:
                    step(ctx)
                except Exception:
                    log.exception("%s in %s failed for %s", name, phase.name, _url(ctx))
        finally:
            ctx.channel.done(ctx)

    async def run_async(self, ctx) -> None:
        try:
            try:
                for phase, name, step in self.main:
                    ctx.phase = phase
                    ctx.module = name
                    status = step(ctx)
                    if status.__class__ is not Status:
                        status = await status
                    if status is FINISH:
                        break
            except asyncio.CancelledError:
                # The worker is exiting with this request still running, or the request ran
                # past its execution limit (already answered 503).
                self.fail(ctx, Cancelled("request task cancelled"))
                raise
            except Exception as exc:
                self.fail(ctx, exc)
            else:
                self._check_answered(ctx)
            for phase, name, step in self.tail:
                ctx.phase = phase
                ctx.module = name
                try:
                    status = step(ctx)
                    if status.__class__ is not Status:
                        await status
                except Exception:
                    log.exception("%s in %s failed for %s", name, phase.name, _url(ctx))
        finally:
            ctx.channel.done(ctx)

    def _execute(self, ctx):
        handler = ctx.handler or self.catch_all
        if handler is None:
            raise NotFound("no handler", substatus=4)
        ctx.handler = handler
        ctx.module = handler.id
        return handler.execute_request_handler(ctx)

    def _check_answered(self, ctx) -> None:
        if not ctx.finished and not ctx.cancelled:
            self.fail(ctx, RuntimeError(f"the pipeline ended without a complete response "
                                        f"(last module: {ctx.module or '-'})"))

    # ---- the one place an error becomes a response ----
    def fail(self, ctx, exc: BaseException) -> None:
        if isinstance(exc, Cancelled) or ctx.cancelled:
            if not ctx.finished and not ctx.cancelled and ctx.started:
                ctx.abort(500)
            return
        if not isinstance(exc, HttpError):
            log.error("unhandled error in %s (%s, %s) for %s", ctx.app.key,
                      ctx.phase.name if ctx.phase else "-", ctx.module or "-", _url(ctx),
                      exc_info=(type(exc), exc, exc.__traceback__))
            exc = HttpError(str(exc), status=500)
        if ctx.finished:
            return
        try:
            if ctx.started:
                ctx.abort(500)
                return
            block, body = errorpages.render(exc, ctx)
            ctx.respond(block, body, substatus=exc.substatus)
        except Cancelled:
            pass


#: The name IIS's detailed error gives the engine itself (a config error, 500.19).
CORE = "IIS Web Core"


def _check_config(ctx):
    fault = ctx.config.fault
    if fault is not None:
        raise fault
    return CONTINUE


def module_ids_of(section) -> list[str]:
    """The ids of a `modules` section's entries, in order. A Python module's entry (with a
    `type`) is loaded by wasp.modules (issue 9 item 3); until that exists it is refused here."""
    ids = []
    for entry in section.entries:
        if entry.type:
            raise ModuleError(f"module {entry.name!r}: Python modules (type = {entry.type!r}) are "
                              "not supported by this worker")
        ids.append(entry.name)
    return ids


def _url(ctx) -> str:
    head = ctx.head
    path = head.path.decode("utf-8", "replace")
    return f"{head.method} {path}?{head.query.decode('latin-1')}" if head.query else f"{head.method} {path}"


__all__ = ["Pipeline", "DEFAULT_MODULES", "Phase", "Status", "CONTINUE", "FINISH"]
