"""Working days on the Chinese calendar (工作日): deadlines of 线索处置 (交办 N 个工作日).

A day is a working day unless it is a weekend or a statutory holiday, and a weekend day
the State Council's notice makes a working day (调休上班) is one.  The calendar is the
``chinesecalendar`` package (module ``chinese_calendar``), which carries each year's
notice; it covers 2004 to the latest notice it ships (2026 in 1.11).  For a year it does
not cover, ``HOLIDAYS`` and ``WORKDAYS`` below are used if they name the year (add the
State Council's notice there when it is published, e.g. for 2027), else Monday to Friday
are working days: a deadline for a year without a notice may then fall a few days early
over the Spring Festival or National Day, never late.

``add_working_days(start, n)``: the n-th working day after ``start`` (the day of 交办
itself does not count).  ``working_days_between(a, b)``: working days after ``a`` up to
and including ``b``.
"""

from __future__ import annotations

import datetime as dt

try:  # the package ships the State Council's notices; without it, the tables below
    import chinese_calendar as _cc
except ImportError:  # pragma: no cover - a dependency in pyproject.toml
    _cc = None

HOLIDAYS: dict[int, frozenset[dt.date]] = {}
"""Statutory holidays of years the package does not cover (fill in from the notice)."""
WORKDAYS: dict[int, frozenset[dt.date]] = {}
"""Weekend days worked (调休上班) of years the package does not cover."""


def covered(day: dt.date) -> bool:
    """Whether the day's year has a notice (package or tables)."""
    if day.year in HOLIDAYS:
        return True
    if _cc is None:
        return False
    try:
        _cc.is_workday(day)
    except NotImplementedError:
        return False
    return True


def is_working_day(day: dt.date) -> bool:
    if day.year in HOLIDAYS:
        if day in HOLIDAYS[day.year]:
            return False
        return day.weekday() < 5 or day in WORKDAYS.get(day.year, frozenset())
    if _cc is not None:
        try:
            return bool(_cc.is_workday(day))
        except NotImplementedError:
            pass
    return day.weekday() < 5


def add_working_days(start: dt.date, n: int) -> dt.date:
    """The ``n``-th working day after ``start`` (``n`` ≥ 1)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    day, left = start, n
    while left:
        day += dt.timedelta(days=1)
        left -= is_working_day(day)
    return day


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to and including ``end`` (negative if ``end`` is
    before ``start``)."""
    if end < start:
        return -working_days_between(end, start)
    n, day = 0, start
    while day < end:
        day += dt.timedelta(days=1)
        n += is_working_day(day)
    return n
