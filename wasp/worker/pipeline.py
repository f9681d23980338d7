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
import os

from wasp.config.sections.modules import NATIVE_MODULES, ModuleEntry
from wasp.errors import HttpError, NotFound
from wasp.wire import frames
from wasp.worker import errorpages
from wasp.worker.authn import check_user
from wasp.worker.context import Cancelled
from wasp.worker.handlers import HandlerMap
from wasp.worker.registry import CONTINUE, FINISH, Module, ModuleError, Phase, Status, lookup

log = logging.getLogger("wasp.worker")

#: The modules that run, in order, when nothing is configured: the `modules` section's default
#: (IIS's global module order of the native modules wasp has, wasp/config/sections/modules.py).
DEFAULT_MODULES = NATIVE_MODULES

_TAIL = (Phase.LOG_REQUEST, Phase.END_REQUEST)

#: Compiled handler lists one pipeline keeps (one per effective `handlers` section it met).
MAP_CACHE_LIMIT = 1024


class Pipeline:
    """The compiled steps of one effective `modules` section of an application.

    `instances` (module key -> Module) lets the pipelines of one application's directories share
    one instance per module: Application.pipeline_for passes its own; a Pipeline built alone
    makes its modules afresh."""

    def __init__(self, app, module_ids=None, section=None, instances=None):
        if module_ids is not None:
            entries = [ModuleEntry(name=module_id) for module_id in module_ids]
        else:
            section = section if section is not None else app.sections.modules
            entries = section.entries
        run_all = section.run_all_managed_modules_for_all_requests if section is not None else False
        names = [entry.name.lower() for entry in entries]
        if len(set(names)) != len(names):
            raise ModuleError(f"a module is listed twice in {[e.name for e in entries]}")
        self.app = app
        instances = {} if instances is None else instances
        self.modules: list[Module] = [module_for(app, entry, instances) for entry in entries]
        gated = {entry.name.lower() for entry in entries
                 if entry.pre_condition == "managedHandler" and not run_all}
        self.catch_all = next((m for m in reversed(self.modules)
                               if m.is_handler and getattr(m, "catch_all", False)), None)
        #: Handler modules that run for this application, by id (the handler list maps to these).
        self.handlers = {m.id: m for m in self.modules if m.is_handler and (
            m.wants(Phase.EXECUTE_REQUEST_HANDLER) or getattr(m, "answers_without_content", False))}
        document = next((m for m in self.modules if m.id == "default_document"
                         and m.wants(Phase.MAP_REQUEST_HANDLER)), None)
        self._prepare = document.prepare if document is not None else None
        physical = getattr(app.config, "physical_path", "")
        self._root = os.path.realpath(physical) if physical else None
        self._maps: dict[int, tuple] = {}
        self.main: list[tuple] = []
        self.tail: list[tuple] = []
        if getattr(app, "urls", None) is not None:
            # URLs of this application may have a bad web.toml: IIS Web Core's 500.19, first.
            self.main.append((Phase.BEGIN_REQUEST, CORE, _check_config))
        if logs_modules(app):
            # The site's W3C log has the WASP_MODULES field: tell the front (one small frame).
            self.main.append((Phase.BEGIN_REQUEST, CORE, self._send_modules))
        for phase in Phase:
            target = self.tail if phase in _TAIL else self.main
            if phase is Phase.EXECUTE_REQUEST_HANDLER:
                target.append((phase, "", self._execute))
                continue
            steps = len(target)
            for module in self.modules:
                if phase in module.phases and module.wants(phase):
                    step = getattr(module, phase.method)
                    if module.id.lower() in gated:
                        step = self._gate(step)
                    target.append((phase, module.id, step))
            if phase is Phase.AUTHENTICATE_REQUEST and len(target) > steps:
                # Authentication modules ran: one of them must have produced a user (401.2).
                target.append((phase, CORE, check_user))
            if phase is Phase.MAP_REQUEST_HANDLER:
                # IIS's core picks the handler from the handler list once the modules mapped.
                target.append((phase, CORE, self._map))
        tracing = getattr(app, "tracing", None)
        if tracing is not None:  # compiled in: a pipeline that does not trace pays nothing
            self.main = [(phase, name, tracing.wrap(phase, name, step)) for phase, name, step in self.main]
            self.tail = [(phase, name, tracing.wrap(phase, name, step)) for phase, name, step in self.tail]
        stepped = {name for _phase, name, _step in self.main + self.tail}
        #: The modules a request of this application runs through, in order (`list requests`).
        self.active = [m.id for m in self.modules if m.id in stepped or (
            m.is_handler and m.wants(Phase.EXECUTE_REQUEST_HANDLER))]
        self._modules_field = ",".join(self.active).encode("ascii", "replace") or b"-"
        split = next(i for i, (phase, _name, _step) in enumerate(self.main)
                     if phase is Phase.EXECUTE_REQUEST_HANDLER)
        self.before = self.main[:split]  # run on the loop by run_front
        self.after = self.main[split:]   # EXECUTE_REQUEST_HANDLER on
        #: Where a pending request whose handler blocks goes (the worker's WSGI thread queue).
        self.hand_off = None
        self._pending: set = set()
        self._traced = None  # the traced copies of the steps (tracing.py), built when first needed

    def traced(self) -> "_Traced":
        """The steps with each module's call wrapped in NOTIFY_MODULE_START/END, for requests a
        FREB rule traces (built once; untraced requests never touch them)."""
        found = self._traced
        if found is None:
            found = self._traced = _Traced(self)
        return found

    def _send_modules(self, ctx):
        ctx.channel.send_frame(ctx, frames.pack_modules(ctx.sid, self._modules_field))
        return CONTINUE

    # ---- handler mapping ----
    def map_for(self, section) -> HandlerMap:
        """The compiled handler list of an effective `handlers` section (cached by identity: an
        effective section is shared by every URL of its directory)."""
        found = self._maps.get(id(section))
        if found is not None and found[0] is section:
            return found[1]
        if len(self._maps) >= MAP_CACHE_LIMIT:
            self._maps.clear()
        compiled = HandlerMap(section, self.handlers, self._root, self._prepare, self.catch_all)
        self._maps[id(section)] = (section, compiled)  # the section is kept: its id stays unique
        return compiled

    def _map(self, ctx):
        if ctx.handler is None:
            self.map_for(ctx.config.handlers).map(ctx)
        return CONTINUE

    def mapped(self, ctx):
        """The handler the request maps to, before MAP_REQUEST_HANDLER if need be (IIS knows a
        request's handler from its URL and verb when it starts); None when it maps to none."""
        if ctx.handler is None:
            try:
                self.map_for(ctx.config.handlers).map(ctx)
            except HttpError:
                return None  # MAP_REQUEST_HANDLER raises it again in its turn
        return ctx.handler

    def _gate(self, step):
        mapped = self.mapped

        def managed_only(ctx):
            handler = mapped(ctx)
            if handler is not None and handler.managed:
                return step(ctx)
            return CONTINUE
        return managed_only

    def cleanup(self) -> None:
        cleanup(self.modules)

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
        steps = self if ctx.freb is None else self.traced()
        try:
            for index, (phase, name, step) in enumerate(steps.before):
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
                rest = steps.after
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
        steps = self if ctx.freb is None else self.traced()
        try:
            status = await awaitable
            if status is not FINISH:
                for phase, name, step in steps.before[index:]:
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
                    rest = steps.after
        except asyncio.CancelledError:
            self.fail(ctx, Cancelled("request task cancelled"))
            rest = ()
        except Exception as exc:
            self.fail(ctx, exc)
        ctx.task = None
        self._run_sync(ctx, rest)

    def run_handler_sync(self, ctx) -> None:
        """The rest of a request `run_front` handed off: the handler and the last phases."""
        if ctx.freb is None:
            self._run_sync(ctx, self.after)
        else:
            ctx.freb.resume()  # the wait for a thread is no module's time
            self._run_sync(ctx, self.traced().after)

    def _run_sync(self, ctx, steps) -> None:
        handed = False
        try:
            try:
                for index, (phase, name, step) in enumerate(steps):
                    ctx.phase = phase
                    ctx.module = name
                    status = step(ctx)
                    if status is FINISH:
                        break
                    if status.__class__ is not Status and status is not None:
                        # A handler that awaits (the reverse proxy) in an application whose
                        # requests otherwise run straight through: a task finishes the request.
                        self._await_rest(ctx, status, steps[index + 1:])
                        handed = True
                        return
            except Exception as exc:
                self.fail(ctx, exc)
            else:
                self._check_answered(ctx)
            for phase, name, step in (self.tail if ctx.freb is None else self.traced().tail):
                ctx.phase = phase
                ctx.module = name
                try:
                    step(ctx)
                except Exception:
                    log.exception("%s in %s failed for %s", name, phase.name, _url(ctx))
        finally:
            if not handed:
                if ctx.freb is not None:
                    _finish_trace(ctx)
                ctx.channel.done(ctx)

    def _await_rest(self, ctx, awaitable, rest) -> None:
        task = ctx.task = asyncio.get_running_loop().create_task(self._rest_async(ctx, awaitable, rest))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _rest_async(self, ctx, awaitable, rest) -> None:
        try:
            try:
                status = await awaitable
                if status is not FINISH:
                    for phase, name, step in rest:
                        ctx.phase = phase
                        ctx.module = name
                        status = step(ctx)
                        if status.__class__ is not Status:
                            status = await status
                        if status is FINISH:
                            break
            except asyncio.CancelledError:
                self.fail(ctx, Cancelled("request task cancelled"))
            except Exception as exc:
                self.fail(ctx, exc)
            else:
                self._check_answered(ctx)
            for phase, name, step in (self.tail if ctx.freb is None else self.traced().tail):
                ctx.phase = phase
                ctx.module = name
                try:
                    step(ctx)
                except Exception:
                    log.exception("%s in %s failed for %s", name, phase.name, _url(ctx))
        finally:
            ctx.task = None
            if ctx.freb is not None:
                _finish_trace(ctx)
            ctx.channel.done(ctx)

    async def run_async(self, ctx) -> None:
        steps = self if ctx.freb is None else self.traced()
        try:
            try:
                for phase, name, step in steps.main:
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
            for phase, name, step in steps.tail:
                ctx.phase = phase
                ctx.module = name
                try:
                    status = step(ctx)
                    if status.__class__ is not Status:
                        await status
                except Exception:
                    log.exception("%s in %s failed for %s", name, phase.name, _url(ctx))
        finally:
            if ctx.freb is not None:
                _finish_trace(ctx)
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
        if ctx.freb is not None and not isinstance(exc, Cancelled):
            ctx.freb.failed(ctx, exc, isinstance(exc, HttpError))
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


