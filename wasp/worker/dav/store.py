"""Dead properties and locks of one application, in one SQLite file under the server's run dir.

Why SQLite and not a file of our own or xattrs: a web garden has N worker processes that must
agree on locks at once (worker A grants an exclusive lock, worker B must refuse the next one),
and SQLite gives that with transactions across processes (`BEGIN IMMEDIATE` takes the write lock
of the file, `busy_timeout` waits for it) and survives a recycle or crash. Extended attributes
were the other choice for properties (they travel with rename and vanish with the file), but
their size is limited per inode (4 KiB on ext4, and tmpfs kernels without user xattrs), so a
client that sets many properties would fail on some hosts; keeping both in one store also lets a
write operation check locks and change properties in one transaction.

Paths are application-relative URL paths without a trailing slash, the root being "" (so a
member of collection P is `P + "/" + name`). The handler keeps the store in step with the files:
DELETE drops the rows of a tree, MOVE renames them, COPY copies the properties (never the
locks), PUT or MKCOL of a new resource clears what a file deleted behind the server's back left.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid

SCHEMA = """
CREATE TABLE IF NOT EXISTS props (path TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
                                  value TEXT NOT NULL, PRIMARY KEY (path, ns, name));
CREATE TABLE IF NOT EXISTS locks (token TEXT PRIMARY KEY, root TEXT NOT NULL, infinite INTEGER NOT NULL,
                                  exclusive INTEGER NOT NULL, owner TEXT NOT NULL, principal TEXT NOT NULL,
                                  timeout INTEGER NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS locks_root ON locks (root);
"""

#: Most dead properties one resource may carry, and the longest value (bytes of XML).
MAX_PROPS = 1000
MAX_VALUE = 64 * 1024


class Lock:
    __slots__ = ("token", "root", "infinite", "exclusive", "owner", "principal", "timeout", "expires")

    def __init__(self, row):
        (self.token, self.root, infinite, exclusive, self.owner, self.principal, self.timeout,
         self.expires) = row
        self.infinite = bool(infinite)
        self.exclusive = bool(exclusive)

    def covers(self, path: str) -> bool:
        return self.root == path or (self.infinite and is_below(path, self.root))

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires - now + 0.5))


def is_below(path: str, parent: str) -> bool:
    """`path` is a member, at any depth, of collection `parent`."""
    return path.startswith(parent + "/") if parent else path != ""


def ancestors(path: str) -> list[str]:
    """"/a/b/c" -> ["/a/b", "/a", ""]."""
    found = []
    while path:
        path = path.rpartition("/")[0]
        found.append(path)
    return found


def new_token() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


class Store:
    def __init__(self, filename: str):
        self.filename = filename
        folder = os.path.dirname(filename)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(filename, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        with self.write():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # ---- transactions ----
    def write(self):
        """`with store.write():` one transaction that holds SQLite's write lock across every
        process (a check of the locks and the file change it allows happen as one)."""
        return _Transaction(self, "BEGIN IMMEDIATE")

    def read(self):
        return _Transaction(self, "BEGIN")

    # ---- locks ----
    def locks_at(self, path: str, now: float | None = None) -> list[Lock]:
        """Unexpired locks that cover `path`: on it, or depth infinity on an ancestor."""
        now = time.time() if now is None else now
        roots = [path] + ancestors(path)
        marks = ",".join("?" * len(roots))
        rows = self.db.execute(f"SELECT * FROM locks WHERE root IN ({marks}) AND expires > ?",
                               (*roots, now)).fetchall()
        return [lock for lock in map(Lock, rows) if lock.covers(path)]

    def locks_below(self, path: str, now: float | None = None) -> list[Lock]:
        """Unexpired locks rooted strictly below collection `path`."""
        now = time.time() if now is None else now
        prefix = path + "/"
        rows = self.db.execute("SELECT * FROM locks WHERE substr(root, 1, ?) = ? AND expires > ?",
                               (len(prefix), prefix, now)).fetchall()
        return [Lock(row) for row in rows]

    def lock(self, token: str, now: float | None = None) -> Lock | None:
        now = time.time() if now is None else now
        row = self.db.execute("SELECT * FROM locks WHERE token = ? AND expires > ?", (token, now)).fetchone()
        return Lock(row) if row else None

    def add_lock(self, root: str, infinite: bool, exclusive: bool, owner: str, principal: str,
                 timeout: int) -> Lock:
        now = time.time()
        self.db.execute("DELETE FROM locks WHERE expires <= ?", (now,))
        token = new_token()
        row = (token, root, int(infinite), int(exclusive), owner, principal, timeout, now + timeout)
        self.db.execute("INSERT INTO locks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        return Lock(row)

    def refresh(self, token: str, timeout: int) -> None:
        self.db.execute("UPDATE locks SET timeout = ?, expires = ? WHERE token = ?",
                        (timeout, time.time() + timeout, token))

    def remove_lock(self, token: str) -> None:
        self.db.execute("DELETE FROM locks WHERE token = ?", (token,))

    def drop_locks(self, path: str) -> None:
        """Every lock rooted at `path` or below it (the resource was deleted or moved away)."""
        prefix = path + "/"
        self.db.execute("DELETE FROM locks WHERE root = ? OR substr(root, 1, ?) = ?",
                        (path, len(prefix), prefix))

    # ---- dead properties ----
    def props(self, path: str) -> dict[tuple[str, str], str]:
        rows = self.db.execute("SELECT ns, name, value FROM props WHERE path = ?", (path,)).fetchall()
        return {(ns, name): value for ns, name, value in rows}

    def set_prop(self, path: str, ns: str, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO props VALUES (?, ?, ?, ?)", (path, ns, name, value))

    def count_props(self, path: str) -> int:
        return self.db.execute("SELECT count(*) FROM props WHERE path = ?", (path,)).fetchone()[0]

    def remove_prop(self, path: str, ns: str, name: str) -> None:
        self.db.execute("DELETE FROM props WHERE path = ? AND ns = ? AND name = ?", (path, ns, name))

    def drop_props(self, path: str, tree: bool = True) -> None:
        if not tree:
            self.db.execute("DELETE FROM props WHERE path = ?", (path,))
            return
        prefix = path + "/"
        self.db.execute("DELETE FROM props WHERE path = ? OR substr(path, 1, ?) = ?",
                        (path, len(prefix), prefix))

    def copy_props(self, src: str, dst: str, tree: bool) -> None:
        self.drop_props(dst)
        self.db.execute("INSERT INTO props SELECT ?, ns, name, value FROM props WHERE path = ?", (dst, src))
        if tree:
            prefix = src + "/"
            self.db.execute(
                "INSERT INTO props SELECT ? || substr(path, ?), ns, name, value FROM props "
                "WHERE substr(path, 1, ?) = ?", (dst, len(src) + 1, len(prefix), prefix))

    def move_props(self, src: str, dst: str) -> None:
        self.drop_props(dst)
        prefix = src + "/"
        self.db.execute("UPDATE props SET path = ? || substr(path, ?) WHERE path = ? OR substr(path, 1, ?) = ?",
                        (dst, len(src) + 1, src, len(prefix), prefix))


class _Transaction:
    def __init__(self, store: Store, begin: str):
        self.store = store
        self.begin = begin

    def __enter__(self):
        self.store._lock.acquire()
        try:
            self.store.db.execute(self.begin)
        except BaseException:
            self.store._lock.release()
            raise
        return self.store

    def __exit__(self, exc_type, exc, tb):
        try:
            self.store.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.store._lock.release()
        return False
