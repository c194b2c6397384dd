"""Reading the global event log (the application's notification log) in order.

An ``Event`` is a stored domain event as the projections see it: its position in the log
(the notification id), its aggregate and version, its step name (``Household.Applied``)
and its fields as a plain dict (dates as ``datetime.date``).  Decoding goes through the
application's own mapper (transcoder, and its cipher and compressor when configured),
skipping the domain class construction the projections do not need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification


@dataclass(frozen=True, slots=True)
class Event:
    position: int
    originator_id: str
    version: int
    step: str
    data: dict[str, Any]

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
        state = n.state
        if self._decrypt:
            state = self._decrypt(state)
        if self._decompress:
            state = self._decompress(state)
        return Event(n.id, str(n.originator_id), n.originator_version, self.step(n.topic),
                     self._decode(state))
