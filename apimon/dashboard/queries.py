"""Read-only queries of the embedded store for the dashboard (no web framework here).

Usage::

    reader = Reader("apimon.db")
    page = reader.calls(Filters.parse({"status": "5xx", "path": "/items/*"}), before=None)
    new = reader.calls_after(filters, after_id=page.newest_id)
    call = reader.call(42)

Every query uses an index of the ``calls`` table (apimon.store) and a bounded LIMIT, so a page
costs the same with 100 or 100,000 calls in the store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from apimon.event import iso_ms

PAGE_SIZE = 50
_SUMMARY_COLUMNS = "id, transaction_id, ts, verb, path, route, status, duration_ms, user_id, company_id, direction"
# A store written before the direction column (apimon 0.4 and older): all its calls are incoming.
_OLD_SUMMARY_COLUMNS = _SUMMARY_COLUMNS.replace(" direction", " 'Incoming' AS direction")
_DIRECTIONS = {"incoming": "Incoming", "outgoing": "Outgoing"}
_VERBS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


class FilterError(ValueError):
    """A filter value the dashboard cannot use; the message says which and why."""


def parse_time(text: str) -> float:
    """An ISO 8601 time (``2026-12-02T14:05``, ``...Z``, with an offset) to epoch seconds; naive = UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass(frozen=True)
class Filters:
    """The stream and overview filters; :meth:`parse` reads them from query parameters."""

    status_class: int | None = None  # 5 for 5xx
    status: int | None = None  # one exact code
    verb: str | None = None
    path_glob: str | None = None
    route: str | None = None
    user_id: str | None = None
    direction: str | None = None  # "Incoming" or "Outgoing"
    since: float | None = None
    until: float | None = None
    # The parameters as given (only the ones set), for links that keep the filters.
    params: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        names = ("status", "verb", "path", "route", "user", "direction", "since", "until")
        given = {k: query[k].strip() for k in names if query.get(k, "").strip()}
        status_class = status = None
        if "status" in given:
            text = given["status"].lower()
            if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
                status_class = int(text[0])
            elif text.isdigit() and 100 <= int(text) <= 599:
                status = int(text)
            else:
                raise FilterError(f"status must be a class such as 5xx or a code such as 404, got {given['status']!r}")
        verb = given.get("verb", "").upper() or None
        if verb is not None and verb not in _VERBS:
            raise FilterError(f"unknown verb {given['verb']!r}")
        direction = None
        if "direction" in given:
            direction = _DIRECTIONS.get(given["direction"].lower())
            if direction is None:
                raise FilterError(f"direction must be incoming or outgoing, got {given['direction']!r}")
        since = parse_time(given["since"]) if "since" in given else None
        until = parse_time(given["until"]) if "until" in given else None
        if since is not None and until is not None and until < since:
            raise FilterError("the time range ends before it starts")
        return cls(
            status_class=status_class,
            status=status,
            verb=verb,
            path_glob=given.get("path"),
            route=given.get("route"),
            user_id=given.get("user"),
            direction=direction,
            since=since,
            until=until,
            params=given,
        )

    def where(self, newest_first: bool = False) -> tuple[list[str], list[Any]]:
        """SQL conditions (joined with AND by the caller) and their parameters.

        ``newest_first``: for a page in id order. A status, verb or path filter usually matches a
        large share of the calls; through its index SQLite would fetch and sort every match, while
        walking the ids newest first stops after one page. (`+column` keeps an index out.)
        """
        plus = "+" if newest_first else ""
        clauses: list[str] = []
        params: list[Any] = []
        if self.status_class is not None:
            clauses.append(f"{plus}status >= ? AND {plus}status < ?")
            params += [self.status_class * 100, self.status_class * 100 + 100]
        if self.status is not None:
            clauses.append(f"{plus}status = ?")
            params.append(self.status)
        if self.verb is not None:
            clauses.append(f"{plus}verb = ?")
            params.append(self.verb)
        if self.path_glob is not None:
            # GLOB: the shell syntax of `apimon calls --path` (case-sensitive, like paths).
            clauses.append(f"{plus}path GLOB ?")
            params.append(self.path_glob)
        if self.route is not None:
            clauses.append("route = ?")
            params.append(self.route)
        if self.user_id is not None:
            clauses.append("user_id = ?")
            params.append(self.user_id)
        if self.direction is not None:
            clauses.append("direction = ?")
            params.append(self.direction)
        if self.since is not None:
            clauses.append("ts >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("ts < ?")
            params.append(self.until)
        return clauses, params


@dataclass(frozen=True)
class Page:
    """One page of calls, newest first; ``older`` is the ``before`` id of the next page, if any."""

    rows: list[dict[str, Any]]
    older: int | None

    @property
    def newest_id(self) -> int:
        return int(self.rows[0]["id"]) if self.rows else 0


class Reader:
    """Read-only access to one store file: a ``mode=ro`` connection per thread (the web server
    runs queries on a thread pool), with ``query_only`` set so nothing can write through it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not os.path.exists(self.path):
                raise FileNotFoundError(f"no apimon store at {self.path}")
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only = 1")
            # Pages read through a memory map and a larger cache: the overview scans the table.
            conn.execute("PRAGMA mmap_size = 268435456")
            conn.execute("PRAGMA cache_size = -32768")
            self._local.conn = conn
            names = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
            self._local.columns = _SUMMARY_COLUMNS if "direction" in names or not names else _OLD_SUMMARY_COLUMNS
        return conn

    @property
    def columns(self) -> str:
        """The summary columns this store has (an old one lacks ``direction``)."""
        self._conn()
        return str(self._local.columns)

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, tuple(params)).fetchall()

    def tuples(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Plain tuples, for the queries that return a row per call (no Row objects to build)."""
        cursor = self._conn().cursor()
        cursor.row_factory = None
        return cursor.execute(sql, tuple(params)).fetchall()

    def calls(self, filters: Filters, before: int | None = None, limit: int = PAGE_SIZE) -> Page:
        """The newest calls matching ``filters`` with an id below ``before`` (keyset pagination)."""
        clauses, params = filters.where(newest_first=True)
        if before is not None:
            clauses.append("id < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.query(f"SELECT {self.columns} FROM calls {where} ORDER BY id DESC LIMIT ?", [*params, limit + 1])
        summaries = [summary(r) for r in rows[:limit]]
        return Page(summaries, summaries[-1]["id"] if len(rows) > limit else None)

    def calls_after(self, filters: Filters, after_id: int, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
        """Calls newer than ``after_id`` matching ``filters``, oldest first (for the live stream)."""
        clauses, params = filters.where()
        clauses.append("id > ?")
        params.append(after_id)
        rows = self.query(
            f"SELECT {self.columns} FROM calls WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?",
            [*params, limit],
        )
        return [summary(r) for r in rows]

    def newest_id(self) -> int:
        return int(self.query("SELECT COALESCE(MAX(id), 0) AS n FROM calls")[0]["n"])

    def call(self, call_id: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A call's summary and its event as shipped, or None."""
        rows = self.query(f"SELECT {self.columns}, event FROM calls WHERE id = ?", [call_id])
        if not rows:
            return None
        event: dict[str, Any] = orjson.loads(rows[0]["event"])
        return summary(rows[0]), event

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def summary(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "transaction_id": row["transaction_id"],
        "time": iso_ms(row["ts"]),
        "ts": row["ts"],
        "verb": row["verb"],
        "path": row["path"],
        "route": row["route"],
        "status": row["status"],
        "duration_ms": round(row["duration_ms"], 2),
        "user_id": row["user_id"],
        "company_id": row["company_id"],
        "direction": row["direction"],
    }
