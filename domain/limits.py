"""The door's bounds: the window a business date must fall in, and how long a text may be.

Every value that enters through a verb of the application service passes here first, so
that nothing stored can later stop a reader (a date at the end of the calendar overflowed
a red-flag rule; a 20 MB document number was kept for good).  A value outside its bound is
refused with ``InvalidInput`` naming the field and the bound.

Business dates (业务日期) — facts: every ``effective_date`` of a signed step, a case's
opening and incident dates, each case step, a recovery order, a satisfaction survey:

- not before **2013-01-01** (``PROGRAMME_START``): 精准扶贫 was set out in November 2013
  and households were first registered (建档立卡) in 2014, so no record of the programme is
  older;
- not after the **record date + 1 day** (``FACT_TOLERANCE``): a fact cannot be dated in
  the future; the day of slack covers a clerk a time zone or a midnight away.  The record
  date is the record time's calendar day in China Standard Time (UTC+8).

Plans — a rectification item's deadline (整改时限) — may lie ahead: not before 2013-01-01
and not after the record date + **5 years** (``PLAN_HORIZON_YEARS``).

Appointments — an official's position start and end, a key's first day, a key's rotation
or revocation — are facts about people who may have served long before the programme
(a 村支书 in office since the 1990s): not before **1950-01-01** (``APPOINTMENTS_START``)
and not after the record date + **1 year** (``APPOINTMENT_HORIZON``: appointments and keys
are announced ahead).

Years (a satisfaction survey's year): 2013 up to the record year + 1.

Texts (every string of a command's content, at any depth, and of the administrative and
case verbs), by the field's name:

- names of people, places, units and accounts (``name``, ``head_name``, ``*_name``,
  ``confirmed_by``, ``source``): at most **100** characters (``NAME_MAX``);
- document numbers (``*_no``: ``document_no``, ``announcement_no``, ``case_no``): at most
  **100** (``DOCUMENT_MAX``); a 文号 such as 财农〔2025〕1号 runs to some 30;
- region codes (``region_code``, ``village_code``, ``parent_code``, a region's ``code``):
  at most **32** (``REGION_CODE_MAX``; GB/T 2260 and village codes have 12 digits);
- other codes, ids, hashes and enumerated values (``*_code``, ``*_id``, ``*_ids``,
  ``*_hash``, ``code``, ``kind``, ``purpose``, ``relation``, ``role`` …): at most **64**
  (``CODE_MAX``; a UUID has 36, a hash 64);
- references to other records (``flag_ids``, an evidence item's ``ref``): at most **300**
  (``REF_MAX``, as ``GET /flags/{flag_id}``);
- free text (reasons, findings, opinions, summaries, notes, titles, reports, evidence
  notes, who recorded a case step): at most **2,000** characters (``TEXT_MAX``), about two
  pages of Chinese.

Numbers in a command are whole numbers of at most 10^15 in magnitude (``INT_MAX``: money
is bounded lower still by ``money.fen``; the read models keep numbers in 64-bit columns)
or finite decimals, and a command nests at most ``DEPTH_MAX`` levels deep.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from domain.errors import InvalidInput

PROGRAMME_START = dt.date(2013, 1, 1)
FACT_TOLERANCE = dt.timedelta(days=1)
PLAN_HORIZON_YEARS = 5
APPOINTMENTS_START = dt.date(1950, 1, 1)
APPOINTMENT_HORIZON = dt.timedelta(days=366)
CHINA_STANDARD_TIME = dt.timezone(dt.timedelta(hours=8), "CST")

NAME_MAX = 100
DOCUMENT_MAX = 100
REGION_CODE_MAX = 32
CODE_MAX = 64
REF_MAX = 300
TEXT_MAX = 2000
INT_MAX = 10**15
DEPTH_MAX = 8

_NAME_FIELDS = frozenset({"name", "head_name", "confirmed_by", "source"})
_REGION_FIELDS = frozenset({"region_code", "village_code", "parent_code"})
_REF_FIELDS = frozenset({"flag_ids", "ref"})
_CODE_FIELDS = frozenset({"code", "kind", "purpose", "relation", "role", "round", "method",
                          "basis", "rule", "level", "fund_source", "payee_kind", "step",
                          "verb", "action", "main_cause", "secondary_causes", "cause",
                          "public_key", "public_key_b64", "suspend_policies",
                          "responsibility"})
_CODE_SUFFIXES = ("_code", "_codes", "_id", "_ids", "_hash", "_kind", "_type")


def record_date(now: dt.datetime) -> dt.date:
    """The calendar day of a record time in China (UTC+8), the day business dates compare to."""
    return now.astimezone(CHINA_STANDARD_TIME).date()


def _as_date(value: object, field: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput("must be a date YYYY-MM-DD", field=field)


def _within(day: dt.date, field: str, earliest: dt.date, latest: dt.date, what: str) -> dt.date:
    if not earliest <= day <= latest:
        raise InvalidInput(f"{day.isoformat()} is outside the window of {what}: "
                           f"{earliest.isoformat()} to {latest.isoformat()}", field=field)
    return day


def _plus_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def fact_date(value: object, field: str, now: dt.datetime) -> dt.date:
    """A business date of something done: 2013-01-01 to the record date + 1 day."""
    day = _as_date(value, field)
    return _within(day, field, PROGRAMME_START, record_date(now) + FACT_TOLERANCE,
                   "business dates (from the programme's start to the record date + 1 day)")


def plan_date(value: object, field: str, now: dt.datetime) -> dt.date:
    """A date planned ahead (a deadline): 2013-01-01 to the record date + 5 years."""
    day = _as_date(value, field)
    return _within(day, field, PROGRAMME_START,
                   _plus_years(record_date(now), PLAN_HORIZON_YEARS),
                   f"planned dates (up to {PLAN_HORIZON_YEARS} years after the record date)")


def appointment_date(value: object, field: str, now: dt.datetime) -> dt.date:
    """A position's or a key's date: 1950-01-01 to the record date + 1 year."""
    day = _as_date(value, field)
    return _within(day, field, APPOINTMENTS_START, record_date(now) + APPOINTMENT_HORIZON,
                   "appointment and key dates (up to a year after the record date)")


def year_of_record(value: object, field: str, now: dt.datetime) -> int:
    """A year the programme can speak of: 2013 to the record year + 1."""
    latest = record_date(now).year + 1
    if isinstance(value, bool) or not isinstance(value, int) or \
            not PROGRAMME_START.year <= value <= latest:
        raise InvalidInput(f"must be a year from {PROGRAMME_START.year} to {latest}", field=field)
    return value


def text_limit(field: str) -> int:
    """The longest a string in ``field`` may be (see the module docstring)."""
    name = field.rpartition(".")[2].partition("[")[0]
    if name in _NAME_FIELDS or name.endswith("_name"):
        return NAME_MAX
    if name.endswith("_no"):
        return DOCUMENT_MAX
    if name in _REGION_FIELDS:
        return REGION_CODE_MAX
    if name in _REF_FIELDS:
        return REF_MAX
    if name in _CODE_FIELDS or name.endswith(_CODE_SUFFIXES):
        return CODE_MAX
    return TEXT_MAX


def check_length(value: object, field: str, limit: int) -> None:
    """A string of at most ``limit`` characters (for a field whose name says too little,
    such as a region's ``code``)."""
    if isinstance(value, str) and len(value) > limit:
        raise InvalidInput(f"is {len(value):,} characters long; at most {limit:,} are "
                           "allowed here", field=field)


def check_values(value: Any, field: str, depth: int = 0) -> None:
    """Every string, number and nesting in ``value`` within its bound; the first that is
    not is refused, naming its path (``members[1].name``)."""
    if depth > DEPTH_MAX:
        raise InvalidInput(f"nests more than {DEPTH_MAX} levels deep", field=field)
    if isinstance(value, str):
        check_length(value, field, text_limit(field))
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > INT_MAX:
            raise InvalidInput("a whole number here is at most 10^15 in magnitude", field=field)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput("must be a finite number", field=field)
    elif isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            sub = f"{field}.{key}" if field else key
            if len(key) > CODE_MAX:
                raise InvalidInput(f"a field name is at most {CODE_MAX} characters", field=field
                                   or "content")
            check_values(v, sub, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_values(v, f"{field}[{i}]", depth + 1)


def check_fields(**fields: Any) -> None:
    """``check_values`` for each named argument of a verb."""
    for name, value in fields.items():
        check_values(value, name)
