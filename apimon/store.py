"""The embedded SQLite store: one row per call, indexed columns, the full event as JSON
(docs/delivery.md#the-store-and-the-outbox).

Writers (the flusher's store sink) and readers (the CLI) share this class. Usage::

    store = Store("apimon.db")
    store.insert([stored_call, ...])       # one transaction
    for row in store.recent(limit=20): ...
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL,
    ts REAL NOT NULL,
    verb TEXT NOT NULL,
    path TEXT NOT NULL,
    route TEXT,
    status INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    user_id TEXT,
    company_id TEXT,
    size INTEGER NOT NULL,
    shipped INTEGER NOT NULL DEFAULT 0,
    event BLOB NOT NULL,
    direction TEXT NOT NULL DEFAULT 'Incoming'
);
CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts);
CREATE INDEX IF NOT EXISTS calls_status ON calls (status);
CREATE INDEX IF NOT EXISTS calls_verb ON calls (verb);
CREATE INDEX IF NOT EXISTS calls_path ON calls (path);
CREATE INDEX IF NOT EXISTS calls_route ON calls (route);
CREATE INDEX IF NOT EXISTS calls_duration ON calls (duration_ms);
CREATE INDEX IF NOT EXISTS calls_user ON calls (user_id);
CREATE INDEX IF NOT EXISTS calls_company ON calls (company_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

SHIPPED_MOESIF = 1
SHIPPED_MOENGAGE = 2

_COLUMNS = (
    "id, shipped, transaction_id, ts, verb, path, route, status, duration_ms, user_id, company_id, size, event,"
    " direction"
)
# A store written by apimon before 0.5.0 has no direction column: its calls are all incoming.
_MIGRATIONS = (("direction", "ALTER TABLE calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'Incoming'"),)
_LATE_INDEXES = "CREATE INDEX IF NOT EXISTS calls_direction ON calls (direction);"
_BYTES_CHECK_EVERY = 64
OPEN_RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class StoredCall:
    """One row: the indexed columns plus the event exactly as shipped (JSON bytes)."""

    transaction_id: str
    ts: float
    verb: str
    path: str
    route: str | None
    status: int
    duration_ms: float
    user_id: str | None
    company_id: str | None
    event_json: bytes
    id: int | None = None
    shipped: int = 0  # bit per destination that acknowledged the call (SHIPPED_MOESIF, SHIPPED_MOENGAGE)
    direction: str = "Incoming"  # or "Outgoing": a call the app made (apimon.outgoing)

    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.event_json)
        return value


class StoreError(Exception):
    """The store file cannot be opened or written (read-only directory, full disk, not a database)."""


class Store:
    """A SQLite file in WAL mode, safe for one writer thread per process and many reader processes."""

    def __init__(
        self,
        path: str,
        max_rows: int = 50_000,
        max_bytes: int = 256 * 1024 * 1024,
        readonly: bool = False,
        keep_bits: int = 0,
        outbox_max_bytes: int = 1024**3,
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        # Durable mode: rows not yet acknowledged by all of these destinations are an outbox,
        # bounded by outbox_max_bytes instead of max_rows/max_bytes.
        self.keep_bits = keep_bits
        self.outbox_max_bytes = outbox_max_bytes
        self.readonly = readonly
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._batches = 0
        self._size_estimate: int | None = None
        self._old = False  # a read-only store written by an apimon before the direction column

    @property
    def columns(self) -> str:
        """The columns a :class:`StoredCall` is read from (see :meth:`_row`)."""
        if self._conn is None:
            self.open()  # whether this store has every column is known once it is open
        return _COLUMNS.replace(" direction", " 'Incoming' AS direction") if self._old else _COLUMNS

    def _connect(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._conn is not None and self._pid == pid:
            return self._conn
        # A connection inherited through fork must not be used by the child: open a fresh one.
        self._conn = None
        try:
            if self.readonly:
                if not os.path.exists(self.path):
                    raise StoreError(f"no apimon store at {self.path}")
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
                self._old = "direction" not in _column_names(conn)
            else:
                if not os.path.exists(self.path):
                    # Owner-only: captured traffic may hold personal data.
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                conn = self._open_for_writing()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open apimon store {self.path}: {exc}") from exc
        self._conn, self._pid = conn, pid
        return conn

    def _open_for_writing(self) -> sqlite3.Connection:
        # Two connections setting up a new file at once (the flusher's store sink and an outbox
        # shipper, or two workers starting together) can get "database is locked" from the switch
        # to WAL at once, without SQLite's busy handler: try again for a while, then give up.
        deadline = time.monotonic() + OPEN_RETRY_SECONDS
        pause = 0.005
        while True:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(SCHEMA)
                _migrate(conn)
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
            except BaseException:
                conn.close()
                raise

    def secret(self, name: str) -> str:
        """A random secret kept in this store under ``name``, made by the first process to ask:
        every worker and run on this store gets the same one. :class:`StoreError` if the store
        cannot be written."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (name, secrets.token_hex(32)))
                row = conn.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot keep a secret in apimon store {self.path}: {exc}") from exc
        return str(row[0])

    def open(self) -> None:
        """Open now (and raise :class:`StoreError`) instead of on first use."""
        with self._lock:
            self._connect()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def insert(self, calls: Sequence[StoredCall]) -> int:
        """Write ``calls`` in one transaction, then prune past the retention bounds; returns how
        many undelivered outbox rows the bounds forced out (0 unless ``keep_bits`` is set)."""
        if not calls:
            return 0
        rows = [
            (
                c.transaction_id,
                c.ts,
                c.verb,
                c.path,
                c.route,
                c.status,
                c.duration_ms,
                c.user_id,
                c.company_id,
                len(c.event_json),
                c.shipped,
                c.event_json,
                c.direction,
            )
            for c in calls
        ]
        if self._size_estimate is not None:
            self._size_estimate += sum(len(c.event_json) for c in calls)
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO calls (transaction_id, ts, verb, path, route, status, duration_ms, user_id,"
                " company_id, size, shipped, event, direction) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            return self._prune(conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers in other processes wait their turn)."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write apimon store {self.path}: {exc}") from exc

    def _prune(self, conn: sqlite3.Connection) -> int:
        """Apply the retention bounds; returns how many undelivered outbox rows had to go."""
        keep = self.keep_bits
        # Ids only grow and only the oldest rows are deleted, so the newest max_rows rows are
        # exactly those with id > max(id) - max_rows: no COUNT(*) scan needed. As an outbox, a
        # row is kept until every destination in keep_bits has acknowledged it.
        conn.execute(
            "DELETE FROM calls WHERE id <= (SELECT MAX(id) FROM calls) - ? AND (shipped & ?) = ?",
            (self.max_rows, keep, keep),
        )
        self._batches += 1
        bound = self.outbox_max_bytes if keep else self.max_bytes
        # A running estimate (resynchronised every few batches, since other processes write too)
        # saves a SUM over the whole table on every batch.
        if self._size_estimate is not None and self._batches % _BYTES_CHECK_EVERY and self._size_estimate <= bound:
            return 0
        total = conn.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM calls").fetchone()
        size, count = int(total[0]), int(total[1])
        self._size_estimate = size
        if size <= bound or not count:
            return 0
        # Drop the oldest share of rows that brings the total back under 90% of the bound.
        excess = int(count * (1 - 0.9 * bound / size)) + 1
        oldest = "SELECT id FROM calls ORDER BY id LIMIT ?"
        evicted = 0
        if keep:
            evicted = int(
                conn.execute(
                    f"SELECT COUNT(*) FROM calls WHERE id IN ({oldest}) AND (shipped & ?) != ?", (excess, keep, keep)
                ).fetchone()[0]
            )
        conn.execute(f"DELETE FROM calls WHERE id IN ({oldest})", (excess,))
        self._size_estimate = None
        return evicted

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read query (``sqlite3.Row``), for readers such as :mod:`apimon.summary`."""
        with self._lock:
            try:
                conn = self._connect()
                conn.row_factory = sqlite3.Row
                try:
                    return list(conn.execute(sql, tuple(params)))
                finally:
                    conn.row_factory = None
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read apimon store {self.path}: {exc}") from exc

    @staticmethod
    def _row(row: sqlite3.Row) -> StoredCall:
        return StoredCall(
            id=row["id"],
            transaction_id=row["transaction_id"],
            ts=row["ts"],
            verb=row["verb"],
            path=row["path"],
            route=row["route"],
            status=row["status"],
            duration_ms=row["duration_ms"],
            user_id=row["user_id"],
            company_id=row["company_id"],
            event_json=bytes(row["event"]),
            shipped=row["shipped"],
            direction=row["direction"],
        )

    def recent(
        self,
        limit: int = 20,
        status_class: int | None = None,
        path_glob: str | None = None,
        user_id: str | None = None,
        direction: str | None = None,
    ) -> list[StoredCall]:
        """The newest calls first, filtered by status class (5 for 5xx), path glob, user and
        direction (``Incoming`` or ``Outgoing``)."""
        where: list[str] = []
        params: list[Any] = []
        if direction:
            columns = self.columns  # opens the store: whether it has the column is known then
            if "AS direction" not in columns:
                where.append("direction = ?")
                params.append(direction)
            elif direction != "Incoming":
                return []
        if status_class is not None:
            where.append("status >= ? AND status < ?")
            params += [status_class * 100, status_class * 100 + 100]
        if path_glob:
            # SQLite GLOB has the shell syntax users expect from --path "/items/*" (case-sensitive).
            where.append("path GLOB ?")
            params.append(path_glob)
        if user_id:
            where.append("user_id = ?")
            params.append(user_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.query(f"SELECT {self.columns} FROM calls {clause} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [self._row(r) for r in rows]

    def get(self, key: str) -> StoredCall | None:
        """A call by its numeric id or its transaction_id."""
        if key.isdigit():
            rows = self.query(f"SELECT {self.columns} FROM calls WHERE id = ?", [int(key)])
        else:
            # No index on transaction_id: each one costs every insert ~2 µs, and this lookup is a
            # rare, interactive one over a bounded table.
            rows = self.query(f"SELECT {self.columns} FROM calls WHERE transaction_id = ? LIMIT 1", [key])
        return self._row(rows[0]) if rows else None

    def unshipped(self, bit: int, after_id: int = 0, limit: int = 500) -> list[StoredCall]:
        """Calls the destination ``bit`` has not acknowledged, oldest first, after ``after_id``."""
        rows = self.query(
            f"SELECT {self.columns} FROM calls WHERE id > ? AND (shipped & ?) = 0 ORDER BY id LIMIT ?",
            [after_id, bit, limit],
        )
        return [self._row(r) for r in rows]

    def count_unshipped(self, bit: int) -> int:
        return int(self.query("SELECT COUNT(*) AS n FROM calls WHERE (shipped & ?) = 0", [bit])[0]["n"])

    def mark_shipped(self, ids: Sequence[int], bit: int) -> None:
        """Record that destination ``bit`` acknowledged the calls ``ids`` (one transaction)."""
        if not ids:
            return
        with self.transaction() as conn:
            conn.executemany("UPDATE calls SET shipped = shipped | ? WHERE id = ?", [(bit, i) for i in ids])

    def count(self) -> int:
        return int(self.query("SELECT COUNT(*) AS n FROM calls")[0]["n"])


def _column_names(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(calls)")}


def _migrate(conn: sqlite3.Connection) -> None:
    """Columns added since a store was made (by an older apimon), then their indexes."""
    names = _column_names(conn)
    for column, statement in _MIGRATIONS:
        if column not in names:
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it meanwhile
                conn.execute(statement)
    conn.executescript(_LATE_INDEXES)
