"""Counts warm-up requests (APP_WARMING_UP) so a test can see they ran before `ready`."""
warmed = []


def app(environ, start_response):
    if environ.get("APP_WARMING_UP") == "1":
        warmed.append(environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("warmed=" + ",".join(warmed)).encode()]
