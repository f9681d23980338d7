"""Request execution limits (`execution_timeout`), the stuck-worker report, and the in-flight list.

The worker's loop calls `check` a few times a second while any application of its pool has a
limit. A request past its application's limit is cut: the client gets 503 (ABORT), and whatever
the app produces afterwards is dropped. A request that still runs a grace period later cannot be
stopped from inside the process (Python cannot interrupt a thread), so the worker is "stuck": it
sends the manager every thread's stack, and the manager logs them and replaces the worker. That
stack is the one thing an admin needs to find the hang (what uWSGI's harakiri and gunicorn's
worker timeout users ask for most).

No I/O here: `check` and `rows` only read request contexts, `thread_stacks` the interpreter's frames.
"""

from __future__ import annotations

import sys
import threading
import traceback

#: The shortest grace between cutting a request and calling the worker stuck.
MIN_GRACE = 1.0
#: How often the loop looks at the clock, at most and at least.
MAX_INTERVAL = 1.0
MIN_INTERVAL = 0.05
#: A stack report larger than this is cut (a worker with hundreds of threads).
MAX_STACKS = 256 * 1024


def limit_of(ctx) -> float:
    """The execution limit of a request in seconds, 0 for none. A WebSocket lives as long as its
    client wants: the limit is for request/response exchanges only."""
    if ctx.head.websocket or ctx.head.warmup:
        return 0.0
    return float(ctx.app.config.execution_timeout)


def grace(limit: float) -> float:
    return max(MIN_GRACE, limit)


def interval(limits) -> float | None:
    """How often to check, given the pool's applications' limits; None when no limit is set."""
    positive = [limit for limit in limits if limit > 0]
    if not positive:
        return None
    return min(MAX_INTERVAL, max(MIN_INTERVAL, min(positive) / 4))


def check(running, now: float) -> tuple[list, list]:
    """-> (requests to cut now, requests newly stuck). The caller marks the first ones cut
    (`expired_at`, under the stats lock, racing their threads' end); the second ones are marked
    `stuck` here. Either way each is returned once."""
    expired, stuck = [], []
    for ctx in running:
        limit = limit_of(ctx)
        if limit <= 0:
            continue
        elapsed = now - ctx.start_time
        if not ctx.expired_at:
            if elapsed >= limit:
                expired.append(ctx)
        elif not ctx.stuck and elapsed >= limit + grace(limit):
            ctx.stuck = True
            stuck.append(ctx)
    return expired, stuck


def url_of(ctx) -> str:
    head = ctx.head
    path = head.path.decode("utf-8", "replace")
    return f"{head.method} {path}?{head.query.decode('latin-1')}" if head.query else f"{head.method} {path}"


def thread_names() -> dict[int, str]:
    return {thread.ident: thread.name for thread in threading.enumerate()}


def coroutine_stack(coro) -> str:
    """Where a suspended coroutine waits: its frame and those of what it awaits, outermost first
    (an asyncio Task's own stack shows only the outermost)."""
    frames = []
    for _ in range(1000):
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "".join(traceback.StackSummary.extract(frames).format())


def thread_stacks(first: int = 0, coro=None) -> str:
    """Every thread's stack, the thread `first` (the stuck request's) at the top; then, for a
    request running on the loop, where its coroutine `coro` waits."""
    names = thread_names()
    frames = sys._current_frames()
    order = sorted(frames, key=lambda ident: (ident != first, names.get(ident, ""), ident))
    parts = []
    for ident in order:
        mark = " (running the request)" if ident == first else ""
        parts.append(f'Thread "{names.get(ident, "?")}" id {ident}{mark}:\n')
        parts.append("".join(traceback.format_stack(frames[ident])))
    del frames
    if coro is not None and getattr(coro, "cr_frame", None) is not None:
        parts.append(f"Coroutine of the request:\n{coroutine_stack(coro)}")
    text = "".join(parts)
    if len(text) > MAX_STACKS:
        text = text[:MAX_STACKS] + f"\n... cut at {MAX_STACKS} characters\n"
    return text


def rows(running, channel, now: float) -> list[dict]:
    """The requests in flight on `channel` as `list_requests` answers them: where each is in the
    pipeline. Requests already cut or cancelled are left out: the front has forgotten their
    stream ids and may have given them to new requests."""
    names = None
    out = []
    for ctx in running:
        if ctx.channel is not channel or ctx.cancelled or ctx.expired_at:
            continue
        if ctx.thread and names is None:
            names = thread_names()
        phase = ctx.phase
        out.append({
            "stream": ctx.sid,
            "app": ctx.app.key,
            "url": url_of(ctx),
            "stage": phase.title if phase is not None else "BeginRequest",
            "module": ctx.module,
            "elapsed_ms": int((now - ctx.start_time) * 1000),
            "thread": names.get(ctx.thread, "") if ctx.thread else "",
            "modules": ",".join(_pipeline(ctx).active) if _pipeline(ctx) is not None else "",
            "user": ctx.user or "",
        })
    return out


__all__ = ["check", "coroutine_stack", "grace", "interval", "limit_of", "rows", "thread_stacks", "url_of"]


def _pipeline(ctx):
    """The pipeline a request runs through: its directory's, else its application's."""
    return getattr(ctx.config, "pipeline", None) or ctx.app.pipeline
