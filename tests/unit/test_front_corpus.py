"""Raw requests from tests/corpus/front_*.http through the front's connection protocol.

File format: the first line is `#! <expected>... [raw] [limit=value]...`, each expectation a status,
or `status:reason` for an error the front answers (the HTTPERR reason phrase it logs; 413.1 is
logged in the site's W3C log instead, as IIS request filtering does), each `limit=value` a
`[limits]` setting for the run (e.g. `max_allowed_content_length=100`). The request
follows; its LF line ends become CRLF unless `raw` is given. `{{NUL}}` and `{{SOH}}` stand for
bytes 0 and 1, `{{a*N}}` for N times "a".

A fake worker answers every request that reaches it with 200 once its body is complete.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from front_fakes import FrontRig, split_responses
from wasp.config import model
from wasp.wire.frames import FLAG_FIN, FrameType

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "corpus"
FILES = sorted(CORPUS.glob("front_*.http"))


def load(path: pathlib.Path) -> tuple[list[tuple[int, str]], bytes, dict]:
    text = path.read_bytes()
    first, _, body = text.partition(b"\n")
    words = first.decode().split()
    assert words[0] == "#!", f"{path.name}: first line must start with #!"
    raw = "raw" in words
    expected = []
    limits = {}
    for word in words[1:]:
        if word == "raw":
            continue
        if "=" in word:
            name, _, value = word.partition("=")
            limits[name] = int(value)
            continue
        status, _, reason = word.partition(":")
        expected.append((int(status), reason))
    if not raw:
        body = body.replace(b"\n", b"\r\n")
    body = body.replace(b"{{NUL}}", b"\x00").replace(b"{{SOH}}", b"\x01")
    body = re.sub(rb"\{\{(.)\*(\d+)\}\}", lambda m: m.group(1) * int(m.group(2)), body)
    return expected, body, limits


def run(tmp_path, request: bytes, chunk: int | None = None, limits: dict | None = None):
    rig = FrontRig(tmp_path, limits=model.Limits(**(limits or {})))
    worker = rig.worker(capacity=8)
    conn, transport = rig.connect()
    parts = [request] if chunk is None else [request[i:i + chunk] for i in range(0, len(request), chunk)]
    open_streams: set[int] = set()
    for part in parts + [b""]:
        if part:
            conn.data_received(part)
        for _ in range(20):  # bounded: each round answers what reached the worker
            answered = False
            for ftype, flags, sid, payload in worker.frames():
                if ftype == FrameType.REQUEST and flags & FLAG_FIN:
                    worker.respond(sid, b"ok")
                    answered = True
                elif ftype == FrameType.REQUEST:
                    open_streams.add(sid)
                elif ftype == FrameType.END and sid in open_streams:
                    open_streams.discard(sid)
                    worker.respond(sid, b"ok")
                    answered = True
            if not answered:
                break
    rig.server.flush_logs()
    return rig, transport


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
@pytest.mark.parametrize("chunk", [None, 7], ids=["whole", "trickled"])
def test_corpus(tmp_path, path, chunk):
    expected, request, limits = load(path)
    rig, transport = run(tmp_path, request, chunk, limits)
    responses = split_responses(bytes(transport.out))
    assert [r[0] for r in responses] == [e[0] for e in expected], transport.out[:400]
    httperr = tmp_path / "logs" / "httperr" / "httperr1.log"
    errors = [e for e in expected if e[0] >= 400 and e[1] != "EntityTooLarge"]
    if any(reason == "EntityTooLarge" for _, reason in expected):
        assert b"HTTP Error 413.1." in transport.out
    if errors or expected[-1][0] >= 400:
        lines = [line for line in httperr.read_text().splitlines()
                 if not line.startswith("#")] if httperr.exists() else []
        assert [line.split(" ")[-2] for line in lines] == [reason for _, reason in errors]
        assert responses[-1][1].get("connection") == "close"
        assert transport.closed or transport.eof
    else:
        assert not httperr.exists()
        if b" HTTP/1.0\r" not in request:
            assert not transport.closed


def test_corpus_is_there():
    assert len(FILES) >= 30
