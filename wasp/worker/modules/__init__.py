"""Built-in pipeline modules. Importing this package registers them (registry.register)."""

from wasp.worker.modules import (  # noqa: F401
    anonymous_authentication, default_document, dynamic_ip_restriction, http_cache, ip_restriction,
    python_app, request_filtering, static,
)
