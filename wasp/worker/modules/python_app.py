"""The Python app handler: hands a request to the application's WSGI or ASGI host.

The handler of the default `PythonApp` entry of the handler list (wasp/config/sections/handlers.py),
which passes over URLs naming existing files; IIS's equivalent is a managed handler such as
ASP.NET's, or FastCGI's `scriptProcessor`. It is the "managed handler" of
`pre_condition = "managedHandler"` modules.
"""

from __future__ import annotations

from wasp.worker.registry import Module, Phase, register


@register("python_app", phases=(Phase.EXECUTE_REQUEST_HANDLER,))
class PythonAppModule(Module):
    managed = True  # what pre_condition = "managedHandler" means

    def setup(self, app) -> None:
        self.host = app.host
        self.blocking = app.threaded  # a WSGI app runs on the worker's threads

    def wants(self, phase) -> bool:
        return self.host is not None

    def execute_request_handler(self, ctx):
        # The WSGI host answers and returns FINISH; the ASGI host returns a coroutine that the
        # loop-side pipeline awaits.
        return self.host.execute(ctx)
