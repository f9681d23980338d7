"""wasp.front.watch: inotify events to cache tokens (the pure parts, then a real inotify)."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest

from wasp.front import watch
from wasp.front.watch import FileWatcher, parse_events, path_links


def test_parse_events_reads_packed_records():
    def event(wd, mask, name=b""):
        padded = name + b"\0" * (-len(name) % 16 or (16 if name else 0))
        return struct.pack("iIII", wd, mask, 0, len(padded)) + padded
    data = event(1, watch.IN_MODIFY, b"a.css") + event(2, watch.IN_DELETE_SELF) + event(3, watch.IN_Q_OVERFLOW)
    assert parse_events(data) == [(1, watch.IN_MODIFY, b"a.css"), (2, watch.IN_DELETE_SELF, b""),
                                  (3, watch.IN_Q_OVERFLOW, b"")]


def test_path_links_go_up_to_the_root():
    assert path_links("/srv/www/a.css") == [("/srv/www", b"a.css"), ("/srv", b"www"), ("/", b"srv")]
    assert path_links("/a.css") == [("/", b"a.css")]


class Recorder:
    def __init__(self):
        self.changed = []
        self.gone = []
        self.overflows = 0


@pytest.fixture
def watched(tmp_path):
    loop = asyncio.new_event_loop()
    seen = Recorder()
    watcher = FileWatcher(loop, seen.changed.append, seen.gone.append, lambda: None)
    assert watcher.available, watcher.error
    yield loop, watcher, seen
    watcher.close()
    loop.close()


def settle(loop):
    loop.run_until_complete(asyncio.sleep(0.05))


def test_a_write_a_rename_over_and_a_parent_move_are_reported(watched, tmp_path):
    loop, watcher, seen = watched
    folder = tmp_path / "www" / "css"
    folder.mkdir(parents=True)
    target = folder / "a.css"
    target.write_text("one")
    tokens = watcher.watch_file(str(target))
    assert len(tokens) == len(path_links(os.path.realpath(target)))
    file_token, dir_token = tokens[0], tokens[1]
    settle(loop)
    assert seen.changed == []
    target.write_text("two")
    settle(loop)
    assert file_token in seen.changed
    seen.changed.clear()
    replacement = folder / "new.css"
    replacement.write_text("three")
    os.replace(replacement, target)          # an editor's save: a new file renamed over the old
    settle(loop)
    assert file_token in seen.changed
    seen.changed.clear()
    os.rename(tmp_path / "www" / "css", tmp_path / "www" / "old")   # a folder on the path moves
    settle(loop)
    assert dir_token in seen.changed


def test_other_files_in_a_watched_folder_are_not_reported(watched, tmp_path):
    loop, watcher, seen = watched
    (tmp_path / "a.css").write_text("a")
    watcher.watch_file(str(tmp_path / "a.css"))
    (tmp_path / "b.css").write_text("b")
    settle(loop)
    assert seen.changed == []


def test_release_removes_the_watch_when_no_token_is_left(watched, tmp_path):
    loop, watcher, seen = watched
    (tmp_path / "a.css").write_text("a")
    (tmp_path / "b.css").write_text("b")
    first = watcher.watch_file(str(tmp_path / "a.css"))
    second = watcher.watch_file(str(tmp_path / "b.css"))
    assert first[0][0] == second[0][0]        # one watch for the shared folder
    watcher.release(first[0])
    assert str(tmp_path) in watcher._by_dir
    watcher.release(second[0])
    assert str(tmp_path) not in watcher._by_dir
    (tmp_path / "a.css").write_text("changed")
    settle(loop)
    assert seen.changed == []


def test_poll_handles_queued_events_without_the_loop(watched, tmp_path):
    loop, watcher, seen = watched
    target = tmp_path / "a.css"
    target.write_text("a")
    [file_token, *_] = watcher.watch_file(str(target))
    target.write_text("b")
    watcher.poll()              # the loop has not run: poll reads what is queued
    assert file_token in seen.changed


def test_poll_reads_the_queue_only_when_fionread_says_events_wait(watched, tmp_path, monkeypatch):
    """(Asked of the kernel, the answer depends on whatever else touches the watched folders,
    /tmp's included: the ioctl's answer is set here.)"""
    from wasp.front import watch

    loop, watcher, seen = watched
    target = tmp_path / "a.css"
    target.write_text("a")
    [file_token, *_] = watcher.watch_file(str(target))
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(fd) or real_read(fd, n))
    queued = [0]

    def ioctl(fd, request, buf, mutate):
        assert fd == watcher.fd and request == watch.termios.FIONREAD
        buf[0] = queued[0]
        return 0

    monkeypatch.setattr(watch.fcntl, "ioctl", ioctl)
    loop.remove_reader(watcher.fd)   # only poll() reads in this test
    target.write_text("b")
    watcher.poll()              # "nothing queued": no read
    assert reads == [] and file_token not in seen.changed
    settle(loop)                # the next loop turn
    queued[0] = 16
    watcher.poll()              # events wait: read and handled
    assert reads and file_token in seen.changed


def test_poll_asks_the_kernel_once_per_loop_turn(watched, tmp_path, monkeypatch):
    """Every hit of one turn was read after the loop's poll returned, and a change made before its
    request was sent was queued before that: the turn's first hit asks, the rest need not."""
    loop, watcher, seen = watched
    target = tmp_path / "a.css"
    target.write_text("a")
    [file_token, *_] = watcher.watch_file(str(target))
    asked = []
    real_ioctl = watch.fcntl.ioctl
    monkeypatch.setattr(watch.fcntl, "ioctl", lambda *a: asked.append(a[0]) or real_ioctl(*a))
    loop.remove_reader(watcher.fd)   # only poll() reads in this test
    for _ in range(5):
        watcher.poll()
    assert asked == [watcher.fd]
    target.write_text("b")
    settle(loop)
    watcher.poll()
    assert asked == [watcher.fd, watcher.fd] and file_token in seen.changed
