"""Reading the global event log (the application's notification log) in order.

An ``Event`` is a stored domain event as the projections see it: its position in the log
(the notification id), its aggregate and version, its step name (``Household.Applied``)
and its fields as a plain dict (dates as ``datetime.date``).  Decoding goes through the
application's own mapper (transcoder, and its cipher and compressor when configured),
skipping the domain class construction the projections do not need.  A stored state that
cannot be decoded does not stop the reader: its ``Event`` comes with no fields and the
decoding ``error``, for the runner to record as a failed event (``projections.runner``).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.persistence import Notification

from domain.application import Zhuisu
from store.urls import private_sqlite_file

_READER_LOCK = zlib.crc32(b"zhuisu-projection-readers")


@dataclass(frozen=True, slots=True)
class Event:
    position: int
    originator_id: str
    version: int
    step: str
    data: dict[str, Any]
    error: str | None = None  # the state could not be decoded: why (data is then empty)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def day(self) -> dt.date:
        """The business date of the step (``effective_date``)."""
        return self.data["effective_date"]


def step_of(topic: str) -> str:
    """'domain.household:Household.Applied' → 'Household.Applied'."""
    return topic.rpartition(":")[2]


def store_env(url: str) -> dict[str, str]:
    """The event store settings for a database URL (as ``store.settings`` makes them)."""
    u = urlparse(url)
    if u.scheme == "sqlite":
        path = unquote(u.path[1:] if u.path.startswith("/") else u.path)
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": "30"}
    env = {"PERSISTENCE_MODULE": "eventsourcing.postgres",
           "POSTGRES_DBNAME": u.path.lstrip("/") or "postgres",
           "POSTGRES_HOST": u.hostname or "127.0.0.1", "POSTGRES_PORT": str(u.port or 5432),
           "POSTGRES_USER": unquote(u.username or "postgres"),
           "POSTGRES_PASSWORD": unquote(u.password or ""), "POSTGRES_CONNECT_TIMEOUT": "5",
           "POSTGRES_POOL_SIZE": "2"}
    schema = parse_qs(u.query).get("schema")
    if schema:
        env["POSTGRES_SCHEMA"] = schema[0]
    return env


def reader_app(url: str) -> Zhuisu:
    """An application on the store at ``url`` that only reads and decodes its log.

    Opening an application creates the event store's tables if they are missing; on
    PostgreSQL, readers starting together (several workers) take turns at it, as
    concurrent ``CREATE … IF NOT EXISTS`` can fail with "tuple concurrently updated".
    """
    def no_clock() -> dt.datetime:
        raise RuntimeError("a projection reader records nothing")

    env = store_env(url)
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        private_sqlite_file(url)  # mode 0600 if we make it (store.urls)
        return Zhuisu(env, clock=no_clock)
    import psycopg

    with psycopg.connect(url.partition("?")[0], autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_READER_LOCK,))
        try:
            return Zhuisu(env, clock=no_clock)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_READER_LOCK,))


class EventSource:
    """The notification log of one application: ``read(after, limit)`` in log order."""

    def __init__(self, app: Any, url: str):
        self.app = app
        self.url = url
        self.recorder = app.recorder
        mapper = app.mapper
        self._decrypt: Callable[[bytes], bytes] | None = (
            mapper.cipher.decrypt if mapper.cipher else None)
        self._decompress: Callable[[bytes], bytes] | None = (
            mapper.compressor.decompress if mapper.compressor else None)
        self._decode = mapper.transcoder.decode
        self._steps: dict[str, str] = {}

    def max_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int, wanted: Collection[str],
             until: int | None = None) -> tuple[int, list[Event]]:
        """Up to ``limit`` notifications after ``after`` (and not after ``until``).

        Returns the id of the last notification read (``after`` when none) and the decoded
        events among them whose step is in ``wanted``; the others are read, not decoded.
        """
        if until is not None and after >= until:
            return after, []
        notifications = self.recorder.select_notifications(
            start=after + 1, limit=limit, stop=until)
        if not notifications:
            return after, []
        return notifications[-1].id, [self.decode(n) for n in notifications
                                      if self.step(n.topic) in wanted]

    def step(self, topic: str) -> str:
        step = self._steps.get(topic)
        if step is None:
            step = self._steps[topic] = step_of(topic)
        return step

    def decode(self, n: Notification) -> Event:
        try:
            state = n.state
            if self._decrypt:
                state = self._decrypt(state)
            if self._decompress:
                state = self._decompress(state)
            data = self._decode(state)
            if not isinstance(data, dict):
                raise TypeError(f"the state is a {type(data).__name__}, not an object")
        except Exception as exc:  # noqa: BLE001 - an odd record must not stop the reader
            return Event(n.id, str(n.originator_id), n.originator_version, self.step(n.topic),
                         {}, f"cannot decode the stored state: {type(exc).__name__}: {exc}")
        return Event(n.id, str(n.originator_id), n.originator_version, self.step(n.topic), data)
