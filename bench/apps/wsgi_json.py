"""WSGI app answering a 20 KiB JSON document (application/json, varied records), built once at
import: the `compression` scenario's dynamic row (gzip'd by wasp, or by nginx in front of gunicorn)."""

import json
import random

_rng = random.Random(20)
_records = []
_text = b"[]"
while len(_text) < 20 * 1024:
    n = len(_records)
    _records.append({"id": n, "name": f"customer {_rng.randrange(100000)}",
                     "email": f"user{_rng.randrange(10**6)}@example.test",
                     "balance": round(_rng.uniform(-500, 5000), 2),
                     "active": _rng.random() < 0.8,
                     "tags": _rng.sample(["new", "vip", "eu", "us", "trial", "paid", "late"], 3)})
    _text = json.dumps(_records, separators=(",", ":")).encode()
BODY = json.dumps(_records[:-1], separators=(",", ":")).encode()  # just under 20 KiB
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
