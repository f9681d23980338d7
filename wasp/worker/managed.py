"""Python ("managed") modules: imported by dotted path, wrapped as pipeline modules.

A `modules` entry with a `type` ("package.module:Class") names a subclass of wasp.modules.Module.
The worker imports it from the application's python_path (and the pool's virtualenv, already on
sys.path), registers its own section under the entry's name, and wraps one instance per
application in a `ManagedModule`: a registry Module whose phase steps hand the user's method a
`wasp.modules.Request` and check what it returns. A phase method before the handler may be
`async def`: its step returns the coroutine and the pipeline awaits it as a pending step.
Everything that can go wrong here (the import, the class, its section, its `setup`) is a
ModuleError naming the entry, its type and the cause; at worker start that is a load failure
(exit code 4, the pool's event says why).
"""

from __future__ import annotations

import importlib
import inspect
import sys

import msgspec

from wasp.config import sections
from wasp.worker.registry import CONTINUE, FINISH, Module, ModuleError, Phase


def describe(entry) -> str:
    return f"module {entry.name!r} (type = {entry.type!r})"


def import_class(entry, python_path=()) -> type:
    """The class an entry's `type` names, checked against the public API."""
    from wasp.modules import PHASES
    from wasp.modules import Module as PublicModule

    spec = entry.type
    module_name, sep, qualname = spec.partition(":")
    module_name, qualname = module_name.strip(), qualname.strip()
    if not sep or not module_name or not qualname:
        raise ModuleError(f"{describe(entry)}: type must be \"package.module:Class\"")
    for path in reversed(list(python_path)):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise ModuleError(f"{describe(entry)} cannot be imported: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, PublicModule)):
        raise ModuleError(f"{describe(entry)}: {qualname} is not a subclass of wasp.modules.Module")
    if callable(getattr(obj, Phase.EXECUTE_REQUEST_HANDLER.method, None)):
        raise ModuleError(f"{describe(entry)}: a Python module cannot be a handler "
                          "(execute_request_handler); it runs in the other phases")
    if not any(callable(getattr(obj, phase.method, None)) for phase in PHASES):
        raise ModuleError(f"{describe(entry)}: {qualname} defines no phase method "
                          f"({', '.join(p.method for p in PHASES[:3])}, ...)")
    late = [phase.method for phase in PHASES if phase > Phase.EXECUTE_REQUEST_HANDLER
            and inspect.iscoroutinefunction(getattr(obj, phase.method, None))]
    if late:
        raise ModuleError(f"{describe(entry)}: {', '.join(late)} cannot be async: only the phases "
                          "before the handler (begin_request ... pre_execute_request_handler) may "
                          "be `async def`")
    section = getattr(obj, "section", None)
    if section is not None and not (isinstance(section, type) and issubclass(section, msgspec.Struct)):
        raise ModuleError(f"{describe(entry)}: its section must be a msgspec Struct, not {section!r}")
    return obj


def register_section(entry, cls: type) -> bool:
    """Register the class's own section under the entry's name; True when it is new."""
    section = cls.section
    if section is None:
        return False
    known = sections.info(entry.name)
    if known is not None and known.cls is section:
        return False
    try:
        sections.register(entry.name, section, override_mode_default="Allow")
    except sections.SectionError as exc:
        raise ModuleError(f"{describe(entry)}: {exc}") from None
    return True


class ManagedModule(Module):
    """A Python module's instance as the pipeline runs it."""

    def __init__(self, entry, cls: type):
        from wasp.modules import PHASES, Request

        self.id = entry.name
        self.entry = entry
        self.user = cls()
        self.user.name = entry.name
        self.phases = tuple(p for p in PHASES if callable(getattr(self.user, p.method, None)))
        for phase in self.phases:
            setattr(self, phase.method, _step(getattr(self.user, phase.method), Request, entry, phase))

    def setup(self, app) -> None:
        from wasp.modules import AppInfo

        config = app.config
        info = AppInfo(app.key, config.path, config.physical_path, app.sections)
        try:
            self.user.setup(info)
        except Exception as exc:
            raise ModuleError(f"{describe(self.entry)}: setup failed: {type(exc).__name__}: {exc}") from exc

    def cleanup(self) -> None:
        self.user.cleanup()

    def __repr__(self) -> str:
        return f"<ManagedModule {self.entry.name} {self.entry.type}>"


def _step(method, request_type, entry, phase):
    if inspect.iscoroutinefunction(method):
        # `async def`: the step returns the coroutine, a pending step the pipeline awaits on the
        # event loop (IIS's RQ_NOTIFICATION_PENDING) while the worker serves other requests.
        async def pending(ctx):
            status = await method(request_type(ctx))
            if status is CONTINUE or status is FINISH:
                return status
            raise TypeError(f"{describe(entry)}: {phase.method}() returned {status!r}, "
                            "not CONTINUE or FINISH")
        pending.__name__ = phase.method
        return pending

    def step(ctx):
        status = method(request_type(ctx))
        if status is CONTINUE or status is FINISH:
            return status
        raise TypeError(f"{describe(entry)}: {phase.method}() returned {status!r}, not CONTINUE or FINISH")
    step.__name__ = phase.method
    return step
