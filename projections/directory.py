"""Which aggregates exist where: an in-memory index for the list endpoints.

It follows the notification log, reading only creation events (a region created, a
household applied, an account opened, an official registered, a project approved), and
keeps, per kind, ids in creation order with their region path.  Every query first catches
up from its last position, so it sees what any process wrote.  A stop-gap until the
read-model projections serve lists: memory is a few hundred bytes per aggregate.  A
stored creation event it cannot read (an odd record written behind the domain's back) is
logged and passed over, like a projection's failed event (``projections.runner``): it
never stops the lists.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from domain.application import Zhuisu
from domain.region import RegionPath

REGION = "domain.region:Region.Created"
HOUSEHOLD = "domain.household:Household.Applied"
ACCOUNT = "domain.fund_account:FundAccount.Opened"
OFFICIAL = "domain.official:Official.Registered"
PROJECT = "domain.project:Project.Approved"
TOPICS = (REGION, HOUSEHOLD, ACCOUNT, OFFICIAL, PROJECT)
_PAGE = 2000
log = structlog.get_logger("zhuisu.projections")


@dataclass
class Directory:
    position: int = 0
    regions: dict[str, RegionPath] = field(default_factory=dict)  # code → path
    children: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    households: dict[str, list[UUID]] = field(default_factory=lambda: defaultdict(list))
    accounts: list[tuple[UUID, RegionPath]] = field(default_factory=list)
    officials: list[tuple[UUID, str]] = field(default_factory=list)  # id, region code
    projects: list[tuple[UUID, RegionPath]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def catch_up(self, app: Zhuisu) -> None:
        with self._lock:
            while True:
                notifications = app.recorder.select_notifications(
                    self.position + 1, _PAGE, topics=TOPICS)
                for n in notifications:
                    try:
                        self._take(n.topic, app.mapper.to_domain_event(n))
                    except Exception as exc:  # noqa: BLE001 - see the module docstring
                        log.error("directory skipped an event it cannot take", position=n.id,
                                  event_type=n.topic.rpartition(":")[2],
                                  error=f"{type(exc).__name__}: {exc}"[:300])
                    self.position = n.id
                if len(notifications) < _PAGE:
                    return

    def _take(self, topic: str, e: Any) -> None:
        if topic == REGION:
            self.regions[e.code] = dict(e.path)
            if e.parent_code:
                self.children[e.parent_code].append(e.code)
        elif topic == HOUSEHOLD:
            self.households[e.village_code].append(e.originator_id)
        elif topic == ACCOUNT:
            self.accounts.append((e.originator_id, dict(e.region_path)))
        elif topic == OFFICIAL:
            self.officials.append((e.originator_id, e.region_code))
        elif topic == PROJECT:
            self.projects.append((e.originator_id, dict(e.region_path)))

    # queries (call catch_up first) ----------------------------------------------------
    def children_of(self, region_code: str) -> list[str]:
        return list(self.children.get(region_code, ()))

    def households_in(self, village_code: str) -> list[UUID]:
        return list(self.households.get(village_code, ()))

    def accounts_within(self, level: str | None, code: str | None) -> Iterator[UUID]:
        return (aid for aid, path in list(self.accounts) if _within(path, level, code))

    def projects_within(self, level: str | None, code: str | None) -> Iterator[UUID]:
        return (pid for pid, path in list(self.projects) if _within(path, level, code))

    def officials_within(self, level: str | None, code: str | None) -> Iterator[UUID]:
        return (oid for oid, region in list(self.officials)
                if _within(self.regions.get(region, {}), level, code))


def _within(path: RegionPath, level: str | None, code: str | None) -> bool:
    return code is None or path.get(level or "") == code
