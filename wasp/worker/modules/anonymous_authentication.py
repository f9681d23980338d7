"""IIS AnonymousAuthenticationModule: a request without credentials runs as the anonymous user.

Enabled (IIS's default), it sets the anonymous user ("" — cs-username "-", no REMOTE_USER) unless
a module before it already set one; an authentication module after it that finds credentials
replaces it. Disabled for a URL, a request nobody else authenticates gets 401.2 from the
pipeline's core check (wasp/worker/authn.py).
"""

from __future__ import annotations

from wasp.worker.registry import CONTINUE, Module, Phase, register


@register("anonymous_authentication", phases=(Phase.AUTHENTICATE_REQUEST,))
class AnonymousAuthenticationModule(Module):
    def authenticate_request(self, ctx):
        if ctx.user is None and ctx.config.anonymous_authentication.enabled:
            ctx.user = ""
        return CONTINUE
