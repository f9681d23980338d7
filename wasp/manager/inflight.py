"""`wasp list requests`: the front's requests in flight with the workers' pipeline stages. Pure.

The front knows a request's client, URL and how long it has waited; for a request it dispatched
it also knows the worker and the stream id. The worker knows where that stream is in its pipeline
(`list_requests` answered with `requests`). The manager asks both and joins them here on
(worker_id, front, stream) (with several fronts a worker has a data channel per front, and stream
ids are per channel), so a row says "ExecuteRequestHandler" and "python_app" as appcmd's
`list requests` says where a request is in IIS's pipeline.
"""

from __future__ import annotations


def merge(front_rows: list[dict], worker_rows: dict[int, list[dict]]) -> list[dict]:
    """Front rows, each dispatched one completed with its worker's `stage`, `module`, `thread`
    and `modules` (the application's module list, in order) when that worker still runs it (the front's stage stays otherwise: the worker did
    not answer, or is done and the front is still sending the response)."""
    by_stream: dict[tuple[int, int, int], dict] = {}
    for worker_id, rows in worker_rows.items():
        for row in rows or ():
            if isinstance(row, dict) and "stream" in row:
                by_stream[(int(worker_id), int(row.get("front") or 0), int(row["stream"]))] = row
    out = []
    for row in front_rows:
        row = dict(row)
        worker_id, stream = row.get("worker_id"), row.get("stream")
        front = int(row.get("front") or 0)
        seen = by_stream.get((worker_id, front, stream)) if worker_id is not None and stream else None
        if seen is not None:
            row["stage"] = seen.get("stage") or row.get("stage", "")
            row["module"] = seen.get("module", "")
            row["thread"] = seen.get("thread", "")
            row["modules"] = seen.get("modules", "")
            row["user"] = seen.get("user", "")
        out.append(row)
    return out
