"""An API-key check as a wasp Python module (docs/modules.md).

A request must carry one of the configured keys in a header (`X-API-Key` unless `header` says
otherwise): without one it gets 401, with a wrong one 403, with a good one it runs as the key's
name (the W3C log's cs-username, REMOTE_USER in the app). Register it and give it its keys:

    [[modules.add]]                  # at the server, a site, an application or a [[locations]]
    name = "api_key"
    type = "api_key:ApiKey"          # this file on the application's python_path

    [api_key]
    keys = { deploy-bot = "s3cr3t-value", reporting = "an0ther-one" }

The keys are compared in constant time, and every answer it lets through is private: the front
never hands a cached copy of a keyed response to a client without the key.
"""

from __future__ import annotations

import hmac

import msgspec

from wasp.modules import CONTINUE, Forbidden, Module, Request, Unauthorized


class ApiKeySettings(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    header: str = "X-API-Key"
    #: key name -> key value
    keys: dict[str, str] = {}


class ApiKey(Module):
    section = ApiKeySettings

    def authenticate_request(self, request: Request):
        settings: ApiKeySettings = self.settings(request)
        if not settings.enabled:
            return CONTINUE
        request.private = True  # the answer depends on the key
        presented = request.header(settings.header)
        if presented is None:
            raise Unauthorized(f"no {settings.header} header")
        given = presented.strip().encode("utf-8", "surrogateescape")
        found = None
        for name, key in settings.keys.items():
            # compare with every key, so the time taken says nothing about which one matched
            if hmac.compare_digest(given, key.encode("utf-8")) and found is None:
                found = name
        if found is None:
            raise Forbidden("the API key is not valid")
        request.set_user(found, "ApiKey")
        return CONTINUE
