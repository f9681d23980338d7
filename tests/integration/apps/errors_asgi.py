"""A raw ASGI app for the httpErrors tests: "/own404" streams its own 404 in two body messages,
"/page" is an ExecuteURL target (an ASGI child cannot run synchronously: the plain message)."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"].endswith("/own404"):
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"asgi-own-", "more_body": True})
        await send({"type": "http.response.body", "body": b"404"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"asgi page"})
