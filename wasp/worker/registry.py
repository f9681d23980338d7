"""Pipeline modules: the phases they hook, how they register, and their lifecycle.

A module is a class registered under an id with the phases it handles, like an IIS native module
registering for request notifications. For each phase it names, the class defines a method of the
phase's name in lower case (`begin_request`, `map_request_handler`, ...), taking the request
context and returning CONTINUE or FINISH. A module registered for EXECUTE_REQUEST_HANDLER is a
handler: it only runs when MAP_REQUEST_HANDLER chose it (`ctx.handler`), as in IIS where only the
mapped handler receives RQ_EXECUTE_REQUEST_HANDLER.

Lifecycle, one instance per application: `setup(app)` (read the application's settings),
`validate()` (refuse a bad setting before the worker takes traffic), `cleanup()` at exit.
Registering the same id twice, or asking for an id nobody registered, fails at start-up.
"""

from __future__ import annotations

from enum import Enum, IntEnum
from typing import Callable

from wasp.errors import WaspError


class Phase(IntEnum):
    """The deterministic request notifications, in IIS order (RQ_BEGIN_REQUEST ... RQ_END_REQUEST)."""

    BEGIN_REQUEST = 1
    AUTHENTICATE_REQUEST = 2
    AUTHORIZE_REQUEST = 3
    RESOLVE_REQUEST_CACHE = 4
    MAP_REQUEST_HANDLER = 5
    ACQUIRE_REQUEST_STATE = 6
    PRE_EXECUTE_REQUEST_HANDLER = 7
    EXECUTE_REQUEST_HANDLER = 8
    RELEASE_REQUEST_STATE = 9
    UPDATE_REQUEST_CACHE = 10
    LOG_REQUEST = 11
    END_REQUEST = 12

    @property
    def method(self) -> str:
        return self.name.lower()

    @property
    def title(self) -> str:
        """IIS's stage name as `appcmd list requests` shows it: "ExecuteRequestHandler"."""
        return "".join(part.capitalize() for part in self.name.split("_"))


class Status(Enum):
    CONTINUE = "continue"
    FINISH = "finish"  # skip the remaining phases up to LOG_REQUEST / END_REQUEST


CONTINUE = Status.CONTINUE
FINISH = Status.FINISH


class ModuleError(WaspError):
    """A module id is registered twice, unknown, or a module is declared wrongly."""


class Module:
    """Base of every pipeline module. `id` and `phases` are set by `register`."""

    id: str = ""
    phases: tuple[Phase, ...] = ()
    #: A handler that blocks its thread (the WSGI host): the pipeline runs it on a WSGI thread,
    #: everything else on the event loop.
    blocking: bool = False
    #: The handler that `pre_condition = "managedHandler"` means (python_app).
    managed: bool = False

    def setup(self, app) -> None:
        """Read what this module needs from the application (`app.config` is its config)."""

    def validate(self) -> None:
        """Raise ModuleError for a setting this module cannot work with."""

    def cleanup(self) -> None:
        """Release what setup took; runs once when the worker exits."""

    def wants(self, phase: "Phase") -> bool:
        """After setup: whether this application needs the step at all. A module with nothing to
        do for an application (no physical_path, say) stays out of its compiled pipeline."""
        return True

    @property
    def is_handler(self) -> bool:
        return Phase.EXECUTE_REQUEST_HANDLER in self.phases


_modules: dict[str, type[Module]] = {}


def register(module_id: str, *, phases) -> Callable[[type[Module]], type[Module]]:
    phases = tuple(Phase(p) for p in phases)

    def decorate(cls: type[Module]) -> type[Module]:
        if module_id in _modules:
            raise ModuleError(f"module {module_id!r} is registered twice")
        if not phases:
            raise ModuleError(f"module {module_id!r} registers for no phase")
        for phase in phases:
            if not callable(getattr(cls, phase.method, None)):
                raise ModuleError(f"module {module_id!r} registers for {phase.name} "
                                  f"but has no {phase.method}() method")
        cls.id = module_id
        cls.phases = phases
        _modules[module_id] = cls
        return cls

    return decorate


def unregister(module_id: str) -> None:
    """For tests that register throw-away modules."""
    _modules.pop(module_id, None)


def lookup(module_id: str) -> type[Module]:
    try:
        return _modules[module_id]
    except KeyError:
        raise ModuleError(f"unknown module {module_id!r} (registered: "
                          f"{', '.join(sorted(_modules)) or 'none'})") from None


def registered() -> list[str]:
    return list(_modules)
