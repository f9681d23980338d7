"""The manager's side of /metrics: ask every front for its numbers, add the manager's own, render.

`MetricsApi` is a mixin of `Manager` (main.py), beside `AdminApi`: the admin API's `GET /metrics`
and a front's `metrics_scrape` (a client asked the front for `metrics.url`) both come here.
"""

from __future__ import annotations

import os
import time

import wasp
from wasp.common.exposition import render
from wasp.manager.metrics import families

#: /proc/<pid>/status line naming a process's thread count.
_THREADS = b"Threads:"


def thread_count(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(_THREADS):
                    return int(line[len(_THREADS):])
    except (OSError, ValueError):
        return None
    return None


class MetricsApi:
    """`Manager`'s /metrics; the attributes it reads are the manager's (main.py, api.py)."""

    async def metrics_text(self) -> str:
        answers = await self._ask_fronts({"op": "metrics"})
        totals = self.front_totals.total(self.fronts)
        now = time.monotonic()
        threads = {}
        for w in self.sup.workers.values():
            if w.live and w.pid:
                n = thread_count(w.pid)
                if n is not None:
                    threads[w.worker_id] = n
        info = {"version": wasp.__version__, "uptime_s": round(now - self.started, 3),
                "fronts": self.front_count, "answering": len(answers)}
        return render(families(self.config, self.sup, self.metric_counters, totals, threads,
                               now, info))

    async def answer_scrape(self, index: int, scrape_id) -> None:
        """A front's `metrics_scrape`: the text goes back to that front as `metrics_text`."""
        try:
            text = await self.metrics_text()
        except Exception as exc:   # the front must get an answer (a 503), whatever went wrong
            self.stderr.write(f"wasp: metrics failed: {type(exc).__name__}: {exc}\n")
            text = None
        child = self.fronts.get(index)
        if child is not None:
            child.channel.send({"op": "metrics_text", "id": scrape_id, "text": text})
