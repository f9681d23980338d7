"""What the admin API shows of the supervisor's pools and workers, and how a recycle is going.

Read-only views over `Lifecycle`'s state, sans I/O; `Supervisor.pool_rows`, `worker_rows` and
`recycle_outcome` answer with them. The manager adds the front's numbers and each process's memory.
"""

from __future__ import annotations

from wasp.manager.lifecycle import Lifecycle
from wasp.manager.pools import PoolRecord, PoolState, WorkerState


def pool_rows(sup: Lifecycle, now: float | None = None) -> list[dict]:
    return [{
        "name": rec.name,
        "state": rec.state.value,
        "workers": sum(1 for w in sup.workers_of(rec.name)
                       if w.state in (WorkerState.STARTING, WorkerState.READY)),
        "start_mode": rec.settings.start_mode,
        "max_processes": rec.settings.max_processes,
        "recycle": recycle_view(rec, now),
    } for rec in sup.pools.values()]


def recycle_outcome(sup: Lifecycle, name: str, old: set[int], failures_before: int) -> str | None:
    """How a `recycle pool` begun when `old` were the pool's ready workers is going: None while
    under way, "" once new workers are ready and the old ones retired, else why it failed
    (the first replacement that failed to start, or the pool is no longer Started)."""
    rec = sup.pools.get(name)
    if rec is None:
        return "the pool was removed"
    if rec.start_failures > failures_before:
        return rec.last_start_error
    if rec.state is not PoolState.STARTED:
        return f"the pool is {rec.state.value}"
    workers = sup.workers_of(name)
    if any(w.worker_id in old and w.state is WorkerState.READY for w in workers):
        return None
    ready = sum(1 for w in workers if w.worker_id not in old and w.state is WorkerState.READY
                and not w.retiring)
    return "" if ready >= min(len(old), rec.wanted) else None


def recycle_view(rec: PoolRecord, now: float | None) -> str:
    """"ok", or "failing (attempt N, next in Ns): <error>" while replacements fail."""
    if not rec.recycle_attempts:
        return "ok"
    if rec.recycle_retry_at is not None and now is not None:
        when = f"next in {max(0.0, rec.recycle_retry_at - now):.0f}s"
    else:
        when = "retrying now"
    return f"failing (attempt {rec.recycle_attempts}, {when}): {rec.recycle_error}"


def worker_rows(sup: Lifecycle, now: float) -> list[dict]:
    return [{
        "worker_id": w.worker_id,
        "pid": w.pid,
        "pool": w.pool,
        "state": w.state.value,
        "uptime_s": round(now - w.started, 3),
        "requests": w.served,
    } for w in sorted(sup.workers.values(), key=lambda w: w.worker_id) if w.live]
