"""The `upgrade` scenario: wrk -c64 for N s while `wasp upgrade` runs 3 times (docs/upgrade.md).

Each upgrade starts a new manager from the installed wasp on the same listening sockets and drains
the old generation; wrk must see no socket error and no non-2xx answer. The managers that the
upgrades started are not the Deployment's child: they are stopped by the PID in run/wasp.pid.
"""

from __future__ import annotations

import os
import signal
import time

import psutil

from bench import wrk
from bench.measure import Settings
from bench.servers import wasp
import subprocess

from bench.servers import REPO, wasp_command, wasp_env
from bench.stress import CliCall, Section, _result_row, _RESULT_HEAD, _sleep_until, _start, _still_answers

#: An upgrade starts a whole new generation (manager, front, workers importing the app): on a
#: loaded machine that takes longer than the other scenarios' 15 s CLI timeout.
UPGRADE_TIMEOUT_S = 120.0


def _upgrade(config: str) -> CliCall:
    started = time.monotonic()
    try:
        done = subprocess.run(wasp_command(config, "upgrade"), capture_output=True, text=True,
                              timeout=UPGRADE_TIMEOUT_S, cwd=REPO, env={**os.environ, **wasp_env()})
    except subprocess.TimeoutExpired:
        return CliCall(None, time.monotonic() - started, f"no answer within {UPGRADE_TIMEOUT_S:.0f}s")
    return CliCall(done.returncode, time.monotonic() - started, (done.stdout + done.stderr).strip())


def _manager_pid(config: str) -> int | None:
    try:
        with open(os.path.join(os.path.dirname(config), "run", "wasp.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _stop_pid(pid: int) -> None:
    try:
        proc = psutil.Process(pid)
        children = proc.children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def run_upgrade(workdir: str, s: Settings, duration: int = 30, upgrades: int = 3) -> Section:
    section = Section(f"upgrade: {duration} s of wrk -c{s.connections} while `wasp upgrade` runs {upgrades} times")
    dep = wasp(workdir, "wsgi_hello", s.wasp_log, name="wasp-upgrade")
    url = f"http://127.0.0.1:{dep.port}/"
    print(f"  upgrade: wasp on {url} ...", flush=True)
    managers: list[int] = []
    try:
        if not _start(dep, section):
            return section
        managers.append(dep.servers[0].pid)
        wrk.run(url, s.warmup, s.connections)
        calls: list[CliCall] = []
        load = wrk.start(url, duration, s.connections)
        try:
            t0 = time.monotonic()
            for i in range(upgrades):
                _sleep_until(t0 + (i + 0.3) * duration / upgrades)
                if time.monotonic() > t0 + duration:
                    break
                calls.append(_upgrade(dep.config_path))
                pid = _manager_pid(dep.config_path)
                if pid is not None and pid not in managers:
                    managers.append(pid)
            during = wrk.finish(load, duration)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(5)
        ok = sum(1 for c in calls if c.rc == 0)
        section.lines += _RESULT_HEAD + [_result_row("during upgrades", during)]
        section.lines.append("")
        section.lines.append(f"- requests {during.requests:,}, non-2xx/socket errors: {during.error_text()}")
        section.lines.append(f"- upgrades: {len(calls)} sent, {ok} exit 0, slowest "
                             f"{max((c.seconds for c in calls), default=0.0):.2f} s; managers "
                             f"{' -> '.join(map(str, managers))}")
        for c in calls:
            if c.rc != 0:
                section.lines.append(f"- upgrade failed (exit {c.rc}): {c.output[-300:]}")
                break
        answers = _still_answers(dep.port)
        section.lines.append(f"- answers after the run: {answers}")
        good = during.errors == 0 and ok == len(calls) == upgrades and answers == "yes"
        section.verdict = (f"{'PASS' if good else 'FAIL'} upgrade: {ok}/{upgrades} upgrades done, "
                           f"{during.error_text()} errors in {during.requests:,} requests (target 0)")
    except (wrk.WrkFailed, OSError, psutil.Error) as e:
        section.lines.append(f"upgrade run failed: {type(e).__name__}: {e}")
        section.failed = True
    finally:
        dep.stop()
        for pid in managers[1:]:
            _stop_pid(pid)
        section.lines += [f"- {n}" for n in dep.stop_notes()]
    return section
