"""三率一度: what the four figures of an assessment (考核评估) are, per household and per region.

- 贫困发生率 incidence: people on the register at the end of the year ÷ the registered
  population (rural 户籍人口); below 3 % in western provinces, 2 % elsewhere;
- 错退率 wrong-exit rate: people of households whose exit that year was wrong (named in a
  ``fake_exit`` case, or relapsed within ``RELAPSE_WINDOW_DAYS`` of the exit) ÷ people
  exited that year; below 2 %;
- 漏评率 missed-registration rate: people of households that applied after the year although
  their income at application was at or under the year's line and their main cause was not
  sudden (illness, disaster) ÷ the population off the register; below 2 %;
- 群众认可度 satisfaction: satisfied ÷ surveyed; at least 90 %.

The full definitions are in ``docs/INSPECTION.md``.  These functions decide from plain
values; ``projections.metrics`` keeps the dated timelines they read, event by event, and
sums them per village, township or county.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from domain.household import INCOME_LINES_FEN

SUDDEN_CAUSES = frozenset({"illness", "disaster"})  # 因病, 因灾: not "missed" before they struck
RELAPSE_WINDOW_DAYS = 365
THRESHOLDS = {"wrong_exit": 0.02, "missed": 0.02, "satisfaction": 0.90}
INCIDENCE_LIMIT = {True: 0.03, False: 0.02}  # western provinces / elsewhere


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _last_on_or_before(entries: list[list], day: dt.date) -> list | None:
    """The latest entry dated on or before ``day`` (by date, then log position)."""
    found = [x for x in entries if _day(x[0]) <= day]
    return max(found, key=lambda x: (x[0], x[-1])) if found else None


def members_on(h: Mapping[str, Any], day: dt.date) -> int:
    entry = _last_on_or_before(h["members"], day)
    return entry[1] if entry else h["members_at_application"]


def on_register(h: Mapping[str, Any], day: dt.date) -> bool:
    entry = _last_on_or_before(h["register"], day)
    return bool(entry and entry[1])


def figure(numerator: int, denominator: int | None, threshold: float, *, at_least: bool = False,
            households: int | None = None) -> dict[str, Any]:
    rate = numerator / denominator if denominator else None
    meets = None if rate is None else (rate >= threshold if at_least else rate < threshold)
    out = {"numerator": numerator, "denominator": denominator, "rate": rate,
           "threshold": threshold, "meets": meets}
    if households is not None:
        out["households"] = households
    return out


def household_facts(h: Mapping[str, Any], year: int, window: int, named: set[str], named_positions: set[int]) -> dict:
    """What one household counts for in ``year``."""
    end = dt.date(year, 12, 31)
    out = {"on_register": 0, "exited": 0, "wrong_exit": 0, "missed": 0}
    if on_register(h, end):
        out["on_register"] = members_on(h, end)
    exits = [(_day(d), pos) for d, pos in h["exits"] if _day(d).year == year]
    if exits:
        first = min(exits)
        people = members_on(h, first[0])
        out["exited"] = people
        relapses = [_day(d) for d, _ in h["relapses"]]
        wrong = h["household_id"] in named or any(pos in named_positions for _, pos in exits) \
            or any(d < r <= d + dt.timedelta(days=window) for d, _ in exits for r in relapses)
        out["wrong_exit"] = people if wrong else 0
    line = INCOME_LINES_FEN.get(year)
    if (line is not None and h["applied_on"] > end and h["income_at_application_fen"] <= line
            and h["main_cause"] not in SUDDEN_CAUSES):
        out["missed"] = h["members_at_application"]
    return out
