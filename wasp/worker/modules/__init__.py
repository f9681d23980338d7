"""Built-in pipeline modules. Importing this package registers them (registry.register)."""

from wasp.worker.modules import default_document, python_app, static  # noqa: F401
