"""The Python app handler: hands a request to the application's WSGI or ASGI host.

Mapped when no static file claimed the request and the application has an app; IIS's equivalent
is a managed handler such as ASP.NET's, or FastCGI's `scriptProcessor`.
"""

from __future__ import annotations

from wasp.worker.registry import CONTINUE, Module, Phase, register


@register("python_app", phases=(Phase.MAP_REQUEST_HANDLER, Phase.EXECUTE_REQUEST_HANDLER))
class PythonAppModule(Module):
    def setup(self, app) -> None:
        self.host = app.host
        self.blocking = app.threaded  # a WSGI app runs on the worker's threads

    def wants(self, phase) -> bool:
        return self.host is not None

    def map_request_handler(self, ctx):
        if ctx.handler is None and self.host is not None:
            ctx.handler = self
        return CONTINUE

    def execute_request_handler(self, ctx):
        # The WSGI host answers and returns FINISH; the ASGI host returns a coroutine that the
        # loop-side pipeline awaits.
        return self.host.execute(ctx)
