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
from wasp.worker.app_offline import OfflineCheck


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
        self.offline = OfflineCheck("")          # app_offline.htm; set by the worker at load
        self.script_name = path                  # "" for "/"
        self.prefix_len = len(path.encode("utf-8"))
        self.callable = None
        self.threaded = False                    # kept by the `interface` setter: read per request
        self.is_asgi = False
        self.interface = ""                      # "wsgi", "asgi" or "" (static content only)
        self.host = None                         # hosting.wsgi.WSGIHost / hosting.asgi.ASGIHost
        self.pipeline = None                     # the pipeline of the application's root
        self.pipelines: dict = {}                # one per distinct effective `modules` section
        self.instances: dict = {}                # (name, type) -> the module, shared by them
        self.module_classes: dict = {}           # (name, type) -> a Python module's class
        self.at = ("", "", "")                   # dotted prefixes of its levels, for messages
        self.source = ""                         # wasp.toml, for the line of a bad key
        self.lifespan = None
        self.run_dir = ""                        # server.run_dir (where web_dav keeps its store)
        self.state: dict = {}                    # ASGI lifespan state, copied into each scope
        self.pool_secret: bytes | None = None    # the pool's secret (manager's init), else None
        self.client_board_fd: int | None = None  # the pool's shared client counters (memfd)
        self.tracing = None                      # worker/tracing.WorkerTracing, [tracing] on
        self.resolve_sections()

    def resolve_sections(self) -> None:
        """Merge the server's, the site's and the application's section tables. Run again after
        a Python module registered its own section (its table was carried undecoded)."""
        problems: list[tuple[str, str]] = []
        levels = sections.application_levels(self.tables, self.site.id, self.key,
                                              self.config.default_documents, self.at)
        self.sections, self.passthrough = sections.resolve(
            levels, lambda path, message: problems.append((path, message)))
        from wasp.worker.urlconfig import UrlConfig

        urls = UrlConfig(self, self.tables, self.web_toml)
        self.urls = urls if urls.needed else None
        if urls.needed:
            # The locations below the application: a Python module's section is decoded there too.
            for rel in urls.levels.below:
                value, _ = sections.resolve(urls.levels.levels_for(rel)[0],
                                            lambda path, message: problems.append((path, message)))
        if problems:
            raise AppLoadError(f"application {self.key}: bad configuration: " + "; ".join(
                dict.fromkeys(self._where(path) + f"{path}: {message}" for path, message in problems)))

    def _where(self, path: str) -> str:
        """"wasp.toml:12: " for a dotted path of the config file, when its line is found."""
        if not self.source:
            return ""
        try:
            from wasp.config.locate import LineLocator

            with open(self.source, encoding="utf-8") as f:
                line = LineLocator(f.read()).line_of(path)
        except (OSError, ValueError):
            return ""
        return f"{self.source}:{line}: " if line else f"{self.source}: "

    # ---- pipelines ----
    def pipeline_for(self, section):
        """The compiled pipeline of an effective `modules` section (equal sections share one)."""
        import msgspec

        from wasp.worker.pipeline import Pipeline

        key = msgspec.msgpack.encode(section)
        pipeline = self.pipelines.get(key)
        if pipeline is None:
            pipeline = self.pipelines[key] = Pipeline(self, section=section, instances=self.instances)
        return pipeline

    def bind(self, config) -> None:
        """Attach the pipeline of `config` (an EffectiveConfig of this application) to it."""
        config.pipeline = self.pipeline_for(config.modules)
        from wasp.worker.freb import compile_tracer

        config.tracer = compile_tracer(self, config)

    def python_modules(self) -> list:
        """The Python module entries the application's wasp.toml levels name (root and locations)."""
        found = [e for e in self.sections.modules.entries if e.type]
        if self.urls is not None:
            for rel in self.urls.levels.below:
                value, _ = sections.resolve(self.urls.levels.levels_for(rel)[0], lambda p, m: None)
                found += [e for e in value.modules.entries if e.type]
        return list({(e.name.lower(), e.type): e for e in found}.values())

    def cleanup(self) -> None:
        from wasp.worker.pipeline import cleanup

        cleanup(self.instances.values())

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
    found = []
    for i, site in enumerate(config.sites):
        for j, app in enumerate(site.applications):
            if app.pool != pool:
                continue
            application = Application(site, app, config.sections, web_toml)
            application.at = ("", f"sites[{i}]", f"sites[{i}].applications[{j}]")
            application.source = config.source
            application.web_farms = config.web_farms  # the reverse proxy's farms
            application.run_dir = config.server.run_dir  # static compression's default directory
            application.log_dir = config.server.log_dir  # FREB's default trace folder
            application.frequent_hit = (config.cache.frequent_hit_threshold,
                                        float(config.cache.frequent_hit_time_period))
            found.append(application)
    return found


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


def load_modules(app: Application) -> None:
    """Import the application's Python modules and register their sections (then decode those
    tables, which were carried undecoded), and compile the pipelines of its root and of every
    location below it: anything wrong is a load failure now, not a 500 later."""
    from wasp.worker import managed

    new = False
    for entry in app.python_modules():
        key = (entry.name.lower(), entry.type)
        if key not in app.module_classes:
            cls = managed.import_class(entry, app.config.python_path)
            new = managed.register_section(entry, cls) or new
            app.module_classes[key] = cls
    if new:
        app.resolve_sections()
    app.pipeline = app.pipeline_for(app.sections.modules)
    app.bind(app.sections)
    if app.urls is not None:
        for rel in app.urls.levels.below:
            value, _ = sections.resolve(app.urls.levels.levels_for(rel)[0], lambda p, m: None)
            app.pipeline_for(value.modules)


def load(app: Application, *, threads: int, multiprocess: bool) -> None:
    """Import and host one application, then compile its pipeline. Raises LoadFailure."""
    from wasp.worker import modules  # noqa: F401  (registers the built-in modules)
    from wasp.worker.hosting.asgi import ASGIHost
    from wasp.worker.hosting.wsgi import WSGIHost

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
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt,)):
            raise
        what = f"app {config.app!r}" if config.app else "its pipeline"
        line = f"application {app.key}: cannot load {what}: {type(exc).__name__}: {exc}"
        raise LoadFailure(" ".join(line.split()), traceback.format_exc()) from exc
    try:
        load_modules(app)
        from wasp.worker.registry import Phase

        if not app.interface and any(getattr(m, "needs_threads", False) and m.wants(Phase.EXECUTE_REQUEST_HANDLER)
                                     for m in app.instances.values()):
            # Static content with a handler that must read bodies on a thread (web_dav, where
            # authoring is enabled): it runs on the pool's threads, and its request bodies are
            # read there. server_side_include is blocking too but never makes an application
            # threaded. cgi, fast_cgi and the reverse proxy still run on the loop (flow.to_async).
            app.threaded = True
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt,)):
            raise
        what = "its modules"
        line = f"application {app.key}: cannot load {what}: {type(exc).__name__}: {exc}"
        raise LoadFailure(" ".join(line.split()), traceback.format_exc()) from exc
