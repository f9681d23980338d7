"""CustomErrorModule: what the client sees of an error response (IIS's custerr.dll).

Errors the server raises (an HttpError: 404.0 of a missing file, 401.2, 403.14, 500.19, an app
exception's 500) become a page in one place, errorpages.render, which in Custom mode asks
custompages for the `http_errors.errors` entry's page (File, ExecuteURL or Redirect).

This module judges the other kind, IIS's "existing response": an error (status >= 400) the handler
made itself, such as a Flask app's own 404. Just before the handler runs
(PRE_EXECUTE_REQUEST_HANDLER) it adds a send filter (RQ_SEND_RESPONSE, RequestContext.add_filter)
that, when the handler's response head goes out with a status of 400 or more, applies the URL's
`existing_response`:
- PassThrough: the response goes out as the handler made it;
- Replace: it is replaced by the page errorpages.render gives that status (detailed or custom as
  error_mode says), and the rest of the handler's body is dropped;
- Auto: IIS keeps an existing response whose module asked to skip custom errors
  (fTrySkipCustomErrors), which a Python app cannot say; on Linux the rule is the body: an error
  response with a body (or a streamed one, whose length is not known) is kept, an empty one
  (Content-Length 0) is replaced.
A replacing page keeps the handler's WWW-Authenticate, Proxy-Authenticate, Allow and Retry-After
(an API's empty 401 still challenges the client).
"""

from __future__ import annotations

from wasp.errors import HttpError
from wasp.worker import errorpages
from wasp.worker.registry import CONTINUE, Module, Phase, register


def existing_response(ctx, block: bytes, body, length: int):
    """The send filter: the handler's error response kept, or replaced (None)."""
    try:
        status = int(block[:3])
    except ValueError:
        return block
    if status < 400:
        return block
    mode = ctx.config.http_errors.existing_response
    if mode == "PassThrough":
        return block
    if mode == "Auto" and not (length == 0 or (body is not None and not body and length < 0)):
        return block
    exc = HttpError("the handler's own error response", status=status)
    exc.headers = kept_headers(block)
    page, page_body = errorpages.render(exc, ctx)
    ctx.respond(page, page_body)
    return None


#: Headers of the handler's error response that the replacing page keeps: what the status means
#: to the client (a 401's challenge, a 405's Allow, a 503's Retry-After).
KEPT = frozenset({b"www-authenticate", b"proxy-authenticate", b"allow", b"retry-after"})


def kept_headers(block: bytes) -> list[tuple[str, str]]:
    kept = []
    for line in block.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in KEPT:
            kept.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
    return kept


existing_response.custom_error = True  # errorpages.render drops it for the server's own pages


@register("custom_error", phases=(Phase.PRE_EXECUTE_REQUEST_HANDLER,))
class CustomErrorModule(Module):
    def pre_execute_request_handler(self, ctx):
        if ctx.config.http_errors.existing_response != "PassThrough":
            ctx.add_filter(existing_response)
        return CONTINUE
