"""DefaultDocumentModule: a directory request is answered with its first default document.

In IIS the module rewrites the request to the document and the StaticFile handler serves it; here
the handler mapping (wasp/worker/handlers.py) calls `prepare`, which points the request's located
file at the document, and the `StaticFile` entry then maps it to static_file.
The files tried are the URL's effective `default_document` section (`ctx.config`).
A directory named without its trailing slash is redirected (301) when static content would answer
it; an application with a Python app gets such paths when there is no default document.
"""

from __future__ import annotations

import os
import stat

from wasp.worker.modules.static import locate, redirect_to_slash, resolve
from wasp.worker.registry import CONTINUE, FINISH, Module, Phase, register


@register("default_document", phases=(Phase.MAP_REQUEST_HANDLER,))
class DefaultDocumentModule(Module):
    def setup(self, app) -> None:
        physical = app.config.physical_path
        self.root = os.path.realpath(physical) if physical else None
        self.has_app = bool(app.config.app)

    def find(self, directory: str, documents):
        """(real path, stat) of the first default document in `directory`, or None.

        Names are matched exactly first, then without regard to case, since IIS (on a
        case-insensitive file system) finds "Default.htm" as "default.htm".
        """
        for name in documents:
            found = resolve(self.root, directory, [name])
            if found is not None and not stat.S_ISDIR(found[1].st_mode):
                return found
        try:
            entries = {entry.lower(): entry for entry in os.listdir(directory)}
        except OSError:
            return None
        for name in documents:
            entry = entries.get(name.lower())
            if entry is not None:
                found = resolve(self.root, directory, [entry])
                if found is not None and not stat.S_ISDIR(found[1].st_mode):
                    return found
        return None

    def wants(self, phase) -> bool:
        return self.root is not None  # without content there is nothing to map

    def prepare(self, ctx) -> None:
        """Called by the handler mapping once the URL is located: a directory URL ending in "/"
        becomes its first default document, so the handler entries see a file."""
        if not ctx.is_dir or not ctx.head.path.endswith(b"/"):
            return
        section = ctx.config.default_document  # this URL's effective defaultDocument
        if not section.enabled:
            return
        document = self.find(ctx.file_path, section.files)
        if document is not None:
            ctx.file_path, ctx.file_stat = document
            ctx.is_dir = False

    def map_request_handler(self, ctx):
        """A directory named without its trailing slash is redirected when static content
        answers it (it has a default document, or the application has no Python app)."""
        if ctx.handler is not None or self.root is None:
            return CONTINUE
        locate(ctx, self.root)
        if not ctx.is_dir or ctx.head.path.endswith(b"/"):
            return CONTINUE
        if ctx.head.method not in ("GET", "HEAD") and ctx.config.web_dav_authoring.enabled:
            return CONTINUE  # WebDAV names collections with or without the slash (web_dav)
        section = ctx.config.default_document
        document = self.find(ctx.file_path, section.files) if section.enabled else None
        if document is not None or not self.has_app:
            redirect_to_slash(ctx)
            return FINISH
        return CONTINUE
