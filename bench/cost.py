"""The cost model: CPU time per request of every process of the server under test.

requests/s moves 5-10% between runs on these shared 2-CPU machines; CPU time per request moves
far less, and it shows which process the time goes to. For each row, the user+system CPU time of
every process of the deployment (each server's main process and all its descendants) is sampled
right before and right after the measured wrk run; the difference divided by the requests wrk
completed is the µs/request of that process. wrk's own CPU is the client's, not the server's: it
is reported beside the total, never in it.

`sample` reads the process table (psutil); everything else here is arithmetic on its samples,
so that it can be unit-tested.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class Proc:
    """One process at one instant: who it is and the CPU seconds it has used so far."""

    pid: int
    created: float  # psutil create_time: a PID reused by another process is another process
    label: str  # "front", "worker[0]", "nginx master", ...
    cpu_s: float  # user + system, this process only (not its reaped children)


@dataclass
class Cost:
    """CPU seconds per process label over one or more measured runs, and their requests."""

    cpu_s: dict[str, float] = field(default_factory=dict)  # label -> CPU seconds, in label order
    requests: int = 0
    client_cpu_s: float | None = None  # wrk's CPU over the same runs (not the server's)
    notes: list[str] = field(default_factory=list)
    load_1m: list[float] = field(default_factory=list)  # the machine's load average at each run's start

    def per_request_us(self) -> list[tuple[str, float]]:
        if self.requests <= 0:
            return []
        return [(label, s * 1e6 / self.requests) for label, s in self.cpu_s.items()]

    def total_us(self) -> float | None:
        if self.requests <= 0:
            return None
        return sum(self.cpu_s.values()) * 1e6 / self.requests

    def client_us(self) -> float | None:
        if self.requests <= 0 or self.client_cpu_s is None:
            return None
        return self.client_cpu_s * 1e6 / self.requests


#: Reading order within one server: where requests are served first, the supervisor last.
_RANK = ("front", "master", "arbiter", "main", "worker", "cache manager", "cache loader",
         "resource tracker", "other", "manager")


def difference(before: list[Proc], after: list[Proc], requests: int,
               client_cpu_s: float | None = None) -> Cost:
    """The CPU each process used between the two samples.

    A process seen only after (started during the run) counts from 0. A process seen only
    before (it exited during the run) has lost what it used since the first sample: it counts
    nothing and a note says so, because its time cannot be read any more."""
    then = {(p.pid, p.created): p for p in before}
    cost = Cost(requests=requests, client_cpu_s=client_cpu_s)
    used: dict[str, float] = {}
    for p in after:
        start = then.pop((p.pid, p.created), None)
        used[p.label] = used.get(p.label, 0.0) + max(0.0, p.cpu_s - (start.cpu_s if start else 0.0))
        if start is None:
            cost.notes.append(f"{p.label} (pid {p.pid}) started during the run; counted from its start")
    for p in then.values():
        cost.notes.append(f"{p.label} (pid {p.pid}) exited during the run; its CPU since the "
                          f"first sample is not counted")
    cost.cpu_s = used  # in the order of `after`, which `sample` gives in reading order
    return cost


def merge(costs: list[Cost]) -> Cost | None:
    """Several rounds as one: CPU seconds and requests summed, so µs/request is the mean
    weighted by requests (a round that served more says more)."""
    costs = [c for c in costs if c is not None]
    if not costs:
        return None
    out = Cost()
    for c in costs:
        for label, s in c.cpu_s.items():
            out.cpu_s[label] = out.cpu_s.get(label, 0.0) + s
        out.requests += c.requests
        out.notes += c.notes
        out.load_1m += c.load_1m
    clients = [c.client_cpu_s for c in costs]
    out.client_cpu_s = None if any(x is None for x in clients) else sum(clients)
    return out


def load_text(cost: Cost) -> str:
    """The load average the row ran under: one value, or min–max over rounds."""
    if not cost.load_1m:
        return "n/a"
    low, high = min(cost.load_1m), max(cost.load_1m)
    return f"{low:.1f}" if len(cost.load_1m) == 1 or f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}–{high:.1f}"


def line(cost: Cost) -> str:
    """`front 11.2 µs, worker[0] 4.1, worker[1] 4.3, manager 0.0, total 19.6`."""
    parts = [f"{label} {us:.1f}" for label, us in cost.per_request_us()]
    if parts:
        parts[0] += " µs"
    total = cost.total_us()
    parts.append("total n/a" if total is None else f"total {total:.1f}")
    return ", ".join(parts)


# -- who is who ---------------------------------------------------------------------------------

def role(kind: str, is_root: bool, cmdline: str) -> str:
    """The role of one process of a server of `kind` (wasp, gunicorn, nginx, uvicorn, granian);
    workers are numbered later, in PID order."""
    if "multiprocessing.resource_tracker" in cmdline:
        return "resource tracker"
    if kind == "wasp":
        if is_root:
            return "manager"
        if "wasp.front" in cmdline:
            return "front"
        if "wasp.worker" in cmdline:
            return "worker"
        return "other"
    if kind == "nginx":
        if is_root or "master process" in cmdline:
            return "master"
        if "cache manager" in cmdline:
            return "cache manager"
        if "cache loader" in cmdline:
            return "cache loader"
        return "worker"
    if is_root:
        return {"gunicorn": "arbiter"}.get(kind, "main")
    return "worker"


def label_all(kind: str, procs: list[tuple[int, bool, str]], prefix: str = "") -> dict[int, str]:
    """pid -> label for one server's processes, given (pid, is_root, cmdline) of each: workers
    numbered worker[0], worker[1], ... in PID order, other roles by name; `prefix` (the server's
    name, when a deployment has several) in front. In reading order (_RANK, then PID)."""
    roles = {pid: role(kind, root, cmd) for pid, root, cmd in procs}
    out, counts = {}, {}
    for pid in sorted(roles, key=lambda pid: (_RANK.index(roles[pid]), pid)):
        r = roles[pid]
        if r in ("worker", "other"):
            n = counts.get(r, 0)
            counts[r] = n + 1
            r = f"{r}[{n}]"
        out[pid] = f"{prefix} {r}" if prefix else r
    return out


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def sample(roots: list[tuple[str, int]]) -> list[Proc]:
    """Every live process of a deployment: roots as (kind, pid), each with its descendants.
    Kinds that occur more than once (none today) or several servers get a name prefix."""
    several = len(roots) > 1
    out: list[Proc] = []
    for kind, pid in roots:
        try:
            root = psutil.Process(pid)
            family = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        seen = []
        for p in family:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                seen.append((p, " ".join(p.cmdline()), p.create_time(), _cpu(p)))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        labels = label_all(kind, [(p.pid, p.pid == pid, cmd) for p, cmd, _c, _t in seen],
                           prefix=kind if several else "")
        found = {p.pid: Proc(p.pid, created, labels[p.pid], cpu) for p, _cmd, created, cpu in seen}
        out += [found[pid] for pid in labels]
    return out


def children_cpu_s() -> float:
    """CPU seconds of this process's reaped children so far: the difference across one wrk run
    is wrk's own CPU (the servers are children too, but they are reaped only when stopped)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
