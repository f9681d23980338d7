"""Built-in pipeline modules. Importing this package registers them (registry.register)."""

from wasp.worker.modules import default_document, http_cache, python_app, static  # noqa: F401
