"""What authentication modules share: the challenges of a 401 and the rule that a request with no
user is refused.

Every authentication module runs in AUTHENTICATE_REQUEST. One that finds its scheme's credentials
checks them: good ones `ctx.set_user(name, scheme)`, bad ones raise `unauthorized(ctx, 1)` (401.1).
One that finds none adds its challenge with `add_challenge` and lets the request go on. Anonymous
authentication, when enabled, sets the anonymous user ("") and a later module with credentials
replaces it. After the phase the pipeline's core check (wasp/worker/pipeline.py) answers 401.2
when no module produced a user (IIS: "no authentication populating the HttpUser object"); a later
401 (URL authorization refusing the anonymous user) carries the same challenges.

Challenges go out in a fixed scheme order whatever the module order: Negotiate, Digest, Basic
(strongest first, the order IIS's response shows them and the order browsers pick from).
"""

from __future__ import annotations

from wasp.errors import HttpError
from wasp.worker.registry import CONTINUE

#: add_challenge's order values.
NEGOTIATE, DIGEST, BASIC, OTHER = 10, 20, 30, 90


class Unauthorized(HttpError):
    status = 401
    reason = "Unauthorized"


def add_challenge(ctx, order: int, value: str) -> None:
    """Offer `value` ("Basic realm=...") in WWW-Authenticate if the request ends in a 401."""
    challenges = ctx.challenges
    if challenges is None:
        ctx.challenges = [(order, value)]
    else:
        challenges.append((order, value))


def unauthorized(ctx, substatus: int, detail: str = "") -> Unauthorized:
    """The 401.`substatus` to raise, carrying every challenge collected so far."""
    exc = Unauthorized(detail or _DETAIL.get(substatus, "access denied"), substatus=substatus)
    exc.headers = [("WWW-Authenticate", value)
                   for _order, value in sorted(ctx.challenges or (), key=lambda c: c[0])]
    return exc


_DETAIL = {
    1: "logon failed: the credentials are not valid",
    2: "logon failed due to server configuration: no authentication method produced a user",
}


def check_user(ctx):
    """The core step after AUTHENTICATE_REQUEST: 401.2 when no module set a user."""
    if ctx.user is None:
        raise unauthorized(ctx, 2)
    return CONTINUE


__all__ = ["Unauthorized", "add_challenge", "unauthorized", "check_user",
           "NEGOTIATE", "DIGEST", "BASIC", "OTHER"]
