"""The applications of one pool as the worker holds them: config, loaded callable, pipeline.

`load_pool` imports every application of the pool (its python_path entries first on sys.path),
decides WSGI or ASGI, builds the host and compiles the pipeline. Any failure is an AppLoadError
whose message is one line naming the application; the worker's main turns it into `load_failed`
and exit code 4.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import sys
import traceback

from wasp.config import model, sections
from wasp.errors import AppLoadError


class LoadFailure(AppLoadError):
    def __init__(self, message: str, trace: str = ""):
        super().__init__(message)
        self.message = message
        self.trace = trace


class Application:
    """One `sites[].applications[]` entry of this worker's pool."""

    def __init__(self, site: model.Site, config: model.Application, tables: dict | None = None,
                 web_toml: bool = True):
        self.site = site
        self.config = config
        path = config.path.rstrip("/")
        self.key = f"{site.id}{config.path}"
        self.tables = tables or {}               # model.Config.sections: the raw section tables
        self.sections: sections.EffectiveConfig  # the application's effective sections (ctx.config)
        self.passthrough: dict = {}              # tables of sections not registered (yet)
        self.web_toml = web_toml                 # its pool's enable_configuration_override
        self.urls = None                         # urlconfig.UrlConfig, when URLs differ
        self.script_name = path                  # "" for "/"
        self.prefix_len = len(path.encode("utf-8"))
        self.callable = None
        self.threaded = False                    # kept by the `interface` setter: read per request
        self.is_asgi = False
        self.interface = ""                      # "wsgi", "asgi" or "" (static content only)
        self.host = None                         # hosting.wsgi.WSGIHost / hosting.asgi.ASGIHost
        self.pipeline = None
        self.lifespan = None
        self.state: dict = {}                    # ASGI lifespan state, copied into each scope
        self.resolve_sections()

    def resolve_sections(self) -> None:
        """Merge the server's, the site's and the application's section tables. Run again after
        a Python module registered its own section (its table was carried undecoded)."""
        problems: list[str] = []
        levels = sections.application_levels(self.tables, self.site.id, self.key,
                                              self.config.default_documents)
        self.sections, self.passthrough = sections.resolve(
            levels, lambda path, message: problems.append(f"{path}: {message}"))
        if problems:
            raise AppLoadError(f"application {self.key}: bad configuration: " + "; ".join(problems))
        from wasp.worker.urlconfig import UrlConfig

        urls = UrlConfig(self, self.tables, self.web_toml)
        self.urls = urls if urls.needed else None

    @property
    def interface(self) -> str:
        return self._interface

    @interface.setter
    def interface(self, value: str) -> None:
        # `threaded` (WSGI requests run on the worker's threads; everything else on the event
        # loop) and `is_asgi` are plain attributes, not properties: every request reads them.
        self._interface = value
        self.threaded = value == "wsgi"
        self.is_asgi = value == "asgi"

    def __repr__(self) -> str:
        return f"<Application {self.key} {self.interface or 'static'}>"


def pool_applications(config: model.Config, pool: str) -> list[Application]:
    settings = next((p for p in config.pools if p.name == pool), None)
    web_toml = settings is None or settings.enable_configuration_override
    return [Application(site, app, config.sections, web_toml) for site in config.sites
            for app in site.applications if app.pool == pool]


def import_callable(spec: str, python_path: list[str]):
    """"module:attr", "module:attr.sub" or "module:factory(args)" -> the object."""
    for entry in reversed(python_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_name, _, expression = spec.partition(":")
    module_name = module_name.strip()
    if not module_name:
        raise ValueError(f"app {spec!r} names no module")
    module = importlib.import_module(module_name)
    expression = expression.strip() or "application"
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise ValueError(f"app {spec!r}: {expression!r} is not an attribute or a call") from None
    call = None
    if isinstance(node, ast.Call):
        call, node = node, node.func
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ValueError(f"app {spec!r}: {expression!r} is not an attribute or a call")
    names.append(node.id)
    obj = module
    for name in reversed(names):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise AttributeError(f"module {module_name!r} has no attribute "
                                 f"{'.'.join(reversed(names))!r}") from None
    if call is not None:
        try:
            args = [ast.literal_eval(arg) for arg in call.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        except ValueError:
            raise ValueError(f"app {spec!r}: factory arguments must be literals") from None
        obj = obj(*args, **kwargs)
    if not callable(obj):
        raise TypeError(f"app {spec!r} is a {type(obj).__name__}, not a callable")
    return obj


def detect_interface(obj) -> str:
    """ASGI when the callable (or its __call__) is a coroutine function, else WSGI."""
    for candidate in (obj, getattr(obj, "__call__", None)):
        if candidate is not None and (inspect.iscoroutinefunction(candidate)
                                      or asyncio.iscoroutinefunction(candidate)):
            return "asgi"
    return "wsgi"


def load(app: Application, *, threads: int, multiprocess: bool) -> None:
    """Import and host one application, then compile its pipeline. Raises LoadFailure."""
    from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
    from wasp.worker.hosting.asgi import ASGIHost
    from wasp.worker.hosting.wsgi import WSGIHost
    from wasp.worker.pipeline import Pipeline

    config = app.config
    try:
        if config.app:
            app.callable = import_callable(config.app, config.python_path)
            app.interface = (detect_interface(app.callable) if config.interface == "auto"
                             else config.interface)
            if app.interface == "wsgi":
                app.host = WSGIHost(app, app.callable, multithread=threads > 1,
                                    multiprocess=multiprocess)
            else:
                app.host = ASGIHost(app, app.callable)
        app.pipeline = Pipeline(app)
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt,)):
            raise
        what = f"app {config.app!r}" if config.app else "its pipeline"
        line = f"application {app.key}: cannot load {what}: {type(exc).__name__}: {exc}"
        raise LoadFailure(" ".join(line.split()), traceback.format_exc()) from exc