class _Traced:
    """A pipeline's step lists, each module's step wrapped for FREB (wasp/worker/freb.py)."""

    def __init__(self, pipeline: Pipeline):
        from wasp.worker.freb import traced_steps

        self.before = traced_steps(pipeline.before, pipeline)
        self.after = traced_steps(pipeline.after, pipeline)
        self.tail = traced_steps(pipeline.tail, pipeline)
        self.main = self.before + self.after


def _finish_trace(ctx) -> None:
    try:
        ctx.freb.finish(ctx)
    except Exception:
        log.exception("failed request tracing of %s failed", _url(ctx))


def _check_config(ctx):
    fault = ctx.config.fault
    if fault is not None:
        raise fault
    return CONTINUE


def module_ids_of(section) -> list[str]:
    """The ids of a `modules` section's entries, in order."""
    return [entry.name for entry in section.entries]


def module_for(app, entry, instances: dict) -> Module:
    """The application's instance of a `modules` entry: a native module by id, or a Python
    module imported from its `type`; set up and validated once, then shared."""
    key = (entry.name.lower(), entry.type)
    module = instances.get(key)
    if module is not None:
        return module
    if entry.type:
        from wasp.worker import managed

        classes = getattr(app, "module_classes", None)
        cls = classes.get(key) if classes is not None else None
        if cls is None:
            cls = managed.import_class(entry, getattr(app.config, "python_path", ()))
            managed.register_section(entry, cls)
            if classes is not None:
                classes[key] = cls
        module = managed.ManagedModule(entry, cls)
    else:
        module = lookup(entry.name)()
    module.setup(app)
    module.validate()
    instances[key] = module
    return module


def logs_modules(app) -> bool:
    """Whether the application's site logs the WASP_MODULES server variable."""
    log_ = getattr(getattr(app, "site", None), "log", None)
    return any(f.source_type == "server_variable" and f.source_name.upper() == "WASP_MODULES"
               for f in getattr(log_, "custom_fields", ()))


def cleanup(modules) -> None:
    for module in modules:
        try:
            module.cleanup()
        except Exception:
            log.exception("cleanup of module %s failed", module.id)


def _url(ctx) -> str:
    head = ctx.head
    path = head.path.decode("utf-8", "replace")
    return f"{head.method} {path}?{head.query.decode('latin-1')}" if head.query else f"{head.method} {path}"


__all__ = ["Pipeline", "DEFAULT_MODULES", "Phase", "Status", "CONTINUE", "FINISH"]
