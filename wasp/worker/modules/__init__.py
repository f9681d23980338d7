"""Built-in pipeline modules. Importing this package registers them (registry.register)."""

from wasp.worker.modules import (  # noqa: F401
    anonymous_authentication, basic_authentication, client_certificate_mapping_authentication,
    default_document, digest_authentication, dynamic_ip_restriction, http_cache, ip_restriction,
    python_app, request_filtering, static, url_authorization, windows_authentication,
)
from wasp.worker.modules import directory_listing  # noqa: F401
from wasp.worker.modules import server_side_include  # noqa: F401
from wasp.worker.modules import custom_error, http_redirect, protocol_support  # noqa: F401
from wasp.worker.modules import dynamic_compression, static_compression  # noqa: F401
